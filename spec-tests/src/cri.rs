//! containerd 1.6 with its CRI plugin enabled, driven as kubelet drives it: a private
//! daemon (config, root, state, socket and the runtimes' state in a temp dir) whose runtime
//! handlers name an OCI runtime binary through the runc v2 shim's `BinaryName` option,
//! images pulled over plain HTTP from a local `docker-registry`, a sandbox ("pause") image
//! built offline, and a CRI v1 client (the `k8s-cri` crate's tonic bindings) over the
//! daemon's socket. Everything is stopped, removed and unmounted on drop, even after a panic.
//!
//! The runtime handler block comes verbatim from `docs/kubernetes.md`, so the documented
//! configuration is the one the tests prove.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{self as cri};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::registry::{free_port, Registry};

/// The docs page whose runtime-handler block the harness puts in its config.
const KUBERNETES_DOC: &str = include_str!("../../docs/kubernetes.md");
/// The line that precedes the handler block in the docs.
const HANDLER_MARKER: &str = "<!-- runtime-handler:";
/// Handler name and binary path as the docs spell them; the harness substitutes both.
const DOC_HANDLER: &str = "ours";
const DOC_BINARY: &str = "/usr/local/bin/runtime";

/// The namespace the CRI plugin keeps its containers in (containerd's and the shim's
/// state paths include it).
pub const K8S_NAMESPACE: &str = "k8s.io";

/// Repository:tag of the busybox image the tests run, in the local registry.
const BUSYBOX_REPO: &str = "spec/busybox:latest";
/// Repository:tag of the sandbox image, in the local registry.
const PAUSE_REPO: &str = "spec/pause:test";

/// The runtime-handler TOML block of `docs/kubernetes.md`, exactly as documented.
pub fn documented_handler_block() -> &'static str {
    let after = KUBERNETES_DOC
        .split_once(HANDLER_MARKER)
        .expect("docs/kubernetes.md has the runtime-handler marker")
        .1;
    let body = after
        .split_once("```toml\n")
        .expect("a ```toml block after the marker")
        .1;
    body.split_once("```")
        .expect("the ```toml block is closed")
        .0
}

/// The documented block for handler `name` running `binary`, with the runtime state kept in
/// `root` (the one option the docs leave to the operator).
pub fn handler_config(name: &str, binary: &Path, root: &Path) -> String {
    let block = documented_handler_block();
    assert!(
        block.contains(&format!("runtimes.{DOC_HANDLER}]"))
            && block.contains(&format!("BinaryName = \"{DOC_BINARY}\""))
            && block.trim_end().ends_with("SystemdCgroup = false"),
        "docs/kubernetes.md's handler block changed shape:\n{block}"
    );
    let block = block
        .replace(
            &format!("runtimes.{DOC_HANDLER}]"),
            &format!("runtimes.{name}]"),
        )
        .replace(
            &format!("runtimes.{DOC_HANDLER}.options]"),
            &format!("runtimes.{name}.options]"),
        )
        .replace(DOC_BINARY, &binary.to_string_lossy());
    // The options table is the block's last table, so a key appended here belongs to it.
    format!("{block}    Root = \"{}\"\n", root.display())
}

/// A running containerd with the CRI plugin, its registry and its clients.
pub struct CriContainerd {
    dir: TempDir,
    daemon: Option<Child>,
    registry: Registry,
    tokio: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    handlers: Vec<(String, PathBuf)>,
    cgroup_parent: String,
}

impl CriContainerd {
    /// Builds the images, starts the registry and containerd with one CRI runtime handler
    /// per `(name, binary)`. None only when containerd is not installed outside CI (the
    /// test is then recorded as not run, `not_run::require_tool`).
    pub fn start(handlers: &[(&str, &Path)]) -> Option<Self> {
        if !crate::not_run::require_tool("containerd", "containerd") {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("spec-cri-")
            .tempdir()
            .expect("tempdir");
        let registry = Registry::start();
        let image = crate::containerd::busybox_oci_layout(dir.path());
        registry.push_with_skopeo(&format!("oci:{image}"), BUSYBOX_REPO);
        let pause = pause_image(dir.path(), &image);
        registry.push_with_skopeo(&format!("oci:{pause}"), PAUSE_REPO);

        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let socket = dir.path().join("containerd.sock");
        let connect = {
            let socket = socket.clone();
            tokio.block_on(async move {
                // tonic needs a URI; the connector ignores it and dials the unix socket.
                Endpoint::try_from("http://[::]:50051")
                    .expect("endpoint")
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(60))
                    .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(socket).await?,
                            ))
                        }
                    }))
            })
        };
        let name = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut ctd = Self {
            runtime: RuntimeServiceClient::new(connect.clone()),
            images: ImageServiceClient::new(connect),
            dir,
            daemon: None,
            registry,
            tokio,
            handlers: handlers
                .iter()
                .map(|(n, b)| (n.to_string(), b.to_path_buf()))
                .collect(),
            cgroup_parent: format!("/{name}"),
        };
        // The streaming server's port is chosen before containerd binds it: retry if
        // someone took it meanwhile.
        for _ in 0..3 {
            ctd.write_config(free_port());
            ctd.spawn_daemon();
            if ctd.wait_ready(Duration::from_secs(30)) {
                return Some(ctd);
            }
            ctd.stop_daemon();
        }
        panic!("containerd's CRI plugin did not come up:\n{}", ctd.log());
    }

    fn write_config(&self, stream_port: u16) {
        let d = self.dir.path();
        let mut handlers = String::new();
        for (name, binary) in &self.handlers {
            handlers.push_str(&handler_config(name, binary, &self.runtime_root(name)));
        }
        // Plain HTTP to the local registry, as a registry host config (hosts.toml).
        let host = self.registry.host();
        let certs = d.join("certs.d");
        std::fs::create_dir_all(certs.join(&host)).expect("certs.d");
        std::fs::write(
            certs.join(&host).join("hosts.toml"),
            format!(
                "server = \"http://{host}\"\n\n[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )
        .expect("hosts.toml");
        // restrict_oom_score_adj: this host withholds CAP_SYS_RESOURCE, so the sandbox's
        // oom_score_adj (-998) is clamped to containerd's own instead of failing the create.
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{host}/{PAUSE_REPO}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "{stream_port}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "{default_handler}"
{handlers}"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            d = d.display(),
            certs = certs.display(),
            default_handler = self
                .handlers
                .first()
                .map(|h| h.0.as_str())
                .unwrap_or("runc"),
        );
        std::fs::write(d.join("config.toml"), config).expect("write containerd config");
    }

    fn spawn_daemon(&mut self) {
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("containerd.log")).expect("log file");
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        self.daemon = Some(daemon);
    }

    /// True once the CRI plugin answers Version (it refuses calls until initialized).
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.daemon.as_mut().map(Child::try_wait) {
                return false;
            }
            // A config the plugin rejects will not get better by waiting.
            if let Some(line) = self
                .log()
                .lines()
                .find(|l| l.contains("failed to load plugin io.containerd.grpc.v1.cri"))
            {
                panic!("containerd's CRI plugin rejected the config: {line}");
            }
            let mut rt = self.runtime.clone();
            let ok = self.tokio.block_on(async move {
                tokio::time::timeout(
                    Duration::from_secs(2),
                    rt.version(cri::VersionRequest::default()),
                )
                .await
                .map(|r| r.is_ok())
                .unwrap_or(false)
            });
            if ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn stop_daemon(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }

    /// Runs a CRI call (or any future) to completion.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.tokio.block_on(f)
    }

    /// A client of the CRI RuntimeService.
    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// A client of the CRI ImageService.
    pub fn images(&self) -> ImageServiceClient<Channel> {
        self.images.clone()
    }

    /// The busybox image's reference in the local registry (what a pod spec names).
    pub fn busybox_image(&self) -> String {
        format!("{}/{BUSYBOX_REPO}", self.registry.host())
    }

    /// The OCI runtime's state root (`Root` option) of handler `name`; the shim appends
    /// the namespace.
    pub fn runtime_root(&self, name: &str) -> PathBuf {
        self.dir.path().join("runtime-root").join(name)
    }

    /// Where containerd keeps a task's bundle (rootfs mount, config.json).
    pub fn task_dir(&self, id: &str) -> PathBuf {
        self.dir
            .path()
            .join("state/io.containerd.runtime.v2.task")
            .join(K8S_NAMESPACE)
            .join(id)
    }

    /// The temp dir everything of this daemon lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A cgroupfs parent for a pod, the way kubelet's cgroupfs driver names one; every pod
    /// of this daemon lives under `cgroup_root()`, removed on drop.
    pub fn pod_cgroup_parent(&self, pod: &str) -> String {
        format!("{}/pod-{pod}", self.cgroup_parent)
    }

    /// The cgroup under which all pods of this daemon live.
    pub fn cgroup_root(&self) -> &str {
        &self.cgroup_parent
    }

    /// containerd's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// PullImage of `image`; returns the image ref (digest id) containerd resolved.
    pub fn pull(&self, image: &str) -> String {
        let mut images = self.images();
        let req = cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.block_on(images.pull_image(req))
            .unwrap_or_else(|e| panic!("PullImage {image}: {e}\n{}", self.log()))
            .into_inner()
            .image_ref
    }

    /// RunPodSandbox with `config` on `handler`; the guard stops and removes it on drop.
    pub fn run_pod(&self, config: cri::PodSandboxConfig, handler: &str) -> Pod<'_> {
        let mut rt = self.runtime();
        let req = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.to_string(),
        };
        let id = self
            .block_on(rt.run_pod_sandbox(req))
            .unwrap_or_else(|e| panic!("RunPodSandbox on {handler}: {e}\n{}", self.log()))
            .into_inner()
            .pod_sandbox_id;
        Pod {
            cri: self,
            id,
            config,
            removed: false,
        }
    }

    /// StopPodSandbox + RemovePodSandbox of every pod this daemon knows (best effort).
    fn remove_all_pods(&self) {
        let mut rt = self.runtime();
        let pods = self.block_on(async move {
            tokio::time::timeout(
                Duration::from_secs(10),
                rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()),
            )
            .await
        });
        let Ok(Ok(pods)) = pods else { return };
        for pod in pods.into_inner().items {
            let _ = remove_pod(self, &pod.id);
        }
    }
}

/// The pause image: the busybox layout tagged `pause` with `sleep inf` as its command, which
/// holds the pod's namespaces and never exits by itself (StopPodSandbox kills it).
fn pause_image(dir: &Path, busybox: &str) -> String {
    let (layout, _) = busybox.rsplit_once(':').expect("LAYOUT:TAG");
    let out = Command::new("umoci")
        .args([
            "config",
            "--image",
            busybox,
            "--tag",
            "pause",
            "--clear=config.cmd",
            "--config.entrypoint",
            "/bin/sleep",
            "--config.cmd",
            "inf",
        ])
        .current_dir(dir)
        .output()
        .expect("umoci");
    assert!(
        out.status.success(),
        "umoci config (pause image): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{layout}:pause")
}

/// StopPodSandbox then RemovePodSandbox, bounded in time.
fn remove_pod(cri: &CriContainerd, id: &str) -> Result<(), String> {
    let mut rt = cri.runtime();
    let id = id.to_string();
    cri.block_on(async move {
        let stop = rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        });
        tokio::time::timeout(Duration::from_secs(30), stop)
            .await
            .map_err(|_| "StopPodSandbox timed out".to_string())?
            .map_err(|e| format!("StopPodSandbox: {e}"))?;
        let remove = rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.clone(),
        });
        tokio::time::timeout(Duration::from_secs(30), remove)
            .await
            .map_err(|_| "RemovePodSandbox timed out".to_string())?
            .map_err(|e| format!("RemovePodSandbox: {e}"))?;
        Ok(())
    })
}

impl Drop for CriContainerd {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            self.remove_all_pods();
        }
        self.stop_daemon();
        // Shims outlive containerd; any still running (after a failed cleanup) belong to
        // this daemon when their command line names its socket.
        let sock = self.dir.path().join("containerd.sock");
        for pid in pids_with_cmdline(&sock.to_string_lossy()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Containers whose shim was killed above are still in the pods' cgroups.
        kill_cgroup_tree(&self.cgroup_parent);
        crate::host::unmount_under(self.dir.path());
        remove_cgroup_tree(&self.cgroup_parent);
    }
}

/// SIGKILLs every process in the cgroup `path` or below it, in any hierarchy, and waits
/// (briefly) for the cgroups to empty.
fn kill_cgroup_tree(path: &str) {
    let procs_files = || {
        let mut files = Vec::new();
        for hierarchy in cgroup_hierarchies() {
            let mut dirs = Vec::new();
            collect_dirs(&hierarchy.join(path.trim_start_matches('/')), &mut dirs);
            files.extend(dirs.into_iter().map(|d| d.join("cgroup.procs")));
        }
        files
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut any = false;
        for file in procs_files() {
            let procs = std::fs::read_to_string(&file).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                any = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if !any || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A pod sandbox; stopped and removed on drop unless `remove` already did.
pub struct Pod<'a> {
    cri: &'a CriContainerd,
    pub id: String,
    /// The config it was run with (CreateContainer needs it again, as kubelet sends it).
    pub config: cri::PodSandboxConfig,
    removed: bool,
}

impl Pod<'_> {
    /// CreateContainer in this pod; returns the container id. Like kubelet, gives the
    /// container the pod's namespace options (the CRI plugin reads the container's, not
    /// the sandbox's).
    pub fn create(&self, mut config: cri::ContainerConfig) -> String {
        let namespaces = self
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone());
        let linux = config.linux.get_or_insert_with(Default::default);
        let security = linux.security_context.get_or_insert_with(Default::default);
        if security.namespace_options.is_none() {
            security.namespace_options = namespaces;
        }
        let mut rt = self.cri.runtime();
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: self.id.clone(),
            config: Some(config),
            sandbox_config: Some(self.config.clone()),
        };
        self.cri
            .block_on(rt.create_container(req))
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}\n{}", self.cri.log()))
            .into_inner()
            .container_id
    }

    /// CreateContainer + StartContainer; returns the container id.
    pub fn start(&self, config: cri::ContainerConfig) -> String {
        let id = self.create(config);
        let mut rt = self.cri.runtime();
        self.cri
            .block_on(rt.start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            }))
            .unwrap_or_else(|e| panic!("StartContainer {id}: {e}\n{}", self.cri.log()));
        id
    }

    /// StopPodSandbox + RemovePodSandbox, asserting both succeed.
    pub fn remove(mut self) {
        self.removed = true;
        if let Err(e) = remove_pod(self.cri, &self.id) {
            panic!("{e}\n{}", self.cri.log());
        }
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_pod(self.cri, &self.id);
        }
    }
}

/// A container config as kubelet sends it: name, image ref, command, log path.
pub fn container_config(name: &str, image_ref: &str, command: &[&str]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image_ref.to_string(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// A host-network pod config as kubelet sends it: metadata, log directory, cgroupfs parent,
/// and the pod's PID/IPC namespace modes.
pub fn pod_config(
    cri: &CriContainerd,
    name: &str,
    pid: cri::NamespaceMode,
    ipc: cri::NamespaceMode,
) -> cri::PodSandboxConfig {
    let uid = format!("{name}-{}", std::process::id());
    let log_directory = cri.dir().join("pods").join(&uid);
    std::fs::create_dir_all(&log_directory).expect("pod log dir");
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.clone(),
            namespace: "default".to_string(),
            attempt: 0,
        }),
        // Host network means the host's UTS namespace: kubelet leaves the hostname alone.
        hostname: String::new(),
        log_directory: log_directory.to_string_lossy().to_string(),
        labels: HashMap::from([("app".to_string(), name.to_string())]),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cri.pod_cgroup_parent(&uid),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    pid: pid as i32,
                    ipc: ipc as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What a remote command (Exec/Attach over the streaming server) printed, and how it ended.
#[derive(Debug, Default)]
pub struct StreamOutput {
    pub stdout: String,
    pub stderr: String,
    /// The v4 error channel's JSON status (`{"status":"Success"}` or a failure with the
    /// exit code in `details.causes`), if one came.
    pub status: Option<serde_json::Value>,
}

impl StreamOutput {
    /// The exit code the status reports: 0 on Success, the ExitCode cause otherwise.
    pub fn exit_code(&self) -> Option<i32> {
        let status = self.status.as_ref()?;
        if status["status"] == "Success" {
            return Some(0);
        }
        status["details"]["causes"]
            .as_array()?
            .iter()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str())
            .and_then(|m| m.parse().ok())
    }
}

/// Connects to a streaming URL (from Exec or Attach) with the websocket
/// `v4.channel.k8s.io` protocol, as kubectl does, and reads the channels until the server
/// closes or `until` returns true for what came so far (then the client closes).
pub async fn stream(
    url: &str,
    timeout: Duration,
    until: impl Fn(&StreamOutput) -> bool,
) -> Result<StreamOutput, String> {
    // The URL is http://; the websocket upgrade happens on the same connection.
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut request = ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("streaming URL {url}: {e}"))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().expect("header"),
    );
    let (mut ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| format!("websocket connect to {url} timed out"))?
        .map_err(|e| format!("websocket connect to {url}: {e}"))?;
    let mut out = StreamOutput::default();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(format!("stream {url} timed out; so far {out:?}")),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                // The server may drop the TCP connection right after the status.
                if out.status.is_some() {
                    break;
                }
                return Err(format!("stream {url}: {e}; so far {out:?}"));
            }
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Binary(data) if !data.is_empty() => {
                let text = String::from_utf8_lossy(&data[1..]).to_string();
                match data[0] {
                    1 => out.stdout.push_str(&text),
                    2 => out.stderr.push_str(&text),
                    3 if !text.is_empty() => {
                        out.status = Some(
                            serde_json::from_str(&text)
                                .map_err(|e| format!("status {text:?}: {e}"))?,
                        );
                    }
                    _ => {}
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
        if until(&out) {
            let _ = ws.close(None).await;
            break;
        }
    }
    Ok(out)
}

/// Pids of processes whose command line contains `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Every cgroup v1 controller hierarchy and the cgroup2 one mounted under /sys/fs/cgroup.
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, path, fstype) = (f.next()?, f.next()?, f.next()?);
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(path))
        })
        .filter(|p| p.starts_with("/sys/fs/cgroup"))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Removes the cgroup `path` (absolute within each hierarchy) and everything below it,
/// deepest first, in every hierarchy (what kubelet does with a pod's cgroup).
pub fn remove_cgroup_tree(path: &str) {
    for hierarchy in cgroup_hierarchies() {
        let top = hierarchy.join(path.trim_start_matches('/'));
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

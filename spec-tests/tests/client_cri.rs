//! Kubernetes' path to the runtime: containerd 1.6's CRI plugin with a runtime handler
//! whose runc v2 shim options name the binary (the block in docs/kubernetes.md), driven
//! through the CRI v1 API the way kubelet drives it. The same code proves our runtime and,
//! as the reference, runc.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_cri::v1::NamespaceMode;
use spec_tests::cri::{
    cgroup_hierarchies, container_config, pids_with_cmdline, pod_config, stream, CriContainerd,
    K8S_NAMESPACE,
};
use spec_tests::leftovers::Probe;

/// Polls `f` every 50 ms for up to 10 s.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// ContainerStatus with verbose info: the status, and containerd's info JSON (pid, spec).
fn container_status(cri: &CriContainerd, id: &str) -> (cri::ContainerStatus, serde_json::Value) {
    let mut rt = cri.runtime();
    let resp = cri
        .block_on(rt.container_status(cri::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        }))
        .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
        .into_inner();
    let info = resp
        .info
        .get("info")
        .map(|s| serde_json::from_str(s).expect("verbose info is JSON"))
        .unwrap_or(serde_json::Value::Null);
    (resp.status.expect("status"), info)
}

fn exec_sync(cri: &CriContainerd, id: &str, cmd: &[&str]) -> cri::ExecSyncResponse {
    let mut rt = cri.runtime();
    cri.block_on(rt.exec_sync(cri::ExecSyncRequest {
        container_id: id.to_string(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout: 10,
    }))
    .unwrap_or_else(|e| panic!("ExecSync {cmd:?} in {id}: {e}\n{}", cri.log()))
    .into_inner()
}

/// ExecSync expected to succeed; its stdout.
fn exec_ok(cri: &CriContainerd, id: &str, cmd: &[&str]) -> String {
    let out = exec_sync(cri, id, cmd);
    assert_eq!(
        out.exit_code,
        0,
        "{cmd:?}: stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The container's log file (CRI format: `TIME STREAM TAG LINE`), as kubelet reads it.
fn container_log(pod: &cri::PodSandboxConfig, name: &str) -> String {
    std::fs::read_to_string(Path::new(&pod.log_directory).join(format!("{name}/0.log")))
        .unwrap_or_default()
}

/// The lines a stream wrote to the CRI log, without the timestamps.
fn log_lines(log: &str, stream: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, ' ');
            let (_, s, _, text) = (f.next()?, f.next()?, f.next()?, f.next()?);
            (s == stream).then(|| text.to_string())
        })
        .collect()
}

/// The container's cgroup in `hierarchy` (cgroupfs: `<pod parent>/<container id>`).
fn cgroup_dir(hierarchy: &str, parent: &str, id: &str) -> std::path::PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(hierarchy)
        .join(parent.trim_start_matches('/'))
        .join(id)
}

fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Asserts nothing of these sandboxes/containers remains, with the one "nothing left"
/// checker (`spec_tests::leftovers`) for each id: no process (by pid, in a cgroup naming
/// the id, or naming it on its command line: shims), no cgroup naming it in any hierarchy,
/// no mount naming it, no state directory (the handler's Root, containerd's task dir).
/// Once the whole pod is gone (`pod_gone`), no rootfs of this daemon is mounted and the
/// pod's own cgroup must be empty: it is removed, as kubelet does with a deleted pod's
/// cgroup.
fn assert_nothing_left(
    cri: &CriContainerd,
    handler: &str,
    cgroup_parent: &str,
    ids: &[&str],
    pids: &[i64],
    pod_gone: bool,
) {
    for id in ids {
        Probe::new(id)
            .processes(pids.iter().map(|p| *p as i32))
            .state_root(&cri.runtime_root(handler).join(K8S_NAMESPACE))
            .gone(&cri.task_dir(id))
            .assert_nothing_left(&format!("CRI sandbox or container {id}"));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    if !pod_gone {
        return;
    }
    let dir_mounts: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(&*cri.dir().to_string_lossy()) && !l.contains("/cni/"))
        .collect();
    assert!(
        dir_mounts.iter().all(|l| !l.contains("/rootfs ")),
        "rootfs mounts remain: {dir_mounts:#?}"
    );
    for h in cgroup_hierarchies() {
        let dir = h.join(cgroup_parent.trim_start_matches('/'));
        if dir.exists() {
            std::fs::remove_dir(&dir)
                .unwrap_or_else(|e| panic!("pod cgroup {} not empty: {e}", dir.display()));
        }
    }
}

fn scenario(handler: &str, binary: &Path) {
    let Some(cri) = CriContainerd::start(&[(handler, binary)]) else {
        return;
    };
    let mut rt = cri.runtime();

    // Version: what kubelet asks first.
    let version = cri
        .block_on(rt.version(cri::VersionRequest {
            version: "v1".into(),
        }))
        .expect("Version")
        .into_inner();
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");

    // The daemon runs the handler block of docs/kubernetes.md.
    let config = std::fs::read_to_string(cri.dir().join("config.toml")).expect("config");
    let block = spec_tests::cri::handler_config(handler, binary, &cri.runtime_root(handler));
    assert!(config.contains(&block), "{config}");
    assert!(block.contains(&format!("BinaryName = \"{}\"", binary.display())));

    // PullImage over plain HTTP from the local registry (hosts.toml).
    let image = cri.pull(&cri.busybox_image());
    assert!(image.starts_with("sha256:"), "image ref {image}");

    life_of_a_pod(&cri, handler, binary, &image);
    pod_sharing_namespaces(&cri, handler, &image);
}

/// One pod's whole life with kubelet's default namespaces (own PID namespace per
/// container, the pod's IPC), every CRI call kubelet makes on the way.
fn life_of_a_pod(cri: &CriContainerd, handler: &str, binary: &Path, image: &str) {
    let mut rt = cri.runtime();
    let config = pod_config(cri, "life", NamespaceMode::Container, NamespaceMode::Pod);
    let cgroup_parent = config.linux.as_ref().unwrap().cgroup_parent.clone();
    // The sandbox image is pulled by containerd itself, from the local registry.
    let pod = cri.run_pod(config.clone(), handler);
    let sandbox = cri
        .block_on(rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.id.clone(),
            verbose: true,
        }))
        .expect("PodSandboxStatus")
        .into_inner();
    assert_eq!(
        sandbox.status.as_ref().unwrap().state,
        cri::PodSandboxState::SandboxReady as i32
    );
    let sandbox_info: serde_json::Value =
        serde_json::from_str(&sandbox.info["info"]).expect("sandbox info");
    let sandbox_pid = sandbox_info["pid"].as_i64().expect("sandbox pid");
    assert_eq!(
        sandbox_info["runtimeHandler"], handler,
        "sandbox info {sandbox_info}"
    );

    // The main container: logs to both streams, then ticks; exits 7 on SIGTERM.
    let main = pod.start(container_config(
        "main",
        image,
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo hello; echo oops >&2; \
             while :; do echo tick; sleep 0.1; done",
        ],
    ));
    // A container that ignores SIGTERM: StopContainer must SIGKILL it after the grace period.
    let stubborn = pod.start(container_config(
        "stubborn",
        image,
        &["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"],
    ));

    // ContainerStatus: running, named, from the image; containerd's info gives the pid.
    let (status, info) = container_status(cri, &main);
    assert_eq!(status.state, cri::ContainerState::ContainerRunning as i32);
    assert_eq!(status.metadata.as_ref().unwrap().name, "main");
    assert!(status.started_at > 0 && status.created_at > 0);
    // The image kubelet shows: pinned to the manifest digest pulled from the registry.
    assert!(
        status.image_ref.contains("/spec/busybox@sha256:"),
        "image_ref {}",
        status.image_ref
    );
    let main_pid = info["pid"].as_i64().expect("pid in verbose info");
    let stubborn_pid = container_status(cri, &stubborn).1["pid"]
        .as_i64()
        .expect("pid");
    assert_eq!(
        info["runtimeType"], "io.containerd.runc.v2",
        "verbose info {info}"
    );

    // The handler's binary made the container: it reports it from its state root.
    let state_root = cri.runtime_root(handler).join(K8S_NAMESPACE);
    let out = std::process::Command::new(binary)
        .arg("--root")
        .arg(&state_root)
        .args(["state", &main])
        .output()
        .expect("runtime state");
    assert!(out.status.success(), "{binary:?} state: {out:?}");
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).expect("state JSON");
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["pid"].as_i64(), Some(main_pid), "{state}");

    // Its cgroup, under the pod's cgroupfs parent, holds its process.
    let memory_cgroup = cgroup_dir("memory", &cgroup_parent, &main);
    let procs = read_trimmed(&memory_cgroup.join("cgroup.procs"));
    assert!(
        procs.lines().any(|p| p == main_pid.to_string()),
        "pid {main_pid} not in {}: {procs}",
        memory_cgroup.display()
    );

    // The log file kubelet reads (`kubectl logs`).
    wait_for("main's log", || {
        log_lines(&container_log(&config, "main"), "stdout").contains(&"hello".to_string())
    });
    let log = container_log(&config, "main");
    assert_eq!(log_lines(&log, "stderr"), ["oops"], "{log}");

    // ExecSync (probes, `kubectl exec` without a stream): both streams and the exit code.
    let out = exec_sync(cri, &main, &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(out.exit_code, 3);
    assert_eq!(
        exec_ok(cri, &main, &["cat", "/proc/1/cmdline"]),
        "sh\0-c\0trap 'echo got-term; exit 7' TERM; echo hello; echo oops >&2; \
         while :; do echo tick; sleep 0.1; done\0"
    );

    // Exec and Attach through the streaming server on 127.0.0.1 (`kubectl exec/attach`).
    let url = cri
        .block_on(
            rt.exec(cri::ExecRequest {
                container_id: main.clone(),
                cmd: ["sh", "-c", "echo x-out; echo x-err >&2; exit 5"]
                    .map(String::from)
                    .to_vec(),
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        )
        .expect("Exec")
        .into_inner()
        .url;
    assert!(url.starts_with("http://127.0.0.1:"), "exec URL {url}");
    let out = cri
        .block_on(stream(&url, Duration::from_secs(10), |_| false))
        .expect("exec stream");
    assert_eq!(out.stdout, "x-out\n", "{out:?}");
    assert_eq!(out.stderr, "x-err\n", "{out:?}");
    assert_eq!(out.exit_code(), Some(5), "{out:?}");
    let url = cri
        .block_on(rt.attach(cri::AttachRequest {
            container_id: main.clone(),
            stdout: true,
            stderr: true,
            ..Default::default()
        }))
        .expect("Attach")
        .into_inner()
        .url;
    assert!(url.starts_with("http://127.0.0.1:"), "attach URL {url}");
    let out = cri
        .block_on(stream(&url, Duration::from_secs(10), |o| {
            o.stdout.contains("tick\n")
        }))
        .expect("attach stream");
    assert!(out.stdout.contains("tick\n"), "{out:?}");

    // ContainerStats: CPU time and memory from the container's cgroup.
    let stats = cri
        .block_on(rt.container_stats(cri::ContainerStatsRequest {
            container_id: main.clone(),
        }))
        .expect("ContainerStats")
        .into_inner()
        .stats
        .expect("stats");
    assert_eq!(stats.attributes.as_ref().unwrap().id, main);
    let cpu = stats
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds.as_ref());
    assert!(cpu.is_some_and(|c| c.value > 0), "{stats:?}");
    let memory = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref());
    assert!(memory.is_some_and(|m| m.value > 0), "{stats:?}");

    // UpdateContainerResources: the new limits land in the container's cgroup, seen from
    // the host and from inside.
    cri.block_on(
        rt.update_container_resources(cri::UpdateContainerResourcesRequest {
            container_id: main.clone(),
            linux: Some(cri::LinuxContainerResources {
                cpu_period: 100_000,
                cpu_quota: 50_000,
                cpu_shares: 512,
                memory_limit_in_bytes: 64 << 20,
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
    .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}\n{}", cri.log()));
    assert_eq!(
        read_trimmed(&memory_cgroup.join("memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    let cpu_cgroup = cgroup_dir("cpu", &cgroup_parent, &main);
    assert_eq!(read_trimmed(&cpu_cgroup.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(
        read_trimmed(&cpu_cgroup.join("cpu.cfs_period_us")),
        "100000"
    );
    assert_eq!(read_trimmed(&cpu_cgroup.join("cpu.shares")), "512");
    assert_eq!(
        exec_ok(
            cri,
            &main,
            &["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        )
        .trim(),
        (64u64 << 20).to_string()
    );

    // StopContainer with a grace period: SIGTERM first (main exits 7 at once) ...
    let started = Instant::now();
    cri.block_on(rt.stop_container(cri::StopContainerRequest {
        container_id: main.clone(),
        timeout: 10,
    }))
    .expect("StopContainer main");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "main took {:?} to stop on SIGTERM",
        started.elapsed()
    );
    let (status, _) = container_status(cri, &main);
    assert_eq!(status.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(status.exit_code, 7, "{status:?}");
    assert!(status.finished_at >= status.started_at);
    assert!(log_lines(&container_log(&config, "main"), "stdout").contains(&"got-term".into()));
    // ... then SIGKILL once the grace period is over (stubborn ignores SIGTERM).
    let started = Instant::now();
    cri.block_on(rt.stop_container(cri::StopContainerRequest {
        container_id: stubborn.clone(),
        timeout: 1,
    }))
    .expect("StopContainer stubborn");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "stubborn stopped after {took:?}, not after its 1 s grace period"
    );
    let (status, _) = container_status(cri, &stubborn);
    assert_eq!(status.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(status.exit_code, 137, "{status:?}");

    // RemoveContainer: gone from the API, its cgroup and state gone, the pod still up.
    for id in [&main, &stubborn] {
        cri.block_on(rt.remove_container(cri::RemoveContainerRequest {
            container_id: id.clone(),
        }))
        .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
        let err = cri
            .block_on(rt.container_status(cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            }))
            .expect_err("status of a removed container");
        assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    }
    assert_nothing_left(
        cri,
        handler,
        &cgroup_parent,
        &[&main, &stubborn],
        &[main_pid, stubborn_pid],
        false,
    );
    assert!(Path::new(&format!("/proc/{sandbox_pid}")).exists());

    // StopPodSandbox + RemovePodSandbox: nothing of the pod remains.
    let pod_id = pod.id.clone();
    pod.remove();
    assert_nothing_left(
        cri,
        handler,
        &cgroup_parent,
        &[&pod_id],
        &[sandbox_pid],
        true,
    );
}

/// `shareProcessNamespace: true`: two containers in the pod's PID and IPC namespaces see
/// each other's processes, the pause process as PID 1, and the same /dev/shm.
fn pod_sharing_namespaces(cri: &CriContainerd, handler: &str, image: &str) {
    let config = pod_config(cri, "shared", NamespaceMode::Pod, NamespaceMode::Pod);
    let cgroup_parent = config.linux.as_ref().unwrap().cgroup_parent.clone();
    let pod = cri.run_pod(config, handler);
    let a = pod.start(container_config(
        "a",
        image,
        &["sh", "-c", "echo from-a > /dev/shm/marker; exec sleep 1001"],
    ));
    let b = pod.start(container_config("b", image, &["sleep", "1002"]));

    wait_for("a's shm marker", || {
        exec_sync(cri, &b, &["cat", "/dev/shm/marker"]).stdout == b"from-a\n"
    });
    let ps = exec_ok(cri, &b, &["ps", "-o", "pid,args"]);
    assert!(
        ps.contains("sleep 1001"),
        "b does not see a's process:\n{ps}"
    );
    assert_eq!(
        exec_ok(cri, &a, &["cat", "/proc/1/cmdline"]),
        "/bin/sleep\0inf\0"
    );
    let ns =
        |id: &str, kind: &str| exec_ok(cri, id, &["readlink", &format!("/proc/self/ns/{kind}")]);
    for kind in ["pid", "ipc"] {
        let (in_a, in_b) = (ns(&a, kind), ns(&b, kind));
        assert_eq!(in_a, in_b, "{kind} namespace differs between a and b");
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).expect("host ns");
        assert_ne!(in_a.trim(), host.to_string_lossy(), "{kind} is the host's");
    }
    let pids: Vec<i64> = [&a, &b]
        .iter()
        .map(|id| container_status(cri, id).1["pid"].as_i64().expect("pid"))
        .collect();

    // Deleting the pod (containers still running) stops and removes everything.
    let pod_id = pod.id.clone();
    pod.remove();
    assert_nothing_left(
        cri,
        handler,
        &cgroup_parent,
        &[&pod_id, &a, &b],
        &pids,
        true,
    );
}

/// Stops and removes a pod with a container that exited on its own and one whose process
/// was killed under containerd's feet (SIGKILL from the host, then StopContainer at once,
/// before containerd has seen the exit: its shim then asks the runtime to kill a stopped
/// container and must be told "container not running"), `rounds` times. Returns the
/// failures (empty when every pod was stopped and removed) and checks nothing is left.
fn pods_with_exited_containers(
    cri: &CriContainerd,
    handler: &str,
    image: &str,
    rounds: usize,
) -> Vec<String> {
    let mut failures = Vec::new();
    for round in 0..rounds {
        let config = pod_config(
            cri,
            &format!("exited{round}"),
            NamespaceMode::Container,
            NamespaceMode::Pod,
        );
        let cgroup_parent = config.linux.as_ref().unwrap().cgroup_parent.clone();
        let pod = cri.run_pod(config, handler);
        let quitter = pod.start(container_config("quitter", image, &["sh", "-c", "exit 3"]));
        let victim = pod.start(container_config("victim", image, &["sleep", "1000"]));
        wait_for("quitter to exit", || {
            container_status(cri, &quitter).0.state == cri::ContainerState::ContainerExited as i32
        });
        assert_eq!(container_status(cri, &quitter).0.exit_code, 3);
        let victim_pid = container_status(cri, &victim).1["pid"]
            .as_i64()
            .expect("pid");
        // SAFETY: kill takes a pid and a signal.
        unsafe { libc::kill(victim_pid as i32, libc::SIGKILL) };
        let mut rt = cri.runtime();
        let stopped = cri.block_on(rt.stop_container(cri::StopContainerRequest {
            container_id: victim.clone(),
            timeout: 0,
        }));
        if let Err(e) = stopped {
            failures.push(format!(
                "round {round}: StopContainer of a killed container: {e}"
            ));
        }
        let pod_id = pod.id.clone();
        // StopPodSandbox + RemovePodSandbox, the calls kubelet makes for a finished pod.
        let removed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pod.remove()));
        if let Err(panic) = removed {
            let why = panic
                .downcast_ref::<String>()
                .map(|s| s.lines().next().unwrap_or_default().to_string())
                .unwrap_or_default();
            failures.push(format!(
                "round {round}: the pod was not stopped and removed: {why}"
            ));
            continue;
        }
        // (After a failed round that pod is still there: only a clean run is checked.)
        if failures.is_empty() {
            assert_nothing_left(
                cri,
                handler,
                &cgroup_parent,
                &[&pod_id, &quitter, &victim],
                &[victim_pid],
                true,
            );
        }
    }
    let failed_rounds: std::collections::BTreeSet<&str> = failures
        .iter()
        .filter_map(|f| f.split(':').next())
        .collect();
    println!(
        "{handler}: pods with exited containers stopped and removed: {} of {rounds}",
        rounds - failed_rounds.len()
    );
    failures
}

/// A wrapper of `runtime` that words `kill`'s "container not running" as this runtime
/// did before (`container <id> is not running`), for the negative control.
fn old_wording_wrapper(dir: &Path, runtime: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("runtime-old-wording");
    let script = format!(
        "#!/bin/sh\n\
         case \" $* \" in\n\
         *\" kill \"*) err=$(mktemp); {rt} \"$@\" 2>\"$err\"; rc=$?;\n\
           sed 's/container not running/container is not running/' \"$err\" >&2; rm -f \"$err\"; exit $rc;;\n\
         *) exec {rt} \"$@\";;\n\
         esac\n",
        rt = runtime.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn cri_pod_with_exited_containers_is_stopped_and_removed() {
    let ours = spec_tests::bins::runtime();
    let runc = spec_tests::host::runc();
    let dir = tempfile::tempdir().unwrap();
    let old = old_wording_wrapper(dir.path(), &ours);
    let Some(cri) = CriContainerd::start(&[("ours", &ours), ("runc", &runc), ("old", &old)]) else {
        return;
    };
    let image = cri.pull(&cri.busybox_image());
    for handler in ["ours", "runc"] {
        let failures = pods_with_exited_containers(&cri, handler, &image, 5);
        assert!(
            failures.is_empty(),
            "{handler}: {failures:#?}\n{}",
            cri.log()
        );
    }
    // The negative control: with kill's old wording containerd's shim does not see the
    // container as finished, and the pod cannot be stopped.
    let failures = pods_with_exited_containers(&cri, "old", &image, 5);
    assert!(
        failures
            .iter()
            .any(|f| f.contains("unknown error after kill")),
        "the old wording went unnoticed: {failures:#?}"
    );
}

#[test]
fn cri_pod_lifecycle_on_our_runtime() {
    scenario("ours", &spec_tests::bins::runtime());
}

#[test]
fn cri_pod_lifecycle_on_runc() {
    scenario("runc", &spec_tests::host::runc());
}

/// A test that panics mid-pod still leaves nothing: the pod guard stops and removes the
/// pod, the daemon guard kills containerd and removes its directory.
#[test]
fn cri_guards_clean_up_after_a_panic() {
    let binary = spec_tests::bins::runtime();
    // Started outside the closure: a setup that fails must fail the test, not look like
    // the deliberate panic below.
    let Some(cri) = CriContainerd::start(&[("ours", &binary)]) else {
        return; // recorded as not run (never under CI)
    };
    let seen = std::sync::Mutex::new(None);
    let seen = &seen;
    // `cri` moves into the closure so that its guard runs while the panic unwinds.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let image = cri.pull(&cri.busybox_image());
        let config = pod_config(&cri, "doomed", NamespaceMode::Container, NamespaceMode::Pod);
        let pod = cri.run_pod(config, "ours");
        let id = pod.start(container_config("c", &image, &["sleep", "1003"]));
        let pid = container_status(&cri, &id).1["pid"].as_i64().expect("pid");
        *seen.lock().unwrap() = Some((
            cri.dir().to_path_buf(),
            cri.cgroup_root().to_string(),
            id,
            pid,
            pod.id.clone(),
        ));
        panic!("deliberate panic with a pod running");
    }));
    let message = result
        .expect_err("the closure was meant to panic")
        .downcast::<&str>()
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert_eq!(
        message, "deliberate panic with a pod running",
        "the pod never ran: the closure failed before its deliberate panic"
    );
    let (dir, cgroup_root, id, pid, pod_id) = seen
        .lock()
        .unwrap()
        .take()
        .expect("the closure records the pod before it panics");
    wait_for("the container process to go", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    for needle in [&id, &pod_id] {
        assert!(pids_with_cmdline(needle).is_empty(), "{needle} still runs");
    }
    assert!(!dir.exists(), "{} remains", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&*dir.to_string_lossy()),
        "mounts under {}",
        dir.display()
    );
    for h in cgroup_hierarchies() {
        let top = h.join(cgroup_root.trim_start_matches('/'));
        assert!(!top.exists(), "cgroup {} remains", top.display());
    }
}

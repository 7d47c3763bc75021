//! A private containerd for client tests: its own config, root, state and socket in a temp
//! directory (CRI disabled), started by the test and stopped on drop, with a busybox image
//! built offline (umoci + skopeo from Debian) and imported.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::container::{capture, Outcome};

/// Image name the tests run.
pub const IMAGE: &str = "localhost/spec-busybox:latest";

pub struct Containerd {
    dir: TempDir,
    daemon: Child,
    namespace: String,
}

impl Containerd {
    /// Starts containerd and imports the busybox image; None only when containerd is not
    /// installed outside CI (the test is then recorded as not run, `not_run::require_tool`).
    pub fn start(namespace: &str) -> Option<Self> {
        if !crate::not_run::require_tool("containerd", "containerd")
            || !crate::not_run::require_tool("ctr", "containerd")
        {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("spec-ctd-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("ctd.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).expect("write containerd config");
        let log = std::fs::File::create(d.join("containerd.log")).expect("log file");
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let ctd = Self {
            dir,
            daemon,
            namespace: namespace.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while ctd.ctr(&["version"]).code != 0 {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                ctd.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let archive = busybox_docker_archive(ctd.dir.path());
        let out = ctd.ctr(&["images", "import", &archive.to_string_lossy()]);
        assert_eq!(out.code, 0, "image import: {out:?}");
        Some(ctd)
    }

    /// `ctr --address SOCKET --connect-timeout 5s -n NS`: the start of every ctr call.
    fn ctr_argv(&self) -> Vec<String> {
        let sock = self.dir.path().join("ctd.sock");
        [
            "ctr",
            "--address",
            &sock.to_string_lossy(),
            "--connect-timeout",
            "5s",
            "-n",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([self.namespace.clone()])
        .collect()
    }

    /// `ctr --address … -n NS ARGS…`, output captured through files.
    pub fn ctr(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.dir.path().join("ctd.sock"))
            .args(["--connect-timeout", "5s", "-n", &self.namespace])
            .args(args)
            .stdin(Stdio::null());
        capture(cmd)
    }

    /// Runs ctr with a terminal (for `-t`).
    pub fn ctr_with_tty(&self, args: &[&str]) -> Outcome {
        let base = self.ctr_argv();
        let base: Vec<&str> = base.iter().map(String::as_str).collect();
        crate::host::in_terminal(&[&base[..], args].concat(), &[])
    }

    /// Runs ctr (in a terminal with `tty`) with a pipe as its input: once `until` shows
    /// up in its output, writes `input` and closes the pipe, then waits for ctr to end. For
    /// a process that must not exit before its output has reached ctr's: containerd 1.6's
    /// `ctr task exec` deletes the process as soon as it has exited, which cancels its
    /// readers with output still in flight (fixed upstream in containerd PR 13931), so the
    /// process prints, then waits for a line on its stdin.
    pub fn ctr_answering(&self, args: &[&str], tty: bool, until: &str, input: &str) -> Outcome {
        use std::io::{Read, Seek, Write};
        use std::os::unix::process::ExitStatusExt;
        let base = self.ctr_argv();
        let base: Vec<&str> = base.iter().map(String::as_str).collect();
        let argv = [&base[..], args].concat();
        let mut cmd = if tty {
            crate::host::terminal_command(&argv)
        } else {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        };
        let mut out = tempfile::tempfile().expect("stdout file");
        let mut err = tempfile::tempfile().expect("stderr file");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(out.try_clone().expect("dup"))
            .stderr(err.try_clone().expect("dup"))
            .spawn()
            .expect("spawn ctr");
        let mut stdin = child.stdin.take().expect("ctr's stdin");
        let read = |f: &mut std::fs::File| {
            let mut s = String::new();
            f.rewind().expect("rewind");
            let _ = f.read_to_string(&mut s);
            s
        };
        crate::wait::until_true(
            &format!("{until:?} in ctr's output"),
            crate::wait::DEADLINE,
            || read(&mut out).contains(until) || matches!(child.try_wait(), Ok(Some(_))),
        );
        let _ = stdin.write_all(input.as_bytes());
        drop(stdin);
        let status = child.wait().expect("wait for ctr");
        Outcome {
            code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout: read(&mut out),
            stderr: read(&mut err),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
}

/// A docker-archive of busybox made offline (shared with the podman harness): umoci builds the OCI image from the
/// busybox-static rootfs, skopeo writes it as an archive ctr can import.
pub fn busybox_docker_archive(dir: &Path) -> PathBuf {
    let image = busybox_oci_layout(dir);
    let archive = dir.join("busybox.tar");
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{image}"),
        &format!("docker-archive:{}:{IMAGE}", archive.display()),
    ]));
    archive
}

/// Runs a helper command, panicking with its stderr when it fails.
fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds a busybox OCI image offline in `DIR/img` with umoci (rootfs from busybox-static,
/// cmd `sh`) and returns its `LAYOUT:TAG` reference (`DIR/img:latest`), for skopeo's
/// `oci:` transport.
pub fn busybox_oci_layout(dir: &Path) -> String {
    let rootfs = dir.join("img-rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).expect("rootfs");
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    let layout = dir.join("img");
    let image = format!("{}:latest", layout.display());
    let run = run_ok;
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci")
        .args(["insert", "--rootless", "--image", &image])
        .arg(&rootfs)
        .arg("/"));
    run(Command::new("umoci").args(["config", "--image", &image, "--config.cmd", "sh"]));
    image
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Remove what the namespace still holds, then stop the daemon and unmount leftovers.
        let tasks = self.ctr(&["task", "ls", "-q"]).stdout;
        for t in tasks.lines() {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", t]);
            let _ = self.ctr(&["task", "delete", "--force", t]);
        }
        for c in self.ctr(&["container", "ls", "-q"]).stdout.lines() {
            let _ = self.ctr(&["container", "delete", c]);
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // The shim's per-namespace runtime root, empty once every container is deleted.
        let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(&self.namespace));
        // ctr names each container's cgroup /<namespace>/<id>; the runtime (runc too)
        // removes the container's own directory, the namespace's parent stays.
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                let _ = std::fs::remove_dir(h.path().join(&self.namespace));
            }
        }
        crate::host::unmount_under(self.dir.path());
    }
}

//! A private dockerd (Debian's docker.io) for client tests: data root, exec root, pid file
//! and socket in a temp directory, no bridge or iptables (loopback-only machine), vfs
//! storage, and the runtime under test registered as `under-test`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::container::{capture, Outcome};

pub const IMAGE: &str = "localhost/spec-busybox:latest";
pub const RUNTIME_NAME: &str = "under-test";

pub struct Dockerd {
    dir: TempDir,
    daemon: Child,
}

impl Dockerd {
    /// Starts dockerd with `runtime` registered and loads the busybox image; None only when
    /// dockerd is not installed outside CI (recorded as not run, `not_run::require_tool`).
    pub fn start(runtime: &Path) -> Option<Self> {
        if !crate::not_run::require_tool("dockerd", "docker.io")
            || !crate::not_run::require_tool("docker", "docker.io")
        {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("spec-docker-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let config = serde_json::json!({
            "data-root": d.join("data"),
            "exec-root": d.join("exec"),
            "pidfile": d.join("docker.pid"),
            "hosts": [format!("unix://{}", d.join("docker.sock").display())],
            "bridge": "none",
            "iptables": false,
            "ip6tables": false,
            "storage-driver": "vfs",
            "runtimes": {RUNTIME_NAME: {"path": runtime}},
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 1024, "Soft": 1024}}
        });
        std::fs::write(d.join("daemon.json"), config.to_string()).expect("daemon.json");
        let log = std::fs::File::create(d.join("dockerd.log")).expect("log");
        let daemon = Command::new("dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let dk = Self { dir, daemon };
        let deadline = Instant::now() + Duration::from_secs(30);
        while dk.docker(&["version"]).code != 0 {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up: {}",
                dk.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let archive = crate::containerd::busybox_docker_archive(dk.dir.path());
        dk.docker(&["load", "-q", "-i", &archive.to_string_lossy()])
            .ok();
        Some(dk)
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// `docker -H … ARGS…`, output captured through files.
    pub fn docker(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new("/usr/bin/docker");
        cmd.arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null());
        capture(cmd)
    }

    /// Runs docker with a terminal (for `-t`).
    pub fn docker_with_tty(&self, args: &[&str]) -> Outcome {
        let host = self.host();
        crate::host::in_terminal(&[&["/usr/bin/docker", "-H", &host][..], args].concat(), &[])
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = self.docker(&["rm", "-f", "-v", "dk-d"]);
        // SIGTERM lets dockerd stop the containerd it manages.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        crate::host::unmount_under(self.dir.path());
    }
}

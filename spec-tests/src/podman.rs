//! Podman 4.3 + conmon (Debian) with its storage, run root and configuration in a temp
//! directory, driving a chosen runtime with `--runtime`. The image is the offline busybox
//! archive the containerd harness builds.

use std::path::Path;
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::container::{capture, Outcome};

pub const IMAGE: &str = "localhost/spec-busybox:latest";

pub struct Podman {
    dir: TempDir,
    runtime: String,
}

impl Podman {
    /// Prepares the private configuration and loads the image; None only when podman is
    /// not installed outside CI (recorded as not run, `not_run::require_tool`).
    pub fn new(runtime: &Path) -> Option<Self> {
        if !crate::not_run::require_tool("podman", "podman") {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("spec-podman-")
            .tempdir()
            .expect("tempdir");
        // This host's hard limits (nofile 20000) are below podman's defaults, and there is
        // no network to configure: conmon and the runtime must fit inside both.
        let conf = format!(
            "[containers]\nnetns = \"none\"\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             log_driver = \"k8s-file\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{}\"\nruntime_supports_json = [\"runtime\", \"runc\", \"crun\"]\n",
            dir.path().join("events.log").display()
        );
        std::fs::write(dir.path().join("containers.conf"), conf).expect("containers.conf");
        let pm = Self {
            dir,
            runtime: runtime.to_string_lossy().into_owned(),
        };
        let archive = crate::containerd::busybox_docker_archive(pm.dir.path());
        pm.podman(&["load", "-q", "-i", &archive.to_string_lossy()])
            .ok();
        Some(pm)
    }

    fn base(&self) -> Vec<String> {
        let d = self.dir.path();
        vec![
            "--root".into(),
            d.join("storage").display().to_string(),
            "--runroot".into(),
            d.join("run").display().to_string(),
            "--tmpdir".into(),
            d.join("tmp").display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
            "--runtime".into(),
            self.runtime.clone(),
        ]
    }

    /// `podman GLOBALS ARGS…`, output captured through files.
    pub fn podman(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .args(self.base())
            .args(args)
            .stdin(Stdio::null());
        capture(cmd)
    }

    /// Runs podman with a terminal (for `-t`).
    pub fn podman_with_tty(&self, args: &[&str]) -> Outcome {
        let base = self.base();
        let mut argv: Vec<&str> = vec!["podman"];
        argv.extend(base.iter().map(String::as_str));
        argv.extend_from_slice(args);
        let conf = self.dir.path().join("containers.conf");
        crate::host::in_terminal(&argv, &[("CONTAINERS_CONF", conf.as_path())])
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        crate::host::unmount_under(self.dir.path());
    }
}

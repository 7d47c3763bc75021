//! Driving the runtime under test: every test gets its own state root (so tests run in
//! parallel and nothing leaks into /run/runtime) and guards that force-delete its
//! containers on drop, even when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::bins;

/// The runtime binary with a private `--root`.
pub struct Runtime {
    root: TempDir,
    bin: PathBuf,
}

/// A finished command: exit code and both streams as text.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics with both streams unless the command succeeded.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        self
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Self {
        Self::with_bin(bins::runtime())
    }

    pub fn with_bin(bin: PathBuf) -> Self {
        let root = tempfile::Builder::new()
            .prefix("spec-root-")
            .tempdir()
            .expect("state root tempdir");
        Self { root, bin }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A command for the runtime with `--root` set; the caller adds the rest.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(self.root.path());
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `runtime --root R ARGS...` to completion. Output is captured through files,
    /// not pipes: a detached container inherits the runtime's stdio and would otherwise
    /// hold the pipe open long after the runtime has exited.
    pub fn exec(&self, args: &[&str]) -> Outcome {
        let mut cmd = self.command();
        cmd.args(args);
        capture(cmd)
    }

    /// Claims an id for a test: the guard force-deletes the container on drop.
    pub fn guard(&self, id: &str) -> ContainerGuard<'_> {
        ContainerGuard {
            runtime: self,
            id: unique_id(id),
        }
    }

    /// `state ID` parsed, or None when the runtime says it does not exist.
    pub fn state(&self, id: &str) -> Option<Value> {
        let out = self.exec(&["state", id]);
        if out.code != 0 {
            return None;
        }
        Some(
            serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("state JSON: {e}: {out:?}")),
        )
    }

    /// Polls `state` until the status is `want` or the timeout passes.
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let state = self.state(id);
            if let Some(s) = &state {
                if s["status"] == want {
                    return s.clone();
                }
            }
            if start.elapsed() > timeout {
                panic!("container {id} did not reach {want}: last state {state:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `run --bundle B ID` with captured output.
    pub fn run(&self, bundle: &Path, id: &str) -> Outcome {
        self.exec(&["run", "--bundle", &bundle.to_string_lossy(), id])
    }

    /// The "nothing left" checker for `id` under this runtime's state root
    /// (`leftovers::Probe`: processes, cgroups, systemd units, mounts, state).
    pub fn nothing_left_of(&self, id: &str) -> crate::leftovers::Probe {
        crate::leftovers::Probe::new(id)
            .state_root(self.root())
            .mounts_naming(self.root())
    }

    /// `create --bundle B ID`.
    pub fn create(&self, bundle: &Path, id: &str) -> Outcome {
        self.exec(&["create", "--bundle", &bundle.to_string_lossy(), id])
    }
}

/// Runs a command with stdout and stderr sent to temporary files, then reads them.
pub fn capture(mut cmd: Command) -> Outcome {
    use std::io::{Read, Seek};
    use std::os::unix::process::ExitStatusExt;
    let mut out = tempfile::tempfile().expect("stdout file");
    let mut err = tempfile::tempfile().expect("stderr file");
    cmd.stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"));
    let status = cmd.status().expect("spawn");
    let read = |f: &mut std::fs::File| {
        let mut s = String::new();
        f.rewind().expect("rewind");
        let _ = f.read_to_string(&mut s);
        s
    };
    Outcome {
        code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        stdout: read(&mut out),
        stderr: read(&mut err),
    }
}

/// An id unique to this call in this test process, so neither parallel test binaries nor
/// parallel tests of one binary collide.
pub fn unique_id(name: &str) -> String {
    // Unique per call too: tests of one binary run in parallel, and two containers of the
    // same id share a default cgroup (`/<id>`), so deleting one would kill the other.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("st-{}-{}-{n}", name, std::process::id())
}

/// Force-deletes its container when dropped.
pub struct ContainerGuard<'a> {
    runtime: &'a Runtime,
    pub id: String,
}

impl ContainerGuard<'_> {
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        let _ = self.runtime.exec(&["delete", "--force", &self.id]);
    }
}

/// Directories of a container's cgroup in every mounted hierarchy that has one, at any
/// depth: on cgroup v2 a container's cgroup is usually below a slice
/// (`/sys/fs/cgroup/system.slice/<id>`), not one level below a v1 controller's mount.
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    crate::cgroups::dirs_containing(name)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|f| f == name))
        .collect()
}

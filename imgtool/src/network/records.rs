//! What the hooks remember about each attached container, under
//! `/run/imgtool/networks` (a tmpfs on usual hosts, so a reboot, which also drops every
//! veth, bridge and iptables rule, forgets it too):
//!
//! - `containers/<key>.json`: one [`Record`] per attachment, written before the first
//!   plugin runs and after each one, removed only once DEL has succeeded. It holds all
//!   that DEL needs (the plugin list, the runtime config, the cached ADD result), so a
//!   teardown never depends on the bundle or the config file still being there.
//! - `containers/<key>.lock`: held (flock) while that attachment is being set up or torn
//!   down, so a sweep never tears down what a hook is still working on.
//! - `ipam/`: the host-local plugin's leases.
//! - `<network>.lock` and `<network>.rules`: the network-wide setup (see `firewall`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cni::{Attachment, NetworkList};

/// The state root the hooks use as root.
pub const STATE_DIR: &str = "/run/imgtool/networks";

/// A process, told apart from a later one reusing its pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    /// Field 22 of /proc/PID/stat (clock ticks since boot).
    pub start_time: u64,
}

/// (state, start time) from /proc/PID/stat.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields after it are
    // counted from its last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

impl ProcessId {
    /// The live process `pid`, if there is one.
    pub fn of(pid: i32) -> Option<Self> {
        let (state, start_time) = stat(pid)?;
        (state != 'Z' && state != 'X').then_some(Self { pid, start_time })
    }

    /// Whether this very process still runs (not exited, not a zombie).
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some((s, t)) if t == self.start_time && s != 'Z' && s != 'X')
    }
}

/// One container's attachment to a network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The runtime's container id and bundle, as the hook's state said.
    pub id: String,
    pub bundle: PathBuf,
    pub network: String,
    pub bridge: String,
    /// The container's init: while it lives, the attachment is in use.
    pub init: ProcessId,
    /// The runtime that ran the createRuntime hook. If it dies while the hook works, the
    /// container will never start and the hook undoes what it made.
    #[serde(default)]
    pub runtime: Option<ProcessId>,
    pub list: NetworkList,
    /// Where its plugins were found (DEL runs the same ones).
    pub cni_path: Vec<PathBuf>,
    pub attachment: Attachment,
    /// How many plugins of `list` have completed ADD.
    pub added: usize,
    /// The result of the last completed ADD (the `prevResult` DEL gets).
    pub result: Option<Value>,
}

/// The directory of records and locks.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

impl Default for StateDir {
    fn default() -> Self {
        Self {
            root: PathBuf::from(STATE_DIR),
        }
    }
}

fn with_path(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {e}", path.display()))
}

/// Takes an flock on `path` (created if absent); with `wait` false, None when someone
/// else holds it. The lock is on the file the path names when we hold it: a file
/// unlinked while we waited is opened again.
fn lock_file(path: &Path, wait: bool) -> io::Result<Option<Flock<File>>> {
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| with_path(path, e))?;
        let arg = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        let lock = match Flock::lock(file, arg) {
            Ok(l) => l,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if !wait => return Ok(None),
            Err((_, e)) => return Err(with_path(path, format!("cannot lock: {e}"))),
        };
        let held = lock.metadata().map_err(|e| with_path(path, e))?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(Some(lock)),
            _ => continue,
        }
    }
}

impl StateDir {
    fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// The host-local plugin's `dataDir`.
    pub fn ipam_dir(&self) -> PathBuf {
        self.root.join("ipam")
    }

    pub fn ensure(&self) -> io::Result<()> {
        let dir = self.containers();
        fs::create_dir_all(&dir).map_err(|e| with_path(&dir, e))
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.containers().join(format!("{key}.json"))
    }

    /// Locks one attachment (waiting, or not when `wait` is false).
    pub fn lock_attachment(&self, key: &str, wait: bool) -> io::Result<Option<Flock<File>>> {
        lock_file(&self.containers().join(format!("{key}.lock")), wait)
    }

    /// Held shared by every hook for its whole run, so that a sweep can wait for the
    /// hooks already running (an orphaned hook, whose runtime was killed, is undoing its
    /// work). Shared: hooks never wait for each other on it.
    pub fn hook_running(&self) -> io::Result<Flock<File>> {
        let path = self.root.join("hooks.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| with_path(&path, e))?;
        Flock::lock(file, FlockArg::LockShared)
            .map_err(|(_, e)| with_path(&path, format!("cannot lock: {e}")))
    }

    /// Waits (up to `timeout`) until no hook that was running when called still runs.
    pub fn wait_for_running_hooks(&self, timeout: std::time::Duration) -> bool {
        let path = self.root.join("hooks.lock");
        let Ok(file) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        else {
            return true;
        };
        let deadline = std::time::Instant::now() + timeout;
        let mut file = file;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(_released_on_drop) => return true,
                Err((f, _)) if std::time::Instant::now() < deadline => {
                    file = f;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
    }

    /// Locks the network-wide setup of `network`.
    pub fn lock_network(&self, network: &str) -> io::Result<Flock<File>> {
        let path = self.root.join(format!("{network}.lock"));
        lock_file(&path, true).map(|l| l.expect("a waiting lock is always taken"))
    }

    /// The marker saying the network-wide rules of `network` are in place.
    pub fn rules_marker(&self, network: &str) -> PathBuf {
        self.root.join(format!("{network}.rules"))
    }

    /// Writes `record` atomically (readers see the old or the new one), without fsync:
    /// the state dir does not outlive a reboot, and neither do the veths and rules a
    /// record describes.
    pub fn write(&self, key: &str, record: &Record) -> io::Result<()> {
        let path = self.record_path(key);
        let text = serde_json::to_vec_pretty(record).map_err(|e| with_path(&path, e))?;
        let tmp = self.containers().join(format!(".{key}.tmp"));
        fs::write(&tmp, &text).map_err(|e| with_path(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| with_path(&path, e))
    }

    pub fn read(&self, key: &str) -> io::Result<Option<Record>> {
        let path = self.record_path(key);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| with_path(&path, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(with_path(&path, e)),
        }
    }

    /// Forgets an attachment (its lock file too; call with the lock held).
    pub fn remove(&self, key: &str) -> io::Result<()> {
        let path = self.record_path(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(with_path(&path, e)),
        }
        let _ = fs::remove_file(self.containers().join(format!("{key}.lock")));
        Ok(())
    }

    /// Removes the lock file of `key` if it has no record (call with the lock held), so
    /// that a sweep or poststop that found nothing to do leaves nothing behind.
    pub fn drop_lock_if_unused(&self, key: &str) {
        if !self.record_path(key).exists() {
            let _ = fs::remove_file(self.containers().join(format!("{key}.lock")));
        }
    }

    /// The keys of every record.
    pub fn keys(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.containers()) else {
            return vec![];
        };
        let mut keys: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(str::to_string)
            })
            .collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::cni::CNI_VERSION;

    fn record(init: ProcessId) -> Record {
        Record {
            id: "c1".into(),
            bundle: "/b".into(),
            network: "n".into(),
            bridge: "br".into(),
            init,
            runtime: None,
            list: NetworkList {
                name: "n".into(),
                cni_version: CNI_VERSION.into(),
                plugins: vec![],
            },
            cni_path: vec![],
            attachment: Attachment {
                container_id: "k".into(),
                ifname: "eth0".into(),
                runtime_config: Default::default(),
            },
            added: 0,
            result: None,
        }
    }

    #[test]
    fn our_own_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let reused = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!reused.is_alive(), "a reused pid is another process");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId {
            pid: child.id() as i32,
            start_time: 0,
        };
        child.wait().unwrap();
        assert!(!id.is_alive());
    }

    #[test]
    fn records_round_trip_and_are_removed_with_their_lock() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir {
            root: dir.path().to_path_buf(),
        };
        s.ensure().unwrap();
        let me = ProcessId::of(std::process::id() as i32).unwrap();
        let lock = s.lock_attachment("k1", true).unwrap().unwrap();
        s.write("k1", &record(me)).unwrap();
        assert_eq!(s.keys(), ["k1"]);
        assert_eq!(s.read("k1").unwrap().unwrap().init, me);
        // Held: a sweep's non-blocking attempt gets nothing.
        assert!(s.lock_attachment("k1", false).unwrap().is_none());
        s.remove("k1").unwrap();
        drop(lock);
        assert!(s.keys().is_empty());
        // A late locker (a sweep that listed k1 before it went) finds no record and
        // leaves no lock file behind.
        let late = s.lock_attachment("k1", false).unwrap().unwrap();
        assert!(s.read("k1").unwrap().is_none());
        s.drop_lock_if_unused("k1");
        drop(late);
        assert!(s.read("k1").unwrap().is_none());
        assert_eq!(fs::read_dir(s.containers()).unwrap().count(), 0);
    }
}

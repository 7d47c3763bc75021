//! Busybox bundles for runtime tests: a root filesystem from Debian's `busybox-static`
//! (applet links relative, so they resolve inside any root) and a config.json shaped like
//! `runc spec`'s, edited per test through JSON pointers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use tempfile::TempDir;

/// Where Debian's busybox-static installs its binary.
const BUSYBOX: &str = "/bin/busybox";

/// A prepared root filesystem, built once (shared by the test processes, published by an
/// atomic rename) and copied per bundle.
fn template_rootfs() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let done = std::env::temp_dir().join("spec-tests-busybox-rootfs-v1");
        if done.join("bin/busybox").exists() {
            return done;
        }
        let dir = std::env::temp_dir().join(format!("spec-tests-rootfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("create template rootfs");
        std::fs::copy(BUSYBOX, bin.join("busybox"))
            .expect("copy /bin/busybox (install busybox-static)");
        let list = Command::new(BUSYBOX).arg("--list").output().expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
            }
        }
        for d in ["proc", "sys", "dev", "tmp", "etc", "root", "home/user", "mnt", "var"] {
            std::fs::create_dir_all(dir.join(d)).expect("create rootfs dirs");
        }
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .expect("write passwd");
        std::fs::write(
            dir.join("etc/group"),
            "root:x:0:\nuser:x:1000:\nextra:x:2000:user\nnogroup:x:65534:\n",
        )
        .expect("write group");
        let _ = Command::new("chmod").args(["1777", &dir.join("tmp").to_string_lossy()]).status();
        // Another test process may have published first; then ours is dropped.
        if std::fs::rename(&dir, &done).is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        done
    })
}

/// The default config, as `runc spec` writes it, minus the terminal.
pub fn default_config() -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// A bundle directory (removed on drop) with its config kept in memory until `write`.
pub struct Bundle {
    dir: TempDir,
    pub config: Value,
}

impl Bundle {
    /// A busybox bundle running `sh` with runc's default config.
    pub fn busybox() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("spec-bundle-")
            .tempdir()
            .expect("bundle tempdir");
        let status = Command::new("cp")
            .arg("-a")
            .arg(template_rootfs())
            .arg(dir.path().join("rootfs"))
            .status()
            .expect("cp rootfs");
        assert!(status.success(), "copying the template rootfs failed");
        let bundle = Self {
            dir,
            config: default_config(),
        };
        bundle.write();
        bundle
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Sets the process arguments (and writes config.json).
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// Runs a shell script as the container process.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Sets the value at a JSON pointer, creating objects on the way (and writes config.json).
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Self {
        let mut cur = &mut self.config;
        let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i == parts.len() - 1;
            if last {
                cur[*part] = value;
                break;
            }
            if cur.get(*part).is_none() {
                cur[*part] = json!({});
            }
            cur = cur.get_mut(*part).expect("just inserted");
        }
        self.write();
        self
    }

    /// Appends a value to the array at a JSON pointer (and writes config.json).
    pub fn push(&mut self, pointer: &str, value: Value) -> &mut Self {
        let arr = self
            .config
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("no array at {pointer}"));
        arr.as_array_mut().expect("an array").push(value);
        self.write();
        self
    }

    /// Removes the value at a JSON pointer, if present (and writes config.json).
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a parent");
        if let Some(obj) = self
            .config
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
        {
            obj.remove(key);
        }
        self.write();
        self
    }

    /// A directory of the bundle's, bind-mounted read-write at `/marks` in the container
    /// (whose root is read-only): where a container writes readiness marks and results for
    /// the test to wait for (`spec_tests::wait::for_line`). Returns the host side.
    pub fn marks(&mut self) -> PathBuf {
        let host = self.dir.path().join("marks");
        std::fs::create_dir_all(&host).expect("marks dir");
        std::fs::create_dir_all(self.rootfs().join("marks")).expect("marks mount point");
        if !self.config["mounts"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["destination"] == "/marks"))
        {
            self.push(
                "/mounts",
                json!({"destination": "/marks", "type": "bind",
                       "source": host, "options": ["rbind", "rw"]}),
            );
        }
        host
    }

    /// Writes the in-memory config to config.json.
    pub fn write(&self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("serialize config"),
        )
        .expect("write config.json");
    }
}

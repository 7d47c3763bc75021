//! A test's own bridge network for imgtool bundles: a unique network name, bridge and
//! /24 (from 10.231.0.0/16, never docker's 172.17/16 or podman's 10.88/16), claimed
//! through `/run/spec-tests-net/N` so parallel test processes (and other worktrees' test
//! runs) never share one, and a networks.json naming it. `leftovers()` lists what of its
//! containers is still on the host (bridge ports, IPAM leases, hook records, iptables
//! rules); on drop everything of the network is removed, even after a failed test: the
//! bridge, its rules, its leases and state files.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// Where the hooks keep their state (imgtool's `network::records::STATE_DIR`).
pub const STATE_DIR: &str = "/run/imgtool/networks";
const CLAIMS: &str = "/run/spec-tests-net";

pub struct TestNetwork {
    index: u8,
    /// The network's name in networks.json.
    pub name: String,
    pub bridge: String,
    /// `10.231.N` (the /24's first three octets).
    pub prefix: String,
    dir: TempDir,
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Claims a free index: a file created with O_EXCL holding our pid; a claim whose
/// process is gone is taken over.
fn claim() -> u8 {
    std::fs::create_dir_all(CLAIMS).expect("claims dir");
    for i in 1..=250u8 {
        let path = Path::new(CLAIMS).join(i.to_string());
        let open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
        };
        let file = match open() {
            Ok(f) => Some(f),
            Err(_) => {
                let owner: Option<i32> = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                match owner {
                    Some(pid) if !pid_alive(pid) => {
                        let _ = std::fs::remove_file(&path);
                        open().ok()
                    }
                    _ => None,
                }
            }
        };
        if let Some(mut f) = file {
            write!(f, "{}", std::process::id()).expect("write claim");
            return i;
        }
    }
    panic!("no free test network index in {CLAIMS}");
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Default for TestNetwork {
    fn default() -> Self {
        Self::new()
    }
}

impl TestNetwork {
    pub fn new() -> Self {
        let index = claim();
        let net = Self {
            index,
            name: format!("spec-net-{index}"),
            bridge: format!("imgtst{index}"),
            prefix: format!("10.231.{index}"),
            dir: tempfile::Builder::new()
                .prefix("spec-net-")
                .tempdir()
                .expect("tempdir"),
        };
        // A claim taken over from a dead test process may have left its network.
        net.remove_network();
        let config = serde_json::json!({"networks": {net.name.clone(): {
            "bridge": net.bridge, "subnet": format!("{}.0/24", net.prefix)}}});
        std::fs::write(net.config(), config.to_string()).expect("networks.json");
        net
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("networks.json")
    }

    /// `imgtool bundle` options putting a bundle on this network.
    pub fn bundle_args(&self) -> Vec<String> {
        vec![
            "--network".into(),
            format!("bridge:{}", self.name),
            "--network-config".into(),
            self.config().display().to_string(),
        ]
    }

    /// The network-wide rules' comment (imgtool's `firewall::comment`).
    fn comment(&self) -> String {
        format!("imgtool network {}", self.name)
    }

    fn ipam_dir(&self) -> PathBuf {
        Path::new(STATE_DIR).join("ipam").join(&self.name)
    }

    /// iptables rules (as `iptables-save` lines with their table) that belong to
    /// containers of this network: any mentioning its subnet or its CNI name, except the
    /// network-wide ones.
    fn container_rules(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let cni_name = format!("name: \\\"{}\\\"", self.name);
        for table in ["nat", "filter"] {
            for line in sh(&format!("iptables-save -t {table}")).lines() {
                if !line.starts_with("-A ") || line.contains(&self.comment()) {
                    continue;
                }
                if line.contains(&format!("{}.", self.prefix)) || line.contains(&cni_name) {
                    out.push((table.to_string(), line.to_string()));
                }
            }
        }
        out
    }

    /// Everything of this network's containers still on the host; empty when every
    /// container was torn down completely.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        let brif = Path::new("/sys/class/net").join(&self.bridge).join("brif");
        for e in std::fs::read_dir(brif).into_iter().flatten().flatten() {
            out.push(format!("bridge port {}", e.file_name().to_string_lossy()));
        }
        for e in std::fs::read_dir(self.ipam_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if n != "lock" && !n.starts_with("last_reserved_ip") {
                out.push(format!("IPAM lease {n}"));
            }
        }
        let records = Path::new(STATE_DIR).join("containers");
        for e in std::fs::read_dir(records).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if text.contains(&format!("\"network\": \"{}\"", self.name)) {
                out.push(format!("hook record {}", e.path().display()));
            }
        }
        for (table, rule) in self.container_rules() {
            out.push(format!("iptables -t {table}: {rule}"));
        }
        out
    }

    /// Whether the network-wide rules exist (what `remove_network` must take away).
    pub fn has_network_rules(&self) -> bool {
        sh("iptables-save").contains(&self.comment())
    }

    /// Removes the network: container rules (and the per-container chains they were in),
    /// the network-wide rules, the bridge, the leases and the hooks' files for it.
    fn remove_network(&self) {
        let mut chains = Vec::new();
        let mut rules = self.container_rules();
        for table in ["nat", "filter"] {
            for line in sh(&format!("iptables-save -t {table}")).lines() {
                if line.starts_with("-A ") && line.contains(&self.comment()) {
                    rules.push((table.to_string(), line.to_string()));
                }
            }
        }
        for (table, rule) in rules {
            let chain = rule
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            if chain.starts_with("CNI-DN-") {
                chains.push((table.clone(), chain));
            }
            let _ = Command::new("sh")
                .args(["-c", &format!("iptables -w -t {table} -D {}", &rule[3..])])
                .output();
        }
        for (table, chain) in chains {
            let _ = Command::new("iptables")
                .args(["-w", "-t", &table, "-F", &chain])
                .output();
            let _ = Command::new("iptables")
                .args(["-w", "-t", &table, "-X", &chain])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
        let _ = std::fs::remove_dir_all(self.ipam_dir());
        for suffix in ["lock", "rules"] {
            let _ =
                std::fs::remove_file(Path::new(STATE_DIR).join(format!("{}.{suffix}", self.name)));
        }
        let records = Path::new(STATE_DIR).join("containers");
        for e in std::fs::read_dir(records).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if text.contains(&format!("\"network\": \"{}\"", self.name)) {
                let _ = std::fs::remove_file(e.path());
                let _ = std::fs::remove_file(e.path().with_extension("lock"));
            }
        }
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        self.remove_network();
        let _ = std::fs::remove_file(Path::new(CLAIMS).join(self.index.to_string()));
    }
}

/// The syscall probe (`src/probes/syscalls.c`) built static into `dir`, so it runs in a
/// busybox rootfs: `probe NAME...` prints `NAME ERRNO` per syscall (0: it succeeded).
pub fn build_syscall_probe(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/probes/syscalls.c");
    let out = dir.join("probe");
    let status = Command::new("cc")
        .args(["-static", "-O", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("cc (gcc and libc6-dev build the probe)");
    assert!(status.success(), "cc -static {}", src.display());
    out
}

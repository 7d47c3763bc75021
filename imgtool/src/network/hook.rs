//! The OCI hooks a bridge-network bundle carries (`imgtool network-hook`):
//!
//! - `createRuntime` ([`create`]): the runtime has made the container's namespaces and
//!   gives us its state (id, init pid, bundle) on stdin. We attach the init's network
//!   namespace to the network through the CNI plugins (bridge with host-local IPAM, then
//!   portmap for published ports), then write the container's address into its
//!   /etc/hosts. `lo` is the runtime's to bring up, as runc and crun do for every new
//!   network namespace: the loopback plugin would cost a process per container for
//!   nothing.
//! - `poststop` ([`poststop`]): the container is gone; its attachment is torn down from
//!   the record, and the records of other containers that died without a poststop are
//!   swept.
//!
//! Every hook run also sweeps ([`sweep`]): an attachment whose container init no longer
//! runs (the runtime was killed during create, before it wrote any state, so no
//! `delete` will ever run its poststop), or whose runtime died while the hook was making
//! it, is torn down then. A createRuntime hook that outlives its runtime undoes its own
//! work. So after `kill -9` of the runtime at any point, what it attached is removed by
//! the hook itself, by `delete -f` when the runtime got far enough to keep state, and
//! otherwise by the next hook of any container (or `imgtool network-hook sweep`).

use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::cni::{plugin_config, Attachment, CniError, NetworkList, Op, Plugins, CNI_VERSION};
use super::config::{ConfigError, Network, NetworksConfig};
use super::etc::{self, HostEntry};
use super::firewall::{self, FirewallError};
use super::ports::PortMapping;
use super::records::{ProcessId, Record, StateDir};
use super::TOOLS_PATH;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("reading the container state on stdin: {0}")]
    State(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Cni(#[from] CniError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error("{0}")]
    Io(String),
}

fn io(what: &str, e: impl std::fmt::Display) -> HookError {
    HookError::Io(format!("{what}: {e}"))
}

/// The runtime-spec state a runtime writes on a hook's stdin.
#[derive(Debug, Clone, Deserialize)]
pub struct HookState {
    pub id: String,
    #[serde(default)]
    pub pid: Option<i32>,
    pub bundle: PathBuf,
}

impl HookState {
    pub fn parse(bytes: &[u8]) -> Result<Self, HookError> {
        serde_json::from_slice(bytes).map_err(|e| HookError::State(e.to_string()))
    }
}

/// What the `createRuntime` hook of a bundle asks for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The networks.json the bundle was made with.
    pub config: PathBuf,
    pub network: String,
    pub ports: Vec<PortMapping>,
    /// The bundle's hosts file (bind-mounted on /etc/hosts), rewritten with the address.
    pub hosts_file: Option<PathBuf>,
    pub hostname: String,
    pub extra_hosts: Vec<HostEntry>,
}

/// `CNI_CONTAINERID` of a container: its runtime id and init pid, hashed into the
/// characters CNI allows whatever the id holds. Two containers of one id (under two
/// runtime roots) never share an init pid while both run. The bundle is not part of it:
/// runtimes disagree on the bundle path they show hooks (ours shows createRuntime a
/// private copy), while id and pid are the same in every hook's state.
pub fn attachment_key(id: &str, pid: i32) -> String {
    let mut h = Sha256::new();
    h.update(id.as_bytes());
    h.update([0]);
    h.update(pid.to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The plugin list of a bridge network: bridge + host-local (IPv4, default route through
/// the gateway), then portmap when ports are published.
pub fn network_list(net: &Network, state: &StateDir, with_ports: bool) -> NetworkList {
    let mut plugins = vec![json!({
        "type": "bridge",
        "bridge": net.bridge,
        "isGateway": true,
        "ipMasq": false,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "dataDir": state.ipam_dir(),
            "ranges": [[{"subnet": net.subnet.to_string(), "gateway": net.gateway.to_string()}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        },
    })];
    if with_ports {
        plugins.push(json!({
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "snat": true,
        }));
    }
    NetworkList {
        name: net.name.clone(),
        cni_version: CNI_VERSION.to_string(),
        plugins,
    }
}

/// The container's IPv4 address in a bridge result.
fn address(result: &Value) -> Option<Ipv4Addr> {
    result["ips"].as_array()?.iter().find_map(|ip| {
        ip["address"]
            .as_str()?
            .split('/')
            .next()?
            .parse::<Ipv4Addr>()
            .ok()
    })
}

/// The host side of the veth in a bridge result: (name, mac).
fn host_veth(result: &Value) -> Option<(String, String)> {
    let bridge_index = 0;
    result["interfaces"]
        .as_array()?
        .iter()
        .enumerate()
        .find(|(i, iface)| *i != bridge_index && iface.get("sandbox").is_none())
        .and_then(|(_, iface)| {
            Some((
                iface["name"].as_str()?.to_string(),
                iface["mac"].as_str()?.to_string(),
            ))
        })
}

/// Where the hooks keep their state.
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub state: StateDir,
}

impl Host {
    /// Undoes an attachment: DEL through its plugins in reverse (each DEL tolerates what
    /// was never made), then makes sure the host side of its veth is gone.
    fn teardown(&self, record: &Record, netns: Option<&Path>) -> Result<(), HookError> {
        let plugins = Plugins {
            path: record.cni_path.clone(),
        };
        let started = (record.added + 1).min(record.list.plugins.len());
        for i in (0..started).rev() {
            let conf = plugin_config(&record.list, i, record.result.as_ref(), &record.attachment);
            plugins.exec(Op::Del, &conf, &record.attachment, netns)?;
        }
        if let Some((name, mac)) = record.result.as_ref().and_then(host_veth) {
            remove_veth(&name, &mac)?;
        }
        Ok(())
    }
}

/// The host side of a veth disappears with the container's network namespace, which the
/// kernel frees a few milliseconds after the last process in it exits. If something
/// still holds the namespace after a second, the veth is deleted here.
fn remove_veth(name: &str, mac: &str) -> Result<(), HookError> {
    let ours = || {
        std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("address"))
            .is_ok_and(|a| a.trim().eq_ignore_ascii_case(mac))
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    while ours() {
        if Instant::now() > deadline {
            let out = std::process::Command::new("ip")
                .env_clear()
                .env("PATH", TOOLS_PATH)
                .args(["link", "delete", name])
                .output()
                .map_err(|e| io("ip link delete", e))?;
            if !out.status.success() && ours() {
                return Err(io(
                    &format!("ip link delete {name}"),
                    String::from_utf8_lossy(&out.stderr).trim(),
                ));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Writes `text` into the existing file `path` in place: the file is bind-mounted into
/// the container, so replacing it (a rename) would not show there.
fn rewrite_in_place(path: &Path, text: &str) -> Result<(), HookError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| io(&path.display().to_string(), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| io(&path.display().to_string(), e))
}

/// The `createRuntime` hook: attaches the container to its network.
///
/// The attachment's lock is taken and its record written before anything is made, so a
/// sweep or poststop never misses an attachment in progress. If the runtime that ran us
/// dies meanwhile (`kill -9` during create), the container will never start: what was
/// made is undone and the hook fails.
pub fn create(host: &Host, state: &HookState, req: &CreateRequest) -> Result<(), HookError> {
    // Adopted by pid 1: the runtime that ran us is already dead, the container will never
    // start. (Under a subreaper such as containerd's shim, the shim cleans up.)
    let parent = nix::unistd::getppid().as_raw();
    if parent == 1 {
        return Err(io("runtime", "it died before its createRuntime hook ran"));
    }
    let runtime = ProcessId::of(parent);
    let config = NetworksConfig::load(&req.config)?;
    let net = config.network(&req.network)?.clone();
    let pid = state
        .pid
        .ok_or_else(|| HookError::State("no pid: is this a createRuntime hook?".into()))?;
    let (init, ns) = open_netns(pid)?;
    let netns = PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        ns.as_raw_fd()
    ));

    host.state
        .ensure()
        .map_err(|e| io("network state directory", e))?;
    let key = attachment_key(&state.id, pid);
    let _lock = host
        .state
        .lock_attachment(&key, true)
        .map_err(|e| io("lock", e))?;
    // A record under this key belongs to an earlier run of the same container whose
    // poststop never ran: undo it first.
    if let Some(old) = host.state.read(&key).map_err(|e| io("record", e))? {
        host.teardown(&old, None)?;
        host.state.remove(&key).map_err(|e| io("record", e))?;
    }
    let mut runtime_config = serde_json::Map::new();
    if !req.ports.is_empty() {
        runtime_config.insert("portMappings".into(), json!(req.ports));
    }
    let mut record = Record {
        id: state.id.clone(),
        bundle: state.bundle.clone(),
        network: net.name.clone(),
        bridge: net.bridge.clone(),
        init,
        runtime,
        list: network_list(&net, &host.state, !req.ports.is_empty()),
        cni_path: config.cni_path.clone(),
        attachment: Attachment {
            container_id: key.clone(),
            ifname: "eth0".into(),
            runtime_config,
        },
        added: 0,
        result: None,
    };
    host.state
        .write(&key, &record)
        .map_err(|e| io("record", e))?;
    match attach(host, &net, &mut record, &netns, req) {
        Ok(()) => {
            // Done: from now on the attachment lives as long as the container's init.
            record.runtime = None;
            host.state.write(&key, &record).map_err(|e| io("record", e))
        }
        Err(e) => {
            // Nothing stays attached to a container that will not start; a failed undo
            // keeps the record for the next sweep.
            if host.teardown(&record, Some(&netns)).is_ok() {
                let _ = host.state.remove(&key);
            }
            Err(e)
        }
    }
}

/// Opens the network namespace of the container init `pid`. Held open for the whole
/// setup, the namespace cannot go away under the plugins; checking the process again
/// after opening proves the namespace is the init's (not a later process's of that pid).
///
/// The namespace must be a new one, holding only `lo`: the host's (a config without a
/// network namespace) or another container's must never get an `eth0`, nor lose one
/// when a failed attach is undone.
fn open_netns(pid: i32) -> Result<(ProcessId, File), HookError> {
    let init =
        ProcessId::of(pid).ok_or_else(|| io("container init", format!("process {pid} is gone")))?;
    let ns = File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| io(&format!("/proc/{pid}/ns/net"), e))?;
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
        .map_err(|e| io(&format!("/proc/{pid}/net/dev"), e))?;
    if !init.is_alive() {
        return Err(io("container init", format!("process {pid} exited")));
    }
    let ours = std::fs::metadata("/proc/self/ns/net").map(|m| (m.dev(), m.ino()));
    let theirs = ns.metadata().map(|m| (m.dev(), m.ino()));
    if matches!((&ours, &theirs), (Ok(a), Ok(b)) if a == b) {
        return Err(io(
            "container network namespace",
            "it is the host's: a bridge network needs a network namespace in linux.namespaces",
        ));
    }
    let others: Vec<&str> = interfaces(&dev)
        .into_iter()
        .filter(|i| *i != "lo")
        .collect();
    if !others.is_empty() {
        return Err(io(
            "container network namespace",
            format!(
                "it already has {} (not a new namespace: shared with the host or another container?)",
                others.join(", ")
            ),
        ));
    }
    Ok((init, ns))
}

/// The interface names in a /proc/PID/net/dev listing.
fn interfaces(net_dev: &str) -> Vec<&str> {
    net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

/// Runs ADD through `record`'s plugins into `netns`, saving the record after each one,
/// then writes the address into the hosts file. Stops when the runtime that ran the hook
/// has died: the container will never start.
fn attach(
    host: &Host,
    net: &Network,
    record: &mut Record,
    netns: &Path,
    req: &CreateRequest,
) -> Result<(), HookError> {
    report_sweep(sweep(host));
    firewall::ensure(net, &host.state)?;
    let plugins = Plugins {
        path: record.cni_path.clone(),
    };
    let key = record.attachment.container_id.clone();
    for i in 0..record.list.plugins.len() {
        let conf = plugin_config(&record.list, i, record.result.as_ref(), &record.attachment);
        let result = plugins.exec(Op::Add, &conf, &record.attachment, Some(netns));
        // Whether it succeeded or not, DEL must now include this plugin.
        record.added = i + 1;
        record.result = result?.or(record.result.take());
        host.state
            .write(&key, record)
            .map_err(|e| io("record", e))?;
        if let Some(r) = record.runtime.filter(|r| !r.is_alive()) {
            return Err(io(
                "runtime",
                format!("process {} died during create", r.pid),
            ));
        }
    }
    let ip = record
        .result
        .as_ref()
        .and_then(address)
        .ok_or_else(|| io("bridge plugin", "its result has no IPv4 address"))?;
    if let Some(path) = &req.hosts_file {
        rewrite_in_place(path, &etc::hosts(&req.hostname, &req.extra_hosts, Some(ip)))?;
    }
    Ok(())
}

/// The `poststop` hook: detaches the container, then sweeps.
pub fn poststop(host: &Host, state: &HookState) -> Result<(), HookError> {
    // The record under the container's key; without a pid in the state, the records
    // of that id whose init is gone.
    let keys: Vec<String> = match state.pid.filter(|p| *p > 0) {
        Some(pid) => vec![attachment_key(&state.id, pid)],
        None => host
            .state
            .keys()
            .into_iter()
            .filter(|k| {
                matches!(host.state.read(k), Ok(Some(r)) if r.id == state.id && !r.init.is_alive())
            })
            .collect(),
    };
    let mut result = Ok(());
    for key in keys {
        if !matches!(host.state.read(&key), Ok(Some(_))) {
            continue;
        }
        let detached = (|| {
            let _lock = host
                .state
                .lock_attachment(&key, true)
                .map_err(|e| io("lock", e))?;
            match host.state.read(&key).map_err(|e| io("record", e))? {
                Some(record) => {
                    host.teardown(&record, None)?;
                    host.state.remove(&key).map_err(|e| io("record", e))?;
                }
                None => host.state.drop_lock_if_unused(&key),
            }
            Ok(())
        })();
        if detached.is_err() {
            result = detached;
        }
    }
    if host.state.root.exists() {
        report_sweep(sweep(host));
    }
    result
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    /// `network/id` of each attachment torn down.
    pub removed: Vec<String>,
    pub errors: Vec<String>,
}

/// How long a sweep waits for an orphaned hook (its runtime died) to undo its work.
const ORPHAN_WAIT: Duration = Duration::from_secs(10);

/// Whether an attachment is of no use any more: its container's init is gone, or the
/// runtime died while the hook was attaching it (the container will never start).
fn is_stale(record: &Record) -> bool {
    !record.init.is_alive() || record.runtime.is_some_and(|r| !r.is_alive())
}

/// Tears down every stale attachment ([`is_stale`]) that no live hook is working on. A
/// hook whose runtime died is undoing its own work: the sweep waits for it (up to
/// [`ORPHAN_WAIT`]). A failed teardown keeps its record, so the next sweep tries again.
pub fn sweep(host: &Host) -> Swept {
    let mut out = Swept::default();
    for key in host.state.keys() {
        let Ok(Some(record)) = host.state.read(&key) else {
            continue;
        };
        if !is_stale(&record) {
            continue;
        }
        let orphan = record.runtime.is_some_and(|r| !r.is_alive());
        let deadline = Instant::now() + ORPHAN_WAIT;
        let lock = loop {
            match host.state.lock_attachment(&key, false) {
                Ok(Some(lock)) => break Some(lock),
                Ok(None) if orphan && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => break None,
            }
        };
        let Some(_lock) = lock else {
            continue;
        };
        // Read again under the lock: a hook may have finished or undone it meanwhile.
        let Ok(Some(record)) = host.state.read(&key) else {
            host.state.drop_lock_if_unused(&key);
            continue;
        };
        if !is_stale(&record) {
            continue;
        }
        let name = format!("{}/{}", record.network, record.id);
        match host.teardown(&record, None) {
            Ok(()) => match host.state.remove(&key) {
                Ok(()) => out.removed.push(name),
                Err(e) => out.errors.push(format!("{name}: {e}")),
            },
            Err(e) => out.errors.push(format!("{name}: {e}")),
        }
    }
    out
}

fn report_sweep(swept: Swept) {
    for e in swept.errors {
        eprintln!("imgtool network-hook: sweeping a dead container's network: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_id_and_pid_and_suit_cni() {
        let a = attachment_key("c1", 100);
        assert_eq!(a, attachment_key("c1", 100));
        assert_ne!(a, attachment_key("c1", 101));
        assert_ne!(a, attachment_key("c2", 100));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        // An id with characters CNI refuses still gives a valid key.
        assert!(attachment_key("a+b c", 1)
            .chars()
            .all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn interface_names_from_proc_net_dev() {
        let dev = "Inter-|   Receive                                                |  Transmit\n             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n                lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n              eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        assert_eq!(interfaces(dev), ["lo", "eth0"]);
    }

    #[test]
    fn the_host_network_namespace_is_refused() {
        // Our own process stands for a container that shares the host's namespace.
        let e = open_netns(std::process::id() as i32)
            .unwrap_err()
            .to_string();
        assert!(e.contains("it is the host's"), "{e}");
    }

    #[test]
    fn result_fields() {
        let r = json!({
            "interfaces": [
                {"name": "br0", "mac": "aa"},
                {"name": "veth1234", "mac": "bb"},
                {"name": "eth0", "mac": "cc", "sandbox": "/proc/1/ns/net"}
            ],
            "ips": [{"interface": 2, "address": "10.77.0.5/16", "gateway": "10.77.0.1"}]
        });
        assert_eq!(address(&r), Some(Ipv4Addr::new(10, 77, 0, 5)));
        assert_eq!(host_veth(&r), Some(("veth1234".into(), "bb".into())));
        assert_eq!(address(&json!({})), None);
    }

    #[test]
    fn the_bridge_list_masquerades_nothing_per_container() {
        let net = Network {
            name: "n".into(),
            bridge: "b0".into(),
            subnet: "10.9.0.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 9, 0, 1),
        };
        let s = StateDir {
            root: "/run/x".into(),
        };
        let l = network_list(&net, &s, false);
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.plugins[0]["ipMasq"], false);
        assert_eq!(l.plugins[0]["ipam"]["dataDir"], "/run/x/ipam");
        assert_eq!(l.plugins[0]["ipam"]["ranges"][0][0]["gateway"], "10.9.0.1");
        let l = network_list(&net, &s, true);
        assert_eq!(l.plugins[1]["type"], "portmap");
    }
}

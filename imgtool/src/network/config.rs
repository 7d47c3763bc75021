//! The networks config file, `networks.json` beside `registries.json`
//! (`/etc/imgtool/networks.json` for root): which bridge and subnet each named network
//! uses. A missing file means the default network alone: `bridge` on bridge `imgtool0`
//! with 10.77.0.0/16, chosen to stay clear of docker's docker0 (172.17.0.0/16, and its
//! pools 172.18-31/16 and 192.168/16), podman's (10.88.0.0/16, then 10.89.x/24) and the
//! usual Kubernetes ranges (10.96.0.0/12 services, 10.244.0.0/16 and 10.42.0.0/16 pods).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::Deserialize;

/// The network `--network bridge` means.
pub const DEFAULT_NETWORK: &str = "bridge";
/// Its bridge and subnet when the file does not name them.
pub const DEFAULT_BRIDGE: &str = "imgtool0";
pub const DEFAULT_SUBNET: &str = "10.77.0.0/16";

/// Where the CNI plugins are looked for: Debian's `containernetworking-plugins`, then
/// the upstream install location.
pub const DEFAULT_CNI_PATH: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("no network {name:?} in {path} (it defines: {known})")]
    UnknownNetwork {
        name: String,
        path: PathBuf,
        known: String,
    },
}

/// One network as the file writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkEntry {
    bridge: String,
    subnet: String,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    networks: BTreeMap<String, NetworkEntry>,
    #[serde(default, rename = "cni-path")]
    cni_path: Vec<PathBuf>,
}

/// A network, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    /// The Linux bridge device (at most 15 bytes).
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// The bridge's address and the containers' default route.
    pub gateway: Ipv4Addr,
}

/// The whole file, validated.
#[derive(Debug, Clone)]
pub struct NetworksConfig {
    pub path: PathBuf,
    pub networks: BTreeMap<String, Network>,
    pub cni_path: Vec<PathBuf>,
}

/// `networks.json` beside the default `registries.json`.
pub fn default_path() -> PathBuf {
    crate::registry::config::default_path().with_file_name("networks.json")
}

impl NetworksConfig {
    /// Reads `path`; a missing file means the default network only. A malformed file is
    /// one error naming the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let bad = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file: File = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(bad(e.to_string())),
        };
        let mut networks = BTreeMap::new();
        if !file.networks.contains_key(DEFAULT_NETWORK) {
            networks.insert(
                DEFAULT_NETWORK.to_string(),
                Network {
                    name: DEFAULT_NETWORK.to_string(),
                    bridge: DEFAULT_BRIDGE.to_string(),
                    subnet: DEFAULT_SUBNET.parse().expect("the default subnet parses"),
                    gateway: Ipv4Addr::new(10, 77, 0, 1),
                },
            );
        }
        for (name, entry) in &file.networks {
            let net = validate(name, entry).map_err(|m| bad(format!("network {name:?}: {m}")))?;
            networks.insert(name.clone(), net);
        }
        check_disjoint(&networks).map_err(bad)?;
        let cni_path = if file.cni_path.is_empty() {
            DEFAULT_CNI_PATH.iter().map(PathBuf::from).collect()
        } else {
            file.cni_path
        };
        Ok(Self {
            path: path.to_path_buf(),
            networks,
            cni_path,
        })
    }

    /// The network called `name`.
    pub fn network(&self, name: &str) -> Result<&Network, ConfigError> {
        self.networks
            .get(name)
            .ok_or_else(|| ConfigError::UnknownNetwork {
                name: name.to_string(),
                path: self.path.clone(),
                known: self.networks.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }
}

/// A network name becomes a directory name and part of iptables comments.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A Linux interface name: 1 to 15 bytes, no '/', ':' or whitespace, not "." or "..".
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

fn validate(name: &str, entry: &NetworkEntry) -> Result<Network, String> {
    if !valid_name(name) {
        return Err("a network name is letters, digits, '_', '.', '-' (at most 64)".into());
    }
    if !valid_ifname(&entry.bridge) {
        return Err(format!(
            "bridge {:?} is not an interface name (1 to 15 characters, no '/', ':' or spaces)",
            entry.bridge
        ));
    }
    let subnet: Ipv4Net = entry
        .subnet
        .parse()
        .map_err(|_| format!("subnet {:?} is not an IPv4 CIDR (a.b.c.d/n)", entry.subnet))?;
    if subnet != subnet.trunc() {
        return Err(format!(
            "subnet {subnet} has host bits set (did you mean {}?)",
            subnet.trunc()
        ));
    }
    if subnet.prefix_len() > 30 {
        return Err(format!(
            "subnet {subnet} is too small: a /30 at most leaves room for a gateway and a container"
        ));
    }
    let gateway = match &entry.gateway {
        Some(g) => g
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("gateway {g:?} is not an IPv4 address"))?,
        None => first_host(subnet),
    };
    if !subnet.contains(&gateway) || gateway == subnet.network() || gateway == subnet.broadcast() {
        return Err(format!(
            "gateway {gateway} is not a host address of subnet {subnet}"
        ));
    }
    Ok(Network {
        name: name.to_string(),
        bridge: entry.bridge.clone(),
        subnet,
        gateway,
    })
}

fn first_host(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// Two networks on one bridge, or with overlapping subnets, would route each other's
/// containers wrongly.
fn check_disjoint(networks: &BTreeMap<String, Network>) -> Result<(), String> {
    let all: Vec<&Network> = networks.values().collect();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if a.bridge == b.bridge {
                return Err(format!(
                    "networks {:?} and {:?} both use bridge {}",
                    a.name, b.name, a.bridge
                ));
            }
            if a.subnet.contains(&b.subnet.network()) || b.subnet.contains(&a.subnet.network()) {
                return Err(format!(
                    "networks {:?} ({}) and {:?} ({}) overlap",
                    a.name, a.subnet, b.name, b.subnet
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<NetworksConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("networks.json");
        std::fs::write(&path, text).unwrap();
        NetworksConfig::load(&path)
    }

    #[test]
    fn missing_file_means_the_default_network() {
        let c = NetworksConfig::load(Path::new("/nonexistent/networks.json")).unwrap();
        let n = c.network("bridge").unwrap();
        assert_eq!(n.bridge, "imgtool0");
        assert_eq!(n.subnet.to_string(), "10.77.0.0/16");
        assert_eq!(n.gateway, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(c.cni_path[0], PathBuf::from("/usr/lib/cni"));
    }

    #[test]
    fn defaults_stay_clear_of_docker_and_podman() {
        let ours: Ipv4Net = DEFAULT_SUBNET.parse().unwrap();
        for other in [
            "172.17.0.0/16",
            "10.88.0.0/16",
            "10.89.0.0/16",
            "10.96.0.0/12",
        ] {
            let other: Ipv4Net = other.parse().unwrap();
            assert!(!ours.contains(&other.network()) && !other.contains(&ours.network()));
        }
    }

    #[test]
    fn networks_are_read_and_checked() {
        let c = load(
            r#"{"networks": {"bridge": {"bridge": "br9", "subnet": "10.9.0.0/24"},
                "back": {"bridge": "br10", "subnet": "10.10.0.0/24", "gateway": "10.10.0.254"}}}"#,
        )
        .unwrap();
        assert_eq!(c.network("bridge").unwrap().bridge, "br9");
        assert_eq!(
            c.network("back").unwrap().gateway,
            Ipv4Addr::new(10, 10, 0, 254)
        );
        let e = c.network("nope").unwrap_err().to_string();
        assert!(e.contains("back, bridge"), "{e}");

        for (text, want) in [
            (
                r#"{"networks": {"a": {"bridge": "much-too-long-name", "subnet": "10.1.0.0/24"}}}"#,
                "interface name",
            ),
            (
                r#"{"networks": {"a": {"bridge": "b", "subnet": "10.1.0.1/24"}}}"#,
                "host bits",
            ),
            (
                r#"{"networks": {"a": {"bridge": "b", "subnet": "10.1.0.0/31"}}}"#,
                "too small",
            ),
            (
                r#"{"networks": {"a": {"bridge": "b", "subnet": "fd00::/64"}}}"#,
                "IPv4 CIDR",
            ),
            (
                r#"{"networks": {"a": {"bridge": "b", "subnet": "10.1.0.0/24", "gateway": "10.2.0.1"}}}"#,
                "not a host address",
            ),
            (
                r#"{"networks": {"a/b": {"bridge": "b", "subnet": "10.1.0.0/24"}}}"#,
                "network name",
            ),
            (
                r#"{"networks": {"a": {"bridge": "b", "subnet": "10.77.1.0/24"}}}"#,
                "overlap",
            ),
            (
                r#"{"networks": {"a": {"bridge": "imgtool0", "subnet": "10.1.0.0/24"}}}"#,
                "both use bridge",
            ),
            (r#"{"networks": {}, "extra": 1}"#, "unknown field"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains("networks.json"), "names the file: {e}");
        }
    }
}

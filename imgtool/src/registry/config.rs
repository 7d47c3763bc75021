//! The registries config file (global `--config`): which registries are insecure and which
//! mirrors to try first. The keys follow docker's daemon.json so users can reuse what they
//! know: `insecure-registries` and `registry-mirrors` (mirrors of docker.io), plus
//! `mirrors` for per-registry mirrors (as containerd and podman allow).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::RegistryError;

/// The parsed config file; the default (no file) has no mirrors and only loopback insecure.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    /// Registries (`host[:port]`) reached over plain HTTP or TLS without verification.
    #[serde(default, rename = "insecure-registries")]
    pub insecure_registries: Vec<String>,
    /// Mirrors of docker.io, as URLs (`http://host:port`), tried in order before docker.io.
    #[serde(default, rename = "registry-mirrors")]
    pub registry_mirrors: Vec<String>,
    /// Mirrors per registry (`host:port` → URLs), tried in order before that registry.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Vec<String>>,
}

/// A place to fetch from: a registry's own host or a mirror, and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as used in URLs.
    pub host: String,
    pub transport: Transport,
    /// True for a mirror (failures fall back to the next endpoint quickly).
    pub is_mirror: bool,
}

/// How to connect to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS with certificate verification.
    Https,
    /// Plain HTTP (a mirror given as `http://…`).
    Http,
    /// An insecure registry: HTTPS without verification if it speaks TLS, else plain HTTP
    /// (decided by probing, as docker does).
    Insecure,
}

impl RegistriesConfig {
    /// Reads the config at `path`; a missing file means defaults. A malformed file is an
    /// error naming the file and the problem.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let bad = |message: String| RegistryError::Config {
            path: path.to_path_buf(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(bad(e.to_string())),
        };
        let config: Self = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        for entry in &config.insecure_registries {
            if entry.contains("://") || entry.is_empty() {
                return Err(bad(format!(
                    "insecure registry {entry:?}: expected host[:port] or a CIDR network, without a scheme"
                )));
            }
        }
        for url in config
            .registry_mirrors
            .iter()
            .chain(config.mirrors.values().flatten())
        {
            parse_mirror_url(url).map_err(bad)?;
        }
        Ok(config)
    }

    /// Loads `path` if given, else the default location (which may not exist).
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, RegistryError> {
        match path {
            Some(p) => Self::load(p),
            None => Self::load(&default_path()),
        }
    }

    /// Whether `registry` (`host[:port]`) is insecure: listed in the config (by name, or
    /// by a CIDR network containing its IP, as docker allows), or on loopback (localhost,
    /// 127.0.0.0/8, ::1), as docker treats those.
    pub fn is_insecure(&self, registry: &str) -> bool {
        is_loopback(registry)
            || self
                .insecure_registries
                .iter()
                .any(|entry| entry == registry || in_network(entry, registry))
    }

    /// Where to fetch images of `registry` from, in order: its mirrors, then itself.
    /// `force_insecure` (the `--insecure` flag) makes the registry itself insecure.
    pub fn endpoints(&self, registry: &str, force_insecure: bool) -> Vec<Endpoint> {
        let mut out = Vec::new();
        let mirrors: &[String] = match self.mirrors.get(registry) {
            Some(m) => m,
            None if registry == "docker.io" => &self.registry_mirrors,
            None => &[],
        };
        for url in mirrors {
            if let Ok((https, host)) = parse_mirror_url(url) {
                let transport = if !https {
                    Transport::Http
                } else if self.is_insecure(&host) {
                    Transport::Insecure
                } else {
                    Transport::Https
                };
                out.push(Endpoint {
                    host,
                    transport,
                    is_mirror: true,
                });
            }
        }
        // docker.io's API host (index.docker.io) is chosen by oci-client; errors and
        // credentials use the name users know.
        let host = registry.to_string();
        let transport = if force_insecure || self.is_insecure(registry) {
            Transport::Insecure
        } else {
            Transport::Https
        };
        out.push(Endpoint {
            host,
            transport,
            is_mirror: false,
        });
        out
    }
}

/// /etc/imgtool/registries.json for root, else $XDG_CONFIG_HOME/imgtool/registries.json.
pub fn default_path() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/etc/imgtool/registries.json");
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/"))
                .join(".config")
        });
    base.join("imgtool/registries.json")
}

/// `http://host:port[/]` → (false, "host:port"); `https://…` → (true, …). A mirror
/// without a scheme is refused: whether it speaks TLS is not something to guess.
fn parse_mirror_url(url: &str) -> Result<(bool, String), String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if url.contains("://") {
        return Err(format!(
            "mirror {url:?}: only http:// and https:// are supported"
        ));
    } else {
        return Err(format!(
            "mirror {url:?}: expected a URL with its scheme, like http://{url} or https://{url}"
        ));
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(format!(
            "mirror {url:?}: expected a URL like http://host:port (no path)"
        ));
    }
    Ok((https, host.to_string()))
}

/// The host of `host[:port]` (`[v6]:port` too).
fn host_part(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if registry.matches(':').count() > 1 {
        registry // a bare IPv6 address
    } else {
        match registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => registry,
        }
    }
}

/// True for `localhost`, 127.0.0.0/8 and ::1, with or without a port.
pub fn is_loopback(registry: &str) -> bool {
    let host = host_part(registry);
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `registry`'s host is an IP address inside the CIDR network `cidr`.
fn in_network(cidr: &str, registry: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits), Ok(ip)) = (
        net.parse::<IpAddr>(),
        bits.parse::<u32>(),
        host_part(registry).parse::<IpAddr>(),
    ) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_rules() {
        for r in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "docker.io",
            "10.0.0.1:5000",
            "example.com:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn insecure_by_name_or_network() {
        let c: RegistriesConfig = serde_json::from_str(
            r#"{"insecure-registries":["reg.test:5000","10.1.0.0/16","fd00::/8"]}"#,
        )
        .unwrap();
        assert!(c.is_insecure("reg.test:5000"));
        assert!(!c.is_insecure("reg.test:5001"));
        assert!(c.is_insecure("10.1.2.3:5000"));
        assert!(!c.is_insecure("10.2.0.1:5000"));
        assert!(c.is_insecure("[fd00::1]:5000"));
        assert!(!c.is_insecure("docker.io"));
        assert!(c.is_insecure("127.0.0.1:1"));
        let all: RegistriesConfig =
            serde_json::from_str(r#"{"insecure-registries":["0.0.0.0/0"]}"#).unwrap();
        assert!(all.is_insecure("192.168.1.1"));
    }

    #[test]
    fn endpoints_mirrors_first() {
        let c: RegistriesConfig = serde_json::from_str(
            r#"{"insecure-registries":["reg.test:5000"],
                "registry-mirrors":["http://127.0.0.1:9000/"],
                "mirrors":{"reg.test:5000":["https://m.test","https://127.0.0.1:9001"]}}"#,
        )
        .unwrap();
        let e = c.endpoints("docker.io", false);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].host, "127.0.0.1:9000");
        assert_eq!(e[0].transport, Transport::Http);
        assert!(e[0].is_mirror);
        assert_eq!(e[1].host, "docker.io");
        assert_eq!(e[1].transport, Transport::Https);
        let e = c.endpoints("reg.test:5000", false);
        let got: Vec<_> = e.iter().map(|e| (e.host.as_str(), e.transport)).collect();
        assert_eq!(
            got,
            [
                ("m.test", Transport::Https),
                ("127.0.0.1:9001", Transport::Insecure),
                ("reg.test:5000", Transport::Insecure)
            ]
        );
        let e = c.endpoints("quay.io", true);
        assert_eq!(e[0].transport, Transport::Insecure);
    }

    #[test]
    fn malformed_file_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        assert!(RegistriesConfig::load(&p).unwrap().mirrors.is_empty());
        std::fs::write(&p, r#"{"insecure-registries": "x"}"#).unwrap();
        let msg = RegistriesConfig::load(&p).unwrap_err().to_string();
        assert!(
            msg.contains("r.json") && msg.contains("invalid type"),
            "{msg}"
        );
        std::fs::write(&p, r#"{"insecure-registries": ["http://x:5000"]}"#).unwrap();
        let msg = RegistriesConfig::load(&p).unwrap_err().to_string();
        assert!(
            msg.contains("http://x:5000") && msg.contains("scheme"),
            "{msg}"
        );
        std::fs::write(&p, r#"{"registry-mirrors": ["ftp://x"]}"#).unwrap();
        let msg = RegistriesConfig::load(&p).unwrap_err().to_string();
        assert!(msg.contains("ftp://x"), "{msg}");
        std::fs::write(&p, r#"{"registry-mirrors": ["mirror.lan:5000"]}"#).unwrap();
        let msg = RegistriesConfig::load(&p).unwrap_err().to_string();
        assert!(
            msg.contains("mirror.lan:5000") && msg.contains("scheme"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }
}

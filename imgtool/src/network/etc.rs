//! The three files docker gives every container, bind-mounted from the bundle:
//! `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`. Their content follows docker's:
//! hosts starts with the loopback names, then `--add-host` entries, then the container's
//! own address and name (written by the network hook once the address is known);
//! resolv.conf is the host's with loopback nameservers removed (they mean nothing in the
//! container's network namespace), docker's fallback public resolvers when none is left,
//! and `--dns` replacing the nameservers.

use std::net::{IpAddr, Ipv4Addr};

/// An `--add-host NAME:IP` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub name: String,
    pub ip: IpAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum EtcError {
    #[error("--add-host {0:?}: expected NAME:IP (e.g. db:10.0.0.5)")]
    BadHost(String),
    #[error("--dns {0:?}: not an IP address")]
    BadDns(String),
    #[error("--hostname {0:?}: a hostname is 1 to 64 letters, digits, '-', '_' and '.' (the kernel's limit is 64 bytes)")]
    BadHostname(String),
}

impl HostEntry {
    /// Parses docker's `NAME:IP` (the IP may be IPv6, so the name ends at the first ':').
    pub fn parse(spec: &str) -> Result<Self, EtcError> {
        let (name, ip) = spec
            .split_once(':')
            .ok_or_else(|| EtcError::BadHost(spec.to_string()))?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| EtcError::BadHost(spec.to_string()))?;
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '#') {
            return Err(EtcError::BadHost(spec.to_string()));
        }
        Ok(Self {
            name: name.to_string(),
            ip,
        })
    }
}

impl std::fmt::Display for HostEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.ip)
    }
}

/// Checks a hostname: what sethostname(2) takes (at most 64 bytes), in the characters
/// resolvers and /etc/hosts can carry.
pub fn check_hostname(name: &str) -> Result<(), EtcError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(EtcError::BadHostname(name.to_string()))
    }
}

/// Parses `--dns` values.
pub fn parse_dns(values: &[String]) -> Result<Vec<IpAddr>, EtcError> {
    values
        .iter()
        .map(|v| v.parse().map_err(|_| EtcError::BadDns(v.clone())))
        .collect()
}

/// docker's /etc/hosts head.
const LOOPBACK_HOSTS: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
ff00::0\tip6-mcastprefix\n\
ff02::1\tip6-allnodes\n\
ff02::2\tip6-allrouters\n";

/// /etc/hosts of a container with its own network namespace: the loopback names,
/// `extra` entries, and `own` (the container's address) with `hostname`.
pub fn hosts(hostname: &str, extra: &[HostEntry], own: Option<Ipv4Addr>) -> String {
    let mut out = String::from(LOOPBACK_HOSTS);
    for e in extra {
        out.push_str(&format!("{}\t{}\n", e.ip, e.name));
    }
    if let Some(ip) = own {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    out
}

/// /etc/hosts of a container on the host's network: the host's file, then `extra`.
pub fn host_network_hosts(host_file: &str, extra: &[HostEntry]) -> String {
    let mut out = host_file.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for e in extra {
        out.push_str(&format!("{}\t{}\n", e.ip, e.name));
    }
    out
}

/// docker's resolvers when the host has none a container can reach.
const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

fn is_loopback_nameserver(line: &str) -> bool {
    let mut words = line.split_whitespace();
    words.next() == Some("nameserver")
        && words
            .next()
            .and_then(|a| a.split('%').next().and_then(|a| a.parse::<IpAddr>().ok()))
            .is_some_and(|ip| ip.is_loopback())
}

/// The systemd-resolved stub: its upstream servers are in /run/systemd/resolve/resolv.conf.
fn only_resolved_stub(text: &str) -> bool {
    let servers: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().next() == Some("nameserver"))
        .collect();
    !servers.is_empty()
        && servers
            .iter()
            .all(|l| l.split_whitespace().nth(1) == Some("127.0.0.53"))
}

/// Reads the host's resolv.conf as docker does (systemd-resolved's upstream file when the
/// host's names only the stub).
pub fn host_resolv_conf() -> String {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if only_resolved_stub(&text) {
        if let Ok(upstream) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return upstream;
        }
    }
    text
}

/// /etc/resolv.conf for a container: `host` as it is on the host network; otherwise
/// without loopback nameservers (docker's public resolvers when none is left), and with
/// `dns` replacing every nameserver when given.
pub fn resolv_conf(host: &str, dns: &[IpAddr], host_network: bool) -> String {
    let mut lines: Vec<String> = host
        .lines()
        .filter(|l| !(dns.is_empty() && !host_network && is_loopback_nameserver(l)))
        .filter(|l| dns.is_empty() || l.split_whitespace().next() != Some("nameserver"))
        .map(str::to_string)
        .collect();
    let has_server = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.split_whitespace().next() == Some("nameserver"))
    };
    if !dns.is_empty() {
        lines.extend(dns.iter().map(|ip| format!("nameserver {ip}")));
    } else if !has_server(&lines) {
        lines.extend(
            FALLBACK_NAMESERVERS
                .iter()
                .map(|ip| format!("nameserver {ip}")),
        );
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_as_docker_writes_it() {
        let extra = [HostEntry::parse("db:10.1.2.3").unwrap()];
        let text = hosts("web", &extra, Some(Ipv4Addr::new(10, 77, 0, 2)));
        assert!(text.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost"));
        assert!(text.ends_with("10.1.2.3\tdb\n10.77.0.2\tweb\n"), "{text}");
        assert!(!hosts("web", &[], None).contains("web"));
        let host = host_network_hosts("127.0.0.1 localhost\n127.0.1.1 box", &extra);
        assert_eq!(host, "127.0.0.1 localhost\n127.0.1.1 box\n10.1.2.3\tdb\n");
    }

    #[test]
    fn add_host_forms() {
        assert_eq!(
            HostEntry::parse("v6:[::1]").unwrap().ip,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            HostEntry::parse("v6:fe80::1").unwrap().ip,
            "fe80::1".parse::<IpAddr>().unwrap()
        );
        for bad in ["noip", ":1.2.3.4", "a:b", "a b:1.2.3.4"] {
            assert!(HostEntry::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_resolvers_are_replaced_as_docker_does() {
        let host = "# generated\nsearch lan\nnameserver 127.0.0.53\noptions edns0\n";
        let c = resolv_conf(host, &[], false);
        assert_eq!(
            c,
            "# generated\nsearch lan\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let mixed = "nameserver 127.0.0.1\nnameserver 10.0.0.2\nnameserver ::1\n";
        assert_eq!(resolv_conf(mixed, &[], false), "nameserver 10.0.0.2\n");
        // The host network reaches the host's loopback resolver: unchanged.
        assert_eq!(resolv_conf(mixed, &[], true), mixed);
        let dns = parse_dns(&["1.1.1.1".into(), "2606:4700::1111".into()]).unwrap();
        assert_eq!(
            resolv_conf(host, &dns, false),
            "# generated\nsearch lan\noptions edns0\nnameserver 1.1.1.1\nnameserver 2606:4700::1111\n"
        );
        assert!(parse_dns(&["dns.example".into()]).is_err());
        assert!(only_resolved_stub("nameserver 127.0.0.53\n"));
        assert!(!only_resolved_stub(
            "nameserver 127.0.0.53\nnameserver 1.1.1.1\n"
        ));
    }

    #[test]
    fn hostnames() {
        for ok in ["web", "a-b.example", "x1", "my_app"] {
            check_hostname(ok).unwrap();
        }
        for bad in ["", "-a", "a b", "a/b", &"x".repeat(65)] {
            assert!(check_hostname(bad).is_err(), "{bad}");
        }
    }
}

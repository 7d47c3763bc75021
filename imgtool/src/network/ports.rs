//! Published ports, in docker's `-p` syntax: `[IP:]HOST:CTR[/tcp|udp]`, where HOST and
//! CTR may be ranges of the same length (`8000-8002:80-82`). Each becomes one CNI
//! `portMappings` entry for the portmap plugin.

use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// One host port forwarded to one container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The host address to listen on; `None` is every address (docker's `0.0.0.0`).
    #[serde(rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        write!(f, "{}:{}/{proto}", self.host_port, self.container_port)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("-p {spec:?}: {reason}")]
pub struct PortError {
    spec: String,
    reason: String,
}

fn port_range(text: &str, what: &str) -> Result<(u16, u16), String> {
    let parse = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{what} port {p:?} is not a number from 1 to 65535")),
        }
    };
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if b < a {
                return Err(format!("{what} port range {text} ends before it starts"));
            }
            Ok((a, b))
        }
        None => {
            let p = parse(text)?;
            Ok((p, p))
        }
    }
}

/// Parses one `-p` value into its mappings (several for a range).
pub fn parse(spec: &str) -> Result<Vec<PortMapping>, PortError> {
    let err = |reason: String| PortError {
        spec: spec.to_string(),
        reason,
    };
    let (addr, protocol) = match spec.rsplit_once('/') {
        Some((a, "tcp")) => (a, Protocol::Tcp),
        Some((a, "udp")) => (a, Protocol::Udp),
        Some((_, p)) => return Err(err(format!("protocol {p:?} is not tcp or udp"))),
        None => (spec, Protocol::Tcp),
    };
    if addr.starts_with('[') {
        return Err(err(
            "IPv6 host addresses are not supported: the bridge network is IPv4".into(),
        ));
    }
    let parts: Vec<&str> = addr.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [ctr] if !ctr.is_empty() => {
            return Err(err(format!(
                "give the host port too (HOST:{ctr}): a random host port is not supported"
            )))
        }
        [host, ctr] => (None, *host, *ctr),
        [ip, host, ctr] => (Some(*ip), *host, *ctr),
        _ => return Err(err("expected [IP:]HOST:CONTAINER[/tcp|udp]".into())),
    };
    if host.is_empty() {
        return Err(err(
            "give the host port (a random host port is not supported)".into(),
        ));
    }
    let host_ip = match ip {
        None | Some("") | Some("0.0.0.0") => None,
        Some(ip) => Some(
            ip.parse::<Ipv4Addr>()
                .map_err(|_| err(format!("{ip:?} is not an IPv4 address")))?,
        ),
    };
    let (h0, h1) = port_range(host, "host").map_err(err)?;
    let (c0, c1) = port_range(ctr, "container").map_err(err)?;
    if h1 - h0 != c1 - c0 {
        return Err(err(format!(
            "the host range {host} and the container range {ctr} differ in length"
        )));
    }
    Ok((0..=(h1 - h0))
        .map(|i| PortMapping {
            host_ip,
            host_port: h0 + i,
            container_port: c0 + i,
            protocol,
        })
        .collect())
}

/// Parses every `-p`, refusing a host port given twice for one address and protocol.
pub fn parse_all(specs: &[String]) -> Result<Vec<PortMapping>, PortError> {
    let mut out: Vec<PortMapping> = Vec::new();
    for spec in specs {
        for m in parse(spec)? {
            let clash = out.iter().any(|o| {
                o.host_port == m.host_port
                    && o.protocol == m.protocol
                    && (o.host_ip.is_none() || m.host_ip.is_none() || o.host_ip == m.host_ip)
            });
            if clash {
                return Err(PortError {
                    spec: spec.clone(),
                    reason: format!("host port {} is already published", m.host_port),
                });
            }
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_forms() {
        let m = parse("8080:80").unwrap();
        assert_eq!(
            m,
            [PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }]
        );
        let m = parse("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(m[0].host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(m[0].protocol, Protocol::Udp);
        assert_eq!(m[0].to_string(), "127.0.0.1:5353:53/udp");
        let m = parse("0.0.0.0:8000-8002:80-82/tcp").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!((m[2].host_port, m[2].container_port), (8002, 82));
        assert_eq!(m[0].host_ip, None);
        // The display form parses back to the same mapping (the hook gets it that way).
        for x in m {
            assert_eq!(parse(&x.to_string()).unwrap(), [x]);
        }
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        for (spec, want) in [
            ("80", "give the host port"),
            (":80", "give the host port"),
            ("8080:80/sctp", "not tcp or udp"),
            ("x:80", "host port \"x\""),
            ("8080:0", "container port"),
            ("8080:70000", "container port"),
            ("1.2.3:8080:80", "not an IPv4"),
            ("[::1]:8080:80", "IPv6"),
            ("8000-8002:80", "differ in length"),
            ("9-8:9-8", "ends before"),
            ("a:b:c:d", "expected"),
        ] {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
            assert!(e.starts_with("-p "), "{e}");
        }
    }

    #[test]
    fn a_host_port_is_published_once() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(parse_all(&s(&["8080:80", "8080:81"])).is_err());
        assert!(parse_all(&s(&["127.0.0.1:8080:80", "8080:81"])).is_err());
        assert!(parse_all(&s(&["8080:80", "8080:80/udp"])).is_ok());
        assert!(parse_all(&s(&["127.0.0.1:8080:80", "127.0.0.2:8080:80"])).is_ok());
    }
}

//! The network-wide part of a bridge network, made once when its bridge does not exist
//! yet (docker makes the same rules for docker0 when it starts): outbound NAT for the
//! subnet, and FORWARD accepts so that containers reach each other and the outside even
//! where the FORWARD policy is DROP (as dockerd leaves it). Per-container rules would
//! cost a dozen `iptables` runs per container start and stop (the bridge plugin's
//! `ipMasq`, the firewall plugin); these three rules cost nothing per container. The
//! rules carry the comment `imgtool network NAME`, which is how to find and remove them.
//!
//! Before the first setup the subnet is checked against the host's routes, as docker
//! does when it picks a subnet: a network hiding a route of the host would cut it off.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use ipnet::Ipv4Net;

use super::config::Network;
use super::records::StateDir;
use super::TOOLS_PATH;

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("network {network}: subnet {subnet} overlaps the host's route {route} on {dev}; choose another subnet in networks.json")]
    RouteOverlap {
        network: String,
        subnet: Ipv4Net,
        route: Ipv4Net,
        dev: String,
    },
    #[error("network {network}: iptables {args}: {message}")]
    Iptables {
        network: String,
        args: String,
        message: String,
    },
    #[error("network {network}: {message}")]
    Io { network: String, message: String },
}

/// The comment every rule of `network` carries.
pub fn comment(network: &str) -> String {
    format!("imgtool network {network}")
}

/// (table, chain, whether inserted first, rule) of the network-wide rules.
fn rules(net: &Network) -> Vec<(&'static str, &'static str, bool, Vec<String>)> {
    let c = comment(&net.name);
    let s = |v: &[&str]| -> Vec<String> {
        v.iter()
            .map(|x| x.to_string())
            .chain(["-m".into(), "comment".into(), "--comment".into(), c.clone()])
            .collect()
    };
    let subnet = net.subnet.to_string();
    vec![
        (
            "nat",
            "POSTROUTING",
            false,
            s(&["-s", &subnet, "!", "-o", &net.bridge, "-j", "MASQUERADE"]),
        ),
        (
            "filter",
            "FORWARD",
            true,
            s(&["-i", &net.bridge, "-j", "ACCEPT"]),
        ),
        (
            "filter",
            "FORWARD",
            true,
            s(&[
                "-o",
                &net.bridge,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED,DNAT",
                "-j",
                "ACCEPT",
            ]),
        ),
    ]
}

fn iptables(net: &Network, args: &[String]) -> Result<bool, FirewallError> {
    let out = Command::new("iptables")
        .env_clear()
        .env("PATH", TOOLS_PATH)
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| FirewallError::Iptables {
            network: net.name.clone(),
            args: args.join(" "),
            message: format!("cannot run iptables: {e}"),
        })?;
    match out.status.code() {
        Some(0) => Ok(true),
        // -C: the rule does not exist.
        Some(1) if args.iter().any(|a| a == "-C") => Ok(false),
        _ => Err(FirewallError::Iptables {
            network: net.name.clone(),
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
    }
}

/// Makes sure the network-wide rules of `net` exist. Cheap when the bridge exists and
/// the rules were made since boot (a marker in the state dir says so); otherwise checks
/// the routes and adds whichever rule is missing. Serialized per network.
pub fn ensure(net: &Network, state: &StateDir) -> Result<(), FirewallError> {
    let io_err = |e: std::io::Error| FirewallError::Io {
        network: net.name.clone(),
        message: e.to_string(),
    };
    let marker = state.rules_marker(&net.name);
    let bridge_exists = Path::new("/sys/class/net").join(&net.bridge).exists();
    if bridge_exists && marker.exists() {
        return Ok(());
    }
    let _lock = state.lock_network(&net.name).map_err(io_err)?;
    if !bridge_exists {
        check_routes(
            net,
            &std::fs::read_to_string("/proc/net/route").unwrap_or_default(),
        )?;
    }
    for (table, chain, first, rule) in rules(net) {
        let mut check = vec!["-t".to_string(), table.into(), "-C".into(), chain.into()];
        check.extend(rule.iter().cloned());
        if !iptables(net, &check)? {
            let mut add = vec!["-t".to_string(), table.into()];
            if first {
                add.extend(["-I".to_string(), chain.into(), "1".into()]);
            } else {
                add.extend(["-A".to_string(), chain.into()]);
            }
            add.extend(rule);
            iptables(net, &add)?;
        }
    }
    std::fs::write(&marker, b"").map_err(io_err)
}

/// Refuses a subnet that overlaps a route of the host on another device (the default
/// route aside).
fn check_routes(net: &Network, proc_net_route: &str) -> Result<(), FirewallError> {
    for line in proc_net_route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(dev), Some(dst), Some(mask)) = (f.first(), f.get(1), f.get(7)) else {
            continue;
        };
        let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::from_be);
        let (Some(dst), Some(mask)) = (hex(dst), hex(mask)) else {
            continue;
        };
        let prefix = mask.count_ones() as u8;
        if prefix == 0 || *dev == net.bridge {
            continue;
        }
        let Ok(route) = Ipv4Net::new(Ipv4Addr::from(dst), prefix) else {
            continue;
        };
        if route.contains(&net.subnet.network()) || net.subnet.contains(&route.network()) {
            return Err(FirewallError::RouteOverlap {
                network: net.name.clone(),
                subnet: net.subnet,
                route,
                dev: dev.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Network {
        Network {
            name: "n".into(),
            bridge: "br-n".into(),
            subnet: "10.77.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 77, 0, 1),
        }
    }

    const ROUTES: &str =
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        eth0\t0000000A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";

    #[test]
    fn the_default_route_is_no_overlap_but_a_covering_route_is() {
        let only_default = ROUTES.lines().take(2).collect::<Vec<_>>().join("\n");
        assert!(check_routes(&net(), &only_default).is_ok());
        // 10.0.0.0/16 on eth0 does not cover 10.77/16.
        assert!(check_routes(&net(), ROUTES).is_ok());
        let vpn = format!("{ROUTES}tun0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n");
        let e = check_routes(&net(), &vpn).unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/8 on tun0"), "{e}");
        // Our own bridge's route is ours.
        let own = format!("{ROUTES}br-n\t00004D0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n");
        assert!(check_routes(&net(), &own).is_ok());
    }

    #[test]
    fn every_rule_carries_the_network_comment() {
        for (_, _, _, rule) in rules(&net()) {
            assert!(rule.ends_with(&["--comment".to_string(), comment("n")]));
        }
    }
}

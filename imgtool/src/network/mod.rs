//! Container networks for bundles, as docker users know them: `none`, `host`, and
//! `bridge` networks made through the CNI plugins of Debian's
//! `containernetworking-plugins` (bridge, host-local, portmap), run from the
//! bundle's OCI hooks (`imgtool network-hook`), so any runtime that runs hooks (ours,
//! runc, containerd's shims) gets the network with nothing else to do.
//!
//! `config` reads networks.json; `ports` and `etc` parse `-p`, `--add-host` and `--dns`
//! and write /etc/hosts and /etc/resolv.conf; `cni` runs plugins; `firewall` makes the
//! network-wide NAT and FORWARD rules; `records` is what the hooks remember per
//! container; `hook` is the createRuntime / poststop / sweep logic.

pub mod cni;
pub mod config;
pub mod etc;
pub mod firewall;
pub mod hook;
pub mod ports;
pub mod records;

/// PATH for the plugins and tools we run (a hook's environment is empty).
pub const TOOLS_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

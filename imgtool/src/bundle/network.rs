//! The network of a bundle, as `docker run --network` gives it: `none` (a network
//! namespace with only loopback), `host` (no network namespace: the host's interfaces,
//! hostname, /etc/hosts and resolv.conf), or `bridge[:NAME]` (the default, as in docker:
//! a network namespace attached to a bridge network of networks.json by the OCI hooks of
//! `imgtool network-hook`, with `-p` published ports).
//!
//! Every mode gets docker's three files, written into the bundle and bind-mounted:
//! `DIR/hosts`, `DIR/hostname` and `DIR/resolv.conf`; and `HOSTNAME` in the environment.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{HookBuilder, HooksBuilder, LinuxNamespaceType, Mount, Spec};

use super::spec::bind_mount;
use crate::network::cni::Plugins;
use crate::network::config::{self, ConfigError, NetworksConfig, DEFAULT_NETWORK};
use crate::network::etc::{self, EtcError, HostEntry};
use crate::network::ports::PortMapping;
use crate::network::TOOLS_PATH;

/// The files a bundle bind-mounts over the rootfs, by container path.
pub const GENERATED_FILES: [(&str, &str); 3] = [
    ("hosts", "/etc/hosts"),
    ("hostname", "/etc/hostname"),
    ("resolv.conf", "/etc/resolv.conf"),
];

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("--network {0:?}: expected none, host, bridge or bridge:NAME")]
    BadMode(String),
    #[error("-p needs a bridge network (--network bridge[:NAME]), not --network {0}")]
    PortsWithoutBridge(String),
    #[error(
        "--network bridge needs root to run (a rootless bundle can use --network none or host)"
    )]
    RootlessBridge,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Etc(#[from] EtcError),
    #[error("{0}")]
    Plugins(String),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    None,
    Host,
    /// A network of networks.json, by name.
    Bridge(String),
}

impl NetworkMode {
    pub fn parse(text: &str) -> Result<Self, NetworkError> {
        match text.split_once(':') {
            None if text == "none" => Ok(Self::None),
            None if text == "host" => Ok(Self::Host),
            None if text == "bridge" => Ok(Self::Bridge(DEFAULT_NETWORK.to_string())),
            Some(("bridge", name)) if !name.is_empty() => Ok(Self::Bridge(name.to_string())),
            _ => Err(NetworkError::BadMode(text.to_string())),
        }
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Host => f.write_str("host"),
            Self::Bridge(n) => write!(f, "bridge:{n}"),
        }
    }
}

/// What `imgtool bundle` was asked about the network.
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    /// None: docker's default, `bridge` (`none` for a rootless bundle, which cannot
    /// make veths).
    pub mode: Option<NetworkMode>,
    /// networks.json (default: beside registries.json).
    pub config: Option<PathBuf>,
    pub publish: Vec<PortMapping>,
    pub add_hosts: Vec<HostEntry>,
    pub dns: Vec<IpAddr>,
}

impl NetworkOptions {
    /// The mode the bundle gets.
    pub fn mode(&self, rootless: bool) -> NetworkMode {
        self.mode.clone().unwrap_or(if rootless {
            NetworkMode::None
        } else {
            NetworkMode::Bridge(DEFAULT_NETWORK.to_string())
        })
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> NetworkError {
    NetworkError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Checks what can be checked before anything is written: the mode against `-p` and
/// `--rootless`, the network's name in networks.json, and the CNI plugins.
pub fn check(opts: &NetworkOptions, rootless: bool) -> Result<NetworkMode, NetworkError> {
    let mode = opts.mode(rootless);
    if rootless && !opts.publish.is_empty() {
        return Err(NetworkError::RootlessBridge);
    }
    match &mode {
        NetworkMode::Bridge(_) if rootless => return Err(NetworkError::RootlessBridge),
        NetworkMode::Bridge(name) => {
            let path = opts.config.clone().unwrap_or_else(config::default_path);
            let cfg = NetworksConfig::load(&path)?;
            cfg.network(name)?;
            let plugins = Plugins {
                path: cfg.cni_path.clone(),
            };
            for plugin in ["bridge", "host-local", "portmap"] {
                plugins
                    .find(plugin)
                    .map_err(|e| NetworkError::Plugins(e.to_string()))?;
            }
        }
        other if !opts.publish.is_empty() => {
            return Err(NetworkError::PortsWithoutBridge(other.to_string()))
        }
        _ => {}
    }
    Ok(mode)
}

/// The `imgtool network-hook` hooks of a bridge bundle.
fn hooks(
    imgtool: &Path,
    config: &Path,
    network: &str,
    opts: &NetworkOptions,
    hosts_file: &Path,
    hostname: &str,
) -> oci_spec::runtime::Hooks {
    let mut create = vec![
        "imgtool".to_string(),
        "network-hook".into(),
        "create".into(),
        "--config".into(),
        config.display().to_string(),
        "--network".into(),
        network.to_string(),
        "--hosts".into(),
        hosts_file.display().to_string(),
        "--hostname".into(),
        hostname.to_string(),
    ];
    for p in &opts.publish {
        create.extend(["-p".to_string(), p.to_string()]);
    }
    for h in &opts.add_hosts {
        create.extend(["--add-host".to_string(), h.to_string()]);
    }
    let env = vec![format!("PATH={TOOLS_PATH}")];
    let hook = |args: Vec<String>| {
        HookBuilder::default()
            .path(imgtool)
            .args(args)
            .env(env.clone())
            .timeout(60)
            .build()
            .expect("a hook is always valid")
    };
    HooksBuilder::default()
        .create_runtime(vec![hook(create)])
        .poststop(vec![hook(vec![
            "imgtool".into(),
            "network-hook".into(),
            "poststop".into(),
        ])])
        .build()
        .expect("hooks are always valid")
}

/// Lays the network over `spec` for bundle `dir`: namespaces, hostname, the three
/// files (written into `dir`), their mounts (unless a `-v` already covers the path),
/// `HOSTNAME`, and the hooks of a bridge network. Returns the files written.
pub fn apply(
    spec: &mut Spec,
    dir: &Path,
    opts: &NetworkOptions,
    mode: &NetworkMode,
    hostname_given: bool,
) -> Result<Vec<PathBuf>, NetworkError> {
    if *mode == NetworkMode::Host {
        if let Some(ns) = spec
            .linux_mut()
            .as_mut()
            .and_then(|l| l.namespaces_mut().as_mut())
        {
            ns.retain(|n| n.typ() != LinuxNamespaceType::Network);
        }
        if !hostname_given {
            let host = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default();
            spec.set_hostname(Some(host));
        }
    }
    let hostname = spec.hostname().clone().unwrap_or_default();
    etc::check_hostname(&hostname)?;

    let hosts = match mode {
        NetworkMode::Host => etc::host_network_hosts(
            &std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            &opts.add_hosts,
        ),
        // The bridge hook adds the container's address once it has one.
        _ => etc::hosts(&hostname, &opts.add_hosts, None),
    };
    let resolv = etc::resolv_conf(
        &etc::host_resolv_conf(),
        &opts.dns,
        *mode == NetworkMode::Host,
    );
    let mut written = Vec::new();
    for (name, content) in [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).map_err(|e| io_err(&path, e))?;
        written.push(path);
    }

    let mut mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
    for (file, target) in GENERATED_FILES {
        let taken = mounts
            .iter()
            .any(|m| m.destination().as_os_str() == std::ffi::OsStr::new(target));
        if !taken {
            mounts.push(bind_mount(&dir.join(file), target, false));
        }
    }
    spec.set_mounts(Some(mounts));

    if let Some(process) = spec.process_mut() {
        let mut env = process.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={hostname}"));
            process.set_env(Some(env));
        }
    }

    if let NetworkMode::Bridge(name) = mode {
        let config = opts.config.clone().unwrap_or_else(config::default_path);
        let config = std::path::absolute(&config).map_err(|e| io_err(&config, e))?;
        let imgtool = std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .map_err(|e| io_err(Path::new("/proc/self/exe"), e))?;
        spec.set_hooks(Some(hooks(
            &imgtool,
            &config,
            name,
            opts,
            &dir.join("hosts"),
            &hostname,
        )));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(NetworkMode::parse("none").unwrap(), NetworkMode::None);
        assert_eq!(NetworkMode::parse("host").unwrap(), NetworkMode::Host);
        assert_eq!(
            NetworkMode::parse("bridge").unwrap(),
            NetworkMode::Bridge("bridge".into())
        );
        assert_eq!(
            NetworkMode::parse("bridge:back").unwrap(),
            NetworkMode::Bridge("back".into())
        );
        for bad in ["", "bridge:", "container:x", "Host"] {
            assert!(NetworkMode::parse(bad).is_err(), "{bad}");
        }
        let o = NetworkOptions::default();
        assert_eq!(o.mode(false), NetworkMode::Bridge("bridge".into()));
        assert_eq!(o.mode(true), NetworkMode::None);
    }

    #[test]
    fn ports_need_a_bridge_and_a_bridge_needs_root() {
        let mut o = NetworkOptions {
            mode: Some(NetworkMode::None),
            publish: crate::network::ports::parse("8080:80").unwrap(),
            ..Default::default()
        };
        let e = check(&o, false).unwrap_err().to_string();
        assert_eq!(
            e,
            "-p needs a bridge network (--network bridge[:NAME]), not --network none"
        );
        o.mode = Some(NetworkMode::Bridge("bridge".into()));
        assert!(matches!(check(&o, true), Err(NetworkError::RootlessBridge)));
    }
}

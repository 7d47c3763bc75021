//! `imgtool network-hook create|poststop|sweep`: the OCI hooks `imgtool bundle` writes
//! into the config of a bundle on a bridge network. The runtime runs them with the
//! container's state on stdin; `sweep` is also for people (after a crash).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use imgtool::network::etc::HostEntry;
use imgtool::network::hook::{self, CreateRequest, HookState, Host};
use imgtool::network::ports;

use super::Globals;

/// The network hooks of bundles (run by the runtime from config.json).
#[derive(clap::Args, Debug)]
pub struct NetworkHook {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// createRuntime: attach the container (state on stdin) to a bridge network.
    Create {
        /// The networks.json the bundle was made with.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The network's name in that file.
        #[arg(long)]
        network: String,
        /// A published port, [IP:]HOST:CTR[/tcp|udp].
        #[arg(short = 'p', long = "publish")]
        publish: Vec<String>,
        /// The bundle's hosts file, rewritten with the container's address.
        #[arg(long, value_name = "FILE")]
        hosts: Option<PathBuf>,
        #[arg(long, default_value = "")]
        hostname: String,
        #[arg(long = "add-host", value_name = "NAME:IP")]
        add_host: Vec<String>,
    },
    /// poststop: detach the container (state on stdin) from its network.
    Poststop,
    /// Detach every container whose process is gone (the hooks do this on every run).
    Sweep,
}

fn read_state() -> Result<HookState> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("reading the container state on stdin")?;
    Ok(HookState::parse(&bytes)?)
}

impl NetworkHook {
    pub fn run(self, _g: &Globals) -> Result<()> {
        let host = Host::default();
        // A running hook says so first thing: `sweep` waits for it (see records.rs).
        let _running = match self.action {
            Action::Sweep => None,
            _ => {
                host.state
                    .ensure()
                    .context("creating the network state directory")?;
                Some(host.state.hook_running()?)
            }
        };
        match self.action {
            Action::Create {
                config,
                network,
                publish,
                hosts,
                hostname,
                add_host,
            } => {
                let state = read_state()?;
                let req = CreateRequest {
                    config,
                    ports: ports::parse_all(&publish)?,
                    hosts_file: hosts,
                    hostname,
                    extra_hosts: add_host
                        .iter()
                        .map(|h| HostEntry::parse(h))
                        .collect::<Result<_, _>>()?,
                    network: network.clone(),
                };
                hook::create(&host, &state, &req).with_context(|| {
                    format!("attaching container {} to network {network}", state.id)
                })
            }
            Action::Poststop => {
                let state = read_state()?;
                hook::poststop(&host, &state)
                    .with_context(|| format!("detaching container {} from its network", state.id))
            }
            Action::Sweep => {
                // Hooks still running may be undoing an attachment whose runtime was
                // killed: let them finish first.
                if !host
                    .state
                    .wait_for_running_hooks(std::time::Duration::from_secs(30))
                {
                    eprintln!("imgtool network-hook sweep: hooks still running after 30 s; sweeping anyway");
                }
                let swept = hook::sweep(&host);
                for name in &swept.removed {
                    println!("detached {name}");
                }
                if !swept.errors.is_empty() {
                    anyhow::bail!("{}", swept.errors.join("; "));
                }
                Ok(())
            }
        }
    }
}

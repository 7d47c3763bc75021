//! `imgtool login [-u USER] [-p PASSWORD | --password-stdin] [REGISTRY]` and `imgtool
//! logout [REGISTRY]`: docker's login, writing docker's config.json (or `--authfile`), so
//! the credentials serve imgtool, docker, podman and skopeo alike.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{anyhow, bail, Context, Result};
use imgtool::reference;
use imgtool::registry::login;

use super::Globals;

/// Log in to a registry: check the credentials and store them in docker's config.json.
#[derive(clap::Args, Debug)]
pub struct Login {
    /// The user name (asked for when stdin is a terminal and none is given).
    #[arg(short, long)]
    pub username: Option<String>,
    /// The password (visible to other users in the process list: prefer
    /// --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// Allow plain HTTP and TLS without certificate verification for this registry.
    #[arg(long)]
    pub insecure: bool,
    /// Fail when the registry sends nothing for SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
    /// The registry (`host[:port]`); default Docker Hub.
    #[arg(value_name = "REGISTRY")]
    pub server: Option<String>,
}

/// Log out of a registry: remove its credentials from docker's config.json.
#[derive(clap::Args, Debug)]
pub struct Logout {
    #[command(flatten)]
    pub auth: super::AuthArgs,
    /// The registry (`host[:port]`); default Docker Hub.
    #[arg(value_name = "REGISTRY")]
    pub server: Option<String>,
}

/// `host[:port]` of a registry as typed (`https://host/v2/`, `index.docker.io` → docker.io).
fn registry_name(server: Option<&str>) -> Result<String> {
    let Some(s) = server else {
        return Ok("docker.io".to_string());
    };
    let host = imgtool::registry::auth::normalize_key(s);
    // The same host rules as references: parse `HOST/x` and keep the registry part.
    let r = reference::parse(&format!("{host}/x"))
        .map_err(|_| anyhow!("invalid registry {s:?}: expected host[:port]"))?;
    Ok(r.registry().to_string())
}

fn prompt(label: &str) -> Result<String> {
    eprint!("{label}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a password from the terminal without echoing it.
fn prompt_hidden(label: &str) -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn off echo")?;
    let answer = prompt(label);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    answer
}

impl Login {
    pub fn run(self, g: &Globals) -> Result<()> {
        let registry = registry_name(self.server.as_deref())?;
        let interactive = std::io::stdin().is_terminal();
        let user = match self.username {
            Some(u) => u,
            None if interactive && !self.password_stdin => prompt("Username: ")?,
            None => bail!("login {registry}: give --username (stdin is not a terminal to ask on)"),
        };
        let password = match (self.password, self.password_stdin) {
            (Some(p), _) => {
                if !g.quiet {
                    eprintln!("imgtool: warning: a password on the command line is visible to other users; use --password-stdin");
                }
                p
            }
            (None, true) => {
                let mut text = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut text)
                    .context("login: cannot read the password from stdin")?;
                text.trim_end_matches(['\r', '\n']).to_string()
            }
            (None, false) if interactive => prompt_hidden("Password: ")?,
            (None, false) => bail!(
                "login {registry}: give the password with --password-stdin (stdin is not a terminal to ask on)"
            ),
        };
        if user.is_empty() || password.is_empty() {
            bail!("login {registry}: the user name and the password must not be empty");
        }
        let config = imgtool::registry::RegistriesConfig::load_or_default(
            self.registry.registries_conf.as_deref(),
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime
            .block_on(login::check(
                &registry,
                &user,
                &password,
                &config,
                self.insecure,
                std::time::Duration::from_secs(self.timeout),
            ))
            .with_context(|| format!("login {registry}"))?;
        let path = login::auth_file_path(self.registry.auth.authfile.as_deref());
        let place = login::save(&path, &registry, &user, &password)
            .with_context(|| format!("login {registry}"))?;
        if !g.quiet {
            eprintln!("imgtool: credentials for {registry} saved in {place}");
        }
        crate::outln!("Login Succeeded")?;
        Ok(())
    }
}

impl Logout {
    pub fn run(self, g: &Globals) -> Result<()> {
        let registry = registry_name(self.server.as_deref())?;
        let path = login::auth_file_path(self.auth.authfile.as_deref());
        let removed =
            login::remove(&path, &registry).with_context(|| format!("logout {registry}"))?;
        if !g.quiet {
            if removed {
                crate::outln!("Removing login credentials for {registry}")?;
            } else {
                crate::outln!("Not logged in to {registry}")?;
            }
        }
        Ok(())
    }
}

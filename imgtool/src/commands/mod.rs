//! The command line: global options and one module per subcommand.
//!
//! Every option is shown where it acts: the store and `-q` everywhere, the registries
//! file and the auth file only on the commands that talk to registries. Usage errors
//! (an unknown option, a missing argument) exit with status 2, as clap and GNU tools do;
//! a command that fails exits 1 with one line on stderr (one per failed name, for a
//! command that goes on past them, as `inspect A B` does). Output to a closed pipe ends the
//! process quietly, as `cat` does.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use imgtool::store::Store;

pub mod bundle;
pub mod commit;
pub mod describe;
pub mod export;
pub mod gc;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod login;
pub mod network_hook;
pub mod pull;
pub mod push;
pub mod rm;
pub mod save;
pub mod tag;
pub mod template;
pub mod unbundle;

#[derive(Parser, Debug)]
#[command(
    name = "imgtool",
    version,
    about = "Pulls OCI images into a local store and unpacks them into runtime bundles"
)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command understands.
#[derive(clap::Args, Debug, Clone)]
pub struct Globals {
    /// The image store (an OCI image layout). Default: /var/lib/imgtool for root,
    /// $XDG_DATA_HOME/imgtool otherwise.
    #[arg(long, global = true, env = "IMGTOOL_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Quiet: no progress bars, notes or reports of what was done (errors still).
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// Where a command that talks to registries finds its credentials.
#[derive(clap::Args, Debug, Clone)]
pub struct AuthArgs {
    /// Registry credentials in docker's config.json format. Default:
    /// $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
    #[arg(long, env = "REGISTRY_AUTH_FILE", value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

/// The registries file and the credentials, for pull, push and login.
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// The registries file: insecure registries and mirrors (docker's daemon.json keys).
    /// Default: /etc/imgtool/registries.json for root,
    /// $XDG_CONFIG_HOME/imgtool/registries.json otherwise.
    #[arg(
        long = "registries-conf",
        env = "IMGTOOL_REGISTRIES_CONF",
        value_name = "FILE"
    )]
    pub registries_conf: Option<PathBuf>,
    #[command(flatten)]
    pub auth: AuthArgs,
}

impl RegistryArgs {
    /// The registries file and the credentials these options name.
    pub fn load(
        &self,
    ) -> Result<(
        imgtool::registry::RegistriesConfig,
        imgtool::registry::AuthFile,
    )> {
        Ok((
            imgtool::registry::RegistriesConfig::load_or_default(self.registries_conf.as_deref())?,
            imgtool::registry::AuthFile::load(self.auth.authfile.as_deref())?,
        ))
    }
}

/// The error of a command that has already printed its error lines (several, one per
/// failed item, as `imgtool inspect A B` prints them): main exits 1 and prints nothing.
#[derive(Debug)]
pub struct AlreadyReported;

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("errors reported above")
    }
}

impl std::error::Error for AlreadyReported {}

/// Ends a command that went on past failed items: Ok when there were none, the error
/// itself for one, else each on its own line and [`AlreadyReported`].
pub fn report_all(mut errors: Vec<anyhow::Error>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => {
            for e in &errors {
                eprintln!("imgtool: {}", error_line(e));
            }
            Err(AlreadyReported.into())
        }
    }
}

/// An error and its causes on one line, outermost first.
pub fn error_line(err: &anyhow::Error) -> String {
    let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
    chain.join(": ")
}

/// Writes one line to stdout; an error (a closed pipe) is returned, not a panic.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(anyhow::Error::from)
    }};
}

impl Globals {
    /// The store directory these options select.
    pub fn store_dir(&self) -> PathBuf {
        if let Some(dir) = &self.store {
            return dir.clone();
        }
        if nix_is_root() {
            return PathBuf::from("/var/lib/imgtool");
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home_dir().join(".local/share"));
        data.join("imgtool")
    }

    /// Opens (creating if needed) the selected store.
    pub fn open_store(&self) -> Result<Store> {
        let dir = self.store_dir();
        Store::open(&dir).with_context(|| format!("cannot open the image store {}", dir.display()))
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// $HOME, or / when unset (as a last resort for daemons without one).
pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Pull(pull::Pull),
    Push(push::Push),
    Images(images::Images),
    Inspect(inspect::Inspect),
    Tag(tag::Tag),
    Rm(rm::Rm),
    Gc(gc::Gc),
    History(history::History),
    Login(login::Login),
    Logout(login::Logout),
    Bundle(Box<bundle::Bundle>),
    Commit(commit::Commit),
    Unbundle(unbundle::Unbundle),
    Save(save::Save),
    Load(load::Load),
    Export(export::Export),
    Import(import::Import),
    NetworkHook(network_hook::NetworkHook),
}

impl Cli {
    pub fn run(self) -> Result<()> {
        let g = &self.globals;
        match self.command {
            Command::Pull(c) => c.run(g),
            Command::Push(c) => c.run(g),
            Command::Images(c) => c.run(g),
            Command::Inspect(c) => c.run(g),
            Command::Tag(c) => c.run(g),
            Command::Rm(c) => c.run(g),
            Command::Gc(c) => c.run(g),
            Command::History(c) => c.run(g),
            Command::Login(c) => c.run(g),
            Command::Logout(c) => c.run(g),
            Command::Bundle(c) => (*c).run(g),
            Command::Commit(c) => c.run(g),
            Command::Unbundle(c) => c.run(g),
            Command::Save(c) => c.run(g),
            Command::Load(c) => c.run(g),
            Command::Export(c) => c.run(g),
            Command::Import(c) => c.run(g),
            Command::NetworkHook(c) => c.run(g),
        }
    }
}

//! `imgtool pull [--platform P] [--insecure] REF`: fetches an image from its registry (or a
//! mirror) into the store and prints `<stored name> <manifest digest>`.

use anyhow::{Context, Result};
use imgtool::reference;
use imgtool::registry::progress::Progress;
use imgtool::registry::{pull_image, PlatformSpec, PullOptions};

use super::Globals;

/// Pull an image from a registry into the store.
#[derive(clap::Args, Debug)]
pub struct Pull {
    /// The platform to pick from a multi-platform image: os/arch[/variant]. Default: the
    /// host's (linux/<arch>).
    #[arg(
        long,
        value_name = "OS/ARCH[/VARIANT]",
        conflicts_with = "all_platforms"
    )]
    pub platform: Option<String>,
    /// Pull every platform of a multi-platform image; the name then holds the whole index
    /// (so push and save send all of it).
    #[arg(long)]
    pub all_platforms: bool,
    /// Allow plain HTTP and TLS without certificate verification for this registry.
    #[arg(long)]
    pub insecure: bool,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
    /// Fail an attempt (then retry it) when the registry sends nothing for SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Do not unpack the layers into the store's layer cache while pulling (as root with
    /// overlayfs they are by default, so the first `bundle` is immediate).
    #[arg(long)]
    pub no_unpack: bool,
    /// The image, e.g. busybox, registry:5000/repo:tag, repo@sha256:…
    #[arg(value_name = "REF")]
    pub reference: String,
}

impl Pull {
    pub fn run(self, g: &Globals) -> Result<()> {
        let reference = reference::parse(&self.reference)?;
        let platform = self
            .platform
            .as_deref()
            .map(str::parse::<PlatformSpec>)
            .transpose()?;
        let (config, auth) = self.registry.load()?;
        let store = g.open_store()?;
        let opts = PullOptions {
            platform,
            all_platforms: self.all_platforms,
            insecure: self.insecure,
            read_timeout: Some(std::time::Duration::from_secs(self.timeout)),
            unpack: !self.no_unpack,
            ..PullOptions::default()
        };
        let progress = Progress::for_stderr(g.quiet);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let result = runtime.block_on(pull_image(
            &store, &reference, &config, &auth, &opts, &progress,
        ));
        progress.done();
        let pulled =
            result.with_context(|| format!("pull {}", reference::store_name(&reference)))?;
        // A damaged store is worth a warning even with -q (as bundle's platform warning).
        for damaged in &pulled.replaced {
            eprintln!("imgtool: warning: {damaged}; downloaded it again");
        }
        if let (Some(note), false) = (&pulled.note, g.quiet) {
            eprintln!("imgtool: note: {note}");
        }
        crate::outln!("{} {}", pulled.name, pulled.digest)?;
        Ok(())
    }
}

//! `imgtool push [--insecure] REF [DEST]`: sends a stored image to a registry and prints
//! `<destination> <manifest digest>`.

use anyhow::{Context, Result};
use imgtool::reference;
use imgtool::registry::progress::Progress;
use imgtool::registry::{push_image, PushOptions};

use super::Globals;

/// Push an image from the store to a registry.
#[derive(clap::Args, Debug)]
pub struct Push {
    /// Allow plain HTTP and TLS without certificate verification for this registry.
    #[arg(long)]
    pub insecure: bool,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
    /// The stored image: its name (e.g. localhost/mine:1), a manifest digest or an image ID.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Where to push it, e.g. registry:5000/repo:tag. Default: the image's own name.
    #[arg(value_name = "DEST")]
    pub dest: Option<String>,
}

impl Push {
    pub fn run(self, g: &Globals) -> Result<()> {
        let dest = self.dest.as_deref().map(reference::parse).transpose()?;
        let (config, auth) = self.registry.load()?;
        let store = g.open_store()?;
        let opts = PushOptions {
            insecure: self.insecure,
            ..PushOptions::default()
        };
        let progress = Progress::for_stderr(g.quiet);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let result = runtime.block_on(push_image(
            &store,
            &self.reference,
            dest.as_ref(),
            &config,
            &auth,
            &opts,
            &progress,
        ));
        progress.done();
        let pushed = result.with_context(|| match &self.dest {
            Some(dest) => format!("push {} to {dest}", self.reference),
            None => format!("push {}", self.reference),
        })?;
        if let (Some(note), false) = (&pushed.note, g.quiet) {
            eprintln!("imgtool: note: {note}");
        }
        crate::outln!("{} {}", pushed.name, pushed.digest)?;
        Ok(())
    }
}

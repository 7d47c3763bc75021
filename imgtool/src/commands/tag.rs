//! `imgtool tag SRC DST`: another name for a stored image.

use anyhow::{Context, Result};
use imgtool::reference;

use super::Globals;

/// Give a stored image another name.
#[derive(clap::Args, Debug)]
pub struct Tag {
    /// A stored image.
    pub source: String,
    /// The new name (docker-style reference).
    pub target: String,
}

impl Tag {
    pub fn run(self, g: &Globals) -> Result<()> {
        let store = g.open_store()?;
        // Until the new tag is written, nothing references what it will name: keep gc
        // (after a concurrent rm) from removing those blobs in between.
        let _op = store.lock_operation().context("tag")?;
        let src = store.find(&self.source)?;
        let dst = reference::parse(&self.target)?;
        if dst.digest().is_some() {
            anyhow::bail!("cannot tag as {:?}: a tag names no digest", self.target);
        }
        let name = reference::store_name(&dst);
        // The same image: its identity annotations stay, only the name changes.
        let mut desc = src.descriptor.clone();
        let mut ann = desc.annotations().clone().unwrap_or_default();
        ann.remove(imgtool::store::REF_NAME);
        desc.set_annotations((!ann.is_empty()).then_some(ann));
        store
            .tag(&name, &desc)
            .with_context(|| format!("cannot tag {} as {name}", src.name))?;
        Ok(())
    }
}

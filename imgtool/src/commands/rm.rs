//! `imgtool rm REF...`: untag images (their blobs go at the next gc).

use anyhow::Result;

use super::Globals;

/// Remove image names from the store; `imgtool gc` frees the space.
#[derive(clap::Args, Debug)]
pub struct Rm {
    /// Stored images.
    #[arg(required = true)]
    pub images: Vec<String>,
}

impl Rm {
    pub fn run(self, g: &Globals) -> Result<()> {
        let store = g.open_store()?;
        for image in &self.images {
            let found = store.find(image)?;
            store.untag(&found.name)?;
            if !g.quiet {
                crate::outln!("Untagged: {}", found.name)?;
            }
        }
        Ok(())
    }
}

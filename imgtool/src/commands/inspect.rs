//! `imgtool inspect [-f TEMPLATE] REF`: a stored image as one JSON object, with docker's
//! `image inspect` fields (`Id`, `RepoTags`, `RepoDigests`, `Created`, `Author`,
//! `Architecture`, `Os`, `Size`, `Config`, `RootFS`) and imgtool's own (`Name`, `Digest`,
//! `Manifest`, `ImageConfig`: the whole image config), or `--format` applied to it.

use anyhow::{anyhow, Context, Result};
use imgtool::reference;
use serde_json::{json, Value};

use super::describe::image_size;
use super::template::Template;
use super::Globals;

/// Print a stored image's details as JSON (docker's image inspect fields and the manifest
/// and config), or as --format says.
#[derive(clap::Args, Debug)]
pub struct Inspect {
    /// Format the output with a Go template, as docker does: '{{.Config.Env}}',
    /// '{{json .RootFS}}', '{{index .RepoDigests 0}}'.
    #[arg(short, long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    pub image: String,
}

impl Inspect {
    pub fn run(self, g: &Globals) -> Result<()> {
        let template = self
            .format
            .as_deref()
            .map(Template::parse)
            .transpose()
            .map_err(|e| anyhow!("inspect: invalid --format template: {e}"))?;
        let store = g.open_store()?;
        // Keep gc (after a concurrent rm) from removing the blobs while they are read.
        let _op = store.lock_operation().context("inspect")?;
        let stored = store.find(&self.image)?;
        let img = store.load(&stored)?;
        let config: Value = serde_json::from_slice(&store.read_blob(&img.config_digest)?)?;
        let id = stored.digest();
        let mut tags = Vec::new();
        let mut digests = Vec::new();
        for other in store.images()?.iter().filter(|o| o.digest() == id) {
            let Ok(r) = reference::parse(&other.name) else {
                continue;
            };
            let repo = reference::familiar_repository(&r);
            if let Some(t) = r.tag() {
                tags.push(format!("{repo}:{t}"));
            }
            let d = format!("{repo}@{id}");
            if !digests.contains(&d) {
                digests.push(d);
            }
        }
        let out = json!({
            "Id": img.config_digest,
            "RepoTags": tags,
            "RepoDigests": digests,
            "Created": config.get("created"),
            "Author": config.get("author").cloned().unwrap_or(json!("")),
            "Architecture": config.get("architecture"),
            "Variant": config.get("variant"),
            "Os": config.get("os"),
            "Size": image_size(&store, &img)?,
            "Config": config.get("config").cloned().unwrap_or(json!({})),
            "RootFS": {"Type": "layers", "Layers": img.diff_ids()},
            "Name": stored.name,
            "Digest": id,
            "Manifest": img.manifest,
            "ImageConfig": config,
        });
        match template {
            Some(t) => {
                let text = t
                    .render(&out)
                    .map_err(|e| anyhow!("inspect: --format: {e}"))?;
                crate::outln!("{text}")?;
            }
            None => crate::outln!("{}", serde_json::to_string_pretty(&out)?)?,
        }
        Ok(())
    }
}

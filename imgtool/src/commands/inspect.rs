//! `imgtool inspect [-f TEMPLATE] REF...`: stored images as one JSON array (one object
//! per image, as `docker image inspect` prints even for one), with docker's fields (`Id`,
//! `RepoTags`, `RepoDigests`, `Created`, `Author`, `Architecture`, `Os`, `Size`, `Config`,
//! `RootFS`) and imgtool's own (`Name`, `Digest`, `Manifest`, `ImageConfig`: the whole
//! image config), or `--format` applied to each image, one line each. As docker does, a
//! name that is not found (or cannot be read) does not stop the others: they are printed,
//! then one error line per such name, and the exit status is 1.

use anyhow::{anyhow, Context, Result};
use imgtool::reference;
use imgtool::store::Store;
use serde_json::{json, Value};

use super::describe::image_size;
use super::template::Template;
use super::Globals;

/// Print stored images' details as one JSON array (docker's image inspect fields and the
/// manifest and config), or as --format says, one line per image.
#[derive(clap::Args, Debug)]
pub struct Inspect {
    /// Format the output with a Go template, as docker does: '{{.Config.Env}}',
    /// '{{json .RootFS}}', '{{index .RepoDigests 0}}'.
    #[arg(short, long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// The images: names, digests or ID prefixes, as in every command.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
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
        let mut found = Vec::new();
        let mut failed = Vec::new();
        for name in &self.images {
            let described = describe(&store, name).and_then(|out| match &template {
                Some(t) => t
                    .render(&out)
                    .map(Value::String)
                    .map_err(|e| anyhow!("--format: {e}")),
                None => Ok(out),
            });
            match described {
                Ok(v) => found.push(v),
                Err(e) => failed.push(e.context(format!("inspect {name}"))),
            }
        }
        if template.is_some() {
            for text in &found {
                crate::outln!("{}", text.as_str().unwrap_or_default())?;
            }
        } else {
            // An array even for one image, and `[]` when none was found, as docker prints.
            crate::outln!("{}", serde_json::to_string_pretty(&found)?)?;
        }
        super::report_all(failed)
    }
}

/// One stored image as docker's `image inspect` object (plus imgtool's fields).
fn describe(store: &Store, name: &str) -> Result<Value> {
    let stored = store.find(name)?;
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
    Ok(json!({
        "Id": img.config_digest,
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": config.get("created"),
        "Author": config.get("author").cloned().unwrap_or(json!("")),
        "Architecture": config.get("architecture"),
        "Variant": config.get("variant"),
        "Os": config.get("os"),
        "Size": image_size(store, &img)?,
        "Config": config.get("config").cloned().unwrap_or(json!({})),
        "RootFS": {"Type": "layers", "Layers": img.diff_ids()},
        "Name": stored.name,
        "Digest": id,
        "Manifest": img.manifest,
        "ImageConfig": config,
    }))
}

//! `imgtool images`: the stored images, as docker lists them or as JSON. An image the
//! store cannot read (a missing or changed blob, a config that is not an image config)
//! is listed with its problem instead of its ID, size and age; the others are listed
//! as usual.

use anyhow::{Context, Result};
use serde_json::json;

use super::describe::{ago, image_size, repo_tag, short_id};
use super::gc::human_size;
use super::Globals;

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Format {
    Table,
    Json,
}

/// List stored images (with -q, only their IDs).
#[derive(clap::Args, Debug)]
pub struct Images {
    /// table (docker's columns) or json.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

impl Images {
    pub fn run(self, g: &Globals) -> Result<()> {
        let store = g.open_store()?;
        let mut rows = Vec::new();
        // Keep gc (after a concurrent rm) from removing blobs while they are read.
        let _op = store.lock_operation().context("images")?;
        for stored in store.entries()? {
            let (repo, tag) = repo_tag(&stored.name);
            let mut row = json!({
                "name": stored.name,
                "repository": repo,
                "tag": tag,
                "digest": stored.digest(),
            });
            let described = store
                .load(&stored)
                .map_err(anyhow::Error::from)
                .and_then(|img| Ok((image_size(&store, &img)?, img)));
            match described {
                Ok((size, img)) => {
                    row["id"] = json!(img.config_digest);
                    row["created"] = json!(img.config.created());
                    row["size"] = json!(size);
                }
                Err(e) => {
                    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
                    row["problem"] = json!(chain.join(": "));
                }
            }
            rows.push(row);
        }
        match self.format {
            Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&rows)?)?,
            Format::Table if g.quiet => {
                for r in rows.iter().filter(|r| r["id"].is_string()) {
                    crate::outln!("{}", short_id(r["id"].as_str().unwrap_or_default()))?;
                }
            }
            Format::Table => {
                crate::outln!(
                    "{:<40} {:<16} {:<14} {:<18} {:>8}",
                    "REPOSITORY",
                    "TAG",
                    "IMAGE ID",
                    "CREATED",
                    "SIZE"
                )?;
                for r in &rows {
                    let (repo, tag) = (
                        r["repository"].as_str().unwrap_or_default(),
                        r["tag"].as_str().unwrap_or_default(),
                    );
                    match r["problem"].as_str() {
                        Some(problem) => crate::outln!("{repo:<40} {tag:<16} damaged: {problem}")?,
                        None => crate::outln!(
                            "{repo:<40} {tag:<16} {:<14} {:<18} {:>8}",
                            short_id(r["id"].as_str().unwrap_or_default()),
                            ago(r["created"].as_str()),
                            human_size(r["size"].as_u64().unwrap_or(0)),
                        )?,
                    }
                }
            }
        }
        let damaged = rows.iter().filter(|r| r["problem"].is_string()).count();
        if damaged > 0 && !g.quiet {
            eprintln!(
                "imgtool: images: {damaged} of {} stored images cannot be read (shown with their problem); pull or load them again, then `imgtool gc`",
                rows.len()
            );
        }
        Ok(())
    }
}

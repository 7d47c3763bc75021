//! `imgtool images`: the stored images, as docker lists them or as JSON.

use anyhow::{Context, Result};
use imgtool::reference;
use serde_json::json;

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
        for stored in store.images()? {
            let img = store.load(&stored)?;
            let size: i64 = img
                .manifest
                .layers()
                .iter()
                .map(|l| l.size() as i64)
                .sum::<i64>()
                + img.manifest.config().size() as i64;
            let (repo, tag) = match reference::parse(&stored.name) {
                Ok(r) => (
                    reference::familiar_repository(&r),
                    r.tag().unwrap_or("<none>").to_string(),
                ),
                Err(_) => (stored.name.clone(), "<none>".to_string()),
            };
            rows.push(json!({
                "name": stored.name,
                "repository": repo,
                "tag": tag,
                "digest": stored.digest(),
                "id": img.config_digest,
                "created": img.config.created(),
                "size": size,
            }));
        }
        match self.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
            Format::Table if g.quiet => {
                for r in &rows {
                    println!("{}", short_id(r["id"].as_str().unwrap_or_default()));
                }
            }
            Format::Table => {
                println!(
                    "{:<40} {:<16} {:<14} {:<22} {:>10}",
                    "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"
                );
                for r in &rows {
                    let created = r["created"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(19)
                        .collect::<String>();
                    println!(
                        "{:<40} {:<16} {:<14} {:<22} {:>10}",
                        r["repository"].as_str().unwrap_or_default(),
                        r["tag"].as_str().unwrap_or_default(),
                        short_id(r["id"].as_str().unwrap_or_default()),
                        created.replace('T', " "),
                        human_size(r["size"].as_u64().unwrap_or(0)),
                    );
                }
            }
        }
        Ok(())
    }
}

fn short_id(digest: &str) -> String {
    digest
        .strip_prefix("sha256:")
        .unwrap_or(digest)
        .chars()
        .take(12)
        .collect()
}

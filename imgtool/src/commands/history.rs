//! `imgtool history REF`: the steps an image was made of, newest first, as `docker
//! history` shows them: the image ID on the newest row (`<missing>` on the others, whose
//! intermediate images do not exist here), how long ago, the instruction, the size its
//! layer adds unpacked (`0B` for steps without one) and the comment.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::describe::{ago, layer_sizes, short_id};
use super::gc::human_size;
use super::Globals;

/// Show the history of a stored image.
#[derive(clap::Args, Debug)]
pub struct History {
    /// Do not truncate the CREATED BY column.
    #[arg(long)]
    pub no_trunc: bool,
    /// table (docker's columns) or json.
    #[arg(long, value_enum, default_value = "table")]
    pub format: super::images::Format,
    pub image: String,
}

impl History {
    pub fn run(self, g: &Globals) -> Result<()> {
        let store = g.open_store()?;
        let _op = store.lock_operation().context("history")?;
        let stored = store.find(&self.image)?;
        let img = store.load(&stored)?;
        let config: Value = serde_json::from_slice(&store.read_blob(&img.config_digest)?)?;
        let sizes = layer_sizes(&store, &img)?;
        let mut layer = 0;
        let mut rows: Vec<Value> = Vec::new();
        let history = config["history"].as_array().cloned().unwrap_or_default();
        for h in &history {
            let empty = h["empty_layer"].as_bool().unwrap_or(false);
            let size = if empty {
                0
            } else {
                layer += 1;
                sizes.get(layer - 1).copied().unwrap_or(0)
            };
            rows.push(json!({
                "created": h["created"],
                "created_by": h["created_by"].as_str().unwrap_or(""),
                "size": size,
                "comment": h["comment"].as_str().unwrap_or(""),
            }));
        }
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top["id"] = json!(img.config_digest);
        }
        match self.format {
            super::images::Format::Json => {
                crate::outln!("{}", serde_json::to_string_pretty(&rows)?)?;
                return Ok(());
            }
            super::images::Format::Table if g.quiet => {
                for r in &rows {
                    crate::outln!(
                        "{}",
                        r["id"].as_str().map(short_id).unwrap_or("<missing>".into())
                    )?;
                }
                return Ok(());
            }
            super::images::Format::Table => {}
        }
        crate::outln!(
            "{:<14} {:<15} {:<46} {:>8}   COMMENT",
            "IMAGE",
            "CREATED",
            "CREATED BY",
            "SIZE"
        )?;
        for r in &rows {
            let by = r["created_by"].as_str().unwrap_or("").replace('\t', " ");
            let by = if self.no_trunc || by.chars().count() <= 45 {
                by
            } else {
                format!("{}…", by.chars().take(44).collect::<String>())
            };
            crate::outln!(
                "{:<14} {:<15} {:<46} {:>8}   {}",
                r["id"].as_str().map(short_id).unwrap_or("<missing>".into()),
                ago(r["created"].as_str()),
                by,
                human_size(r["size"].as_u64().unwrap_or(0)),
                r["comment"].as_str().unwrap_or(""),
            )?;
        }
        Ok(())
    }
}

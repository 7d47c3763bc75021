//! `list`: the containers under the state root, as runc's table, JSON or ids only.

use anyhow::{Context, Result};
use clap::Args;

use crate::cli::Cli;
use crate::commands::state::StateView;
use crate::container;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format: table or json.
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print only the container ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(cli: &Cli, args: ListArgs) -> Result<()> {
    let root = container::state_root(cli);
    let mut views = Vec::new();
    if root.exists() {
        let entries = std::fs::read_dir(&root)
            .with_context(|| format!("cannot read the state root {}", root.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().join("state.json").exists() {
                continue;
            }
            // A container deleted while we list is simply not listed.
            if let Ok(c) = container::load(&root, &name) {
                views.push(StateView::of(&c));
            }
        }
    }
    views.sort_by(|a, b| a.id.cmp(&b.id));
    if args.quiet {
        for v in &views {
            crate::output::outln!("{}", v.id);
        }
        return Ok(());
    }
    if args.format == "json" {
        // runc marshals its empty (nil) list as `null`, which clients decode as no
        // containers.
        if views.is_empty() {
            crate::output::outln!("null");
        } else {
            crate::output::outln!("{}", serde_json::to_string(&views)?);
        }
        return Ok(());
    }
    let mut rows = vec![[
        "ID".to_string(),
        "PID".to_string(),
        "STATUS".to_string(),
        "BUNDLE".to_string(),
        "CREATED".to_string(),
        "OWNER".to_string(),
    ]];
    for v in &views {
        rows.push([
            v.id.clone(),
            v.pid.to_string(),
            v.status.clone(),
            v.bundle.display().to_string(),
            v.created.clone(),
            v.owner.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        crate::output::outln!("{}", line.join("   ").trim_end());
    }
    Ok(())
}

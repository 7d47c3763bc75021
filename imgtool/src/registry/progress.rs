//! Download progress: one bar per blob on stderr, only when stderr is a terminal and
//! `-q` was not given (scripts and tests see nothing).

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The set of bars of one pull.
pub struct Progress {
    multi: Option<MultiProgress>,
}

/// One blob's bar (a no-op when progress is off). Clones draw the same bar.
#[derive(Clone)]
pub struct BlobProgress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Bars on stderr unless `quiet` or stderr is not a terminal.
    pub fn for_stderr(quiet: bool) -> Self {
        let on = !quiet && std::io::stderr().is_terminal();
        Self {
            multi: on.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// No output at all.
    pub fn hidden() -> Self {
        Self { multi: None }
    }

    /// Ends the bars' output: the terminal cursor moves below them, so what is printed
    /// next starts on its own line.
    pub fn done(&self) {
        if self.multi.is_some() {
            eprintln!();
        }
    }

    /// A bar for a blob of `size` bytes labelled `label` (a short digest).
    pub fn blob(&self, label: &str, size: u64) -> BlobProgress {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(size));
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(label.to_string());
            bar
        });
        BlobProgress { bar }
    }
}

impl Progress {
    /// A spinner with `label`, for work of unknown length (unpacking after downloads).
    pub fn spinner(&self, label: &str) -> BlobProgress {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix} {msg}") {
                bar.set_style(style);
            }
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        BlobProgress { bar }
    }
}

impl BlobProgress {
    pub fn set_position(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
    }

    pub fn message(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }

    pub fn finish(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.finish_with_message(msg.to_string());
        }
    }
}

/// `sha256:0123456789ab…` → `0123456789ab`, as docker shows layers.
pub fn short_digest(digest: &str) -> &str {
    let hex = digest.split_once(':').map(|(_, h)| h).unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

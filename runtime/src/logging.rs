//! Where and how the runtime reports: an error is always one line on stderr; with `--log`
//! it is also appended to that file, as text or as the logrus-style JSON line containerd's
//! shim reads back to tell its user why a call failed.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use chrono::{SecondsFormat, Utc};

/// How the user asked us to log (global `--log`, `--log-format`, `--debug`).
#[derive(Debug, Clone)]
pub struct LogTarget {
    pub file: Option<PathBuf>,
    pub json: bool,
    pub debug: bool,
}

impl LogTarget {
    /// Formats one record the way runc does for the chosen format.
    fn format(&self, level: &str, msg: &str) -> String {
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        if self.json {
            serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
        } else {
            format!("time=\"{time}\" level={level} msg={msg:?}")
        }
    }

    /// Appends a record to the log file, if any. Failing to log must not hide the real
    /// error, so write errors are ignored here.
    pub fn write(&self, level: &str, msg: &str) {
        if let Some(path) = &self.file {
            if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{}", self.format(level, msg));
            }
        }
    }

    /// Reports a fatal error: the log file (if any) gets a formatted record, stderr a
    /// plain line (JSON when `--log-format json` and no file, as runc does).
    pub fn error(&self, msg: &str) {
        self.write("error", msg);
        if self.file.is_none() && self.json {
            eprintln!("{}", self.format("error", msg));
        } else {
            eprintln!("runtime: {msg}");
        }
    }

    /// Routes libcontainer's `tracing` events to the log when `--debug` is given.
    pub fn install_debug_subscriber(&self) {
        if !self.debug {
            return;
        }
        let builder = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_target(false);
        let result = match &self.file {
            Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
                Ok(file) => builder.with_writer(std::sync::Mutex::new(file)).try_init(),
                Err(_) => builder.with_writer(std::io::stderr).try_init(),
            },
            None => builder.with_writer(std::io::stderr).try_init(),
        };
        let _ = result;
    }
}

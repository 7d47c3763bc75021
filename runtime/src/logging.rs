//! Where and how the runtime reports, shaped like runc's logrus output because clients
//! parse it:
//!
//! - a record is `time="..." level=error msg="..."` (logrus text; `ERRO[0000] msg` when
//!   stderr is a terminal), or one JSON object `{"level":..,"msg":..,"time":..}` per line
//!   with `--log-format json` (containerd's shim reads the last `error` record of its
//!   `--log` file back to tell its user why a call failed);
//! - records go to the `--log` file when one is given, to stderr otherwise;
//! - a fatal error is a record, and with `--log` also the bare message on stderr (what
//!   go-runc and conmon capture from a failed call);
//! - warnings always, debug records with `--debug`; libcontainer's own `tracing` events
//!   only with `--debug`, except the few meant for the user (target `user_warning`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::output;

/// How the user asked us to log (global `--log`, `--log-format`, `--debug`).
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub file: Option<PathBuf>,
    pub json: bool,
    pub debug: bool,
}

/// A record's level, spelled as logrus spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// logrus's four-letter tag and ANSI colour for a terminal.
    fn tag(self) -> (&'static str, u8) {
        match self {
            Level::Error => ("ERRO", 31),
            Level::Warning => ("WARN", 33),
            Level::Info => ("INFO", 36),
            Level::Debug => ("DEBU", 37),
        }
    }
}

struct Logger {
    options: LogOptions,
    /// The opened `--log` file; `None` logs to stderr.
    file: Option<Mutex<File>>,
    /// stderr is a terminal (and no file): logrus's coloured short form.
    tty: bool,
    started: Instant,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets up logging once, before any command runs. A `--log` file that cannot be opened is
/// an error (runc fails the same way); records then go to stderr.
pub fn init(options: LogOptions) -> Result<(), String> {
    let (file, failure) = match &options.file {
        None => (None, None),
        Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => (Some(Mutex::new(f)), None),
            Err(e) => (
                None,
                Some(format!("cannot open the log file {}: {e}", path.display())),
            ),
        },
    };
    // SAFETY: isatty only inspects the descriptor.
    let tty = file.is_none() && unsafe { libc::isatty(libc::STDERR_FILENO) } == 1;
    let _ = LOGGER.set(Logger {
        options,
        file,
        tty,
        started: Instant::now(),
    });
    install_tracing_bridge();
    failure.map_or(Ok(()), Err)
}

fn logger() -> &'static Logger {
    LOGGER.get_or_init(|| Logger {
        options: LogOptions {
            file: None,
            json: false,
            debug: false,
        },
        file: None,
        tty: false,
        started: Instant::now(),
    })
}

/// A record at `level` (debug records only with `--debug`).
pub fn log(level: Level, msg: &str) {
    let l = logger();
    if level == Level::Debug && !l.options.debug {
        return;
    }
    l.emit(level, msg, &[]);
}

/// A warning for the user (a failing poststart hook, a non-empty cgroup...).
pub fn warn(msg: &str) {
    log(Level::Warning, msg);
}

/// Reports the error that ends the command: a record, and with `--log` also the bare
/// message on stderr, as runc's `fatal` does.
pub fn fatal(msg: &str) {
    let l = logger();
    l.emit(Level::Error, msg, &[]);
    if l.file.is_some() {
        output::err_line(&libcontainer::error::go_errno_text(msg));
    }
}

impl Logger {
    fn emit(&self, level: Level, msg: &str, fields: &[(String, String)]) {
        // Every record a user or client reads spells error numbers as runc does.
        let msg = &libcontainer::error::go_errno_text(msg);
        let line = if self.options.json {
            json_record(level, msg, fields)
        } else if self.tty {
            tty_record(level, msg, fields, self.started.elapsed().as_secs())
        } else {
            text_record(level, msg, fields)
        };
        match &self.file {
            Some(file) => {
                if let Ok(mut f) = file.lock() {
                    // Failing to log must not hide the real error.
                    let _ = writeln!(f, "{line}");
                }
            }
            None => output::err_line(&line),
        }
    }
}

/// RFC 3339 local time in seconds, `Z` for UTC, as Go's time.RFC3339 prints it.
fn timestamp() -> String {
    let now = chrono::Local::now();
    if now.offset().local_minus_utc() == 0 {
        now.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        now.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// logrus's text form: `time="..." level=error msg="..." key=value`.
fn text_record(level: Level, msg: &str, fields: &[(String, String)]) -> String {
    let mut line = format!(
        "time={} level={} msg={}",
        logfmt_value(&timestamp()),
        level.name(),
        logfmt_value(msg)
    );
    for (k, v) in fields {
        line.push_str(&format!(" {k}={}", logfmt_value(v)));
    }
    line
}

/// logrus's form for a terminal: `ERRO[0000] msg` padded to 44 columns, in colour.
fn tty_record(level: Level, msg: &str, fields: &[(String, String)], secs: u64) -> String {
    let (tag, colour) = level.tag();
    let mut line = format!("\x1b[{colour}m{tag}\x1b[0m[{secs:04}] {msg:<44} ");
    for (k, v) in fields {
        line.push_str(&format!(" \x1b[{colour}m{k}\x1b[0m={}", logfmt_value(v)));
    }
    line
}

/// logrus's JSON form; its keys come out sorted, as logrus's map encodes them.
fn json_record(level: Level, msg: &str, fields: &[(String, String)]) -> String {
    let mut map = serde_json::Map::new();
    for (k, v) in fields {
        map.insert(k.clone(), serde_json::Value::from(v.as_str()));
    }
    map.insert("level".into(), level.name().into());
    map.insert("msg".into(), msg.into());
    map.insert("time".into(), timestamp().into());
    serde_json::Value::Object(map).to_string()
}

/// A value as logrus's text formatter writes it: bare when it is made only of letters,
/// digits and `-._/@^+` (the empty string too), else quoted like Go's `%q`.
fn logfmt_value(text: &str) -> String {
    let bare = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if bare {
        text.to_string()
    } else {
        go_quote(text)
    }
}

/// Go's strconv.Quote: printable characters as they are, the usual backslash escapes,
/// other control characters as `\xNN` or `\uNNNN`.
fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Routes `tracing` events (libcontainer's and ours) into the same records: every event
/// at debug and above with `--debug`; without it only warnings addressed to the user
/// (target `user_warning`), so libcontainer's internal chatter stays out of stderr.
fn install_tracing_bridge() {
    let _ = tracing::subscriber::set_global_default(Bridge);
}

struct Bridge;

/// The target libcontainer (the fork) and the runtime use for warnings the user should see
/// without `--debug`, as runc prints its logrus warnings.
pub const USER_WARNING: &str = "user_warning";

impl tracing::Subscriber for Bridge {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        if logger().options.debug {
            return *metadata.level() <= tracing::Level::DEBUG;
        }
        metadata.target() == USER_WARNING && *metadata.level() <= tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warning,
            tracing::Level::INFO => Level::Info,
            _ => Level::Debug,
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        logger().emit(level, &fields.message, &fields.others);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// An event's `message` and its other fields as logrus-style key/value pairs.
#[derive(Default)]
struct Fields {
    message: String,
    others: Vec<(String, String)>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.others
                .push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.others.push((field.name().to_string(), text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_like_logrus() {
        assert_eq!(logfmt_value("error"), "error");
        assert_eq!(logfmt_value("a/b.c-d_e@f+g"), "a/b.c-d_e@f+g");
        assert_eq!(
            logfmt_value("container does not exist"),
            "\"container does not exist\""
        );
        assert_eq!(logfmt_value("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
        assert_eq!(logfmt_value(""), "");
    }

    #[test]
    fn text_and_json_records() {
        let t = text_record(Level::Error, "container not running", &[]);
        assert!(t.starts_with("time=\""), "{t}");
        assert!(
            t.ends_with(" level=error msg=\"container not running\""),
            "{t}"
        );
        let j: serde_json::Value =
            serde_json::from_str(&json_record(Level::Warning, "x", &[])).unwrap();
        assert_eq!(j["level"], "warning");
        assert_eq!(j["msg"], "x");
        let keys: Vec<_> = j.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["level", "msg", "time"]);
    }

    #[test]
    fn terminal_record_is_padded() {
        let t = tty_record(Level::Error, "boom", &[], 0);
        assert_eq!(t, format!("\x1b[31mERRO\x1b[0m[0000] {:<44} ", "boom"));
    }
}

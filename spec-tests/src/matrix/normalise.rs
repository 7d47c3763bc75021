//! Turning one runtime's output into what a client would compare: the values that differ
//! between any two runs (container ids, temporary paths, pids, timestamps) become
//! placeholders, and each output is reduced to the class the row asks about.

use std::sync::OnceLock;

use regex::Regex;

use super::json::OJson;

/// How a stream (stdout, stderr, a file) is compared.
#[derive(Clone, Debug)]
pub enum Class {
    /// Not compared.
    Ignore,
    /// Only whether anything was written.
    Empty,
    /// The whole normalised text.
    Text,
    /// The normalised text with runs of blanks collapsed (tables padded differently).
    Words,
    /// The normalised text with every number replaced by `N` (`ps`, sizes, counters) and
    /// each run of spaces by one (a column padded to its numbers' widths).
    Masked,
    /// The kind of each line: `logrus:LEVEL` (runc's `time=... level=... msg=...`),
    /// `json:LEVEL` (a JSON log object), `text`; or `empty`. The default for stderr.
    Shape,
    /// Whether the text contains a phrase clients match (runc's wording); the stream's
    /// `Shape` is observed beside it.
    Phrase(&'static str),
    /// JSON: the key order and value types of each document (one per line allowed).
    Json,
    /// JSON: the normalised values too, in key order (`ociVersion` left out: each runtime
    /// reports the runtime-spec version it implements, compared once by its own row).
    JsonValues,
    /// For log files: `Shape`, plus the set of line kinds (a text line among logrus
    /// lines shows).
    LogLevels,
}

/// The field every runtime fills with the runtime-spec version it implements.
pub const OCI_VERSION: &[&str] = &["ociVersion"];

/// Replaces the per-run values of one side of a row by placeholders.
#[derive(Clone, Debug, Default)]
pub struct Normaliser {
    /// (literal, placeholder), longest literal first.
    pairs: Vec<(String, String)>,
    /// Host pids seen for this side's containers.
    pids: Vec<u32>,
}

fn timestamp_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?( UTC)?")
            .expect("timestamp regex")
    })
}

fn logrus_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"^time="[^"]*" level=(\w+) msg="#).expect("logrus regex"))
}

fn number_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\d+").expect("number regex"))
}

impl Normaliser {
    /// Adds a literal to replace (an id, a path).
    pub fn replace(&mut self, literal: impl Into<String>, placeholder: &str) {
        let literal = literal.into();
        if literal.is_empty() || self.pairs.iter().any(|(l, _)| *l == literal) {
            return;
        }
        self.pairs.push((literal, placeholder.to_string()));
        self.pairs.sort_by_key(|(l, _)| std::cmp::Reverse(l.len()));
    }

    /// Adds a host pid of this side's container (replaced as a whole word).
    pub fn pid(&mut self, pid: u32) {
        if pid > 1 && !self.pids.contains(&pid) {
            self.pids.push(pid);
        }
    }

    /// The text with literals, pids and timestamps replaced, carriage returns and NULs
    /// dropped (terminal output) and trailing blanks of each line trimmed.
    pub fn text(&self, s: &str) -> String {
        // Carriage returns and NULs are terminal noise (script(1) relays what the pty had).
        let mut t = s.replace(['\r', '\0'], "");
        for (lit, ph) in &self.pairs {
            t = t.replace(lit.as_str(), ph);
        }
        t = timestamp_re().replace_all(&t, "<TS>").into_owned();
        for pid in &self.pids {
            let re = Regex::new(&format!(r"\b{pid}\b")).expect("pid regex");
            t = re.replace_all(&t, "<PID>").into_owned();
        }
        t.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
    }

    /// A JSON document rendered in key order with its values normalised; `pid` fields
    /// above 0 become `<PID>`; the fields in `keep_out` become `<KEY>` (values that differ
    /// by design or are observed by one dedicated row, such as the state's `ociVersion`).
    pub fn json(&self, j: &OJson) -> String {
        self.json_except(j, &[])
    }

    /// `json` with the values of `keep_out` fields replaced by a placeholder.
    pub fn json_except(&self, j: &OJson, keep_out: &[&str]) -> String {
        j.render(&|key, v| {
            if keep_out.contains(&key) {
                format!("<{key}>")
            } else if key == "pid" && v.parse::<u32>().map(|p| p > 0).unwrap_or(false) {
                "<PID>".to_string()
            } else {
                self.text(v)
            }
        })
    }

    /// The class of a stream, as text to compare.
    pub fn classify(&self, class: &Class, raw: &str) -> Option<String> {
        let text = self.text(raw);
        Some(match class {
            Class::Ignore => return None,
            Class::Empty => if text.trim().is_empty() {
                "empty"
            } else {
                "non-empty"
            }
            .into(),
            Class::Text => text,
            Class::Words => text
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join("\n"),
            // Columns padded to their numbers' widths (ps) differ in spaces only.
            Class::Masked => number_re()
                .replace_all(&text, "N")
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join("\n"),
            Class::Shape => line_shapes(&text),
            Class::Phrase(p) => format!("{} {p:?}", if text.contains(p) { "has" } else { "lacks" }),
            // JSON is parsed before normalising (placeholders are not JSON numbers).
            Class::Json => json_docs(&raw.replace('\r', ""))
                .map(|docs| docs.iter().map(OJson::shape).collect::<Vec<_>>().join("\n"))
                .unwrap_or_else(|| format!("not JSON: {}", first_line(&text))),
            Class::JsonValues => json_docs(&raw.replace('\r', ""))
                .map(|docs| {
                    docs.iter()
                        .map(|d| self.json_except(d, OCI_VERSION))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_else(|| format!("not JSON: {}", first_line(&text))),
            Class::LogLevels => log_levels(&text),
        })
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// One document, or one per non-empty line; None when any of them is not JSON.
fn json_docs(text: &str) -> Option<Vec<OJson>> {
    if text.trim().is_empty() {
        return None;
    }
    if let Some(one) = OJson::parse(text) {
        return Some(vec![one]);
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(OJson::parse)
        .collect()
}

/// The kind of one line of diagnostics.
fn line_shape(line: &str) -> String {
    if let Some(c) = logrus_re().captures(line) {
        return format!("logrus:{}", &c[1]);
    }
    if let Some(OJson::Obj(fields)) = OJson::parse(line) {
        if let Some((_, OJson::Str(level))) = fields.iter().find(|(k, _)| k == "level") {
            return format!("json:{level}");
        }
        return "json".into();
    }
    "text".into()
}

/// Warnings runc 1.1.5 prints because of the machine, not the scenario: its cgroup file
/// opens use openat2, which returns EAGAIN while other mounts change (busy hosts), and then
/// it warns and retries. Not a difference a row is about.
const RUNC_NOISE: &[&str] = &["msg=\"falling back to securejoin"];

/// The kinds of the lines, consecutive repeats collapsed; `empty` for no output.
fn line_shapes(text: &str) -> String {
    let mut shapes: Vec<String> = Vec::new();
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !RUNC_NOISE.iter().any(|n| l.contains(n)));
    for l in lines {
        let s = line_shape(l);
        if shapes.last() != Some(&s) {
            shapes.push(s);
        }
    }
    if shapes.is_empty() {
        "empty".into()
    } else {
        shapes.join(" ")
    }
}

/// For log files: the shape of each line (in order, repeats collapsed) and whether any
/// line is not a log record.
fn log_levels(text: &str) -> String {
    let shapes = line_shapes(text);
    let levels: std::collections::BTreeSet<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(line_shape)
        .collect();
    format!(
        "{shapes} (kinds: {})",
        levels.into_iter().collect::<Vec<_>>().join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_replace_per_run_values() {
        let mut n = Normaliser::default();
        n.replace("/tmp/spec-bundle-ab12", "<BUNDLE>");
        n.replace("mx-001-a-77", "<ID>");
        n.pid(4242);
        assert_eq!(
            n.text("time=\"2026-12-07T11:12:13Z\" level=error msg=\"mx-001-a-77 at /tmp/spec-bundle-ab12/rootfs pid 4242 42420\"\r\n"),
            "time=\"<TS>\" level=error msg=\"<ID> at <BUNDLE>/rootfs pid <PID> 42420\""
        );
    }

    #[test]
    fn classes_tell_shapes_apart() {
        let n = Normaliser::default();
        let logrus = "time=\"2026-12-07T11:12:13Z\" level=error msg=\"container does not exist\"\n";
        let plain = "runtime: container x does not exist\n";
        assert_eq!(n.classify(&Class::Shape, logrus).unwrap(), "logrus:error");
        assert_eq!(n.classify(&Class::Shape, plain).unwrap(), "text");
        assert_eq!(n.classify(&Class::Shape, "").unwrap(), "empty");
        assert_eq!(
            n.classify(&Class::Phrase("does not exist"), plain).unwrap(),
            "has \"does not exist\""
        );
        assert_eq!(
            n.classify(&Class::Json, "{\"a\":1}\n{\"a\":2}\n").unwrap(),
            "{a:num}\n{a:num}"
        );
        assert_eq!(
            n.classify(&Class::Words, "A   B\n1  2 ").unwrap(),
            "A B\n1 2"
        );
    }
}

//! `--change` instructions (`import`, `commit`): the Dockerfile instructions docker accepts
//! there, each setting one part of the image config: `ENV K=V`, `CMD [...]` or shell form,
//! `ENTRYPOINT`, `WORKDIR`, `USER`, `LABEL k=v`, `EXPOSE p[/proto]`, `STOPSIGNAL`, `VOLUME`.
//! Parsed up front so a typo fails before any layer is written.

use std::collections::HashMap;

use oci_spec::image::Config;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid --change {input:?}: {reason}")]
pub struct ChangeError {
    pub input: String,
    pub reason: String,
}

/// One parsed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Variables set (replacing an earlier value of the same name), in order.
    Env(Vec<(String, String)>),
    /// Exec form, or `/bin/sh -c "…"` for the shell form.
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    /// As written; a relative directory is resolved against the current one when applied.
    WorkingDir(String),
    User(String),
    Label(Vec<(String, String)>),
    /// Normalized `port/proto` keys (ranges expanded).
    Expose(Vec<String>),
    StopSignal(String),
    Volume(Vec<String>),
}

const INSTRUCTIONS: &str = "ENV, CMD, ENTRYPOINT, WORKDIR, USER, LABEL, EXPOSE, STOPSIGNAL, VOLUME";

/// Parses one `--change` value.
pub fn parse(input: &str) -> Result<Change, ChangeError> {
    let err = |reason: &str| ChangeError {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = input.trim();
    let (word, rest) = match trimmed.split_once(|c: char| c.is_whitespace()) {
        Some((w, r)) => (w, r.trim()),
        None => (trimmed, ""),
    };
    if word.is_empty() {
        return Err(err(&format!("empty: expected one of {INSTRUCTIONS}")));
    }
    let instruction = word.to_ascii_uppercase();
    if rest.is_empty() {
        return Err(err(&format!("{instruction} needs an argument")));
    }
    let words = || shell_words(rest).map_err(|r| err(&r));
    match instruction.as_str() {
        "ENV" => parse_env(&words()?).map(Change::Env).map_err(|r| err(&r)),
        "LABEL" => {
            let pairs = key_values(&words()?).map_err(|r| err(&r))?;
            Ok(Change::Label(pairs))
        }
        "CMD" => Ok(Change::Cmd(command(rest))),
        "ENTRYPOINT" => Ok(Change::Entrypoint(command(rest))),
        "WORKDIR" => Ok(Change::WorkingDir(
            single(words()?, "WORKDIR").map_err(|r| err(&r))?,
        )),
        "USER" => Ok(Change::User(single(words()?, "USER").map_err(|r| err(&r))?)),
        "STOPSIGNAL" => {
            let sig = single(words()?, "STOPSIGNAL").map_err(|r| err(&r))?;
            let valid = sig.parse::<u32>().is_ok()
                || sig
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-');
            if !valid {
                return Err(err(&format!("{sig:?} is not a signal name or number")));
            }
            Ok(Change::StopSignal(sig))
        }
        "EXPOSE" => {
            let mut ports = Vec::new();
            for w in words()? {
                ports.extend(expose(&w).map_err(|r| err(&r))?);
            }
            Ok(Change::Expose(ports))
        }
        "VOLUME" => {
            let dirs = match json_array(rest) {
                Some(list) => list,
                None => words()?,
            };
            if dirs.iter().any(String::is_empty) || dirs.is_empty() {
                return Err(err("VOLUME needs non-empty paths"));
            }
            Ok(Change::Volume(dirs))
        }
        other => Err(err(&format!(
            "unsupported instruction {other}: expected one of {INSTRUCTIONS}"
        ))),
    }
}

/// Parses every value, failing on the first bad one.
pub fn parse_all<S: AsRef<str>>(inputs: &[S]) -> Result<Vec<Change>, ChangeError> {
    inputs.iter().map(|s| parse(s.as_ref())).collect()
}

/// Applies `changes` in order to `config`. As in a Dockerfile, ENTRYPOINT clears a Cmd
/// inherited from the base image unless a CMD came earlier in the same list.
pub fn apply(config: &mut Config, changes: &[Change]) {
    let mut cmd_set = false;
    for change in changes {
        match change {
            Change::Env(vars) => {
                let mut env = config.env().clone().unwrap_or_default();
                for (k, v) in vars {
                    let entry = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k)
                    {
                        Some(existing) => *existing = entry,
                        None => env.push(entry),
                    }
                }
                config.set_env(Some(env));
            }
            Change::Cmd(args) => {
                config.set_cmd(Some(args.clone()));
                cmd_set = true;
            }
            Change::Entrypoint(args) => {
                config.set_entrypoint(Some(args.clone()));
                if !cmd_set {
                    config.set_cmd(None);
                }
            }
            Change::WorkingDir(dir) => {
                let base = config.working_dir().clone().unwrap_or_default();
                config.set_working_dir(Some(resolve_dir(&base, dir)));
            }
            Change::User(user) => {
                config.set_user(Some(user.clone()));
            }
            Change::Label(pairs) => {
                let mut labels: HashMap<String, String> =
                    config.labels().clone().unwrap_or_default();
                for (k, v) in pairs {
                    labels.insert(k.clone(), v.clone());
                }
                config.set_labels(Some(labels));
            }
            Change::Expose(ports) => {
                let mut all = config.exposed_ports().clone().unwrap_or_default();
                for p in ports {
                    if !all.contains(p) {
                        all.push(p.clone());
                    }
                }
                config.set_exposed_ports(Some(all));
            }
            Change::StopSignal(sig) => {
                config.set_stop_signal(Some(sig.clone()));
            }
            Change::Volume(dirs) => {
                let mut all = config.volumes().clone().unwrap_or_default();
                for d in dirs {
                    if !all.contains(d) {
                        all.push(d.clone());
                    }
                }
                config.set_volumes(Some(all));
            }
        }
    }
}

/// `["a","b"]` (exec form) or anything else as `/bin/sh -c` (shell form), like docker,
/// which also falls back to the shell form when the brackets are not valid JSON.
fn command(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
}

fn json_array(rest: &str) -> Option<Vec<String>> {
    if !rest.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(rest).ok()
}

fn single(words: Vec<String>, what: &str) -> Result<String, String> {
    match <[String; 1]>::try_from(words) {
        Ok([w]) if !w.is_empty() => Ok(w),
        _ => Err(format!("{what} takes exactly one argument")),
    }
}

/// `ENV K=V [K2=V2 …]`, or the legacy `ENV K value with spaces`.
fn parse_env(words: &[String]) -> Result<Vec<(String, String)>, String> {
    let first = words.first().ok_or("ENV needs a variable")?;
    if !first.contains('=') {
        let value = words[1..].join(" ");
        if words.len() < 2 {
            return Err(format!("ENV {first} needs a value (ENV K=V or ENV K V)"));
        }
        check_env_name(first)?;
        return Ok(vec![(first.clone(), value)]);
    }
    let pairs = key_values(words)?;
    for (k, _) in &pairs {
        check_env_name(k)?;
    }
    Ok(pairs)
}

fn check_env_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("{name:?} is not a variable name"));
    }
    Ok(())
}

fn key_values(words: &[String]) -> Result<Vec<(String, String)>, String> {
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{w:?} is not key=value")),
        })
        .collect()
}

/// `80`, `80/tcp`, `53/udp`, `8000-8002/tcp` → `port/proto` keys.
fn expose(word: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("{word:?}: protocol must be tcp, udp or sctp"));
    }
    let port = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{word:?}: {s:?} is not a port number"))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!("{word:?}: the range is backwards"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// A WORKDIR relative to `base` (or `/`), with `.` and `..` folded.
fn resolve_dir(base: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{}/{dir}", if base.is_empty() { "/" } else { base })
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Splits like a shell would for these instructions: whitespace separates words, single
/// quotes are literal, double quotes allow `\"` and `\\`, a backslash outside quotes
/// escapes the next character.
fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn env_forms() {
        assert_eq!(
            parse("ENV A=1 B=\"two words\" C='x y'").unwrap(),
            Change::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x y".into())
            ])
        );
        assert_eq!(
            parse("env PATH /usr/bin:/bin").unwrap(),
            Change::Env(vec![("PATH".into(), "/usr/bin:/bin".into())])
        );
        assert_eq!(
            parse("ENV EMPTY=").unwrap(),
            Change::Env(vec![("EMPTY".into(), String::new())])
        );
        assert!(parse("ENV =x").is_err());
        assert!(parse("ENV ONLYNAME").is_err());
        assert!(parse("ENV A=\"open").is_err());
    }

    #[test]
    fn cmd_and_entrypoint_forms() {
        assert_eq!(
            parse(r#"CMD ["echo", "hi there"]"#).unwrap(),
            Change::Cmd(s(&["echo", "hi there"]))
        );
        assert_eq!(
            parse("CMD echo $HOME").unwrap(),
            Change::Cmd(s(&["/bin/sh", "-c", "echo $HOME"]))
        );
        // Not valid JSON: docker's shell-form fallback.
        assert_eq!(
            parse("CMD [echo]").unwrap(),
            Change::Cmd(s(&["/bin/sh", "-c", "[echo]"]))
        );
        assert_eq!(
            parse(r#"ENTRYPOINT ["/bin/sh"]"#).unwrap(),
            Change::Entrypoint(s(&["/bin/sh"]))
        );
        assert!(parse("CMD").is_err());
    }

    #[test]
    fn single_word_instructions() {
        assert_eq!(
            parse("WORKDIR /srv").unwrap(),
            Change::WorkingDir("/srv".into())
        );
        assert_eq!(
            parse("USER 1000:1000").unwrap(),
            Change::User("1000:1000".into())
        );
        assert_eq!(
            parse("STOPSIGNAL SIGTERM").unwrap(),
            Change::StopSignal("SIGTERM".into())
        );
        assert_eq!(
            parse("STOPSIGNAL 9").unwrap(),
            Change::StopSignal("9".into())
        );
        assert!(parse("USER a b").is_err());
        assert!(parse("STOPSIGNAL SIG;rm").is_err());
    }

    #[test]
    fn labels_ports_volumes() {
        assert_eq!(
            parse(r#"LABEL a=b "c d"=e"#).unwrap(),
            Change::Label(vec![("a".into(), "b".into()), ("c d".into(), "e".into())])
        );
        assert!(parse("LABEL novalue").is_err());
        assert_eq!(
            parse("EXPOSE 80 53/udp 8000-8002").unwrap(),
            Change::Expose(s(&["80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"]))
        );
        assert!(parse("EXPOSE 70000").is_err());
        assert!(parse("EXPOSE 80/xyz").is_err());
        assert!(parse("EXPOSE 90-80").is_err());
        assert_eq!(
            parse(r#"VOLUME ["/data", "/logs"]"#).unwrap(),
            Change::Volume(s(&["/data", "/logs"]))
        );
        assert_eq!(
            parse("VOLUME /a /b").unwrap(),
            Change::Volume(s(&["/a", "/b"]))
        );
    }

    #[test]
    fn unknown_or_empty_instructions_are_named() {
        let e = parse("RUN rm -rf /").unwrap_err();
        assert!(e.to_string().contains("unsupported instruction RUN"), "{e}");
        assert!(parse("").is_err());
        assert!(parse("   ").is_err());
    }

    #[test]
    fn apply_in_order() {
        let mut cfg = Config::default();
        cfg.set_env(Some(s(&["PATH=/bin", "KEEP=1"])));
        cfg.set_cmd(Some(s(&["sh"])));
        cfg.set_working_dir(Some("/app".into()));
        let changes = parse_all(&[
            "ENV PATH=/usr/bin NEW=x",
            "ENTRYPOINT [\"/bin/tool\"]",
            "WORKDIR sub/../data",
            "USER nobody",
            "LABEL a=1",
            "LABEL a=2 b=3",
            "EXPOSE 80",
            "EXPOSE 80/tcp 443",
            "VOLUME /v",
            "STOPSIGNAL SIGINT",
        ])
        .unwrap();
        apply(&mut cfg, &changes);
        assert_eq!(
            cfg.env().clone().unwrap(),
            s(&["PATH=/usr/bin", "KEEP=1", "NEW=x"])
        );
        assert_eq!(cfg.entrypoint().clone().unwrap(), s(&["/bin/tool"]));
        assert_eq!(cfg.cmd(), &None, "ENTRYPOINT resets the inherited Cmd");
        assert_eq!(cfg.working_dir().as_deref(), Some("/app/data"));
        assert_eq!(cfg.user().as_deref(), Some("nobody"));
        let labels = cfg.labels().clone().unwrap();
        assert_eq!(labels.get("a").map(String::as_str), Some("2"));
        assert_eq!(labels.get("b").map(String::as_str), Some("3"));
        assert_eq!(
            cfg.exposed_ports().clone().unwrap(),
            s(&["80/tcp", "443/tcp"])
        );
        assert_eq!(cfg.volumes().clone().unwrap(), s(&["/v"]));
        assert_eq!(cfg.stop_signal().as_deref(), Some("SIGINT"));

        let mut cfg = Config::default();
        apply(
            &mut cfg,
            &parse_all(&["CMD [\"-v\"]", "ENTRYPOINT [\"/bin/tool\"]"]).unwrap(),
        );
        assert_eq!(
            cfg.cmd().clone().unwrap(),
            s(&["-v"]),
            "an earlier CMD is kept"
        );
    }
}

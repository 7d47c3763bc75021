//! Go clients (containerd's shim, conmon) may spell long flags with one dash, as Go's flag
//! package allows: `-no-subreaper`, `-bundle /b`. clap reads those as clusters of short
//! flags, so they are rewritten to the double-dash form before parsing.

use std::collections::HashSet;
use std::ffi::OsString;

use clap::CommandFactory;

use super::Cli;

/// Every long flag name any subcommand (or the top level) knows.
fn known_long_flags() -> HashSet<String> {
    fn walk(cmd: &clap::Command, out: &mut HashSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                out.insert(long.to_string());
            }
            if let Some(aliases) = arg.get_all_aliases() {
                out.extend(aliases.into_iter().map(str::to_string));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = HashSet::new();
    walk(&Cli::command(), &mut out);
    out
}

/// Rewrites `-name[=value]` to `--name[=value]` when `name` is a known long flag of
/// two or more characters. Stops at `--`, after which everything belongs to the
/// container's process.
pub fn normalize_go_style_flags(args: Vec<OsString>) -> Vec<OsString> {
    let known = known_long_flags();
    let mut out = Vec::with_capacity(args.len());
    let mut rest_is_positional = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || rest_is_positional {
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            rest_is_positional = true;
            out.push(arg);
            continue;
        }
        let rewritten = text
            .strip_prefix('-')
            .filter(|rest| !rest.starts_with('-'))
            .and_then(|rest| {
                let name = rest.split_once('=').map_or(rest, |(n, _)| n);
                (name.len() >= 2 && known.contains(name)).then(|| format!("-{text}"))
            });
        out.push(rewritten.map_or(arg, OsString::from));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_go_style_flags(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            norm(&[
                "rt",
                "-root",
                "/r",
                "run",
                "-no-subreaper",
                "-bundle=/b",
                "-d",
                "id"
            ]),
            [
                "rt",
                "--root",
                "/r",
                "run",
                "--no-subreaper",
                "--bundle=/b",
                "-d",
                "id"
            ]
        );
    }

    #[test]
    fn arguments_after_double_dash_are_untouched() {
        assert_eq!(
            norm(&["rt", "run", "--", "-bundle"]),
            ["rt", "run", "--", "-bundle"]
        );
    }

    #[test]
    fn unknown_single_dash_words_are_untouched() {
        assert_eq!(
            norm(&["rt", "kill", "id", "-9"]),
            ["rt", "kill", "id", "-9"]
        );
    }
}

//! Small host-side helpers the client harnesses share: a terminal for commands that need
//! one, unmounting what a daemon left under its directory, and finding runc.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::container::{capture, Outcome};

/// Quotes a word for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs `argv` inside script(1), which gives it a terminal (33 rows by 77 columns), with
/// the extra environment `env`; output captured.
pub fn in_terminal(argv: &[&str], env: &[(&str, &Path)]) -> Outcome {
    let mut cmd = terminal_command(argv);
    cmd.stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    capture(cmd)
}

/// `argv` run inside script(1) in a 33x77 terminal, as a command the caller completes.
pub fn terminal_command(argv: &[&str]) -> Command {
    let words: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    let line = format!("stty rows 33 cols 77; {}", words.join(" "));
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    cmd
}

/// Lazily unmounts every mount at or below `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let root = dir.to_string_lossy().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut under: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&root))
        .collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in under {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
}

/// runc from PATH, the reference runtime the client scenarios also run on.
pub fn runc() -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "command -v runc"])
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "runc is not installed (hack/install-deps.sh installs it)"
    );
    PathBuf::from(path)
}

/// Whether CRIU can work on this machine (`criu check`), and CRIU's reason when it cannot
/// (Debian's criu 3.17 cannot on this kernel: "kerndat_vdso_fill_symtable failed").
pub fn criu_check() -> Result<(), String> {
    // Its log goes to a file of ours: where it goes by default depends on the host's
    // criu configuration (it printed nothing at all on this one at times).
    let log = tempfile::NamedTempFile::new().map_err(|e| format!("log file: {e}"))?;
    let out = Command::new("criu")
        .args(["check", "-v2", "-o"])
        .arg(log.path())
        .output()
        .map_err(|e| format!("cannot run criu: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string()
        + &String::from_utf8_lossy(&out.stderr)
        + &std::fs::read_to_string(log.path()).unwrap_or_default();
    // criu check has exited 0 even when kerndat fails; its output says whether it works.
    if out.status.success() && text.contains("Looks good") {
        return Ok(());
    }
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Error"))
        .map(|l| l.split_once("): ").map_or(l, |(_, msg)| msg).trim())
        .collect();
    if errors.is_empty() {
        return Err(format!(
            "criu check failed ({}) and said nothing",
            out.status
        ));
    }
    Err(errors.join("; "))
}

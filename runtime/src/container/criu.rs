//! What `checkpoint` and `restore` share about CRIU: finding the binary, its version,
//! runc's `--manage-cgroups-mode` names, and turning a CRIU failure into one line that
//! carries CRIU's own reason from its log.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The oldest CRIU the runtime drives (libcontainer's checkpoint asks for the same), so an
/// image it could write can be read back.
pub const MINIMUM_VERSION: u32 = 31500;

/// The `criu` to run: the global `--criu` when given (runc's flag), else `criu` on PATH.
pub fn binary(explicit: Option<&str>) -> Option<PathBuf> {
    if let Some(path) = explicit.filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_absolute() || path.components().count() > 1 {
            return path.is_file().then_some(path);
        }
        return on_path(&path.to_string_lossy());
    }
    on_path("criu")
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

/// Fails with one line when CRIU is missing or older than [`MINIMUM_VERSION`]; returns the
/// binary to run otherwise. `what` is the user's action, e.g. "cannot restore container x".
pub fn require(explicit: Option<&str>, what: &str) -> Result<PathBuf> {
    let Some(path) = binary(explicit) else {
        bail!("{what}: criu is not installed (install Debian's criu package)");
    };
    let mut criu = rust_criu::Criu::new_with_criu_path(path.to_string_lossy().into_owned())
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    let version = criu.get_criu_version().map_err(|e| {
        anyhow::anyhow!("{what}: cannot ask {} for its version: {e}", path.display())
    })?;
    if version < MINIMUM_VERSION {
        bail!(
            "{what}: criu {} is too old, {} or newer is needed",
            dotted(version),
            dotted(MINIMUM_VERSION)
        );
    }
    Ok(path)
}

/// CRIU's packed version (major*10000 + minor*100 + sublevel) as `major.minor.sublevel`.
fn dotted(version: u32) -> String {
    format!(
        "{}.{}.{}",
        version / 10000,
        version / 100 % 100,
        version % 100
    )
}

/// runc's `--manage-cgroups-mode` names (`soft` is CRIU's default for containers).
pub const CGROUP_MODES: [&str; 4] = ["soft", "full", "strict", "ignore"];

/// The CRIU options `checkpoint` and `restore` share, with runc's flag names.
#[derive(clap::Args, Debug, Clone)]
pub struct SharedFlags {
    /// Allow open TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: soft, full, strict or ignore.
    #[arg(long = "manage-cgroups-mode", default_value = "soft", value_parser = CGROUP_MODES)]
    pub manage_cgroups_mode: String,
}

/// The CRIU mode for one of [`CGROUP_MODES`].
pub fn cgroup_mode(name: &str) -> rust_criu::CgMode {
    match name {
        "full" => rust_criu::CgMode::FULL,
        "strict" => rust_criu::CgMode::STRICT,
        "ignore" => rust_criu::CgMode::IGNORE,
        _ => rust_criu::CgMode::SOFT,
    }
}

/// The first `Error` line of a CRIU log, without its timestamp: the cause (the lines after
/// it are usually consequences such as "Restoring FAILED").
pub fn reason_from_log(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    first_error(&text)
}

fn first_error(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("Error"))?.trim();
    // CRIU prefixes each line with "(seconds.micros) ".
    let line = match line
        .strip_prefix('(')
        .and_then(|rest| rest.split_once(") "))
    {
        Some((stamp, rest)) if stamp.chars().all(|c| c.is_ascii_digit() || c == '.') => rest,
        _ => line,
    };
    Some(line.trim().to_string())
}

/// One line for a failed CRIU run: `what`, the error, and CRIU's reason with where its log
/// is, when the log says why.
pub fn failure(what: &str, error: &str, log: &Path) -> anyhow::Error {
    match reason_from_log(log) {
        Some(reason) => anyhow::anyhow!("{what}: {error} (criu: {reason}; log: {})", log.display()),
        None => anyhow::anyhow!("{what}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_error_line_is_the_reason_without_its_timestamp() {
        let log = "(00.001) starting\n\
                   (00.011) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n\
                   (00.012) Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed\n";
        assert_eq!(
            first_error(log).unwrap(),
            "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds"
        );
        assert_eq!(first_error("(00.1) all fine\n"), None);
    }

    #[test]
    fn versions_print_dotted() {
        assert_eq!(dotted(31701), "3.17.1");
        assert_eq!(dotted(MINIMUM_VERSION), "3.15.0");
    }
}

//! How the container's program is found before it is exec'd, as runc does it.
//! libcontainer 0.7's default executor refuses any process whose env has no `PATH`, even
//! when `args[0]` is a path (`/bin/sleep`); runc only needs `PATH` to search a bare name.
//! Images built `FROM scratch` often set no env at all (containerd's CRI plugin ran our
//! test pause image, `["/bin/sleep", "inf"]` with no env, and libcontainer refused it), so
//! this executor checks a path directly and searches `PATH` only for a bare name.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

/// libcontainer's default executor with runc's rule for finding the program.
#[derive(Clone)]
pub struct PathLookupExecutor;

impl Executor for PathLookupExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        validate_program(spec)
    }
}

/// Checks, inside the container's root, that `process.args[0]` names an executable file:
/// a name with a `/` as it is, a bare name through the process env's `PATH`.
pub fn validate_program(spec: &Spec) -> Result<(), ExecutorValidationError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("spec did not contain process".into()))?;
    let Some(program) = process.args().as_ref().and_then(|a| a.first()) else {
        return Ok(()); // libcontainer reports missing args itself
    };
    let path_var = process
        .env()
        .as_ref()
        .and_then(|env| env.iter().find_map(|e| e.strip_prefix("PATH=")));
    // runc's (Go's exec.LookPath) words, which podman maps to exit statuses 127 ("not
    // found", "no such file or directory") and 126 ("permission denied").
    let found = find_program(program, path_var).ok_or_else(|| {
        invalid(if program.contains('/') {
            format!("exec: {program:?}: stat {program}: no such file or directory")
        } else {
            format!("exec: {program:?}: executable file not found in $PATH")
        })
    })?;
    if found.is_dir() {
        return Err(invalid(format!("exec: {program:?}: is a directory")));
    }
    if !is_executable_file(&found) {
        return Err(invalid(format!("exec: {program:?}: permission denied")));
    }
    Ok(())
}

fn invalid(msg: String) -> ExecutorValidationError {
    ExecutorValidationError::ArgValidationError(msg)
}

/// Where `program` is: itself when it has a `/`, else the first `PATH` entry holding it
/// (none without `PATH`, as runc).
fn find_program(program: &str, path_var: Option<&str>) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return path.exists().then_some(path);
    }
    path_var?
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(program))
        .find(|candidate| candidate.exists())
}

fn is_executable_file(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_needs_no_path_variable() {
        assert_eq!(
            find_program("/bin/sh", None),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(find_program("/no/such/program", None), None);
    }

    #[test]
    fn a_bare_name_is_searched_in_path_only() {
        assert_eq!(find_program("sh", None), None);
        assert_eq!(
            find_program("sh", Some("/nonexistent:/bin")),
            Some(PathBuf::from("/bin/sh"))
        );
    }

    #[test]
    fn directories_are_not_executables() {
        assert!(!is_executable_file(Path::new("/bin")));
        assert!(is_executable_file(Path::new("/bin/sh")));
    }
}

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
    // found", "no such file or directory") and 126 ("permission denied"); any other
    // failure to stat it (a symlink loop) with its errno text.
    let found = find_program(program, path_var)
        .map_err(|e| invalid(format!("exec: {program:?}: stat {program}: {e}")))?
        .ok_or_else(|| {
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
/// (none without `PATH`, as runc). A path that cannot be looked at for another reason than
/// not existing (a symlink loop, a component that is not a directory, no permission) is
/// that error, as runc reports it (`stat /bin/x: too many levels of symbolic links`); in a
/// `PATH` search such entries are skipped, as runc's lookup skips them.
fn find_program(program: &str, path_var: Option<&str>) -> std::io::Result<Option<PathBuf>> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return match std::fs::metadata(&path) {
            Ok(_) => Ok(Some(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
    }
    let Some(path_var) = path_var else {
        return Ok(None);
    };
    Ok(path_var
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(program))
        .find(|candidate| candidate.exists()))
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
            find_program("/bin/sh", None).unwrap(),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(find_program("/no/such/program", None).unwrap(), None);
    }

    #[test]
    fn a_bare_name_is_searched_in_path_only() {
        assert_eq!(find_program("sh", None).unwrap(), None);
        assert_eq!(
            find_program("sh", Some("/nonexistent:/bin")).unwrap(),
            Some(PathBuf::from("/bin/sh"))
        );
    }

    #[test]
    fn a_symlink_loop_is_its_error() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("b", dir.path().join("a")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
        let a = dir.path().join("a");
        let err = find_program(&a.to_string_lossy(), None).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn directories_are_not_executables() {
        assert!(!is_executable_file(Path::new("/bin")));
        assert!(is_executable_file(Path::new("/bin/sh")));
    }
}

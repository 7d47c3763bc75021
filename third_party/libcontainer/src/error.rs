use crate::container::ContainerStatus;

/// PATCH (runtime, see third_party/README.md): an error and all its causes on one line
/// (`mounts[7] (tmpfs on /a/b): ...: not a directory`), the one formatter of every
/// error the runtime shows a user or a client. The container's init sends this over the
/// channel, so what failed inside it reaches the caller whole instead of as its outermost
/// "failed to prepare rootfs". A cause already contained in the text so far is not
/// repeated. Error numbers are spelled as runc (Go) spells them (`go_errno_text`).
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.retain(|p| !p.is_empty());
    go_errno_text(&parts.join(": "))
}

/// PATCH (runtime): the error numbers in `text` spelled as Go's syscall package spells
/// them, as runc reports them: `no such file or directory`, not Rust's
/// `No such file or directory (os error 2)` nor nix's `ENOENT: No such file or
/// directory`. Clients match these words in a runtime's error (podman maps "no such file
/// or directory" and "executable file not found" to exit 127, "permission denied" to
/// 126; containerd's shim looks for "no such process"). Go's table is the C library's
/// strerror with the first letter lowered when the second is lowercase ("remote I/O
/// error", "RPC struct is bad" keep theirs).
pub fn go_errno_text(text: &str) -> String {
    if !text.contains("(os error ") && !text.contains(": ") {
        return text.to_string();
    }
    let mut out = text.to_string();
    for errno in 1..=133 {
        let rust = std::io::Error::from_raw_os_error(errno).to_string();
        let Some(strerror) = rust.strip_suffix(&format!(" (os error {errno})")) else {
            continue;
        };
        let go = go_spelling(strerror);
        let nix = nix::errno::Errno::from_raw(errno).to_string();
        if out.contains(&rust) {
            out = out.replace(&rust, &go);
        }
        if nix.contains(": ") && out.contains(&nix) {
            out = out.replace(&nix, &go);
        }
    }
    out
}

/// strerror's text as Go's mkerrors writes it: the first letter lowered when the second
/// is lowercase.
fn go_spelling(strerror: &str) -> String {
    let mut chars = strerror.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_ascii_uppercase() && second.is_ascii_lowercase() => {
            let mut go = first.to_ascii_lowercase().to_string();
            go.push_str(&strerror[first.len_utf8()..]);
            go
        }
        _ => strerror.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MissingSpecError {
    #[error("missing process in spec")]
    Process,
    #[error("missing linux in spec")]
    Linux,
    #[error("missing args in the process spec")]
    Args,
    #[error("missing root in the spec")]
    Root,
}

#[derive(Debug, thiserror::Error)]
pub enum LibcontainerError {
    #[error("failed operation due to incompatible container status: `{0}`")]
    IncorrectStatus(ContainerStatus),
    #[error("container already exists")]
    Exist,
    #[error("container state directory does not exist")]
    NoDirectory,
    #[error("invalid input")]
    InvalidInput(String),
    #[error("requires at least one executors")]
    NoExecutors,
    #[error("rootless container requires valid user namespace definition")]
    NoUserNamespace,

    // Invalid inputs
    #[error(transparent)]
    InvalidID(#[from] ErrInvalidID),
    #[error(transparent)]
    MissingSpec(#[from] MissingSpecError),
    #[error(transparent)]
    InvalidSpec(#[from] ErrInvalidSpec),

    // Errors from submodules and other errors
    #[error(transparent)]
    Tty(#[from] crate::tty::TTYError),
    #[error(transparent)]
    UserNamespace(#[from] crate::user_ns::UserNamespaceError),
    #[error(transparent)]
    NotifyListener(#[from] crate::notify_socket::NotifyListenerError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    State(#[from] crate::container::state::StateError),
    #[error("oci spec error")]
    Spec(#[from] oci_spec::OciSpecError),
    #[error(transparent)]
    MainProcess(#[from] crate::process::container_main_process::ProcessError),
    #[error(transparent)]
    Procfs(#[from] procfs::ProcError),
    #[error(transparent)]
    Capabilities(#[from] caps::errors::CapsError),
    #[error(transparent)]
    CgroupManager(#[from] libcgroups::common::AnyManagerError),
    #[error(transparent)]
    CgroupCreate(#[from] libcgroups::common::CreateCgroupSetupError),
    #[error(transparent)]
    CgroupGet(#[from] libcgroups::common::GetCgroupSetupError),
    #[error[transparent]]
    Checkpoint(#[from] crate::container::CheckpointError),
    #[error[transparent]]
    CreateContainerError(#[from] CreateContainerError),
    #[error(transparent)]
    NetDevicesError(#[from] crate::utils::NetDevicesError),
    #[error(transparent)]
    NetworkError(#[from] crate::network::NetworkError),
    #[error(transparent)]
    IntelRdt(#[from] crate::process::intel_rdt::IntelRdtError),

    // Catch all errors that are not covered by the above
    #[error("syscall error")]
    OtherSyscall(#[source] nix::Error),
    #[error("io error")]
    OtherIO(#[source] std::io::Error),
    #[error("serialization error")]
    OtherSerialization(#[source] serde_json::Error),
    #[error("{0}")]
    OtherCgroup(String),
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ErrInvalidID {
    #[error("container id can't be empty")]
    Empty,
    #[error("container id contains invalid characters: {0}")]
    InvalidChars(char),
    #[error("container id can't be used to represent a file name (such as . or ..)")]
    FileName,
}

#[derive(Debug, thiserror::Error)]
pub enum ErrInvalidSpec {
    #[error("runtime spec has incompatible version. Only 1.X.Y is supported")]
    UnsupportedVersion,
    // PATCH (runtime): process.env refused before anything is created, in runc's words.
    #[error(transparent)]
    Env(#[from] crate::utils::EnvError),
    #[error("apparmor is specified but not enabled on this system")]
    AppArmorNotEnabled,
    // PATCH (runtime): crate::lsm.
    #[error("{field} is set, but {lsm} is not enabled on this host")]
    LsmNotEnabled {
        field: &'static str,
        lsm: &'static str,
    },
    #[error("invalid io priority or class.")]
    IoPriority,
    #[error("invalid scheduler config for process: {0}")]
    Scheduler(String),
    // PATCH (runtime, see third_party/README.md): runc's wording, without the name of
    // a program the user did not run, and the field and flag that decide it.
    #[error(
        "cannot allocate tty if the runtime will detach without setting console socket (process.terminal is true and no --console-socket was given)"
    )]
    ConsoleSocketRequired,
    #[error(
        "cannot use console socket if the runtime will not detach or allocate tty (--console-socket was given but process.terminal is false)"
    )]
    InvalidConsoleSocket,
    #[error("idmapped mount requires bind mount")]
    MountIdmapNonBind,
    #[error("idmapped mount requires uid/gid mappings or a usable user namespace")]
    MountIdmapMissingMappings,
    #[error("idmapped mount is not supported")]
    MountIdmapUnsupported,
    #[error("idmapped mounts are not supported in rootless containers")]
    MountIdmapRootless,
    #[error("invalid netns path: {0}")]
    InvalidNetNsPath(String),
    #[error("unable to set hostname without a private UTS namespace")]
    HostnameWithoutUTS,
    #[error("unable to set domainname without a private UTS namespace")]
    DomainnameWithoutUTS,
    #[error("user namespace mappings specified, but user namespace isn't enabled in the config")]
    UserMappingsWithoutNamespace,
    #[error("unable to restrict sys entries without a private MNT namespace")]
    SysEntriesWithoutMntNamespace,
    // PATCH (runtime, see third_party/README.md): runc's texts for rootfsPropagation.
    #[error("rootfsPropagation={0} is not supported")]
    RootfsPropagation(String),
    #[error("rootfsPropagation of [r]private is not safe without pivot_root")]
    PrivateRootfsPropagationWithoutPivot,
    // PATCH (runtime, see third_party/README.md): runc's texts for notify profiles.
    #[error("{0}")]
    SeccompNotify(&'static str),
    #[error("sysctl {0} is not allowed in the hosts ipc namespace")]
    SysctlNotAllowedInHostIpc(String),
    #[error("sysctl {0} not allowed in host network namespace")]
    SysctlNotAllowedInHostNet(String),
    #[error("sysctl {0} is not allowed as it conflicts with the OCI {1} field")]
    SysctlConflictsWithOci(String, String),
    #[error("setting ucounts without a user namespace not allowed: {0}")]
    SysctlNotAllowedInHostUser(String),
    #[error("sysctl {0} is not in a separate kernel namespace")]
    SysctlNotInSeparateNamespace(String),
    #[error("invalid intelRdt.closID (must not contain '.', '..', or '/')")]
    InvalidIntelRdtClosId,
    #[error("time namespace offsets specified, but time namespace isn't enabled in the config")]
    TimeNamespace,
    #[error(
        "time namespace enabled, but both namespace path and time offsets specified -- you may only provide one"
    )]
    TimeOffsetsWithPath,
}

#[derive(Debug, thiserror::Error)]
pub struct CreateContainerError(Box<LibcontainerError>, Option<Box<LibcontainerError>>);

impl CreateContainerError {
    pub(crate) fn new(
        run_error: LibcontainerError,
        cleanup_error: Option<LibcontainerError>,
    ) -> Self {
        Self(Box::new(run_error), cleanup_error.map(Box::new))
    }
}

impl std::fmt::Display for CreateContainerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // PATCH (runtime): no "failed to create container: " prefix; the caller says
        // what it was doing (create, run or exec, which creates no container).
        write!(f, "{}", self.0)?;
        if let Some(cleanup_err) = &self.1 {
            write!(f, ". error during cleanup: {}", cleanup_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use libcgroups::common::CreateCgroupSetupError;

    use super::{CreateContainerError, ErrInvalidID};

    #[test]
    fn test_create_container() {
        let create_container_err =
            CreateContainerError::new(CreateCgroupSetupError::NonDefault.into(), None);
        let msg = format!("{}", create_container_err);
        assert_eq!("non default cgroup root not supported", msg);

        let create_container_err = CreateContainerError::new(
            CreateCgroupSetupError::NonDefault.into(),
            Some(ErrInvalidID::Empty.into()),
        );
        let msg = format!("{}", create_container_err);
        assert_eq!(
            "non default cgroup root not supported. \
         error during cleanup: container id can't be empty",
            msg
        );
    }
    #[test]
    fn chain_gives_every_cause_once() {
        #[derive(Debug, thiserror::Error)]
        enum Outer {
            #[error("failed to prepare rootfs")]
            Rootfs(#[source] Inner),
        }
        #[derive(Debug, thiserror::Error)]
        enum Inner {
            #[error("mounts[7] (tmpfs on /a/b)")]
            Mount(#[source] std::io::Error),
        }
        let err = Outer::Rootfs(Inner::Mount(std::io::Error::from_raw_os_error(20)));
        assert_eq!(
            super::chain(&err),
            "failed to prepare rootfs: mounts[7] (tmpfs on /a/b): not a directory"
        );
    }

    #[test]
    fn errno_texts_are_spelled_as_go_does() {
        let cases = [
            ("stat /x: No such file or directory (os error 2)", "stat /x: no such file or directory"),
            ("setrlimit: EPERM: Operation not permitted", "setrlimit: operation not permitted"),
            ("exec: Permission denied (os error 13)", "exec: permission denied"),
            ("read: Remote I/O error (os error 121)", "read: remote I/O error"),
            ("mount: EINVAL: Invalid argument", "mount: invalid argument"),
            // Text that names no error number is left as it is.
            ("container not running", "container not running"),
            ("A: B (os error x)", "A: B (os error x)"),
        ];
        for (rust, go) in cases {
            assert_eq!(super::go_errno_text(rust), go, "{rust}");
        }
        // Idempotent: a text formatted twice (the init's, then the caller's) stays.
        assert_eq!(
            super::go_errno_text("mounts[1]: not a directory"),
            "mounts[1]: not a directory"
        );
    }

    #[test]
    fn test_libcontainer_error_msg() {
        use crate::container::ContainerStatus::*;
        use crate::error::LibcontainerError::IncorrectStatus;

        assert_eq!(
            "failed operation due to incompatible container status: `Creating`",
            format!("{}", IncorrectStatus(Creating))
        );
        assert_eq!(
            "failed operation due to incompatible container status: `Created`",
            format!("{}", IncorrectStatus(Created))
        );
        assert_eq!(
            "failed operation due to incompatible container status: `Stopped`",
            format!("{}", IncorrectStatus(Stopped))
        );
        assert_eq!(
            "failed operation due to incompatible container status: `Running`",
            format!("{}", IncorrectStatus(Running))
        );
        assert_eq!(
            "failed operation due to incompatible container status: `Paused`",
            format!("{}", IncorrectStatus(Paused))
        );
    }
}

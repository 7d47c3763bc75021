//! The CRIU side of `restore`: the RESTORE request runc sends (through rust-criu), the
//! rootfs bind mount CRIU needs as its root, and the notifications CRIU sends while it
//! restores (hooks at `setup-namespaces`, the restored pid at `post-restore`, the
//! terminal at `orphan-pts-master`).
//!
//! rust-criu 0.6 has no setter for a few request fields runc fills (cgroup roots,
//! join-ns, LSM profile and mount context, evasive devices). CRIU reads the file named
//! by `CRIU_CONFIG_FILE` before it applies the RPC options, also in RPC mode, so those
//! go into a config file of this restore's own.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use libcontainer::container::State;
use libcontainer::oci_spec::runtime::{Hooks, LinuxNamespaceType, Spec};
use rust_criu::rust_criu_protobuf::rpc::Criu_notify;

use super::criu;

/// The log CRIU writes into the work directory (the images directory without one).
pub const LOG_FILE: &str = "restore.log";

/// Which CRIU options the user chose (runc's restore flags).
#[derive(Debug)]
pub struct Flags {
    pub shared: criu::SharedFlags,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
}

/// Everything one restore needs.
pub struct Request<'a> {
    pub criu: &'a Path,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub images: &'a Path,
    pub work: Option<&'a Path>,
    /// The bind mount of the rootfs CRIU restores into.
    pub root: &'a Path,
    /// The container's state directory (for CRIU's extra config file).
    pub state_dir: &'a Path,
    /// The container's cgroup path (mapped into the container's cgroup v1 mounts).
    pub cgroup_path: &'a Path,
    /// CRIU `cgroup-root`s: controller and cgroup the restored tasks go to.
    pub cgroup_roots: Vec<(String, PathBuf)>,
    pub flags: &'a Flags,
    /// The container's state, handed to hooks (its pid is filled in from CRIU).
    pub hook_state: State,
    /// Where the terminal master goes when the process has a terminal.
    pub console_socket: Option<PathBuf>,
}

/// What the notification callback needs and learns. rust-criu takes a plain function
/// pointer, so this lives in a static for the duration of one `restore` call.
struct Notifications {
    hooks: Option<Hooks>,
    state: State,
    state_dir: PathBuf,
    console_socket: Option<PathBuf>,
    restored_pid: Option<i32>,
    terminal_sent: bool,
    failure: Option<String>,
}

/// What a successful restore reports.
pub struct Restored {
    /// The restored init, a child of the runtime (CRIU restores it as its sibling).
    pub pid: i32,
    /// Whether CRIU handed over a terminal (sent on to the console socket).
    pub terminal_sent: bool,
}

static NOTIFICATIONS: Mutex<Option<Notifications>> = Mutex::new(None);

/// Restores the checkpoint; returns the restored init, or one line saying why not
/// (CRIU's own reason from its log when it has one).
pub fn restore(req: Request<'_>, what: &str) -> Result<Restored> {
    let images = File::open(req.images)
        .with_context(|| format!("{what}: cannot open {}", req.images.display()))?;
    let work = req
        .work
        .map(|w| File::open(w).with_context(|| format!("{what}: cannot open {}", w.display())))
        .transpose()?;
    let log = req.work.unwrap_or(req.images).join(LOG_FILE);

    let mut c = rust_criu::Criu::new_with_criu_path(req.criu.to_string_lossy().into_owned())
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    c.set_images_dir_fd(images.as_raw_fd());
    if let Some(work) = &work {
        c.set_work_dir_fd(work.as_raw_fd());
    }
    c.set_log_file(LOG_FILE.to_string());
    c.set_log_level(4);
    // The restored init becomes our child, so `restore` without -d can wait for it.
    c.set_rst_sibling(true);
    c.set_root(req.root.to_string_lossy().into_owned());
    c.set_manage_cgroups(true);
    c.cgroups_mode(criu::cgroup_mode(&req.flags.shared.manage_cgroups_mode));
    c.set_notify_scripts(true);
    c.set_notify_cb(on_notify);
    c.set_shell_job(req.flags.shared.shell_job);
    c.set_ext_unix_sk(req.flags.shared.ext_unix_sk);
    c.set_tcp_established(req.flags.shared.tcp_established);
    c.set_file_locks(req.flags.shared.file_locks);
    // runc always restores the network namespace empty: it configures no network itself.
    c.set_empty_net_ns(true);
    c.set_orphan_pts_master(true);
    c.set_auto_dedup(req.flags.auto_dedup);
    c.set_lazy_pages(req.flags.lazy_pages);
    for (key, val) in
        external_mounts(req.spec, req.bundle, req.cgroup_path).context(what.to_string())?
    {
        c.set_external_mount(key, val);
    }
    // Kept open until CRIU is done: it inherits them.
    let mut inherited: Vec<OwnedFd> = Vec::new();
    for (fd, key) in external_namespaces(req.spec).context(what.to_string())? {
        c.add_inherit_fd(fd.as_raw_fd(), key)
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        inherited.push(fd);
    }
    for (fd, key) in inherited_stdio(req.images).context(what.to_string())? {
        c.add_inherit_fd(fd.as_raw_fd(), key)
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        inherited.push(fd);
    }
    let config = ExtraConfig::write(&req).context(what.to_string())?;

    *lock() = Some(Notifications {
        hooks: req.spec.hooks().clone(),
        state: req.hook_state,
        state_dir: req.state_dir.to_path_buf(),
        console_socket: req.console_socket,
        restored_pid: None,
        terminal_sent: false,
        failure: None,
    });
    // A log left by an earlier attempt must not pass for this one's reason.
    let _ = std::fs::remove_file(&log);
    let result = c.restore();
    let notes = lock().take();
    drop(config);
    drop(inherited);

    let notes = notes.context("the CRIU notifications went missing")?;
    if let Some(failure) = notes.failure {
        bail!("{what}: {failure}");
    }
    if let Err(e) = result {
        return Err(criu::failure(what, &e.to_string(), &log));
    }
    let pid = notes
        .restored_pid
        .with_context(|| format!("{what}: criu did not report the restored process"))?;
    Ok(Restored {
        pid,
        terminal_sent: notes.terminal_sent,
    })
}

fn lock() -> std::sync::MutexGuard<'static, Option<Notifications>> {
    NOTIFICATIONS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// CRIU's notifications, answered as runc answers them. A non-zero return makes CRIU
/// abort the restore; the reason is kept for the error line.
fn on_notify(script: &str, notify: &Criu_notify, fd: Option<RawFd>) -> i32 {
    let mut guard = lock();
    let Some(notes) = guard.as_mut() else {
        return 0;
    };
    let outcome = match script {
        "setup-namespaces" => run_hooks_at_setup(notes, notify.pid()),
        "post-restore" => {
            notes.restored_pid = Some(notify.pid());
            Ok(())
        }
        "orphan-pts-master" => send_terminal(notes, fd).map(|()| notes.terminal_sent = true),
        _ => Ok(()),
    };
    match outcome {
        Ok(()) => 0,
        Err(err) => {
            notes.failure = Some(format!("{err:#}"));
            1
        }
    }
}

/// prestart and createRuntime hooks, with the pid CRIU gives for the restored init.
fn run_hooks_at_setup(notes: &mut Notifications, pid: i32) -> Result<()> {
    let Some(hooks) = &notes.hooks else {
        return Ok(());
    };
    notes.state.pid = Some(pid);
    #[allow(deprecated)]
    let prestart = hooks.prestart().as_ref();
    for (name, list) in [
        ("prestart", prestart),
        ("createRuntime", hooks.create_runtime().as_ref()),
    ] {
        libcontainer::hooks::run_hooks(
            list,
            Some(&notes.state),
            Some(&notes.state_dir),
            None,
            None,
        )
        .map_err(|e| anyhow::anyhow!("{}", libcontainer::error::chain(&e)))
        .with_context(|| format!("{name} hook failed"))?;
    }
    Ok(())
}

/// Hands the restored terminal's master to the console socket, as `create` does.
fn send_terminal(notes: &Notifications, fd: Option<RawFd>) -> Result<()> {
    let fd = fd.context("criu sent no terminal with orphan-pts-master")?;
    let Some(socket) = &notes.console_socket else {
        bail!("the restored process has a terminal but there is no --console-socket to send it to");
    };
    super::send_fd::send_fd(socket, fd, "restored-console")
        .context("cannot hand the restored terminal over")
}

/// runc's external mount map: bind mounts by destination to their (new) source, the
/// cgroup v1 hierarchies (bind mounts of the container's cgroups), /dev/null for masked
/// paths and the device nodes. Unused entries are ignored by CRIU.
fn external_mounts(
    spec: &Spec,
    bundle: &Path,
    cgroup_path: &Path,
) -> Result<Vec<(String, String)>> {
    let mut map = Vec::new();
    for m in spec.mounts().iter().flatten() {
        if is_bind(m) {
            let Some(source) = m.source() else { continue };
            let source = if source.is_absolute() {
                source.clone()
            } else {
                bundle.join(source)
            };
            map.push((
                m.destination().to_string_lossy().into_owned(),
                source.to_string_lossy().into_owned(),
            ));
        } else if m.typ().as_deref() == Some("cgroup") && cgroup_v1() {
            let points = libcgroups::v1::util::list_subsystem_mount_points()
                .map_err(|e| anyhow::anyhow!("cannot list the cgroup v1 mounts: {e}"))?;
            for point in points
                .into_iter()
                .filter(|p| p.starts_with("/sys/fs/cgroup"))
            {
                let inside = cgroup_path
                    .components()
                    .filter(|c| matches!(c, std::path::Component::Normal(_)))
                    .fold(point.clone(), |p, c| p.join(c));
                map.push((
                    point.to_string_lossy().into_owned(),
                    inside.to_string_lossy().into_owned(),
                ));
            }
        }
    }
    let linux = spec.linux().as_ref();
    if linux
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|p| !p.is_empty())
    {
        map.push(("/dev/null".to_string(), "/dev/null".to_string()));
    }
    for dev in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let path = dev.path().to_string_lossy().into_owned();
        map.push((path.clone(), path));
    }
    Ok(map)
}

fn is_bind(m: &libcontainer::oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"))
}

fn cgroup_v1() -> bool {
    matches!(
        libcgroups::common::get_cgroup_setup(),
        Ok(libcgroups::common::CgroupSetup::Legacy | libcgroups::common::CgroupSetup::Hybrid)
    )
}

/// A file descriptor CRIU inherits: open without close-on-exec.
fn open_inheritable(path: &Path) -> Result<OwnedFd> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("invalid path {}", path.display()))?;
    // SAFETY: open(2) on a NUL-terminated path we own; the result is checked below.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot open {}", path.display()));
    }
    // SAFETY: fd was just returned by open and belongs to nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The network and PID namespaces given by path: CRIU restores into them (the checkpoint
/// recorded them as external under runc's keys).
fn external_namespaces(spec: &Spec) -> Result<Vec<(OwnedFd, String)>> {
    let mut out = Vec::new();
    for ns in namespaces_with_path(spec) {
        let (typ, path) = ns;
        let name = match typ {
            LinuxNamespaceType::Network => "net",
            LinuxNamespaceType::Pid => "pid",
            _ => continue,
        };
        let fd = open_inheritable(&path)
            .with_context(|| format!("the {name} namespace {} must exist", path.display()))?;
        out.push((fd, rust_criu::criu_ns_to_key(name)));
    }
    Ok(out)
}

fn namespaces_with_path(spec: &Spec) -> Vec<(LinuxNamespaceType, PathBuf)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ns| Some((ns.typ(), ns.path().clone()?)))
        .collect()
}

/// The checkpointed init's stdio that were pipes (descriptors.json, written at checkpoint)
/// are re-connected to ours, as runc does; files and terminals CRIU reopens itself.
fn inherited_stdio(images: &Path) -> Result<Vec<(OwnedFd, String)>> {
    let path = images.join("descriptors.json");
    let Ok(text) = std::fs::read(&path) else {
        return Ok(Vec::new());
    };
    let descriptors: Vec<String> =
        serde_json::from_slice(&text).with_context(|| format!("invalid {}", path.display()))?;
    let mut out = Vec::new();
    for (n, key) in descriptors.into_iter().enumerate().take(3) {
        if !key.contains("pipe:") {
            continue;
        }
        // rust-criu gives CRIU /dev/null as stdin, so each is passed as a fresh duplicate
        // (dup(2) leaves close-on-exec off) rather than by its number.
        // SAFETY: dup(2) of one of our standard descriptors; the result is checked.
        let fd = unsafe { libc::dup(n as i32) };
        if fd < 0 {
            continue;
        }
        // SAFETY: fd was just returned by dup and belongs to nobody else.
        out.push((unsafe { OwnedFd::from_raw_fd(fd) }, key));
    }
    Ok(out)
}

/// The options rust-criu cannot put into the request, as a CRIU config file named by
/// `CRIU_CONFIG_FILE` while it exists. A config file the caller named there already is
/// kept: its lines come first. Dropping removes the file and puts the variable back.
struct ExtraConfig {
    path: PathBuf,
    previous: Option<std::ffi::OsString>,
}

impl ExtraConfig {
    fn write(req: &Request<'_>) -> Result<Self> {
        let mut lines = vec!["evasive-devices".to_string()];
        for (controller, path) in &req.cgroup_roots {
            lines.push(format!("cgroup-root {controller}:{}", path.display()));
        }
        for (typ, path) in namespaces_with_path(req.spec) {
            let name = match typ {
                LinuxNamespaceType::Network | LinuxNamespaceType::Pid => continue,
                LinuxNamespaceType::Cgroup => {
                    bail!(
                        "cannot restore into an existing cgroup namespace ({})",
                        path.display()
                    )
                }
                LinuxNamespaceType::Mount => "mnt",
                LinuxNamespaceType::Ipc => "ipc",
                LinuxNamespaceType::Uts => "uts",
                LinuxNamespaceType::User => "user",
                LinuxNamespaceType::Time => "time",
            };
            lines.push(format!("join-ns {name}:{}", path.display()));
        }
        if let Some(profile) = &req.flags.lsm_profile {
            lines.push(format!("lsm-profile {profile}"));
        }
        if let Some(context) = &req.flags.lsm_mount_context {
            lines.push(format!("lsm-mount-context {context}"));
        }
        if let Some(bad) = lines.iter().find(|l| {
            l.split_once(' ')
                .is_some_and(|(_, v)| v.chars().any(|c| c.is_whitespace() || c == '"' || c == '#'))
        }) {
            bail!("cannot pass {bad:?} to criu: the value holds a blank, quote or '#'");
        }
        let previous = std::env::var_os("CRIU_CONFIG_FILE");
        let mut text = previous
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| t + "\n")
            .unwrap_or_default();
        text += &(lines.join("\n") + "\n");
        let path = req.state_dir.join("criu.conf");
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        std::env::set_var("CRIU_CONFIG_FILE", &path);
        Ok(Self { path, previous })
    }
}

impl Drop for ExtraConfig {
    fn drop(&mut self) {
        match &self.previous {
            Some(value) => std::env::set_var("CRIU_CONFIG_FILE", value),
            None => std::env::remove_var("CRIU_CONFIG_FILE"),
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates the mount points of the config's mounts in the rootfs, as creating the
/// container would (CRIU mounts onto them but does not make them); mounts inside a
/// tmpfs are left to CRIU, which restores the tmpfs contents.
pub fn make_mountpoints(spec: &Spec, rootfs: &Path, bundle: &Path) -> Result<()> {
    let mounts: Vec<_> = spec.mounts().iter().flatten().collect();
    let tmpfs: Vec<&Path> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    for m in &mounts {
        let dest = m.destination();
        if m.typ().as_deref() == Some("cgroup")
            || tmpfs.iter().any(|t| dest != *t && dest.starts_with(t))
        {
            continue;
        }
        let inside = safe_path::scoped_join(rootfs, dest)
            .with_context(|| format!("mount destination {} escapes the rootfs", dest.display()))?;
        if inside.exists() || inside.is_symlink() {
            continue;
        }
        let file_source = is_bind(m)
            && m.source().as_ref().is_some_and(|s| {
                let s = if s.is_absolute() {
                    s.clone()
                } else {
                    bundle.join(s)
                };
                s.is_file()
            });
        let made = if file_source {
            inside
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| File::create(&inside).map(drop))
        } else {
            std::fs::create_dir_all(&inside)
        };
        made.with_context(|| {
            format!(
                "cannot create the mount point {} in the rootfs",
                dest.display()
            )
        })?;
    }
    Ok(())
}

/// The rootfs bind-mounted at `<state dir>/criu-root`: CRIU wants its root to be a mount
/// point whose parent is not overmounted. Unmounted and removed when dropped.
pub struct CriuRoot {
    path: PathBuf,
    mounted: bool,
}

impl CriuRoot {
    pub fn mount(rootfs: &Path, state_dir: &Path) -> Result<Self> {
        let path = state_dir.join("criu-root");
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut root = Self {
            path,
            mounted: false,
        };
        nix::mount::mount(
            Some(rootfs),
            &root.path,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| {
            format!(
                "cannot bind-mount the rootfs {} at {}",
                rootfs.display(),
                root.path.display()
            )
        })?;
        root.mounted = true;
        Ok(root)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CriuRoot {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(err) = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(path = ?self.path, %err, "cannot unmount the criu root");
            }
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

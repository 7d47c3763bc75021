//! The runtime config a bundle starts from, before the image config is converted into
//! it: `runc spec`'s shape (namespaces, mounts, masked and read-only paths) with docker's
//! defaults for containers made from images (a writable root, docker's capability set,
//! no_new_privileges off), then the user's options laid over the result.

use std::path::Path;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder, Mount, MountBuilder, Spec};

use super::options::BundleOptions;

/// The capabilities docker grants a container by default.
pub const DOCKER_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// The base config: `runc spec` (or `runc spec --rootless`) with docker's defaults.
pub fn base_spec(rootless: bool) -> Spec {
    let mut spec = if rootless {
        Spec::rootless(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    } else {
        Spec::default()
    };
    spec.set_version(oci_spec::runtime::VERSION.to_string());
    if let Some(root) = spec.root_mut() {
        root.set_readonly(Some(false));
    }
    if let Some(process) = spec.process_mut() {
        process.set_no_new_privileges(Some(false));
        process.set_env(Some(vec![]));
    }
    spec
}

/// Sets the capabilities for the final user: `caps` (docker's set, with `--cap-add` and
/// `--cap-drop`) in the bounding set, and in the effective and permitted sets only for
/// root (an unprivileged user gets none raised).
fn set_capabilities(spec: &mut Spec, caps: &[Capability]) {
    let Some(process) = spec.process_mut() else {
        return;
    };
    let all: std::collections::HashSet<Capability> = caps.iter().copied().collect();
    let none = std::collections::HashSet::new();
    let raised = if process.user().uid() == 0 {
        all.clone()
    } else {
        none.clone()
    };
    let caps = LinuxCapabilitiesBuilder::default()
        .bounding(all)
        .effective(raised.clone())
        .permitted(raised)
        .inheritable(none.clone())
        .ambient(none)
        .build()
        .expect("capability sets are always valid");
    process.set_capabilities(Some(caps));
}

fn env_name(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

/// Applies the options that live in the image config (`-u`, `-w`, `-e`, `--entrypoint`,
/// `-- ARGS`) to a copy of it before conversion, so that conversion resolves the user
/// and HOME, checks the working directory and builds args exactly as for the image's own.
pub fn override_image_config(image: &mut ImageConfiguration, opts: &BundleOptions) {
    let mut cfg = image.config().clone().unwrap_or_default();
    // Docker: --entrypoint replaces the entrypoint and drops the image's Cmd; ARGS
    // replace the Cmd.
    if let Some(e) = &opts.entrypoint {
        cfg.set_entrypoint(if e.is_empty() {
            None
        } else {
            Some(vec![e.clone()])
        });
        cfg.set_cmd(None);
    }
    if !opts.args.is_empty() {
        cfg.set_cmd(Some(opts.args.clone()));
    }
    if let Some(u) = &opts.user {
        cfg.set_user(Some(u.clone()));
    }
    if let Some(w) = &opts.workdir {
        cfg.set_working_dir(Some(w.clone()));
    }
    let mut env = cfg.env().clone().unwrap_or_default();
    for kv in &opts.env {
        env.retain(|e| env_name(e) != env_name(kv));
        env.push(kv.clone());
    }
    if opts.tty && !env.iter().any(|e| env_name(e) == "TERM") {
        env.push("TERM=xterm".to_string());
    }
    cfg.set_env(Some(env));
    image.set_config(Some(cfg));
}

/// Lays the rest of the options over a converted config: terminal, hostname, the
/// capabilities for the final user, and `extra_mounts` after the default mounts.
pub fn apply_options(
    spec: &mut Spec,
    opts: &BundleOptions,
    hostname: &str,
    extra_mounts: Vec<Mount>,
) {
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(opts.tty));
    }
    spec.set_hostname(Some(
        opts.hostname
            .clone()
            .unwrap_or_else(|| hostname.to_string()),
    ));
    set_capabilities(spec, &opts.security.capabilities);
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.extend(extra_mounts);
    spec.set_mounts(Some(mounts));
}

/// A recursive, private bind mount (docker's `-v`).
pub fn bind_mount(source: &Path, destination: &str, read_only: bool) -> Mount {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if read_only {
        options.push("ro".to_string());
    }
    MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(options)
        .build()
        .expect("a bind mount is always valid")
}

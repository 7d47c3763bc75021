//! libcontainer 0.7 treats `noNewPrivileges: false` like `true` when choosing when to load
//! a seccomp profile (it tests presence, not value), then fails to load it after dropping
//! CAP_SYS_ADMIN: "failed to load seccomp context". runc runs such a bundle. libcontainer
//! reads config.json from the bundle itself, so for exactly this case we hand it a shadow
//! bundle in the state root whose config has the field removed (the same meaning) and
//! absolute paths for everything that was relative to the real bundle; the container's
//! recorded bundle is set back to the real one once it is created. Hooks that run during
//! create (createRuntime, createContainer, prestart) see the shadow path in their state.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::Spec;

/// True for the one configuration libcontainer mishandles.
pub fn needed(spec: &Spec) -> bool {
    let nnp_false = spec
        .process()
        .as_ref()
        .is_some_and(|p| p.no_new_privileges() == Some(false));
    let seccomp = spec.linux().as_ref().is_some_and(|l| l.seccomp().is_some());
    nnp_false && seccomp
}

/// Writes the adjusted config into `<root>/.<id>.bundle/` and returns that directory.
pub fn write(root: &Path, id: &str, bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let dir = root.join(format!(".{id}.bundle"));
    let _ = std::fs::remove_dir_all(&dir);
    // 0700: the copy of config.json holds the process env, often secrets.
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut spec = spec.clone();
    if let Some(p) = spec.process_mut() {
        p.set_no_new_privileges(None);
    }
    if let Some(r) = spec.root_mut() {
        if r.path().is_relative() {
            let abs = bundle.join(r.path());
            r.set_path(abs);
        }
    }
    if let Some(mounts) = spec.mounts_mut() {
        for m in mounts.iter_mut() {
            if let Some(src) = m.source().clone() {
                if src.is_relative() && bundle.join(&src).exists() {
                    m.set_source(Some(bundle.join(src)));
                }
            }
        }
    }
    let config = dir.join("config.json");
    std::fs::write(&config, serde_json::to_vec(&spec)?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    Ok(dir)
}

/// Records the real bundle in the created container's state.
pub fn restore_bundle_path(container: &mut Container, bundle: &Path) -> Result<()> {
    container.state.bundle = bundle.to_path_buf();
    container
        .save()
        .with_context(|| format!("cannot save the state of container {}", container.id()))
}

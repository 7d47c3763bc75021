//! Making and removing bundles: `DIR/rootfs` (an overlay of cached layers, or a plain
//! copy), `DIR/config.json` converted from the image config, and `DIR/imgtool.json`.
//! A failure part-way leaves nothing behind: what was mounted is unmounted and what was
//! created is removed.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;

use super::convert::{convert, ConvertError};
use super::marker::{write_atomic, BundleMarker, MarkerError, RootfsMode, MARKER_FILE};
use super::network::{self, NetworkError, GENERATED_FILES};
use super::options::BundleOptions;
use super::resources;
use super::security::{self, SecurityError};
use super::spec::{apply_options, base_spec, bind_mount, override_image_config};
use super::volumes::seed_volume;
use crate::mount::{self, MountError};
use crate::store::layers::chain_ids;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0} exists and is not an empty directory: choose a new one")]
    DirNotEmpty(PathBuf),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Marker(#[from] MarkerError),
    #[error("{dir}: the rootfs is still in use ({users}); stop the container first")]
    Busy { dir: PathBuf, users: String },
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Security(#[from] SecurityError),
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> BundleError {
    BundleError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Undoes a half-made bundle on drop unless disarmed.
struct Undo {
    dir: PathBuf,
    created_dir: bool,
    mounts: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for m in self.mounts.iter().rev() {
            let _ = mount::unmount(m);
        }
        if self.created_dir {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            let generated = GENERATED_FILES.iter().map(|(file, _)| *file);
            let made = ["rootfs", "overlay", "volumes", "config.json", MARKER_FILE];
            for name in made.into_iter().chain(generated) {
                let p = self.dir.join(name);
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
    }
}

/// Makes the bundle directory: absent is created, an existing one must be empty.
fn prepare_dir(dir: &Path) -> Result<bool, BundleError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BundleError::DirNotEmpty(dir.to_path_buf()));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
            Ok(true)
        }
        Err(_) if dir.exists() => Err(BundleError::DirNotEmpty(dir.to_path_buf())),
        Err(e) => Err(io_err(dir, e)),
    }
}

/// Creates a bundle of the stored image `image` in `dir`.
pub fn create_bundle(
    store: &Store,
    image: &str,
    dir: &Path,
    opts: &BundleOptions,
) -> Result<BundleMarker, BundleError> {
    let dir = std::path::absolute(dir).map_err(|e| io_err(dir, e))?;
    let network_mode = network::check(&opts.network, opts.rootless)?;
    // Find the image before touching the directory: a typo leaves nothing behind.
    let _op = store.lock_operation()?;
    let stored = store.find(image)?;
    let img = store.load(&stored)?;

    let created_dir = prepare_dir(&dir)?;
    let mut undo = Undo {
        dir: dir.clone(),
        created_dir,
        mounts: vec![],
        armed: true,
    };
    let rootfs = dir.join("rootfs");
    fs::create_dir(&rootfs).map_err(|e| io_err(&rootfs, e))?;

    let mut mode = RootfsMode::Copy;
    if !opts.copy && mount::overlay_supported() {
        let mut lowers = store.ensure_layer_cache(&img)?;
        if lowers.is_empty() {
            let empty = store.root().join("imgtool/layers-empty");
            fs::create_dir_all(&empty).map_err(|e| io_err(&empty, e))?;
            lowers.push(empty);
        }
        lowers.reverse(); // overlayfs lists the top layer first
        let upper = dir.join("overlay/upper");
        let work = dir.join("overlay/work");
        fs::create_dir_all(&upper).map_err(|e| io_err(&upper, e))?;
        fs::create_dir_all(&work).map_err(|e| io_err(&work, e))?;
        match mount::mount_overlay(&lowers, &upper, &work, &rootfs) {
            Ok(()) => {
                undo.mounts.push(rootfs.clone());
                mode = RootfsMode::Overlay;
            }
            // Overlay refused here (e.g. DIR on a filesystem it cannot use as upper):
            // fall back to a copy.
            Err(_) => {
                let _ = fs::remove_dir_all(dir.join("overlay"));
            }
        }
    }
    if mode == RootfsMode::Copy {
        for i in 0..img.manifest.layers().len() {
            store.apply_image_layer(&img, i, &rootfs)?;
        }
    }

    let mut image_config = img.config.clone();
    override_image_config(&mut image_config, opts);
    let volumes: Vec<String> = image_config
        .config()
        .as_ref()
        .and_then(|c| c.volumes().clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v.starts_with('/'))
        .collect();

    let mut spec = convert(&image_config, &rootfs, base_spec(opts.rootless))?;

    let mut extra: Vec<Mount> = Vec::new();
    for (n, path) in volumes.iter().enumerate() {
        if opts.binds.iter().any(|b| same_path(&b.container, path)) {
            continue;
        }
        let vdir = dir.join("volumes").join(n.to_string());
        fs::create_dir_all(dir.join("volumes")).map_err(|e| io_err(&vdir, e))?;
        seed_volume(&rootfs, path, &vdir)
            .map_err(|e| io_err(&vdir, format!("volume {path}: {e}")))?;
        extra.push(bind_mount(&vdir, path, false));
    }
    for b in &opts.binds {
        extra.push(bind_mount(&b.host, &b.container, b.read_only));
    }
    let hostname = crate::reference::short_name(&stored.name).to_string();
    apply_options(&mut spec, opts, &hostname, extra);
    network::apply(
        &mut spec,
        &dir,
        &opts.network,
        &network_mode,
        opts.hostname.is_some(),
    )?;
    security::apply(&mut spec, &opts.security)?;
    resources::apply(&mut spec, &opts.resources);

    let config_path = dir.join("config.json");
    let text = serde_json::to_vec_pretty(&spec).map_err(|e| io_err(&config_path, e))?;
    write_atomic(&config_path, &text).map_err(|e| io_err(&config_path, e))?;

    let marker = BundleMarker {
        image: stored.name.clone(),
        manifest_digest: stored.digest(),
        config_digest: img.config_digest.clone(),
        diff_ids: img.diff_ids().to_vec(),
        chain_ids: chain_ids(img.diff_ids()),
        mode,
        store: store.root().to_path_buf(),
        volumes: volumes.clone(),
        generated: GENERATED_FILES
            .iter()
            .map(|(_, target)| target.to_string())
            .collect(),
    };
    marker.write(&dir)?;
    store.register_bundle(&dir)?;
    undo.armed = false;
    Ok(marker)
}

fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Unmounts and removes a bundle made by [`create_bundle`]. A rootfs still in use (a
/// container running from it, whose mount namespace holds it; another mount of it; a
/// process inside it) is an error and nothing is removed.
pub fn remove_bundle(dir: &Path) -> Result<BundleMarker, BundleError> {
    let dir = std::path::absolute(dir).map_err(|e| io_err(dir, e))?;
    let marker = BundleMarker::read(&dir)?;
    let rootfs = dir.join("rootfs");
    let users = mount::users::users_of(&rootfs);
    if !users.is_empty() {
        return Err(BundleError::Busy {
            dir,
            users: users.join("; "),
        });
    }
    if mount::is_mount_point(&rootfs) {
        match nix::mount::umount2(&rootfs, nix::mount::MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => {}
            Err(nix::Error::EBUSY) => {
                return Err(BundleError::Busy {
                    dir,
                    users: "the kernel refuses to unmount it: a process has files open in it"
                        .into(),
                })
            }
            Err(e) => return Err(io_err(&rootfs, format!("cannot unmount: {e}"))),
        }
    }
    fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    if let Ok(store) = Store::open(&marker.store) {
        store.unregister_bundle(&dir);
    }
    Ok(marker)
}

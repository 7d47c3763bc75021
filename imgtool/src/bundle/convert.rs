//! The runtime config of a bundle, converted from the image config per image-spec
//! conversion.md on top of a base config (the caller's defaults, like `runc spec`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::Spec;

use super::user::{self, UserError};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("the image has neither Entrypoint nor Cmd: give a command to run")]
    NoCommand,
    #[error("Config.WorkingDir {0:?} must be an absolute path")]
    RelativeWorkingDir(String),
    #[error(transparent)]
    User(#[from] UserError),
    #[error("the base runtime config has no process")]
    NoProcess,
}

/// PATH when neither the image nor the caller gives one (Docker's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn env_name(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

/// Converts `image` into `base` for the root filesystem at `rootfs`.
pub fn convert(
    image: &ImageConfiguration,
    rootfs: &Path,
    mut base: Spec,
) -> Result<Spec, ConvertError> {
    let cfg = image.config().clone().unwrap_or_default();
    let mut process = base.process().clone().ok_or(ConvertError::NoProcess)?;

    // Entrypoint + Cmd -> args.
    let mut args: Vec<String> = cfg.entrypoint().clone().unwrap_or_default();
    args.extend(cfg.cmd().clone().unwrap_or_default());
    if args.is_empty() {
        return Err(ConvertError::NoCommand);
    }
    process.set_args(Some(args));

    // Env: the image's verbatim; base entries only for names the image does not set.
    let mut env: Vec<String> = cfg.env().clone().unwrap_or_default();
    for kv in process.env().clone().unwrap_or_default() {
        if !env.iter().any(|e| env_name(e) == env_name(&kv)) {
            env.push(kv);
        }
    }
    if !env.iter().any(|e| env_name(e) == "PATH") {
        env.push(DEFAULT_PATH.to_string());
    }

    if let Some(dir) = cfg.working_dir().as_ref().filter(|d| !d.is_empty()) {
        if !dir.starts_with('/') {
            return Err(ConvertError::RelativeWorkingDir(dir.clone()));
        }
        process.set_cwd(PathBuf::from(dir));
    }

    // User, resolved in the rootfs; HOME from /etc/passwd unless the image sets it.
    let resolved = user::resolve(rootfs, cfg.user().as_deref().unwrap_or(""))?;
    let mut u = process.user().clone();
    u.set_uid(resolved.uid);
    u.set_gid(resolved.gid);
    u.set_additional_gids(resolved.additional_gids.clone().filter(|g| !g.is_empty()));
    process.set_user(u);
    // A user without a passwd entry (or without a home) gets HOME=/, as docker gives.
    if !env.iter().any(|e| env_name(e) == "HOME") {
        let home = resolved.home.filter(|h| !h.is_empty());
        env.push(format!("HOME={}", home.as_deref().unwrap_or("/")));
    }
    process.set_env(Some(env));
    base.set_process(Some(process));

    // Annotations: implicit ones first, labels take precedence over them.
    let mut ann: HashMap<String, String> = base.annotations().clone().unwrap_or_default();
    let mut implicit = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            ann.insert(format!("org.opencontainers.image.{k}"), v);
        }
    };
    implicit("os", Some(image.os().to_string()));
    implicit("architecture", Some(image.architecture().to_string()));
    implicit("variant", image.variant().clone());
    implicit("os.version", image.os_version().clone());
    implicit(
        "os.features",
        image.os_features().clone().map(|f| f.join(",")),
    );
    implicit("author", image.author().clone());
    implicit("created", image.created().clone());
    implicit("stopSignal", cfg.stop_signal().clone());
    implicit(
        "exposedPorts",
        cfg.exposed_ports()
            .clone()
            .filter(|p| !p.is_empty())
            .map(|p| p.join(",")),
    );
    for (k, v) in cfg.labels().clone().unwrap_or_default() {
        ann.insert(k, v);
    }
    base.set_annotations(Some(ann));
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::ImageConfiguration;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\naudio:x:29:app\nvideo:x:44:app,other\nstaff:x:50:\n",
        )
        .unwrap();
        d
    }

    fn image(json: serde_json::Value) -> ImageConfiguration {
        let mut v = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
        for (k, val) in json.as_object().unwrap() {
            v[k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn verbatim_fields_and_user_by_name() {
        let r = rootfs();
        let img = image(serde_json::json!({
            "created": "2026-01-01T00:00:00Z",
            "author": "me",
            "config": {
                "Entrypoint": ["/bin/app"], "Cmd": ["--flag"], "Env": ["FOO=bar", "PATH=/opt/bin"],
                "WorkingDir": "/srv", "User": "app", "StopSignal": "SIGQUIT",
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                "Labels": {"org.opencontainers.image.author": "label wins", "x": "y"}
            }
        }));
        let spec = convert(&img, r.path(), Spec::default()).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["/bin/app", "--flag"]);
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&"FOO=bar".to_string()));
        assert_eq!(
            env.iter()
                .filter(|e| e.starts_with("PATH="))
                .collect::<Vec<_>>(),
            ["PATH=/opt/bin"]
        );
        assert!(env.contains(&"HOME=/home/app".to_string()));
        assert_eq!(p.cwd(), Path::new("/srv"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        assert_eq!(p.user().additional_gids().as_ref().unwrap(), &[29, 44]);
        let ann = spec.annotations().as_ref().unwrap();
        assert_eq!(ann["org.opencontainers.image.stopSignal"], "SIGQUIT");
        assert_eq!(ann["org.opencontainers.image.author"], "label wins");
        assert_eq!(
            ann["org.opencontainers.image.created"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(ann["org.opencontainers.image.os"], "linux");
        assert_eq!(ann["org.opencontainers.image.architecture"], "amd64");
        let mut ports: Vec<&str> = ann["org.opencontainers.image.exposedPorts"]
            .split(',')
            .collect();
        ports.sort();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert_eq!(ann["x"], "y");
    }

    #[test]
    fn user_forms() {
        let r = rootfs();
        let u = |s: &str| user::resolve(r.path(), s);
        assert_eq!(u("").unwrap().uid, 0);
        let numeric = u("1000").unwrap();
        assert_eq!(
            (numeric.uid, numeric.gid, numeric.additional_gids),
            (1000, 1000, None)
        );
        let with_group = u("app:staff").unwrap();
        assert_eq!(
            (with_group.uid, with_group.gid, with_group.additional_gids),
            (1000, 50, None)
        );
        assert_eq!(u("1234:55").unwrap().gid, 55);
        assert!(matches!(u("nobody-here"), Err(UserError::UnknownUser(_))));
        assert!(matches!(u("app:nogroup"), Err(UserError::UnknownGroup(_))));
    }

    #[test]
    fn passwd_is_read_inside_the_rootfs() {
        // A rootfs whose /etc/passwd links to the host's must not read the host's file.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("etc/passwd")).unwrap();
        // The link resolves to <rootfs>/etc/passwd itself: a loop or nothing, never the host.
        assert!(user::resolve(d.path(), "root").is_err());
    }

    #[test]
    fn missing_command_and_relative_workdir_are_errors() {
        let r = rootfs();
        let img = image(serde_json::json!({"config": {}}));
        assert!(matches!(
            convert(&img, r.path(), Spec::default()),
            Err(ConvertError::NoCommand)
        ));
        let img = image(serde_json::json!({"config": {"Cmd": ["sh"], "WorkingDir": "rel"}}));
        assert!(matches!(
            convert(&img, r.path(), Spec::default()),
            Err(ConvertError::RelativeWorkingDir(_))
        ));
    }
}

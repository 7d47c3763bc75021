//! The offline image builder itself: what it writes is a valid OCI layout that skopeo
//! reads and umoci unpacks with the layer semantics the image tests rely on.

use std::process::Command;

use spec_tests::images::{self, Image};

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn multi_layer_image_unpacks_with_umoci() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let digest = images::multi_layer().write_layout(&layout, "multi");
    let inspect = ok(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:multi", layout.display())));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], digest);
    assert_eq!(v["Layers"].as_array().unwrap().len(), 4);
    let bundle = dir.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:multi", layout.display())])
        .arg(&bundle));
    let data = bundle.join("rootfs/data");
    assert!(data.join("keep.txt").exists());
    assert!(!data.join("gone.txt").exists());
    assert!(!data.join("dir-to-remove").exists());
    assert!(!data.join("opaque/old.txt").exists());
    assert!(data.join("opaque/new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(data.join("replaced.txt")).unwrap(),
        "second version\n"
    );
    assert_eq!(
        std::fs::read_link(data.join("sym")).unwrap().to_str(),
        Some("keep.txt")
    );
}

#[test]
fn two_platform_index_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let mut arm = Image::busybox();
    arm.architecture = "arm64".into();
    arm.variant = Some("v8".into());
    let mut amd = Image::busybox();
    amd.architecture = "amd64".into();
    amd.config["Cmd"] = serde_json::json!(["echo", "amd64"]);
    let (_, manifests) = images::write_index_layout(&layout, "multi", &[amd, arm]);
    let raw = ok(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:multi", layout.display())));
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let listed: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        manifests.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

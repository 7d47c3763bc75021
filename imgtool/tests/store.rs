//! The store is an OCI layout other tools read: skopeo inspects and copies an image we
//! wrote, umoci unpacks it; blobs are verified; concurrent taggers never lose an update.

use std::io::Write;
use std::process::Command;

use imgtool::store::{Store, StoreError};
use oci_spec::image::{Descriptor, MediaType};
use sha2::{Digest as _, Sha256};

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Writes a one-layer image (a single file) and returns its manifest descriptor.
fn write_image(store: &Store) -> Descriptor {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let body = b"hello from a stored layer\n";
    h.set_path("hello.txt").unwrap();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append(&h, &body[..]).unwrap();
    let layer = tar.into_inner().unwrap();
    let diff_id = sha(&layer);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let blob = gz.finish().unwrap();
    store
        .put_blob(&sha(&blob), blob.len() as u64, &blob[..])
        .unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["cat", "/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    });
    let config = store
        .put_bytes(MediaType::ImageConfig, config.to_string().as_bytes())
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(&blob), "size": blob.len()}]
    });
    store
        .put_bytes(MediaType::ImageManifest, manifest.to_string().as_bytes())
        .unwrap()
}

#[test]
fn skopeo_and_umoci_read_what_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let manifest = write_image(&store);
    store.tag("localhost/hello:latest", &manifest).unwrap();
    store.tag("hello", &manifest).unwrap();
    let root = store.root().to_string_lossy().to_string();

    let out = Command::new("skopeo")
        .args(["inspect", &format!("oci:{root}:localhost/hello:latest")])
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{v}");

    let bundle = dir.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &format!("{root}:hello")])
        .arg(&bundle)
        .output()
        .expect("umoci");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "hello from a stored layer\n"
    );
    assert_eq!(
        store.resolve_tag("hello").unwrap().digest(),
        manifest.digest()
    );
    store.untag("hello").unwrap();
    assert!(matches!(
        store.resolve_tag("hello"),
        Err(StoreError::UnknownTag(_))
    ));
}

#[test]
fn a_blob_with_the_wrong_digest_or_size_is_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data = b"some blob";
    let wrong = sha(b"other content");
    let err = store
        .put_blob(&wrong, data.len() as u64, &data[..])
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(!store.blob_path(&wrong).unwrap().exists());
    let err = store.put_blob(&sha(data), 3, &data[..]).unwrap_err();
    assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");
    assert!(!store.blob_path(&sha(data)).unwrap().exists());
    assert!(matches!(
        store.blob_path("md5:abc"),
        Err(StoreError::UnsupportedDigest(_))
    ));
    assert!(matches!(
        store.blob_path("sha256:../../etc/passwd"),
        Err(StoreError::UnsupportedDigest(_))
    ));
    // Nothing was left in the store's temp area.
    assert_eq!(
        std::fs::read_dir(dir.path().join("imgtool/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn concurrent_taggers_never_lose_an_update() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_image(&Store::open(dir.path()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let root = dir.path().to_path_buf();
            let m = manifest.clone();
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                for j in 0..20 {
                    store.tag(&format!("t{i}-{j}"), &m).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.index().unwrap().manifests().len(), 160);
}

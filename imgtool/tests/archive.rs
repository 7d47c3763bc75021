//! The archive library without peers: save/load round trips keep digests, docker-archives
//! as other tools write them (compressed layers, legacy symlinked layer paths, a gzipped
//! archive) load, and a layer that does not match its diff_id tags nothing.

use std::io::Write;

use imgtool::archive::{self, save, ArchiveError, Format};
use imgtool::image::build;
use imgtool::layer::Compression;
use imgtool::store::Store;
use sha2::{Digest as _, Sha256};

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A layer tar with one file.
fn layer_tar(name: &str, body: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, name, body).unwrap();
    tar.into_inner().unwrap()
}

/// Stores and tags a one-layer image.
fn make_image(store: &Store, tag: &str, body: &[u8], compression: Compression) {
    let layer = build::store_layer(store, &layer_tar("hello.txt", body)[..], compression).unwrap();
    let mut cfg = build::new_config();
    build::append_layer(
        &mut cfg,
        &layer.diff_id,
        build::history_entry("test", None, false),
    );
    let img = build::store_image(store, &cfg, vec![layer.descriptor]).unwrap();
    store.tag(tag, &img.manifest).unwrap();
}

fn save_to_file(
    store: &Store,
    refs: &[&str],
    format: Format,
    dir: &std::path::Path,
) -> std::fs::File {
    let refs: Vec<String> = refs.iter().map(|s| s.to_string()).collect();
    let images = save::resolve(store, &refs).unwrap();
    let path = dir.join(format!("{format:?}.tar"));
    let out = std::fs::File::create(&path).unwrap();
    save::write(store, &images, format, std::io::BufWriter::new(out)).unwrap();
    std::fs::File::open(&path).unwrap()
}

fn config_digest(store: &Store, tag: &str) -> String {
    let m = store.resolve_tag(tag).unwrap();
    let bytes = std::fs::read(store.blob_path(m.digest().as_ref()).unwrap()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["config"]["digest"].as_str().unwrap().to_string()
}

#[test]
fn round_trips_keep_digests() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(&dir.path().join("a")).unwrap();
    make_image(&a, "localhost/one:v1", b"one", Compression::Zstd);
    make_image(&a, "localhost/two:v1", b"two", Compression::Gzip);
    for format in [Format::DockerArchive, Format::OciArchive] {
        let file = save_to_file(
            &a,
            &["localhost/one:v1", "localhost/two:v1"],
            format,
            dir.path(),
        );
        let b = Store::open(&dir.path().join(format!("b-{format:?}"))).unwrap();
        let (detected, images) = archive::load(&b, file).unwrap();
        assert_eq!(detected, format);
        assert_eq!(images.len(), 2);
        for tag in ["localhost/one:v1", "localhost/two:v1"] {
            assert_eq!(
                config_digest(&a, tag),
                config_digest(&b, tag),
                "{format:?} {tag}"
            );
            if format == Format::OciArchive {
                assert_eq!(
                    a.resolve_tag(tag).unwrap().digest(),
                    b.resolve_tag(tag).unwrap().digest()
                );
            }
        }
    }
}

/// A docker-archive as some tools write it: gzip layers under legacy `<id>/layer.tar`
/// symlinks, the whole archive gzipped.
fn foreign_docker_archive(dir: &std::path::Path, diff_id_override: Option<&str>) -> std::fs::File {
    let layer = layer_tar("etc/release", b"foreign\n");
    let diff_id = diff_id_override
        .map(str::to_string)
        .unwrap_or_else(|| sha(&layer));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let gz = gz.finish().unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    })
    .to_string();
    let config_name = format!("{}.json", &sha(config.as_bytes())["sha256:".len()..]);
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": ["foreign:1"], "Layers": ["legacyid/layer.tar"]
    }])
    .to_string();
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, name, data).unwrap();
    };
    add("layer.tar.gz", &gz);
    add(&config_name, config.as_bytes());
    add("manifest.json", manifest.as_bytes());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    tar.append_link(&mut h, "legacyid/layer.tar", "../layer.tar.gz")
        .unwrap();
    let plain = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let path = dir.join("foreign.tar.gz");
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    std::fs::File::open(path).unwrap()
}

#[test]
fn foreign_docker_archives_load_and_bad_diff_ids_tag_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s")).unwrap();
    let (format, images) = archive::load(&store, foreign_docker_archive(dir.path(), None)).unwrap();
    assert_eq!(format, Format::DockerArchive);
    assert_eq!(images[0].names, ["docker.io/library/foreign:1"]);
    let m = store.resolve_tag("docker.io/library/foreign:1").unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.blob_path(m.digest().as_ref()).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    let other = Store::open(&dir.path().join("t")).unwrap();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = archive::load(&other, foreign_docker_archive(dir.path(), Some(&wrong))).unwrap_err();
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("legacyid/layer.tar"), "{err}");
    assert!(other.index().unwrap().manifests().is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("t/imgtool/tmp"))
            .unwrap()
            .count(),
        0
    );
}

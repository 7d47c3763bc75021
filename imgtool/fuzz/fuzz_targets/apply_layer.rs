//! libFuzzer target: arbitrary bytes as a layer tar stream (the first byte chooses
//! between an uncompressed and a gzip-decoded stream), applied into a temp root that sits
//! beside a sentinel directory. A panic, or any change beside the root, is a finding.
#![no_main]

use std::path::Path;

use imgtool::layer::{apply_layer, ApplyInto, ApplyOptions, Compression};
use libfuzzer_sys::fuzz_target;

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| {
            let len = e
                .path()
                .symlink_metadata()
                .map(|m| m.len())
                .unwrap_or(u64::MAX);
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    out.sort();
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, layer)) = data.split_first() else {
        return;
    };
    let parent = tempfile::tempdir().expect("tempdir");
    let root = parent.path().join("root");
    let outside = parent.path().join("outside");
    std::fs::create_dir(&root).expect("root");
    std::fs::create_dir(&outside).expect("outside");
    std::fs::write(outside.join("keep"), "keep").expect("keep");
    std::os::unix::fs::symlink("../outside/keep", outside.join("link")).expect("link");
    let before_parent = listing(parent.path());
    let compression = if mode & 1 == 0 {
        Compression::None
    } else {
        Compression::Gzip
    };
    if let Ok(stream) = compression.decoder(layer) {
        let _ = apply_layer(
            &root,
            stream,
            ApplyOptions {
                preserve_owners: mode & 2 == 0,
                into: if mode & 4 == 0 {
                    ApplyInto::Root
                } else {
                    ApplyInto::OverlayLayer
                },
            },
        );
    }
    assert_eq!(
        listing(&outside),
        [("keep".to_string(), 4), ("link".to_string(), 15)]
    );
    assert_eq!(std::fs::read(outside.join("keep")).expect("keep"), b"keep");
    let after_parent: Vec<String> = listing(parent.path()).into_iter().map(|(n, _)| n).collect();
    let before_names: Vec<String> = before_parent.into_iter().map(|(n, _)| n).collect();
    assert_eq!(after_parent, before_names, "nothing new beside the root");
    loosen(&root);
});

/// Makes every directory under `dir` writable again so the temp dir can be removed
/// whatever modes the layer set.
fn loosen(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
        }
    }
}

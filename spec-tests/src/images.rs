//! Test images made offline: layers written entry by entry (files, dirs, symlinks,
//! hardlinks, fifos, xattrs, whiteouts, opaque markers), compressed as gzip, zstd or not
//! at all, and assembled into an OCI image layout that skopeo can push and umoci read.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// The sha256 digest of bytes, `sha256:<hex>`.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Self::None => "application/vnd.oci.image.layer.v1.tar",
            Self::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Self::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    pub fn compress(self, tar: &[u8]) -> Vec<u8> {
        use std::io::Write;
        match self {
            Self::None => tar.to_vec(),
            Self::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(tar).expect("gzip");
                gz.finish().expect("gzip")
            }
            Self::Zstd => zstd::encode_all(tar, 3).expect("zstd"),
        }
    }
}

/// A layer (an uncompressed tar changeset) built entry by entry.
pub struct Layer {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

impl Layer {
    pub fn new() -> Self {
        Self {
            tar: tar::Builder::new(Vec::new()),
        }
    }

    fn append(&mut self, mut h: tar::Header, path: &str, data: &[u8]) -> &mut Self {
        self.tar
            .append_data(&mut h, path, data)
            .unwrap_or_else(|e| panic!("append {path}: {e}"));
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.append(header(tar::EntryType::Directory, mode, 0), path, &[][..])
    }

    /// A directory with an owner other than root.
    pub fn dir_owned(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        h.set_uid(uid);
        h.set_gid(gid);
        self.append(h, path, &[][..])
    }

    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        self.append(
            header(tar::EntryType::Regular, mode, data.len() as u64),
            path,
            data,
        )
    }

    /// A file with an owner other than root.
    pub fn file_owned(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.append(h, path, data)
    }

    /// A file carrying an extended attribute (a PAX `SCHILY.xattr.` record).
    pub fn file_with_xattr(
        &mut self,
        path: &str,
        data: &[u8],
        key: &str,
        value: &[u8],
    ) -> &mut Self {
        let pax_key = format!("SCHILY.xattr.{key}");
        self.tar
            .append_pax_extensions([(pax_key.as_str(), value)])
            .expect("pax xattr");
        self.file(path, data, 0o644)
    }

    /// A directory carrying an extended attribute (a PAX `SCHILY.xattr.` record).
    pub fn dir_with_xattr(&mut self, path: &str, key: &str, value: &[u8]) -> &mut Self {
        let pax_key = format!("SCHILY.xattr.{key}");
        self.tar
            .append_pax_extensions([(pax_key.as_str(), value)])
            .expect("pax xattr");
        self.dir(path, 0o755)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        self.tar
            .append_link(&mut h, path, target)
            .unwrap_or_else(|e| panic!("symlink {path}: {e}"));
        self
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Link, 0o644, 0);
        self.tar
            .append_link(&mut h, path, target)
            .unwrap_or_else(|e| panic!("hardlink {path}: {e}"));
        self
    }

    /// A character (`block` false) or block device node.
    pub fn device(&mut self, path: &str, block: bool, major: u32, minor: u32) -> &mut Self {
        let kind = if block {
            tar::EntryType::Block
        } else {
            tar::EntryType::Char
        };
        let mut h = header(kind, 0o640, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.append(h, path, &[][..])
    }

    pub fn fifo(&mut self, path: &str) -> &mut Self {
        self.append(header(tar::EntryType::Fifo, 0o644, 0), path, &[][..])
    }

    /// Deletes `path` of lower layers (`dir/.wh.name`).
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, b"", 0o644)
    }

    /// Hides everything lower layers had in `dir` (`dir/.wh..wh..opq`).
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    /// The uncompressed tar.
    pub fn finish(self) -> Vec<u8> {
        self.tar.into_inner().expect("finish tar")
    }
}

/// The busybox root filesystem as one layer: /bin/busybox (Debian's busybox-static) with
/// relative applet links, /etc/passwd and /etc/group with root, a user 1000 and nobody.
pub fn busybox_layer() -> Vec<u8> {
    let busybox =
        std::fs::read("/bin/busybox").expect("read /bin/busybox (install busybox-static)");
    let mut l = Layer::new();
    for d in [
        "bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "root",
        "home",
        "home/user",
    ] {
        l.dir(d, 0o755);
    }
    l.dir("tmp", 0o1777);
    l.file("bin/busybox", &busybox, 0o755);
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            l.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    l.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        0o644,
    );
    l.file(
        "etc/group",
        b"root:x:0:\nuser:x:1000:\nextra:x:2000:user\nnogroup:x:65534:\n",
        0o644,
    );
    l.finish()
}

/// An image: layers (uncompressed tars, each with its compression) and an image config.
pub struct Image {
    pub layers: Vec<(Vec<u8>, Compression)>,
    /// The `config` object of the image config (Cmd, Env, User, WorkingDir, …).
    pub config: Value,
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
}

/// The host's architecture in OCI/Go terms.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A blob written into a layout, as a descriptor.
fn put_blob(layout: &Path, media_type: &str, data: &[u8]) -> Value {
    let d = digest(data);
    let path = layout.join("blobs/sha256").join(&d["sha256:".len()..]);
    std::fs::write(&path, data).expect("write blob");
    json!({"mediaType": media_type, "digest": d, "size": data.len()})
}

impl Image {
    /// An image of the given layers running `cmd`, for the host's platform.
    pub fn new(layers: Vec<(Vec<u8>, Compression)>, cmd: &[&str]) -> Self {
        Self {
            layers,
            config: json!({"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}),
            architecture: host_arch().to_string(),
            os: "linux".to_string(),
            variant: None,
        }
    }

    /// busybox running `sh`, gzip-compressed.
    pub fn busybox() -> Self {
        Self::new(vec![(busybox_layer(), Compression::Gzip)], &["sh"])
    }

    /// Writes this image's blobs into `layout` and returns its manifest descriptor.
    fn write_blobs(&self, layout: &Path) -> Value {
        let mut layer_descs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut history = Vec::new();
        for (tar, compression) in &self.layers {
            diff_ids.push(digest(tar));
            let blob = compression.compress(tar);
            layer_descs.push(put_blob(layout, compression.media_type(), &blob));
            history.push(json!({"created": "2026-01-01T00:00:00Z", "created_by": "spec-tests"}));
        }
        let mut config = json!({
            "created": "2026-01-01T00:00:00Z",
            "architecture": self.architecture,
            "os": self.os,
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        if let Some(v) = &self.variant {
            config["variant"] = json!(v);
        }
        let config_desc = put_blob(
            layout,
            "application/vnd.oci.image.config.v1+json",
            &serde_json::to_vec(&config).expect("config json"),
        );
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": layer_descs,
        });
        let mut desc = put_blob(
            layout,
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).expect("manifest json"),
        );
        let mut platform = json!({"architecture": self.architecture, "os": self.os});
        if let Some(v) = &self.variant {
            platform["variant"] = json!(v);
        }
        desc["platform"] = platform;
        desc
    }

    /// Writes an OCI image layout at `layout` with this image tagged `tag`; returns the
    /// manifest digest. skopeo reads it as `oci:LAYOUT:TAG`.
    pub fn write_layout(&self, layout: &Path, tag: &str) -> String {
        init_layout(layout);
        let desc = self.write_blobs(layout);
        add_to_index(layout, desc.clone(), tag);
        desc["digest"].as_str().expect("digest").to_string()
    }
}

fn init_layout(layout: &Path) {
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("layout dirs");
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    if !layout.join("index.json").exists() {
        std::fs::write(
            layout.join("index.json"),
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
        )
        .expect("index.json");
    }
}

fn add_to_index(layout: &Path, mut desc: Value, tag: &str) {
    let path = layout.join("index.json");
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("index")).expect("index json");
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    index["manifests"]
        .as_array_mut()
        .expect("manifests")
        .push(desc);
    std::fs::write(path, serde_json::to_vec(&index).expect("index json")).expect("write index");
}

/// Writes a multi-platform image index of `images` tagged `tag` into `layout`; returns
/// the index digest and each image's manifest digest, in order.
pub fn write_index_layout(layout: &Path, tag: &str, images: &[Image]) -> (String, Vec<String>) {
    init_layout(layout);
    let descs: Vec<Value> = images.iter().map(|i| i.write_blobs(layout)).collect();
    let digests = descs
        .iter()
        .map(|d| d["digest"].as_str().expect("digest").to_string())
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": descs,
    });
    let desc = put_blob(
        layout,
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&index).expect("index json"),
    );
    let d = desc["digest"].as_str().expect("digest").to_string();
    add_to_index(layout, desc, tag);
    (d, digests)
}

/// A three-layer image exercising layer.md on top of busybox: files with owners and
/// modes, a symlink, a hardlink to a file of a lower layer, a fifo, a user xattr and a
/// file capability (security.capability), whiteouts and an opaque directory. No zstd layer: Debian's umoci, which tests compare against,
/// cannot read one.
pub fn multi_layer() -> Image {
    let mut l1 = Layer::new();
    l1.dir("data", 0o755)
        .file("data/keep.txt", b"keep\n", 0o644)
        .file("data/gone.txt", b"deleted by layer 3\n", 0o644)
        .dir("data/opaque", 0o755)
        .file(
            "data/opaque/old.txt",
            b"hidden by the opaque marker\n",
            0o644,
        )
        .file_owned("data/owned.txt", b"owned by 1000:2000\n", 0o640, 1000, 2000)
        .file("data/setuid", b"#!/bin/sh\n", 0o4755)
        .dir("data/dir-to-remove", 0o755)
        .file("data/dir-to-remove/inner", b"x", 0o644);
    let mut l2 = Layer::new();
    l2.dir("data", 0o755)
        .hardlink("data/link-to-keep", "data/keep.txt")
        .symlink("data/sym", "keep.txt")
        .symlink("data/abs-sym", "/etc/passwd")
        .fifo("data/fifo")
        .file_with_xattr("data/xattr.txt", b"xattr\n", "user.test", b"value")
        // A file capability (VFS_CAP_REVISION_2, CAP_NET_RAW permitted and effective), as
        // ping carries in real images: an unpacker that drops security.* loses it.
        .file_with_xattr(
            "data/cap-net-raw",
            b"#!/bin/sh\n",
            "security.capability",
            &[
                1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        )
        .file("data/replaced.txt", b"first version\n", 0o644);
    let mut l3 = Layer::new();
    l3.dir("data", 0o755)
        .whiteout("data/gone.txt")
        .whiteout("data/dir-to-remove")
        .dir("data/opaque", 0o700)
        .opaque("data/opaque")
        .file(
            "data/opaque/new.txt",
            b"added with the opaque marker\n",
            0o644,
        )
        .file("data/replaced.txt", b"second version\n", 0o600);
    Image::new(
        vec![
            (busybox_layer(), Compression::Gzip),
            (l1.finish(), Compression::Gzip),
            (l2.finish(), Compression::None),
            (l3.finish(), Compression::Gzip),
        ],
        &["sh"],
    )
}

/// An image whose upper layers depend on the layers below them in every way layer.md
/// allows, for unpackers that unpack layers side by side: entries without their parent
/// directories' entries (whose mode, owner and xattrs are the lower layers'), a whiteout
/// and an opaque marker in such directories, a directory recreated after its whiteout,
/// a directory over a file and a file over a directory; and in layers of their own what
/// only the lower layers' tree can resolve: a write through a lower layer's symlink, a
/// hardlink to a lower layer's file, a whiteout in a directory no layer has.
pub fn cross_layer() -> Image {
    let mut below = Layer::new();
    below
        .dir_owned("srv", 0o750, 1000, 1000)
        .dir("opt", 0o755)
        .dir("opt/lib", 0o701)
        .dir_owned("opt/lib/app", 0o711, 0, 1000)
        .symlink("applink", "opt/lib/app")
        .dir_with_xattr("tagged", "user.tag", b"lower")
        .dir("conf", 0o755)
        .file("conf/a.txt", b"whited out above\n", 0o644)
        .file("conf/b.txt", b"stays\n", 0o644)
        .dir("tree", 0o755)
        .dir("tree/sub", 0o755)
        .file(
            "tree/sub/old.txt",
            b"hidden by the recreated directory\n",
            0o644,
        )
        .dir("tree2", 0o700)
        .file("tree2/old.txt", b"hidden by the opaque marker\n", 0o644)
        .file("replace-me", b"a file below\n", 0o644)
        .dir("becomes-file", 0o755)
        .file("becomes-file/inner", b"a directory below\n", 0o644)
        .file("x.txt", b"one inode\n", 0o644);
    // No directory entries: every parent is one of the layers below (or none's).
    let mut alone = Layer::new();
    alone
        .file_owned("srv/new.txt", b"in srv\n", 0o640, 1000, 1000)
        .file("opt/lib/app/plugin", b"#!/bin/sh\n", 0o755)
        .file("tagged/child", b"in tagged\n", 0o644)
        .whiteout("conf/a.txt")
        .whiteout("tree/sub")
        .dir("tree/sub", 0o755)
        .file("tree/sub/new.txt", b"recreated\n", 0o644)
        .opaque("tree2")
        .file("tree2/new.txt", b"after the opaque marker\n", 0o644)
        .dir("replace-me", 0o755)
        .file("replace-me/child", b"a directory now\n", 0o644)
        .file("becomes-file", b"a file now\n", 0o644)
        .file("fresh/deeper/f.txt", b"no layer has fresh\n", 0o644)
        .dir("newdir", 0o755)
        .whiteout("newdir/ghost")
        .file("newdir/f.txt", b"beside a whiteout of nothing\n", 0o644);
    let mut through_symlink = Layer::new();
    through_symlink.file(
        "applink/through-symlink",
        b"written through applink\n",
        0o644,
    );
    let mut hardlink = Layer::new();
    hardlink.hardlink("x-link", "x.txt");
    let mut whiteout_nowhere = Layer::new();
    whiteout_nowhere
        .whiteout("nowhere/x")
        .file("last.txt", b"top\n", 0o644);
    Image::new(
        vec![
            (busybox_layer(), Compression::Gzip),
            (below.finish(), Compression::Gzip),
            (alone.finish(), Compression::Gzip),
            (through_symlink.finish(), Compression::None),
            (hardlink.finish(), Compression::Gzip),
            (whiteout_nowhere.finish(), Compression::Gzip),
        ],
        &["sh"],
    )
}

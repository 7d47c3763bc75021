//! Applying image layers (image-spec layer.md) to a root filesystem: decompression by media
//! type, and a changeset applier that resolves every path inside the root.

pub mod apply;
pub mod lower;
pub mod xattrs;

use std::io::Read;

pub use apply::{apply_layer, ApplyError, ApplyInto, ApplyOptions, ApplyStats, LowerRefs};

/// A layer blob's compression, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Reads the compression from an OCI or Docker layer media type.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        if media_type.ends_with("+gzip")
            || media_type.ends_with(".tar.gzip")
            || media_type.ends_with("rootfs.diff.tar.gzip")
        {
            Some(Self::Gzip)
        } else if media_type.ends_with("+zstd") {
            Some(Self::Zstd)
        } else if media_type.ends_with(".tar") || media_type.ends_with("layer.v1.tar") {
            Some(Self::None)
        } else {
            None
        }
    }

    /// Wraps a compressed stream into a tar byte stream.
    pub fn decoder<'a, R: Read + 'a>(self, blob: R) -> std::io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Self::None => Box::new(blob),
            Self::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
            Self::Zstd => Box::new(zstd::stream::read::Decoder::new(blob)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::Compression;

    #[test]
    fn media_types() {
        use Compression::*;
        let cases = [
            ("application/vnd.oci.image.layer.v1.tar+gzip", Some(Gzip)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Some(Zstd)),
            ("application/vnd.oci.image.layer.v1.tar", Some(None)),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Gzip),
            ),
            ("application/vnd.oci.image.config.v1+json", Option::None),
        ];
        for (mt, want) in cases {
            assert_eq!(Compression::from_media_type(mt), want, "{mt}");
        }
    }

    #[test]
    fn decoders_round_trip() {
        let data = b"layer bytes".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        for (c, blob) in [
            (Compression::Gzip, gz),
            (Compression::Zstd, zs),
            (Compression::None, data.clone()),
        ] {
            let mut out = Vec::new();
            c.decoder(&blob[..]).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{c:?}");
        }
    }
}

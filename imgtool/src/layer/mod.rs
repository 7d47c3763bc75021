//! Applying image layers (image-spec layer.md) to a root filesystem: decompression by media
//! type, and a changeset applier that resolves every path inside the root.

pub mod apply;

use std::io::Read;

pub use apply::{apply_layer, ApplyError, ApplyOptions};

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

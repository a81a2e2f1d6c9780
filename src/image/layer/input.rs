//! What a layer is made from (its source directories), the settings every entry gets whatever
//! the files on disk say, and what building it did.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::LayerError;
use crate::image::model;

/// Bump whenever the same inputs would give different layer bytes (tar or compression settings,
/// how a layer is cut into compressed members), so that no cache serves the old bytes.
pub const FORMAT_VERSION: u32 = 2;

/// How a layer's tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip level 6: what every registry and runtime understands.
    #[default]
    Gzip,
    /// zstd level 3: smaller and faster, needs containerd 1.5+ or a recent CRI-O.
    Zstd,
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => model::OCI_LAYER_GZIP,
            Compression::Zstd => model::OCI_LAYER_ZSTD,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

impl FromStr for Compression {
    type Err = LayerError;

    fn from_str(s: &str) -> Result<Compression, LayerError> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            other => Err(LayerError::UnknownCompression {
                given: other.to_owned(),
            }),
        }
    }
}

/// What every entry of a layer gets, whatever the files on disk say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct LayerOptions {
    /// Modification time of every entry, in seconds since the epoch: `SOURCE_DATE_EPOCH` or a
    /// fixed value chosen by the caller.
    pub mtime: u64,
    /// Owner of every entry (`--chown`, default 0).
    pub uid: u64,
    /// Group of every entry (`--chown`, default 0).
    pub gid: u64,
    pub compression: Compression,
}

/// One directory on disk and where it goes in the image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LayerSource {
    /// A directory (a symlink to one is followed, its contents' symlinks are not).
    pub source: PathBuf,
    /// Absolute path in the image, such as `/opt/stackstorm/packs/aws`.
    pub path_in_image: String,
}

/// Everything that goes into one layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LayerInput {
    pub sources: Vec<LayerSource>,
}

impl LayerInput {
    /// A layer of the given `(directory on disk, path in image)` pairs.
    pub fn new<P: Into<PathBuf>, S: Into<String>>(
        sources: impl IntoIterator<Item = (P, S)>,
    ) -> LayerInput {
        LayerInput {
            sources: sources
                .into_iter()
                .map(|(source, path)| LayerSource {
                    source: source.into(),
                    path_in_image: path.into(),
                })
                .collect(),
        }
    }
}

/// What went into a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LayerStats {
    /// Non-directory entries: regular files, hardlinks and symlinks.
    pub files: u64,
    /// Size of the uncompressed tar stream (what the diff id hashes).
    pub bytes_uncompressed: u64,
    /// Timestamp-based `.pyc` files left out (see the module docs).
    pub skipped_timestamp_pycs: u64,
    /// Bytes of the tar stream whose compressed form was copied from an earlier build's layer
    /// instead of being compressed again (a virtualenv unchanged since then).
    #[serde(default)]
    pub bytes_reused: u64,
}

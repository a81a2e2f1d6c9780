//! Why a layer could not be built; each message names the path and what to do.

use std::io;
use std::path::PathBuf;

use crate::image::blobs::BlobError;

/// Why a layer could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// A source directory does not exist or cannot be read.
    #[error(
        "layer source {path} cannot be read: {source}; check that the pack was installed there"
    )]
    SourceMissing {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A source is a file, not a directory.
    #[error(
        "layer source {path} is not a directory; give the directory of an installed pack or virtualenv"
    )]
    SourceNotDirectory { path: PathBuf },

    /// A path in the image that cannot be used.
    #[error(
        "path in image `{path}` {reason}; give an absolute path without `.` or `..`, such as \
         /opt/stackstorm/packs/<pack>"
    )]
    BadImagePath { path: String, reason: &'static str },

    /// A compression name that is not known.
    #[error("unknown layer compression `{given}`; use gzip or zstd")]
    UnknownCompression { given: String },

    /// A file or directory in a source could not be read.
    #[error("could not read {path} while building a layer: {source}; check its permissions")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A socket, FIFO or device in a source tree.
    #[error(
        "{path} is a {kind}, which cannot go into an image layer; remove it from the tree and \
         build again"
    )]
    Unsupported { path: PathBuf, kind: &'static str },

    /// Two sources put something at the same path in the image.
    #[error(
        "both {first} and {second} would be `/{path_in_image}` in the same layer; give sources \
         whose paths in the image do not overlap"
    )]
    Overlap {
        path_in_image: String,
        first: PathBuf,
        second: PathBuf,
    },

    /// A path the layer needs as a directory is something else in another source.
    #[error(
        "{path} would be `/{path_in_image}` in the layer, but another source needs that path to \
         be a directory; give sources whose paths in the image do not overlap"
    )]
    NotADirectory {
        path: PathBuf,
        path_in_image: String,
    },

    /// A file changed between listing the tree and reading it.
    #[error(
        "{path} changed while the layer was being built; build again once nothing is writing to \
         the tree"
    )]
    Changed { path: PathBuf },

    /// Writing the layer out failed.
    #[error("could not write a layer into {dest}: {source}; check free space and permissions")]
    Write {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The blob store refused the layer.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

//! Deterministic image layers from file trees.
//!
//! One layer per pack holds `/opt/stackstorm/packs/<pack>/` and
//! `/opt/stackstorm/virtualenvs/<pack>/`. The same trees must give the same bytes on any machine,
//! whatever the files' times, the umask they were created with or the order a directory lists
//! them in, so that an unchanged pack keeps its digest and registries and nodes reuse it:
//!
//! * entries are sorted by their path in the image (byte order), parents of each path in the image
//!   are emitted once, with no leading `/`;
//! * GNU tar headers (`././@LongLink` for names and link targets over 100 bytes, which virtualenvs
//!   need), uid/gid and mtime from [`LayerOptions`], no user or group names, no device numbers,
//!   no xattrs, no atime/ctime;
//! * modes normalised: directories 0755, files 0755 when any execute bit is set else 0644,
//!   symlinks 0777; symlinks are stored, never followed; a file linked twice in a layer is stored
//!   once, the later path (in sorted order) becoming a hardlink entry;
//! * compression pinned: gzip level 6 with an empty header (no name, mtime 0, OS 255), or zstd
//!   level 3 single-threaded with a checksum; the compressor always receives the same fixed-size
//!   chunks, so its output does not depend on how reads happened to split.
//!
//! Timestamp-based `.pyc` files are left out: with normalised mtimes Python would judge them stale
//! and try to rewrite them on a read-only volume at every start. Checked- and unchecked-hash
//! `.pyc` (what st2pack's installer writes) are shipped as they are.
//!
//! A blob is a series of compressed members, the pack's entries in one and its virtualenv's in
//! the next (see `members`), so that a rebuild after a change to the pack alone copies the
//! virtualenv's member instead of compressing it again.
//!
//! The tar stream, its hash (the diff id), the compressor, the blob's hash and the blob file are
//! one streaming pipeline through fixed-size buffers; only the list of entries (paths and stat
//! data, not contents) is held in memory, because sorting and hardlink detection need it.

mod members;
mod pipeline;
mod scan;
mod tarball;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::{fmt, io};

use serde::{Deserialize, Serialize};

use super::blobs::{BlobError, BlobStore};
use super::model::{self, Layer};
use super::segment_cache::SegmentCache;

pub(crate) use scan::{image_prefix, walk_source};

/// Bump whenever the same inputs would give different layer bytes (tar or compression settings,
/// how a layer is cut into compressed members), so that no cache serves the old bytes.
pub const FORMAT_VERSION: u32 = 2;

/// Where st2pack puts packs in the image.
pub const PACKS_IN_IMAGE: &str = "/opt/stackstorm/packs";
/// Where st2pack puts virtualenvs in the image.
pub const VIRTUALENVS_IN_IMAGE: &str = "/opt/stackstorm/virtualenvs";

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

    /// st2pack's layer for one pack: the pack directory, and its virtualenv if it has one.
    pub fn pack(name: &str, pack_dir: impl Into<PathBuf>, virtualenv_dir: Option<PathBuf>) -> Self {
        let mut sources = vec![LayerSource {
            source: pack_dir.into(),
            path_in_image: format!("{PACKS_IN_IMAGE}/{name}"),
        }];
        if let Some(venv) = virtualenv_dir {
            sources.push(LayerSource {
                source: venv,
                path_in_image: format!("{VIRTUALENVS_IN_IMAGE}/{name}"),
            });
        }
        LayerInput { sources }
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

/// Builds one layer into `store`.
pub fn build_layer(
    store: &BlobStore,
    input: &LayerInput,
    options: &LayerOptions,
) -> Result<(Layer, LayerStats), LayerError> {
    build_layer_reusing(store, input, options, None)
}

/// Builds one layer into `store`, copying the compressed members of segments that are unchanged
/// since a build recorded in `segments`, and recording this build's there.
pub fn build_layer_reusing(
    store: &BlobStore,
    input: &LayerInput,
    options: &LayerOptions,
    segments: Option<&SegmentCache>,
) -> Result<(Layer, LayerStats), LayerError> {
    let plan = scan::plan(input)?;
    let (layer, mut stats) = members::write_layer(store, &plan, options, segments)?;
    stats.skipped_timestamp_pycs = plan.skipped_timestamp_pycs;
    Ok((layer, stats))
}

/// Writes a layer's uncompressed tar stream to `out` (for a docker archive, or to hash it).
/// `bytes_uncompressed` in the stats counts what was written.
pub fn write_tar<W: Write>(
    out: W,
    input: &LayerInput,
    options: &LayerOptions,
) -> Result<(W, LayerStats), LayerError> {
    let plan = scan::plan(input)?;
    let counted = pipeline::HashingWriter::new(out);
    let (counted, mut stats) =
        tarball::write(counted, &plan.entries, options, Path::new("the output"))?;
    let (out, digest) = counted.finish();
    stats.bytes_uncompressed = digest.len();
    stats.skipped_timestamp_pycs = plan.skipped_timestamp_pycs;
    Ok((out, stats))
}

/// The diff id a layer of `input` would have, without compressing or storing anything.
pub fn diff_id(input: &LayerInput, options: &LayerOptions) -> Result<String, LayerError> {
    let plan = scan::plan(input)?;
    let hashed = pipeline::HashingWriter::new(io::sink());
    let (hashed, _) = tarball::write(hashed, &plan.entries, options, Path::new("a hash"))?;
    Ok(hashed.finish().1.digest())
}

/// Builds several layers at once on `jobs` threads (0 counts as 1); results are in input order.
/// After the first failure no new layer is started, and the failure of the earliest input is
/// returned.
pub fn build_layers(
    store: &BlobStore,
    inputs: Vec<LayerInput>,
    options: &LayerOptions,
    jobs: usize,
) -> Result<Vec<(Layer, LayerStats)>, LayerError> {
    parallel_map(&inputs, jobs, |input| build_layer(store, input, options))
}

/// Runs `work` over `items` on up to `jobs` threads (the calling thread is one of them), keeping
/// the items' order in the results.
pub(crate) fn parallel_map<T: Sync, R: Send, E: Send>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let slots: Vec<Mutex<Option<Result<R, E>>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let worker = || {
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            let result = work(item);
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        }
    };
    let threads = jobs.clamp(1, items.len().max(1));
    std::thread::scope(|scope| {
        for n in 1..threads {
            // If a thread cannot be started, the others (at least this one) do its share.
            let _ = std::thread::Builder::new()
                .name(format!("st2pack-layer-{n}"))
                .spawn_scoped(scope, worker);
        }
        worker();
    });
    let mut results = Vec::with_capacity(items.len());
    // Items are claimed in order, so any unclaimed (None) slot comes after the first failure.
    for slot in slots {
        match slot.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(Ok(value)) => results.push(value),
            Some(Err(err)) => return Err(err),
            None => break,
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_order_and_reports_the_earliest_failure() {
        let items: Vec<u32> = (0..50).collect();
        for jobs in [0, 1, 2, 7, 100] {
            let doubled = parallel_map(&items, jobs, |n| Ok::<_, String>(n * 2)).expect("ok");
            assert_eq!(doubled, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        }
        let err = parallel_map(&items, 1, |n| if *n >= 3 { Err(*n) } else { Ok(*n) });
        assert_eq!(err, Err(3));
        assert_eq!(
            parallel_map(&[] as &[u32], 4, |n| Ok::<_, ()>(*n)),
            Ok(vec![])
        );
    }

    #[test]
    fn compression_names_and_media_types() {
        assert_eq!("gzip".parse::<Compression>().ok(), Some(Compression::Gzip));
        assert_eq!("zstd".parse::<Compression>().ok(), Some(Compression::Zstd));
        let err = "xz".parse::<Compression>().expect_err("xz accepted");
        assert!(err.to_string().contains("`xz`"), "{err}");
        assert_eq!(Compression::Gzip.media_type(), model::OCI_LAYER_GZIP);
        assert_eq!(Compression::Zstd.media_type(), model::OCI_LAYER_ZSTD);
    }

    #[test]
    fn pack_input_places_pack_and_virtualenv() {
        let input = LayerInput::pack("aws", "/p/aws", Some("/v/aws".into()));
        assert_eq!(
            input,
            LayerInput::new([
                ("/p/aws", "/opt/stackstorm/packs/aws"),
                ("/v/aws", "/opt/stackstorm/virtualenvs/aws"),
            ])
        );
        assert_eq!(LayerInput::pack("x", "/p/x", None).sources.len(), 1);
    }
}

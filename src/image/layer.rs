//! Deterministic image layers from file trees.
//!
//! A layer holds one or more directories, each at its own path in the image (for a pack image:
//! a pack and its virtualenv). The same trees must give the same bytes on any machine, whatever the files' times, the umask they were created with or the order a directory lists
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
//! A blob is a series of compressed members, one per source directory (see `members`), so that a
//! rebuild after a change to one of them (a pack) copies the member of another (its virtualenv)
//! instead of compressing it again.
//!
//! The tar stream, its hash (the diff id), the compressor, the blob's hash and the blob file are
//! one streaming pipeline through fixed-size buffers; only the list of entries (paths and stat
//! data, not contents) is held in memory, because sorting and hardlink detection need it.

mod error;
mod input;
mod members;
mod pipeline;
mod scan;
mod tarball;

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::blobs::BlobStore;
use super::model::Layer;
use super::segment_cache::SegmentCache;

pub use error::LayerError;
pub use input::{Compression, FORMAT_VERSION, LayerInput, LayerOptions, LayerSource, LayerStats};
pub(crate) use scan::{image_prefix, walk_source};

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
    use crate::image::model;

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
}

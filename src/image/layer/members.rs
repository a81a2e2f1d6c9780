//! Writing a layer blob as a series of compressed members: one per segment of the plan (one per
//! source tree of the layer), then one for the end-of-archive marker.
//!
//! Concatenated gzip members are one gzip stream (RFC 1952 §2.2) and concatenated zstd frames
//! one zstd stream (RFC 8878 §3): Go's readers (containerd, docker, skopeo, umoci), GNU gzip and
//! zstd read them whole. A reader that stops after the first member (flate2's `GzDecoder`, as
//! opposed to its `MultiGzDecoder`) would see only the first tree. The tar inside is byte for byte what
//! it would be compressed in one piece, so the diff id does not change. What the split buys: a segment
//! whose entries are unchanged since an earlier build has its member copied from that build's
//! blob (see [`SegmentCache`]) rather than compressed again: a tree made again with the same
//! files (a virtualenv linked again from the installer's cache) misses the layer cache, whose key
//! covers inodes, but not this. Each member is compressed from a
//! fresh compressor with the pinned settings, so the bytes are the same whether a member was
//! copied or compressed.

use std::io::{self, Read, Write};
use std::mem;
use std::path::Path;

use super::error::LayerError;
use super::input::{FORMAT_VERSION, LayerOptions, LayerStats};
use super::pipeline::{ChunkWriter, Compressor, HashingWriter, StreamDigest};
use super::scan::{Entry, Kind, Plan};
use super::tarball::{self, END_OF_ARCHIVE};
use crate::image::blobs::{BlobStore, BlobWriter};
use crate::image::cache_key::KeyHasher;
use crate::image::model::Layer;
use crate::image::segment_cache::{CachedMember, SegmentCache, SegmentRecord};

/// Buffer size for copying a member out of an earlier blob.
const COPY_BUF: usize = 128 * 1024;

/// A segment's part of the tar stream.
struct SegmentTar {
    /// Digest and size of the segment's bytes alone.
    digest: StreamDigest,
    /// Non-directory entries.
    files: u64,
}

/// What writing one segment's member did.
struct WrittenSegment {
    tar: SegmentTar,
    member_digest: String,
    /// The member was copied from an earlier layer rather than compressed.
    copied: bool,
}

/// Writes the layer `plan` describes into `store`, reusing members recorded in `reuse` and
/// recording the new ones there. `bytes_uncompressed` in the stats is the tar's size.
pub(super) fn write_layer(
    store: &BlobStore,
    plan: &Plan,
    options: &LayerOptions,
    reuse: Option<&SegmentCache>,
) -> Result<(Layer, LayerStats), LayerError> {
    let dest = store.root();
    let write_err = |source| LayerError::Write {
        dest: dest.to_owned(),
        source,
    };
    let mut blob = store.writer()?;
    let mut layer_tar = StreamDigest::default();
    let mut stats = LayerStats::default();
    let mut new_records = Vec::new();
    for range in &plan.segments {
        let entries = &plan.entries[range.clone()];
        let offset = blob.size();
        let key = reuse.map(|_| segment_key(entries, options));
        let earlier = reuse
            .zip(key.as_deref())
            .and_then(|(cache, key)| Some((cache, cache.lookup(key)?)));
        let segment = match earlier {
            Some((cache, record)) => {
                let (_, tar) = tar_segment(io::sink(), entries, options, &mut layer_tar, dest)?;
                copy_or_compress(&mut blob, cache, &record, tar, entries, options, dest)?
            }
            None => compress_segment(&mut blob, entries, options, &mut layer_tar, dest)?,
        };
        stats.files += segment.tar.files;
        if segment.copied {
            stats.bytes_reused += segment.tar.digest.len();
        }
        if let Some(key) = key {
            let record = SegmentRecord {
                blob: String::new(),
                offset,
                length: blob.size() - offset,
                member_digest: segment.member_digest,
                tar_digest: segment.tar.digest.digest(),
            };
            new_records.push((key, record));
        }
    }

    let end = compressed(&mut blob, options).map_err(write_err)?;
    let mut end = HashingWriter::continuing(end, layer_tar);
    end.write_all(&END_OF_ARCHIVE).map_err(write_err)?;
    let (end, layer_tar) = end.finish();
    finish_compressed(end).map_err(write_err)?;

    let descriptor = blob.finish(options.compression.media_type())?;
    if let Some(cache) = reuse {
        for (key, mut record) in new_records {
            record.blob.clone_from(&descriptor.digest);
            cache
                .remember(&key, &record)
                .map_err(|source| LayerError::Write {
                    dest: cache.dir().to_owned(),
                    source,
                })?;
        }
    }
    stats.bytes_uncompressed = layer_tar.len();
    let layer = Layer {
        descriptor,
        diff_id: layer_tar.digest(),
    };
    Ok((layer, stats))
}

/// Copies the member `record` points at into `blob` if the segment's `tar` (already added to
/// the layer's digest) is still the one it was compressed from; otherwise compresses the
/// segment again, which must give the same tar.
fn copy_or_compress(
    blob: &mut BlobWriter,
    cache: &SegmentCache,
    record: &SegmentRecord,
    tar: SegmentTar,
    entries: &[Entry],
    options: &LayerOptions,
    dest: &Path,
) -> Result<WrittenSegment, LayerError> {
    let unchanged = tar.digest.digest() == record.tar_digest;
    if let Some(member) = unchanged.then(|| cache.member(record)).flatten() {
        copy_member(blob, member, record, dest)?;
        return Ok(WrittenSegment {
            tar,
            member_digest: record.member_digest.clone(),
            copied: true,
        });
    }
    // The layer's digest already has this segment's bytes: this pass only makes the member.
    let mut not_counted_again = StreamDigest::default();
    let again = compress_segment(blob, entries, options, &mut not_counted_again, dest)?;
    if again.tar.digest.digest() != tar.digest.digest() {
        return Err(LayerError::Changed {
            path: entries
                .first()
                .map(|e| e.origin.clone())
                .unwrap_or_default(),
        });
    }
    Ok(again)
}

/// Copies a member checked by [`SegmentCache::member`] into `blob`, checking its bytes again on
/// the way: the blob is being written, so a change now could only be reported, not undone.
fn copy_member(
    blob: &mut BlobWriter,
    mut member: CachedMember,
    record: &SegmentRecord,
    dest: &Path,
) -> Result<(), LayerError> {
    let read_err = |source| LayerError::Read {
        path: member.blob.clone(),
        source,
    };
    let mut out = HashingWriter::new(blob);
    let mut buf = vec![0; COPY_BUF];
    loop {
        let n = match member.bytes.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        out.write_all(&buf[..n])
            .map_err(|source| LayerError::Write {
                dest: dest.to_owned(),
                source,
            })?;
    }
    let (_, copied) = out.finish();
    if copied.len() != record.length || copied.digest() != record.member_digest {
        return Err(read_err(io::Error::other(
            "this cached layer changed while a part of it was being copied; build again",
        )));
    }
    Ok(())
}

/// Tars and compresses `entries` as one member at the end of `blob`, adding the tar to
/// `layer_tar`.
fn compress_segment(
    blob: &mut BlobWriter,
    entries: &[Entry],
    options: &LayerOptions,
    layer_tar: &mut StreamDigest,
    dest: &Path,
) -> Result<WrittenSegment, LayerError> {
    let write_err = |source| LayerError::Write {
        dest: dest.to_owned(),
        source,
    };
    let member = compressed(blob, options).map_err(write_err)?;
    let (member, tar) = tar_segment(member, entries, options, layer_tar, dest)?;
    let member = finish_compressed(member).map_err(write_err)?;
    Ok(WrittenSegment {
        tar,
        member_digest: member.digest(),
        copied: false,
    })
}

/// Tars `entries` into `out`, adding them to `layer_tar`; returns `out` and what this segment
/// alone wrote.
fn tar_segment<W: Write>(
    out: W,
    entries: &[Entry],
    options: &LayerOptions,
    layer_tar: &mut StreamDigest,
    dest: &Path,
) -> Result<(W, SegmentTar), LayerError> {
    let writer = HashingWriter::new(HashingWriter::continuing(out, mem::take(layer_tar)));
    let (writer, stats) = tarball::write_entries(writer, entries, options, dest)?;
    let (writer, digest) = writer.finish();
    let (out, layer) = writer.finish();
    *layer_tar = layer;
    let files = stats.files;
    Ok((out, SegmentTar { digest, files }))
}

/// The writers of one compressed member; its output is hashed (the member's digest).
type MemberWriter<W> = ChunkWriter<Compressor<HashingWriter<W>>>;

/// Starts a member at the end of `out`.
fn compressed<W: Write>(out: W, options: &LayerOptions) -> io::Result<MemberWriter<W>> {
    let compressor = Compressor::new(HashingWriter::new(out), options.compression)?;
    Ok(ChunkWriter::new(compressor))
}

/// Ends a member; returns its digest.
fn finish_compressed<W: Write>(member: MemberWriter<W>) -> io::Result<StreamDigest> {
    let (_, member_digest) = member.into_inner()?.finish()?.finish();
    Ok(member_digest)
}

/// The key of a segment's record: what its tar bytes depend on, with each file's size and
/// modification time standing in for its contents, as in rsync's quick check. Neither inode nor
/// change time is in it, so that a virtualenv hard-linked again from the installer's cache, or
/// copied with its times, still finds its member. A key that matches files whose contents did
/// change costs one more pass over them, never a wrong layer (see [`SegmentCache`]).
fn segment_key(entries: &[Entry], options: &LayerOptions) -> String {
    let mut key = KeyHasher::new("st2pack-layer-segment");
    key.u64(FORMAT_VERSION.into());
    key.u64(options.mtime);
    key.u64(options.uid);
    key.u64(options.gid);
    key.bytes(options.compression.to_string().as_bytes());
    for entry in entries {
        key.bytes(&entry.name);
        match &entry.kind {
            Kind::Dir => key.tag(b'd'),
            Kind::File {
                size,
                executable,
                mtime_ns,
                ..
            } => {
                key.tag(b'f');
                key.u64(*size);
                key.tag(u8::from(*executable));
                key.i128(*mtime_ns);
            }
            Kind::Hardlink { target, executable } => {
                key.tag(b'h');
                key.bytes(target);
                key.tag(u8::from(*executable));
            }
            Kind::Symlink { target } => {
                key.tag(b'l');
                key.bytes(target);
            }
        }
    }
    key.finish()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;

    use super::*;
    use crate::image::layer::input::{Compression, LayerInput};
    use crate::image::layer::scan;
    use crate::image::model;

    struct Fixture {
        dir: tempfile::TempDir,
        pack: PathBuf,
        store: BlobStore,
        cache: SegmentCache,
        input: LayerInput,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let pack = dir.path().join("pack");
        let venv = dir.path().join("venv");
        fs::create_dir_all(pack.join("actions")).expect("mkdir");
        fs::write(pack.join("pack.yaml"), "ref: p\n").expect("write");
        fs::write(pack.join("actions/a.py"), "print('a')\n").expect("write");
        fs::create_dir_all(venv.join("lib/site-packages/dep")).expect("mkdir");
        for i in 0..20 {
            // Compressible, and different per file, so the member is more than a few bytes.
            let text: String = (0..4000).map(|n| format!("{i} {n}\n")).collect();
            fs::write(venv.join(format!("lib/site-packages/dep/m{i}.py")), text).expect("write");
        }
        let store = BlobStore::open(dir.path().join("blobs")).expect("store");
        let cache = SegmentCache::open(dir.path().join("cache"), &store).expect("cache");
        let input = LayerInput::new([
            (pack.clone(), "/opt/stackstorm/packs/p"),
            (venv, "/opt/stackstorm/virtualenvs/p"),
        ]);
        Fixture {
            dir,
            pack,
            store,
            cache,
            input,
        }
    }

    fn options(compression: Compression) -> LayerOptions {
        LayerOptions {
            mtime: 1_700_000_000,
            compression,
            ..LayerOptions::default()
        }
    }

    fn build_layer_reusing(
        store: &BlobStore,
        input: &LayerInput,
        options: &LayerOptions,
        segments: Option<&SegmentCache>,
    ) -> Result<(Layer, LayerStats), LayerError> {
        write_layer(store, &scan::plan(input)?, options, segments)
    }

    fn build(f: &Fixture, compression: Compression) -> (Layer, LayerStats) {
        build_layer_reusing(&f.store, &f.input, &options(compression), Some(&f.cache))
            .expect("build")
    }

    /// The same layer built without any cache, in a store of its own.
    fn from_scratch(f: &Fixture, compression: Compression) -> Layer {
        let store = BlobStore::open(f.dir.path().join("scratch")).expect("store");
        build_layer_reusing(&store, &f.input, &options(compression), None)
            .expect("build")
            .0
    }

    fn blob(f: &Fixture, layer: &Layer) -> Vec<u8> {
        fs::read(f.store.path(&layer.descriptor.digest).expect("path")).expect("read blob")
    }

    /// Each gzip member of `blob`, decompressed on its own.
    fn gzip_members(blob: &[u8]) -> Vec<Vec<u8>> {
        let mut rest = blob;
        let mut members = Vec::new();
        while !rest.is_empty() {
            let mut decoder = flate2::bufread::GzDecoder::new(rest);
            let mut member = Vec::new();
            decoder.read_to_end(&mut member).expect("gunzip member");
            members.push(member);
            rest = decoder.into_inner();
        }
        members
    }

    #[test]
    fn a_layer_is_a_member_per_segment_then_one_for_the_end_marker() {
        let f = fixture();
        let (layer, stats) = build(&f, Compression::Gzip);
        let members = gzip_members(&blob(&f, &layer));
        assert_eq!(members.len(), 3);
        assert!(
            members[0].starts_with(b"opt/"),
            "the pack's member comes first"
        );
        assert_eq!(&members[1][..25], b"opt/stackstorm/virtualenv");
        assert_eq!(members[2], END_OF_ARCHIVE);
        let tar = members.concat();
        assert_eq!(model::sha256_digest(&tar), layer.diff_id);
        assert_eq!(tar.len() as u64, stats.bytes_uncompressed);
        assert_eq!(stats.bytes_reused, 0);

        // zstd frames are cut the same way, and a decoder reads them as one stream.
        let (zst, _) = build(&f, Compression::Zstd);
        let tar_again = zstd::decode_all(&blob(&f, &zst)[..]).expect("unzstd");
        assert_eq!(tar_again, tar);
        assert_eq!(zst.diff_id, layer.diff_id);
    }

    #[test]
    fn an_unchanged_virtualenv_is_copied_into_the_rebuilt_layer() {
        let f = fixture();
        for compression in [Compression::Gzip, Compression::Zstd] {
            let (first, _) = build(&f, compression);

            let mut readme = fs::read_to_string(f.pack.join("pack.yaml")).expect("read");
            readme.push_str("description: changed\n");
            fs::write(f.pack.join("pack.yaml"), readme).expect("write");
            let (rebuilt, stats) = build(&f, compression);
            assert_ne!(rebuilt, first);
            assert_eq!(stats.bytes_reused, venv_tar_len(&f), "{compression}");
            // Byte for byte what a build from scratch gives.
            assert_eq!(rebuilt, from_scratch(&f, compression), "{compression}");

            // Nothing changed: every segment is copied, only the end marker is compressed.
            let (again, stats) = build(&f, compression);
            assert_eq!(again, rebuilt);
            assert_eq!(
                stats.bytes_reused,
                stats.bytes_uncompressed - END_OF_ARCHIVE.len() as u64
            );
        }
    }

    /// The size of the virtualenv's segment of the tar: the second gzip member, uncompressed.
    fn venv_tar_len(f: &Fixture) -> u64 {
        let options = options(Compression::Gzip);
        let (layer, _) = build_layer_reusing(&f.store, &f.input, &options, None).expect("build");
        gzip_members(&blob(f, &layer))[1].len() as u64
    }

    #[test]
    fn a_virtualenv_linked_or_copied_again_with_its_times_still_finds_its_member() {
        let f = fixture();
        let (first, _) = build(&f, Compression::Gzip);
        let venv = &f.input.sources[1].source;
        let moved = f.dir.path().join("venv-before");
        // Hard-linked again, as the installer does from its virtualenv cache: new links, same
        // inodes, new change times. Then copied with `cp -a`: new inodes, same modification times.
        for copy_flags in ["-al", "-a"] {
            fs::rename(venv, &moved).expect("move away");
            let status = std::process::Command::new("cp")
                .arg(copy_flags)
                .arg(&moved)
                .arg(venv)
                .status()
                .expect("cp");
            assert!(status.success());
            fs::remove_dir_all(&moved).expect("rm");
            let (again, stats) = build(&f, Compression::Gzip);
            assert_eq!(again, first, "cp {copy_flags}");
            assert!(stats.bytes_reused >= venv_tar_len(&f), "cp {copy_flags}");
        }
    }

    #[test]
    fn a_member_that_no_longer_matches_its_record_is_compressed_again() {
        let f = fixture();
        let (first, _) = build(&f, Compression::Gzip);
        let records: Vec<PathBuf> = fs::read_dir(f.cache.dir())
            .expect("records")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(records.len(), 2, "one record per segment");

        // Records claiming another tar (as if the files changed unnoticed by their stat data).
        let saved: Vec<Vec<u8>> = records.iter().map(|r| fs::read(r).expect("read")).collect();
        for record in &records {
            let mut json: serde_json::Value =
                serde_json::from_slice(&fs::read(record).expect("read")).expect("json");
            json["tar_digest"] = model::sha256_digest(b"something else").into();
            fs::write(record, serde_json::to_vec(&json).expect("json")).expect("write");
        }
        let (rebuilt, stats) = build(&f, Compression::Gzip);
        assert_eq!((rebuilt.clone(), stats.bytes_reused), (first.clone(), 0));

        // A blob whose bytes were damaged where the virtualenv's member lies.
        for (record, bytes) in records.iter().zip(&saved) {
            fs::write(record, bytes).expect("restore");
        }
        // The virtualenv's member is most of the blob.
        let path = f.store.path(&first.descriptor.digest).expect("path");
        let damaged = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        damaged
            .write_at(b"\xff\xff\xff\xff", first.descriptor.size / 2)
            .expect("damage");
        let (rebuilt, stats) = build(&f, Compression::Gzip);
        assert_eq!(rebuilt, first);
        assert!(
            stats.bytes_reused < stats.bytes_uncompressed / 10,
            "{stats:?}"
        );
        assert_eq!(
            blob(&f, &rebuilt),
            blob(&f, &from_scratch(&f, Compression::Gzip))
        );
    }
}

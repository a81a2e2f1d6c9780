//! The writers between the tar stream and the blob: hashing, fixed-size chunking, compression.

use std::io::{self, Write};

use flate2::GzBuilder;
use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};

use super::input::Compression;

/// The size of every write the compressor receives (but the last).
pub(super) const CHUNK: usize = 256 * 1024;

/// gzip level: 6, zlib's default, the usual trade-off for registries.
const GZIP_LEVEL: u32 = 6;
/// gzip header OS byte: 255, "unknown", as Go's compress/gzip writes (docker, containerd).
const GZIP_OS_UNKNOWN: u8 = 255;
/// zstd level: 3, zstd's default.
const ZSTD_LEVEL: i32 = 3;

/// A running SHA-256 and byte count of a stream.
#[derive(Clone, Default)]
pub(super) struct StreamDigest {
    hasher: Sha256,
    len: u64,
}

impl StreamDigest {
    fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// `sha256:<hex>` of what was hashed so far.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }

    /// How many bytes were hashed.
    pub fn len(&self) -> u64 {
        self.len
    }
}

/// Passes bytes through while adding them to a [`StreamDigest`], which can carry on from one
/// writer to the next (a layer's diff id spans all of its compressed members).
pub(super) struct HashingWriter<W> {
    inner: W,
    digest: StreamDigest,
}

impl<W> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self::continuing(inner, StreamDigest::default())
    }

    /// Adds what passes to `digest`, which may already hold the stream's earlier bytes.
    pub fn continuing(inner: W, digest: StreamDigest) -> Self {
        HashingWriter { inner, digest }
    }

    /// The inner writer, and the digest including what passed.
    pub fn finish(self) -> (W, StreamDigest) {
        (self.inner, self.digest)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hands its inner writer exactly [`CHUNK`]-byte writes (and a shorter last one), so that the
/// compressor sees the same calls whatever sizes the reads and tar records came in. Compressors
/// are deterministic for a given sequence of calls; this makes the sequence a function of the
/// bytes alone.
pub(super) struct ChunkWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> ChunkWriter<W> {
    pub fn new(inner: W) -> Self {
        ChunkWriter {
            inner,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    /// Writes the last partial chunk and returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        if !self.buf.is_empty() {
            self.inner.write_all(&self.buf)?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for ChunkWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() == CHUNK {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(n)
    }

    /// Deliberately does nothing: flushing a compressor mid-stream emits a sync block and would
    /// change the layer's bytes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The pinned compressors.
pub(super) enum Compressor<W: Write> {
    Gzip(GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    pub fn new(inner: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            // No file name, no mtime, a fixed OS byte: nothing about the build machine.
            Compression::Gzip => Compressor::Gzip(
                GzBuilder::new()
                    .mtime(0)
                    .operating_system(GZIP_OS_UNKNOWN)
                    .write(inner, flate2::Compression::new(GZIP_LEVEL)),
            ),
            Compression::Zstd => {
                // Single-threaded (the default: no workers), every frame flag pinned.
                let mut encoder = zstd::stream::write::Encoder::new(inner, ZSTD_LEVEL)?;
                encoder.include_checksum(true)?;
                encoder.include_contentsize(false)?;
                encoder.include_dictid(false)?;
                encoder.long_distance_matching(false)?;
                Compressor::Zstd(encoder)
            }
        })
    }

    /// Ends the compressed stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(encoder) => encoder.finish(),
            Compressor::Zstd(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(encoder) => encoder.write(buf),
            Compressor::Zstd(encoder) => encoder.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(encoder) => encoder.flush(),
            Compressor::Zstd(encoder) => encoder.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Compresses `data` written in pieces of the given sizes (cycled).
    fn compress(data: &[u8], compression: Compression, pieces: &[usize]) -> Vec<u8> {
        let mut writer = ChunkWriter::new(Compressor::new(Vec::new(), compression).expect("new"));
        let mut rest = data;
        for size in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at((*size).min(rest.len()));
            writer.write_all(piece).expect("write");
            writer.flush().expect("flush");
            rest = tail;
        }
        writer
            .into_inner()
            .and_then(Compressor::finish)
            .expect("finish")
    }

    fn sample() -> Vec<u8> {
        // Compressible but not trivial, and several chunks long.
        (0..(3 * CHUNK + 12_345) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 & 0x3f)
            .collect()
    }

    #[test]
    fn output_does_not_depend_on_write_sizes_or_flushes() {
        let data = sample();
        for compression in [Compression::Gzip, Compression::Zstd] {
            let one = compress(&data, compression, &[data.len()]);
            let small = compress(&data, compression, &[1, 511, 4096, 100_000]);
            assert_eq!(one, small, "{compression}");
        }
    }

    #[test]
    fn gzip_header_is_pinned_and_streams_round_trip() {
        let data = sample();
        let gz = compress(&data, Compression::Gzip, &[CHUNK]);
        // magic, deflate, no flags (no name), mtime 0, xfl 0 (level 6), OS 255.
        assert_eq!(gz[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .expect("gunzip");
        assert_eq!(back, data);

        let zst = compress(&data, Compression::Zstd, &[CHUNK]);
        assert_eq!(zst[..4], [0x28, 0xb5, 0x2f, 0xfd]);
        // Frame header descriptor: checksum flag (bit 2) set, no content size, no dict id.
        assert_eq!(zst[4] & 0b1100_0111, 0b0000_0100);
        assert_eq!(zstd::decode_all(&zst[..]).expect("unzstd"), data);
    }

    #[test]
    fn hashing_writer_hashes_what_passes() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"ab").expect("write");
        let (inner, digest) = writer.finish();
        assert_eq!(inner, b"ab");
        // Carried on into another writer, the digest covers both.
        let mut writer = HashingWriter::continuing(Vec::new(), digest);
        writer.write_all(b"c").expect("write");
        let (inner, digest) = writer.finish();
        assert_eq!(inner, b"c");
        assert_eq!(digest.len(), 3);
        assert_eq!(digest.digest(), crate::image::model::sha256_digest(b"abc"));
    }
}

//! `compress-limit gzip|zstd`: compresses stdin the way st2pack compresses a layer (same crates,
//! same levels and settings, 256 KiB writes) and prints the compressed size in bytes. Nothing
//! else: no tar, no hashing, no file written.

use std::io::{self, Read, Write};

/// st2pack hands its compressor writes of exactly this size (src/image/layer/pipeline.rs).
const CHUNK: usize = 256 * 1024;

/// Counts what the compressor emits and throws it away.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn pump(mut sink: impl Write) -> io::Result<()> {
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; CHUNK];
    loop {
        // Fill a whole chunk (pipes return short reads) before handing it on.
        let mut filled = 0;
        while filled < CHUNK {
            match stdin.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        sink.write_all(&buf[..filled])?;
        if filled < CHUNK {
            return Ok(());
        }
    }
}

fn main() -> io::Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let size = match mode.as_str() {
        "gzip" => {
            let mut enc = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(Counter(0), flate2::Compression::new(6));
            pump(&mut enc)?;
            enc.finish()?.0
        }
        "zstd" => {
            let mut enc = zstd::stream::write::Encoder::new(Counter(0), 3)?;
            enc.include_checksum(true)?;
            enc.include_contentsize(false)?;
            pump(&mut enc)?;
            enc.finish()?.0
        }
        _ => {
            eprintln!("usage: compress-limit gzip|zstd < DATA");
            std::process::exit(2);
        }
    };
    println!("{size}");
    Ok(())
}

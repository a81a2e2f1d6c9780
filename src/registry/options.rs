//! What a registry client is told (timeouts, trust, retries, upload style) and what it tells
//! back (events for progress lines and `--verbose` logs): the types callers build and match on,
//! apart from the machinery that uses them.

use std::path::PathBuf;
use std::time::Duration;

use super::retry::RetryPolicy;

/// How blob bytes are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UploadMode {
    /// One `PUT` with `Content-Length`, streamed from the file: the fewest requests, and what
    /// every registry (distribution 2.8 included) accepts.
    #[default]
    Monolithic,
    /// A series of `PATCH` requests of at most a few MiB, then a closing `PUT`; for proxies that
    /// limit request sizes.
    Chunked,
}

/// Settings shared by every registry a client talks to.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host:port` or `host`) that may be reached over plain HTTP (`--insecure`).
    /// Registries on this machine always may.
    pub insecure_registries: Vec<String>,
    /// A PEM file with extra root certificates (`--ca-file`), trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// How long to wait for a TCP connection (and TLS handshake).
    pub connect_timeout: Duration,
    /// How long a request may go without receiving anything (a transfer, without moving any
    /// bytes). Retries stop after twice this ([`RegistryOptions::retry_window`]).
    pub read_timeout: Duration,
    /// Where docker's config.json is; `None` for docker's own lookup (`$DOCKER_CONFIG`, then
    /// `~/.docker`).
    pub docker_config_dir: Option<PathBuf>,
    pub retry: RetryPolicy,
    /// Blobs transferred at once.
    pub concurrency: usize,
    pub upload_mode: UploadMode,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure_registries: Vec::new(),
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            docker_config_dir: None,
            retry: RetryPolicy::default(),
            concurrency: 3,
            upload_mode: UploadMode::default(),
        }
    }
}

impl RegistryOptions {
    /// The time after an operation's first attempt in which retries may start: twice the read
    /// timeout, so that a registry that hangs is given one more chance, not four.
    pub fn retry_window(&self) -> Duration {
        self.read_timeout.saturating_mul(2)
    }
}

/// What a push or pull is doing, for progress lines and `--verbose` logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// The registry already has the blob.
    BlobSkipped {
        digest: String,
    },
    /// The blob was mounted from another repository of the same registry.
    BlobMounted {
        digest: String,
        from: String,
    },
    /// A push is about to send (or find present) this many blobs.
    PushStarted {
        blobs: usize,
    },
    /// An upload of the blob starts: from its first byte, also after a retry.
    BlobUploadStarted {
        digest: String,
        size: u64,
    },
    /// `bytes` more bytes of the blob were sent.
    BlobBytesSent {
        digest: String,
        bytes: u64,
    },
    BlobUploaded {
        digest: String,
        size: u64,
    },
    BlobDownloaded {
        digest: String,
        size: u64,
    },
    ManifestPushed {
        reference: String,
        digest: String,
    },
    /// A transient failure; the operation will be tried again after `delay`.
    Retrying {
        what: String,
        attempt: u32,
        delay: Duration,
        error: String,
    },
}

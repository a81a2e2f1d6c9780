//! Pulling and pushing images over the OCI distribution API, without a Docker daemon.
//!
//! The wire protocol (token dance, upload sessions, manifest requests) is oci-client's; what this
//! module adds is what a CI pipeline needs from a push to be trustworthy:
//!
//! * the transport docker users expect: plain HTTP to `--insecure` registries and to this machine,
//!   HTTPS with an optional extra CA everywhere else, and credentials never sent in the clear to
//!   anything else ([`client`], with `transport`, `challenge`, `session` and `classify`);
//! * docker's credentials (`--username`/`--password-stdin`, then `~/.docker/config.json` with its
//!   helpers), and a wrong password reported as such, naming which credentials were tried but
//!   never the secret ([`auth`]);
//! * pushes that only send what the registry lacks (HEAD, then a cross-repository mount, then an
//!   upload streamed from the blob store), retried with backoff on transient failures, with the
//!   manifest written last so a tag never points at missing blobs ([`push`]);
//! * pulls of a base image into the blob store, verified by digest ([`pull`]).

pub mod auth;
mod challenge;
mod classify;
pub mod client;
mod mount;
mod options;
pub mod pull;
pub mod push;
pub mod reference;
pub mod retry;
mod session;
mod transport;

use std::path::PathBuf;
use std::time::Duration;

pub use auth::{CredentialKind, Credentials, Secret};
pub use client::RegistryClient;
pub use options::{RegistryEvent, RegistryOptions, UploadMode};
pub use pull::{
    PulledImage, fetch_manifest_and_config, pull_config, pull_image, pull_layers,
    resolve_manifest_digest,
};
pub use push::{PushOptions, PushReport, push_image};
pub use reference::{Reference, ReferenceError};
pub use retry::RetryPolicy;

use crate::image::blobs::BlobError;

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a registry. Each message names the registry (or the
/// image reference), what failed, and what to do; none contains a password or token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error(transparent)]
    InvalidReference(#[from] ReferenceError),

    /// The registry refused the credentials (HTTP 401, or the token service said no).
    #[error("authentication to registry {registry} failed with {tried}{detail}; {hint}")]
    Unauthorized {
        registry: String,
        /// Which credentials were tried ("user `ci` from --username/--password-stdin"), never
        /// the secret.
        tried: String,
        detail: String,
        hint: String,
    },

    /// Authenticated, but not allowed to do this (HTTP 403).
    #[error(
        "registry {registry} denied {operation} to {tried}; check that this account may push to \
         (or pull from) that repository"
    )]
    Denied {
        registry: String,
        operation: String,
        tried: String,
    },

    /// Sending credentials would expose them: plain HTTP to a host that is neither this machine
    /// nor marked insecure.
    #[error(
        "refusing to send the credentials for registry {registry} over plain HTTP to {url}; use \
         HTTPS, or pass --insecure for {registry} if this network is trusted"
    )]
    InsecureCredentials { registry: String, url: String },

    /// No TCP connection, a TLS failure, or no answer to the first request within the timeouts.
    #[error("cannot reach registry {registry} ({url}): {reason}; {hint}")]
    Unreachable {
        registry: String,
        url: String,
        reason: String,
        hint: String,
    },

    /// The connection was established but the registry stopped answering; `timeout` is the
    /// limit that ran out.
    #[error(
        "registry {registry} did not answer within {timeout:?} while {operation}; check that \
         the registry is up and the network to it, or allow more time with --registry-timeout \
         SECS"
    )]
    Timeout {
        registry: String,
        operation: String,
        timeout: Duration,
    },

    /// The connection broke in the middle of a request.
    #[error("the connection to registry {registry} broke while {operation}: {reason}")]
    ConnectionLost {
        registry: String,
        operation: String,
        reason: String,
    },

    /// The manifest, tag or repository does not exist.
    #[error("{what} not found on registry {registry}; check the image reference and tag")]
    NotFound { registry: String, what: String },

    /// An HTTP error status that is not one of the above (5xx and 429 are retried first).
    #[error("registry {registry} answered HTTP {status} while {operation}: {detail}")]
    Http {
        registry: String,
        operation: String,
        status: u16,
        detail: String,
    },

    /// The registry's answer makes no sense for the protocol (or an unexpected client failure).
    #[error("registry {registry} failed while {operation}: {detail}")]
    Protocol {
        registry: String,
        operation: String,
        detail: String,
    },

    /// Downloaded content does not hash to the digest it was asked for.
    #[error(
        "{what} from registry {registry} is corrupt: expected {expected}, got {actual}; try again, \
         and check any proxy between here and the registry"
    )]
    DigestMismatch {
        registry: String,
        what: String,
        expected: String,
        actual: String,
    },

    /// A manifest we cannot use (unsupported media type, no matching platform, malformed).
    #[error("image {reference}: {reason}")]
    Manifest { reference: String, reason: String },

    /// A transient failure that did not go away.
    #[error(
        "{last} (gave up after {attempts} attempts{})",
        window.map_or(String::new(), |w| format!("; retries stop {w:?} after the first attempt"))
    )]
    GaveUp {
        attempts: u32,
        /// Set when retries stopped because this time had passed since the first attempt.
        window: Option<Duration>,
        #[source]
        last: Box<RegistryError>,
    },

    #[error("cannot use CA file {path}: {reason}; pass a PEM file with one or more certificates")]
    CaFile { path: PathBuf, reason: String },

    #[error("cannot use the docker credentials in {path} for {registry}: {reason}")]
    DockerConfig {
        path: PathBuf,
        registry: String,
        reason: String,
    },

    #[error("{context}: {source}")]
    Store {
        context: String,
        #[source]
        source: BlobError,
    },

    /// Pushing: the blobs given do not match the manifest (a caller bug, reported, not panicked).
    #[error("cannot push {reference}: {reason}")]
    InvalidImage { reference: String, reason: String },
}

impl RegistryError {
    /// Whether trying again may help: server errors, rate limits, timeouts, broken connections.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Http { status, .. } => *status == 429 || *status >= 500,
            RegistryError::Timeout { .. }
            | RegistryError::ConnectionLost { .. }
            | RegistryError::DigestMismatch { .. } => true,
            _ => false,
        }
    }

    /// The error behind retries, for callers that match on kinds.
    pub fn root(&self) -> &RegistryError {
        match self {
            RegistryError::GaveUp { last, .. } => last.root(),
            other => other,
        }
    }

    /// Wrong or missing credentials.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.root(), RegistryError::Unauthorized { .. })
    }

    /// The CLI's exit code: 2 for bad input (nothing was attempted), 1 for a failed operation.
    pub fn exit_code(&self) -> i32 {
        match self.root() {
            RegistryError::InvalidReference(_)
            | RegistryError::CaFile { .. }
            | RegistryError::DockerConfig { .. } => 2,
            _ => 1,
        }
    }
}

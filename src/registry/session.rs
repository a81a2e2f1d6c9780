//! A session: one registry's settled transport, credentials and oci-client, shared by every
//! pull and push to that registry, and the bounds put on each request made through it.

use std::collections::HashSet;
use std::time::Duration;

use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client as OciClient, RegistryOperation};

use super::auth::Credentials;
use super::challenge::TokenService;
use super::reference::Reference;
use super::{RegistryError, Result};

/// What an operation is doing (for messages) and what it is about (for "not found").
pub(crate) struct Op {
    pub doing: String,
    pub subject: String,
}

impl Op {
    pub(crate) fn new(doing: impl Into<String>, subject: impl Into<String>) -> Op {
        Op {
            doing: doing.into(),
            subject: subject.into(),
        }
    }
}

/// A registry's transport, credentials and oci-client, settled by the preflight.
pub(crate) struct Session {
    pub registry: String,
    pub oci: OciClient,
    pub auth: RegistryAuth,
    pub credentials: Credentials,
    /// Set for token registries.
    pub token_service: Option<TokenService>,
    /// For the requests oci-client cannot make (see `mount.rs`), with the same TLS settings.
    pub http: reqwest::Client,
    /// `scheme://host[:port]` of the registry API.
    pub base_url: String,
    pub read_timeout: Duration,
    pub(super) connect_timeout: Duration,
    /// (repository, push) pairs whose token has been fetched.
    pub(super) authorized: tokio::sync::Mutex<HashSet<(String, bool)>>,
}

impl Session {
    /// Fetches the repository's token now (token registries only) so that wrong credentials are
    /// reported as such, not as a 401 in the middle of an upload.
    pub(super) async fn authorize(&self, reference: &Reference, push: bool) -> Result<()> {
        if self.token_service.is_none() {
            return Ok(());
        }
        let key = (reference.repository().to_string(), push);
        let mut authorized = self.authorized.lock().await;
        if authorized.contains(&key) {
            return Ok(());
        }
        let op = if push {
            RegistryOperation::Push
        } else {
            RegistryOperation::Pull
        };
        let what = Op::new(
            format!("getting a token for {}", reference.repository()),
            format!("repository {}", reference.repository()),
        );
        let oci_ref = reference.to_oci();
        self.timed(&what, self.oci.auth(&oci_ref, &self.auth, op))
            .await?;
        authorized.insert(key);
        Ok(())
    }

    /// Runs one small request (not a blob transfer), bounded by the connect and read timeouts,
    /// and classifies its error.
    pub(crate) async fn timed<T>(
        &self,
        op: &Op,
        request: impl std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
    ) -> Result<T> {
        let limit = self.connect_timeout + self.read_timeout;
        match tokio::time::timeout(limit, request).await {
            Ok(result) => result.map_err(|e| self.error(op, e)),
            Err(_) => Err(self.timeout_after(op, limit)),
        }
    }

    /// The registry went silent for the read timeout (the limit of a transfer's idle time).
    pub(crate) fn timeout(&self, op: &Op) -> RegistryError {
        self.timeout_after(op, self.read_timeout)
    }

    /// The registry did not answer within `limit`, the limit that ran out.
    pub(crate) fn timeout_after(&self, op: &Op, limit: Duration) -> RegistryError {
        RegistryError::Timeout {
            registry: self.registry.clone(),
            operation: op.doing.clone(),
            timeout: limit,
        }
    }
}

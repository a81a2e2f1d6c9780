//! Transport: which scheme a registry is spoken to over, and what may travel in the clear.
//!
//! Docker's rules: a registry on this machine or named with `--insecure` may be plain HTTP, but
//! HTTPS is tried first, so a local registry with TLS (and `--ca-file`) works too; every other
//! registry is HTTPS only. The `/v2/` probe that settles the scheme is also what makes an
//! unreachable registry fail early, naming its address and the likely cause.

use std::path::PathBuf;

use super::RegistryError;
use super::Result;
use super::classify::{error_chain_without_url, summarize_body};
use super::client::RegistryClient;
use super::reference::{is_loopback_host, split_host_port};

impl RegistryClient {
    pub(super) fn allows_plain_http(&self, registry: &str) -> bool {
        let (host, _) = split_host_port(registry);
        is_loopback_host(host) || self.is_insecure(registry)
    }

    pub(super) fn is_insecure(&self, registry: &str) -> bool {
        let (host, _) = split_host_port(registry);
        self.options
            .insecure_registries
            .iter()
            .any(|r| r.eq_ignore_ascii_case(registry) || r.eq_ignore_ascii_case(host))
    }

    /// Finds the scheme: HTTPS, or plain HTTP for registries that may use it and do not speak
    /// TLS. Retries what the policy retries (5xx, 429, broken connections), but not a refused
    /// or timed-out connection: an unreachable registry should fail within the connect timeout.
    pub(super) async fn preflight(
        &self,
        registry: &str,
        api_host: &str,
    ) -> Result<(&'static str, Answer)> {
        let https_url = format!("https://{api_host}/v2/");
        let https = self
            .retry(&format!("checking {https_url}"), |_| {
                self.probe(registry, &https_url)
            })
            .await;
        let tls_error = match https {
            Ok(answer) => return Ok(("https", answer)),
            Err(e) if !self.allows_plain_http(registry) => return Err(e),
            // The port is closed or silent, or the server answered HTTPS: plain HTTP would
            // fare no better.
            Err(e) if !is_tls_failure(&e) => return Err(e),
            Err(e) => e,
        };
        let http_url = format!("http://{api_host}/v2/");
        let http = self
            .retry(&format!("checking {http_url}"), |_| {
                self.probe(registry, &http_url)
            })
            .await;
        match http {
            Ok(answer) if answer.status == 200 || answer.status == 401 => Ok(("http", answer)),
            // The server speaks plain HTTP and is failing (5xx, 429): that is the story.
            Err(e) if matches!(e.root(), RegistryError::Http { .. }) => Err(e),
            // Only a registry's answer counts: an HTTPS server answers plain HTTP with 400, and
            // then the TLS failure (an untrusted certificate, say) is the real story. Plain HTTP
            // was allowed and tried, so the advice cannot be to allow it.
            Ok(answer) => Err(plain_http_tried(
                tls_error,
                &format!("plain HTTP ({http_url}) answered HTTP {}", answer.status),
            )),
            Err(e) => Err(plain_http_tried(
                tls_error,
                &format!("plain HTTP failed too ({e})"),
            )),
        }
    }

    async fn probe(&self, registry: &str, url: &str) -> Result<Answer> {
        let answer = self.ask(registry, url, self.http.get(url)).await?;
        let Answer {
            status, ref body, ..
        } = answer;
        if status == 429 || status >= 500 {
            return Err(RegistryError::Http {
                registry: registry.to_string(),
                operation: format!("checking {url}"),
                status,
                detail: summarize_body(body, None),
            });
        }
        Ok(answer)
    }

    /// Sends `request` to `url` and reads the whole answer. The HTTP client's connect timeout
    /// bounds the connection and TLS handshake (so its timeout error means those); the rest is
    /// bounded here, as the client has no read timeout that could tell the two apart.
    pub(super) async fn ask(
        &self,
        registry: &str,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer> {
        let limit = self.options.connect_timeout + self.options.read_timeout;
        let exchange = async {
            let response = request
                .send()
                .await
                .map_err(|e| self.unreachable(registry, url, &e))?;
            let status = response.status().as_u16();
            let www_authenticate = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response.text().await.unwrap_or_default();
            Ok(Answer {
                status,
                www_authenticate,
                body,
            })
        };
        tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(RegistryError::Unreachable {
                    registry: registry.to_string(),
                    url: url.to_string(),
                    reason: format!("connected, but no answer within {limit:?}"),
                    hint: MORE_TIME.into(),
                })
            })
    }

    /// A request to `url` that got no HTTP answer, reported as what happened: which timeout ran
    /// out (connecting, with the TLS handshake for HTTPS, or waiting for the answer), a refused
    /// connection, a certificate or TLS failure, an unknown host.
    pub(super) fn unreachable(
        &self,
        registry: &str,
        url: &str,
        e: &reqwest::Error,
    ) -> RegistryError {
        let unreachable = |reason: String, hint: &str| RegistryError::Unreachable {
            registry: registry.to_string(),
            url: url.to_string(),
            reason,
            hint: hint.to_string(),
        };
        if e.is_timeout() {
            // The HTTP client's only timeout is the connect timeout (see `ask`).
            let reason = if url.starts_with("https:") {
                format!(
                    "the connection and TLS handshake did not complete within {:?}",
                    self.options.connect_timeout
                )
            } else {
                format!(
                    "the connection did not complete within {:?}",
                    self.options.connect_timeout
                )
            };
            return unreachable(reason, MORE_TIME);
        }
        let reason = error_chain_without_url(e);
        let lower = reason.to_ascii_lowercase();
        let hint = if lower.contains("certificate") || lower.contains("unknownissuer") {
            "if the registry's certificate comes from a private CA, pass that CA with --ca-file"
        } else if lower.contains("refused") {
            "check that the registry is running and the host and port are right"
        } else if lower.contains("dns") || lower.contains("resolve") || lower.contains("lookup") {
            "check the registry's host name"
        } else if lower.contains("tls")
            || lower.contains("corrupt message")
            || lower.contains("handshake")
        {
            "the registry may not speak HTTPS: if it is plain HTTP on a trusted network, pass --insecure"
        } else {
            "check the address, the network and any proxy"
        };
        unreachable(reason, hint)
    }
}

/// A registry's answer to `GET /v2/`.
pub(super) struct Answer {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: String,
}

/// The advice when a registry is too slow to answer.
const MORE_TIME: &str = "check the address, the network and any firewall, or allow more time \
                         with --registry-timeout SECS";

/// Whether plain HTTP might succeed where HTTPS failed: the server answered, but not with TLS
/// (or with a certificate we do not trust). A refused, timed-out or unresolvable connection
/// would fail over plain HTTP too.
fn is_tls_failure(e: &RegistryError) -> bool {
    match e {
        RegistryError::Unreachable { reason, .. } => {
            let lower = reason.to_ascii_lowercase();
            !(lower.contains("refused")
                || lower.contains("did not complete within")
                || lower.contains("no answer within")
                || lower.contains("timed out")
                || lower.contains("dns"))
        }
        _ => false,
    }
}

/// The HTTPS failure of a registry that may use plain HTTP, with what plain HTTP gave instead
/// of the advice to allow it.
fn plain_http_tried(tls_error: RegistryError, outcome: &str) -> RegistryError {
    match tls_error {
        RegistryError::Unreachable {
            registry,
            url,
            reason,
            hint,
        } => RegistryError::Unreachable {
            hint: if hint.contains("--insecure") {
                format!("{outcome}; check that this address and port are the registry's")
            } else {
                format!("{hint} ({outcome})")
            },
            registry,
            url,
            reason,
        },
        other => other,
    }
}

/// Splits a PEM bundle into one PEM block per certificate (oci-client takes them one by one).
pub(super) fn read_ca_file(path: &PathBuf) -> Result<Vec<Vec<u8>>> {
    let fail = |reason: String| RegistryError::CaFile {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            return Err(fail("a certificate block has no END line".into()));
        };
        let end = start + len + END.len();
        blocks.push(format!("{}\n", &rest[start..end]).into_bytes());
        rest = &rest[end..];
    }
    if blocks.is_empty() {
        return Err(fail("it contains no `BEGIN CERTIFICATE` block".into()));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryOptions;

    fn client(insecure: &[&str]) -> RegistryClient {
        RegistryClient::new(RegistryOptions {
            insecure_registries: insecure.iter().map(|s| s.to_string()).collect(),
            ..RegistryOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn plain_http_only_for_this_machine_and_insecure_registries() {
        let c = client(&["10.1.2.3:5000", "registry.lan"]);
        for ok in [
            "127.0.0.1:5000",
            "localhost:5000",
            "[::1]:5000",
            "10.1.2.3:5000",
            "registry.lan:443",
        ] {
            assert!(c.allows_plain_http(ok), "{ok}");
        }
        for no in ["10.1.2.3:5001", "registry.example.com", "docker.io"] {
            assert!(!c.allows_plain_http(no), "{no}");
        }
    }

    #[test]
    fn ca_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "hello").unwrap();
        let err = RegistryClient::new(RegistryOptions {
            ca_file: Some(bad.clone()),
            ..RegistryOptions::default()
        })
        .unwrap_err();
        assert!(matches!(err, RegistryError::CaFile { .. }), "{err}");
        assert!(err.to_string().contains("bad.pem"), "{err}");
        assert_eq!(err.exit_code(), 2);
        let missing = RegistryClient::new(RegistryOptions {
            ca_file: Some(dir.path().join("missing.pem")),
            ..RegistryOptions::default()
        })
        .unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }
}

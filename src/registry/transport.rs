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
            // The port is closed or silent: plain HTTP would fare no better.
            Err(e @ RegistryError::Unreachable { .. }) if !is_tls_failure(&e) => return Err(e),
            Err(e) => e,
        };
        let http_url = format!("http://{api_host}/v2/");
        match self
            .retry(&format!("checking {http_url}"), |_| {
                self.probe(registry, &http_url)
            })
            .await
        {
            // Only a registry's answer counts: an HTTPS server answers plain HTTP with 400, and
            // then the TLS failure (an untrusted certificate, say) is the real story.
            Ok(answer) if answer.status == 200 || answer.status == 401 => Ok(("http", answer)),
            _ => Err(tls_error),
        }
    }

    async fn probe(&self, registry: &str, url: &str) -> Result<Answer> {
        let response = self
            .http
            .get(url)
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
        if status == 429 || status >= 500 {
            return Err(RegistryError::Http {
                registry: registry.to_string(),
                operation: format!("checking {url}"),
                status,
                detail: summarize_body(&body, None),
            });
        }
        Ok(Answer {
            status,
            www_authenticate,
            body,
        })
    }

    pub(super) fn unreachable(
        &self,
        registry: &str,
        url: &str,
        e: &reqwest::Error,
    ) -> RegistryError {
        let reason = error_chain_without_url(e);
        let lower = reason.to_ascii_lowercase();
        let hint = if e.is_timeout() {
            return RegistryError::Unreachable {
                registry: registry.to_string(),
                url: url.to_string(),
                reason: format!(
                    "no answer within {:?} (connect timeout {:?})",
                    self.options.read_timeout, self.options.connect_timeout
                ),
                hint: "check the address, the network and any firewall".into(),
            };
        } else if lower.contains("certificate") || lower.contains("unknownissuer") {
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
        RegistryError::Unreachable {
            registry: registry.to_string(),
            url: url.to_string(),
            reason,
            hint: hint.to_string(),
        }
    }
}

/// A registry's answer to `GET /v2/`.
pub(super) struct Answer {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: String,
}

fn is_tls_failure(e: &RegistryError) -> bool {
    match e {
        RegistryError::Unreachable { reason, .. } => {
            let lower = reason.to_ascii_lowercase();
            !(lower.contains("refused")
                || lower.contains("no answer within")
                || lower.contains("dns"))
        }
        _ => false,
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

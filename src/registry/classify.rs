//! Error classification: every failure of a registry request becomes a [`RegistryError`] that
//! says what happened in the user's terms, tells the retry policy whether it is transient, and
//! never carries the password or token.

use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};

use super::RegistryError;
use super::auth::{self, Credentials};
use super::session::{Op, Session};

impl Session {
    /// Turns an oci-client error into ours: classified (so the retry policy knows what is
    /// transient), naming the registry, and scrubbed of the password.
    pub(crate) fn error(&self, op: &Op, err: OciDistributionError) -> RegistryError {
        let registry = self.registry.clone();
        match err {
            OciDistributionError::RequestError(e) => self.request_error(op, &e),
            OciDistributionError::ServerError { code, message, .. } => {
                status_error(&registry, op, code, &message, &self.credentials)
            }
            OciDistributionError::UnauthorizedError { .. } => {
                unauthorized(&registry, &self.credentials, String::new())
            }
            OciDistributionError::AuthenticationFailure(reason) => unauthorized(
                &registry,
                &self.credentials,
                format!(
                    " (token service: {})",
                    summarize_body(&reason, Some(&self.credentials))
                ),
            ),
            OciDistributionError::RegistryError { envelope, .. } => {
                let detail = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                let detail = scrub(&detail, Some(&self.credentials));
                let code = envelope.errors.first().map(|e| &e.code);
                match code {
                    Some(OciErrorCode::Unauthorized) => {
                        unauthorized(&registry, &self.credentials, String::new())
                    }
                    Some(OciErrorCode::Denied) => RegistryError::Denied {
                        registry,
                        operation: op.doing.clone(),
                        tried: self.credentials.source.clone(),
                    },
                    Some(OciErrorCode::Toomanyrequests) => RegistryError::Http {
                        registry,
                        operation: op.doing.clone(),
                        status: 429,
                        detail,
                    },
                    Some(
                        OciErrorCode::NameUnknown
                        | OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound,
                    ) => RegistryError::NotFound {
                        registry,
                        what: op.subject.clone(),
                    },
                    _ => RegistryError::Protocol {
                        registry,
                        operation: op.doing.clone(),
                        detail,
                    },
                }
            }
            OciDistributionError::DigestError(DigestError::VerificationError {
                expected,
                actual,
            }) => RegistryError::DigestMismatch {
                registry,
                what: op.subject.clone(),
                expected,
                actual,
            },
            OciDistributionError::IoError(e) => RegistryError::ConnectionLost {
                registry,
                operation: op.doing.clone(),
                reason: e.to_string(),
            },
            other => RegistryError::Protocol {
                registry,
                operation: op.doing.clone(),
                detail: scrub(&other.to_string(), Some(&self.credentials)),
            },
        }
    }

    /// A failed request, after the preflight reached the registry: a connection problem now is
    /// a restart or a dropped connection, worth retrying.
    pub(crate) fn request_error(&self, op: &Op, e: &reqwest::Error) -> RegistryError {
        if let Some(status) = e.status() {
            return status_error(&self.registry, op, status.as_u16(), "", &self.credentials);
        }
        if e.is_timeout() {
            // Connecting (with the TLS handshake) is the only step the HTTP clients time
            // themselves; the rest is bounded by `Session::timed` and the transfer watchdogs.
            return self.timeout_after(op, self.connect_timeout);
        }
        RegistryError::ConnectionLost {
            registry: self.registry.clone(),
            operation: op.doing.clone(),
            reason: scrub(&error_chain_without_url(e), Some(&self.credentials)),
        }
    }
}

/// Wrong credentials, or none where some are needed; the hint depends on which.
pub(super) fn unauthorized(
    registry: &str,
    credentials: &Credentials,
    detail: String,
) -> RegistryError {
    let hint = if credentials.is_anonymous() {
        format!(
            "log in with --username and --password-stdin, or run `docker login {registry}` \
             (or set $DOCKER_CONFIG to a directory whose config.json has credentials for it)"
        )
    } else {
        format!(
            "check the user name and password (--username with --password-stdin), or log in \
             again with `docker login {registry}`"
        )
    };
    RegistryError::Unauthorized {
        registry: registry.to_string(),
        tried: credentials.source.clone(),
        detail,
        hint,
    }
}

/// Classifies an HTTP error status.
pub(super) fn status_error(
    registry: &str,
    op: &Op,
    status: u16,
    body: &str,
    credentials: &Credentials,
) -> RegistryError {
    match status {
        401 => unauthorized(registry, credentials, String::new()),
        403 => RegistryError::Denied {
            registry: registry.to_string(),
            operation: op.doing.clone(),
            tried: credentials.source.clone(),
        },
        404 => RegistryError::NotFound {
            registry: registry.to_string(),
            what: op.subject.clone(),
        },
        _ => RegistryError::Http {
            registry: registry.to_string(),
            operation: op.doing.clone(),
            status,
            detail: summarize_body(body, Some(credentials)),
        },
    }
}

/// A short, secret-free rendering of an error body (a registry's JSON errors, or text).
pub(super) fn summarize_body(body: &str, credentials: Option<&Credentials>) -> String {
    let body = body.trim();
    if body.is_empty() {
        return "(no details)".into();
    }
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|json| {
            let errors = json.get("errors")?.as_array()?;
            let parts: Vec<String> = errors
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
                    format!("{code}: {message}")
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        });
    let text = from_json.unwrap_or_else(|| body.to_string());
    let mut short: String = text.chars().take(300).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    scrub(&short, credentials)
}

/// Removes the password or token from text a server or library produced.
fn scrub(text: &str, credentials: Option<&Credentials>) -> String {
    let secret = match credentials.map(|c| &c.kind) {
        Some(auth::CredentialKind::Basic { password, .. }) => password.expose(),
        Some(auth::CredentialKind::Bearer(token)) => token.expose(),
        _ => return text.to_string(),
    };
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "***")
    }
}

/// An error and its causes, `: `-separated (reqwest's own message says little: the cause does).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        // hyper's wrappers ("client error (Connect)") say nothing their causes do not.
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

/// The causes of a reqwest error without its first line ("error sending request for url …"),
/// since our messages name the URL already.
pub(super) fn error_chain_without_url(e: &reqwest::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => error_chain(cause),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_short_and_scrubbed() {
        let creds = Credentials::from_cli("ci", "pa55word");
        let s = summarize_body(
            r#"{"errors":[{"code":"DENIED","message":"no pa55word here"}]}"#,
            Some(&creds),
        );
        assert_eq!(s, "DENIED: no *** here");
        assert!(summarize_body(&"x".repeat(1000), None).chars().count() <= 301);
        assert_eq!(summarize_body("  ", None), "(no details)");
    }

    #[test]
    fn status_codes_are_classified() {
        let creds = Credentials::from_cli("ci", "x");
        let op = Op::new("pushing", "blob sha256:1");
        assert!(matches!(
            status_error("r", &op, 401, "", &creds),
            RegistryError::Unauthorized { .. }
        ));
        assert!(matches!(
            status_error("r", &op, 403, "", &creds),
            RegistryError::Denied { .. }
        ));
        assert!(matches!(
            status_error("r", &op, 404, "", &creds),
            RegistryError::NotFound { .. }
        ));
        assert!(status_error("r", &op, 503, "", &creds).is_retryable());
        assert!(status_error("r", &op, 429, "", &creds).is_retryable());
        assert!(!status_error("r", &op, 400, "", &creds).is_retryable());
    }
}

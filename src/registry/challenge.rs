//! Token challenges: how a registry asks for credentials (`WWW-Authenticate` on `/v2/`), and
//! checking the credentials against it before any upload.
//!
//! A wrong password then fails at once with [`RegistryError::Unauthorized`], not as a 401 in the
//! middle of a push, and a token service reached over plain HTTP is refused before credentials
//! are sent to it (oci-client would send them to whatever realm the registry names).

use oci_client::secrets::RegistryAuth;

use super::auth::Credentials;
use super::classify::status_error;
use super::client::RegistryClient;
use super::reference::is_loopback_host;
use super::session::Op;
use super::{RegistryError, Result};

impl RegistryClient {
    /// Sends the credentials to `/v2/` (HTTPS, or HTTP to a registry that may use it) to learn
    /// now, not mid-upload, whether they are right.
    pub(super) async fn check_basic(
        &self,
        registry: &str,
        base_url: &str,
        credentials: &Credentials,
    ) -> Result<()> {
        let RegistryAuth::Basic(username, password) = credentials.to_oci() else {
            return Ok(());
        };
        let url = format!("{base_url}/v2/");
        self.retry(&format!("logging in to {registry}"), |_| async {
            let request = self.http.get(&url).basic_auth(&username, Some(&password));
            let answer = self.ask(registry, &url, request).await?;
            match answer.status {
                200 => Ok(()),
                status => Err(status_error(
                    registry,
                    &Op::new(format!("logging in to {registry}"), "the registry API"),
                    status,
                    &answer.body,
                    credentials,
                )),
            }
        })
        .await
    }

    /// A token service over plain HTTP would receive the password in the clear.
    pub(super) fn check_realm(&self, registry: &str, realm: &str) -> Result<()> {
        let Ok(url) = url::Url::parse(realm) else {
            return Err(RegistryError::Protocol {
                registry: registry.to_string(),
                operation: "reading the authentication challenge".into(),
                detail: format!("the token service address `{realm}` is not a URL"),
            });
        };
        if url.scheme() == "https" {
            return Ok(());
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            Some(host) => host.to_string(),
            None => String::new(),
        };
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        if is_loopback_host(&host) || self.is_insecure(registry) || self.is_insecure(&authority) {
            return Ok(());
        }
        Err(RegistryError::InsecureCredentials {
            registry: registry.to_string(),
            url: realm.to_string(),
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Challenge {
    Basic,
    Bearer(TokenService),
    Other,
}

/// Where a token registry sends clients for tokens (its `WWW-Authenticate: Bearer` challenge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenService {
    pub realm: String,
    pub service: Option<String>,
}

pub(super) fn parse_challenge(header: Option<&str>) -> Challenge {
    let Some(header) = header.map(str::trim) else {
        return Challenge::Other;
    };
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Challenge::Basic;
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Challenge::Other;
    }
    let param = |name: &str| {
        params.split(',').find_map(|param| {
            let (key, value) = param.trim().split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().trim_matches('"').to_string())
        })
    };
    match param("realm") {
        Some(realm) => Challenge::Bearer(TokenService {
            realm,
            service: param("service"),
        }),
        None => Challenge::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryOptions;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(Some(r#"Basic realm="Registry Realm""#)),
            Challenge::Basic
        );
        assert_eq!(
            parse_challenge(Some(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#
            )),
            Challenge::Bearer(TokenService {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        assert_eq!(parse_challenge(None), Challenge::Other);
        assert_eq!(parse_challenge(Some("Bearer service=x")), Challenge::Other);
    }

    fn client(insecure: &[&str]) -> RegistryClient {
        RegistryClient::new(RegistryOptions {
            insecure_registries: insecure.iter().map(|s| s.to_string()).collect(),
            ..RegistryOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn token_services_over_plain_http_get_no_password() {
        let c = client(&["10.1.2.3:5000"]);
        assert!(
            c.check_realm("reg.example.com", "https://auth.example.com/token")
                .is_ok()
        );
        assert!(
            c.check_realm("reg.example.com", "http://127.0.0.1:9000/token")
                .is_ok()
        );
        assert!(
            c.check_realm("10.1.2.3:5000", "http://10.1.2.3:5001/token")
                .is_ok()
        );
        let err = c
            .check_realm("reg.example.com", "http://auth.example.com/token")
            .unwrap_err();
        assert!(matches!(err, RegistryError::InsecureCredentials { .. }));
        assert!(err.to_string().contains("--insecure"), "{err}");
    }
}

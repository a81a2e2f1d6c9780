//! Registry credentials: from the command line, from docker's config.json, or none.
//!
//! We read docker's own files (through the `docker_credential` crate) so that a CI job that ran
//! `docker login`, or mounted a `~/.docker/config.json` secret, needs nothing else. Every
//! credential carries a description of where it came from, which is all that error messages
//! show: a wrong password is reported as "the credentials of user ci from --username", never
//! with the password itself.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

use super::RegistryError;
use super::reference::DOCKER_HUB;

/// The key docker uses for Docker Hub in config.json and with credential helpers.
const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";
/// The user name that goes with an identity token: registries that hand out identity tokens
/// (Azure Container Registry) accept it with this user as a password in the basic/token flow.
const IDENTITY_TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";

/// A secret string that never shows itself through `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself; only for building the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Secret {
        Secret(secret)
    }
}

/// What is sent to a registry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CredentialKind {
    Anonymous,
    /// User name and password (or a registry token used as a password).
    Basic {
        username: String,
        password: Secret,
    },
    /// A ready-made bearer token, sent as is.
    Bearer(Secret),
}

/// Credentials and where they came from (for messages: never the secret itself).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Credentials {
    pub kind: CredentialKind,
    /// E.g. "user ci from --username/--password-stdin", "the auths entry for 127.0.0.1:5000 in
    /// /root/.docker/config.json", "no credentials".
    pub source: String,
}

impl Credentials {
    pub fn anonymous() -> Credentials {
        Credentials {
            kind: CredentialKind::Anonymous,
            source: "no credentials (anonymous)".into(),
        }
    }

    /// A user name and password typed by the user (`--username` and `--password-stdin`).
    pub fn from_cli(username: &str, password: impl Into<Secret>) -> Credentials {
        Credentials::basic(
            username,
            password,
            format!("user `{username}` from --username/--password-stdin"),
        )
    }

    pub fn basic(
        username: &str,
        password: impl Into<Secret>,
        source: impl Into<String>,
    ) -> Credentials {
        Credentials {
            kind: CredentialKind::Basic {
                username: username.to_string(),
                password: password.into(),
            },
            source: source.into(),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.kind == CredentialKind::Anonymous
    }

    pub(crate) fn to_oci(&self) -> RegistryAuth {
        match &self.kind {
            CredentialKind::Anonymous => RegistryAuth::Anonymous,
            CredentialKind::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.expose().to_string())
            }
            CredentialKind::Bearer(token) => RegistryAuth::Bearer(token.expose().to_string()),
        }
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Secret {
        Secret(secret.to_string())
    }
}

/// docker's configuration directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn default_docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|home| home.join(".docker")))
}

/// Looks up credentials for `registry` (`host[:port]`, `docker.io` for Docker Hub) in
/// `<config_dir>/config.json`: `credHelpers`, then `auths` (the base64 `auth` field or
/// `username`/`password`, or an `identitytoken`), then `credsStore`; anonymous when none apply
/// or the file does not exist. `config_dir` is explicit so tests and callers never need to touch
/// the process environment; pass [`default_docker_config_dir`] for docker's own lookup.
pub fn docker_config_credentials(
    registry: &str,
    config_dir: &Path,
) -> Result<Credentials, RegistryError> {
    let path = config_dir.join("config.json");
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::anonymous()),
        Err(e) => {
            return Err(RegistryError::DockerConfig {
                path,
                registry: registry.to_string(),
                reason: format!("cannot read it: {e}"),
            });
        }
    };
    let server = if registry == DOCKER_HUB {
        DOCKER_HUB_CONFIG_KEY
    } else {
        registry
    };
    let where_ = format!("for {registry} in {}", path.display());
    match docker_credential::get_credential_from_reader(BufReader::new(file), server) {
        Ok(DockerCredential::UsernamePassword(username, password)) => Ok(Credentials::basic(
            &username,
            password,
            format!("user `{username}` from the docker credentials {where_}"),
        )),
        Ok(DockerCredential::IdentityToken(token)) => Ok(Credentials::basic(
            IDENTITY_TOKEN_USER,
            token,
            format!("the identity token {where_}"),
        )),
        Err(CredentialRetrievalError::NoCredentialConfigured) => Ok(Credentials::anonymous()),
        // A credentials store with nothing stored for this registry is how docker says "not
        // logged in" (`credentials not found in native keychain`): go on anonymously, as docker does.
        Err(CredentialRetrievalError::HelperFailure { stdout, stderr, .. })
            if format!("{stdout}{stderr}")
                .to_ascii_lowercase()
                .contains("not found") =>
        {
            Ok(Credentials::anonymous())
        }
        Err(e) => Err(RegistryError::DockerConfig {
            reason: describe_credential_error(&e, configured_helper(&path, server).as_deref()),
            path,
            registry: registry.to_string(),
        }),
    }
}

/// The program config.json has answer for `server`: its `credHelpers` entry, else `credsStore`.
fn configured_helper(path: &Path, server: &str) -> Option<String> {
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let name = [&config["credHelpers"][server], &config["credsStore"]]
        .into_iter()
        .find_map(|value| value.as_str().filter(|name| !name.is_empty()))?;
    Some(format!("docker-credential-{name}"))
}

/// A helper's stdout may hold a partial secret, so only its name and stderr are shown.
fn describe_credential_error(e: &CredentialRetrievalError, helper: Option<&str>) -> String {
    match e {
        CredentialRetrievalError::HelperFailure { helper, stderr, .. } => {
            let stderr: String = stderr.trim().chars().take(300).collect();
            format!("credential helper `{helper}` failed: {stderr}")
        }
        CredentialRetrievalError::HelperCommunicationError => format!(
            "cannot run its credential helper {}: install it or put it on PATH, or remove it from \
             credHelpers/credsStore",
            helper.unwrap_or("(a docker-credential-* program)")
        ),
        CredentialRetrievalError::MalformedHelperResponse => {
            "its credential helper answered something that is not credentials".into()
        }
        CredentialRetrievalError::CredentialDecodingError => {
            "its `auth` field is not base64 of user:password".into()
        }
        CredentialRetrievalError::CredentialMismatchError => {
            "its `auth` field and its `username`/`password` fields disagree".into()
        }
        CredentialRetrievalError::ConfigReadError => "it is not valid JSON".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        dir
    }

    #[test]
    fn the_helper_named_is_the_one_docker_would_run() {
        let dir = config(r#"{"credHelpers":{"a:5000":"pass","b:5000":""},"credsStore":"desktop"}"#);
        let path = dir.path().join("config.json");
        let helper = |server| configured_helper(&path, server);
        assert_eq!(helper("a:5000").as_deref(), Some("docker-credential-pass"));
        // An empty credHelpers entry falls back to the store, as docker's lookup does.
        assert_eq!(
            helper("b:5000").as_deref(),
            Some("docker-credential-desktop")
        );
        assert_eq!(
            helper("c:5000").as_deref(),
            Some("docker-credential-desktop")
        );
        let none = config(r#"{"auths":{}}"#);
        assert_eq!(
            configured_helper(&none.path().join("config.json"), "a:5000"),
            None
        );
    }

    #[test]
    fn secrets_never_print() {
        let creds = Credentials::from_cli("ci", "hunter2-secret");
        let shown = format!("{creds:?} {}", creds.source);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("ci"));
    }

    #[test]
    fn auths_entry_with_base64_auth() {
        // base64("alice:s3cret")
        let dir = config(r#"{"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6czNjcmV0"}}}"#);
        let creds = docker_config_credentials("127.0.0.1:5000", dir.path()).unwrap();
        assert_eq!(
            creds.kind,
            CredentialKind::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            }
        );
        assert!(creds.source.contains("config.json"), "{}", creds.source);
        assert!(!creds.source.contains("s3cret"));
        // Another registry: nothing configured, anonymous.
        let other = docker_config_credentials("127.0.0.1:5001", dir.path()).unwrap();
        assert!(other.is_anonymous());
    }

    #[test]
    fn docker_hub_uses_dockers_key() {
        let dir = config(r#"{"auths":{"https://index.docker.io/v1/":{"auth":"Ym9iOnB3"}}}"#);
        let creds = docker_config_credentials(DOCKER_HUB, dir.path()).unwrap();
        assert!(
            matches!(creds.kind, CredentialKind::Basic { ref username, .. } if username == "bob")
        );
    }

    #[test]
    fn missing_file_is_anonymous_and_bad_files_are_named() {
        let empty = tempfile::tempdir().unwrap();
        assert!(
            docker_config_credentials("r:1", empty.path())
                .unwrap()
                .is_anonymous()
        );

        let dir = config("{not json");
        let err = docker_config_credentials("r:1", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.json") && err.contains("not valid JSON"),
            "{err}"
        );

        let dir = config(r#"{"auths":{"r:1":{"auth":"!!!"}}}"#);
        let err = docker_config_credentials("r:1", dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("base64"), "{err}");
    }

    #[test]
    fn missing_helper_program_is_reported() {
        let dir = config(r#"{"credHelpers":{"r:1":"st2pack-test-no-such-helper"}}"#);
        let err = docker_config_credentials("r:1", dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("credential helper"), "{err}");
    }
}

//! One client for every registry a build talks to (the base image's and the push target's), with
//! a session per registry opened once and shared by every pull and push to it.
//!
//! Opening a session is where the concerns meet, each in its own module: `transport` probes
//! `/v2/` to settle HTTPS or plain HTTP, `challenge` reads how the registry authenticates and
//! checks the credentials before anything is sent, `session` then bounds each request, and
//! `classify` turns every failure into a [`RegistryError`] that says what happened.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use oci_client::Client as OciClient;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};

use super::auth::{self, Credentials};
use super::challenge::{Challenge, parse_challenge};
use super::classify::{error_chain, status_error, unauthorized};
use super::options::{RegistryEvent, RegistryOptions, UploadMode};
use super::reference::Reference;
use super::session::{Op, Session};
use super::transport::read_ca_file;
use super::{RegistryError, Result};

const USER_AGENT: &str = concat!("st2pack/", env!("CARGO_PKG_VERSION"));

type EventSink = Arc<dyn Fn(&RegistryEvent) + Send + Sync>;

/// Talks to registries: holds the transport settings, the credentials given on the command line,
/// and one session per registry.
pub struct RegistryClient {
    pub(super) options: RegistryOptions,
    pub(super) ca_certs: Vec<Vec<u8>>,
    /// For the preflight requests; oci-client keeps its own HTTP client private.
    pub(super) http: reqwest::Client,
    pub(super) credentials: HashMap<String, Credentials>,
    pub(super) sessions: tokio::sync::Mutex<HashMap<String, Arc<Session>>>,
    pub(super) events: Option<EventSink>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("options", &self.options)
            .field(
                "credentials_for",
                &self.credentials.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// Reads the CA file (if any) and prepares the HTTP client; contacts no registry yet.
    pub fn new(options: RegistryOptions) -> Result<RegistryClient> {
        let ca_certs = match &options.ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        let mut builder = reqwest::Client::builder()
            // No read timeout: requests made with this client bound their answer themselves
            // (`ask`, and the mount's own timeout), so a timeout error from it means connecting.
            .connect_timeout(options.connect_timeout)
            .user_agent(USER_AGENT)
            // Redirects could carry a request (and, for the credential check, a password) to
            // another host; a registry's /v2/ endpoint never needs one.
            .redirect(reqwest::redirect::Policy::none());
        let mut roots = Vec::new();
        for pem in &ca_certs {
            roots.push(
                reqwest::Certificate::from_pem(pem).map_err(|e| RegistryError::CaFile {
                    path: options.ca_file.clone().unwrap_or_default(),
                    reason: error_chain(&e),
                })?,
            );
        }
        if !roots.is_empty() {
            builder = builder.tls_certs_merge(roots);
        }
        let http = builder.build().map_err(|e| RegistryError::Protocol {
            registry: "(none yet)".into(),
            operation: "setting up the HTTP client".into(),
            detail: error_chain(&e),
        })?;
        Ok(RegistryClient {
            options,
            ca_certs,
            http,
            credentials: HashMap::new(),
            sessions: tokio::sync::Mutex::new(HashMap::new()),
            events: None,
        })
    }

    /// Uses `credentials` for `registry` (as written in references: `host:port`, `docker.io`)
    /// instead of looking in docker's config.json.
    pub fn set_credentials(&mut self, registry: &str, credentials: Credentials) {
        self.credentials
            .insert(registry.to_ascii_lowercase(), credentials);
    }

    /// Calls `sink` for every [`RegistryEvent`] (from any task: it must be thread-safe).
    pub fn on_event(&mut self, sink: impl Fn(&RegistryEvent) + Send + Sync + 'static) {
        self.events = Some(Arc::new(sink));
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    pub(crate) fn emit(&self, event: RegistryEvent) {
        if let Some(sink) = &self.events {
            sink(&event);
        }
    }

    /// Runs `op` under the retry policy, within the options' retry window, reporting retries as
    /// events.
    pub(crate) async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.options
            .retry
            .run_within(
                Some(self.options.retry_window()),
                op,
                |attempt, error, delay| {
                    self.emit(RegistryEvent::Retrying {
                        what: what.to_string(),
                        attempt,
                        delay,
                        error: error.to_string(),
                    })
                },
            )
            .await
    }

    /// The session for `reference`'s registry, authorised for `push` (or pull) on its repository.
    pub(crate) async fn session(&self, reference: &Reference, push: bool) -> Result<Arc<Session>> {
        let key = reference.registry().to_ascii_lowercase();
        let session = {
            let mut sessions = self.sessions.lock().await;
            match sessions.get(&key) {
                Some(session) => session.clone(),
                None => {
                    let session = Arc::new(self.open_session(reference).await?);
                    sessions.insert(key, session.clone());
                    session
                }
            }
        };
        session.authorize(reference, push).await?;
        Ok(session)
    }

    fn resolve_credentials(&self, registry: &str) -> Result<Credentials> {
        if let Some(credentials) = self.credentials.get(&registry.to_ascii_lowercase()) {
            return Ok(credentials.clone());
        }
        let Some(dir) = self
            .options
            .docker_config_dir
            .clone()
            .or_else(auth::default_docker_config_dir)
        else {
            return Ok(Credentials::anonymous());
        };
        let mut credentials = auth::docker_config_credentials(registry, &dir)?;
        if credentials.is_anonymous() {
            credentials.source = format!(
                "no credentials (none given with --username, none for {registry} in {})",
                dir.join("config.json").display()
            );
        }
        Ok(credentials)
    }

    async fn open_session(&self, reference: &Reference) -> Result<Session> {
        let registry = reference.registry().to_string();
        let api_host = reference.to_oci().resolve_registry().to_string();
        let credentials = self.resolve_credentials(&registry)?;

        let (scheme, answer) = self.preflight(&registry, &api_host).await?;
        let base_url = format!("{scheme}://{api_host}");
        if scheme == "http" && !credentials.is_anonymous() && !self.allows_plain_http(&registry) {
            // Unreachable by construction (such registries are HTTPS only); kept as the rule itself.
            return Err(RegistryError::InsecureCredentials {
                registry,
                url: base_url,
            });
        }

        let challenge = parse_challenge(answer.www_authenticate.as_deref());
        if answer.status == 200 {
            // Open registry: nothing to check.
        } else if answer.status != 401 {
            return Err(status_error(
                &registry,
                &Op::new(format!("checking {base_url}/v2/"), "the registry API"),
                answer.status,
                &answer.body,
                &credentials,
            ));
        } else {
            match &challenge {
                Challenge::Bearer(token_service) => {
                    if !credentials.is_anonymous() {
                        self.check_realm(&registry, &token_service.realm)?;
                    }
                }
                Challenge::Basic | Challenge::Other => {
                    if credentials.is_anonymous() {
                        return Err(unauthorized(
                            &registry,
                            &credentials,
                            " (it requires a login)".into(),
                        ));
                    }
                    self.check_basic(&registry, &base_url, &credentials).await?;
                }
            }
        }

        let oci = OciClient::try_from(ClientConfig {
            protocol: if scheme == "http" {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates: self
                .ca_certs
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect(),
            // reqwest's read timeout runs from the start of a request to its response headers,
            // which would cut off any upload slower than it; we bound each call ourselves
            // instead (`Session::timed`, and an idle watchdog for transfers).
            read_timeout: None,
            connect_timeout: Some(self.options.connect_timeout),
            use_monolithic_push: self.options.upload_mode == UploadMode::Monolithic,
            // We choose the platform from an index ourselves (see pull.rs).
            platform_resolver: None,
            max_concurrent_upload: self.options.concurrency.max(1),
            max_concurrent_download: self.options.concurrency.max(1),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        })
        .map_err(|e| RegistryError::Protocol {
            registry: registry.clone(),
            operation: "setting up the registry client".into(),
            detail: e.to_string(),
        })?;
        let auth = credentials.to_oci();
        oci.store_auth_if_needed(&api_host, &auth).await;

        Ok(Session {
            registry,
            oci,
            auth,
            credentials,
            token_service: match challenge {
                Challenge::Bearer(token_service) => Some(token_service),
                Challenge::Basic | Challenge::Other => None,
            },
            http: self.http.clone(),
            base_url,
            read_timeout: self.options.read_timeout,
            connect_timeout: self.options.connect_timeout,
            authorized: tokio::sync::Mutex::new(HashSet::new()),
        })
    }
}

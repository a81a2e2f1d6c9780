//! One client for every registry a build talks to (the base image's and the push target's), with
//! a session per registry that settles transport and credentials once.
//!
//! Transport follows docker: a registry on this machine (`localhost`, `127.0.0.0/8`, `[::1]`) or
//! named with `--insecure` may be plain HTTP, but HTTPS is tried first, so a local registry with
//! TLS (and `--ca-file`) works too; every other registry is HTTPS only. Before anything else a
//! session asks the registry's `/v2/` endpoint how it authenticates, which gives three things
//! early and clearly: an unreachable registry fails within the connect timeout naming its
//! address, a wrong password fails before any upload with [`RegistryError::Unauthorized`], and a
//! token service reached over plain HTTP is refused before credentials are sent to it (oci-client
//! would send them to whatever realm the registry names).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client as OciClient, RegistryOperation};

use super::auth::{self, Credentials};
use super::reference::{Reference, is_loopback_host, split_host_port};
use super::retry::RetryPolicy;
use super::{RegistryError, Result};

const USER_AGENT: &str = concat!("st2pack/", env!("CARGO_PKG_VERSION"));

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
    /// How long a request may go without receiving anything.
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

type EventSink = Arc<dyn Fn(&RegistryEvent) + Send + Sync>;

/// Talks to registries: holds the transport settings, the credentials given on the command line,
/// and one session per registry.
pub struct RegistryClient {
    options: RegistryOptions,
    ca_certs: Vec<Vec<u8>>,
    /// For the preflight requests; oci-client keeps its own HTTP client private.
    http: reqwest::Client,
    credentials: HashMap<String, Credentials>,
    sessions: tokio::sync::Mutex<HashMap<String, Arc<Session>>>,
    events: Option<EventSink>,
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
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
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

    /// Runs `op` under the retry policy, reporting retries as events.
    pub(crate) async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.options
            .retry
            .run(op, |attempt, error, delay| {
                self.emit(RegistryEvent::Retrying {
                    what: what.to_string(),
                    attempt,
                    delay,
                    error: error.to_string(),
                })
            })
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

    fn allows_plain_http(&self, registry: &str) -> bool {
        let (host, _) = split_host_port(registry);
        is_loopback_host(host) || self.is_insecure(registry)
    }

    fn is_insecure(&self, registry: &str) -> bool {
        let (host, _) = split_host_port(registry);
        self.options
            .insecure_registries
            .iter()
            .any(|r| r.eq_ignore_ascii_case(registry) || r.eq_ignore_ascii_case(host))
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

    /// Finds the scheme: HTTPS, or plain HTTP for registries that may use it and do not speak
    /// TLS. Retries what the policy retries (5xx, 429, broken connections), but not a refused
    /// or timed-out connection: an unreachable registry should fail within the connect timeout.
    async fn preflight(&self, registry: &str, api_host: &str) -> Result<(&'static str, Answer)> {
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

    fn unreachable(&self, registry: &str, url: &str, e: &reqwest::Error) -> RegistryError {
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

    /// Sends the credentials to `/v2/` (HTTPS, or HTTP to a registry that may use it) to learn
    /// now, not mid-upload, whether they are right.
    async fn check_basic(
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
            let response = self
                .http
                .get(&url)
                .basic_auth(&username, Some(&password))
                .send()
                .await
                .map_err(|e| self.unreachable(registry, &url, &e))?;
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            match status {
                200 => Ok(()),
                _ => Err(status_error(
                    registry,
                    &Op::new(format!("logging in to {registry}"), "the registry API"),
                    status,
                    &body,
                    credentials,
                )),
            }
        })
        .await
    }

    /// A token service over plain HTTP would receive the password in the clear.
    fn check_realm(&self, registry: &str, realm: &str) -> Result<()> {
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

/// A registry's answer to `GET /v2/`.
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    body: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Challenge {
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

fn parse_challenge(header: Option<&str>) -> Challenge {
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
    connect_timeout: Duration,
    /// (repository, push) pairs whose token has been fetched.
    authorized: tokio::sync::Mutex<HashSet<(String, bool)>>,
}

impl Session {
    /// Fetches the repository's token now (token registries only) so that wrong credentials are
    /// reported as such, not as a 401 in the middle of an upload.
    async fn authorize(&self, reference: &Reference, push: bool) -> Result<()> {
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
        match tokio::time::timeout(self.connect_timeout + self.read_timeout, request).await {
            Ok(result) => result.map_err(|e| self.error(op, e)),
            Err(_) => Err(self.timeout(op)),
        }
    }

    pub(crate) fn timeout(&self, op: &Op) -> RegistryError {
        RegistryError::Timeout {
            registry: self.registry.clone(),
            operation: op.doing.clone(),
            timeout: self.read_timeout,
        }
    }

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
            return self.timeout(op);
        }
        RegistryError::ConnectionLost {
            registry: self.registry.clone(),
            operation: op.doing.clone(),
            reason: scrub(&error_chain_without_url(e), Some(&self.credentials)),
        }
    }
}

/// Wrong credentials, or none where some are needed; the hint depends on which.
fn unauthorized(registry: &str, credentials: &Credentials, detail: String) -> RegistryError {
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
fn status_error(
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
fn summarize_body(body: &str, credentials: Option<&Credentials>) -> String {
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
fn error_chain_without_url(e: &reqwest::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => error_chain(cause),
        None => e.to_string(),
    }
}

/// Splits a PEM bundle into one PEM block per certificate (oci-client takes them one by one).
fn read_ca_file(path: &PathBuf) -> Result<Vec<Vec<u8>>> {
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

//! A token server on 127.0.0.1 for distribution's bearer-token authentication, the flow Docker
//! Hub, GHCR, Harbor and GitLab use: the registry answers `401` with
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, the client asks the realm for a token
//! with its basic login, and retries with the token.
//!
//! Tokens are JWTs signed RS256 (with the `openssl` CLI) by a key whose self-signed certificate
//! is in the token's `x5c` header and in the registry's `rootcertbundle`; each grants exactly the
//! scopes asked for, to the one user whose login is right.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::registry::{openssl, path};
use super::servers::AcceptLoop;

/// The `service` the registry names in its challenge and the token's audience.
pub const SERVICE: &str = "st2pack-test-registry";
/// The token's issuer, which the registry checks.
pub const ISSUER: &str = "st2pack-test-token-issuer";

pub struct TokenServer {
    accept: AcceptLoop,
    dir: tempfile::TempDir,
    issued: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

/// What the serving thread needs.
struct Issuer {
    login: String,
    key: PathBuf,
    certificate_der: Vec<u8>,
}

impl TokenServer {
    /// Hands out tokens to `user` with `password`, and refuses everyone else.
    pub fn start(user: &str, password: &str) -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("token.key");
        let certificate = dir.path().join("token.pem");
        let der = dir.path().join("token.der");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                path(&key),
                "-out",
                path(&certificate),
                "-days",
                "2",
                "-subj",
                "/CN=st2pack test token issuer",
            ],
        );
        openssl(
            dir.path(),
            &[
                "x509",
                "-in",
                path(&certificate),
                "-outform",
                "DER",
                "-out",
                path(&der),
            ],
        );
        let issuer = Issuer {
            login: format!("{user}:{password}"),
            key,
            certificate_der: std::fs::read(&der).unwrap(),
        };
        let issued = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (issued2, refused2) = (issued.clone(), refused.clone());
        let accept = AcceptLoop::start(move |client| {
            let _ = serve(client, &issuer, &issued2, &refused2);
        });
        TokenServer {
            accept,
            dir,
            issued,
            refused,
        }
    }

    /// The URL the registry sends clients to.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.accept.port)
    }

    /// The certificate the registry must trust (PEM).
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("token.pem")
    }

    /// Tokens handed out so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// Token requests refused (no login or a wrong one) so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

/// Answers one `GET /token?service=…&scope=…` request.
fn serve(
    client: TcpStream,
    issuer: &Issuer,
    issued: &AtomicUsize,
    refused: &AtomicUsize,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    let mut authorization = None;
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if request_line.is_empty() {
            request_line = line;
            continue;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_string());
        }
    }
    let target = request_line.split(' ').nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let scopes: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == "scope")
        .map(|(_, value)| value.into_owned())
        .collect();
    let login = authorization
        .as_deref()
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded).ok());
    let mut client = client;
    if login.as_deref() != Some(issuer.login.as_bytes()) {
        refused.fetch_add(1, Ordering::SeqCst);
        let body = r#"{"details":"a valid login is required"}"#;
        return write!(
            client,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    let subject = issuer.login.split(':').next().unwrap_or_default();
    let token = match sign(issuer, subject, &scopes) {
        Ok(token) => token,
        Err(problem) => {
            return write!(
                client,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{problem}",
                problem.len()
            );
        }
    };
    issued.fetch_add(1, Ordering::SeqCst);
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": 300,
    })
    .to_string();
    write!(
        client,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A JWT for `subject` granting `scopes` (`repository:NAME:ACTION,ACTION`); what went wrong
/// if openssl could not sign it (the answer is a 500, as the client must see).
fn sign(issuer: &Issuer, subject: &str, scopes: &[String]) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(serde_json::json!({
                "type": kind,
                "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let header = serde_json::json!({
        "alg": "RS256",
        "typ": "JWT",
        "x5c": [STANDARD.encode(&issuer.certificate_der)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", next_token_number()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signed = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&issuer.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(signing_input.as_bytes())?;
            child.wait_with_output()
        })
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !signed.status.success() {
        return Err(format!(
            "openssl dgst -sign: {}",
            String::from_utf8_lossy(&signed.stderr)
        ));
    }
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signed.stdout)
    ))
}

/// Tokens issued in the same second still get distinct ids.
fn next_token_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

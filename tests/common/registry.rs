//! A real registry (distribution's `docker-registry`) on 127.0.0.1, plain, with TLS and htpasswd
//! logins, or with bearer tokens from a [`TokenServer`], and a fault-injecting TCP proxy to put
//! in front of it.
//!
//! The registry's access log is kept, so tests can count what was really uploaded ("after a
//! one-pack change exactly one layer blob is sent") instead of trusting the client's report.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::servers::AcceptLoop;
use super::token::{self, TokenServer};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How the registry lets clients in.
enum Auth<'a> {
    None,
    Htpasswd(&'a str, &'a str),
    Token(&'a TokenServer),
}

pub struct TestRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    ca_file: Option<PathBuf>,
}

impl TestRegistry {
    /// Plain HTTP, no authentication.
    pub fn start_plain() -> TestRegistry {
        TestRegistry::start(&Auth::None)
    }

    /// HTTPS with a certificate for 127.0.0.1 and localhost from a CA made for this registry
    /// ([`TestRegistry::ca_file`]), and a single htpasswd login.
    pub fn start_tls_htpasswd(user: &str, password: &str) -> TestRegistry {
        TestRegistry::start(&Auth::Htpasswd(user, password))
    }

    /// Plain HTTP (127.0.0.1 is trusted with credentials), with bearer tokens from `tokens`.
    pub fn start_with_tokens(tokens: &TokenServer) -> TestRegistry {
        TestRegistry::start(&Auth::Token(tokens))
    }

    fn start(auth: &Auth<'_>) -> TestRegistry {
        let mut last_error = String::new();
        // The port is free when chosen but could be taken before the registry binds it.
        for _ in 0..3 {
            match TestRegistry::try_start(auth) {
                Ok(registry) => return registry,
                Err(e) => last_error = e,
            }
        }
        panic!("docker-registry did not start: {last_error}");
    }

    fn try_start(auth: &Auth<'_>) -> Result<TestRegistry, String> {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install the docker-registry package (see .ci/run)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = super::servers::free_port();
        let root = dir.path();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: st2pack-test-secret\n",
            root.join("data").display()
        );
        let mut ca_file = None;
        if let Auth::Token(tokens) = auth {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                 rootcertbundle: {}\n",
                tokens.realm(),
                token::SERVICE,
                token::ISSUER,
                tokens.certificate().display()
            ));
        }
        if let Auth::Htpasswd(user, password) = auth {
            let (ca, cert, key) = make_certificates(root);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            let htpasswd = root.join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{}\n", bcrypt(password))).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: st2pack-test\n    path: {}\n",
                htpasswd.display()
            ));
            ca_file = Some(ca);
        }
        let config_path = root.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let stdout = std::fs::File::create(root.join("access.log")).unwrap();
        let stderr = std::fs::File::create(root.join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run {REGISTRY_BIN}: {e}"))?;
        let mut registry = TestRegistry {
            child,
            port,
            dir,
            ca_file,
        };
        registry.wait_until_listening()?;
        Ok(registry)
    }

    /// The registry only listens once it is ready to serve.
    fn wait_until_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited with {status}: {}", self.log()));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("it did not listen within 15 s: {}", self.log()))
    }

    /// `127.0.0.1:PORT`, as written in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA that signed the TLS registry's certificate (PEM).
    pub fn ca_file(&self) -> &Path {
        self.ca_file
            .as_deref()
            .expect("only a TLS registry has a CA file")
    }

    /// The registry's own log (stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The access log: one combined-format line per request.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Blob uploads the registry completed (`PUT …/blobs/uploads/…` answered 201), in all
    /// repositories; a mount or a skipped blob is not one.
    pub fn upload_count(&self) -> usize {
        self.count_requests("PUT", "/blobs/uploads/", "201")
    }

    /// Blob uploads completed into `repository`.
    pub fn upload_count_in(&self, repository: &str) -> usize {
        self.count_requests("PUT", &format!("/v2/{repository}/blobs/uploads/"), "201")
    }

    /// Cross-repository mounts the registry accepted.
    pub fn mount_count(&self) -> usize {
        self.count_requests("POST", "mount=", "201")
    }

    /// Access-log lines for `METHOD <path containing needle>` answered `status`.
    pub fn count_requests(&self, method: &str, needle: &str, status: &str) -> usize {
        // Lines look like: 127.0.0.1 - - [date] "PUT /v2/x/blobs/uploads/…?digest=… HTTP/1.1" 201 0 "" "ua"
        self.access_log()
            .lines()
            .filter(|line| {
                let Some((_, rest)) = line.split_once('"') else {
                    return false;
                };
                let Some((request, after)) = rest.split_once('"') else {
                    return false;
                };
                let mut parts = request.split(' ');
                parts.next() == Some(method)
                    && parts.next().is_some_and(|path| path.contains(needle))
                    && after.trim_start().starts_with(status)
            })
            .count()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA, and a server certificate it signs for IP 127.0.0.1 and DNS localhost (openssl CLI).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.pem");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.pem");
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                path(&ca_key),
                "-out",
                path(&ca),
                "-days",
                "2",
                "-subj",
                "/CN=st2pack test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                path(&key),
                "-out",
                path(&csr),
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            path(&csr),
            "-CA",
            path(&ca),
            "-CAkey",
            path(&ca_key),
            "-CAcreateserial",
            "-out",
            path(&cert),
            "-days",
            "2",
            "-extfile",
            path(&ext),
        ],
    );
    (ca, cert, key)
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the `openssl` CLI in `dir`, failing the test with its stderr if it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (install the openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bcrypt hash for htpasswd (distribution accepts nothing else), made with the system's
/// crypt(3) through perl, which every Debian has: no apache2-utils needed.
fn bcrypt(password: &str) -> String {
    let out = Command::new("perl")
        .args([
            "-e",
            "print crypt($ARGV[0], $ARGV[1])",
            password,
            "$2b$05$st2packtestsaltst2pacu",
        ])
        .output()
        .expect("run perl");
    let hash = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        hash.starts_with("$2b$05$") && hash.len() == 60,
        "this system's crypt(3) has no bcrypt (got {hash:?})"
    );
    hash
}

/// What the proxy does to blob uploads (`PUT …/blobs/uploads/…`); everything else passes.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Read the request, answer `503 Service Unavailable`.
    Reply503,
    /// Read part of the body, then close the connection.
    DropMidUpload,
    /// Read the whole request, then never answer (until the client gives up and closes).
    Stall,
}

/// A TCP proxy on 127.0.0.1 in front of a registry that injects [`Fault`]s into the first
/// `count` blob uploads. Each connection carries one request (it adds `Connection: close`), so
/// every request is seen.
pub struct FaultProxy {
    accept: AcceptLoop,
    faults: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Faults the first `count` uploads (`usize::MAX`: all of them).
    pub fn start(upstream_port: u16, fault: Fault, count: usize) -> FaultProxy {
        let faults = Arc::new(AtomicUsize::new(0));
        let counted = faults.clone();
        let accept = AcceptLoop::start(move |client| {
            let _ = serve(client, upstream_port, fault, count, &counted);
        });
        FaultProxy { accept, faults }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.accept.port)
    }

    /// Faults injected so far.
    pub fn faults(&self) -> usize {
        self.faults.load(Ordering::SeqCst)
    }
}

fn serve(
    client: TcpStream,
    upstream_port: u16,
    fault: Fault,
    count: usize,
    faults: &AtomicUsize,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    let mut request_line = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if request_line.is_empty() {
            request_line = line.clone();
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        if !lower.starts_with("connection:") {
            head.extend_from_slice(line.as_bytes());
        }
    }
    let is_upload = request_line.starts_with("PUT ") && request_line.contains("/blobs/uploads/");
    let mut client = client;
    if is_upload {
        let taken = faults
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < count).then_some(n + 1)
            })
            .is_ok();
        if taken {
            match fault {
                Fault::Reply503 => {
                    std::io::copy(
                        &mut (&mut reader).take(content_length as u64),
                        &mut std::io::sink(),
                    )?;
                    client.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
                          Content-Length: 19\r\nConnection: close\r\n\r\ninjected by a test\n",
                    )?;
                }
                Fault::DropMidUpload => {
                    let half = (content_length / 2).max(1) as u64;
                    std::io::copy(&mut (&mut reader).take(half), &mut std::io::sink())?;
                }
                Fault::Stall => {
                    std::io::copy(
                        &mut (&mut reader).take(content_length as u64),
                        &mut std::io::sink(),
                    )?;
                    // Returns when the client closes the connection (or after the read timeout).
                    let _ = reader.read(&mut [0; 1]);
                }
            }
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    upstream.write_all(&head)?;
    // Whatever the reader buffered beyond the head, then the rest of the body, upstream.
    let buffered = reader.buffer().to_vec();
    upstream.write_all(&buffered)?;
    let remaining = content_length.saturating_sub(buffered.len()) as u64;
    std::io::copy(&mut client.try_clone()?.take(remaining), &mut upstream)?;
    // The response (the upstream closes after it: `Connection: close`).
    std::io::copy(&mut upstream, &mut client)?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

//! Real servers on 127.0.0.1 with ports chosen at run time, stopped when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Accepts connections on 127.0.0.1 (a port the system picks) and hands each to `handle` on a
/// thread of its own, until dropped.
pub struct AcceptLoop {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AcceptLoop {
    pub fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> AcceptLoop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = Arc::new(handle);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let handle = handle.clone();
                        std::thread::spawn(move || handle(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        AcceptLoop {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A static file server for one directory (the exchange index), answering GETs.
pub struct HttpServer {
    pub port: u16,
    _accept: AcceptLoop,
}

impl HttpServer {
    pub fn serve(root: &Path) -> HttpServer {
        let root: PathBuf = root.to_path_buf();
        let accept = AcceptLoop::start(move |stream| answer(stream, &root));
        HttpServer {
            port: accept.port,
            _accept: accept,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }
}

fn answer(stream: TcpStream, root: &Path) {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/');
    let mut stream = stream;
    match std::fs::read(root.join(path))
        .ok()
        .filter(|_| !path.contains(".."))
    {
        Some(body) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
        None => {
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    }
}

/// `git daemon` serving every repository under a directory over git://.
pub struct GitDaemon {
    pub port: u16,
    child: Child,
}

impl GitDaemon {
    pub fn serve(base: &Path) -> GitDaemon {
        for _attempt in 0..5 {
            let port = free_port();
            let child = Command::new("git")
                .args([
                    "daemon",
                    "--reuseaddr",
                    "--export-all",
                    "--informative-errors",
                ])
                .arg(format!("--base-path={}", base.display()))
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(base)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("git daemon must be installed (it ships with git)");
            let mut daemon = GitDaemon { port, child };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return daemon;
                }
                if daemon.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            daemon.stop();
        }
        panic!("git daemon did not start on 127.0.0.1");
    }

    pub fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl GitDaemon {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago (the listener is closed before returning).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PEP 503 "simple" package index over HTTP for the wheels and sdists in one directory, which
/// counts every connection made to it (even one that never sends a request).
pub struct PackageIndex {
    pub port: u16,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    _accept: AcceptLoop,
}

impl PackageIndex {
    /// An index of `dir` an install can take everything from: the wheel of `wheel`, one of the
    /// seeds the installer asks for when there is no wheelhouse, is added to `dir` first.
    pub fn serve_for_installs(dir: &Path) -> PackageIndex {
        super::wheel::build_wheel(
            dir,
            "wheel",
            "0.45.1",
            &[("wheel/__init__.py", "")],
            &[],
            &[],
        );
        PackageIndex::serve(dir)
    }

    pub fn serve(dir: &Path) -> PackageIndex {
        let dir = dir.to_path_buf();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        let accept = AcceptLoop::start(move |stream| {
            counted.fetch_add(1, Ordering::SeqCst);
            answer_index(stream, &dir);
        });
        PackageIndex {
            port: accept.port,
            connections,
            _accept: accept,
        }
    }

    /// The index URL, as `--index-url` takes it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/simple/", self.port)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// PEP 503 name normalisation.
fn normalize_project(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if "-_.".contains(c) {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn answer_index(stream: TcpStream, dir: &Path) {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let files: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let (content_type, body) = if let Some(project) = path.strip_prefix("/simple/") {
        let project = normalize_project(project.trim_end_matches('/'));
        let links: String = files
            .iter()
            .filter(|f| {
                let dist = f.split('-').next().unwrap_or("");
                normalize_project(dist) == project
                    || f.strip_suffix(".tar.gz")
                        .and_then(|stem| stem.rsplit_once('-'))
                        .is_some_and(|(name, _)| normalize_project(name) == project)
            })
            .map(|f| format!("<a href=\"/files/{f}\">{f}</a><br>\n"))
            .collect();
        match links.is_empty() {
            true => ("text/html", None),
            false => (
                "text/html",
                Some(format!("<!DOCTYPE html><html><body>\n{links}</body></html>\n").into_bytes()),
            ),
        }
    } else if let Some(file) = path.strip_prefix("/files/") {
        let found = files.iter().find(|f| *f == file);
        (
            "application/octet-stream",
            found.and_then(|f| std::fs::read(dir.join(f)).ok()),
        )
    } else {
        ("text/html", None)
    };
    let mut stream = stream;
    match body {
        Some(body) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
        None => {
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    }
}

/// The three fixture packs of an Exchange: hello_deps (which depends on hello_st2 and with_reqs
/// by name) and the two it names, each a git repository (hello_st2 at v1.0.0 and v1.1.0) served
/// by `git daemon`, listed in an index served over HTTP. Lives as long as the value.
pub struct ServedPacks {
    /// The work trees, `work/<pack>`.
    pub work: PathBuf,
    /// The bare repositories the daemon serves, `served/<pack>.git`.
    pub served: PathBuf,
    pub index_url: String,
    _daemon: GitDaemon,
    _http: HttpServer,
}

impl ServedPacks {
    /// Makes the repositories and the index under `dir` and serves them.
    pub fn start(dir: &Path) -> ServedPacks {
        use super::repos::{bare_clone, pack_repo, write_index};
        let work = dir.join("work");
        let served = dir.join("served");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&served).unwrap();
        for (name, versions) in [
            ("hello_st2", &["1.0.0", "1.1.0"][..]),
            ("with_reqs", &["0.3.0"][..]),
            ("hello_deps", &["0.2.0"][..]),
        ] {
            let repo = pack_repo(&work, name, versions);
            bare_clone(&repo, &served, name);
        }
        let daemon = GitDaemon::serve(&served);
        let index_dir = dir.join("index");
        std::fs::create_dir(&index_dir).unwrap();
        write_index(
            &index_dir.join("index.json"),
            &[
                ("hello_st2", &daemon.url("hello_st2.git"), "1.1.0"),
                ("with_reqs", &daemon.url("with_reqs.git"), "0.3.0"),
                ("hello_deps", &daemon.url("hello_deps.git"), "0.2.0"),
            ],
        );
        let http = HttpServer::serve(&index_dir);
        ServedPacks {
            work,
            served,
            index_url: http.url("index.json"),
            _daemon: daemon,
            _http: http,
        }
    }
}

//! Client for the StackStorm Exchange pack index (format v1).
//!
//! `st2-pack-install aws` means "the pack the index calls `aws`": the index maps a short name to the
//! git repository to clone. Users may list several indexes (a private one in front of the public
//! Exchange); like upstream, the first index that knows a pack wins. Unlike upstream, an index that
//! cannot be fetched fails the whole load: the user asked for it, and silently ignoring it could
//! install a same-named public pack instead of the private one.
//!
//! The real index is hand-curated JSON with odd keys, nulls and the occasional broken entry, so
//! parsing is tolerant per pack: an entry we cannot use is recorded in [`PackIndex::skipped`] with a
//! reason instead of rejecting the other 168 packs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::redact::{redact_url, scrub};

/// Where StackStorm itself looks when `[content] index_url` is not set.
pub const DEFAULT_INDEX_URL: &str = "https://index.stackstorm.org/v1/index.json";

/// The real index is a few MB; the cap keeps a wrong URL (a disk image, an endless stream) from
/// exhausting memory.
const MAX_INDEX_BYTES: usize = 64 * 1024 * 1024;

/// What users are told to do when an index cannot be used.
const INDEX_URL_HINT: &str = "pass --index-url (or set [content] index_url in st2.conf) with a \
     reachable index, or a local copy as file:///absolute/path/index.json";

/// One pack as described by an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The key under `packs`, which is what users type.
    pub key: String,
    pub name: String,
    pub r#ref: Option<String>,
    pub repo_url: String,
    pub version: String,
    pub versions: Vec<String>,
    pub description: String,
    pub author: String,
    pub python_versions: Vec<String>,
    pub stackstorm_version: Option<String>,
    pub dependencies: Vec<String>,
    /// Redacted URL of the index this entry came from, for messages and provenance.
    pub source_index: String,
}

/// A pack entry that was left out of an index, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    pub key: String,
    /// Redacted URL of the index that contained it.
    pub source_index: String,
    pub reason: String,
}

/// The result of parsing one index document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedIndex {
    pub entries: Vec<IndexEntry>,
    pub skipped: Vec<SkippedEntry>,
}

/// All configured indexes merged into one lookup table.
#[derive(Debug, Clone, Default)]
pub struct PackIndex {
    entries: BTreeMap<String, IndexEntry>,
    skipped: Vec<SkippedEntry>,
}

/// How to reach the indexes.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Fetched in order; on duplicate pack keys the first index wins. Empty means
    /// [`DEFAULT_INDEX_URL`], as upstream does when nothing is configured.
    pub urls: Vec<String>,
    /// Applies to connecting and to the whole request.
    pub timeout: Duration,
    pub verify_ssl: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            urls: vec![DEFAULT_INDEX_URL.to_string()],
            timeout: Duration::from_secs(30),
            verify_ssl: true,
        }
    }
}

/// Why an index could not be loaded. Every variant names the (redacted) index URL.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(
        "index URL `{url}` has no scheme; did you mean {suggestion}? (web indexes need \
         https://, local files file:///absolute/path)"
    )]
    MissingScheme { url: String, suggestion: String },

    #[error("index URL `{url}` is not a valid URL ({reason}); {INDEX_URL_HINT}")]
    InvalidUrl { url: String, reason: String },

    #[error(
        "index URL `{url}` uses the unsupported scheme `{scheme}`; use http://, https:// or \
         file:///absolute/path"
    )]
    UnsupportedScheme { url: String, scheme: String },

    #[error("cannot read index file {} (from index URL `{url}`): {source}; check the path", path.display())]
    ReadFile {
        url: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "timed out after {} fetching index {url}; check network or proxy access, raise the \
         timeout, or {INDEX_URL_HINT}",
        fmt_secs(*timeout)
    )]
    Timeout { url: String, timeout: Duration },

    #[error("cannot reach index {url}: {reason}; {INDEX_URL_HINT}")]
    Unreachable { url: String, reason: String },

    #[error("fetching index {url} failed: {reason}; {INDEX_URL_HINT}")]
    Request { url: String, reason: String },

    #[error("index {url} answered HTTP {status}; check the URL, or {INDEX_URL_HINT}")]
    Status { url: String, status: String },

    #[error(
        "index {url} is larger than {} MiB; check that the URL points to an index.json",
        MAX_INDEX_BYTES / (1024 * 1024)
    )]
    TooLarge { url: String },

    #[error(
        "index {url} is not valid JSON (line {line}, column {column}: {message}); check that \
         the URL points to an index.json and not to an HTML page"
    )]
    Json {
        url: String,
        line: usize,
        column: usize,
        message: String,
    },

    #[error(
        "index {url} has no `packs` object, so it is not a StackStorm Exchange index \
         (format v1); check the URL"
    )]
    NoPacks { url: String },

    #[error("cannot set up the HTTP client for index {url}: {reason}")]
    Client { url: String, reason: String },
}

impl PackIndex {
    /// Fetches every index in `opts.urls` concurrently and merges them in the given order.
    pub async fn load(opts: &IndexOptions) -> Result<PackIndex, IndexError> {
        let urls: Vec<String> = if opts.urls.is_empty() {
            vec![DEFAULT_INDEX_URL.to_string()]
        } else {
            opts.urls.clone()
        };
        // Check every URL before touching the network, so a typo in the third one is reported
        // without waiting for the first to time out.
        let located = urls
            .iter()
            .map(|url| locate(url).map(|loc| (url.as_str(), loc)))
            .collect::<Result<Vec<_>, _>>()?;
        // One client so that several indexes on the same host share connections.
        let client = match located
            .iter()
            .find(|(_, loc)| matches!(loc, Location::Http(_)))
        {
            Some((url, _)) => Some(build_client(opts, url)?),
            None => None,
        };
        let fetches = located
            .into_iter()
            .map(|(url, loc)| fetch_and_parse(client.as_ref(), url, loc, opts.timeout));
        // join_all (not try_join_all) so that the error reported is the first in the user's
        // order, not whichever failed first on the wire.
        let results = futures_util::future::join_all(fetches).await;
        let mut parsed = Vec::with_capacity(results.len());
        for result in results {
            parsed.push(result?);
        }
        Ok(Self::merge_parsed(parsed))
    }

    /// Parses one index document; see [`PackIndex::parse`] for the reasons entries are skipped.
    pub fn from_json(bytes: &[u8], source: &str) -> Result<Vec<IndexEntry>, IndexError> {
        Self::parse(bytes, source).map(|parsed| parsed.entries)
    }

    /// Parses one index document, keeping track of pack entries that had to be left out (not an
    /// object, no usable `repo_url`). `source` is the index URL, used (redacted) in messages.
    pub fn parse(bytes: &[u8], source: &str) -> Result<ParsedIndex, IndexError> {
        let source = redact_url(source);
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| IndexError::Json {
            url: source.clone(),
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?;
        let Some(packs) = doc.get("packs").and_then(Value::as_object) else {
            return Err(IndexError::NoPacks { url: source });
        };
        let mut parsed = ParsedIndex::default();
        for (key, value) in packs {
            match entry_from_value(key, value, &source) {
                Ok(entry) => parsed.entries.push(entry),
                Err(reason) => parsed.skipped.push(SkippedEntry {
                    key: key.clone(),
                    source_index: source.clone(),
                    reason,
                }),
            }
        }
        Ok(parsed)
    }

    /// Merges indexes given in priority order: on duplicate keys the first index wins.
    pub fn merge(indexes: Vec<Vec<IndexEntry>>) -> PackIndex {
        Self::merge_parsed(
            indexes
                .into_iter()
                .map(|entries| ParsedIndex {
                    entries,
                    skipped: Vec::new(),
                })
                .collect(),
        )
    }

    /// Like [`PackIndex::merge`], also keeping skipped entries that no other index replaced.
    pub fn merge_parsed(indexes: Vec<ParsedIndex>) -> PackIndex {
        let mut merged = PackIndex::default();
        let mut skipped = Vec::new();
        for index in indexes {
            for entry in index.entries {
                merged.entries.entry(entry.key.clone()).or_insert(entry);
            }
            skipped.extend(index.skipped);
        }
        // A broken entry in one index does not hide a good one for the same key in another.
        skipped.retain(|s| !merged.entries.contains_key(&s.key));
        merged.skipped = skipped;
        merged
    }

    /// Looks a pack up by index key, falling back to an entry whose `ref`, then `name`, equals
    /// `name` (indexes written by hand sometimes key a pack differently from its ref).
    pub fn get(&self, name: &str) -> Option<&IndexEntry> {
        self.entries
            .get(name)
            .or_else(|| {
                self.entries
                    .values()
                    .find(|e| e.r#ref.as_deref() == Some(name))
            })
            .or_else(|| self.entries.values().find(|e| e.name == name))
    }

    /// The entry for `name` that was left out of the index, so "not found" can say why.
    pub fn skipped_reason(&self, name: &str) -> Option<&SkippedEntry> {
        self.skipped.iter().find(|s| s.key == name)
    }

    /// Every entry left out of the merged index.
    pub fn skipped(&self) -> &[SkippedEntry] {
        &self.skipped
    }

    /// Iterates over the entries, sorted by key.
    pub fn entries(&self) -> impl Iterator<Item = &IndexEntry> {
        self.entries.values()
    }

    /// Up to five index keys close to `name`, best first, for "did you mean" hints.
    ///
    /// Users type repository names (`stackstorm-aws`), hyphens for underscores and typos, so the
    /// query is normalised before comparing, and substring matches count as well.
    pub fn suggest(&self, name: &str) -> Vec<String> {
        let query = normalise(name);
        if query.is_empty() {
            return Vec::new();
        }
        let mut scored: Vec<(f64, &str)> = self
            .entries
            .keys()
            .filter_map(|key| similarity(&query, &normalise(key)).map(|s| (s, key.as_str())))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        scored
            .into_iter()
            .take(5)
            .map(|(_, k)| k.to_string())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Flattens repeated and comma-separated values (`--index-url a,b --index-url c`) into one list,
/// dropping blanks, so both spellings users know from upstream work.
pub fn split_url_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

fn normalise(name: &str) -> String {
    let lower = name.trim().to_lowercase().replace('-', "_");
    let lower = lower.strip_suffix(".git").unwrap_or(&lower);
    let base = lower.rsplit('/').next().unwrap_or(lower);
    base.strip_prefix("stackstorm_").unwrap_or(base).to_string()
}

/// A score for how close `key` is to `query` (both normalised), or `None` if not close at all.
fn similarity(query: &str, key: &str) -> Option<f64> {
    if query == key {
        return Some(2.0);
    }
    let jw = strsim::jaro_winkler(query, key);
    let edits = strsim::osa_distance(query, key);
    let allowed_edits = if query.chars().count() <= 4 { 1 } else { 2 };
    let substring =
        (query.len() >= 3 && key.contains(query)) || (key.len() >= 3 && query.contains(key));
    if substring {
        // Above plain look-alikes: `vsphere` for `vsphere_legacy`-style queries is what users want.
        Some(1.0 + jw)
    } else if edits <= allowed_edits || jw >= 0.88 {
        Some(jw)
    } else {
        None
    }
}

fn entry_from_value(key: &str, value: &Value, source: &str) -> Result<IndexEntry, String> {
    let Some(obj) = value.as_object() else {
        return Err(format!(
            "entry is {} instead of an object",
            json_kind(value)
        ));
    };
    let repo_url = match obj.get("repo_url") {
        None | Some(Value::Null) => return Err("entry has no repo_url".to_string()),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err("entry has an empty repo_url".to_string());
        }
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => {
            return Err(format!(
                "repo_url is {} instead of a string",
                json_kind(other)
            ));
        }
    };
    let text = |field: &str| obj.get(field).and_then(scalar_text);
    Ok(IndexEntry {
        key: key.to_string(),
        name: text("name").unwrap_or_else(|| key.to_string()),
        r#ref: text("ref").filter(|r| !r.is_empty()),
        repo_url,
        version: text("version").unwrap_or_default(),
        versions: text_list(obj.get("versions")),
        description: text("description").unwrap_or_default(),
        author: text("author").unwrap_or_default(),
        python_versions: text_list(obj.get("python_versions")),
        stackstorm_version: text("stackstorm_version").filter(|v| !v.is_empty()),
        dependencies: text_list(obj.get("dependencies")),
        source_index: source.to_string(),
    })
}

/// Strings as-is and numbers as written (`"python_versions": [3]` happens in hand-written YAML).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A list of scalars; a lone scalar counts as a one-element list, anything else as empty.
fn text_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(other) => scalar_text(other).into_iter().collect(),
        None => Vec::new(),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// serde_json's message without its trailing " at line L column C", which we show separately.
fn json_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

fn fmt_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn build_client(opts: &IndexOptions, first_url: &str) -> Result<reqwest::Client, IndexError> {
    reqwest::Client::builder()
        .connect_timeout(opts.timeout)
        .timeout(opts.timeout)
        .tls_danger_accept_invalid_certs(!opts.verify_ssl)
        .user_agent(concat!("st2pack/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| IndexError::Client {
            url: redact_url(first_url),
            reason: error_chain(&e.without_url(), first_url),
        })
}

/// Where an index lives, decided from the text the user gave.
enum Location {
    Http(url::Url),
    File(PathBuf),
}

/// Checks that `url` names an index st2pack can read (http(s)://, file:// or an absolute path),
/// so that a typo is bad input before anything is fetched.
pub fn check_url(url: &str) -> Result<(), IndexError> {
    locate(url).map(|_| ())
}

fn locate(url: &str) -> Result<Location, IndexError> {
    let shown = redact_url(url);
    if Path::new(url).is_absolute() {
        return Ok(Location::File(PathBuf::from(url)));
    }
    if !url.contains("://") {
        // A relative path is as likely as a host name; point at whichever the text really is.
        let suggestion = std::fs::canonicalize(url)
            .ok()
            .and_then(|abs| url::Url::from_file_path(abs).ok())
            .map(|u| u.to_string())
            .unwrap_or_else(|| format!("https://{shown}"));
        return Err(IndexError::MissingScheme {
            url: shown,
            suggestion,
        });
    }
    let parsed = url::Url::parse(url).map_err(|e| IndexError::InvalidUrl {
        url: shown.clone(),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "http" | "https" => Ok(Location::Http(parsed)),
        "file" => parsed
            .to_file_path()
            .map(Location::File)
            .map_err(|()| IndexError::InvalidUrl {
                url: shown,
                reason: "a file URL needs an absolute local path, as in file:///srv/index.json"
                    .to_string(),
            }),
        other => Err(IndexError::UnsupportedScheme {
            url: shown,
            scheme: other.to_string(),
        }),
    }
}

async fn fetch_and_parse(
    client: Option<&reqwest::Client>,
    url: &str,
    location: Location,
    timeout: Duration,
) -> Result<ParsedIndex, IndexError> {
    let bytes = match location {
        Location::File(path) => {
            tokio::fs::read(&path)
                .await
                .map_err(|source| IndexError::ReadFile {
                    url: redact_url(url),
                    path,
                    source,
                })?
        }
        Location::Http(parsed) => {
            let Some(client) = client else {
                // load() builds a client whenever an http(s) URL is present.
                return Err(IndexError::Client {
                    url: redact_url(url),
                    reason: "no HTTP client was set up".to_string(),
                });
            };
            fetch_http(client, parsed, url, timeout).await?
        }
    };
    PackIndex::parse(&bytes, url)
}

async fn fetch_http(
    client: &reqwest::Client,
    parsed: url::Url,
    url: &str,
    timeout: Duration,
) -> Result<Vec<u8>, IndexError> {
    let shown = redact_url(url);
    let mut response = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| request_error(e, url, timeout))?;
    let status = response.status();
    if !status.is_success() {
        return Err(IndexError::Status {
            url: shown,
            status: status.to_string(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| request_error(e, url, timeout))?
    {
        if body.len() + chunk.len() > MAX_INDEX_BYTES {
            return Err(IndexError::TooLarge { url: shown });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn request_error(err: reqwest::Error, url: &str, timeout: Duration) -> IndexError {
    let shown = redact_url(url);
    if err.is_timeout() {
        return IndexError::Timeout {
            url: shown,
            timeout,
        };
    }
    if err.is_connect() {
        // The innermost cause ("Connection refused", "Name or service not known") is the one
        // that tells the user something; the layers above it are reqwest/hyper plumbing.
        let mut reason = root_cause(&err.without_url(), url);
        if reason.to_lowercase().contains("certificate") {
            reason.push_str(
                " (the server's TLS certificate was not trusted: add its CA to the system trust \
                 store, or turn off certificate verification for the index)",
            );
        }
        IndexError::Unreachable { url: shown, reason }
    } else {
        let reason = error_chain(&err.without_url(), url);
        IndexError::Request { url: shown, reason }
    }
}

fn root_cause(err: &dyn std::error::Error, url: &str) -> String {
    let mut innermost = err;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    scrub(&innermost.to_string(), url)
}

/// The error and its causes on one line ("connection refused" is usually only in the innermost
/// one), with any secret from `url` scrubbed.
fn error_chain(err: &dyn std::error::Error, url: &str) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    scrub(&parts.join(": "), url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::JoinHandle;
    use std::time::Instant;

    fn manifest_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn fixture_index() -> Vec<u8> {
        let path = manifest_dir().join("fixtures/index/index.json");
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("test fixture {} is missing: {e}", path.display()))
    }

    fn opts(urls: Vec<String>, timeout: Duration) -> IndexOptions {
        IndexOptions {
            urls,
            timeout,
            verify_ssl: true,
        }
    }

    #[derive(Clone, Copy)]
    enum Mode {
        /// Answer `routes`, 404 for anything else.
        Serve,
        /// Accept connections and never answer.
        Hang,
    }

    /// A tiny HTTP/1.1 server on 127.0.0.1 that lives as long as the value; it gives up on its own
    /// after 30 s so a broken test cannot hang the suite.
    struct TestServer {
        port: u16,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl TestServer {
        fn start(mode: Mode, routes: Vec<(&'static str, Vec<u8>)>) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            let port = listener.local_addr().unwrap().port();
            listener.set_nonblocking(true).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let stop_flag = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut held = Vec::new();
                while !stop_flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => match mode {
                            Mode::Serve => serve_one(stream, &routes),
                            Mode::Hang => held.push(stream),
                        },
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
            TestServer {
                port,
                stop,
                thread: Some(thread),
            }
        }

        fn url(&self, path: &str) -> String {
            format!("http://127.0.0.1:{}{path}", self.port)
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn serve_one(mut stream: TcpStream, routes: &[(&'static str, Vec<u8>)]) {
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&request);
        let path = text.split_whitespace().nth(1).unwrap_or("/");
        let (status, body): (&str, &[u8]) = match routes.iter().find(|(p, _)| *p == path) {
            Some((_, body)) => ("200 OK", body),
            None => ("404 Not Found", b"not found"),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    }

    fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn parses_the_real_exchange_index() {
        let path = manifest_dir().join("../shared/exchange/index.json");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "the real Exchange index ../shared/exchange/index.json is missing: expected it at \
                 {} (next to the crate directory, in shared/exchange/): {e}",
                path.display()
            )
        });
        let parsed =
            PackIndex::parse(&bytes, "https://index.stackstorm.org/v1/index.json").unwrap();
        assert_eq!(parsed.entries.len(), 169, "skipped: {:?}", parsed.skipped);
        assert!(parsed.skipped.is_empty());
        let index = PackIndex::merge(vec![parsed.entries]);
        assert_eq!(index.len(), 169);

        let aws = index.get("aws").unwrap();
        assert_eq!(
            aws.repo_url,
            "https://github.com/StackStorm-Exchange/stackstorm-aws"
        );
        assert_eq!(aws.r#ref.as_deref(), Some("aws"));
        assert!(!aws.versions.is_empty());
        assert_eq!(
            aws.source_index,
            "https://index.stackstorm.org/v1/index.json"
        );

        // No `ref` at all, and the odd `Contributors` key.
        let kafka = index.get("kafka").unwrap();
        assert_eq!(kafka.r#ref, None);
        assert_eq!(
            kafka.repo_url,
            "https://github.com/StackStorm-Exchange/stackstorm-kafka"
        );
        // `email: null` must not matter.
        assert!(index.get("logicmonitor").is_some());
        assert_eq!(index.get("aoscx").unwrap().dependencies, vec!["core"]);
        assert_eq!(
            index
                .get("bitbucket")
                .unwrap()
                .stackstorm_version
                .as_deref(),
            Some(">=2.1.0")
        );
        // Lookup by display name when no key matches.
        assert_eq!(index.get("Aruba AOS-CX Pack").unwrap().key, "aoscx");
    }

    #[test]
    fn tolerates_odd_entries_and_records_skips() {
        let json = br#"{"packs": {
            "good": {"name": null, "repo_url": "https://example.com/good", "version": 1.5,
                     "versions": "1.5", "python_versions": [3, "3.8"], "email": null,
                     "Contributors": null, "weird": {"x": [1]}},
            "norepo": {"name": "norepo", "version": "1.0.0"},
            "nullrepo": {"repo_url": null},
            "numrepo": {"repo_url": 7},
            "notobj": "oops"
        }}"#;
        let parsed = PackIndex::parse(json, "http://u:pw@idx/i.json").unwrap();
        assert_eq!(parsed.entries.len(), 1);
        let good = &parsed.entries[0];
        assert_eq!(good.name, "good");
        assert_eq!(good.version, "1.5");
        assert_eq!(good.versions, vec!["1.5"]);
        assert_eq!(good.python_versions, vec!["3", "3.8"]);
        assert_eq!(good.source_index, "http://***@idx/i.json");

        let reasons: BTreeMap<_, _> = parsed
            .skipped
            .iter()
            .map(|s| (s.key.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(reasons["norepo"], "entry has no repo_url");
        assert_eq!(reasons["nullrepo"], "entry has no repo_url");
        assert_eq!(
            reasons["numrepo"],
            "repo_url is a number instead of a string"
        );
        assert_eq!(reasons["notobj"], "entry is a string instead of an object");

        let index = PackIndex::merge_parsed(vec![parsed]);
        assert_eq!(
            index.skipped_reason("norepo").unwrap().reason,
            "entry has no repo_url"
        );
        assert!(index.get("norepo").is_none());
    }

    #[test]
    fn broken_entry_does_not_hide_a_good_one_elsewhere() {
        let first = PackIndex::parse(br#"{"packs": {"p": {}}}"#, "a").unwrap();
        let second =
            PackIndex::parse(br#"{"packs": {"p": {"repo_url": "https://x/p"}}}"#, "b").unwrap();
        let index = PackIndex::merge_parsed(vec![first, second]);
        assert_eq!(index.get("p").unwrap().source_index, "b");
        assert!(index.skipped().is_empty());
    }

    #[test]
    fn invalid_json_names_url_line_and_column() {
        let err = PackIndex::from_json(b"{\n  \"packs\": {,}\n}", "https://u:secret@h/i.json")
            .unwrap_err();
        match &err {
            IndexError::Json { line, column, .. } => assert_eq!((*line, *column), (2, 13)),
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("https://***@h/i.json"), "{msg}");
        assert!(msg.contains("line 2, column 13"), "{msg}");
        assert!(!msg.contains("secret"), "{msg}");
    }

    #[test]
    fn json_without_packs_object_is_rejected() {
        for doc in [&b"{\"metadata\": {}}"[..], b"{\"packs\": []}", b"[1, 2]"] {
            let err = PackIndex::from_json(doc, "file:///i.json").unwrap_err();
            assert!(matches!(err, IndexError::NoPacks { .. }), "{err:?}");
            assert!(err.to_string().contains("file:///i.json"));
        }
    }

    #[test]
    fn get_falls_back_to_ref_then_name() {
        let json = br#"{"packs": {
            "key_a": {"ref": "ref_a", "name": "Name A", "repo_url": "https://x/a"},
            "ref_a": {"name": "other", "repo_url": "https://x/b"},
            "key_c": {"ref": "ref_c", "name": "Name C", "repo_url": "https://x/c"}
        }}"#;
        let index = PackIndex::merge(vec![PackIndex::from_json(json, "i").unwrap()]);
        // A key always beats a ref.
        assert_eq!(index.get("ref_a").unwrap().repo_url, "https://x/b");
        assert_eq!(index.get("ref_c").unwrap().key, "key_c");
        assert_eq!(index.get("Name A").unwrap().key, "key_a");
        assert!(index.get("nope").is_none());
    }

    #[test]
    fn merge_first_index_wins() {
        let a = PackIndex::from_json(br#"{"packs": {"p": {"repo_url": "https://a/p"}}}"#, "a");
        let b = PackIndex::from_json(
            br#"{"packs": {"p": {"repo_url": "https://b/p"}, "q": {"repo_url": "https://b/q"}}}"#,
            "b",
        );
        let index = PackIndex::merge(vec![a.unwrap(), b.unwrap()]);
        assert_eq!(index.len(), 2);
        assert_eq!(index.get("p").unwrap().repo_url, "https://a/p");
        assert_eq!(index.get("q").unwrap().source_index, "b");
    }

    #[test]
    fn split_url_list_accepts_repeats_and_commas() {
        let values = vec![
            "a, b".to_string(),
            " ".to_string(),
            "c,,".to_string(),
            "file:///x".to_string(),
        ];
        assert_eq!(split_url_list(&values), vec!["a", "b", "c", "file:///x"]);
        assert!(split_url_list(&[]).is_empty());
    }

    #[test]
    fn suggest_finds_typos_hyphens_and_repo_names() {
        let json = br#"{"packs": {
            "kubernetes": {"repo_url": "u"}, "slack": {"repo_url": "u"},
            "aws_boto3": {"repo_url": "u"}, "aws": {"repo_url": "u"},
            "vsphere": {"repo_url": "u"}, "jira": {"repo_url": "u"}
        }}"#;
        let index = PackIndex::merge(vec![PackIndex::from_json(json, "i").unwrap()]);
        assert_eq!(index.suggest("kuberentes")[0], "kubernetes");
        assert_eq!(index.suggest("slak")[0], "slack");
        assert_eq!(index.suggest("aws-boto3")[0], "aws_boto3");
        assert_eq!(index.suggest("stackstorm-vsphere")[0], "vsphere");
        assert_eq!(index.suggest("Jira")[0], "jira");
        assert!(index.suggest("zzzzzzzz").is_empty());
        assert!(index.suggest("").is_empty());
        assert!(index.suggest("a").len() <= 5);
    }

    #[test]
    fn suggest_returns_at_most_five_best_first() {
        let index = PackIndex::merge(vec![
            (0..10)
                .map(|i| IndexEntry {
                    key: format!("net{i}"),
                    name: String::new(),
                    r#ref: None,
                    repo_url: "u".into(),
                    version: String::new(),
                    versions: vec![],
                    description: String::new(),
                    author: String::new(),
                    python_versions: vec![],
                    stackstorm_version: None,
                    dependencies: vec![],
                    source_index: "i".into(),
                })
                .collect(),
        ]);
        let s = index.suggest("net");
        assert_eq!(s.len(), 5);
        assert_eq!(s[0], "net0");
    }

    #[test]
    fn urls_without_scheme_or_with_odd_scheme_are_rejected_clearly() {
        let err = locate("index.stackstorm.org/v1/index.json").err().unwrap();
        assert!(
            err.to_string()
                .contains("https://index.stackstorm.org/v1/index.json")
        );
        let err = locate("ftp://u:pw@host/index.json").err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains("`ftp`") && msg.contains("//***@host"), "{msg}");
        assert!(!msg.contains("pw@"), "{msg}");
        assert!(matches!(locate("/abs/index.json"), Ok(Location::File(_))));
        assert!(matches!(locate("HTTPS://h/i.json"), Ok(Location::Http(_))));
        assert!(
            matches!(locate("file:///abs/i.json"), Ok(Location::File(p)) if p == Path::new("/abs/i.json"))
        );
    }

    #[tokio::test]
    async fn loads_over_http_and_from_file_url_first_wins() {
        let private = br#"{"packs": {"hello_st2": {"name": "hello_st2",
            "repo_url": "https://git.internal/hello_st2", "version": "9.9.9"}}}"#;
        let server = TestServer::start(
            Mode::Serve,
            vec![
                ("/v1/index.json", private.to_vec()),
                ("/fixture.json", fixture_index()),
            ],
        );
        let file_url = url::Url::from_file_path(manifest_dir().join("fixtures/index/index.json"))
            .unwrap()
            .to_string();

        let index = PackIndex::load(&opts(
            split_url_list(&[format!("{},{file_url}", server.url("/v1/index.json"))]),
            Duration::from_secs(5),
        ))
        .await
        .unwrap();
        let hello = index.get("hello_st2").unwrap();
        assert_eq!(hello.repo_url, "https://git.internal/hello_st2");
        assert_eq!(hello.source_index, server.url("/v1/index.json"));
        // Packs only in the second (file) index are still there.
        let fixture_only = PackIndex::from_json(&fixture_index(), "f").unwrap();
        assert_eq!(index.len(), fixture_only.len());
        assert_eq!(
            index.get("hello_deps").unwrap().source_index,
            file_url,
            "second index's own packs keep their source"
        );

        // Same fixture over HTTP parses to the same entries as from disk.
        let over_http = PackIndex::load(&opts(
            vec![server.url("/fixture.json")],
            Duration::from_secs(5),
        ))
        .await
        .unwrap();
        assert_eq!(over_http.len(), fixture_only.len());
        assert_eq!(over_http.suggest("helo_st2")[0], "hello_st2");
    }

    #[tokio::test]
    async fn bare_absolute_path_and_missing_file() {
        let path = manifest_dir().join("fixtures/index/index.json");
        let index = PackIndex::load(&opts(
            vec![path.display().to_string()],
            Duration::from_secs(1),
        ))
        .await
        .unwrap();
        assert!(!index.is_empty());

        let err = PackIndex::load(&opts(
            vec!["file:///nonexistent/st2pack/index.json".to_string()],
            Duration::from_secs(1),
        ))
        .await
        .unwrap_err();
        assert!(matches!(err, IndexError::ReadFile { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/st2pack/index.json"));
    }

    #[tokio::test]
    async fn http_404_names_the_index_and_fails_the_whole_load() {
        let server = TestServer::start(Mode::Serve, vec![("/ok.json", fixture_index())]);
        let missing = server
            .url("/missing.json")
            .replace("http://", "http://me:hunter2@");
        let err = PackIndex::load(&opts(
            vec![server.url("/ok.json"), missing],
            Duration::from_secs(5),
        ))
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, IndexError::Status { .. }), "{err:?}");
        assert!(msg.contains("404"), "{msg}");
        assert!(
            msg.contains(&format!("//***@127.0.0.1:{}/missing.json", server.port)),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[tokio::test]
    async fn connection_refused_is_unreachable() {
        let url = format!("http://127.0.0.1:{}/index.json", closed_port());
        let err = PackIndex::load(&opts(vec![url.clone()], Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(matches!(err, IndexError::Unreachable { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&url) && msg.contains("--index-url"), "{msg}");
        assert!(msg.to_lowercase().contains("refused"), "{msg}");
    }

    #[tokio::test]
    async fn silent_server_times_out_with_the_timeout_named() {
        let server = TestServer::start(Mode::Hang, vec![]);
        let started = Instant::now();
        let err = PackIndex::load(&opts(
            vec![server.url("/index.json")],
            Duration::from_secs(1),
        ))
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(matches!(err, IndexError::Timeout { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("timed out after 1 s"), "{msg}");
        assert!(msg.contains(&server.url("/index.json")), "{msg}");
        assert!(msg.contains("file://"), "{msg}");
    }

    #[tokio::test]
    async fn html_page_is_reported_as_invalid_json() {
        let server = TestServer::start(Mode::Serve, vec![("/", b"<html>hi</html>".to_vec())]);
        let err = PackIndex::load(&opts(vec![server.url("/")], Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                IndexError::Json {
                    line: 1,
                    column: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn fixture_index_is_well_formed() {
        let parsed = PackIndex::parse(&fixture_index(), "fixture").unwrap();
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        assert!((3..=5).contains(&parsed.entries.len()));
    }
}

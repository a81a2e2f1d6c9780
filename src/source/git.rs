//! Git sources, through libgit2: resolve a ref, fetch it into a local clone cache, export the tree.
//!
//! Remote repositories are mirrored into bare repositories under the cache directory, so a repeated
//! install only asks the remote which commit a ref points at and fetches nothing when the cache
//! already holds it. Nothing here ever prompts for credentials: they come from the URL or from
//! ssh-agent, and every message goes through [`crate::redact`] first.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Once;

use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, Direction, FetchOptions,
    ObjectType, Oid, ProxyOptions, RemoteCallbacks, Repository, TreeWalkMode, TreeWalkResult,
};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::redact::{redact_url, scrub};

/// How long to wait for a git server to accept a connection, and for any single read or write.
const CONNECT_TIMEOUT_MS: i32 = 20_000;
const IO_TIMEOUT_MS: i32 = 120_000;

/// libgit2's depth value meaning "fetch the whole history" (turns a shallow clone into a full one).
const UNSHALLOW: i32 = i32::MAX;

#[derive(Debug, Clone)]
pub struct GitOptions {
    /// The clone cache: one bare repository per remote URL, directly in it.
    pub cache_dir: PathBuf,
    /// `false` (`--noverify-ssl`) accepts any TLS certificate from the git server.
    pub verify_ssl: bool,
}

/// A commit a pack spec resolved to, and the repository that holds it.
#[derive(Debug, Clone)]
pub struct ResolvedCommit {
    /// Full hex object id.
    pub commit: String,
    /// The ref that matched, as the user would write it (`v1.2.0`, `main`, a SHA, or `HEAD`).
    pub matched_ref: String,
    /// Repository to export the tree from (a cache mirror, or the user's own local repository).
    pub repo: PathBuf,
}

#[derive(Debug, Error)]
pub enum GitError {
    #[error(
        "cannot reach git repository {url}: {message}\n  \
         check the URL, your network and proxy settings (HTTPS_PROXY); git never prompts for \
         credentials here, so use a token in the URL or an ssh key loaded in ssh-agent"
    )]
    Connect { url: String, message: String },
    #[error("{url} has no tag, branch or commit {reference:?}\n  {}", describe_available(.versions, .branches))]
    RefNotFound {
        url: String,
        reference: String,
        /// Version tags in semver order, oldest first.
        versions: Vec<String>,
        branches: Vec<String>,
    },
    #[error("{url} has no commits (its default branch is empty): push a commit or name a ref")]
    EmptyRepository { url: String },
    #[error("fetching {reference:?} from {url} failed: {message}")]
    Fetch {
        url: String,
        reference: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Local { path: PathBuf, message: String },
}

fn describe_available(versions: &[String], branches: &[String]) -> String {
    let mut parts = Vec::new();
    if !versions.is_empty() {
        parts.push(format!("versions that exist: {}", versions.join(", ")));
    }
    if !branches.is_empty() {
        parts.push(format!("branches: {}", branches.join(", ")));
    }
    if parts.is_empty() {
        "the repository has no tags or branches".to_string()
    } else {
        parts.join("; ")
    }
}

/// The cache's bare mirror of `url` (made when missing), its lock held by the returned file:
/// two processes sharing the cache must not fetch into the same mirror at once.
fn open_mirror(url: &str, opts: &GitOptions) -> Result<(Repository, fs::File, PathBuf), GitError> {
    set_timeouts_once();
    let mirror_path = opts.cache_dir.join(mirror_dir_name(url));
    let local_err = |message: String| GitError::Local {
        path: mirror_path.clone(),
        message,
    };
    fs::create_dir_all(&mirror_path).map_err(|e| local_err(e.to_string()))?;
    let lock =
        lock_file(&mirror_path.with_extension("lock")).map_err(|e| local_err(e.to_string()))?;
    let repo = match Repository::open_bare(&mirror_path) {
        Ok(repo) => repo,
        Err(_) => {
            Repository::init_bare(&mirror_path).map_err(|e| local_err(e.message().to_string()))?
        }
    };
    Ok((repo, lock, mirror_path))
}

/// Resolves `reference` (default: the remote's default branch) on the remote at `url`, fetching
/// it into the cache mirror unless the mirror already holds that commit.
pub fn fetch_remote(
    url: &str,
    reference: Option<&str>,
    opts: &GitOptions,
) -> Result<ResolvedCommit, GitError> {
    let shown = redact_url(url);
    let (repo, _lock, mirror_path) = open_mirror(url, opts)?;

    let advertised = list_remote(&repo, url, opts)?;
    let wanted = match resolve_ref(&advertised, reference) {
        Ok(found) => Some(found),
        Err(Unresolved::NotFound) if reference.is_some_and(looks_like_sha) => None,
        Err(unresolved) => return Err(unresolved.into_error(&shown, reference, &advertised)),
    };

    let commit = match wanted {
        Some(found) => {
            if repo.find_object(found.oid, None).is_err() {
                let refspec = format!("+{0}:{0}", found.ref_name);
                fetch(&repo, url, &[refspec.as_str()], opts, !is_local_url(url))
                    .map_err(|message| fetch_error(&shown, &found.shown_name, message))?;
            }
            let commit = peel_to_commit(&repo, found.oid)
                .map_err(|message| fetch_error(&shown, &found.shown_name, message))?;
            ResolvedCommit {
                commit: commit.to_string(),
                matched_ref: found.shown_name,
                repo: mirror_path.clone(),
            }
        }
        None => {
            // A commit id: servers rarely let a client ask for an arbitrary commit, so fetch every
            // branch and tag, then look the commit up.
            let sha = reference.unwrap_or_default();
            if repo.revparse_single(sha).is_err() {
                let specs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
                fetch(&repo, url, &specs, opts, false)
                    .map_err(|message| fetch_error(&shown, sha, message))?;
            }
            let commit = repo
                .revparse_single(sha)
                .and_then(|object| object.peel_to_commit())
                .map_err(|_| Unresolved::NotFound.into_error(&shown, reference, &advertised))?;
            ResolvedCommit {
                commit: commit.id().to_string(),
                matched_ref: sha.to_string(),
                repo: mirror_path.clone(),
            }
        }
    };
    crate::cache::mark_used(&mirror_path);
    Ok(commit)
}

/// What [`fetch_remote`] would resolve `reference` to on the remote at `url` — the commit and
/// the matched ref — asking the remote for its refs only (as `git ls-remote`): no object is
/// fetched. `None` when that cannot be known without fetching (an abbreviated commit id).
pub fn resolve_remote(
    url: &str,
    reference: Option<&str>,
    opts: &GitOptions,
) -> Result<Option<(String, String)>, GitError> {
    let shown = redact_url(url);
    let (repo, _lock, mirror_path) = open_mirror(url, opts)?;
    let advertised = list_remote(&repo, url, opts)?;
    let found = match resolve_ref(&advertised, reference) {
        Ok(found) => found,
        Err(Unresolved::NotFound) if reference.is_some_and(looks_like_sha) => {
            let sha = reference.unwrap_or_default();
            return Ok((sha.len() == 40).then(|| (sha.to_ascii_lowercase(), sha.to_string())));
        }
        Err(unresolved) => return Err(unresolved.into_error(&shown, reference, &advertised)),
    };
    // An annotated tag points at a tag object; the server advertises the commit it peels to.
    let commit = match advertised.peeled.iter().find(|p| p.name == found.ref_name) {
        Some(peeled) => peeled.oid,
        None => match repo.find_object(found.oid, None) {
            Ok(_) => peel_to_commit(&repo, found.oid).map_err(|message| GitError::Local {
                path: mirror_path.clone(),
                message,
            })?,
            Err(_) => found.oid,
        },
    };
    Ok(Some((commit.to_string(), found.shown_name)))
}

/// Resolves `reference` in a repository on this machine (work tree or bare), with no fetching.
/// With no reference, a work tree's current HEAD or a bare repository's default branch is used.
pub fn resolve_local(
    repo_path: &Path,
    reference: Option<&str>,
) -> Result<ResolvedCommit, GitError> {
    let local_err = |message: String| GitError::Local {
        path: repo_path.to_path_buf(),
        message,
    };
    let repo = Repository::open(repo_path).map_err(|e| local_err(e.message().to_string()))?;
    let shown = repo_path.display().to_string();
    let advertised = list_local(&repo).map_err(|e| local_err(e.message().to_string()))?;
    let (oid, matched_ref) = match resolve_ref(&advertised, reference) {
        Ok(found) => (found.oid, found.shown_name),
        Err(Unresolved::NotFound) if reference.is_some_and(looks_like_sha) => {
            let sha = reference.unwrap_or_default();
            let object = repo
                .revparse_single(sha)
                .map_err(|_| Unresolved::NotFound.into_error(&shown, reference, &advertised))?;
            (object.id(), sha.to_string())
        }
        Err(unresolved) => return Err(unresolved.into_error(&shown, reference, &advertised)),
    };
    let commit = peel_to_commit(&repo, oid).map_err(local_err)?;
    Ok(ResolvedCommit {
        commit: commit.to_string(),
        matched_ref,
        repo: repo.path().to_path_buf(),
    })
}

/// Writes the tree of `commit` into `dest` (which must not exist yet): directories 0755, files
/// 0644 or 0755 as recorded in git, symlinks as symlinks. Submodules cannot be exported from a
/// mirror and are reported back as warnings.
pub fn export_commit(repo_path: &Path, commit: &str, dest: &Path) -> Result<Vec<String>, GitError> {
    let local_err = |path: &Path, message: String| GitError::Local {
        path: path.to_path_buf(),
        message,
    };
    let repo =
        Repository::open(repo_path).map_err(|e| local_err(repo_path, e.message().to_string()))?;
    let oid = Oid::from_str(commit).map_err(|e| local_err(repo_path, e.message().to_string()))?;
    let tree = repo
        .find_commit(oid)
        .and_then(|c| c.tree())
        .map_err(|e| local_err(repo_path, e.message().to_string()))?;
    create_dir_0755(dest).map_err(|e| local_err(dest, e.to_string()))?;

    let mut warnings = Vec::new();
    let mut failure: Option<GitError> = None;
    tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
        let Some(name) = entry.name().ok().filter(|n| is_safe_entry_name(n)) else {
            warnings.push(format!(
                "skipped {parent}{} from git: {}",
                String::from_utf8_lossy(entry.name_bytes()),
                match entry.name() {
                    Ok(_) => "a name that cannot be a file in a pack",
                    Err(_) => "its name is not UTF-8; rename it",
                }
            ));
            return TreeWalkResult::Skip;
        };
        let path = dest.join(parent).join(name);
        let result = match entry.kind() {
            Some(ObjectType::Tree) => create_dir_0755(&path),
            Some(ObjectType::Blob) => repo
                .find_blob(entry.id())
                .map_err(|e| std::io::Error::other(e.message().to_string()))
                .and_then(|blob| write_entry(&path, entry.filemode(), blob.content())),
            Some(ObjectType::Commit) => {
                warnings.push(format!(
                    "submodule {parent}{name} was not installed: submodules are not supported, vendor its files into the pack"
                ));
                Ok(())
            }
            _ => Ok(()),
        };
        match result {
            Ok(()) => TreeWalkResult::Ok,
            Err(e) => {
                failure = Some(local_err(&path, e.to_string()));
                TreeWalkResult::Abort
            }
        }
    })
    .ok();
    match failure {
        Some(err) => Err(err),
        None => Ok(warnings),
    }
}

/// Makes `dest` a git work tree checked out at `commit`, for `--keep-git`. The origin remote is
/// recorded without credentials.
pub fn clone_at_commit(
    repo_path: &Path,
    commit: &str,
    dest: &Path,
    origin_url: &str,
) -> Result<(), GitError> {
    let local_err = |message: String| GitError::Local {
        path: dest.to_path_buf(),
        message,
    };
    let repo = git2::build::RepoBuilder::new()
        .bare(false)
        .clone(&format!("file://{}", repo_path.display()), dest)
        .map_err(|e| local_err(e.message().to_string()))?;
    let oid = Oid::from_str(commit).map_err(|e| local_err(e.message().to_string()))?;
    let object = repo
        .find_object(oid, None)
        .map_err(|e| local_err(e.message().to_string()))?;
    repo.checkout_tree(&object, Some(git2::build::CheckoutBuilder::new().force()))
        .and_then(|()| repo.set_head_detached(oid))
        .and_then(|()| repo.remote_set_url("origin", &redact_url(origin_url)))
        .map_err(|e| local_err(e.message().to_string()))
}

/// One advertised ref: its full name and the object it points at (a tag object for annotated
/// tags; peeled after fetching).
#[derive(Debug, Clone)]
struct AdvertisedRef {
    name: String,
    oid: Oid,
}

#[derive(Debug, Default)]
struct Advertised {
    /// The ref HEAD points at (`refs/heads/main`), when known, and its commit.
    head: Option<AdvertisedRef>,
    refs: Vec<AdvertisedRef>,
    /// The commits annotated tags peel to (`refs/tags/v1^{}`), under the tag's name.
    peeled: Vec<AdvertisedRef>,
}

#[derive(Debug)]
struct FoundRef {
    ref_name: String,
    shown_name: String,
    oid: Oid,
}

enum Unresolved {
    NotFound,
    Empty,
}

impl Unresolved {
    fn into_error(self, url: &str, reference: Option<&str>, advertised: &Advertised) -> GitError {
        match self {
            Unresolved::Empty => GitError::EmptyRepository {
                url: url.to_string(),
            },
            Unresolved::NotFound => GitError::RefNotFound {
                url: url.to_string(),
                reference: reference.unwrap_or("HEAD").to_string(),
                versions: version_tags(advertised),
                branches: advertised
                    .refs
                    .iter()
                    .filter_map(|r| r.name.strip_prefix("refs/heads/"))
                    .map(str::to_string)
                    .collect(),
            },
        }
    }
}

/// The refs a user's `reference` may mean, most likely first. A semver-looking reference means
/// tag `v<ref>` first (StackStorm Exchange's convention), then the literal tag or branch.
fn candidate_refs(reference: &str) -> Vec<String> {
    if reference.starts_with("refs/") {
        return vec![reference.to_string()];
    }
    let mut candidates = Vec::new();
    if semver::Version::parse(reference).is_ok() {
        candidates.push(format!("refs/tags/v{reference}"));
    }
    candidates.push(format!("refs/tags/{reference}"));
    candidates.push(format!("refs/heads/{reference}"));
    candidates
}

fn resolve_ref(advertised: &Advertised, reference: Option<&str>) -> Result<FoundRef, Unresolved> {
    let Some(reference) = reference else {
        let head = advertised.head.as_ref().ok_or(Unresolved::Empty)?;
        return Ok(FoundRef {
            ref_name: head.name.clone(),
            shown_name: "HEAD".to_string(),
            oid: head.oid,
        });
    };
    for candidate in candidate_refs(reference) {
        if let Some(found) = advertised.refs.iter().find(|r| r.name == candidate) {
            return Ok(FoundRef {
                ref_name: found.name.clone(),
                shown_name: short_ref_name(&found.name).to_string(),
                oid: found.oid,
            });
        }
    }
    Err(Unresolved::NotFound)
}

fn short_ref_name(name: &str) -> &str {
    name.strip_prefix("refs/tags/")
        .or_else(|| name.strip_prefix("refs/heads/"))
        .unwrap_or(name)
}

/// Tags that read as versions (`1.2.0` or `v1.2.0`), in semver order, oldest first.
fn version_tags(advertised: &Advertised) -> Vec<String> {
    let mut versions: Vec<(semver::Version, String)> = advertised
        .refs
        .iter()
        .filter_map(|r| r.name.strip_prefix("refs/tags/"))
        .filter_map(|tag| {
            let parsed = semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()?;
            Some((parsed, tag.to_string()))
        })
        .collect();
    versions.sort();
    versions.dedup_by(|a, b| a.1 == b.1);
    versions.into_iter().map(|(_, tag)| tag).collect()
}

fn looks_like_sha(reference: &str) -> bool {
    (4..=40).contains(&reference.len()) && reference.chars().all(|c| c.is_ascii_hexdigit())
}

fn list_remote(repo: &Repository, url: &str, opts: &GitOptions) -> Result<Advertised, GitError> {
    let shown = redact_url(url);
    let connect_err = |e: git2::Error| GitError::Connect {
        url: shown.clone(),
        message: scrub(e.message(), url),
    };
    let mut remote = repo.remote_anonymous(url).map_err(connect_err)?;
    let proxy = env_proxy(url);
    let connection = remote
        .connect_auth(
            Direction::Fetch,
            Some(callbacks(url, opts)),
            Some(proxy_options(proxy.as_deref())),
        )
        .map_err(connect_err)?;
    let heads = connection.list().map_err(connect_err)?;
    let mut advertised = Advertised::default();
    let mut head_oid = None;
    for head in heads {
        let name = head.name();
        if name == "HEAD" {
            head_oid = Some(head.oid());
            if let Some(target) = head.symref_target() {
                advertised.head = Some(AdvertisedRef {
                    name: target.to_string(),
                    oid: head.oid(),
                });
            }
        } else if let Some(tag) = name.strip_suffix("^{}") {
            advertised.peeled.push(AdvertisedRef {
                name: tag.to_string(),
                oid: head.oid(),
            });
        } else {
            advertised.refs.push(AdvertisedRef {
                name: name.to_string(),
                oid: head.oid(),
            });
        }
    }
    // Old servers do not say which branch HEAD is: take the first branch at the same commit.
    if advertised.head.is_none()
        && let Some(oid) = head_oid.filter(|oid| !oid.is_zero())
    {
        let name = advertised
            .refs
            .iter()
            .find(|r| r.oid == oid && r.name.starts_with("refs/heads/"))
            .map_or_else(|| "HEAD".to_string(), |r| r.name.clone());
        advertised.head = Some(AdvertisedRef { name, oid });
    }
    Ok(advertised)
}

fn list_local(repo: &Repository) -> Result<Advertised, git2::Error> {
    let mut advertised = Advertised::default();
    for reference in repo.references()? {
        let reference = reference?;
        let (Some(name), Some(oid)) = (reference.name().ok(), reference.target()) else {
            continue;
        };
        if name.starts_with("refs/heads/") || name.starts_with("refs/tags/") {
            advertised.refs.push(AdvertisedRef {
                name: name.to_string(),
                oid,
            });
        }
    }
    if let Ok(head) = repo.head()
        && let Some(oid) = head.target()
    {
        advertised.head = Some(AdvertisedRef {
            name: head.name().unwrap_or("HEAD").to_string(),
            oid,
        });
    }
    Ok(advertised)
}

/// Fetches `refspecs` into `repo`. `shallow` asks for only the tip commit; transports that cannot
/// do that (the local one) fall back to a full fetch.
fn fetch(
    repo: &Repository,
    url: &str,
    refspecs: &[&str],
    opts: &GitOptions,
    shallow: bool,
) -> Result<(), String> {
    let proxy = env_proxy(url);
    let run = |depth: Option<i32>| -> Result<(), git2::Error> {
        let mut remote = repo.remote_anonymous(url)?;
        let mut fetch_options = FetchOptions::new();
        fetch_options
            .remote_callbacks(callbacks(url, opts))
            .proxy_options(proxy_options(proxy.as_deref()))
            .download_tags(AutotagOption::None)
            .update_fetchhead(false);
        if let Some(depth) = depth {
            fetch_options.depth(depth);
        }
        remote.fetch(refspecs, Some(&mut fetch_options), None)
    };
    let depth = if shallow {
        Some(1)
    } else if repo.is_shallow() {
        Some(UNSHALLOW)
    } else {
        None
    };
    match run(depth) {
        Ok(()) => Ok(()),
        Err(_) if shallow => {
            run(repo.is_shallow().then_some(UNSHALLOW)).map_err(|e| scrub(e.message(), url))
        }
        Err(e) => Err(scrub(e.message(), url)),
    }
}

fn fetch_error(url: &str, reference: &str, message: String) -> GitError {
    GitError::Fetch {
        url: url.to_string(),
        reference: reference.to_string(),
        message,
    }
}

fn peel_to_commit(repo: &Repository, oid: Oid) -> Result<Oid, String> {
    repo.find_object(oid, None)
        .and_then(|object| object.peel_to_commit())
        .map(|commit| commit.id())
        .map_err(|e| e.message().to_string())
}

/// Credentials from the URL, else ssh-agent and the default ssh keys; never a prompt. libgit2
/// calls back again after each rejection, so a bounded number of tries ends with an error.
fn callbacks<'a>(url: &'a str, opts: &GitOptions) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    let verify_ssl = opts.verify_ssl;
    let mut attempts = 0;
    callbacks.credentials(move |_url, username_from_url, allowed| {
        attempts += 1;
        if attempts > 4 {
            return Err(git2::Error::from_str(
                "authentication failed (credentials were rejected)",
            ));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some((user, password)) = url_userpass(url) {
                return Cred::userpass_plaintext(&user, &password);
            }
            return Err(git2::Error::from_str(
                "the server asks for a user name and password: put a token in the URL (https://TOKEN@host/...)",
            ));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = username_from_url.unwrap_or("git");
            if attempts == 1 {
                return Cred::ssh_key_from_agent(user);
            }
            let home = dirs::home_dir().unwrap_or_default();
            for key in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                let private = home.join(".ssh").join(key);
                if private.exists() {
                    return Cred::ssh_key(user, None, &private, None);
                }
            }
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(username_from_url.unwrap_or("git"));
        }
        Err(git2::Error::from_str("no usable credentials"))
    });
    callbacks.certificate_check(move |_cert, _host| {
        Ok(if verify_ssl {
            CertificateCheckStatus::CertificatePassthrough
        } else {
            CertificateCheckStatus::CertificateOk
        })
    });
    callbacks
}

fn url_userpass(url: &str) -> Option<(String, String)> {
    let parsed = url::Url::parse(url).ok()?;
    let password = parsed.password()?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| s.to_string())
    };
    Some((decode(parsed.username()), decode(password)))
}

/// The proxy named by `HTTPS_PROXY`/`https_proxy` (`HTTP_PROXY`/`http_proxy` for plain-HTTP
/// remotes), if any: libgit2 itself only reads git's configuration.
fn env_proxy(url: &str) -> Option<String> {
    let names: &[&str] = if url.starts_with("http://") {
        &["HTTP_PROXY", "http_proxy"]
    } else if url.starts_with("https://") {
        &["HTTPS_PROXY", "https_proxy"]
    } else {
        return None;
    };
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

fn proxy_options(env_proxy: Option<&str>) -> ProxyOptions<'_> {
    let mut proxy = ProxyOptions::new();
    match env_proxy {
        Some(proxy_url) => proxy.url(proxy_url),
        None => proxy.auto(),
    };
    proxy
}

fn is_local_url(url: &str) -> bool {
    url.starts_with("file://") || url.starts_with('/')
}

/// A cache directory name that is stable for a URL, whatever credentials it carries.
fn mirror_dir_name(url: &str) -> String {
    let without_credentials = match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            parsed.to_string()
        }
        Err(_) => url.to_string(),
    };
    let digest = hex::encode(Sha256::digest(
        without_credentials.trim_end_matches('/').as_bytes(),
    ));
    let tail: String = without_credentials
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect();
    format!("{tail}-{}.git", &digest[..16])
}

fn is_safe_entry_name(name: &str) -> bool {
    !(name.is_empty()
        || name == "."
        || name == ".."
        || name == ".git"
        || name.contains(['/', '\0']))
}

fn create_dir_0755(path: &Path) -> std::io::Result<()> {
    fs::create_dir(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

fn write_entry(path: &Path, filemode: i32, content: &[u8]) -> std::io::Result<()> {
    const GIT_SYMLINK: i32 = 0o120000;
    const GIT_EXECUTABLE: i32 = 0o100755;
    if filemode == GIT_SYMLINK {
        let target = std::str::from_utf8(content).map_err(std::io::Error::other)?;
        return symlink(target, path);
    }
    let mut file = fs::File::create(path)?;
    file.write_all(content)?;
    let mode = if filemode == GIT_EXECUTABLE {
        0o755
    } else {
        0o644
    };
    file.set_permissions(fs::Permissions::from_mode(mode))
}

/// Holds an exclusive lock on `path` (created if needed) until dropped.
fn lock_file(path: &Path) -> std::io::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    file.lock()?;
    Ok(file)
}

fn set_timeouts_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: called once, before any other libgit2 operation of this process starts.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(CONNECT_TIMEOUT_MS);
            let _ = git2::opts::set_server_timeout_in_milliseconds(IO_TIMEOUT_MS);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advertised(names: &[&str]) -> Advertised {
        let oid = Oid::from_str("1111111111111111111111111111111111111111").unwrap();
        Advertised {
            head: Some(AdvertisedRef {
                name: "refs/heads/main".into(),
                oid,
            }),
            refs: names
                .iter()
                .map(|n| AdvertisedRef {
                    name: n.to_string(),
                    oid,
                })
                .collect(),
            peeled: Vec::new(),
        }
    }

    #[test]
    fn semver_reference_prefers_v_tag() {
        let refs = advertised(&["refs/tags/1.2.0", "refs/tags/v1.2.0"]);
        let found = resolve_ref(&refs, Some("1.2.0")).ok().unwrap();
        assert_eq!(found.ref_name, "refs/tags/v1.2.0");
        assert_eq!(found.shown_name, "v1.2.0");
    }

    #[test]
    fn literal_v_tag_and_branch_resolve() {
        let refs = advertised(&["refs/tags/v1.2.3", "refs/heads/feature"]);
        assert_eq!(
            resolve_ref(&refs, Some("v1.2.3")).ok().unwrap().ref_name,
            "refs/tags/v1.2.3"
        );
        assert_eq!(
            resolve_ref(&refs, Some("feature")).ok().unwrap().ref_name,
            "refs/heads/feature"
        );
    }

    #[test]
    fn no_reference_means_head() {
        let found = resolve_ref(&advertised(&[]), None).ok().unwrap();
        assert_eq!(found.ref_name, "refs/heads/main");
    }

    #[test]
    fn missing_reference_lists_versions_in_semver_order() {
        let refs = advertised(&[
            "refs/tags/v1.10.0",
            "refs/tags/v1.2.0",
            "refs/tags/v1.9.1",
            "refs/tags/nightly",
            "refs/heads/main",
        ]);
        let err = match resolve_ref(&refs, Some("2.0.0")) {
            Err(e) => e.into_error("https://h/r", Some("2.0.0"), &refs),
            Ok(_) => panic!("2.0.0 must not resolve"),
        };
        let text = err.to_string();
        assert!(
            text.contains("versions that exist: v1.2.0, v1.9.1, v1.10.0"),
            "{text}"
        );
        assert!(text.contains("branches: main"), "{text}");
    }

    #[test]
    fn mirror_name_ignores_credentials() {
        assert_eq!(
            mirror_dir_name("https://u:secret@host/org/pack.git"),
            mirror_dir_name("https://host/org/pack.git")
        );
        assert!(mirror_dir_name("https://host/org/pack.git").starts_with("pack-"));
        assert!(!mirror_dir_name("https://u:secret@host/org/pack.git").contains("secret"));
    }

    #[test]
    fn unsafe_tree_entry_names_are_refused() {
        for bad in ["..", ".", ".git", "a/b", ""] {
            assert!(!is_safe_entry_name(bad), "{bad}");
        }
        assert!(is_safe_entry_name("actions"));
    }

    #[test]
    fn sha_detection() {
        assert!(looks_like_sha("abc1234"));
        assert!(!looks_like_sha("main"));
        assert!(!looks_like_sha("abc"));
    }
}

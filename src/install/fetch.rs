//! Fetching one pack spec into a staging directory and reading its pack.yaml.
//!
//! Whatever the source (Exchange name, git URL, local directory), the result is the same: the
//! pack's files in a transaction's staging directory, its validated manifest and name, and the
//! facts its pin records (source, ref, commit or content digest) that decide whether a
//! re-install can be skipped.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::install::place::{Targets, Transaction};
use crate::pack::manifest::PackManifest;
use crate::pack::name::PackName;
use crate::pack::spec::{PackSource, PackSpec};
use crate::pack::symlinks;
use crate::redact::{redact_url, scrub};
use crate::source::git::{self, GitOptions, ResolvedCommit};
use crate::source::index::{IndexOptions, PackIndex};
use crate::source::local::{self, LocalKind};

/// What every fetch of a run shares: the index (loaded once, on first need) and git settings.
pub struct FetchContext {
    pub index_options: IndexOptions,
    pub git: GitOptions,
    pub keep_git: bool,
    pub force: bool,
    pub st2_version: Option<semver::Version>,
    index: OnceCell<Result<Arc<PackIndex>, String>>,
}

impl FetchContext {
    pub fn new(
        index_options: IndexOptions,
        git: GitOptions,
        keep_git: bool,
        force: bool,
        st2_version: Option<semver::Version>,
    ) -> FetchContext {
        FetchContext {
            index_options,
            git,
            keep_git,
            force,
            st2_version,
            index: OnceCell::new(),
        }
    }

    async fn index(&self) -> Result<Arc<PackIndex>, String> {
        self.index
            .get_or_init(|| async {
                PackIndex::load(&self.index_options)
                    .await
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .await
            .clone()
    }
}

/// A pack whose files sit in staging, ready for its virtualenv and the commit.
#[derive(Debug)]
pub struct FetchedPack {
    pub name: PackName,
    pub manifest: PackManifest,
    pub txn: Transaction,
    /// The source as the user could type it again, credentials removed.
    pub source: String,
    pub reference: Option<String>,
    pub commit: Option<String>,
    pub content_digest: Option<String>,
    /// The spec asked for a particular version or ref (rather than "whatever is current").
    pub pinned: bool,
    pub warnings: Vec<String>,
}

/// Fetches `spec` into a new transaction's staging directory. On error the staging is removed.
pub async fn fetch_pack(
    ctx: &FetchContext,
    targets: &Targets,
    spec: &PackSpec,
) -> Result<FetchedPack, String> {
    let txn = Transaction::begin(targets).map_err(|e| e.to_string())?;
    let staged = txn.staged_pack();
    let fetched = match fetch_into(ctx, spec, &staged).await {
        Ok(origin) => refuse_escaping_links(&staged).await.map(|()| origin),
        Err(message) => Err(message),
    };
    match fetched {
        Ok(origin) => match read_manifest(ctx, &staged).map_err(|m| origin.relabel(&m, &staged)) {
            Ok((manifest, name, mut warnings)) => {
                warnings.extend(origin.warnings);
                Ok(FetchedPack {
                    name,
                    manifest,
                    txn,
                    source: origin.source,
                    reference: origin.reference,
                    commit: origin.commit,
                    content_digest: origin.content_digest,
                    pinned: spec.reference.is_some(),
                    warnings,
                })
            }
            Err(message) => {
                let _ = txn.abandon();
                Err(message)
            }
        },
        Err(message) => {
            let _ = txn.abandon();
            Err(message)
        }
    }
}

/// What a fetch of a spec would record of where the pack comes from (its pin's source, ref,
/// commit or content digest), found without fetching the pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedOrigin {
    pub source: String,
    pub reference: Option<String>,
    pub commit: Option<String>,
    pub content_digest: Option<String>,
}

/// What [`fetch_pack`] would record of `spec`'s origin, as cheaply as it can be known: a remote
/// git ref is asked of the remote (no object fetched), a local repository's ref read from it, a
/// directory copied as it is hashed in place. `Ok(None)` when only fetching would tell (an
/// abbreviated commit id on a remote).
pub async fn resolve_origin(
    ctx: &FetchContext,
    spec: &PackSpec,
) -> Result<Option<ResolvedOrigin>, String> {
    let remote = |url: String, reference: Option<String>| async move {
        let git_options = ctx.git.clone();
        let owned_url = url.clone();
        let resolved =
            blocking(move || git::resolve_remote(&owned_url, reference.as_deref(), &git_options))
                .await?
                .map_err(|e| scrub(&e.to_string(), &url))?;
        Ok::<_, String>(resolved.map(|(commit, matched_ref)| ResolvedOrigin {
            source: redact_url(&url),
            reference: Some(matched_ref),
            commit: Some(commit),
            content_digest: None,
        }))
    };
    let local = |path: std::path::PathBuf, reference: Option<String>| async move {
        let kind = local::classify(&path).map_err(|e| e.to_string())?;
        let source = path.display().to_string();
        let copy_as_is =
            kind == LocalKind::Plain || (kind == LocalKind::WorkTree && reference.is_none());
        if copy_as_is {
            if reference.is_some() {
                return Ok(None);
            }
            let digest = blocking(move || local::tree_digest(&path))
                .await?
                .map_err(|e| e.to_string())?;
            return Ok(Some(ResolvedOrigin {
                source,
                reference: None,
                commit: None,
                content_digest: Some(digest),
            }));
        }
        let resolved = blocking(move || git::resolve_local(&path, reference.as_deref()))
            .await?
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(Some(ResolvedOrigin {
            source,
            reference: Some(resolved.matched_ref),
            commit: Some(resolved.commit),
            content_digest: None,
        }))
    };
    match &spec.source {
        PackSource::Exchange { name } => {
            let (url, reference) = exchange_repo(ctx, name, spec).await?;
            remote(url, Some(reference)).await
        }
        PackSource::Git { url } => match plain_directory_of_file_url(url) {
            Some(path) => local(path, spec.reference.clone()).await,
            None => remote(url.clone(), spec.reference.clone()).await,
        },
        PackSource::Local { path } => local(path.clone(), spec.reference.clone()).await,
    }
}

/// The repository of Exchange pack `name`, and the ref `spec` asks for (its version in the
/// index when none).
async fn exchange_repo(
    ctx: &FetchContext,
    name: &str,
    spec: &PackSpec,
) -> Result<(String, String), String> {
    let index = ctx.index().await?;
    let Some(entry) = index.get(name) else {
        return Err(unknown_pack_message(name, &index));
    };
    let reference = spec
        .reference
        .clone()
        .unwrap_or_else(|| entry.version.clone());
    Ok((entry.repo_url.clone(), reference))
}

/// Where the files came from.
struct Origin {
    source: String,
    reference: Option<String>,
    commit: Option<String>,
    content_digest: Option<String>,
    warnings: Vec<String>,
}

impl Origin {
    /// Rewrites paths inside staging in `message` to where the user can find the file:
    /// `<source>@<ref>/pack.yaml` rather than a temporary directory.
    fn relabel(&self, message: &str, staged: &Path) -> String {
        let label = match &self.reference {
            Some(reference) => format!("{}@{reference}", self.source),
            None => self.source.trim_end_matches('/').to_string(),
        };
        message.replace(&staged.display().to_string(), &label)
    }
}

async fn fetch_into(ctx: &FetchContext, spec: &PackSpec, dest: &Path) -> Result<Origin, String> {
    match &spec.source {
        PackSource::Exchange { name } => {
            let (url, reference) = exchange_repo(ctx, name, spec).await?;
            fetch_git(ctx, &url, Some(reference), dest).await
        }
        // Upstream also accepts file:// for a plain directory (its builder image documents
        // `PACKS=file:///tmp/mypack`): that is copied as it is, like a local path.
        PackSource::Git { url } => match plain_directory_of_file_url(url) {
            Some(path) => fetch_local(ctx, &path, spec.reference.clone(), dest).await,
            None => fetch_git(ctx, url, spec.reference.clone(), dest).await,
        },
        PackSource::Local { path } => fetch_local(ctx, path, spec.reference.clone(), dest).await,
    }
}

/// The directory a `file://` URL names, when it is a directory without git.
fn plain_directory_of_file_url(url: &str) -> Option<std::path::PathBuf> {
    let path = url::Url::parse(url).ok()?.to_file_path().ok()?;
    (local::classify(&path).ok()? == LocalKind::Plain).then_some(path)
}

fn unknown_pack_message(name: &str, index: &PackIndex) -> String {
    if let Some(skipped) = index.skipped_reason(name) {
        return format!(
            "pack {name:?} is in the index {} but unusable there: {}",
            skipped.source_index, skipped.reason
        );
    }
    let suggestions = index.suggest(name);
    let hint = if suggestions.is_empty() {
        "check the name, or install it from its git URL instead".to_string()
    } else {
        format!("did you mean: {}?", suggestions.join(", "))
    };
    format!(
        "pack {name:?} is not in the StackStorm Exchange index ({} packs)\n  {hint}",
        index.len()
    )
}

async fn fetch_git(
    ctx: &FetchContext,
    url: &str,
    reference: Option<String>,
    dest: &Path,
) -> Result<Origin, String> {
    let git_options = ctx.git.clone();
    let owned_url = url.to_string();
    let wanted = reference.clone();
    let resolved = blocking(move || git::fetch_remote(&owned_url, wanted.as_deref(), &git_options))
        .await?
        .map_err(|e| scrub(&e.to_string(), url))?;
    let warnings = export(ctx, &resolved, url, dest).await?;
    Ok(Origin {
        source: redact_url(url),
        reference: Some(resolved.matched_ref),
        commit: Some(resolved.commit),
        content_digest: None,
        warnings,
    })
}

async fn fetch_local(
    ctx: &FetchContext,
    path: &Path,
    reference: Option<String>,
    dest: &Path,
) -> Result<Origin, String> {
    let kind = local::classify(path).map_err(|e| e.to_string())?;
    let source = path.display().to_string();
    let copy_as_is =
        kind == LocalKind::Plain || (kind == LocalKind::WorkTree && reference.is_none());
    if copy_as_is {
        if reference.is_some() {
            return Err(format!(
                "{source} is not a git repository, so it has no ref {:?} to check out\n  drop the =ref to install the directory as it is",
                reference.unwrap_or_default()
            ));
        }
        let (from, to) = (path.to_path_buf(), dest.to_path_buf());
        let digest = blocking(move || {
            local::copy_tree(&from, &to)?;
            local::tree_digest(&to)
        })
        .await?
        .map_err(|e| e.to_string())?;
        return Ok(Origin {
            source,
            reference: None,
            commit: None,
            content_digest: Some(digest),
            warnings: Vec::new(),
        });
    }
    let repo_path = path.to_path_buf();
    let resolved = blocking(move || git::resolve_local(&repo_path, reference.as_deref()))
        .await?
        .map_err(|e| e.to_string())?;
    let warnings = export(ctx, &resolved, &source, dest).await?;
    Ok(Origin {
        source,
        reference: Some(resolved.matched_ref),
        commit: Some(resolved.commit),
        content_digest: None,
        warnings,
    })
}

async fn export(
    ctx: &FetchContext,
    resolved: &ResolvedCommit,
    url: &str,
    dest: &Path,
) -> Result<Vec<String>, String> {
    let (repo, commit, to, origin) = (
        resolved.repo.clone(),
        resolved.commit.clone(),
        dest.to_path_buf(),
        url.to_string(),
    );
    if ctx.keep_git {
        blocking(move || git::clone_at_commit(&repo, &commit, &to, &origin).map(|()| Vec::new()))
            .await?
            .map_err(|e| e.to_string())
    } else {
        blocking(move || git::export_commit(&repo, &commit, &to))
            .await?
            .map_err(|e| e.to_string())
    }
}

/// Refuses a pack with a symlink that leads out of it, before anything reads a file of the pack:
/// reading through such a link (pack.yaml, requirements, bytecode compilation) would take the
/// build machine's files into the install and the image.
async fn refuse_escaping_links(staged: &Path) -> Result<(), String> {
    let root = staged.to_path_buf();
    let found = blocking(move || symlinks::escaping_links(&root))
        .await?
        .map_err(|e| format!("cannot read the pack's symlinks: {e}"))?;
    if found.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = found
        .iter()
        .map(|l| format!("  {} -> {}", l.link.display(), l.target.display()))
        .collect();
    Err(format!(
        "the pack holds {} that {} out of the pack:\n{}\n  a pack may only link to its own \
         files (the installer never reads the build machine's files through a pack, and in the \
         cluster the link would point elsewhere): replace the link with the file, or link to a \
         path inside the pack, relative to the link",
        if found.len() == 1 {
            "a symlink"
        } else {
            "symlinks"
        },
        if found.len() == 1 { "leads" } else { "lead" },
        listed.join("\n")
    ))
}

fn read_manifest(
    ctx: &FetchContext,
    dir: &Path,
) -> Result<(PackManifest, PackName, Vec<String>), String> {
    let manifest = PackManifest::load(dir).map_err(|e| e.to_string())?;
    let name = manifest.pack_name().map_err(|e| e.to_string())?;
    let warnings = manifest
        .check_compat(ctx.st2_version.as_ref(), ctx.force)
        .map_err(|e| e.to_string())?;
    Ok((manifest, name, warnings))
}

/// Runs blocking work (libgit2, file copies) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("internal error: a worker thread failed: {e}"))
}

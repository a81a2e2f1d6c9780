//! The install engine shared by `st2-pack-install` and `st2pack install`/`build`.
//!
//! A run goes: probe the interpreter, take the cache's shared lock and the install lock, recover
//! anything a killed run left, fetch every requested pack and its dependencies into staging,
//! choose one version per pack, build the virtualenvs concurrently, then commit each pack
//! atomically, dependencies first.

mod engine;
pub mod fetch;
pub mod lock;
pub mod modes;
pub mod place;
pub mod resolve;
pub mod venv;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use engine::{
    InstallError, Resolution, ResolvedPack, install, python_info, resolve_packs, runtime_pin,
    venv_spec,
};

use crate::cache::Cache;
use crate::pack::pin::VirtualenvPin;
use crate::progress::Progress;
use crate::source::index::IndexOptions;
use place::Targets;
use venv::{Installer, VenvRuntime};

/// Everything an install run needs to know, already resolved from flags, st2.conf and defaults.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub targets: Targets,
    /// Where the packs will be found when used: differs from `targets` when installing into an
    /// image root that is mounted elsewhere (`st2pack build`). Bytecode and scripts refer to it.
    pub packs_runtime_dir: PathBuf,
    pub virtualenvs_runtime_dir: PathBuf,
    pub python: PathBuf,
    /// Who the virtualenvs are built for: `python` itself, or a target runtime.
    pub runtime: VenvRuntime,
    /// Keep pip and wheel in the virtualenvs (`--keep-pip`; always for installs on a host).
    pub keep_pip: bool,
    pub installer: Installer,
    pub index: IndexOptions,
    /// Git mirrors, built virtualenvs and bytecode; its shared lock is held for the run.
    pub cache: Cache,
    pub verify_ssl: bool,
    pub force: bool,
    pub skip_dependencies: bool,
    pub keep_git: bool,
    pub base_requirements: bool,
    pub system_site_packages: bool,
    pub st2_site_packages: Option<PathBuf>,
    pub wheelhouse: Option<PathBuf>,
    /// Let packs' requirements set index and trust options (see `pack::requirements::Policy`).
    pub allow_pack_index_options: bool,
    /// Install wheels only: nothing is built from source.
    pub only_binary: bool,
    pub st2_version: Option<semver::Version>,
    pub jobs: usize,
    pub lock_timeout: Duration,
    /// Where the run reports what it is doing.
    pub progress: Progress,
    /// Install exactly what a lock file fixed, by pack name (see `crate::lockfile`): every
    /// pack fetched must be in it, at its commit or content, and its virtualenv gets the locked
    /// requirements, hash-checked, instead of resolving the pack's own.
    pub locked: Option<Arc<BTreeMap<String, LockedPack>>>,
    /// Virtualenvs that exist already elsewhere (layers of a `--cache-from` image), by pack
    /// name: a pack whose virtualenv would have one of these pins gets none built; its
    /// virtualenv directory is left empty and its outcome says `virtualenv_elsewhere`.
    pub virtualenvs_elsewhere: Arc<BTreeMap<String, Vec<VirtualenvPin>>>,
}

/// What a lock file fixed of one pack, as the engine enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPack {
    /// The ref recorded in the pin (the tag or branch that was locked, even if it moved since).
    pub reference: Option<String>,
    pub commit: Option<String>,
    pub content_digest: Option<String>,
    /// A requirements file of exact versions with `--hash` options: seeds, base requirement and
    /// the pack's requirements, installed with `--require-hashes`.
    pub requirements: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Installed,
    /// Same source, ref, commit, requirements and interpreter as the install already in place:
    /// skipped.
    Unchanged,
    Failed,
}

/// What happened to one pack (or to one spec that never became a pack).
#[derive(Debug, Clone, Serialize)]
pub struct PackOutcome {
    /// The spec as typed (credentials removed).
    pub spec: String,
    /// `command line`, or the packs whose `dependencies` asked for it.
    pub requested_by: Vec<String>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python_version: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub virtualenv_from_cache: bool,
    /// No virtualenv was built: one of [`InstallOptions::virtualenvs_elsewhere`] is the one it
    /// would be.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub virtualenv_elsewhere: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    pub packs_dir: PathBuf,
    pub virtualenvs_dir: PathBuf,
    pub packs: Vec<PackOutcome>,
    /// Things the run did on its own, such as rolling back an interrupted install.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl InstallReport {
    pub fn failures(&self) -> impl Iterator<Item = &PackOutcome> {
        self.packs.iter().filter(|p| p.status == Status::Failed)
    }

    pub fn all_succeeded(&self) -> bool {
        self.failures().next().is_none()
    }
}

/// Default number of concurrent fetches and virtualenv builds: the number of CPUs.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

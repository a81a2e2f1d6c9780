//! Making a lock: resolve every spec and its dependencies to a pack at a commit, as an install
//! would (the same engine, stopped before any virtualenv is built), then lock each pack's
//! virtualenv requirements for the runtime.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::join_all;
use thiserror::Error;
use tokio::sync::Semaphore;

use super::compile::{self, CompileError};
use super::format::{FORMAT, LockFile, LockSettings, LockedPackEntry};
use crate::install::place::Targets;
use crate::install::{self, InstallError, InstallOptions};
use crate::pack::spec::PackSpec;

#[derive(Debug, Error)]
pub enum MakeError {
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error("cannot create a work directory in {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", .0.join("\n"))]
    Packs(Vec<String>),
    #[error(transparent)]
    Compile(#[from] CompileError),
}

impl MakeError {
    pub fn exit_code(&self) -> i32 {
        match self {
            MakeError::Install(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// A lock of `specs` (and their dependencies) for the runtime and settings of `options`, with
/// the warnings to show. Nothing is installed: packs are fetched into a temporary directory.
pub async fn make(
    options: &InstallOptions,
    specs: &[PackSpec],
) -> Result<(LockFile, Vec<String>), MakeError> {
    let work = tempfile::Builder::new()
        .prefix("st2pack-lock-")
        .tempdir()
        .map_err(|source| MakeError::WorkDir {
            path: std::env::temp_dir(),
            source,
        })?;
    let options = InstallOptions {
        targets: Targets {
            packs_dir: work.path().join("packs"),
            virtualenvs_dir: work.path().join("virtualenvs"),
        },
        locked: None,
        virtualenvs_elsewhere: Default::default(),
        ..options.clone()
    };
    let runtime = install::runtime_pin(&options).await?;
    let python = install::python_info(&options).await?;
    let resolution = install::resolve_packs(&options, specs).await?;
    let mut problems: Vec<String> = resolution
        .failures
        .iter()
        .map(|(spec, message)| format!("{spec}: {}", message.replace('\n', "\n  ")))
        .collect();
    // Each pack's requirements are locked by its own uv run, as many at once as --jobs.
    let limit = Arc::new(Semaphore::new(options.jobs.max(1)));
    let locks = resolution.packs.into_iter().map(|resolved| {
        let (options, python, limit) = (&options, &python, limit.clone());
        async move {
            let _permit = limit.acquire().await;
            let pack = &resolved.pack;
            let name = pack.name.to_string();
            let requirements = pack.txn.staged_pack().join("requirements.txt");
            let spec = install::venv_spec(
                options,
                python,
                &name,
                requirements.is_file().then_some(requirements),
            );
            let locked = async {
                let pin = install::venv::venv_pin(&spec).map_err(|e| e.to_string())?;
                let (extra, seed_warnings) =
                    install::venv::extra_requirements(&spec).map_err(|e| e.to_string())?;
                let requirements = compile::compile(&name, &spec, &extra)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((pin, seed_warnings, requirements))
            }
            .await;
            (resolved, locked)
        }
    });
    let mut warnings = Vec::new();
    let mut packs = Vec::new();
    for (resolved, locked) in join_all(locks).await {
        let pack = resolved.pack;
        let name = pack.name.to_string();
        warnings.extend(pack.warnings.iter().map(|w| format!("{name}: {w}")));
        let _ = pack.txn.abandon();
        match locked {
            Ok((pin, seed_warnings, requirements)) => {
                warnings.extend(seed_warnings.iter().map(|w| format!("{name}: {w}")));
                packs.push(LockedPackEntry {
                    name,
                    version: pack.manifest.version.clone(),
                    source: pack.source.clone(),
                    reference: pack.reference.clone(),
                    commit: pack.commit.clone(),
                    content_digest: pack.content_digest.clone(),
                    specs: resolved.specs,
                    dependencies: resolved.dependencies,
                    requirements_digest: pin.requirements_digest,
                    requirements,
                });
            }
            Err(message) => problems.push(format!("pack {name}: {message}")),
        }
    }
    if !problems.is_empty() {
        return Err(MakeError::Packs(problems));
    }
    let mut lock = LockFile {
        format: FORMAT,
        requested: specs.iter().map(ToString::to_string).collect(),
        runtime,
        settings: LockSettings {
            base_requirements: options.base_requirements,
            keep_pip: options.keep_pip,
            only_binary: options.only_binary,
        },
        packs,
    };
    lock.normalize();
    Ok((lock, warnings))
}

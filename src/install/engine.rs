//! Orchestration of one install run (see the module docs of `install`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use futures_util::future::join_all;
use thiserror::Error;
use tokio::sync::Semaphore;

use super::fetch::{FetchContext, FetchedPack, fetch_pack};
use super::lock::{self, LockError};
use super::place::PlaceError;
use super::resolve::{Candidate, Decision, resolve};
use super::venv::{self, PythonInfo, VenvError, VenvRuntime, VenvSpec};
use super::{InstallOptions, InstallReport, PackOutcome, Status};
use crate::cache::{Bucket, Cache, CacheError};
use crate::pack::name::is_system_pack;
use crate::pack::pin::{PackPin, RuntimePin};
use crate::pack::spec::{PackSource, PackSpec};
use crate::progress::{Phase, Progress, Step};
use crate::source::git::GitOptions;

/// Errors that stop a run before any pack is attempted.
#[derive(Debug, Error)]
pub enum InstallError {
    #[error(transparent)]
    Python(VenvError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(
        "cannot prepare the install directories: {0}\n  check that they exist or can be created, and are writable"
    )]
    Place(#[from] PlaceError),
}

impl InstallError {
    /// Exit code: 2 for what the user can fix in the command line, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            InstallError::Python(_) => 2,
            _ => 1,
        }
    }
}

/// The run's cache, with its shared lock (waiting, and saying so, while a prune runs).
async fn open_cache(options: &InstallOptions) -> Result<Cache, InstallError> {
    let (cache, timeout) = (options.cache.clone(), options.lock_timeout);
    tokio::task::spawn_blocking(move || {
        let dir = cache.root().to_path_buf();
        cache.init(timeout, || {
            eprintln!(
                "waiting for `st2pack cache prune` to finish with the cache {}",
                dir.display()
            )
        })
    })
    .await
    .map_err(|e| CacheError::Io {
        action: "lock",
        path: options.cache.root().to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?
    .map_err(InstallError::from)
}

/// A fetched pack and the requests that install its dependencies, or why the fetch failed.
type FetchResult = Result<(FetchedPack, Vec<usize>), String>;

/// One request: a spec, and who asked for it.
struct Request {
    spec: PackSpec,
    requested_by: Vec<String>,
}

/// The runtime `options` build virtualenvs for, as pins record it.
pub async fn runtime_pin(options: &InstallOptions) -> Result<RuntimePin, InstallError> {
    Ok(match &options.runtime {
        VenvRuntime::Native => {
            let python = venv::probe_python(&options.python)
                .await
                .map_err(InstallError::Python)?;
            venv::native_runtime_pin(&python)
        }
        VenvRuntime::Target(build) => build.pin.clone(),
    })
}

/// What every run holds while it works: the cache's shared lock, the install lock of the packs
/// directory, and what recovering a killed run did.
struct RunGuard {
    cache: Cache,
    _lock: lock::InstallLock,
    notes: Vec<String>,
}

async fn begin_run(options: &InstallOptions) -> Result<RunGuard, InstallError> {
    // Held for the whole run, so that `st2pack cache prune` never removes what it uses.
    let cache = open_cache(options).await?;
    let targets = options.targets.clone();
    targets.create()?;
    let lock_dir = targets.packs_dir.clone();
    let timeout = options.lock_timeout;
    let lock = tokio::task::spawn_blocking(move || lock::acquire(&lock_dir, timeout))
        .await
        .map_err(|e| PlaceError {
            path: targets.packs_dir.clone(),
            message: e.to_string(),
        })??;
    // What recovery did is told once, by the report's notes (the end summary shows them).
    let notes = targets.recover()?;
    Ok(RunGuard {
        cache,
        _lock: lock,
        notes,
    })
}

/// Every request of a run fetched, and one pack chosen per name.
struct Fetched {
    specs_shown: Vec<String>,
    requested_by: Vec<Vec<String>>,
    fetched: Vec<FetchResult>,
    resolution: super::resolve::Resolution,
    /// Each request's dependencies, as the requests that actually install them.
    dependencies: Vec<Vec<usize>>,
}

async fn fetch_and_choose(
    options: &InstallOptions,
    cache: &Cache,
    specs: &[PackSpec],
    limit: &Arc<Semaphore>,
) -> Fetched {
    let context = FetchContext::new(
        options.index.clone(),
        GitOptions {
            cache_dir: cache.bucket(Bucket::Git),
            verify_ssl: options.verify_ssl,
        },
        options.keep_git,
        options.force,
        options.st2_version.clone(),
    );
    let (requests, fetched) = fetch_all(options, &context, specs, limit, &options.progress).await;
    let specs_shown: Vec<String> = requests.iter().map(|r| r.spec.to_string()).collect();
    let requested_by: Vec<Vec<String>> = requests.iter().map(|r| r.requested_by.clone()).collect();
    let candidates: Vec<Result<Candidate, String>> = fetched
        .iter()
        .map(|f| match f {
            Ok((pack, deps)) => Ok(candidate(pack, deps.clone())),
            Err(message) => Err(message.clone()),
        })
        .collect();
    let resolution = resolve(&specs_shown, &requested_by, &candidates);
    let dependencies: Vec<Vec<usize>> = fetched
        .iter()
        .map(|f| match f {
            Ok((_, deps)) => deps
                .iter()
                .map(|&d| match resolution.decisions[d] {
                    Decision::SameAs(target) => target,
                    _ => d,
                })
                .collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    Fetched {
        specs_shown,
        requested_by,
        fetched,
        resolution,
        dependencies,
    }
}

/// One pack a run would install, fetched into staging (its transaction is the caller's to
/// abandon), with every spec that asked for it.
#[derive(Debug)]
pub struct ResolvedPack {
    pub pack: FetchedPack,
    /// The specs (credentials removed) that resolved to this pack: on the command line or in
    /// a `dependencies:` list.
    pub specs: Vec<String>,
    /// The names of the packs it depends on.
    pub dependencies: Vec<String>,
}

/// What [`resolve_packs`] found: the packs, or why some could not be resolved.
#[derive(Debug)]
pub struct Resolution {
    pub packs: Vec<ResolvedPack>,
    /// `(spec, message)` of every request that failed.
    pub failures: Vec<(String, String)>,
}

/// Fetches and chooses the packs `specs` and their dependencies resolve to, as [`install`]
/// would, without building anything: what a lock file records.
pub async fn resolve_packs(
    options: &InstallOptions,
    specs: &[PackSpec],
) -> Result<Resolution, InstallError> {
    let guard = begin_run(options).await?;
    let limit = Arc::new(Semaphore::new(options.jobs.max(1)));
    let Fetched {
        specs_shown,
        fetched,
        resolution,
        dependencies,
        ..
    } = fetch_and_choose(options, &guard.cache, specs, &limit).await;
    let names: Vec<Option<String>> = fetched
        .iter()
        .map(|f| f.as_ref().ok().map(|(pack, _)| pack.name.to_string()))
        .collect();
    let mut chosen: Vec<(usize, FetchedPack)> = Vec::new();
    let mut failures = Vec::new();
    for (index, (decision, fetch)) in resolution.decisions.iter().zip(fetched).enumerate() {
        options.progress.done(&specs_shown[index]);
        match (decision, fetch) {
            (Decision::Chosen, Ok((pack, _))) => chosen.push((index, pack)),
            (Decision::SameAs(_), Ok((pack, _))) => {
                let _ = pack.txn.abandon();
            }
            (Decision::Failed(message), Ok((pack, _))) => {
                let _ = pack.txn.abandon();
                failures.push((specs_shown[index].clone(), message.clone()));
            }
            (Decision::Failed(message), Err(_)) => {
                failures.push((specs_shown[index].clone(), message.clone()));
            }
            (_, Err(message)) => failures.push((specs_shown[index].clone(), message)),
        }
    }
    let chosen_of = |request: usize| match resolution.decisions[request] {
        Decision::SameAs(target) => target,
        _ => request,
    };
    let packs = chosen
        .into_iter()
        .map(|(index, pack)| {
            let specs = (0..specs_shown.len())
                .filter(|&request| names[request].is_some() && chosen_of(request) == index)
                .map(|request| specs_shown[request].clone())
                .collect();
            let dependencies = dependencies[index]
                .iter()
                .filter_map(|&d| names[d].clone())
                .collect();
            ResolvedPack {
                pack,
                specs,
                dependencies,
            }
        })
        .collect();
    Ok(Resolution { packs, failures })
}

/// Installs `specs` and their dependencies. Per-pack failures are in the report; only problems
/// that prevent any install (no interpreter, lock timeout, unusable directories) are errors.
pub async fn install(
    options: &InstallOptions,
    specs: &[PackSpec],
) -> Result<InstallReport, InstallError> {
    let python = python_info(options).await?;
    let guard = begin_run(options).await?;
    let notes = guard.notes.clone();

    let progress = &options.progress;
    let _phase = progress.phase(Phase::Install);
    let limit = Arc::new(Semaphore::new(options.jobs.max(1)));
    let Fetched {
        specs_shown,
        requested_by,
        fetched,
        resolution,
        dependencies,
    } = fetch_and_choose(options, &guard.cache, specs, &limit).await;

    let mut outcomes: Vec<Option<PackOutcome>> = vec![None; specs_shown.len()];
    let mut chosen: HashMap<usize, FetchedPack> = HashMap::new();
    for (index, (decision, fetch)) in resolution.decisions.iter().zip(fetched).enumerate() {
        let base = blank_outcome(&specs_shown[index], &requested_by[index]);
        match (decision, fetch) {
            (Decision::Chosen, Ok((pack, _))) => {
                chosen.insert(index, pack);
            }
            (Decision::SameAs(_), Ok((pack, _))) => {
                let _ = pack.txn.abandon();
                progress.done(&specs_shown[index]);
            }
            (Decision::Failed(message), Ok((pack, _))) => {
                let outcome = outcome_of(&pack, base);
                let _ = pack.txn.abandon();
                outcomes[index] = Some(failed(outcome, message.clone()));
                progress.done(&specs_shown[index]);
            }
            (Decision::Failed(message), Err(_)) => {
                outcomes[index] = Some(failed(base, message.clone()));
            }
            (_, Err(message)) => {
                outcomes[index] = Some(failed(base, message));
            }
        }
    }

    // Build every chosen pack's virtualenv concurrently.
    let builds = chosen.into_iter().map(|(index, pack)| {
        let limit = limit.clone();
        let python = &python;
        let key = &specs_shown[index];
        async move {
            progress.step(key, Step::Waiting);
            let _permit = limit.acquire().await;
            let result = prepare(options, python, &pack, key).await;
            // Packs are placed one by one once every virtualenv is built.
            progress.step(key, Step::Waiting);
            (index, pack, result)
        }
    });
    let mut prepared: HashMap<usize, (FetchedPack, Result<Prepared, String>)> = join_all(builds)
        .await
        .into_iter()
        .map(|(index, pack, result)| (index, (pack, result)))
        .collect();

    // Commit, dependencies first; a pack whose dependency failed now is not committed either.
    for index in resolution.commit_order {
        let Some((pack, result)) = prepared.remove(&index) else {
            continue;
        };
        let base = outcome_of(
            &pack,
            blank_outcome(&specs_shown[index], &requested_by[index]),
        );
        let failed_dep = dependencies[index].iter().find(|&&d| {
            outcomes[d]
                .as_ref()
                .is_some_and(|o| o.status == Status::Failed)
        });
        let outcome = match (result, failed_dep) {
            (Ok(prepared), None) => {
                if matches!(prepared, Prepared::Build { .. }) {
                    progress.step(&specs_shown[index], Step::Placing);
                }
                finish(pack, prepared, base)
            }
            (Ok(_), Some(&dep)) => {
                let _ = pack.txn.abandon();
                failed(
                    base,
                    format!("its dependency {} could not be installed", specs_shown[dep]),
                )
            }
            (Err(message), _) => {
                let _ = pack.txn.abandon();
                failed(base, message)
            }
        };
        outcomes[index] = Some(outcome);
        progress.done(&specs_shown[index]);
    }

    Ok(InstallReport {
        packs_dir: options.targets.packs_dir.clone(),
        virtualenvs_dir: options.targets.virtualenvs_dir.clone(),
        packs: outcomes.into_iter().flatten().collect(),
        notes,
    })
}

/// Fetches the requested specs and, wave by wave, their dependencies. Each distinct spec is
/// fetched once, however many packs ask for it.
async fn fetch_all(
    options: &InstallOptions,
    context: &FetchContext,
    specs: &[PackSpec],
    limit: &Arc<Semaphore>,
    progress: &Progress,
) -> (Vec<Request>, Vec<FetchResult>) {
    let mut requests: Vec<Request> = Vec::new();
    let mut index_of: HashMap<String, usize> = HashMap::new();
    let mut add =
        |spec: &PackSpec, requester: &str, requests: &mut Vec<Request>| -> (usize, bool) {
            if let Some(&existing) = index_of.get(&spec.raw) {
                if !requests[existing]
                    .requested_by
                    .iter()
                    .any(|r| r == requester)
                {
                    requests[existing].requested_by.push(requester.to_string());
                }
                return (existing, false);
            }
            index_of.insert(spec.raw.clone(), requests.len());
            requests.push(Request {
                spec: spec.clone(),
                requested_by: vec![requester.to_string()],
            });
            (requests.len() - 1, true)
        };
    let mut wave: Vec<usize> = specs
        .iter()
        .filter_map(|s| {
            Some(add(s, "command line", &mut requests))
                .filter(|a| a.1)
                .map(|a| a.0)
        })
        .collect();
    let mut results: Vec<Option<FetchResult>> = Vec::new();
    while !wave.is_empty() {
        progress.expect(wave.len());
        results.resize_with(requests.len(), || None);
        let fetches = wave.iter().map(|&index| {
            let spec = requests[index].spec.clone();
            let limit = limit.clone();
            async move {
                let key = spec.to_string();
                let _permit = limit.acquire().await;
                progress.step(&key, Step::Fetching);
                let result = fetch_pack(context, &options.targets, &spec).await;
                match &result {
                    Ok(pack) => {
                        progress.named(&key, pack.name.as_str());
                        progress.step(&key, Step::Resolving);
                    }
                    Err(_) => progress.done(&key),
                }
                (index, result)
            }
        });
        let mut next = Vec::new();
        for (index, result) in join_all(fetches).await {
            let result = result.and_then(|pack| {
                let pack = match check_locked(options, pack) {
                    Ok(pack) => pack,
                    Err(message) => {
                        progress.done(&requests[index].spec.to_string());
                        return Err(message);
                    }
                };
                let mut deps = Vec::new();
                if !options.skip_dependencies {
                    let dep_specs = match pack.manifest.dependency_specs() {
                        Ok(specs) => specs,
                        Err(e) => {
                            let message = e.to_string();
                            let _ = pack.txn.abandon();
                            progress.done(&requests[index].spec.to_string());
                            return Err(message);
                        }
                    };
                    for dep in dep_specs.iter().filter(|d| !is_system_dependency(d)) {
                        let (dep_index, new) = add(dep, pack.name.as_str(), &mut requests);
                        deps.push(dep_index);
                        if new {
                            next.push(dep_index);
                        }
                    }
                }
                Ok((pack, deps))
            });
            results[index] = Some(result);
        }
        wave = next;
    }
    results.resize_with(requests.len(), || None);
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("internal error: request was never fetched".to_string())))
        .collect();
    (requests, results)
}

/// With a lock file, the fetched pack must be the locked one: same commit (or, for a directory,
/// same content); its pin then records the locked ref, even if that ref has moved since.
fn check_locked(options: &InstallOptions, mut pack: FetchedPack) -> Result<FetchedPack, String> {
    let Some(locked) = &options.locked else {
        return Ok(pack);
    };
    let refuse = |pack: FetchedPack, message: String| {
        let _ = pack.txn.abandon();
        Err(message)
    };
    let name = pack.name.to_string();
    let Some(entry) = locked.get(&name) else {
        let message = format!(
            "pack {name} from {} is not in the lock file\n  lock it (st2pack lock) or leave it out",
            pack.source
        );
        return refuse(pack, message);
    };
    if entry.commit.is_some() && pack.commit != entry.commit {
        let message = format!(
            "pack {name} from {} is at commit {}, but the lock file has {}\n  run st2pack lock again to take the new commit",
            pack.source,
            pack.commit.as_deref().unwrap_or("(none)"),
            entry.commit.as_deref().unwrap_or_default()
        );
        return refuse(pack, message);
    }
    if entry.content_digest.is_some() && pack.content_digest != entry.content_digest {
        let message = format!(
            "pack {name} in {} changed since it was locked (content {}, locked {})\n  run st2pack lock again to take the change",
            pack.source,
            pack.content_digest.as_deref().unwrap_or("(none)"),
            entry.content_digest.as_deref().unwrap_or_default()
        );
        return refuse(pack, message);
    }
    pack.reference = entry.reference.clone();
    Ok(pack)
}

/// The packs shipped with StackStorm count as present.
fn is_system_dependency(spec: &PackSpec) -> bool {
    matches!(&spec.source, PackSource::Exchange { name } if is_system_pack(name))
}

fn candidate(pack: &FetchedPack, deps: Vec<usize>) -> Candidate {
    let identity = pack
        .commit
        .clone()
        .or_else(|| pack.content_digest.clone())
        .unwrap_or_default();
    let describe = match (&pack.reference, &pack.commit) {
        (Some(reference), Some(commit)) => format!(
            "version {} ({reference}, commit {}) from {}",
            pack.manifest.version,
            &commit[..commit.len().min(12)],
            pack.source
        ),
        _ => format!("version {} from {}", pack.manifest.version, pack.source),
    };
    Candidate {
        name: pack.name.to_string(),
        identity,
        pinned: pack.pinned,
        describe,
        deps,
    }
}

/// A pack ready to commit: virtualenv built (or found unchanged in place).
enum Prepared {
    Build {
        python_version: String,
        from_cache: bool,
        /// No virtualenv was built: one that exists elsewhere is the same.
        elsewhere: bool,
        warnings: Vec<String>,
    },
    Unchanged {
        python_version: String,
    },
}

/// The virtualenv an install with `options` builds for pack `name`, with the interpreter
/// `python` and the pack's `requirements` file.
pub fn venv_spec(
    options: &InstallOptions,
    python: &PythonInfo,
    name: &str,
    requirements: Option<std::path::PathBuf>,
) -> VenvSpec {
    VenvSpec {
        python: python.clone(),
        installer: options.installer,
        final_dir: options.virtualenvs_runtime_dir.join(name),
        requirements,
        allow_pack_index_options: options.allow_pack_index_options,
        only_binary: options.only_binary,
        base_requirements: options.base_requirements,
        system_site_packages: options.system_site_packages,
        st2_site_packages: options.st2_site_packages.clone(),
        wheelhouse: options.wheelhouse.clone(),
        cache_dir: Some(options.cache.bucket(Bucket::Virtualenvs)),
        bytecode_cache: Some(options.cache.bucket(Bucket::Bytecode)),
        rebuild: options.force,
        runtime: options.runtime.clone(),
        keep_pip: options.keep_pip,
        locked_requirements: options
            .locked
            .as_ref()
            .and_then(|locked| locked.get(name))
            .map(|entry| entry.requirements.clone()),
    }
}

/// The interpreter an install with `options` builds virtualenvs with (probed, for a native
/// build).
pub async fn python_info(options: &InstallOptions) -> Result<PythonInfo, InstallError> {
    match &options.runtime {
        VenvRuntime::Native => venv::probe_python(&options.python)
            .await
            .map_err(InstallError::Python),
        VenvRuntime::Target(build) => Ok(build.python_info()),
    }
}

/// Builds the virtualenv of `pack` (reported to the progress as `shown`) in staging, unless the
/// install in place is the same.
async fn prepare(
    options: &InstallOptions,
    python: &PythonInfo,
    pack: &FetchedPack,
    shown: &str,
) -> Result<Prepared, String> {
    let name = pack.name.as_str();
    let staged = pack.txn.staged_pack();
    let requirements = staged.join("requirements.txt");
    let bytecode_cache = options.cache.bucket(Bucket::Bytecode);
    let spec = venv_spec(
        options,
        python,
        name,
        requirements.is_file().then_some(requirements),
    );
    let virtualenv = venv::venv_pin(&spec).map_err(|e| e.to_string())?;
    let pin = PackPin {
        name: name.to_string(),
        version: pack.manifest.version.clone(),
        source: pack.source.clone(),
        r#ref: pack.reference.clone(),
        commit: pack.commit.clone(),
        content_digest: pack.content_digest.clone(),
        virtualenv: Some(virtualenv),
    };
    let installed_pack = options.targets.packs_dir.join(name);
    let installed_venv = options.targets.virtualenvs_dir.join(name);
    // The same commit from another URL is installed again (see `PackPin::same_install_as`); its
    // virtualenv comes from the cache.
    let unchanged = !options.force
        && PackPin::read(&installed_pack).is_some_and(|old| old.same_install_as(&pin))
        && venv::is_intact(&installed_venv);
    if unchanged {
        if let Some(key) = pin.virtualenv_key() {
            venv::mark_cache_entry_used(&spec, key);
        }
        return Ok(Prepared::Unchanged {
            python_version: python.version.clone(),
        });
    }

    let elsewhere = pin.virtualenv.as_ref().is_some_and(|wanted| {
        wanted.key.is_some()
            && options
                .virtualenvs_elsewhere
                .get(name)
                .is_some_and(|pins| pins.contains(wanted))
    });
    let (python_version, from_cache, mut warnings) = if elsewhere {
        // Left empty, so that a later install in this root sees no virtualenv to keep.
        let staged_venv = pack.txn.staged_venv();
        std::fs::create_dir(&staged_venv).map_err(|e| format!("{}: {e}", staged_venv.display()))?;
        (python.version.clone(), false, Vec::new())
    } else {
        options.progress.step(shown, Step::BuildingVirtualenv);
        let built = venv::build_venv(&spec, &pack.txn.staged_venv())
            .await
            .map_err(|e| format!("virtualenv for pack {name} failed: {e}"))?;
        (built.python_version, built.from_cache, built.warnings)
    };
    keep_config(&installed_pack, &staged)
        .map_err(|e| format!("{}: {e}", installed_pack.display()))?;
    pin.write(&staged)
        .map_err(|e| format!("{}: {e}", staged.display()))?;
    // A pack's Python files are compiled like its virtualenv, so a read-only volume never needs
    // bytecode written at run time. Files that do not compile (Python 2 syntax in an old
    // action) only warn, as pip does.
    // Without an interpreter of the runtime's version, nothing is compiled: the virtualenv's
    // warning says what that costs.
    if let Some(bytecode_python) = spec.bytecode_python() {
        options.progress.step(shown, Step::CompilingBytecode);
        match venv::compile_bytecode(bytecode_python, &staged, Some(&bytecode_cache), &[]).await {
            Ok(compile_warnings) => warnings.extend(compile_warnings),
            Err(e) => warnings.push(format!("the pack's Python files were not compiled: {e}")),
        }
    }
    let pack_dir = staged.clone();
    tokio::task::spawn_blocking(move || super::modes::normalize(&pack_dir))
        .await
        .map_err(|e| format!("internal error: a worker thread failed: {e}"))?
        .map_err(|e| e.to_string())?;
    Ok(Prepared::Build {
        python_version,
        from_cache,
        elsewhere,
        warnings,
    })
}

/// Keeps the user's in-pack `config.yaml` from the previous install, unless the new version
/// ships its own (a symlink counts: it is never copied from nor written through).
fn keep_config(installed_pack: &Path, staged: &Path) -> std::io::Result<()> {
    let old = installed_pack.join("config.yaml");
    let new = staged.join("config.yaml");
    let old_is_file = std::fs::symlink_metadata(&old).is_ok_and(|m| m.is_file());
    if old_is_file && std::fs::symlink_metadata(&new).is_err() {
        std::fs::copy(&old, &new)?;
    }
    Ok(())
}

fn finish(pack: FetchedPack, prepared: Prepared, base: PackOutcome) -> PackOutcome {
    let name = pack.name.to_string();
    match prepared {
        Prepared::Unchanged { python_version } => {
            let _ = pack.txn.abandon();
            PackOutcome {
                status: Status::Unchanged,
                python_version: Some(python_version),
                ..base
            }
        }
        Prepared::Build {
            python_version,
            from_cache,
            elsewhere,
            warnings,
        } => match pack.txn.commit(&name) {
            Ok(()) => {
                let mut outcome = PackOutcome {
                    status: Status::Installed,
                    python_version: Some(python_version),
                    virtualenv_from_cache: from_cache,
                    virtualenv_elsewhere: elsewhere,
                    ..base
                };
                outcome.warnings.extend(warnings);
                outcome
            }
            Err(e) => failed(base, format!("could not move pack {name} into place: {e}")),
        },
    }
}

fn failed(base: PackOutcome, message: String) -> PackOutcome {
    PackOutcome {
        status: Status::Failed,
        error: Some(message),
        ..base
    }
}

fn blank_outcome(spec: &str, requested_by: &[String]) -> PackOutcome {
    PackOutcome {
        spec: spec.to_string(),
        requested_by: requested_by.to_vec(),
        status: Status::Failed,
        name: None,
        version: None,
        source: None,
        r#ref: None,
        commit: None,
        python_version: None,
        virtualenv_from_cache: false,
        virtualenv_elsewhere: false,
        error: None,
        warnings: Vec::new(),
    }
}

fn outcome_of(pack: &FetchedPack, base: PackOutcome) -> PackOutcome {
    PackOutcome {
        name: Some(pack.name.to_string()),
        version: Some(pack.manifest.version.clone()),
        source: Some(pack.source.clone()),
        r#ref: pack.reference.clone(),
        commit: pack.commit.clone(),
        warnings: pack.warnings.clone(),
        ..base
    }
}

//! The virtualenv engine: one virtualenv per pack, built fast, relocatable, cached.
//!
//! A venv is built in a staging directory that the caller later renames to its final path (so a
//! failed build never replaces a working venv). Building is: create the venv (uv or
//! `python -m venv`), install seeds + `six` + the pack's requirements in a single installer run,
//! add StackStorm's `.pth`, rewrite the staging path to the final path everywhere, and precompile
//! checked-hash bytecode (the venv is read-only at run time). The finished venv is then copied into
//! a cache keyed by everything that affects it, so the next build of the same pack is a copy.

mod bytecode;
mod cache;
mod error;
mod for_target;
mod installer;
mod python;
mod relocate;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use bytecode::compile_bytecode;
pub use error::VenvError;
pub use for_target::{NO_BYTECODE_WARNING, TargetBuild};
pub use installer::{BASE_REQUIREMENT, Installer};
pub use python::{PythonInfo, probe_python};

use crate::pack::pin::{InstallerPin, RuntimePin, VirtualenvPin};
use crate::pack::requirements::{Policy, Requirements};

use installer::Engine;

/// Everything that decides what a pack's virtualenv contains and where it will live.
#[derive(Debug, Clone)]
pub struct VenvSpec {
    pub python: PythonInfo,
    pub installer: Installer,
    /// Where the venv will be used, e.g. `/opt/stackstorm/virtualenvs/mypack`.
    pub final_dir: PathBuf,
    /// The pack's `requirements.txt`, at the root of the pack: the files it includes must be in
    /// that directory.
    pub requirements: Option<PathBuf>,
    /// Let the pack's requirements set index and trust options (`--allow-pack-index-options`).
    pub allow_pack_index_options: bool,
    /// Install wheels only, never build from source (`--only-binary`).
    pub only_binary: bool,
    /// Install [`BASE_REQUIREMENT`] like upstream (false = `--no-base-requirements`).
    pub base_requirements: bool,
    pub system_site_packages: bool,
    /// st2's own site-packages, made visible to the pack's venv through a `.pth` file.
    pub st2_site_packages: Option<PathBuf>,
    /// Offline: install from the wheels in this directory only.
    pub wheelhouse: Option<PathBuf>,
    /// Root of the built-venv cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Where compiled `.pyc` are kept for reuse; `None` compiles every file.
    pub bytecode_cache: Option<PathBuf>,
    /// Ignore a cache hit, rebuild and refresh the cache entry (`--force`).
    pub rebuild: bool,
    /// Who the virtualenv is built for: `python` itself, or a target runtime.
    pub runtime: VenvRuntime,
    /// Keep pip and wheel in the virtualenv (`st2-pack-install` does, as upstream; image
    /// builds leave them out unless `--keep-pip`).
    pub keep_pip: bool,
    /// A lock file's requirements for this virtualenv (exact versions with `--hash` options,
    /// seeds and base requirement included): installed with `--require-hashes` instead of
    /// resolving the seeds, the base requirement and `requirements`.
    pub locked_requirements: Option<String>,
}

/// Who a virtualenv is built for.
#[derive(Debug, Clone, Default)]
pub enum VenvRuntime {
    /// The interpreter building it ([`VenvSpec::python`]), which runs it.
    #[default]
    Native,
    /// A runtime whose interpreter is not the one building it.
    Target(Box<TargetBuild>),
}

impl VenvSpec {
    /// The interpreter that compiles bytecode for this virtualenv and its pack: the runtime's
    /// own version, or none.
    pub fn bytecode_python(&self) -> Option<&Path> {
        match &self.runtime {
            VenvRuntime::Native => Some(&self.python.path),
            VenvRuntime::Target(build) => build.bytecode_python.as_deref(),
        }
    }

    /// The runtime as the pin records it.
    pub fn runtime_pin(&self) -> RuntimePin {
        match &self.runtime {
            VenvRuntime::Native => native_runtime_pin(&self.python),
            VenvRuntime::Target(build) => build.pin.clone(),
        }
    }
}

/// The runtime of a virtualenv built by `python`, which runs it: no platform is named, the
/// interpreter accepts what it accepts.
pub fn native_runtime_pin(python: &PythonInfo) -> RuntimePin {
    RuntimePin {
        kind: "native".to_string(),
        python: format!("{}.{}", python.major, python.minor),
        interpreter: python.path.to_string_lossy().into_owned(),
        ..Default::default()
    }
}

/// What [`build_venv`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltVenv {
    /// The cache key of this venv (see [`venv_key`]).
    pub key: String,
    /// The interpreter's full version, e.g. `3.11.7`.
    pub python_version: String,
    /// `"uv"` or `"pip"`: the installer actually used.
    pub installer: &'static str,
    /// The venv was copied from the cache rather than installed.
    pub from_cache: bool,
    /// Things the user should know that did not stop the build (skipped seeds, files that do not
    /// byte-compile, a cache that could not be written).
    pub warnings: Vec<String>,
}

/// The name of the `.pth` file that adds st2's site-packages; sorted last, like upstream's, so the
/// pack's own packages win.
pub const ST2_PTH_FILE: &str = "zzzzzzzzzz__st2__.pth";

/// The hex sha256 of every input that affects the built venv: format and tool version, the
/// interpreter (path, real path and version), the installer actually used, seeds, base
/// requirement, site-packages options, final path, the requirements file (and the files it
/// includes with `-r`/`-c`), the wheelhouse listing and the index-related environment variables.
///
/// Reading the requirements refuses what a pack may not ask of the installer (see [`Policy`]).
pub fn venv_key(spec: &VenvSpec) -> Result<String, VenvError> {
    let engine = installer::resolve_engine(spec.installer, &spec.python)?;
    let spec = absolutized(spec)?;
    let requirements = read_requirements(&spec)?;
    cache::key_for(&spec, engine.name(), requirements.as_ref())
}

/// The digest of every input of [`venv_key`] but the pack's requirements files: what this
/// build's settings (interpreter, runtime, installer and its options, wheelhouse, index
/// variables, final path) make of a pack's virtualenv. `spec.requirements` is not read.
pub fn venv_settings_key(spec: &VenvSpec) -> Result<String, VenvError> {
    let engine = installer::resolve_engine(spec.installer, &spec.python)?;
    cache::settings_key_for(&absolutized(spec)?, engine.name())
}

/// What a pack's pin records of its virtualenv: the cache key (a digest of every input) and the
/// inputs a person or a lock file compares — interpreter, requirements digest, installer and its
/// settings.
pub fn venv_pin(spec: &VenvSpec) -> Result<VirtualenvPin, VenvError> {
    let engine = installer::resolve_engine(spec.installer, &spec.python)?;
    let absolute = absolutized(spec)?;
    let requirements = read_requirements(&absolute)?;
    let key = cache::key_for(&absolute, engine.name(), requirements.as_ref())?;
    Ok(VirtualenvPin {
        key: Some(key),
        python_version: spec.python.version.clone(),
        interpreter: Some(spec.python.path.to_string_lossy().into_owned()),
        requirements_digest: requirements.as_ref().map(requirements_digest),
        locked_requirements_digest: spec.locked_requirements.as_deref().map(|text| {
            use sha2::{Digest, Sha256};
            format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
        }),
        installer: Some(InstallerPin {
            engine: engine.name().to_string(),
            base_requirements: spec.base_requirements,
            system_site_packages: spec.system_site_packages,
            only_binary: spec.only_binary,
            offline_wheelhouse: spec.wheelhouse.is_some(),
        }),
        runtime: Some(spec.runtime_pin()),
    })
}

/// `sha256:` over every requirements file in reading order, each with its length, so moving
/// a line from one file to the next is a change too.
fn requirements_digest(requirements: &Requirements) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for file in &requirements.files {
        hasher.update((file.content.len() as u64).to_le_bytes());
        hasher.update(&file.content);
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The pack's requirements, read as the installer will read them; an error when they ask for
/// what the policy refuses, naming each file, line and option.
fn read_requirements(spec: &VenvSpec) -> Result<Option<Requirements>, VenvError> {
    let Some(path) = &spec.requirements else {
        return Ok(None);
    };
    let (Some(root), Some(file)) = (path.parent(), path.file_name()) else {
        return Err(invalid(
            "requirements file",
            path,
            "it must name a file in the pack",
        ));
    };
    let policy = Policy {
        allow_index_options: spec.allow_pack_index_options,
        only_binary: spec.only_binary,
    };
    let found =
        Requirements::read(root, Path::new(file), policy).map_err(|e| VenvError::Requirements {
            path: e.path,
            source: e.source,
        })?;
    let refused: Vec<String> = found.refusals().map(ToString::to_string).collect();
    if !refused.is_empty() {
        return Err(VenvError::RefusedRequirements { problems: refused });
    }
    Ok(Some(found))
}

/// What a virtualenv of `spec` gets besides the pack's requirements, as requirement lines: the
/// seeds (those the wheelhouse has, as a build takes them) and the base requirement. A lock file
/// locks them with the pack's requirements. Also returns the warnings of seeds left out.
pub fn extra_requirements(spec: &VenvSpec) -> Result<(Vec<String>, Vec<String>), VenvError> {
    let listing = match &spec.wheelhouse {
        Some(dir) => Some(installer::wheelhouse_listing(dir)?),
        None => None,
    };
    let (seeds, warnings) = installer::select_seeds(listing.as_deref(), None, spec.keep_pip);
    let mut lines: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
    if spec.base_requirements {
        lines.push(BASE_REQUIREMENT.to_string());
    }
    Ok((lines, warnings))
}

/// Checks the pack's requirements of `spec` against the policy (see [`read_requirements`]).
pub fn check_requirements(spec: &VenvSpec) -> Result<(), VenvError> {
    read_requirements(&absolutized(spec)?).map(|_| ())
}

/// A command for uv or pip with the environment every installer run gets (see `installer`):
/// no stray Python variables, no prompts, output captured.
pub fn sanitized_command(program: &Path, cwd: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    installer::sanitize(&mut command, cwd);
    command
}

/// Marks the cached virtualenv of `spec` (if any) as used now: an install that finds the same
/// virtualenv already in place still relies on the entry, so a prune by last use must keep it.
pub fn mark_cache_entry_used(spec: &VenvSpec, key: &str) {
    if let Some(dir) = &spec.cache_dir
        && cache::lookup(dir, key).is_some()
    {
        crate::cache::mark_used(&dir.join(key));
    }
}

/// uv on PATH, if there is one.
pub fn find_uv() -> Option<PathBuf> {
    python::find_on_path("uv".as_ref())
}

/// True if `dir` looks like a usable venv: `pyvenv.cfg` is there and `bin/python` resolves to an
/// existing executable.
pub fn is_intact(dir: &Path) -> bool {
    dir.join("pyvenv.cfg").is_file() && python::is_executable_file(&dir.join("bin").join("python"))
}

/// Builds the venv described by `spec` in `build_dir` (missing or empty) so that it works once
/// the caller renames `build_dir` to `spec.final_dir`. On error the caller removes `build_dir`.
pub async fn build_venv(spec: &VenvSpec, build_dir: &Path) -> Result<BuiltVenv, VenvError> {
    let spec = absolutized(spec)?;
    let build_dir =
        std::path::absolute(build_dir).map_err(|e| VenvError::io("resolve", build_dir, e))?;
    check_final_dir(&spec.final_dir)?;
    if let Some(dir) = &spec.st2_site_packages {
        check_st2_site_packages(dir)?;
    }
    let engine = installer::resolve_engine(spec.installer, &spec.python)?;
    let requirements = read_requirements(&spec)?;
    let key = cache::key_for(&spec, engine.name(), requirements.as_ref())?;
    prepare_build_dir(&build_dir)?;

    let mut warnings = Vec::new();
    let mut replace_entry = spec.rebuild;
    if !spec.rebuild
        && let Some(cache_dir) = spec.cache_dir.clone()
        && let Some(meta) = cache::lookup(&cache_dir, &key)
    {
        let restored = {
            let (cache_dir, key, build_dir) = (cache_dir.clone(), key.clone(), build_dir.clone());
            blocking(move || cache::restore(&cache_dir, &key, &build_dir)).await
        };
        match restored {
            Ok(()) => {
                return Ok(BuiltVenv {
                    key,
                    python_version: spec.python.version.clone(),
                    installer: engine.name(),
                    from_cache: true,
                    warnings: meta.warnings,
                });
            }
            // A damaged or concurrently replaced entry: build instead.
            Err(e) => {
                warnings.push(format!(
                    "the cached virtualenv in {} could not be used ({e}); building it instead",
                    cache_dir.join(&key).display()
                ));
                clear_dir(&build_dir)?;
                replace_entry = true;
            }
        }
    }

    let built_warnings = match &spec.runtime {
        VenvRuntime::Native => build_fresh(&engine, &spec, &build_dir).await?,
        VenvRuntime::Target(build) => for_target::build(&engine, &spec, build, &build_dir).await?,
    };
    let entry = cache::EntryMeta {
        key: key.clone(),
        python_version: spec.python.version.clone(),
        installer: engine.name().to_string(),
        warnings: built_warnings.clone(),
    };
    warnings.extend(built_warnings);
    if let Some(cache_dir) = spec.cache_dir.clone() {
        let (build_dir, replace) = (build_dir.clone(), replace_entry);
        let stored = blocking(move || cache::store(&cache_dir, &build_dir, &entry, replace)).await;
        if let Err(e) = stored {
            warnings.push(format!(
                "the virtualenv was built but could not be cached ({e}); the next build will not \
                 be faster"
            ));
        }
    }
    Ok(BuiltVenv {
        key,
        python_version: spec.python.version.clone(),
        installer: engine.name(),
        from_cache: false,
        warnings,
    })
}

/// Create, install, add the st2 `.pth`, relocate, compile. Returns the build's warnings.
async fn build_fresh(
    engine: &Engine,
    spec: &VenvSpec,
    build_dir: &Path,
) -> Result<Vec<String>, VenvError> {
    let listing = match &spec.wheelhouse {
        Some(dir) => Some(installer::wheelhouse_listing(dir)?),
        None => None,
    };
    installer::create(engine, spec, build_dir).await?;
    let site = site_packages(build_dir, &spec.python);
    let (seeds, mut warnings) = match &spec.locked_requirements {
        // The lock file chose the seeds.
        Some(_) => (Vec::new(), Vec::new()),
        None => installer::select_seeds(listing.as_deref(), site.as_deref(), spec.keep_pip),
    };
    installer::install(engine, spec, build_dir, &seeds).await?;
    if !spec.keep_pip && *engine == Engine::Pip {
        installer::remove_pip(spec, build_dir).await?;
    }
    if let Some(st2) = &spec.st2_site_packages {
        write_st2_pth(build_dir, &spec.python, st2)?;
    }
    if build_dir != spec.final_dir {
        let (dir, to) = (build_dir.to_path_buf(), spec.final_dir.clone());
        warnings.extend(blocking(move || relocate::relocate(&dir, &dir, &to)).await?);
    }
    // The base interpreter compiles exactly as the venv's would, and names itself better in
    // messages than a staging path.
    let lib = build_dir.join("lib");
    // pip is a third of a virtualenv's modules and never runs in the cluster (the volumes are
    // read-only, so nothing is installed there), so its bytecode is not worth the time.
    let bytecode = spec.bytecode_cache.as_deref();
    warnings.extend(compile_bytecode(&spec.python.path, &lib, bytecode, &["pip"]).await?);
    // Anything outside lib/ (e.g. bin/__pycache__) must not keep timestamp .pyc either.
    let dir = build_dir.to_path_buf();
    blocking(move || bytecode::remove_stale_pyc(&dir)).await?;
    let dir = build_dir.to_path_buf();
    blocking(move || {
        crate::install::modes::normalize(&dir)
            .map_err(|e| VenvError::io("set the mode of", e.path, e.source))
    })
    .await?;
    Ok(warnings)
}

/// The venv's site-packages directory.
fn site_packages(venv: &Path, python: &PythonInfo) -> Option<PathBuf> {
    let expected = venv
        .join("lib")
        .join(format!("python{}.{}", python.major, python.minor))
        .join("site-packages");
    if expected.is_dir() {
        return Some(expected);
    }
    // Other implementations name the directory differently (e.g. `pypy3.10`).
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
}

/// Writes the `.pth` through which st2's site-packages (and the `.pth` files in it) become
/// visible to the pack's venv, after the venv's own packages — as upstream st2 does.
fn write_st2_pth(venv: &Path, python: &PythonInfo, st2: &Path) -> Result<(), VenvError> {
    let site = site_packages(venv, python).ok_or_else(|| {
        VenvError::io(
            "find site-packages in",
            venv,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no lib/python*/site-packages"),
        )
    })?;
    let path = site.join(ST2_PTH_FILE);
    std::fs::write(&path, st2_pth_content(st2)?).map_err(|e| VenvError::io("write", &path, e))
}

fn st2_pth_content(st2: &Path) -> Result<String, VenvError> {
    let dir = st2
        .to_str()
        .ok_or_else(|| invalid("st2 site-packages", st2, "it is not UTF-8"))?;
    let literal = dir.replace('\\', "\\\\").replace('\'', "\\'");
    // A .pth line starting with `import` is executed by site.addpackage(), where `addsitedir` and
    // `known_paths` are in scope.
    Ok(format!(
        "# Written by st2pack: makes StackStorm's site-packages visible to this pack's virtualenv.\n\
         import sys; addsitedir('{literal}', known_paths)\n"
    ))
}

fn invalid(what: &'static str, path: &Path, reason: &str) -> VenvError {
    VenvError::InvalidPath {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The final path ends up in `#!` lines, shell trampolines and `activate` scripts.
fn check_final_dir(dir: &Path) -> Result<(), VenvError> {
    let what = "virtualenv directory";
    if !dir.is_absolute() {
        return Err(invalid(what, dir, "it must be an absolute path"));
    }
    let Some(text) = dir.to_str() else {
        return Err(invalid(
            what,
            dir,
            "it is not UTF-8; choose a plain ASCII path",
        ));
    };
    if text.contains(['"', '\'', '$', '`', '\\', '\n', '\r']) {
        return Err(invalid(
            what,
            dir,
            "quotes, `$`, backquotes, backslashes and newlines cannot be used in scripts' #! \
             lines; choose a plainer path",
        ));
    }
    Ok(())
}

fn check_st2_site_packages(dir: &Path) -> Result<(), VenvError> {
    let what = "st2 site-packages directory";
    if !dir.is_absolute() {
        return Err(invalid(what, dir, "it must be an absolute path"));
    }
    if dir
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|&b| b == b'\n' || b == b'\r')
    {
        return Err(invalid(what, dir, "it contains a newline"));
    }
    st2_pth_content(dir).map(|_| ())
}

/// The installers run in the build directory, so every path handed to them must be absolute.
fn absolutized(spec: &VenvSpec) -> Result<VenvSpec, VenvError> {
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| VenvError::io("resolve", p, e));
    let mut spec = spec.clone();
    if let Some(p) = &spec.requirements {
        spec.requirements = Some(abs(p)?);
    }
    if let Some(p) = &spec.wheelhouse {
        spec.wheelhouse = Some(abs(p)?);
    }
    if let Some(p) = &spec.bytecode_cache {
        spec.bytecode_cache = Some(abs(p)?);
    }
    if let Some(p) = &spec.cache_dir {
        spec.cache_dir = Some(abs(p)?);
    }
    Ok(spec)
}

fn prepare_build_dir(dir: &Path) -> Result<(), VenvError> {
    std::fs::create_dir_all(dir).map_err(|e| VenvError::io("create", dir, e))?;
    let mut entries = std::fs::read_dir(dir).map_err(|e| VenvError::io("read", dir, e))?;
    if entries.next().is_some() {
        return Err(invalid(
            "build directory",
            dir,
            "it is not empty; remove it or choose another staging directory",
        ));
    }
    Ok(())
}

fn clear_dir(dir: &Path) -> Result<(), VenvError> {
    std::fs::remove_dir_all(dir).map_err(|e| VenvError::io("clear", dir, e))?;
    std::fs::create_dir_all(dir).map_err(|e| VenvError::io("create", dir, e))
}

/// Runs filesystem-heavy work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VenvError> + Send + 'static,
) -> Result<T, VenvError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(VenvError::io(
            "finish a background task on",
            PathBuf::new(),
            std::io::Error::other(e.to_string()),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tmp: &Path) -> VenvSpec {
        VenvSpec {
            python: PythonInfo {
                path: "/usr/bin/python3".into(),
                real_path: "/usr/bin/python3.11".into(),
                version: "3.11.2".into(),
                major: 3,
                minor: 11,
            },
            installer: Installer::Pip,
            final_dir: "/opt/stackstorm/virtualenvs/demo".into(),
            requirements: None,
            allow_pack_index_options: false,
            only_binary: false,
            base_requirements: true,
            system_site_packages: false,
            st2_site_packages: None,
            wheelhouse: None,
            cache_dir: Some(tmp.join("cache")),
            bytecode_cache: Some(tmp.join("bytecode")),
            rebuild: false,
            runtime: VenvRuntime::Native,
            keep_pip: true,
            locked_requirements: None,
        }
    }

    #[test]
    fn key_follows_every_input() {
        let tmp = tempfile::tempdir().unwrap();
        let base = spec(tmp.path());
        let key = venv_key(&base).unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(key, venv_key(&base).unwrap());
        // The cache location and --force do not change what is built.
        let mut same = base.clone();
        same.cache_dir = None;
        same.bytecode_cache = None;
        same.rebuild = true;
        assert_eq!(key, venv_key(&same).unwrap());

        let req = tmp.path().join("requirements.txt");
        std::fs::write(&req, "requests\n-r extra.txt\n").unwrap();
        std::fs::write(tmp.path().join("extra.txt"), "pyyaml\n").unwrap();
        let mut variants = vec![];
        let mut s = base.clone();
        s.requirements = Some(req.clone());
        variants.push(venv_key(&s).unwrap());
        std::fs::write(tmp.path().join("extra.txt"), "pyyaml==6.0\n").unwrap();
        variants.push(venv_key(&s).unwrap());
        let mut s = base.clone();
        s.final_dir = "/opt/stackstorm/virtualenvs/other".into();
        variants.push(venv_key(&s).unwrap());
        let mut s = base.clone();
        s.base_requirements = false;
        variants.push(venv_key(&s).unwrap());
        let mut s = base.clone();
        s.system_site_packages = true;
        variants.push(venv_key(&s).unwrap());
        let mut s = base.clone();
        s.st2_site_packages = Some("/opt/stackstorm/st2/lib/python3.11/site-packages".into());
        variants.push(venv_key(&s).unwrap());
        let mut s = base.clone();
        s.python.version = "3.11.3".into();
        variants.push(venv_key(&s).unwrap());
        let mut s = base.clone();
        let wheelhouse = tmp.path().join("wh");
        std::fs::create_dir(&wheelhouse).unwrap();
        s.wheelhouse = Some(wheelhouse.clone());
        variants.push(venv_key(&s).unwrap());
        std::fs::write(wheelhouse.join("six-1.16.0-py3-none-any.whl"), "x").unwrap();
        variants.push(venv_key(&s).unwrap());
        variants.push(key);
        let mut unique = variants.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), variants.len(), "{variants:#?}");
    }

    #[test]
    fn key_follows_an_include_written_across_a_continuation() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = spec(tmp.path());
        let req = tmp.path().join("requirements.txt");
        std::fs::write(&req, "requests\n-r \\\n  extra.txt\n").unwrap();
        std::fs::write(tmp.path().join("extra.txt"), "pyyaml\n").unwrap();
        s.requirements = Some(req);
        let before = venv_key(&s).unwrap();
        std::fs::write(tmp.path().join("extra.txt"), "pyyaml==6.0\n").unwrap();
        assert_ne!(before, venv_key(&s).unwrap());
        // Wheels only is another virtualenv.
        let mut binary = s.clone();
        binary.only_binary = true;
        assert_ne!(venv_key(&s).unwrap(), venv_key(&binary).unwrap());
    }

    #[test]
    fn refused_requirements_name_file_line_and_option() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = spec(tmp.path());
        let req = tmp.path().join("requirements.txt");
        std::fs::write(&req, "six\n--extra-index-url http://127.0.0.1:9/\n").unwrap();
        s.requirements = Some(req);
        let msg = venv_key(&s).unwrap_err().to_string();
        assert!(
            msg.contains("requirements.txt:2: --extra-index-url http://127.0.0.1:9/"),
            "{msg}"
        );
        s.allow_pack_index_options = true;
        assert!(venv_key(&s).is_ok());
    }

    #[test]
    fn missing_requirements_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = spec(tmp.path());
        s.requirements = Some(tmp.path().join("nope/requirements.txt"));
        let msg = venv_key(&s).unwrap_err().to_string();
        assert!(msg.contains("nope/requirements.txt"), "{msg}");
    }

    #[test]
    fn final_dir_must_be_usable_in_scripts() {
        assert!(check_final_dir(Path::new("/opt/stackstorm/virtualenvs/a b")).is_ok());
        assert!(check_final_dir(Path::new("relative/dir")).is_err());
        let msg = check_final_dir(Path::new("/opt/\"x\""))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("/opt/\"x\""), "{msg}");
    }

    #[test]
    fn st2_pth_escapes_the_path() {
        let content = st2_pth_content(Path::new("/opt/it's")).unwrap();
        assert!(
            content.contains("addsitedir('/opt/it\\'s', known_paths)"),
            "{content}"
        );
        assert!(content.lines().nth(1).unwrap().starts_with("import "));
    }

    #[test]
    fn intact_needs_config_and_python() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!is_intact(tmp.path()));
        std::fs::write(tmp.path().join("pyvenv.cfg"), "").unwrap();
        assert!(!is_intact(tmp.path()));
        std::fs::create_dir(tmp.path().join("bin")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/python", tmp.path().join("bin/python")).unwrap();
        assert!(!is_intact(tmp.path()));
        std::fs::remove_file(tmp.path().join("bin/python")).unwrap();
        std::os::unix::fs::symlink("/bin/sh", tmp.path().join("bin/python")).unwrap();
        assert!(is_intact(tmp.path()));
    }
}

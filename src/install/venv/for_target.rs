//! Virtualenvs for a runtime whose interpreter is not the one building them: a preset, a
//! described runtime, or a runtime image's interpreter run here. The virtualenv is laid out as
//! virtualenv makes it on the target and filled by uv for the target's Python and platform (see
//! `crate::runtime`); bytecode is compiled by an interpreter of the target's version, or not at
//! all, never by another.

use std::path::{Path, PathBuf};

use super::installer::{self, BASE_REQUIREMENT, Engine};
use super::{PythonInfo, VenvError, VenvSpec, bytecode, compile_bytecode};
use crate::pack::pin::RuntimePin;
use crate::runtime::{self, TargetRuntime};

/// A virtualenv's runtime when it is not the interpreter building it.
#[derive(Debug, Clone)]
pub struct TargetBuild {
    pub target: TargetRuntime,
    /// What the pack's pin records of the runtime.
    pub pin: RuntimePin,
    /// The target's full version when known (`3.9.2`, from a runtime image), else `MAJOR.MINOR`.
    pub version: String,
    /// An interpreter of the target's version that runs here and compiles the bytecode; `None`
    /// writes no `.pyc`.
    pub bytecode_python: Option<PathBuf>,
    /// The interpreter uv builds source distributions with (a runtime image's launcher); `None`
    /// lets uv use one of this machine's, which suits pure-Python ones only.
    pub uv_python: Option<PathBuf>,
    /// Paths of this machine that must appear in no file of the virtualenv besides the build
    /// and cache directories: a runtime image's root and launcher.
    pub forbidden_paths: Vec<PathBuf>,
}

impl TargetBuild {
    /// The target's interpreter as the engine describes interpreters: its path on the cluster.
    pub fn python_info(&self) -> PythonInfo {
        PythonInfo {
            path: self.target.interpreter.clone(),
            real_path: self.target.interpreter.clone(),
            version: self.version.clone(),
            major: u32::from(self.target.python.major),
            minor: u32::from(self.target.python.minor),
        }
    }
}

/// What costs a target virtualenv built without an interpreter of its version.
pub const NO_BYTECODE_WARNING: &str = "no bytecode was written: no interpreter of the target's \
     Python runs here, so every action run compiles its imports again (the volumes are \
     read-only). Pass --bytecode-python PATH with a CPython of the target's version, or build \
     with --runtime-image";

/// Lays out, installs, checks and compiles the virtualenv in `build_dir` (missing or empty).
/// Returns the build's warnings.
pub(crate) async fn build(
    engine: &Engine,
    spec: &VenvSpec,
    build: &TargetBuild,
    build_dir: &Path,
) -> Result<Vec<String>, VenvError> {
    let Engine::Uv(uv) = engine else {
        return Err(VenvError::TargetNeedsUv {
            target: build.pin.describe(),
        });
    };
    let listing = match &spec.wheelhouse {
        Some(dir) => Some(installer::wheelhouse_listing(dir)?),
        None => None,
    };
    let locked = installer::locked_requirements_file(spec)?;
    let (seeds, mut warnings) = match &locked {
        // The lock file chose the seeds.
        Some(_) => (Vec::new(), Vec::new()),
        None => installer::select_seeds(listing.as_deref(), None, spec.keep_pip),
    };
    let mut requirements: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
    if spec.base_requirements && locked.is_none() {
        requirements.push(BASE_REQUIREMENT.to_string());
    }
    let mut options = runtime::InstallOptions::new(requirements);
    options.uv = uv.clone();
    options.requirement_files = match &locked {
        Some(file) => vec![file.path().to_path_buf()],
        None => spec.requirements.iter().cloned().collect(),
    };
    options.require_hashes = locked.is_some();
    if locked.is_some() {
        options.described_as = Some("the lock file's requirements (hash-checked)".to_string());
    }
    options.wheelhouse = spec.wheelhouse.clone();
    options.no_index = spec.wheelhouse.is_some();
    options.only_binary = spec.only_binary;
    options.python = build.uv_python.clone();
    let mut target = build.target.clone();
    target.system_site_packages = spec.system_site_packages;
    if spec.st2_site_packages.is_some() {
        target.st2_site_packages = spec.st2_site_packages.clone();
    }
    let mut forbidden = vec![build_dir.to_path_buf()];
    forbidden.extend(build.forbidden_paths.iter().cloned());
    forbidden.extend(spec.cache_dir.iter().cloned());
    forbidden.extend(spec.bytecode_cache.iter().cloned());
    let (dir, final_dir) = (build_dir.to_path_buf(), spec.final_dir.clone());
    super::blocking(move || {
        runtime::fill_virtualenv(&dir, &final_dir, &target, &options, &forbidden)
            .map(|_| ())
            .map_err(|source| VenvError::Runtime { source })
    })
    .await?;

    match &build.bytecode_python {
        Some(python) => {
            let lib = build_dir.join("lib");
            let cache = spec.bytecode_cache.as_deref();
            warnings.extend(compile_bytecode(python, &lib, cache, &["pip"]).await?);
        }
        None => warnings.push(NO_BYTECODE_WARNING.to_string()),
    }
    let dir = build_dir.to_path_buf();
    super::blocking(move || bytecode::remove_stale_pyc(&dir)).await?;
    let dir = build_dir.to_path_buf();
    super::blocking(move || {
        crate::install::modes::normalize(&dir)
            .map_err(|e| VenvError::io("set the mode of", e.path, e.source))
    })
    .await?;
    Ok(warnings)
}

//! The cluster's Python runtime, and virtualenvs made for it on any Linux build machine.
//!
//! A pack virtualenv only works with the interpreter it was made for, at the same path, so a
//! virtualenv built with the build machine's Python fails in the cluster. Here a runtime is
//! described (a preset of the official st2 images, or `--target-python`, `--target-interpreter`
//! and `--target-platform`) and a virtualenv is laid out for it as virtualenv would make it
//! there, with requirements installed for its Python and platform by uv, without running the
//! target's interpreter: see `layout`, `install`, `scripts`, and the checks in `tags` and
//! `leaks` that keep anything built for the build machine out.

pub mod choice;
mod error;
pub mod image_root;
pub mod install;
pub mod layout;
pub mod leaks;
pub mod presets;
pub mod scripts;
pub mod tags;
pub mod target;

use std::fs;
use std::path::{Path, PathBuf};

pub use choice::{RuntimeArgs, RuntimeChoice};
pub use error::RuntimeError;
pub use install::InstallOptions;
pub use presets::{PRESETS, Preset, preset};
pub use target::{Platform, PythonVersion, TargetRuntime};

/// A virtualenv made for a target runtime.
#[derive(Debug, Clone)]
pub struct TargetVenv {
    /// Where it was written on this machine.
    pub dir: PathBuf,
    /// Its `lib/pythonX.Y/site-packages`.
    pub site_packages: PathBuf,
    /// The console scripts installed in `bin/`.
    pub scripts: Vec<String>,
}

/// Makes the virtualenv for `target` at `dir` on this machine, for the path `final_dir` it will
/// have on the cluster (which its scripts' shebangs name), with `options`' requirements.
///
/// All of it is made in a staging directory beside `dir` and renamed into place only once
/// every check passed: on any error, nothing is left at `dir`.
pub fn make_virtualenv(
    dir: &Path,
    final_dir: &Path,
    target: &TargetRuntime,
    options: &InstallOptions,
) -> Result<TargetVenv, RuntimeError> {
    if fs::symlink_metadata(dir).is_ok() {
        return Err(RuntimeError::DestinationExists {
            path: dir.to_path_buf(),
        });
    }
    let parent = dir
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(RuntimeError::io(parent, "create the directory"))?;
    let staging = tempfile::Builder::new()
        .prefix(".st2pack-venv-")
        .tempdir_in(parent)
        .map_err(RuntimeError::io(parent, "create a staging directory in"))?;
    let venv = staging.path().join("venv");
    let filled = fill_virtualenv(&venv, final_dir, target, options, &[staging.path().into()])?;
    fs::rename(&venv, dir).map_err(RuntimeError::io(dir, "move the finished virtualenv to"))?;
    Ok(TargetVenv {
        site_packages: layout::site_packages(dir, target),
        dir: dir.to_path_buf(),
        scripts: filled.scripts,
    })
}

/// Makes the virtualenv for `target` in `venv` (missing or empty), for the path `final_dir` it
/// will have on the cluster, and checks it: every extension module is for the target, and no
/// file names `build_paths` (the staging directories), the build machine's interpreter or
/// uv's cache. The caller removes `venv` on error.
pub fn fill_virtualenv(
    venv: &Path,
    final_dir: &Path,
    target: &TargetRuntime,
    options: &InstallOptions,
    build_paths: &[PathBuf],
) -> Result<TargetVenv, RuntimeError> {
    let site_packages = layout::lay_out(venv, target)?;
    let run = install::install(&site_packages, target, options)?;
    let lock = site_packages.join(".lock");
    if lock.exists() {
        fs::remove_file(&lock).map_err(RuntimeError::io(&lock, "remove"))?;
    }
    let scripts = scripts::relocate_scripts(venv, &site_packages, final_dir)?;
    tags::check_installed(&site_packages, target)?;
    let mut forbidden = build_paths.to_vec();
    forbidden.extend(host_paths(&run, target, options));
    leaks::check_no_build_paths(venv, &forbidden)?;
    Ok(TargetVenv {
        dir: venv.to_path_buf(),
        site_packages,
        scripts,
    })
}

/// Paths of this machine that must not appear in the virtualenv. The host interpreter's prefix
/// counts unless the target's interpreter lives under it too (`/usr`).
fn host_paths(
    run: &install::UvRun,
    target: &TargetRuntime,
    options: &InstallOptions,
) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(host) = &run.host_interpreter {
        let prefix = host.parent().and_then(Path::parent);
        let candidates = [Some(host.as_path()), prefix];
        paths.extend(
            candidates
                .into_iter()
                .flatten()
                .filter(|path| !target.interpreter.starts_with(path))
                .filter(|path| path.components().count() > 2)
                .map(Path::to_path_buf),
        );
    }
    paths.extend(options.cache_dir.clone());
    paths.extend(options.python.clone());
    paths
}

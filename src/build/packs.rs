//! The packs a build layers: installed now into the build root, or taken as they are from an
//! installed tree.

use std::path::{Path, PathBuf};

use super::pack_layer::{PACKS_IN_IMAGE, VIRTUALENVS_IN_IMAGE};
use super::tree::{self, PackTree};
use super::{BuildError, BuildEvent};
use crate::cache::Cache;
use crate::install::place::Targets;
use crate::install::{self, InstallOptions, Status};
use crate::pack::name::PackName;
use crate::pack::pin::RuntimePin;
use crate::pack::spec::PackSpec;

/// Where a build's packs come from.
#[derive(Debug, Clone)]
pub enum PackInput {
    /// The packs installed under `root` (`packs/`, `virtualenvs/`), by st2pack or another tool;
    /// refused if one was built for another runtime than `runtime`, when one was asked for.
    Installed {
        root: PathBuf,
        runtime: Option<RuntimePin>,
    },
    /// Install `specs` first into `root` (default: the cache's build root), which is kept, so that unchanged packs and their layers are reused next time. `options` say how to
    /// fetch and build; where packs go is the build's choice: `root`, used from the image's
    /// [`PACKS_IN_IMAGE`] and [`VIRTUALENVS_IN_IMAGE`].
    Install {
        root: Option<PathBuf>,
        specs: Vec<PackSpec>,
        options: Box<InstallOptions>,
    },
}

/// The packs of `input`, installing them first when asked, with `cache` (which holds the default
/// build root).
pub async fn collect(
    input: &PackInput,
    cache: &Cache,
    on_event: &mut impl FnMut(BuildEvent<'_>),
) -> Result<Vec<PackTree>, BuildError> {
    match input {
        PackInput::Installed { root, runtime } => {
            if let Some(runtime) = runtime {
                tree::check_runtime(root, runtime).map_err(BuildError::Tree)?;
            }
            let packs = tree::collect(root).map_err(BuildError::Tree)?;
            for pack in &packs {
                if let Some(warning) = built_elsewhere(pack) {
                    on_event(BuildEvent::Warning(warning));
                }
            }
            Ok(packs)
        }
        PackInput::Install {
            root,
            specs,
            options,
        } => {
            if let Some(root) = root {
                let asked = install::runtime_pin(options)
                    .await
                    .map_err(BuildError::Install)?;
                tree::check_runtime(root, &asked).map_err(BuildError::Tree)?;
            }
            let root = root.clone().unwrap_or_else(|| cache.build_root());
            install(&root, specs, options, cache, on_event).await
        }
    }
}

/// The root a build installs `input`'s packs into (`None` for an installed tree).
pub fn install_root(input: &PackInput, cache: &Cache) -> Option<PathBuf> {
    match input {
        PackInput::Installed { .. } => None,
        PackInput::Install { root, .. } => Some(root.clone().unwrap_or_else(|| cache.build_root())),
    }
}

/// `options` as a build installs with them: into `root`, for the image's paths, with the
/// build's cache.
pub fn build_options(
    root: &Path,
    options: &InstallOptions,
    cache: &Cache,
) -> Result<InstallOptions, BuildError> {
    let absolute = std::path::absolute(root).map_err(|source| BuildError::Root {
        root: root.to_path_buf(),
        source,
    })?;
    Ok(InstallOptions {
        targets: Targets {
            packs_dir: absolute.join("packs"),
            virtualenvs_dir: absolute.join("virtualenvs"),
        },
        packs_runtime_dir: PathBuf::from(PACKS_IN_IMAGE),
        virtualenvs_runtime_dir: PathBuf::from(VIRTUALENVS_IN_IMAGE),
        cache: cache.clone(),
        ..options.clone()
    })
}

async fn install(
    root: &Path,
    specs: &[PackSpec],
    options: &InstallOptions,
    cache: &Cache,
    on_event: &mut impl FnMut(BuildEvent<'_>),
) -> Result<Vec<PackTree>, BuildError> {
    if specs.is_empty() {
        // Every pack's layers were taken from a --cache-from image.
        return Ok(Vec::new());
    }
    let options = build_options(root, options, cache)?;
    let report = install::install(&options, specs)
        .await
        .map_err(BuildError::Install)?;
    on_event(BuildEvent::Installed(&report));
    if !report.all_succeeded() {
        return Err(BuildError::PacksFailed);
    }
    report
        .packs
        .iter()
        .filter(|p| matches!(p.status, Status::Installed | Status::Unchanged))
        .filter_map(|p| Some((p.name.as_deref()?, p.virtualenv_elsewhere)))
        .map(|(name, elsewhere)| {
            let name = PackName::new(name).map_err(|e| BuildError::InstalledPack(e.to_string()))?;
            let tree = tree::pack_tree(root, name)
                .map_err(|e| BuildError::InstalledPack(e.to_string()))?;
            Ok(match elsewhere {
                true => PackTree {
                    virtualenv_dir: None,
                    virtualenv_elsewhere: true,
                    ..tree
                },
                false => tree,
            })
        })
        .collect()
}

/// A virtualenv only works at the path it was built for; in the image that is
/// `/opt/stackstorm/virtualenvs/<pack>`. The warning, when the pack's was built elsewhere.
fn built_elsewhere(pack: &PackTree) -> Option<String> {
    let venv = pack.virtualenv_dir.as_ref()?;
    let expected = format!("{VIRTUALENVS_IN_IMAGE}/{}", pack.name);
    let activate = std::fs::read_to_string(venv.join("bin/activate")).unwrap_or_default();
    (!activate.is_empty() && !activate.contains(&expected)).then(|| {
        format!(
            "the virtualenv of pack {} was built for another path than {expected}, where the image puts it; its scripts may not run there. Install with --virtualenvs-dir {VIRTUALENVS_IN_IMAGE}, or give the packs to st2pack build",
            pack.name
        )
    })
}

//! The build pipeline as a library: pack specs (or an installed tree) -> installed packs -> base
//! image -> each pack's layers -> image -> targets.
//!
//! [`run`] is the whole of `st2pack build` without its command line; each step is a function of
//! its own for a test or another front end:
//!
//! * [`cache_from`] takes, before anything is installed, the layers an earlier image
//!   (`--cache-from`) has of packs this build would make the same, leaving the rest to install;
//! * [`packs::collect`] installs the packs into the build root, or reads an installed tree
//!   ([`tree`]), giving each pack's directories and pin;
//! * [`BaseImage::load`] brings the base (registry, OCI layout or scratch) into the blob store;
//! * [`build_image`] appends each pack's layers ([`pack_layer`]: where a pack's files go) and
//!   the pack [`label`] and [`layers_label`];
//! * [`Target::write`] writes the built image to a registry, an OCI layout or a docker-archive.
//!
//! `image/` (generic OCI images) and `registry/` (the distribution API) do the work; what makes
//! the image a pack image is decided here. The front end learns what happens as it happens
//! through [`BuildEvent`]s, and prints them.

pub mod base;
pub mod busybox;
pub mod cache_from;
pub mod helm;
pub mod inspect;
pub mod label;
pub mod layers_label;
pub mod merge;
pub mod pack_image;
pub mod pack_layer;
pub mod packs;
pub mod runtime_image;
pub mod target;
pub mod tree;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

pub use base::{BaseError, BaseImage};
pub use cache_from::{CacheRef, CachedPack, OfferedVirtualenv};
pub use pack_image::{
    BuiltImage, DEFAULT_EPOCH, ImageBuildError, ImageInputs, LayerOrigin, MadeLayer, PackLayer,
    TakenVirtualenv, build_image,
};
pub use packs::PackInput;
pub use target::{Target, TargetError, Written};
pub use tree::PackTree;

use crate::cache::Cache;
use crate::image::blobs::{BlobError, BlobStore};
use crate::image::layer::LayerOptions;
use crate::image::layer_cache::CacheError;
use crate::install::{InstallError, InstallReport, Status};
use crate::pack::pin::VirtualenvPin;
use crate::progress::Progress;
use crate::registry::RegistryClient;

/// Everything a build needs, already checked.
pub struct BuildRequest {
    pub packs: PackInput,
    pub base: BaseImage,
    /// Written in this order.
    pub targets: Vec<Target>,
    /// Images whose pack layers this build takes when they are what it would make (see
    /// [`cache_from`]).
    pub cache_from: Vec<CacheRef>,
    pub layer_options: LayerOptions,
    /// `org.opencontainers.image.source` / `.revision`, when known.
    pub source: Option<String>,
    pub revision: Option<String>,
    /// Layers built at once.
    pub jobs: usize,
    /// Holds the blob store, the layer caches and the default build root; its lock is held for
    /// as long as the request lives, so that a prune never removes what the build uses.
    pub cache: Cache,
    /// For the base's registry and the registry targets.
    pub registry: RegistryClient,
    /// Where layering and pushes are shown as they happen.
    pub progress: Progress,
}

/// What a build made.
pub struct BuildOutcome {
    pub digest: String,
    pub image: BuiltImage,
    /// One entry per target, in the request's order.
    pub written: Vec<Written>,
    /// The packs installed by this run (not found unchanged, nor taken from `--cache-from`).
    pub installed: BTreeSet<String>,
}

/// What the pipeline is doing, for the front end to show as it happens.
pub enum BuildEvent<'a> {
    /// The packs were installed (or found unchanged).
    Installed(&'a InstallReport),
    /// A pack's layers are taken from a `--cache-from` image: the pack is not installed.
    TakenFrom(&'a CachedPack),
    /// An installed pack's virtualenv layer is taken from a `--cache-from` image: no
    /// virtualenv was built for it.
    VirtualenvTaken {
        pack: &'a PackTree,
        from: &'a CacheRef,
    },
    /// Something the user should know, that does not stop the build.
    Warning(String),
    /// The image is built, not yet written.
    Built(&'a BuiltImage),
    /// One target was written.
    Wrote(&'a Written),
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("{0}")]
    Tree(tree::TreeError),
    #[error("{}: {source}", root.display())]
    Root {
        root: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Install(InstallError),
    #[error("no image was built because some packs did not install")]
    PacksFailed,
    #[error("{0}")]
    InstalledPack(String),
    #[error(transparent)]
    Blobs(#[from] BlobError),
    #[error(transparent)]
    Base(#[from] BaseError),
    #[error(transparent)]
    Layers(#[from] CacheError),
    #[error(transparent)]
    Image(#[from] ImageBuildError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Busybox(#[from] busybox::BusyboxError),
}

impl BuildError {
    /// Exit code: 2 for bad input (nothing was attempted with it), 1 for a failed operation.
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::Tree(_) | BuildError::Root { .. } => 2,
            BuildError::Install(e) => e.exit_code(),
            BuildError::Base(e) => e.exit_code(),
            BuildError::Target(e) => e.exit_code(),
            BuildError::Busybox(e) => e.exit_code(),
            BuildError::PacksFailed
            | BuildError::InstalledPack(_)
            | BuildError::Blobs(_)
            | BuildError::Layers(_)
            | BuildError::Image(_) => 1,
        }
    }
}

/// Runs the whole pipeline: collects the packs, loads the base, builds the image and writes it
/// to every target, telling `on_event` as each step completes. Needs a multi-threaded tokio
/// runtime (layers are built on blocking threads).
pub async fn run(
    request: &BuildRequest,
    mut on_event: impl FnMut(BuildEvent<'_>),
) -> Result<BuildOutcome, BuildError> {
    let store = request.cache.blob_store()?;
    let settings = match packs::install_root(&request.packs, &request.cache) {
        Some(root) => match &request.packs {
            PackInput::Install { options, .. } => {
                let options = packs::build_options(&root, options, &request.cache)?;
                // Unknown when the interpreter cannot be probed: the install says why.
                cache_from::BuildSettings::new(&options, request.layer_options)
                    .await
                    .ok()
            }
            PackInput::Installed { .. } => None,
        },
        None => None,
    };
    let (input, mut cached, offered) =
        take_cached(request, settings.as_ref(), &store, &mut on_event).await;
    let mut installed = BTreeSet::new();
    let packs = packs::collect(&input, &request.cache, &mut |event| {
        if let BuildEvent::Installed(report) = &event {
            installed.extend(
                (report.packs.iter())
                    .filter(|p| p.status == Status::Installed)
                    .filter_map(|p| p.name.clone()),
            );
        }
        on_event(event)
    })
    .await?;
    let virtualenvs_taken = take_virtualenvs(&packs, &offered)?;
    for pack in &packs {
        if let Some(taken) = virtualenvs_taken.get(pack.name.as_str()) {
            on_event(BuildEvent::VirtualenvTaken {
                pack,
                from: &taken.from,
            });
        }
    }
    // A pack installed as the dependency of another and taken too: the installed one is layered.
    cached.retain(|taken| {
        let installed = packs.iter().any(|p| p.name.as_str() == taken.record.name);
        if installed {
            on_event(BuildEvent::Warning(format!(
                "pack {} was installed as a dependency, so its layer from --cache-from {} is not used",
                taken.record.name, taken.from
            )));
        }
        !installed
    });
    let build_keys: BTreeMap<String, String> = match &settings {
        Some(settings) => packs
            .iter()
            .filter_map(|p| Some((p.name.to_string(), settings.build_key(p.name.as_str())?)))
            .collect(),
        None => BTreeMap::new(),
    };

    if request.base == BaseImage::Scratch {
        on_event(BuildEvent::Warning(
            "--base scratch has no /bin/sh or /bin/cp; the stackstorm-k8s chart's init container needs both to copy the packs".to_string(),
        ));
    }
    let base = request.base.load(&request.registry, &store).await?;

    let cache = request.cache.layer_cache(&store)?;
    let inputs = ImageInputs {
        packs: &packs,
        cached: &cached,
        virtualenvs_taken: &virtualenvs_taken,
        build_keys: &build_keys,
        layer_options: request.layer_options,
        source: request.source.clone(),
        revision: request.revision.clone(),
        jobs: request.jobs,
        progress: request.progress.clone(),
    };
    let base_layers: Vec<String> = base
        .layers
        .iter()
        .map(|layer| layer.descriptor.digest.clone())
        .collect();
    let mut built = tokio::task::block_in_place(|| build_image(base, &cache, &inputs))?;
    if let Some(reference) = request.base.reference() {
        built.mount_from = Some(reference.clone());
        for digest in base_layers {
            built
                .layer_sources
                .entry(digest)
                .or_insert_with(|| reference.clone());
        }
    }
    if let Some(warning) = pack_image::layer_count_warning(&built.image) {
        on_event(BuildEvent::Warning(warning));
    }
    on_event(BuildEvent::Built(&built));

    let written = write_targets(
        &built,
        &request.targets,
        &store,
        &request.registry,
        &request.progress,
        &mut on_event,
    )
    .await?;
    Ok(BuildOutcome {
        digest: built.digest(),
        image: built,
        written,
        installed,
    })
}

/// The packs left to install once the layers of `request.cache_from` images that this build
/// would make are taken (each told to `on_event`), those taken, and the virtualenv layers
/// offered to the packs left (see [`cache_from::Plan::virtualenvs`]).
async fn take_cached(
    request: &BuildRequest,
    settings: Option<&cache_from::BuildSettings>,
    store: &BlobStore,
    on_event: &mut impl FnMut(BuildEvent<'_>),
) -> (PackInput, Vec<CachedPack>, Vec<OfferedVirtualenv>) {
    let mut input = request.packs.clone();
    if request.cache_from.is_empty() {
        return (input, Vec::new(), Vec::new());
    }
    let (specs, options, settings) = match (&mut input, settings) {
        (PackInput::Install { specs, options, .. }, Some(settings)) => (specs, options, settings),
        (PackInput::Installed { .. }, _) => {
            on_event(BuildEvent::Warning(
                "--cache-from is not used when layering an installed tree (--root without packs): its packs are layered as they are".to_string(),
            ));
            return (input, Vec::new(), Vec::new());
        }
        _ => return (input, Vec::new(), Vec::new()),
    };
    let mut warnings = Vec::new();
    let plan = cache_from::plan(
        &request.cache_from,
        specs,
        settings,
        &request.registry,
        store,
        &mut |warning| warnings.push(warning),
    )
    .await;
    for warning in warnings {
        on_event(BuildEvent::Warning(warning));
    }
    *specs = plan.to_install;
    for taken in &plan.cached {
        on_event(BuildEvent::TakenFrom(taken));
    }
    let mut elsewhere: BTreeMap<String, Vec<VirtualenvPin>> = BTreeMap::new();
    for offered in &plan.virtualenvs {
        elsewhere
            .entry(offered.name.clone())
            .or_default()
            .push(offered.pin.clone());
    }
    options.virtualenvs_elsewhere = Arc::new(elsewhere);
    (input, plan.cached, plan.virtualenvs)
}

/// The virtualenv layer of each installed pack that got none built, found again among those
/// `offered` by its name and pin.
fn take_virtualenvs(
    packs: &[PackTree],
    offered: &[OfferedVirtualenv],
) -> Result<BTreeMap<String, TakenVirtualenv>, BuildError> {
    packs
        .iter()
        .filter(|pack| pack.virtualenv_elsewhere)
        .map(|pack| {
            let found = offered.iter().find(|o| {
                o.name == pack.name.as_str() && Some(&o.pin) == pack.pin.virtualenv.as_ref()
            });
            match found {
                Some(o) => Ok((
                    o.name.clone(),
                    TakenVirtualenv {
                        layer: o.layer.clone(),
                        from: o.from.clone(),
                    },
                )),
                None => Err(BuildError::InstalledPack(format!(
                    "pack {} was installed without a virtualenv, but no --cache-from image has the one it needs (another build may have changed the build root meanwhile); build again",
                    pack.name
                ))),
            }
        })
        .collect()
}

/// Writes `built`, whose blobs are in `store`, to each of `targets` in order, telling
/// `on_event` after each.
pub async fn write_targets(
    built: &BuiltImage,
    targets: &[Target],
    store: &BlobStore,
    registry: &RegistryClient,
    progress: &Progress,
    on_event: &mut impl FnMut(BuildEvent<'_>),
) -> Result<Vec<Written>, TargetError> {
    let mut written = Vec::new();
    for target in targets {
        let done = target.write(built, store, registry, progress).await?;
        on_event(BuildEvent::Wrote(&done));
        written.push(done);
    }
    Ok(written)
}

/// The time every timestamp of an image gets: `SOURCE_DATE_EPOCH` when set (the
/// reproducible-builds convention), else [`DEFAULT_EPOCH`].
pub fn source_date_epoch() -> Result<u64, EpochError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|_| EpochError(value.clone()))
        }
        _ => Ok(DEFAULT_EPOCH),
    }
}

/// `SOURCE_DATE_EPOCH` is set to something else than a number of seconds.
#[derive(Debug, Error)]
#[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds since 1970")]
pub struct EpochError(String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layout;
    use crate::pack::pin::PIN_FILE;
    use crate::registry::RegistryOptions;

    fn cache(dir: &std::path::Path) -> Cache {
        Cache::from_path(dir.join("cache"))
            .init(std::time::Duration::from_secs(5), || {})
            .unwrap()
    }

    /// An installed tree as `st2-pack-install` leaves it, with a pin in the format installs
    /// have always written.
    fn installed_tree(root: &std::path::Path) {
        let pack = root.join("packs/demo");
        std::fs::create_dir_all(pack.join("actions")).unwrap();
        std::fs::write(
            pack.join("pack.yaml"),
            "ref: demo\nname: demo\ndescription: d\nversion: 1.2.0\nauthor: a\n",
        )
        .unwrap();
        std::fs::write(pack.join("actions/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::write(
            pack.join(PIN_FILE),
            "{\n  \"name\": \"demo\",\n  \"version\": \"1.2.0\",\n  \"source\": \"https://ci:s3cret@git.example.com/demo.git\",\n  \"ref\": \"v1.2.0\",\n  \"commit\": \"0123456789abcdef\",\n  \"virtualenv\": {\n    \"key\": \"k\",\n    \"python_version\": \"3.8.10\"\n  }\n}\n",
        )
        .unwrap();
        let venv = root.join("virtualenvs/demo");
        std::fs::create_dir_all(&venv).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
    }

    /// The pipeline runs without a command line: an installed tree on scratch, written to an OCI
    /// layout and a docker-archive, with the events in the order the steps happen.
    #[tokio::test(flavor = "multi_thread")]
    async fn run_builds_an_installed_tree_and_writes_every_target() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        installed_tree(&root);
        let tags = target::parse_tags(&["st2packs:1.0".to_string()]).unwrap();
        let layout_dir = tmp.path().join("layout");
        let archive = tmp.path().join("image.tar");
        let outputs = [
            format!("oci:{}", layout_dir.display()),
            format!("docker-archive:{}", archive.display()),
        ];
        let request = BuildRequest {
            packs: PackInput::Installed {
                root,
                runtime: None,
            },
            base: BaseImage::parse("scratch").unwrap(),
            targets: target::targets(&tags, false, &outputs).unwrap(),
            cache_from: Vec::new(),
            layer_options: LayerOptions::default(),
            source: None,
            revision: None,
            jobs: 2,
            cache: cache(tmp.path()),
            registry: RegistryClient::new(RegistryOptions::default()).unwrap(),
            progress: Progress::default(),
        };
        let mut events = Vec::new();
        let outcome = run(&request, |event| {
            events.push(match event {
                BuildEvent::Installed(_) => "installed".to_string(),
                BuildEvent::TakenFrom(taken) => format!("taken {}", taken.record.name),
                BuildEvent::VirtualenvTaken { pack, .. } => format!("virtualenv {}", pack.name),
                BuildEvent::Warning(w) => format!("warning: {w}"),
                BuildEvent::Built(built) => format!("built {}", built.digest()),
                BuildEvent::Wrote(written) => format!("wrote {:?}", written.output()),
            })
        })
        .await
        .unwrap();

        assert!(
            events[0].starts_with("warning: --base scratch"),
            "{events:?}"
        );
        assert_eq!(events[1], format!("built {}", outcome.digest));
        assert_eq!(events.len(), 4, "{events:?}");
        assert_eq!(
            outcome
                .written
                .iter()
                .map(Written::output)
                .collect::<Vec<_>>(),
            outputs.map(Some)
        );
        assert_eq!(outcome.image.packs.len(), 1);
        let pack = &outcome.image.packs[0];
        assert_eq!(pack.pin.r#ref.as_deref(), Some("v1.2.0"));
        // The virtualenv's layer, then the pack's.
        let layers = &outcome.image.image.layers;
        assert_eq!(layers.len(), 2);
        assert_eq!(
            pack.virtualenv.as_ref().unwrap().digest,
            layers[0].descriptor.digest
        );
        assert_eq!(pack.layer.digest, layers[1].descriptor.digest);

        // The label is made from the pin, credentials removed, in the label's own format.
        let (read_back, _) = layout::read_image(&layout_dir, Some("1.0")).unwrap();
        assert_eq!(
            read_back.labels()[label::PACKS_LABEL],
            r#"[{"name":"demo","version":"1.2.0","commit":"0123456789abcdef","source":"https://***@git.example.com/demo.git","python":"3.8.10"}]"#
        );
        assert_eq!(
            read_back.config_descriptor(),
            outcome.image.image.config_descriptor()
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_step_reports_its_exit_code() {
        let tmp = tempfile::tempdir().unwrap();
        let request = BuildRequest {
            packs: PackInput::Installed {
                root: tmp.path().join("nope"),
                runtime: None,
            },
            base: BaseImage::Scratch,
            targets: Vec::new(),
            cache_from: Vec::new(),
            layer_options: LayerOptions::default(),
            source: None,
            revision: None,
            jobs: 1,
            cache: cache(tmp.path()),
            registry: RegistryClient::new(RegistryOptions::default()).unwrap(),
            progress: Progress::default(),
        };
        let err = run(&request, |_| {})
            .await
            .err()
            .expect("a missing root fails");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("no such directory"), "{err}");
    }
}

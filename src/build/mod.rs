//! The build pipeline as a library: pack specs (or an installed tree) -> installed packs -> base
//! image -> one layer per pack -> image -> targets.
//!
//! [`run`] is the whole of `st2pack build` without its command line; each step is a function of
//! its own for a test or another front end:
//!
//! * [`packs::collect`] installs the packs into the build root, or reads an installed tree
//!   ([`tree`]), giving each pack's directories and pin;
//! * [`BaseImage::load`] brings the base (registry, OCI layout or scratch) into the blob store;
//! * [`build_image`] appends a layer per pack ([`pack_layer`]: where a pack's files go) and the
//!   pack [`label`];
//! * [`Target::write`] writes the built image to a registry, an OCI layout or a docker-archive.
//!
//! `image/` (generic OCI images) and `registry/` (the distribution API) do the work; what makes
//! the image a pack image is decided here. The front end learns what happens as it happens
//! through [`BuildEvent`]s, and prints them.

pub mod base;
pub mod busybox;
pub mod helm;
pub mod inspect;
pub mod label;
pub mod pack_image;
pub mod pack_layer;
pub mod packs;
pub mod target;
pub mod tree;

use std::path::PathBuf;

use thiserror::Error;

pub use base::{BaseError, BaseImage};
pub use pack_image::{
    BuiltImage, DEFAULT_EPOCH, ImageBuildError, ImageInputs, PackLayer, build_image,
};
pub use packs::PackInput;
pub use target::{Target, TargetError, Written};

use crate::cache::Cache;
use crate::image::blobs::{BlobError, BlobStore};
use crate::image::layer::LayerOptions;
use crate::image::layer_cache::CacheError;
use crate::install::{InstallError, InstallReport};
use crate::progress::Progress;
use crate::registry::RegistryClient;

/// Everything a build needs, already checked.
pub struct BuildRequest {
    pub packs: PackInput,
    pub base: BaseImage,
    /// Written in this order.
    pub targets: Vec<Target>,
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
}

/// What the pipeline is doing, for the front end to show as it happens.
pub enum BuildEvent<'a> {
    /// The packs were installed (or found unchanged).
    Installed(&'a InstallReport),
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
    let packs = packs::collect(&request.packs, &request.cache, &mut on_event).await?;

    let store = request.cache.blob_store()?;
    if request.base == BaseImage::Scratch {
        on_event(BuildEvent::Warning(
            "--base scratch has no /bin/sh or /bin/cp; the stackstorm-k8s chart's init container needs both to copy the packs".to_string(),
        ));
    }
    let base = request.base.load(&request.registry, &store).await?;

    let cache = request.cache.layer_cache(&store)?;
    let inputs = ImageInputs {
        packs: &packs,
        layer_options: request.layer_options,
        source: request.source.clone(),
        revision: request.revision.clone(),
        jobs: request.jobs,
        progress: request.progress.clone(),
    };
    let mut built = tokio::task::block_in_place(|| build_image(base, &cache, &inputs))?;
    built.mount_from = request.base.reference().cloned();
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
    })
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

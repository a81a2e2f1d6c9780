//! Building the image: one layer per pack appended to the base, the pack label, the OCI
//! annotations. Nothing is written anywhere yet (see `target`).

use std::collections::BTreeMap;

use super::label;
use super::pack_layer::{created_by, pack_layer};
use super::tree::PackTree;
use crate::image::annotations::{ANNOTATION_CREATED, ANNOTATION_REVISION, ANNOTATION_SOURCE};
use crate::image::assemble::{HistoryEntry, Image, ImageError, rfc3339};
use crate::image::layer::LayerOptions;
use crate::image::layer_cache::{
    CacheError, LayerCache, LayerEvent, build_layers_cached_reporting,
};
use crate::pack::pin::PackPin;
use crate::progress::{Phase, Progress, Step};
use crate::registry::Reference;

/// Seconds since 1970 used for every timestamp when `SOURCE_DATE_EPOCH` is not set: fixed, so
/// builds are reproducible by default.
pub const DEFAULT_EPOCH: u64 = 0;

#[derive(Debug, thiserror::Error)]
pub enum ImageBuildError {
    #[error(transparent)]
    Layers(#[from] CacheError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// What goes into an image besides its base.
pub struct ImageInputs<'a> {
    pub packs: &'a [PackTree],
    pub layer_options: LayerOptions,
    /// `org.opencontainers.image.source` / `.revision`, when known.
    pub source: Option<String>,
    pub revision: Option<String>,
    pub jobs: usize,
    /// Where layering is reported.
    pub progress: Progress,
}

/// An image ready to be written to any target.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub image: Image,
    pub annotations: BTreeMap<String, String>,
    /// Seconds since 1970 of every timestamp in the image (entries of a docker-archive too).
    pub created: u64,
    /// A registry repository holding the base's blobs, which a push mounts instead of uploading.
    pub mount_from: Option<Reference>,
    /// Registry repositories holding particular layers, by digest (those of the images a merge
    /// took them from): a push mounts each from its own.
    pub layer_sources: BTreeMap<String, Reference>,
    /// One entry per pack layer, in image order.
    pub packs: Vec<PackLayer>,
}

impl BuiltImage {
    /// The manifest's digest: what the image is pinned by.
    pub fn digest(&self) -> String {
        self.image.digest(&self.annotations)
    }
}

/// One pack's layer, and how it was made.
#[derive(Debug, Clone)]
pub struct PackLayer {
    pub pin: PackPin,
    /// `sha256:` digest of the layer blob.
    pub layer: String,
    /// Unchanged since an earlier build: taken whole from the layer cache.
    pub reused: bool,
    /// Bytes of the layer's tar compressed by this build (the rest, if any, was copied
    /// compressed from an earlier build); 0 when the layer was reused.
    pub bytes_compressed: u64,
}

/// Appends one layer per pack (in pack-name order) to `base`, with the label listing the packs
/// and the OCI annotations. Layers unchanged since a previous build come from `cache`.
pub fn build_image(
    base: Image,
    cache: &LayerCache,
    inputs: &ImageInputs,
) -> Result<BuiltImage, ImageBuildError> {
    let mut packs: Vec<&PackTree> = inputs.packs.iter().collect();
    packs.sort_by(|a, b| a.name.cmp(&b.name));
    let layer_inputs = packs
        .iter()
        .map(|p| pack_layer(p.name.as_str(), &p.pack_dir, p.virtualenv_dir.clone()))
        .collect();
    let progress = &inputs.progress;
    let _phase = progress.phase(Phase::Layer);
    progress.expect(packs.len());
    let built = build_layers_cached_reporting(
        cache,
        layer_inputs,
        &inputs.layer_options,
        inputs.jobs,
        |event| match event {
            LayerEvent::Started(i) => progress.step(packs[i].name.as_str(), Step::Layering),
            LayerEvent::Finished(i) => progress.done(packs[i].name.as_str()),
        },
    )?;

    let created = inputs.layer_options.mtime;
    let mut image = base;
    let mut layers = Vec::new();
    for (pack, cached) in packs.iter().zip(built) {
        let layer = cached.layer.descriptor.digest.clone();
        // Pushing shows the layer by its pack's name.
        progress.named(&layer, pack.name.as_str());
        image.append_layer(
            cached.layer,
            HistoryEntry {
                created_by: created_by(pack.name.as_str(), &pack.pin.version),
                created: Some(created),
                comment: None,
            },
        )?;
        let stats = cached.stats;
        layers.push(PackLayer {
            pin: pack.pin.clone(),
            layer,
            reused: cached.from_cache,
            bytes_compressed: if cached.from_cache {
                0
            } else {
                stats.bytes_uncompressed - stats.bytes_reused
            },
        });
    }
    image.set_created(created)?;
    let pins: Vec<PackPin> = layers.iter().map(|l| l.pin.clone()).collect();
    label::set_packs(&mut image, &pins);

    let mut annotations = BTreeMap::from([(ANNOTATION_CREATED.to_string(), rfc3339(created)?)]);
    if let Some(source) = &inputs.source {
        annotations.insert(
            ANNOTATION_SOURCE.to_string(),
            crate::redact::redact_url(source),
        );
    }
    if let Some(revision) = &inputs.revision {
        annotations.insert(ANNOTATION_REVISION.to_string(), revision.clone());
    }
    Ok(BuiltImage {
        image,
        annotations,
        created,
        mount_from: None,
        layer_sources: BTreeMap::new(),
        packs: layers,
    })
}

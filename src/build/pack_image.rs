//! Building the image: one layer per pack appended to the base, the pack label, the OCI
//! annotations. Nothing is written anywhere yet (see `target`).

use std::collections::BTreeMap;

use super::cache_from::{CacheRef, CachedPack};
use super::label;
use super::layers_label::{self, LayerRecord};
use super::pack_layer::{created_by, pack_layer};
use super::tree::PackTree;
use crate::image::annotations::{ANNOTATION_CREATED, ANNOTATION_REVISION, ANNOTATION_SOURCE};
use crate::image::assemble::{HistoryEntry, Image, ImageError, rfc3339};
use crate::image::layer::LayerOptions;
use crate::image::layer_cache::{
    CacheError, LayerCache, LayerEvent, build_layers_cached_reporting,
};
use crate::image::model::Layer;
use crate::pack::manifest::PackManifest;
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
    /// The packs to layer from their installed trees.
    pub packs: &'a [PackTree],
    /// The packs whose layers are taken from `--cache-from` images.
    pub cached: &'a [CachedPack],
    /// Each installed pack's build key (see `cache_from::BuildSettings::build_key`), when known,
    /// for the layers label.
    pub build_keys: &'a BTreeMap<String, String>,
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
    /// or a `--cache-from` build took them from), which the blob store may lack: a push mounts
    /// each from its own, a file target (or a push elsewhere) downloads it from there.
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
    /// Not made by this build: taken whole from the layer cache or from a `--cache-from` image.
    pub reused: bool,
    /// Where the layer came from.
    pub origin: LayerOrigin,
    /// Bytes of the layer's tar compressed by this build (the rest, if any, was copied
    /// compressed from an earlier build); 0 when the layer was reused.
    pub bytes_compressed: u64,
}

/// Where a pack's layer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerOrigin {
    /// This build wrote the layer's tar from the installed pack and compressed it (copying the
    /// compressed bytes of an unchanged virtualenv from an earlier build where it could).
    Built,
    /// The layer cache had this very layer: the installed pack's files were unchanged since an
    /// earlier build on this cache directory (typically an unchanged install in the build root),
    /// so nothing was tarred or compressed.
    LocalCache,
    /// A `--cache-from` image had the layer this build would make: the pack was neither
    /// installed nor layered, and the layer is reused as it is there.
    CacheFrom(CacheRef),
    /// Taken as it is from one of the images `st2pack merge` merges.
    Merged,
}

/// One pack layer of the image, made or taken.
enum Item<'a> {
    Built(&'a PackTree, crate::image::layer_cache::CachedLayer),
    Taken(&'a CachedPack),
}

impl Item<'_> {
    fn name(&self) -> &str {
        match self {
            Item::Built(pack, _) => pack.name.as_str(),
            Item::Taken(cached) => &cached.record.name,
        }
    }
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

    let mut items: Vec<Item> = packs
        .iter()
        .zip(built)
        .map(|(pack, layer)| Item::Built(pack, layer))
        .chain(inputs.cached.iter().map(Item::Taken))
        .collect();
    items.sort_by(|a, b| a.name().cmp(b.name()));

    let created = inputs.layer_options.mtime;
    let mut image = base;
    let mut layers = Vec::new();
    let mut records = Vec::new();
    let mut layer_sources = BTreeMap::new();
    for item in items {
        let (layer, pack_layer, record) = match item {
            Item::Built(pack, cached) => {
                let stats = cached.stats;
                let dependencies = PackManifest::load(&pack.pack_dir)
                    .map(|m| m.dependencies)
                    .unwrap_or_default();
                let record = LayerRecord::new(
                    cached.layer.diff_id.clone(),
                    inputs.build_keys.get(pack.name.as_str()).cloned(),
                    &dependencies,
                    &pack.pin,
                );
                let made = PackLayer {
                    pin: pack.pin.clone(),
                    layer: cached.layer.descriptor.digest.clone(),
                    reused: cached.from_cache,
                    origin: if cached.from_cache {
                        LayerOrigin::LocalCache
                    } else {
                        LayerOrigin::Built
                    },
                    bytes_compressed: if cached.from_cache {
                        0
                    } else {
                        stats.bytes_uncompressed - stats.bytes_reused
                    },
                };
                (cached.layer, made, record)
            }
            Item::Taken(cached) => {
                if let CacheRef::Registry(reference) = &cached.from {
                    layer_sources.insert(cached.layer.descriptor.digest.clone(), reference.clone());
                }
                let taken = PackLayer {
                    pin: cached.record.pin.clone(),
                    layer: cached.layer.descriptor.digest.clone(),
                    reused: true,
                    origin: LayerOrigin::CacheFrom(cached.from.clone()),
                    bytes_compressed: 0,
                };
                (cached.layer.clone(), taken, cached.record.clone())
            }
        };
        // Pushing shows the layer by its pack's name.
        progress.named(&pack_layer.layer, &pack_layer.pin.name);
        append_pack_layer(&mut image, layer, &pack_layer.pin, created)?;
        layers.push(pack_layer);
        records.push(record);
    }
    image.set_created(created)?;
    let pins: Vec<PackPin> = layers.iter().map(|l| l.pin.clone()).collect();
    label::set_packs(&mut image, &pins);
    layers_label::set_layers(&mut image, &records);

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
        layer_sources,
        packs: layers,
    })
}

/// Appends a pack's layer with its history entry: the same whether the layer was made or taken.
fn append_pack_layer(
    image: &mut Image,
    layer: Layer,
    pin: &PackPin,
    created: u64,
) -> Result<(), ImageError> {
    image.append_layer(
        layer,
        HistoryEntry {
            created_by: created_by(&pin.name, &pin.version),
            created: Some(created),
            comment: None,
        },
    )
}

//! Building the image: each pack's layers (see `pack_layer`) appended to the base, the pack
//! labels, the OCI annotations. Nothing is written anywhere yet (see `target`).

use std::collections::BTreeMap;

use super::cache_from::{CacheRef, CachedPack};
use super::label;
use super::layers_label::{self, LayerRecord};
use super::pack_layer::{created_by, pack_layer, virtualenv_created_by, virtualenv_layer};
use super::tree::PackTree;
use crate::image::annotations::{ANNOTATION_CREATED, ANNOTATION_REVISION, ANNOTATION_SOURCE};
use crate::image::assemble::{HistoryEntry, Image, ImageError, rfc3339};
use crate::image::layer::LayerOptions;
use crate::image::layer_cache::{
    CacheError, CachedLayer, LayerCache, LayerEvent, build_layers_cached_reporting,
};
use crate::image::model::Layer;
use crate::pack::manifest::PackManifest;
use crate::pack::pin::PackPin;
use crate::progress::{Phase, Progress, Step};
use crate::registry::Reference;

/// The most layers an image may have for every container runtime to run it: Docker refuses more
/// (`max depth exceeded`), CRI-O more than 127; containerd has no such limit.
pub const MAX_RUNNABLE_LAYERS: usize = 125;

/// What to tell the user of an image some container runtimes refuse to run for its number of
/// layers.
pub fn layer_count_warning(image: &Image) -> Option<String> {
    let layers = image.layers.len();
    (layers > MAX_RUNNABLE_LAYERS).then(|| {
        format!(
            "the image has {layers} layers (two per pack, and its base's): Docker refuses to run \
             an image of more than {MAX_RUNNABLE_LAYERS} and CRI-O one of more than 127 \
             (containerd has no such limit); split the packs across images (the chart's \
             st2.packs.images is a list)"
        )
    })
}

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
    /// Installed packs whose virtualenv layer is taken from a `--cache-from` image, by name.
    pub virtualenvs_taken: &'a BTreeMap<String, TakenVirtualenv>,
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
    /// One entry per pack, in image order.
    pub packs: Vec<PackLayer>,
}

impl BuiltImage {
    /// The manifest's digest: what the image is pinned by.
    pub fn digest(&self) -> String {
        self.image.digest(&self.annotations)
    }
}

/// One pack's layers, and how each was made.
#[derive(Debug, Clone)]
pub struct PackLayer {
    pub pin: PackPin,
    /// The layer of the pack's directory (in an image made before virtualenvs had layers of
    /// their own, the one layer holding both).
    pub layer: MadeLayer,
    /// The layer of its virtualenv, right below the pack's; `None` for a pack without one.
    pub virtualenv: Option<MadeLayer>,
}

impl PackLayer {
    /// Every layer of the pack was reused, none made by this build.
    pub fn reused(&self) -> bool {
        self.layers().all(MadeLayer::reused)
    }

    /// The pack's layers, in image order.
    pub fn layers(&self) -> impl Iterator<Item = &MadeLayer> {
        self.virtualenv.iter().chain([&self.layer])
    }
}

/// One layer of the image, and where it came from.
#[derive(Debug, Clone)]
pub struct MadeLayer {
    /// `sha256:` digest of the layer blob.
    pub digest: String,
    pub origin: LayerOrigin,
    /// Bytes of the layer's tar compressed by this build (the rest, if any, was copied
    /// compressed from an earlier build); 0 when the layer was reused.
    pub bytes_compressed: u64,
}

impl MadeLayer {
    /// Not made by this build: taken whole from the layer cache or from another image.
    pub fn reused(&self) -> bool {
        self.origin != LayerOrigin::Built
    }

    /// `layer`, taken as it is from `origin`.
    pub fn taken(layer: &Layer, origin: LayerOrigin) -> MadeLayer {
        MadeLayer {
            digest: layer.descriptor.digest.clone(),
            origin,
            bytes_compressed: 0,
        }
    }
}

/// Where a layer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerOrigin {
    /// This build wrote the layer's tar from the installed pack and compressed it (copying the
    /// compressed bytes of unchanged files from an earlier build where it could).
    Built,
    /// The layer cache had this very layer: the installed files were unchanged since an earlier
    /// build on this cache directory (typically an unchanged install in the build root), so
    /// nothing was tarred or compressed.
    LocalCache,
    /// A `--cache-from` image had the layer this build would make: it was neither installed nor
    /// layered, and the layer is reused as it is there.
    CacheFrom(CacheRef),
    /// Taken as it is from one of the images `st2pack merge` merges.
    Merged,
}

/// A virtualenv layer taken from a `--cache-from` image for a pack this build installed: the
/// pack's commit changed, its virtualenv did not, so none was built.
#[derive(Debug, Clone)]
pub struct TakenVirtualenv {
    pub layer: Layer,
    pub from: CacheRef,
}

/// Where one layer of the image comes from before it is appended.
enum Source<'a> {
    /// Built (or found in the layer cache) by this build.
    Here(CachedLayer),
    Taken(&'a Layer, &'a CacheRef),
}

impl Source<'_> {
    fn into_layer(self, layer_sources: &mut BTreeMap<String, Reference>) -> (Layer, MadeLayer) {
        match self {
            Source::Here(cached) => {
                let made = MadeLayer {
                    digest: cached.layer.descriptor.digest.clone(),
                    origin: if cached.from_cache {
                        LayerOrigin::LocalCache
                    } else {
                        LayerOrigin::Built
                    },
                    bytes_compressed: if cached.from_cache {
                        0
                    } else {
                        cached.stats.bytes_uncompressed - cached.stats.bytes_reused
                    },
                };
                (cached.layer, made)
            }
            Source::Taken(layer, from) => {
                if let CacheRef::Registry(reference) = from {
                    layer_sources.insert(layer.descriptor.digest.clone(), reference.clone());
                }
                (
                    layer.clone(),
                    MadeLayer::taken(layer, LayerOrigin::CacheFrom(from.clone())),
                )
            }
        }
    }
}

/// One pack of the image, made or taken, before its layers are appended.
struct Item<'a> {
    pin: PackPin,
    virtualenv: Option<Source<'a>>,
    pack: Source<'a>,
    record: RecordOf<'a>,
}

/// Where a pack's entry in the layers label comes from.
enum RecordOf<'a> {
    /// Copied from the image its layers were taken from.
    Copied(&'a LayerRecord),
    /// Written once its layers' diff ids are known.
    New {
        build_key: Option<String>,
        dependencies: Vec<String>,
    },
}

impl RecordOf<'_> {
    fn record(self, pin: &PackPin, diff_id: String, venv_diff_id: Option<String>) -> LayerRecord {
        match self {
            RecordOf::Copied(record) => record.clone(),
            RecordOf::New {
                build_key,
                dependencies,
            } => LayerRecord::new(diff_id, venv_diff_id, build_key, &dependencies, pin),
        }
    }
}

/// Which layer of which installed pack an input of the layer builder is.
#[derive(Clone, Copy)]
enum Part {
    Virtualenv(usize),
    Pack(usize),
}

/// Appends each pack's layers (in pack-name order: its virtualenv's, then its own) to `base`,
/// with the labels listing the packs and the OCI annotations. Layers unchanged since a previous
/// build come from `cache`.
pub fn build_image(
    base: Image,
    cache: &LayerCache,
    inputs: &ImageInputs,
) -> Result<BuiltImage, ImageBuildError> {
    let mut packs: Vec<&PackTree> = inputs.packs.iter().collect();
    packs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut parts = Vec::new();
    let mut layer_inputs = Vec::new();
    for (index, pack) in packs.iter().enumerate() {
        let name = pack.name.as_str();
        if let Some(venv) = &pack.virtualenv_dir
            && !inputs.virtualenvs_taken.contains_key(name)
        {
            parts.push(Part::Virtualenv(index));
            layer_inputs.push(virtualenv_layer(name, venv));
        }
        parts.push(Part::Pack(index));
        layer_inputs.push(pack_layer(name, &pack.pack_dir));
    }
    let progress = &inputs.progress;
    let shown = |part: Part| match part {
        Part::Virtualenv(i) => format!("{} virtualenv", packs[i].name),
        Part::Pack(i) => packs[i].name.to_string(),
    };
    let _phase = progress.phase(Phase::Layer);
    progress.expect(layer_inputs.len());
    let built = build_layers_cached_reporting(
        cache,
        layer_inputs,
        &inputs.layer_options,
        inputs.jobs,
        |event| match event {
            LayerEvent::Started(i) => progress.step(&shown(parts[i]), Step::Layering),
            LayerEvent::Finished(i) => progress.done(&shown(parts[i])),
        },
    )?;

    let mut pack_layers: Vec<Option<CachedLayer>> = vec![None; packs.len()];
    let mut venv_layers: Vec<Option<CachedLayer>> = vec![None; packs.len()];
    for (part, layer) in parts.into_iter().zip(built) {
        match part {
            Part::Virtualenv(i) => venv_layers[i] = Some(layer),
            Part::Pack(i) => pack_layers[i] = Some(layer),
        }
    }
    let mut items: Vec<Item> = Vec::new();
    for ((pack, layer), venv_layer) in packs.iter().zip(pack_layers).zip(venv_layers) {
        let name = pack.name.as_str();
        let Some(layer) = layer else {
            continue; // Every input gave a layer: the builder fails otherwise.
        };
        let virtualenv = match inputs.virtualenvs_taken.get(name) {
            Some(taken) => Some(Source::Taken(&taken.layer, &taken.from)),
            None => venv_layer.map(Source::Here),
        };
        let dependencies = PackManifest::load(&pack.pack_dir)
            .map(|m| m.dependencies)
            .unwrap_or_default();
        items.push(Item {
            pin: pack.pin.clone(),
            virtualenv,
            pack: Source::Here(layer),
            record: RecordOf::New {
                build_key: inputs.build_keys.get(name).cloned(),
                dependencies,
            },
        });
    }
    for cached in inputs.cached {
        items.push(Item {
            pin: cached.record.pin.clone(),
            virtualenv: cached
                .virtualenv_layer
                .as_ref()
                .map(|layer| Source::Taken(layer, &cached.from)),
            pack: Source::Taken(&cached.layer, &cached.from),
            record: RecordOf::Copied(&cached.record),
        });
    }
    items.sort_by(|a, b| a.pin.name.cmp(&b.pin.name));

    let created = inputs.layer_options.mtime;
    let mut image = base;
    let mut layers = Vec::new();
    let mut records = Vec::new();
    let mut layer_sources = BTreeMap::new();
    for item in items {
        let pin = &item.pin;
        let mut append = |source: Source, created_by: String, shown: &str| {
            let (layer, made) = source.into_layer(&mut layer_sources);
            // Pushing shows the layer by the name of what it holds.
            progress.named(&made.digest, shown);
            let diff_id = layer.diff_id.clone();
            append_layer(&mut image, layer, created_by, created).map(|()| (made, diff_id))
        };
        let virtualenv = item
            .virtualenv
            .map(|source| {
                append(
                    source,
                    virtualenv_created_by(&pin.name, &pin.version),
                    &format!("{} virtualenv", pin.name),
                )
            })
            .transpose()?;
        let (made, diff_id) = append(item.pack, created_by(&pin.name, &pin.version), &pin.name)?;
        let (virtualenv, venv_diff_id) = virtualenv.unzip();
        records.push(item.record.record(pin, diff_id, venv_diff_id));
        layers.push(PackLayer {
            pin: item.pin,
            layer: made,
            virtualenv,
        });
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

/// Appends a layer with its history entry: the same whether the layer was made or taken.
fn append_layer(
    image: &mut Image,
    layer: Layer,
    created_by: String,
    created: u64,
) -> Result<(), ImageError> {
    image.append_layer(
        layer,
        HistoryEntry {
            created_by,
            created: Some(created),
            comment: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::assemble::descriptor_of;
    use crate::image::model::{OCI_LAYER_GZIP, sha256_digest};

    #[test]
    fn an_image_some_runtimes_refuse_for_its_layers_is_warned_about() {
        let mut image = Image::scratch();
        for n in 0..MAX_RUNNABLE_LAYERS {
            let bytes = n.to_string().into_bytes();
            let layer = Layer {
                descriptor: descriptor_of(OCI_LAYER_GZIP, &bytes),
                diff_id: sha256_digest(&bytes),
            };
            image.append_layer(layer, HistoryEntry::default()).unwrap();
        }
        assert_eq!(layer_count_warning(&image), None);
        let layer = image.layers[0].clone();
        image.append_layer(layer, HistoryEntry::default()).unwrap();
        let warning = layer_count_warning(&image).unwrap();
        assert!(warning.starts_with("the image has 126 layers"), "{warning}");
        assert!(warning.contains("st2.packs.images"), "{warning}");
    }
}

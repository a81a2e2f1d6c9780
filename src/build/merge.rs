//! Merging pack images: one image from the pack layers of several images st2pack built, without
//! installing, layering or (when it can be helped) moving any layer again.
//!
//! Teams that own different packs build their images on their own; a cluster wants one image,
//! pinned by one digest. A pack image is its base's layers and then each pack's layers, in
//! pack-name order: its virtualenv's, described in the config's history by
//! [`pack_layer::virtualenv_created_by`] (absent in images made before virtualenvs had layers of
//! their own), then its own, described by [`pack_layer::created_by`]; the packs are listed in the
//! [`label`]. An image is only taken when those agree, layer by layer: the top layers' history
//! names the label's packs, in order. Anything else (another tool's
//! image, a config edited since) is refused naming the image, not guessed at: a wrong guess would
//! ship one pack's files under another's name.
//!
//! The merged image is what `st2pack build` would make of the same layers on the same base: the
//! pack layers in pack-name order, their history entries, the label sorted, the created time and
//! annotations of a build. Only manifests and configs are read; a push to the registry the
//! images are in mounts each layer from the repository it came from. Layers are fetched into the
//! blob store only for a target that needs their bytes (an OCI layout, an archive, another
//! registry), or when a registry refuses a mount.

use std::collections::BTreeMap;

use thiserror::Error;

use super::inspect::{ImageName, InspectError, ReadImage};
use super::label::{self, LabelError, PACKS_LABEL};
use super::layers_label::{self, LayerRecord};
use super::pack_image::{BuiltImage, LayerOrigin, MadeLayer, PackLayer, layer_count_warning};
use super::pack_layer;
use super::target::{Target, TargetError, Written};
use super::{BaseImage, BuildEvent};
use crate::cache::Cache;
use crate::image::annotations::{ANNOTATION_CREATED, ANNOTATION_REVISION, ANNOTATION_SOURCE};
use crate::image::assemble::{HistoryEntry, Image, ImageError, rfc3339};
use crate::image::blobs::{BlobError, BlobStore};
use crate::image::model::Layer;
use crate::pack::pin::PackPin;
use crate::progress::Progress;
use crate::registry::{Reference, RegistryClient, RegistryError, pull_layers};

/// Everything a merge needs, already parsed.
pub struct MergeRequest {
    /// The pack images, in order: a pack in a later one replaces the same pack in an earlier one.
    pub images: Vec<ImageName>,
    /// Where the base (non-pack) layers come from; the first image's when `None`.
    pub base: Option<BaseImage>,
    /// Written in this order.
    pub targets: Vec<Target>,
    /// Seconds since 1970 of every timestamp written (`SOURCE_DATE_EPOCH`), as for a build.
    pub created: u64,
    /// `org.opencontainers.image.source` / `.revision`, when known.
    pub source: Option<String>,
    pub revision: Option<String>,
    /// Holds the blob store the layers are fetched into when a target needs them.
    pub cache: Cache,
    /// For the images' registries and the registry targets.
    pub registry: RegistryClient,
    /// Where fetches and pushes are shown as they happen.
    pub progress: Progress,
}

/// What a merge made.
pub struct MergeOutcome {
    pub digest: String,
    pub image: BuiltImage,
    /// One entry per target, in the request's order.
    pub written: Vec<Written>,
    /// Where each pack of the image came from, in image order.
    pub packs: Vec<MergedPack>,
}

/// One pack of the merged image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedPack {
    pub name: String,
    pub version: String,
    /// The image it was taken from, as given.
    pub from: String,
    /// The earlier images whose copy of the pack it replaced, as given, with their version.
    pub replaced: Vec<(String, String)>,
}

#[derive(Debug, Error)]
pub enum MergeError {
    #[error(
        "st2pack merge needs at least two images, got {}; name every pack image to merge, \
         e.g. st2pack merge REGISTRY/team-a/st2packs:1 REGISTRY/team-b/st2packs:1 --tag REF",
        if given.is_empty() { "none".to_string() } else { format!("only {}", given.join(", ")) }
    )]
    TooFewImages { given: Vec<String> },
    /// An image that cannot be read: its message names it.
    #[error(transparent)]
    Read(Box<InspectError>),
    #[error(
        "{image} is not a pack image: its config has no {PACKS_LABEL} label; merge images made \
         by st2pack build or st2pack merge (st2pack inspect lists what an image carries)"
    )]
    NotPackImage { image: String },
    #[error("{image}: {source}")]
    Label { image: String, source: LabelError },
    #[error(
        "{image}: cannot tell which layer holds which pack ({reason}); merge only images made by \
         st2pack build or st2pack merge, or build this one again"
    )]
    UnknownLayers { image: String, reason: String },
    #[error(
        "cannot merge images of different platforms: {image} is {platform}, {other} is \
         {other_platform}; merge images built for the cluster's platform"
    )]
    Platform {
        image: String,
        platform: String,
        other: String,
        other_platform: String,
    },
    #[error(transparent)]
    Runtime(Box<RuntimeConflict>),
    #[error("--base {base}: {source}")]
    Base {
        base: String,
        source: Box<InspectError>,
    },
    #[error(transparent)]
    Blobs(#[from] BlobError),
    #[error("cannot fetch the layers of {image}: {source}")]
    Fetch {
        image: String,
        source: Box<RegistryError>,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// Two packs whose virtualenvs need different runtimes.
#[derive(Debug, Error)]
#[error(
    "cannot merge packs built for different runtimes: pack {} of {} was built for {}, pack {} \
     of {} for {}; a virtualenv only runs on the runtime it was built for, so build both images \
     for the cluster's runtime",
    .first.pack, .first.image, .first.runtime, .second.pack, .second.image, .second.runtime
)]
pub struct RuntimeConflict {
    pub first: BuiltFor,
    pub second: BuiltFor,
}

/// A pack, the image it comes from, and the runtime its virtualenv was built for.
#[derive(Debug)]
pub struct BuiltFor {
    pub image: String,
    pub pack: String,
    pub runtime: String,
}

impl MergeError {
    /// Exit code: 2 for images that cannot be merged as given (named wrongly, not found, not pack
    /// images, of different runtimes), 1 for a failure along the way (a registry's own code).
    pub fn exit_code(&self) -> i32 {
        let read = |e: &InspectError| match e {
            InspectError::Registry(e) if matches!(e.root(), RegistryError::NotFound { .. }) => 2,
            other => other.exit_code(),
        };
        match self {
            MergeError::Read(e) | MergeError::Base { source: e, .. } => read(e),
            MergeError::TooFewImages { .. }
            | MergeError::NotPackImage { .. }
            | MergeError::Label { .. }
            | MergeError::UnknownLayers { .. }
            | MergeError::Platform { .. }
            | MergeError::Runtime(_) => 2,
            MergeError::Fetch { source, .. } => source.exit_code(),
            MergeError::Target(e) => e.exit_code(),
            MergeError::Blobs(_) | MergeError::Image(_) => 1,
        }
    }
}

/// An image read for the merge: where its layers are, and which of them are its packs'.
struct Source {
    /// As the user gave it.
    name: String,
    /// The registry repository holding its layers.
    reference: Option<Reference>,
    /// The OCI layout holding its layers.
    layout_store: Option<BlobStore>,
    image: Image,
    /// Its packs, bottom first (in pack-name order); the layers below theirs are its base's.
    packs: Vec<FoundPack>,
}

impl Source {
    fn base_layers(&self) -> usize {
        self.image.layers.len() - self.packs.iter().map(|p| p.layers().count()).sum::<usize>()
    }
}

/// A pack's layers in an image.
#[derive(Debug, Clone)]
struct FoundPack {
    pin: PackPin,
    /// Its virtualenv's, when it has a layer of its own.
    virtualenv_layer: Option<Layer>,
    layer: Layer,
}

impl FoundPack {
    /// Its layers, in image order.
    fn layers(&self) -> impl Iterator<Item = &Layer> {
        self.virtualenv_layer.iter().chain([&self.layer])
    }
}

/// Merges the pack layers of `request.images` onto the base and writes the image to every
/// target, telling `on_event` what happens as it happens (warnings, the image made, each target
/// written), as [`super::run`] does.
pub async fn run(
    request: &MergeRequest,
    mut on_event: impl FnMut(BuildEvent<'_>),
) -> Result<MergeOutcome, MergeError> {
    if request.images.len() < 2 {
        return Err(MergeError::TooFewImages {
            given: request.images.iter().map(display_name).collect(),
        });
    }
    let mut sources = Vec::new();
    for name in &request.images {
        let read = name
            .read(&request.registry)
            .await
            .map_err(|e| MergeError::Read(Box::new(e)))?;
        sources.push(pack_source(name, read)?);
    }
    let base = match &request.base {
        None => None,
        Some(base) => Some(read_base(base, &request.registry, &mut on_event).await?),
    };
    let merged = merge_packs(&sources);
    check_platforms(base.as_ref(), &sources)?;
    check_runtimes(&merged, &sources, &mut on_event)?;

    // The base: --base as it is, or the first image without its packs.
    let base = match base {
        Some(base) => base,
        None => {
            let first = &sources[0];
            let mut image = first.image.clone();
            image.keep_bottom_layers(first.base_layers())?;
            Source {
                image,
                packs: Vec::new(),
                name: first.name.clone(),
                reference: first.reference.clone(),
                layout_store: first.layout_store.clone(),
            }
        }
    };
    let mut built = assemble(&base, &merged, request)?;
    if let Some(warning) = layer_count_warning(&built.image) {
        on_event(BuildEvent::Warning(warning));
    }
    on_event(BuildEvent::Built(&built));

    // Where each layer is: a registry repository (mounted, or fetched when a target needs its
    // bytes), or a layout (linked into the store now, which costs nothing).
    let store = request.cache.blob_store()?;
    let mut origins: Vec<(&Source, &Layer)> =
        base.image.layers.iter().map(|l| (&base, l)).collect();
    origins.extend(
        merged
            .iter()
            .flat_map(|m| m.pack.layers().map(|layer| (&sources[m.source], layer))),
    );
    for (source, layer) in &origins {
        if let Some(layout) = &source.layout_store {
            store.import(layout, &layer.descriptor.digest)?;
        }
        if let Some(reference) = &source.reference {
            built
                .layer_sources
                .insert(layer.descriptor.digest.clone(), reference.clone());
        }
    }

    let mut written = Vec::new();
    for target in &request.targets {
        let needed: Vec<&(&Source, &Layer)> = origins
            .iter()
            .filter(|(source, _)| needs_bytes(target, source.reference.as_ref()))
            .collect();
        fetch_layers(&needed, &store, &request.registry).await?;
        let done = match target
            .write(&built, &store, &request.registry, &request.progress)
            .await
        {
            // A registry that would not mount a layer: fetch it, and push again (what is there
            // now is skipped).
            Err(TargetError::Push { source, .. }) if is_missing_blob(&source) => {
                let all: Vec<&(&Source, &Layer)> = origins.iter().collect();
                fetch_layers(&all, &store, &request.registry).await?;
                target
                    .write(&built, &store, &request.registry, &request.progress)
                    .await?
            }
            other => other?,
        };
        on_event(BuildEvent::Wrote(&done));
        written.push(done);
    }

    let packs = merged
        .iter()
        .map(|m| MergedPack {
            name: m.pack.pin.name.clone(),
            version: m.pack.pin.version.clone(),
            from: sources[m.source].name.clone(),
            replaced: m.replaced.clone(),
        })
        .collect();
    Ok(MergeOutcome {
        digest: built.digest(),
        image: built,
        written,
        packs,
    })
}

fn display_name(name: &ImageName) -> String {
    match name {
        ImageName::Layout(name) | ImageName::Registry { name, .. } => name.clone(),
    }
}

/// The pack layers of an image read for the merge, found as the module docs say.
fn pack_source(name: &ImageName, read: ReadImage) -> Result<Source, MergeError> {
    let image_name = display_name(name);
    let packs = pack_layers(&image_name, &read.image)?;
    Ok(Source {
        name: image_name,
        reference: name.reference().map(|r| match &read.digest {
            // Blobs are fetched and mounted from the manifest that was read, even if the tag
            // moves meanwhile.
            Some(digest) => r.with_digest(digest).unwrap_or_else(|_| r.clone()),
            None => r.clone(),
        }),
        layout_store: read.layout_store,
        image: read.image,
        packs,
    })
}

/// Which of `image`'s layers hold which pack: from the top down, for each pack of the label in
/// reverse (pack-name) order, a layer described in the history as that pack's, with below it,
/// when described as such, its virtualenv's.
fn pack_layers(name: &str, image: &Image) -> Result<Vec<FoundPack>, MergeError> {
    if !image.labels().contains_key(PACKS_LABEL) {
        return Err(MergeError::NotPackImage {
            image: name.to_string(),
        });
    }
    let pins = label::packs(image).map_err(|source| MergeError::Label {
        image: name.to_string(),
        source,
    })?;
    let unknown = |reason: String| MergeError::UnknownLayers {
        image: name.to_string(),
        reason,
    };
    if pins.windows(2).any(|w| w[0].name >= w[1].name) {
        return Err(unknown(format!(
            "its {PACKS_LABEL} label does not list each pack once, sorted by name"
        )));
    }
    let Some(history) = image.layer_history() else {
        return Err(unknown(format!(
            "its history does not describe each of its {} layers",
            image.layers.len()
        )));
    };
    if pins.len() > image.layers.len() {
        return Err(unknown(format!(
            "its label lists {} packs but it has {} layers",
            pins.len(),
            image.layers.len()
        )));
    }
    let mut below = image.layers.len();
    let mut found = Vec::new();
    for pin in pins.into_iter().rev() {
        let expected = pack_layer::created_by(&pin.name, &pin.version);
        let Some(top) = below.checked_sub(1) else {
            return Err(unknown(format!("no layer is left for pack {}", pin.name)));
        };
        if history[top] != expected {
            return Err(unknown(format!(
                "layer {} is described as {:?}, not {expected:?}",
                top + 1,
                history[top]
            )));
        }
        below = top;
        let virtualenv = pack_layer::virtualenv_created_by(&pin.name, &pin.version);
        let virtualenv_layer = match below.checked_sub(1) {
            Some(under) if history[under] == virtualenv => {
                below = under;
                Some(image.layers[under].clone())
            }
            _ => None,
        };
        found.push(FoundPack {
            pin,
            virtualenv_layer,
            layer: image.layers[top].clone(),
        });
    }
    found.reverse();
    Ok(found)
}

/// `--base`: read (never its layers) like the images, whatever it carries.
async fn read_base(
    base: &BaseImage,
    registry: &RegistryClient,
    on_event: &mut impl FnMut(BuildEvent<'_>),
) -> Result<Source, MergeError> {
    let name = match base {
        BaseImage::Scratch => {
            on_event(BuildEvent::Warning(
                "--base scratch has no /bin/sh or /bin/cp; the stackstorm-k8s chart's init container needs both to copy the packs".to_string(),
            ));
            return Ok(Source {
                name: "scratch".into(),
                reference: None,
                layout_store: None,
                image: Image::scratch(),
                packs: Vec::new(),
            });
        }
        BaseImage::Layout(name) => ImageName::Layout(name.clone()),
        BaseImage::Registry { name, reference } => ImageName::Registry {
            name: name.clone(),
            reference: reference.clone(),
        },
    };
    let read = name
        .read(registry)
        .await
        .map_err(|source| MergeError::Base {
            base: base.to_string(),
            source: Box::new(source),
        })?;
    if let Ok(packs) = label::packs(&read.image)
        && !packs.is_empty()
    {
        on_event(BuildEvent::Warning(format!(
            "--base {base} is a pack image: its packs ({}) stay in its layers but are not listed \
             in the merged image's label; give it as an image to merge instead",
            packs
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(Source {
        name: base.to_string(),
        reference: base.reference().map(|r| match &read.digest {
            Some(digest) => r.with_digest(digest).unwrap_or_else(|_| r.clone()),
            None => r.clone(),
        }),
        layout_store: read.layout_store,
        image: read.image,
        packs: Vec::new(),
    })
}

/// One pack of the merged image: the last image's copy of it.
#[derive(Debug, Clone)]
struct Merged {
    pack: FoundPack,
    /// Index of the image it comes from.
    source: usize,
    replaced: Vec<(String, String)>,
    /// Its entry in that image's layers label, carried into the merged image's so that a later
    /// `--cache-from` the merged image can take the layer; absent when the image has none.
    record: Option<LayerRecord>,
}

/// Every pack of every image, the last copy of each winning, in pack-name order.
fn merge_packs(sources: &[Source]) -> Vec<Merged> {
    let mut merged: BTreeMap<String, Merged> = BTreeMap::new();
    for (index, source) in sources.iter().enumerate() {
        let records = layers_label::layers(&source.image).unwrap_or_default();
        for pack in &source.packs {
            let name = &pack.pin.name;
            let replaced = match merged.remove(name) {
                Some(earlier) => {
                    let mut replaced = earlier.replaced;
                    replaced.push((
                        sources[earlier.source].name.clone(),
                        earlier.pack.pin.version,
                    ));
                    replaced
                }
                None => Vec::new(),
            };
            merged.insert(
                name.clone(),
                Merged {
                    pack: pack.clone(),
                    source: index,
                    replaced,
                    record: records
                        .iter()
                        .find(|r| {
                            r.name == *name
                                && r.diff_id == pack.layer.diff_id
                                && r.virtualenv_diff_id.as_ref()
                                    == pack.virtualenv_layer.as_ref().map(|l| &l.diff_id)
                        })
                        .cloned(),
                },
            );
        }
    }
    merged.into_values().collect()
}

/// Pack layers are built for one platform: every image (and the base) must be of the same.
fn check_platforms(base: Option<&Source>, sources: &[Source]) -> Result<(), MergeError> {
    let platform = |source: &Source| {
        let (os, architecture, variant) = source.image.platform();
        match variant {
            Some(variant) => format!("{os}/{architecture}/{variant}"),
            None => format!("{os}/{architecture}"),
        }
    };
    let mut all = base.into_iter().chain(sources);
    let Some(first) = all.next() else {
        return Ok(());
    };
    let expected = platform(first);
    for other in all {
        let actual = platform(other);
        if actual != expected {
            return Err(MergeError::Platform {
                image: first.name.clone(),
                platform: expected,
                other: other.name.clone(),
                other_platform: actual,
            });
        }
    }
    Ok(())
}

/// The packs' virtualenvs must run on one runtime. Packs whose label records no runtime (built
/// before st2pack recorded it) can only be compared by their Python version, `MAJOR.MINOR`,
/// which is said in a warning.
fn check_runtimes(
    merged: &[Merged],
    sources: &[Source],
    on_event: &mut impl FnMut(BuildEvent<'_>),
) -> Result<(), MergeError> {
    // The first pack seen with a runtime, and the first with a Python version only.
    let mut with_runtime: Option<&Merged> = None;
    let mut with_python: Option<&Merged> = None;
    let mut unrecorded: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    let conflict = |a: &Merged, b: &Merged| {
        let describe = |m: &Merged| match m.pack.pin.runtime() {
            Some(runtime) => runtime.describe(),
            None => format!(
                "Python {} (no runtime recorded)",
                m.pack.pin.python_version().unwrap_or("?")
            ),
        };
        let built_for = |m: &Merged| BuiltFor {
            image: sources[m.source].name.clone(),
            pack: m.pack.pin.name.clone(),
            runtime: describe(m),
        };
        MergeError::Runtime(Box::new(RuntimeConflict {
            first: built_for(a),
            second: built_for(b),
        }))
    };
    let minor = |version: &str| version.split('.').take(2).collect::<Vec<_>>().join(".");
    let python = |m: &Merged| match m.pack.pin.runtime() {
        Some(runtime) => Some(minor(&runtime.python)),
        None => m.pack.pin.python_version().map(minor),
    };
    for pack in merged {
        let Some(mine) = python(pack) else {
            continue; // No virtualenv: nothing to run.
        };
        match pack.pack.pin.runtime() {
            Some(runtime) => {
                if let Some(first) = with_runtime
                    && let Some(theirs) = first.pack.pin.runtime()
                    && !runtime.runs_with(theirs)
                {
                    return Err(conflict(first, pack));
                }
                with_runtime = with_runtime.or(Some(pack));
            }
            None => {
                unrecorded
                    .entry(pack.source)
                    .or_default()
                    .push(&pack.pack.pin.name);
                with_python = with_python.or(Some(pack));
            }
        }
        for first in [with_runtime, with_python].into_iter().flatten() {
            if python(first).is_some_and(|theirs| theirs != mine) {
                return Err(conflict(first, pack));
            }
        }
    }
    for (source, packs) in unrecorded {
        on_event(BuildEvent::Warning(format!(
            "{}: pack(s) {} record no runtime (built by an st2pack that did not record it); they \
             were compared with the other packs by Python version only",
            sources[source].name,
            packs.join(", ")
        )));
    }
    Ok(())
}

/// The merged image: the base, then each pack's layers (its virtualenv's, then its own) in
/// pack-name order with their history entries, the labels, and a build's created time and
/// annotations.
fn assemble(
    base: &Source,
    merged: &[Merged],
    request: &MergeRequest,
) -> Result<BuiltImage, MergeError> {
    let mut image = base.image.clone();
    let mut packs = Vec::new();
    let append = |image: &mut Image, layer: &Layer, created_by: String, shown: &str| {
        request.progress.named(&layer.descriptor.digest, shown);
        image.append_layer(
            layer.clone(),
            HistoryEntry {
                created_by,
                created: Some(request.created),
                comment: None,
            },
        )
    };
    for Merged { pack, .. } in merged {
        let pin = &pack.pin;
        if let Some(layer) = &pack.virtualenv_layer {
            append(
                &mut image,
                layer,
                pack_layer::virtualenv_created_by(&pin.name, &pin.version),
                &format!("{} virtualenv", pin.name),
            )?;
        }
        append(
            &mut image,
            &pack.layer,
            pack_layer::created_by(&pin.name, &pin.version),
            &pin.name,
        )?;
        packs.push(PackLayer {
            pin: pin.clone(),
            layer: MadeLayer::taken(&pack.layer, LayerOrigin::Merged),
            virtualenv: pack
                .virtualenv_layer
                .as_ref()
                .map(|layer| MadeLayer::taken(layer, LayerOrigin::Merged)),
        });
    }
    image.set_created(request.created)?;
    let pins: Vec<PackPin> = merged.iter().map(|m| m.pack.pin.clone()).collect();
    label::set_packs(&mut image, &pins);
    let records: Vec<LayerRecord> = merged.iter().filter_map(|m| m.record.clone()).collect();
    layers_label::set_layers(&mut image, &records);

    let mut annotations =
        BTreeMap::from([(ANNOTATION_CREATED.to_string(), rfc3339(request.created)?)]);
    if let Some(source) = &request.source {
        annotations.insert(
            ANNOTATION_SOURCE.to_string(),
            crate::redact::redact_url(source),
        );
    }
    if let Some(revision) = &request.revision {
        annotations.insert(ANNOTATION_REVISION.to_string(), revision.clone());
    }
    Ok(BuiltImage {
        image,
        annotations,
        created: request.created,
        mount_from: None,
        layer_sources: BTreeMap::new(),
        packs,
    })
}

/// Whether writing `target` needs the bytes of a layer found in `source`'s repository (`None`:
/// not in a registry): always for a layout or an archive; for a registry, unless the layer is
/// on that registry already, to be mounted.
fn needs_bytes(target: &Target, source: Option<&Reference>) -> bool {
    match target {
        Target::Layout { .. } | Target::Archive { .. } => true,
        Target::Registry { tags } => match (tags.first(), source) {
            (Some(tag), Some(source)) => !tag.same_registry(source),
            _ => true,
        },
    }
}

/// Downloads into `store` those of `layers` it lacks that are in a registry (a layout's were
/// linked in already).
async fn fetch_layers(
    layers: &[&(&Source, &Layer)],
    store: &BlobStore,
    registry: &RegistryClient,
) -> Result<(), MergeError> {
    let mut wanted: BTreeMap<&str, (&Source, Vec<_>)> = BTreeMap::new();
    for (source, layer) in layers {
        if source.reference.is_some() && !store.contains(&layer.descriptor.digest) {
            wanted
                .entry(source.name.as_str())
                .or_insert_with(|| (source, Vec::new()))
                .1
                .push(layer.descriptor.clone());
        }
    }
    for (source, descriptors) in wanted.into_values() {
        let Some(reference) = &source.reference else {
            continue;
        };
        pull_layers(registry, reference, store, &descriptors)
            .await
            .map_err(|e| MergeError::Fetch {
                image: source.name.clone(),
                source: Box::new(e),
            })?;
    }
    Ok(())
}

/// A push that failed for a layer neither mounted nor in the store.
fn is_missing_blob(error: &RegistryError) -> bool {
    matches!(
        error.root(),
        RegistryError::Store {
            source: BlobError::Missing { .. },
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::assemble::descriptor_of;
    use crate::image::model::{OCI_LAYER_GZIP, sha256_digest};
    use crate::pack::pin::{RuntimePin, VirtualenvPin};

    fn layer(content: &str) -> Layer {
        Layer {
            descriptor: descriptor_of(OCI_LAYER_GZIP, content.as_bytes()),
            diff_id: sha256_digest(format!("{content}-tar").as_bytes()),
        }
    }

    fn pin(name: &str, version: &str, runtime: Option<RuntimePin>) -> PackPin {
        PackPin {
            name: name.into(),
            version: version.into(),
            source: format!("https://example.com/{name}.git"),
            r#ref: None,
            commit: Some("0123abc".into()),
            content_digest: None,
            virtualenv: Some(VirtualenvPin {
                key: None,
                python_version: runtime
                    .as_ref()
                    .map_or("3.8.10".to_string(), |r| format!("{}.2", r.python)),
                runtime,
                ..Default::default()
            }),
        }
    }

    fn runtime(python: &str) -> RuntimePin {
        RuntimePin {
            kind: "preset".into(),
            python: python.into(),
            interpreter: format!("/usr/bin/python{python}"),
            ..Default::default()
        }
    }

    /// A pack image as st2pack build makes one: a base layer, then each pack's virtualenv
    /// layer and its own.
    fn pack_image(packs: &[PackPin]) -> Image {
        image_of(packs, true)
    }

    /// A pack image as st2pack made them before virtualenvs had layers of their own.
    fn image_of(packs: &[PackPin], virtualenv_layers: bool) -> Image {
        let mut image = Image::scratch();
        image
            .append_layer(
                layer("base"),
                HistoryEntry {
                    created_by: "ADD busybox".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        for pin in packs {
            let mut append = |what: String, created_by: String| {
                let entry = HistoryEntry {
                    created_by,
                    created: Some(0),
                    comment: None,
                };
                image.append_layer(layer(&what), entry).unwrap();
            };
            let (name, version) = (&pin.name, &pin.version);
            if virtualenv_layers {
                append(
                    format!("{name}-{version} virtualenv"),
                    pack_layer::virtualenv_created_by(name, version),
                );
            }
            append(
                format!("{name}-{version}"),
                pack_layer::created_by(name, version),
            );
        }
        label::set_packs(&mut image, packs);
        image
    }

    fn source(name: &str, packs: &[PackPin]) -> Source {
        let image = pack_image(packs);
        Source {
            name: name.into(),
            reference: None,
            layout_store: None,
            packs: pack_layers(name, &image).unwrap(),
            image,
        }
    }

    #[test]
    fn the_top_layers_are_the_labels_packs() {
        let packs = [pin("aws", "1.0.0", None), pin("jira", "2.0.0", None)];
        let image = pack_image(&packs);
        let found = pack_layers("img", &image).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].pin.name, "aws");
        assert_eq!(found[0].virtualenv_layer.as_ref(), Some(&image.layers[1]));
        assert_eq!(found[0].layer, image.layers[2]);
        assert_eq!(found[1].virtualenv_layer.as_ref(), Some(&image.layers[3]));
        assert_eq!(found[1].layer, image.layers[4]);

        // An image made when a pack and its virtualenv shared one layer.
        let old = image_of(&packs, false);
        let found = pack_layers("img", &old).unwrap();
        assert!(found.iter().all(|f| f.virtualenv_layer.is_none()));
        assert_eq!(found[0].layer, old.layers[1]);
        assert_eq!(found[1].layer, old.layers[2]);
    }

    #[test]
    fn images_whose_layers_cannot_be_told_apart_are_refused_naming_them() {
        let packs = [pin("aws", "1.0.0", None), pin("jira", "2.0.0", None)];

        let mut plain = pack_image(&packs);
        plain.config["config"]["Labels"] = serde_json::json!({});
        let err = pack_layers("registry/plain:1", &plain).unwrap_err();
        assert!(matches!(err, MergeError::NotPackImage { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("registry/plain:1 is not a pack image")
        );
        assert_eq!(err.exit_code(), 2);

        // The history names another pack than the label for a layer.
        let mut swapped = pack_image(&packs);
        swapped.config["history"][2]["created_by"] = "st2pack: pack jira 2.0.0".into();
        let err = pack_layers("registry/swapped:1", &swapped).unwrap_err();
        assert!(matches!(err, MergeError::UnknownLayers { .. }), "{err}");
        assert!(err.to_string().contains("registry/swapped:1"), "{err}");
        assert!(err.to_string().contains("layer 3"), "{err}");

        // No history for some layers.
        let mut unsaid = pack_image(&packs);
        unsaid.config["history"] = serde_json::json!([]);
        let err = pack_layers("x", &unsaid).unwrap_err();
        assert!(
            err.to_string().contains("history does not describe"),
            "{err}"
        );

        // More packs in the label than layers.
        let mut short = image_of(&packs[..1], false);
        label::set_packs(&mut short, &packs);
        short.layers.remove(0);
        short.config["history"].as_array_mut().unwrap().remove(0);
        let err = pack_layers("x", &short).unwrap_err();
        assert!(err.to_string().contains("lists 2 packs"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn a_later_image_replaces_a_pack_and_the_packs_stay_in_name_order() {
        let a = source(
            "a",
            &[pin("aws", "1.0.0", None), pin("zabbix", "1.0.0", None)],
        );
        let b = source(
            "b",
            &[pin("aws", "2.0.0", None), pin("jira", "1.0.0", None)],
        );
        let c = source("c", &[pin("aws", "3.0.0", None)]);
        let merged = merge_packs(&[a, b, c]);
        let names: Vec<(&str, &str, usize)> = merged
            .iter()
            .map(|m| {
                (
                    m.pack.pin.name.as_str(),
                    m.pack.pin.version.as_str(),
                    m.source,
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("aws", "3.0.0", 2),
                ("jira", "1.0.0", 1),
                ("zabbix", "1.0.0", 0)
            ]
        );
        assert_eq!(
            merged[0].replaced,
            [
                ("a".to_string(), "1.0.0".to_string()),
                ("b".to_string(), "2.0.0".to_string())
            ]
        );
    }

    #[test]
    fn packs_of_different_runtimes_are_refused_naming_both() {
        let a = source("reg/a:1", &[pin("aws", "1.0.0", Some(runtime("3.8")))]);
        let b = source("reg/b:1", &[pin("jira", "1.0.0", Some(runtime("3.10")))]);
        let sources = [a, b];
        let mut warnings = Vec::new();
        let err = check_runtimes(&merge_packs(&sources), &sources, &mut |e| {
            if let BuildEvent::Warning(w) = e {
                warnings.push(w)
            }
        })
        .unwrap_err();
        let message = err.to_string();
        for needle in [
            "pack aws of reg/a:1",
            "CPython 3.8 at /usr/bin/python3.8",
            "pack jira of reg/b:1",
            "CPython 3.10 at /usr/bin/python3.10",
        ] {
            assert!(message.contains(needle), "{needle}: {message}");
        }
        assert_eq!(err.exit_code(), 2);
        assert!(warnings.is_empty());
    }

    #[test]
    fn packs_without_a_runtime_are_compared_by_python_version_with_a_warning() {
        let check = |sources: &[Source]| {
            let mut warnings = Vec::new();
            let outcome = check_runtimes(&merge_packs(sources), sources, &mut |e| {
                if let BuildEvent::Warning(w) = e {
                    warnings.push(w)
                }
            });
            (outcome, warnings)
        };
        // 3.8.10 without a runtime, and a 3.8 runtime: the same Python.
        let same = [
            source("reg/old:1", &[pin("aws", "1.0.0", None)]),
            source("reg/new:1", &[pin("jira", "1.0.0", Some(runtime("3.8")))]),
        ];
        let (outcome, warnings) = check(&same);
        outcome.unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("reg/old:1: pack(s) aws record no runtime"));

        let other = [
            source("reg/old:1", &[pin("aws", "1.0.0", None)]),
            source("reg/new:1", &[pin("jira", "1.0.0", Some(runtime("3.10")))]),
        ];
        let err = check(&other).0.unwrap_err().to_string();
        assert!(err.contains("Python 3.8.10 (no runtime recorded)"), "{err}");
        assert!(err.contains("CPython 3.10"), "{err}");
    }

    #[test]
    fn the_merged_image_is_the_base_and_the_packs_as_a_build_makes_it() {
        let a = source(
            "a",
            &[pin("aws", "1.0.0", None), pin("zabbix", "1.0.0", None)],
        );
        let b = source("b", &[pin("aws", "2.0.0", None)]);
        let sources = [a, b];
        let merged = merge_packs(&sources);
        let mut base = sources[0].image.clone();
        base.keep_bottom_layers(sources[0].base_layers()).unwrap();
        let base = Source {
            name: "a".into(),
            reference: None,
            layout_store: None,
            image: base,
            packs: Vec::new(),
        };
        let request = MergeRequest {
            images: Vec::new(),
            base: None,
            targets: Vec::new(),
            created: 1_700_000_000,
            source: Some("https://user:secret@git.example.com/team/packs".into()),
            revision: None,
            cache: Cache::from_path("/nonexistent"),
            registry: RegistryClient::new(Default::default()).unwrap(),
            progress: Progress::default(),
        };
        let built = assemble(&base, &merged, &request).unwrap();
        // What a build of aws 2.0.0 and zabbix 1.0.0 on that base would be.
        let mut expected = pack_image(&[pin("aws", "2.0.0", None), pin("zabbix", "1.0.0", None)]);
        let history = expected.config["history"].as_array_mut().unwrap();
        for entry in &mut history[1..] {
            entry["created"] = "2023-11-14T22:13:20Z".into();
        }
        expected.set_created(1_700_000_000).unwrap();
        // The images carry no layers label (built before there was one): nothing to carry over.
        layers_label::set_layers(&mut expected, &[]);
        assert_eq!(built.image, expected);
        assert_eq!(
            built.annotations[ANNOTATION_SOURCE],
            "https://***@git.example.com/team/packs"
        );
        assert_eq!(
            built.annotations[ANNOTATION_CREATED],
            "2023-11-14T22:13:20Z"
        );
    }
}

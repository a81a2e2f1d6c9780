//! `st2pack build`: installed packs -> one layer per pack on a base image -> outputs.
//!
//! Building the image (this module) and writing it somewhere (`image::layout`,
//! `image::archive`, `registry`) are separate steps, so one build can go to several targets.

pub mod helm;
pub mod tree;

use std::collections::BTreeMap;

use thiserror::Error;

use crate::image::assemble::{HistoryEntry, Image, ImageError, rfc3339};
use crate::image::labels::{
    self, ANNOTATION_CREATED, ANNOTATION_REVISION, ANNOTATION_SOURCE, PackLabel,
};
use crate::image::layer::{LayerInput, LayerOptions};
use crate::image::layer_cache::{
    CacheError, LayerCache, LayerEvent, build_layers_cached_reporting,
};
use crate::progress::{Phase, Progress, Step};
use tree::PackTree;

/// Seconds since 1970 used for every timestamp when `SOURCE_DATE_EPOCH` is not set: fixed, so
/// builds are reproducible by default.
pub const DEFAULT_EPOCH: u64 = 0;

#[derive(Debug, Error)]
pub enum BuildError {
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

/// A built image and how it was made.
pub struct BuiltImage {
    pub image: Image,
    pub annotations: BTreeMap<String, String>,
    /// One entry per pack layer, in image order.
    pub layers: Vec<PackLayer>,
}

/// How one pack's layer was made.
pub struct PackLayer {
    pub pack: String,
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
) -> Result<BuiltImage, BuildError> {
    let mut packs: Vec<&PackTree> = inputs.packs.iter().collect();
    packs.sort_by(|a, b| a.name.cmp(&b.name));
    let layer_inputs = packs
        .iter()
        .map(|p| LayerInput::pack(p.name.as_str(), &p.pack_dir, p.virtualenv_dir.clone()))
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
        // Pushing shows the layer by its pack's name.
        progress.named(&cached.layer.descriptor.digest, pack.name.as_str());
        image.append_layer(
            cached.layer,
            HistoryEntry {
                created_by: format!("st2pack: pack {} {}", pack.name, pack.version),
                created: Some(created),
                comment: None,
            },
        )?;
        let stats = cached.stats;
        layers.push(PackLayer {
            pack: pack.name.to_string(),
            reused: cached.from_cache,
            bytes_compressed: if cached.from_cache {
                0
            } else {
                stats.bytes_uncompressed - stats.bytes_reused
            },
        });
    }
    image.set_created(created)?;
    let label_entries: Vec<PackLabel> = packs.iter().map(|p| pack_label(p)).collect();
    labels::set_packs(&mut image, &label_entries);

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
        layers,
    })
}

fn pack_label(pack: &PackTree) -> PackLabel {
    PackLabel {
        name: pack.name.to_string(),
        version: pack.version.clone(),
        commit: pack.commit.clone(),
        source: pack
            .source
            .as_deref()
            .map(crate::redact::redact_url)
            .unwrap_or_else(|| pack.pack_dir.display().to_string()),
        python_version: pack.python_version.clone(),
    }
}

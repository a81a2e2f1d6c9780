//! `--cache-from`: a registry image (or an OCI layout) as the build's cache.
//!
//! CI runners start empty, but the registry keeps every image built before. Before installing
//! anything, the build reads each `--cache-from` image's manifest and config — never its
//! layers — and, for every requested pack whose layers there are exactly what this build would
//! make, takes those layers as they are: the pack is not fetched (its ref is only resolved to a
//! commit, with `git ls-remote`, or its directory hashed) nor installed, and its layers are not
//! downloaded nor uploaded (a push to the same repository finds them there; to another
//! repository of the same registry they are mounted). Only the other packs are installed and
//! layered.
//!
//! "Exactly what this build would make" is decided by the image's [`LAYERS_LABEL`], which
//! records each pack's whole pin, its layers' diff ids, its dependencies and a
//! [`BuildSettings::build_key`]. A pack's layers are taken when:
//!
//! * the spec resolves now to the recorded source, ref, and commit (or directory content);
//! * the recorded build key equals this build's for that pack: the virtualenv's settings
//!   (interpreter, runtime, installer and its options, wheelhouse listing, index variables:
//!   every input of the virtualenv key but the pack's requirements files, which the commit
//!   fixes), `--keep-git`, `--allow-pack-index-options`, the layer format (compression, owner,
//!   `SOURCE_DATE_EPOCH`, format version) and where packs go in the image;
//! * the recorded virtualenv pin is the one this build would write (Python version,
//!   interpreter, installer, runtime), taking its key and requirements digest from the record.
//!
//! The pack's recorded dependencies are then requested as if the pack had been installed, so
//! none is dropped. A pack whose commit changed is installed, but its virtualenv is not built
//! when an image has the layer of the very virtualenv it would get (same pack name, build key and
//! virtualenv pin, whose key covers the requirements files and what a local `--find-links` in
//! them offers): the virtualenv's layer is taken and only the pack's own layer is made
//! ([`Plan::virtualenvs`]). The image is the one a build without
//! `--cache-from` makes from the same pins: the layers, their history entries and both labels are
//! written the same way either way.
//!
//! [`LAYERS_LABEL`]: super::layers_label::LAYERS_LABEL

use std::collections::HashSet;

use futures_util::future::join_all;
use sha2::{Digest, Sha256};

use super::layers_label::{self, LayerRecord};
use super::pack_layer::{PACKS_IN_IMAGE, VIRTUALENVS_IN_IMAGE, created_by, virtualenv_created_by};
use crate::cache::Bucket;
use crate::image::assemble::Image;
use crate::image::blobs::BlobStore;
use crate::image::layer::{FORMAT_VERSION, LayerOptions};
use crate::image::layout;
use crate::image::manifest::{self, Manifest};
use crate::image::model::Layer;
use crate::install::fetch::{FetchContext, ResolvedOrigin, resolve_origin};
use crate::install::venv::{self, PythonInfo};
use crate::install::{self, InstallOptions};
use crate::pack::name::is_system_pack;
use crate::pack::pin::{PackPin, VirtualenvPin};
use crate::pack::spec::{PackSource, PackSpec};
use crate::registry::{Reference, RegistryClient, fetch_manifest_and_config};
use crate::source::git::GitOptions;

/// Version of what [`BuildSettings::build_key`] covers: bump when it covers more.
/// (2: a pack's virtualenv has a layer of its own.)
const BUILD_KEY_FORMAT: &str = "st2pack-build-key-2";

/// An image given with `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRef {
    Registry(Reference),
    /// `oci:DIR` or `oci:DIR:TAG`, as typed.
    Layout(String),
}

impl CacheRef {
    /// `oci:DIR[:TAG]` or a registry reference; anything else is the user's typo.
    pub fn parse(given: &str) -> Result<CacheRef, String> {
        if given.starts_with("oci:") {
            return Ok(CacheRef::Layout(given.to_string()));
        }
        Reference::parse(given)
            .map(CacheRef::Registry)
            .map_err(|e| format!("--cache-from {given:?}: {e}"))
    }

    /// The registry reference, for a registry image.
    pub fn reference(&self) -> Option<&Reference> {
        match self {
            CacheRef::Registry(reference) => Some(reference),
            CacheRef::Layout(_) => None,
        }
    }
}

impl std::fmt::Display for CacheRef {
    /// References carry no credentials (they come from the login), so this is safe to show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheRef::Registry(reference) => write!(f, "{reference}"),
            CacheRef::Layout(layout) => f.write_str(layout),
        }
    }
}

/// A pack whose layers are taken from a `--cache-from` image.
#[derive(Debug, Clone)]
pub struct CachedPack {
    /// Its entry in the image's layers label, written as it is into this build's.
    pub record: LayerRecord,
    /// The pack's layer as the image's manifest and config describe it.
    pub layer: Layer,
    /// Its virtualenv's layer, when it has one.
    pub virtualenv_layer: Option<Layer>,
    pub from: CacheRef,
}

/// The layer of a virtualenv a `--cache-from` image has, offered to the packs this build
/// installs: one whose virtualenv would have exactly this pin gets none built.
#[derive(Debug, Clone)]
pub struct OfferedVirtualenv {
    /// The pack the virtualenv is for (it is built for that pack's path).
    pub name: String,
    pub pin: VirtualenvPin,
    pub layer: Layer,
    pub from: CacheRef,
}

/// What a build's settings make of any pack's layer, besides the pack's own files.
pub struct BuildSettings {
    /// The install options as the build uses them (its root, the image's paths).
    options: InstallOptions,
    python: PythonInfo,
    layer_options: LayerOptions,
}

impl BuildSettings {
    /// The settings of a build installing with `options` (already pointed at the build root)
    /// and layering with `layer_options`; probes the interpreter as the install will.
    pub async fn new(
        options: &InstallOptions,
        layer_options: LayerOptions,
    ) -> Result<BuildSettings, install::InstallError> {
        Ok(BuildSettings {
            python: install::python_info(options).await?,
            options: options.clone(),
            layer_options,
        })
    }

    /// `sha256:` over everything of this build that shapes the layer of pack `name` besides
    /// the pack's files: the virtualenv's settings key ([`venv::venv_settings_key`]), the
    /// options that change the installed pack directory, the layer format and the paths in the
    /// image. `None` when the virtualenv's settings cannot be worked out (the install then fails
    /// with the reason).
    pub fn build_key(&self, name: &str) -> Option<String> {
        let spec = install::venv_spec(&self.options, &self.python, name, None);
        let venv_settings = venv::venv_settings_key(&spec).ok()?;
        let mut hasher = Sha256::new();
        let mut field = |name: &str, value: &[u8]| {
            for part in [name.as_bytes(), value] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
        };
        let layer = &self.layer_options;
        field("format", BUILD_KEY_FORMAT.as_bytes());
        field("virtualenv", venv_settings.as_bytes());
        field("keep_git", &[u8::from(self.options.keep_git)]);
        field(
            "allow_pack_index_options",
            &[u8::from(self.options.allow_pack_index_options)],
        );
        field("layer_format", &FORMAT_VERSION.to_le_bytes());
        field("compression", layer.compression.to_string().as_bytes());
        field("mtime", &layer.mtime.to_le_bytes());
        field("uid", &layer.uid.to_le_bytes());
        field("gid", &layer.gid.to_le_bytes());
        field("packs_in_image", PACKS_IN_IMAGE.as_bytes());
        field("virtualenvs_in_image", VIRTUALENVS_IN_IMAGE.as_bytes());
        Some(format!("sha256:{}", hex::encode(hasher.finalize())))
    }

    /// The virtualenv pin this build would write for pack `name`, but for the two facts only
    /// its requirements files give (the key and the requirements digest), taken from `recorded`.
    fn expected_virtualenv(&self, name: &str, recorded: &VirtualenvPin) -> Option<VirtualenvPin> {
        let spec = install::venv_spec(&self.options, &self.python, name, None);
        let pin = venv::venv_pin(&spec).ok()?;
        Some(VirtualenvPin {
            key: recorded.key.clone(),
            requirements_digest: recorded.requirements_digest.clone(),
            ..pin
        })
    }
}

/// What `--cache-from` leaves to do.
pub struct Plan {
    /// Packs taken from the images, by pack name order of finding.
    pub cached: Vec<CachedPack>,
    /// The virtualenv layers of the images' other packs, for the packs still to install.
    pub virtualenvs: Vec<OfferedVirtualenv>,
    /// The specs still to install: those no image had, and the dependencies of the cached
    /// packs that no image had either.
    pub to_install: Vec<PackSpec>,
}

/// A layer of a `--cache-from` image that a build may take.
struct Candidate {
    record: LayerRecord,
    layer: Layer,
    virtualenv_layer: Option<Layer>,
    from: usize,
}

/// Reads every image of `sources` (a warning through `warn` for each that cannot be used) and
/// decides which of `specs`, and of their dependencies, take their layer from one.
/// Layers of layouts are copied into `store` (a local copy; registry layers stay where they are).
pub async fn plan(
    sources: &[CacheRef],
    specs: &[PackSpec],
    settings: &BuildSettings,
    registry: &RegistryClient,
    store: &BlobStore,
    warn: &mut impl FnMut(String),
) -> Plan {
    let mut candidates = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        match read_source(source, registry, store).await {
            Ok(layers) => candidates.extend(layers.into_iter().map(|recorded| Candidate {
                record: recorded.record,
                layer: recorded.layer,
                virtualenv_layer: recorded.virtualenv_layer,
                from: index,
            })),
            Err(why) => warn(format!("--cache-from {source}: {why}; building without it")),
        }
    }

    let options = &settings.options;
    let context = FetchContext::new(
        options.index.clone(),
        GitOptions {
            cache_dir: options.cache.bucket(Bucket::Git),
            verify_ssl: options.verify_ssl,
        },
        options.keep_git,
        options.force,
        options.st2_version.clone(),
    );
    let mut plan = Plan {
        cached: Vec::new(),
        virtualenvs: Vec::new(),
        to_install: Vec::new(),
    };
    if candidates.is_empty() || options.force {
        plan.to_install = specs.to_vec();
        return plan;
    }
    // Wave by wave (the specs, then the dependencies of the packs taken), each wave's refs
    // resolved at once: one round trip to the git servers per wave, not per pack.
    let mut seen = HashSet::new();
    let mut wave: Vec<PackSpec> = specs.to_vec();
    while !wave.is_empty() {
        let wave_specs: Vec<PackSpec> = wave
            .drain(..)
            .filter(|spec| seen.insert(spec.raw.clone()))
            .collect();
        let origins = join_all(wave_specs.iter().map(|spec| resolve_origin(&context, spec))).await;
        for (spec, origin) in wave_specs.into_iter().zip(origins) {
            // A failure to resolve is left to the install, which reports it as without cache.
            let found = origin
                .ok()
                .flatten()
                .and_then(|origin| find(&origin, &candidates, settings, &plan.cached));
            let Some((candidate, dependencies)) = found else {
                plan.to_install.push(spec);
                continue;
            };
            if !options.skip_dependencies {
                wave.extend(dependencies);
            }
            plan.cached.push(CachedPack {
                record: candidate.record.clone(),
                layer: candidate.layer.clone(),
                virtualenv_layer: candidate.virtualenv_layer.clone(),
                from: sources[candidate.from].clone(),
            });
        }
    }
    plan.virtualenvs = offered_virtualenvs(&candidates, sources, settings, &plan.cached);
    plan
}

/// The virtualenv layers of `candidates` a pack this build installs may take instead of
/// building its own: those made with this build's settings, of packs not taken whole.
fn offered_virtualenvs(
    candidates: &[Candidate],
    sources: &[CacheRef],
    settings: &BuildSettings,
    cached: &[CachedPack],
) -> Vec<OfferedVirtualenv> {
    candidates
        .iter()
        .filter(|c| {
            !cached
                .iter()
                .any(|taken| taken.record.name == c.record.name)
        })
        .filter_map(|candidate| {
            let record = &candidate.record;
            let pin = record.pin.virtualenv.clone()?;
            pin.key.as_ref()?;
            let build_key = settings.build_key(&record.name)?;
            (record.build_key.as_deref() == Some(build_key.as_str())).then_some(())?;
            Some(OfferedVirtualenv {
                name: record.name.clone(),
                pin,
                layer: candidate.virtualenv_layer.clone()?,
                from: sources[candidate.from].clone(),
            })
        })
        .collect()
}

/// The candidate layer a spec resolving to `origin` would build, with the pack's dependency
/// specs to request in its place; `None` when there is none.
fn find<'a>(
    origin: &ResolvedOrigin,
    candidates: &'a [Candidate],
    settings: &BuildSettings,
    cached: &[CachedPack],
) -> Option<(&'a Candidate, Vec<PackSpec>)> {
    candidates.iter().find_map(|candidate| {
        let pin = &candidate.record.pin;
        // A lock file's spec names the commit; the pin records the ref that was locked.
        let locked_ref = settings
            .options
            .locked
            .as_ref()
            .and_then(|locked| locked.get(&pin.name))
            .filter(|entry| entry.commit.is_some() && entry.commit == origin.commit)
            .map(|entry| &entry.reference);
        let same_origin = pin.source == origin.source
            && pin.r#ref == *locked_ref.unwrap_or(&origin.reference)
            && pin.commit == origin.commit
            && pin.content_digest == origin.content_digest;
        if !same_origin || cached.iter().any(|c| c.record.name == pin.name) {
            return None;
        }
        let build_key = settings.build_key(&pin.name)?;
        if candidate.record.build_key.as_deref() != Some(build_key.as_str()) {
            return None;
        }
        let recorded = pin.virtualenv.as_ref()?;
        let expected = PackPin {
            virtualenv: Some(settings.expected_virtualenv(&pin.name, recorded)?),
            ..pin.clone()
        };
        if &expected != pin {
            return None;
        }
        Some((candidate, dependencies(&candidate.record)?))
    })
}

/// The dependency specs of a recorded pack, as the install would request them (the packs
/// StackStorm ships count as present); `None` when one cannot be requested again as recorded
/// (its credentials were removed): the pack is then installed, which reads its pack.yaml.
fn dependencies(record: &LayerRecord) -> Option<Vec<PackSpec>> {
    let mut specs = Vec::new();
    for dependency in &record.dependencies {
        if dependency.contains("***") {
            return None;
        }
        let spec = PackSpec::parse(dependency).ok()?;
        if !matches!(&spec.source, PackSource::Exchange { name } if is_system_pack(name)) {
            specs.push(spec);
        }
    }
    Some(specs)
}

/// The layers `source` offers: each recorded pack with its layer. A registry image is read by
/// its manifest and config only; a layout's layers are copied into `store`.
async fn read_source(
    source: &CacheRef,
    registry: &RegistryClient,
    store: &BlobStore,
) -> Result<Vec<RecordedPack>, String> {
    let image = match source {
        CacheRef::Registry(reference) => {
            let (manifest_bytes, _, config) = fetch_manifest_and_config(registry, reference)
                .await
                .map_err(|e| e.to_string())?;
            let layers = match manifest::parse(&manifest_bytes) {
                Ok(Manifest::Image { manifest, .. }) => manifest::blobs(&manifest).1,
                Ok(Manifest::Index { .. }) => return Err("it is an index".to_string()),
                Err(e) => return Err(format!("its manifest {e}")),
            };
            Image::from_config_and_descriptors(&config, layers).map_err(|e| e.to_string())?
        }
        CacheRef::Layout(given) => {
            let (image, layout_store) = layout::read_reference(given).map_err(|e| e.to_string())?;
            let records = records_with_layers(&image)?;
            for recorded in &records {
                for layer in recorded.virtualenv_layer.iter().chain([&recorded.layer]) {
                    store
                        .import(&layout_store, &layer.descriptor.digest)
                        .map_err(|e| e.to_string())?;
                }
            }
            return Ok(records);
        }
    };
    records_with_layers(&image)
}

/// A pack an image records, with its layers.
struct RecordedPack {
    record: LayerRecord,
    layer: Layer,
    virtualenv_layer: Option<Layer>,
}

/// The image's recorded packs, each with the layers of its diff ids. A record is only believed
/// where the image agrees with it: its layer is described in the history as that pack's, and
/// its virtualenv's layer lies right below, described as that pack's virtualenv (a pin with a
/// virtualenv must name that layer). Any other record is left out, never guessed at: a wrong
/// guess would put one pack's files under another's name.
fn records_with_layers(image: &Image) -> Result<Vec<RecordedPack>, String> {
    let records = layers_label::layers(image)
        .map_err(|e| format!("it is not a pack image st2pack can reuse: {e}"))?;
    let history = image.layer_history().unwrap_or_default();
    let described =
        |index: usize, expected: &str| history.get(index).map(String::as_str) == Some(expected);
    Ok(records
        .into_iter()
        .filter_map(|record| {
            let (name, version) = (&record.name, &record.pin.version);
            let at = image
                .layers
                .iter()
                .position(|l| l.diff_id == record.diff_id)?;
            described(at, &created_by(name, version)).then_some(())?;
            let virtualenv_layer = match &record.virtualenv_diff_id {
                Some(diff_id) => {
                    let below = at.checked_sub(1)?;
                    let layer = &image.layers[below];
                    let agrees = layer.diff_id == *diff_id
                        && described(below, &virtualenv_created_by(name, version));
                    Some(agrees.then(|| layer.clone())?)
                }
                None if record.pin.virtualenv.is_some() => return None,
                None => None,
            };
            Some(RecordedPack {
                layer: image.layers[at].clone(),
                virtualenv_layer,
                record,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_and_layout_references() {
        assert_eq!(
            CacheRef::parse("oci:out/img:1").unwrap(),
            CacheRef::Layout("oci:out/img:1".into())
        );
        let registry = CacheRef::parse("127.0.0.1:5000/st2/packs:latest").unwrap();
        assert_eq!(registry.to_string(), "127.0.0.1:5000/st2/packs:latest");
        let err = CacheRef::parse("Not A Reference").unwrap_err();
        assert!(err.starts_with("--cache-from \"Not A Reference\""), "{err}");
    }

    #[test]
    fn dependencies_skip_system_packs_and_refuse_redacted_urls() {
        let record = |deps: &[&str]| LayerRecord {
            name: "p".into(),
            diff_id: "sha256:x".into(),
            virtualenv_diff_id: None,
            build_key: None,
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
            pin: PackPin {
                name: "p".into(),
                version: "1".into(),
                source: "s".into(),
                r#ref: None,
                commit: None,
                content_digest: None,
                virtualenv: None,
            },
        };
        let specs = dependencies(&record(&["core", "aws=1.0.0"])).unwrap();
        assert_eq!(
            specs.iter().map(|s| s.raw.as_str()).collect::<Vec<_>>(),
            ["aws=1.0.0"]
        );
        assert!(dependencies(&record(&["https://***@git.example.com/x.git"])).is_none());
    }

    /// An image of packs `aws` and `jira`, each a virtualenv layer and its own, with the layers
    /// label `records` makes of their diff ids.
    fn image_with(records: impl Fn(&[Layer]) -> Vec<LayerRecord>) -> Image {
        use crate::image::assemble::{HistoryEntry, descriptor_of};
        use crate::image::model::{OCI_LAYER_GZIP, sha256_digest};
        let mut image = Image::scratch();
        for name in ["aws", "jira"] {
            for (what, created) in [
                ("virtualenv", virtualenv_created_by(name, "1")),
                ("pack", created_by(name, "1")),
            ] {
                let content = format!("{name} {what}");
                let layer = Layer {
                    descriptor: descriptor_of(OCI_LAYER_GZIP, content.as_bytes()),
                    diff_id: sha256_digest(format!("{content} tar").as_bytes()),
                };
                let entry = HistoryEntry {
                    created_by: created,
                    ..Default::default()
                };
                image.append_layer(layer, entry).unwrap();
            }
        }
        let records = records(&image.layers);
        layers_label::set_layers(&mut image, &records);
        image
    }

    fn record(name: &str, diff_id: &str, virtualenv_diff_id: Option<&str>) -> LayerRecord {
        LayerRecord {
            name: name.into(),
            diff_id: diff_id.into(),
            virtualenv_diff_id: virtualenv_diff_id.map(String::from),
            build_key: Some("sha256:k".into()),
            dependencies: Vec::new(),
            pin: PackPin {
                name: name.into(),
                version: "1".into(),
                source: "s".into(),
                r#ref: None,
                commit: None,
                content_digest: None,
                virtualenv: Some(VirtualenvPin::default()),
            },
        }
    }

    #[test]
    fn a_record_is_believed_only_where_the_image_agrees_with_it() {
        let id = |layers: &[Layer], i: usize| layers[i].diff_id.clone();
        let image = image_with(|l| {
            vec![
                record("aws", &id(l, 1), Some(&id(l, 0))),
                record("jira", &id(l, 3), Some(&id(l, 2))),
            ]
        });
        let found = records_with_layers(&image).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].layer, image.layers[3]);
        assert_eq!(found[1].virtualenv_layer.as_ref(), Some(&image.layers[2]));

        // A virtualenv that is another pack's, a layer that is another pack's, a pin with a
        // virtualenv and no virtualenv layer: each record is left out.
        let wrong: [(usize, Option<usize>); 3] = [(1, Some(2)), (3, Some(2)), (1, None)];
        for (layer, virtualenv) in wrong {
            let image = image_with(|l| {
                vec![record(
                    "aws",
                    &id(l, layer),
                    virtualenv.map(|v| id(l, v)).as_deref(),
                )]
            });
            assert!(records_with_layers(&image).unwrap().is_empty());
        }
    }
}

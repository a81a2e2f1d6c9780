//! The image being built: a base image's config and layers, plus the layers appended to it.
//!
//! Building is appending layers to a base (as go-containerregistry's `mutate`); writing the
//! result somewhere is a separate step ([`super::layout`], [`super::archive`], the registry
//! client). Everything here is deterministic: the config and manifest are canonical JSON (keys
//! sorted, compact, no trailing newline) and every time in them comes from the caller, so the same
//! inputs give the same manifest digest on every machine — which is what lets users pin images by
//! digest, the only reliable way to roll packs out (nodes do not re-pull a re-pushed tag).
//!
//! The config is kept as a [`serde_json::Value`] rather than a typed struct on purpose: a base
//! image's config carries fields we do not model (Docker's `container_config`, `Healthcheck`,
//! `OnBuild`, vendor extensions) and they must survive untouched.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::model::{
    self, DOCKER_LAYER_GZIP, Descriptor, Layer, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR,
    OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use super::platform::host_architecture;

/// Docker's media type for an uncompressed layer (rare, but valid in schema 2 manifests).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The last second RFC 3339 can spell with a four-digit year (9999-12-31T23:59:59Z).
pub const MAX_EPOCH: u64 = 253_402_300_799;

/// Errors building an image from parts or setting its fields.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "the image config is not usable: {reason}; the base image may be corrupt, pull it again"
    )]
    Config { reason: String },
    #[error(
        "the image config lists {diff_ids} layer(s) in rootfs.diff_ids but the manifest has \
         {layers}; the base image is inconsistent, pull it again or pick another base"
    )]
    LayerCount { diff_ids: usize, layers: usize },
    #[error(
        "layer {index} ({digest}) has diff id {layer} but the image config says {config}; \
         the base image is inconsistent, pull it again or pick another base"
    )]
    DiffIdMismatch {
        index: usize,
        digest: String,
        layer: String,
        config: String,
    },
    #[error(
        "layer {digest} has media type {media_type}, which st2pack cannot carry into an OCI \
         image (only tar, tar+gzip and tar+zstd layers); pick a base image without it"
    )]
    UnsupportedLayer { digest: String, media_type: String },
    #[error(
        "time {epoch} (seconds since 1970) is after the year 9999 and cannot be written in an \
         image; check SOURCE_DATE_EPOCH, which must be a Unix time in seconds"
    )]
    TimeOutOfRange { epoch: u64 },
}

/// One entry of the config's `history`, describing how a layer was made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryEntry {
    /// What made the layer, shown by `docker history` (e.g. `st2pack: pack aws 2.0.2`).
    pub created_by: String,
    /// When, in seconds since 1970; `None` leaves the field out (better than a wall-clock time
    /// that would break reproducibility).
    pub created: Option<u64>,
    pub comment: Option<String>,
}

/// An image: its config and its layers, bottom first.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub config: Value,
    pub layers: Vec<Layer>,
}

impl Image {
    /// An image with no layers for this machine's architecture: the base when the user names
    /// none (the chart then needs another way to get `/bin/sh`, so this mostly serves tests).
    pub fn scratch() -> Image {
        Image {
            config: json!({
                "architecture": host_architecture(),
                "os": "linux",
                "config": {},
                "rootfs": { "type": "layers", "diff_ids": [] },
                "history": [],
            }),
            layers: Vec::new(),
        }
    }

    /// A base image from its config blob and its manifest's layers (each with its diff id).
    ///
    /// Docker media types are mapped to their OCI equivalents (the bytes are the same), so the
    /// image we write is a pure OCI manifest whatever the base was. Each layer's diff id must be
    /// the one the config lists at that position: a mismatch means the parts do not belong
    /// together, and an image built on them would fail to unpack on the nodes.
    pub fn from_parts(config_bytes: &[u8], layers: Vec<Layer>) -> Result<Image, ImageError> {
        let config = parse_config(config_bytes)?;
        let diff_ids = config_diff_ids(&config)?;
        if diff_ids.len() != layers.len() {
            return Err(ImageError::LayerCount {
                diff_ids: diff_ids.len(),
                layers: layers.len(),
            });
        }
        let mut normalised = Vec::with_capacity(layers.len());
        for (index, (layer, config_diff_id)) in layers.into_iter().zip(&diff_ids).enumerate() {
            if &layer.diff_id != config_diff_id {
                return Err(ImageError::DiffIdMismatch {
                    index,
                    digest: layer.descriptor.digest,
                    layer: layer.diff_id,
                    config: config_diff_id.clone(),
                });
            }
            normalised.push(normalise_layer(layer)?);
        }
        Ok(Image {
            config,
            layers: normalised,
        })
    }

    /// A base image from its config blob and its manifest's layer descriptors, taking each
    /// layer's diff id from the config (which is where a registry or layout keeps them).
    pub fn from_config_and_descriptors(
        config_bytes: &[u8],
        descriptors: Vec<Descriptor>,
    ) -> Result<Image, ImageError> {
        let config = parse_config(config_bytes)?;
        let diff_ids = config_diff_ids(&config)?;
        if diff_ids.len() != descriptors.len() {
            return Err(ImageError::LayerCount {
                diff_ids: diff_ids.len(),
                layers: descriptors.len(),
            });
        }
        let layers = descriptors
            .into_iter()
            .zip(diff_ids)
            .map(|(descriptor, diff_id)| Layer {
                descriptor,
                diff_id,
            })
            .collect();
        Image::from_parts(config_bytes, layers)
    }

    /// Puts `layer` on top, records its diff id in `rootfs.diff_ids` and describes it in
    /// `history`. Fails only when the history time cannot be written (see [`MAX_EPOCH`]).
    pub fn append_layer(&mut self, layer: Layer, history: HistoryEntry) -> Result<(), ImageError> {
        let mut entry = Map::new();
        if let Some(epoch) = history.created {
            entry.insert("created".into(), Value::String(rfc3339(epoch)?));
        }
        entry.insert("created_by".into(), Value::String(history.created_by));
        if let Some(comment) = history.comment {
            entry.insert("comment".into(), Value::String(comment));
        }
        let root = root_object(&mut self.config);
        let rootfs = object_field(root, "rootfs");
        rootfs
            .entry("type")
            .or_insert_with(|| Value::String("layers".into()));
        array_field(rootfs, "diff_ids").push(Value::String(layer.diff_id.clone()));
        array_field(root, "history").push(Value::Object(entry));
        self.layers.push(layer);
        Ok(())
    }

    /// What the config's history says made each layer (its `created_by`, empty when unsaid),
    /// bottom first. Entries marked `empty_layer` describe no layer and are skipped. `None` when
    /// the history does not describe every layer exactly once (a tool that writes no history, or
    /// an edited config): then no layer can be told apart by its history.
    pub fn layer_history(&self) -> Option<Vec<String>> {
        let described: Vec<String> = self
            .history_entries()
            .into_iter()
            .filter(|entry| !is_empty_layer(entry))
            .map(|entry| {
                entry
                    .get("created_by")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        (described.len() == self.layers.len()).then_some(described)
    }

    /// Keeps the bottom `keep` layers, their diff ids and the history up to the entry of the
    /// first layer dropped (entries of no layer after the last kept one stay with it): the image
    /// as it was before the layers above were appended. Fails when the history does not describe
    /// every layer (see [`Image::layer_history`]), since it could not be cut in the right place.
    pub fn keep_bottom_layers(&mut self, keep: usize) -> Result<(), ImageError> {
        if keep >= self.layers.len() {
            return Ok(());
        }
        if self.layer_history().is_none() {
            return Err(ImageError::Config {
                reason: "its history does not describe every layer, so it cannot be cut between \
                         layers"
                    .into(),
            });
        }
        let entries = self.history_entries();
        let cut = entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| !is_empty_layer(entry))
            .nth(keep)
            .map_or(entries.len(), |(index, _)| index);
        let root = root_object(&mut self.config);
        array_field(root, "history").truncate(cut);
        array_field(object_field(root, "rootfs"), "diff_ids").truncate(keep);
        self.layers.truncate(keep);
        Ok(())
    }

    fn history_entries(&self) -> Vec<&Value> {
        self.config
            .get("history")
            .and_then(Value::as_array)
            .map(|entries| entries.iter().collect())
            .unwrap_or_default()
    }

    /// Sets the config's `created` time. Callers pass `SOURCE_DATE_EPOCH` (or a fixed time) so
    /// rebuilding the same packs gives the same digest.
    pub fn set_created(&mut self, epoch: u64) -> Result<(), ImageError> {
        let text = rfc3339(epoch)?;
        root_object(&mut self.config).insert("created".into(), Value::String(text));
        Ok(())
    }

    /// Sets `config.Labels[key]`, creating the map (a Docker config may have `"Labels": null`).
    pub fn set_label(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let inner = object_field(root_object(&mut self.config), "config");
        object_field(inner, "Labels").insert(key.into(), Value::String(value.into()));
    }

    /// The config's labels (non-string values, which no tool writes, are skipped).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.config
            .get("config")
            .and_then(|c| c.get("Labels"))
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The config blob: canonical JSON, so equal configs are equal bytes.
    pub fn config_bytes(&self) -> Vec<u8> {
        canonical_json(&self.config)
    }

    pub fn config_descriptor(&self) -> Descriptor {
        descriptor_of(OCI_CONFIG, &self.config_bytes())
    }

    /// The OCI image manifest. `annotations` (created, source, revision) go in as given; an
    /// empty map leaves the field out.
    pub fn manifest_bytes(&self, annotations: &BTreeMap<String, String>) -> Vec<u8> {
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.config_descriptor(),
            "layers": self.layers.iter().map(|l| &l.descriptor).collect::<Vec<_>>(),
        });
        if !annotations.is_empty() {
            manifest["annotations"] = json!(annotations);
        }
        canonical_json(&manifest)
    }

    /// Descriptor of [`Image::manifest_bytes`], as an index or a registry refers to it.
    pub fn manifest_descriptor(&self, annotations: &BTreeMap<String, String>) -> Descriptor {
        descriptor_of(OCI_MANIFEST, &self.manifest_bytes(annotations))
    }

    /// The image digest (`sha256:…` of the manifest): what users should deploy by.
    pub fn digest(&self, annotations: &BTreeMap<String, String>) -> String {
        model::sha256_digest(&self.manifest_bytes(annotations))
    }

    /// `(os, architecture, variant)` from the config, for index entries and platform checks.
    pub fn platform(&self) -> (String, String, Option<String>) {
        let field = |name: &str| {
            self.config
                .get(name)
                .and_then(Value::as_str)
                .map(String::from)
        };
        (
            field("os").unwrap_or_else(|| "linux".into()),
            field("architecture").unwrap_or_else(|| host_architecture().into()),
            field("variant"),
        )
    }
}

/// A history entry that describes no layer (docker's `ENV`, `CMD`, ...).
fn is_empty_layer(entry: &Value) -> bool {
    entry.get("empty_layer").and_then(Value::as_bool) == Some(true)
}

/// `epoch` as RFC 3339 UTC with second precision (`2024-01-02T03:04:05Z`), computed with
/// Howard Hinnant's days-to-civil algorithm so no date library is needed.
pub fn rfc3339(epoch: u64) -> Result<String, ImageError> {
    if epoch > MAX_EPOCH {
        return Err(ImageError::TimeOutOfRange { epoch });
    }
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    let (year, month, day) = civil_from_days(days);
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ))
}

/// Days since 1970-01-01 to (year, month, day), for non-negative days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Compact JSON with every object's keys sorted, whatever serde_json's `preserve_order` feature
/// says (another crate turning it on must not silently change our digests).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // Serializing a Value to memory cannot fail (all keys are strings).
    serde_json::to_vec(&sorted(value)).unwrap_or_default()
}

/// A descriptor for `bytes` under `media_type`.
pub fn descriptor_of(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: model::sha256_digest(bytes),
        size: bytes.len() as u64,
        annotations: None,
    }
}

fn parse_config(bytes: &[u8]) -> Result<Value, ImageError> {
    let config: Value = serde_json::from_slice(bytes).map_err(|e| ImageError::Config {
        reason: format!("not JSON ({e})"),
    })?;
    if !config.is_object() {
        return Err(ImageError::Config {
            reason: "not a JSON object".into(),
        });
    }
    match config.get("config") {
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(_) => {
            return Err(ImageError::Config {
                reason: "its \"config\" field is not an object".into(),
            });
        }
    }
    Ok(config)
}

fn config_diff_ids(config: &Value) -> Result<Vec<String>, ImageError> {
    let bad = |reason: &str| ImageError::Config {
        reason: reason.to_string(),
    };
    let Some(rootfs) = config.get("rootfs") else {
        return Err(bad("it has no rootfs"));
    };
    if rootfs.get("type").and_then(Value::as_str) != Some("layers") {
        return Err(bad("its rootfs.type is not \"layers\""));
    }
    match rootfs.get("diff_ids") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v.as_str() {
                Some(d) if model::sha256_hex(d).is_some() => Ok(d.to_string()),
                _ => Err(bad(&format!(
                    "rootfs.diff_ids has {v}, not a sha256 digest"
                ))),
            })
            .collect(),
        Some(_) => Err(bad("its rootfs.diff_ids is not a list")),
    }
}

fn normalise_layer(mut layer: Layer) -> Result<Layer, ImageError> {
    let media_type = match layer.descriptor.media_type.as_str() {
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
        OCI_LAYER_TAR | DOCKER_LAYER_TAR => OCI_LAYER_TAR,
        OCI_LAYER_ZSTD => OCI_LAYER_ZSTD,
        other => {
            return Err(ImageError::UnsupportedLayer {
                digest: layer.descriptor.digest,
                media_type: other.to_string(),
            });
        }
    };
    layer.descriptor.media_type = media_type.to_string();
    Ok(layer)
}

/// The config as an object, replacing anything else (only reachable through the public field).
fn root_object(config: &mut Value) -> &mut Map<String, Value> {
    if !config.is_object() {
        *config = Value::Object(Map::new());
    }
    match config {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// `map[key]` as an object, created (or replacing a null) when needed.
fn object_field<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map.entry(key).or_insert(Value::Null);
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(inner) => inner,
        _ => unreachable!("just made an object"),
    }
}

/// `map[key]` as an array, created (or replacing a null) when needed.
fn array_field<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = map.entry(key).or_insert(Value::Null);
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(items) => items,
        _ => unreachable!("just made an array"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(content: &[u8]) -> Layer {
        Layer {
            descriptor: descriptor_of(OCI_LAYER_GZIP, content),
            diff_id: model::sha256_digest(&[content, b"-tar"].concat()),
        }
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000).unwrap(), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(1_709_251_199).unwrap(), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400).unwrap(), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(MAX_EPOCH).unwrap(), "9999-12-31T23:59:59Z");
        assert!(matches!(
            rfc3339(MAX_EPOCH + 1),
            Err(ImageError::TimeOutOfRange { .. })
        ));
    }

    #[test]
    fn every_day_round_trips_through_the_calendar() {
        // Walk day by day over four centuries and check the calendar never skips or repeats.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..146_097 + 20_000 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][(m - 1) as usize];
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn scratch_appends_layers_with_history() {
        let mut image = Image::scratch();
        image.set_created(0).unwrap();
        image
            .append_layer(
                layer(b"one"),
                HistoryEntry {
                    created_by: "st2pack: pack one".into(),
                    created: Some(0),
                    comment: None,
                },
            )
            .unwrap();
        assert_eq!(image.layers.len(), 1);
        assert_eq!(
            image.config["rootfs"]["diff_ids"][0],
            json!(image.layers[0].diff_id)
        );
        assert_eq!(
            image.config["history"][0]["created_by"],
            json!("st2pack: pack one")
        );
        assert_eq!(image.config["created"], json!("1970-01-01T00:00:00Z"));
        assert_eq!(image.config["os"], json!("linux"));
        assert_eq!(image.config["architecture"], json!(host_architecture()));
        // The config round-trips through from_parts.
        let again = Image::from_parts(&image.config_bytes(), image.layers.clone()).unwrap();
        assert_eq!(again, image);
    }

    #[test]
    fn layers_are_told_apart_by_history_and_cut_back_to_the_base() {
        let (a, b, c) = (layer(b"a"), layer(b"b"), layer(b"c"));
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [a.diff_id, b.diff_id, c.diff_id]},
            "history": [
                {"created_by": "ADD base"},
                {"created_by": "CMD sh", "empty_layer": true},
                {"created_by": "pack one"},
                {"created_by": "pack two"},
            ],
        });
        let bytes = serde_json::to_vec(&config).unwrap();
        let mut image = Image::from_parts(&bytes, vec![a.clone(), b, c]).unwrap();
        assert_eq!(
            image.layer_history().unwrap(),
            ["ADD base", "pack one", "pack two"]
        );
        image.keep_bottom_layers(1).unwrap();
        assert_eq!(image.layers, vec![a.clone()]);
        assert_eq!(image.config["rootfs"]["diff_ids"], json!([a.diff_id]));
        assert_eq!(
            image.config["history"],
            json!([{"created_by": "ADD base"}, {"created_by": "CMD sh", "empty_layer": true}])
        );

        // A history that does not describe every layer tells nothing.
        let mut unsaid = config.clone();
        unsaid["history"] = json!([{"created_by": "ADD base"}]);
        let bytes = serde_json::to_vec(&unsaid).unwrap();
        let mut image = Image::from_parts(&bytes, vec![a, layer(b"b"), layer(b"c")]).unwrap();
        assert_eq!(image.layer_history(), None);
        assert!(image.keep_bottom_layers(1).is_err());
    }

    #[test]
    fn config_and_manifest_are_canonical() {
        let mut image = Image::scratch();
        image.set_label("b", "2");
        image.set_label("a", "1");
        let bytes = image.config_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.ends_with('\n') && !text.contains(": "));
        assert!(text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap());
        assert!(text.find("\"architecture\"").unwrap() < text.find("\"rootfs\"").unwrap());
        assert_eq!(image.config_descriptor().size, bytes.len() as u64);
        assert_eq!(image.config_descriptor().media_type, OCI_CONFIG);

        let annotations = BTreeMap::from([(
            "org.opencontainers.image.created".to_string(),
            "1970-01-01T00:00:00Z".to_string(),
        )]);
        let manifest: Value = serde_json::from_slice(&image.manifest_bytes(&annotations)).unwrap();
        assert_eq!(manifest["schemaVersion"], json!(2));
        assert_eq!(manifest["mediaType"], json!(OCI_MANIFEST));
        assert_eq!(
            manifest["config"]["digest"],
            json!(image.config_descriptor().digest)
        );
        assert_eq!(manifest["annotations"], json!(annotations));
        let bare: Value = serde_json::from_slice(&image.manifest_bytes(&BTreeMap::new())).unwrap();
        assert!(bare.get("annotations").is_none());
        assert_ne!(image.digest(&annotations), image.digest(&BTreeMap::new()));
        assert_eq!(
            image.digest(&annotations),
            image.manifest_descriptor(&annotations).digest
        );
    }

    #[test]
    fn labels_survive_null_labels_in_docker_configs() {
        let config = br#"{"architecture":"amd64","os":"linux","config":{"Labels":null,"Env":["PATH=/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let mut image = Image::from_parts(config, Vec::new()).unwrap();
        assert!(image.labels().is_empty());
        image.set_label("k", "v");
        assert_eq!(image.labels(), BTreeMap::from([("k".into(), "v".into())]));
        assert_eq!(image.config["config"]["Env"], json!(["PATH=/bin"]));
        assert_eq!(image.config["config"]["Cmd"], json!(["sh"]));
    }

    #[test]
    fn docker_base_layers_become_oci() {
        let l = layer(b"base");
        let config = json!({
            "architecture": "amd64", "os": "linux", "docker_version": "20.10",
            "container_config": {"Cmd": ["x"]},
            "rootfs": {"type": "layers", "diff_ids": [l.diff_id]},
        });
        let mut docker = l.descriptor.clone();
        docker.media_type = DOCKER_LAYER_GZIP.into();
        let image =
            Image::from_config_and_descriptors(&serde_json::to_vec(&config).unwrap(), vec![docker])
                .unwrap();
        assert_eq!(image.layers, vec![l]);
        assert_eq!(image.config["docker_version"], json!("20.10"));
        assert_eq!(image.config["container_config"], json!({"Cmd": ["x"]}));
        let manifest = String::from_utf8(image.manifest_bytes(&BTreeMap::new())).unwrap();
        assert!(!manifest.contains("vnd.docker"), "{manifest}");
    }

    #[test]
    fn inconsistent_parts_are_rejected() {
        let l = layer(b"x");
        let no_layers = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert!(matches!(
            Image::from_parts(no_layers, vec![l.clone()]),
            Err(ImageError::LayerCount {
                diff_ids: 0,
                layers: 1
            })
        ));
        let other = format!(
            r#"{{"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            model::sha256_digest(b"other")
        );
        assert!(matches!(
            Image::from_parts(other.as_bytes(), vec![l.clone()]),
            Err(ImageError::DiffIdMismatch { index: 0, .. })
        ));
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"rootfs":{"type":"other"}}"#,
            br#"{"rootfs":{"type":"layers","diff_ids":["../etc"]}}"#,
            br#"{"config":3,"rootfs":{"type":"layers","diff_ids":[]}}"#,
        ] {
            assert!(
                matches!(
                    Image::from_parts(bad, vec![]),
                    Err(ImageError::Config { .. })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut foreign = l.clone();
        foreign.descriptor.media_type =
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into();
        let config = format!(
            r#"{{"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            l.diff_id
        );
        assert!(matches!(
            Image::from_parts(config.as_bytes(), vec![foreign]),
            Err(ImageError::UnsupportedLayer { .. })
        ));
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let value = json!({"z": {"b": 1, "a": [{"y": 1, "x": 2}]}, "a": null});
        assert_eq!(
            String::from_utf8(canonical_json(&value)).unwrap(),
            r#"{"a":null,"z":{"a":[{"x":2,"y":1}],"b":1}}"#
        );
    }
}

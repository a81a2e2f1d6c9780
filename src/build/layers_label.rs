//! The image label that lets a later build take a pack's layers from this image as they are
//! (`--cache-from`): for each pack, the diff ids of its layer and of its virtualenv's, the pack's
//! whole pin and what else shaped the layers.
//!
//! The pack label ([`super::label`]) is for people and the chart: it shows a pin's public
//! facts and leaves out the virtualenv key, the ref and the content digest. Deciding that a layer
//! is what a build would make needs all of them, plus the build's settings that are not in the
//! pin (the layer format, the virtualenv's settings) and the pack's dependencies (a build that
//! skips installing a pack must still install what it depends on). They live here, in a label of
//! their own, so that the pack label keeps its format.
//!
//! A full build and a build that takes some layers from another image write this label
//! identically, so both give the same image digest: the entry of a layer taken from an image
//! is copied from that image's label, and every field is a function of the pack's commit (or
//! content) and the build's settings. The value is compact JSON, entries sorted by pack name:
//!
//! ```json
//! {"format":2,"layers":[{"name":"aws","diff_id":"sha256:…","virtualenv_diff_id":"sha256:…",
//!   "build_key":"sha256:…","dependencies":["core_utils"],"pin":{…the pack's .st2pack.json…}}]}
//! ```

use serde::{Deserialize, Serialize};

use crate::image::assemble::Image;
use crate::pack::pin::PackPin;
use crate::redact::redact_url;

/// Config label recording each pack layer for later builds (see the module docs).
pub const LAYERS_LABEL: &str = "org.stackstorm.st2pack.layers";

/// The format this st2pack writes; a reader ignores a label of another format. Format 1 was
/// written when a pack and its virtualenv shared one layer.
pub const LAYERS_FORMAT: u32 = 2;

/// One pack of the image, and its layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The pack, and the directory its layer fills.
    pub name: String,
    /// `sha256:` of the pack layer's uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// The same of the virtualenv's layer, when the pack has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualenv_diff_id: Option<String>,
    /// Digest of every setting of the build that shaped the layer besides the pack's own files
    /// (see `cache_from::BuildSettings::build_key`); absent for a pack layered from an installed
    /// tree, whose settings are unknown (such a layer is never reused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_key: Option<String>,
    /// The pack.yaml `dependencies`, as written there (credentials removed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// The pack's pin as its `.st2pack.json` holds it (credentials removed).
    pub pin: PackPin,
}

impl LayerRecord {
    /// A record whose secrets, if any, are removed once more: an image is the one place a
    /// leaked secret can never be taken back.
    pub fn new(
        diff_id: String,
        virtualenv_diff_id: Option<String>,
        build_key: Option<String>,
        dependencies: &[String],
        pin: &PackPin,
    ) -> LayerRecord {
        LayerRecord {
            name: pin.name.clone(),
            diff_id,
            virtualenv_diff_id,
            build_key,
            dependencies: dependencies.iter().map(|d| redact_url(d)).collect(),
            pin: PackPin {
                source: redact_url(&pin.source),
                ..pin.clone()
            },
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Value {
    format: u32,
    layers: Vec<LayerRecord>,
}

/// Why an image's layers label cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LayersLabelError {
    #[error("it has no {LAYERS_LABEL} label (not built by st2pack, or by an older one)")]
    Missing,
    #[error("its {LAYERS_LABEL} label is not readable: {0}")]
    Malformed(String),
    #[error(
        "its {LAYERS_LABEL} label is format {0}, and this st2pack reads format {LAYERS_FORMAT} (build the image again with this st2pack)"
    )]
    OtherFormat(u32),
}

/// The label value: compact JSON, sorted by pack name.
pub fn encode(records: &[LayerRecord]) -> String {
    let mut layers = records.to_vec();
    layers.sort_by(|a, b| a.name.cmp(&b.name));
    let value = Value {
        format: LAYERS_FORMAT,
        layers,
    };
    // Serializing strings, numbers and options cannot fail.
    serde_json::to_string(&value).unwrap_or_default()
}

/// Parses a value written by [`encode`].
pub fn decode(value: &str) -> Result<Vec<LayerRecord>, LayersLabelError> {
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let format: Format =
        serde_json::from_str(value).map_err(|e| LayersLabelError::Malformed(e.to_string()))?;
    if format.format != LAYERS_FORMAT {
        return Err(LayersLabelError::OtherFormat(format.format));
    }
    let value: Value =
        serde_json::from_str(value).map_err(|e| LayersLabelError::Malformed(e.to_string()))?;
    Ok(value.layers)
}

/// Records `records` in the image config's [`LAYERS_LABEL`].
pub fn set_layers(image: &mut Image, records: &[LayerRecord]) {
    image.set_label(LAYERS_LABEL, encode(records));
}

/// The records of an image's [`LAYERS_LABEL`].
pub fn layers(image: &Image) -> Result<Vec<LayerRecord>, LayersLabelError> {
    match image.labels().get(LAYERS_LABEL) {
        Some(value) => decode(value),
        None => Err(LayersLabelError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::pin::VirtualenvPin;

    fn record(name: &str) -> LayerRecord {
        LayerRecord::new(
            format!("sha256:{}", "a".repeat(64)),
            Some(format!("sha256:{}", "c".repeat(64))),
            Some("sha256:b".into()),
            &[
                "core_utils".into(),
                "https://bob:hunter2@git.example.com/x.git".into(),
            ],
            &PackPin {
                name: name.into(),
                version: "1.0.0".into(),
                source: "https://bob:hunter2@git.example.com/p.git".into(),
                r#ref: Some("v1.0.0".into()),
                commit: Some("0123abc".into()),
                content_digest: None,
                virtualenv: Some(VirtualenvPin {
                    key: Some("k".into()),
                    python_version: "3.11.2".into(),
                    ..Default::default()
                }),
            },
        )
    }

    #[test]
    fn round_trips_sorted_without_credentials() {
        let value = encode(&[record("zeta"), record("alpha")]);
        assert!(
            value.starts_with(r#"{"format":2,"layers":[{"name":"alpha","#),
            "{value}"
        );
        assert!(!value.contains("hunter2"), "{value}");
        assert_eq!(
            decode(&value).unwrap(),
            vec![record("alpha"), record("zeta")]
        );
        // The whole pin is kept: what the pack label leaves out too.
        assert!(value.contains(r#""ref":"v1.0.0""#) && value.contains(r#""key":"k""#));
    }

    #[test]
    fn another_format_or_garbage_is_refused_and_a_missing_label_said() {
        assert!(matches!(
            decode(r#"{"format":1,"layers":"whatever"}"#),
            Err(LayersLabelError::OtherFormat(1))
        ));
        assert!(matches!(
            decode("{not json"),
            Err(LayersLabelError::Malformed(_))
        ));
        assert!(matches!(
            layers(&Image::scratch()),
            Err(LayersLabelError::Missing)
        ));
    }
}

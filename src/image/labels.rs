//! The label and annotation names st2pack writes, and the pack label's format.
//!
//! A pack image is opaque once pushed: the chart only copies its trees. The `org.stackstorm.st2pack.packs`
//! label lets a person (or `st2pack inspect`, or `skopeo inspect | jq`) see which packs, at which
//! versions and commits, and for which Python, an image carries without pulling its layers. It
//! lives in the image *config* (not the manifest) because that is what `docker inspect` and
//! `skopeo inspect` show as `Labels`, and it is covered by the image digest.

use serde::{Deserialize, Serialize};

use super::assemble::Image;
use crate::install::provenance::Provenance;
use crate::redact::redact_url;

/// Config label listing the packs in the image (a compact JSON array, see [`encode`]).
pub const PACKS_LABEL: &str = "org.stackstorm.st2pack.packs";

/// Manifest annotation: when the image was built (RFC 3339), from `SOURCE_DATE_EPOCH` when set.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Manifest annotation: where the image's contents came from (credentials removed).
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
/// Manifest annotation: the revision (commit) of [`ANNOTATION_SOURCE`].
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
/// Index annotation naming a manifest in an OCI layout (the `tag` of `oci:DIR:tag`).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Index annotation containerd (and so `docker load` 25+ and `kind load`) names images by.
pub const ANNOTATION_CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// One pack in the image, as recorded in [`PACKS_LABEL`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackLabel {
    pub name: String,
    pub version: String,
    /// Git commit the pack was installed from; absent for a directory copied as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Where the pack came from, as a user could type it again, credentials removed.
    pub source: String,
    /// Python version of the pack's virtualenv (`3.8.10`): a virtualenv only works with the
    /// interpreter it was built with, so this is what to compare with the st2 runtime image.
    #[serde(rename = "python", default, skip_serializing_if = "Option::is_none")]
    pub python_version: Option<String>,
}

impl PackLabel {
    /// The label entry for an installed pack, from the record its install left.
    pub fn from_provenance(provenance: &Provenance) -> PackLabel {
        PackLabel {
            name: provenance.name.clone(),
            version: provenance.version.clone(),
            commit: provenance.commit.clone(),
            source: redact_url(&provenance.source),
            python_version: Some(provenance.virtualenv.python_version.clone())
                .filter(|v| !v.is_empty()),
        }
    }
}

/// Errors reading a pack label back.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error(
        "the image label {PACKS_LABEL} is not a JSON list of packs ({reason}); \
         was the image built by st2pack? Rebuild it to get a readable label"
    )]
    Malformed { reason: String },
}

/// The label value: compact JSON, sorted by pack name so the same packs always give the same
/// bytes (and so the same image digest) whatever order they were installed in. Sources are passed
/// through [`redact_url`] once more, because an image is the one place a leaked secret can never
/// be taken back.
pub fn encode(packs: &[PackLabel]) -> String {
    let mut packs: Vec<PackLabel> = packs
        .iter()
        .map(|p| PackLabel {
            source: redact_url(&p.source),
            ..p.clone()
        })
        .collect();
    packs.sort_by(|a, b| a.name.cmp(&b.name));
    // Serializing plain strings and options cannot fail.
    serde_json::to_string(&packs).unwrap_or_else(|_| "[]".to_string())
}

/// Parses a label value written by [`encode`].
pub fn decode(value: &str) -> Result<Vec<PackLabel>, LabelError> {
    serde_json::from_str(value).map_err(|e| LabelError::Malformed {
        reason: e.to_string(),
    })
}

/// Records `packs` in the image config's [`PACKS_LABEL`].
pub fn set_packs(image: &mut Image, packs: &[PackLabel]) {
    image.set_label(PACKS_LABEL, encode(packs));
}

/// The packs an image carries, from its [`PACKS_LABEL`]; an image without the label (not built
/// by st2pack) carries none that we know of.
pub fn packs(image: &Image) -> Result<Vec<PackLabel>, LabelError> {
    match image.labels().get(PACKS_LABEL) {
        Some(value) => decode(value),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::provenance::VirtualenvRecord;

    fn pack(name: &str) -> PackLabel {
        PackLabel {
            name: name.into(),
            version: "1.0.0".into(),
            commit: Some("0123abc".into()),
            source: format!("https://example.com/{name}.git"),
            python_version: Some("3.8.10".into()),
        }
    }

    #[test]
    fn encodes_sorted_compact_with_short_keys() {
        let value = encode(&[pack("zeta"), pack("alpha")]);
        assert_eq!(
            value,
            r#"[{"name":"alpha","version":"1.0.0","commit":"0123abc","source":"https://example.com/alpha.git","python":"3.8.10"},{"name":"zeta","version":"1.0.0","commit":"0123abc","source":"https://example.com/zeta.git","python":"3.8.10"}]"#
        );
        assert_eq!(decode(&value).unwrap(), vec![pack("alpha"), pack("zeta")]);
    }

    #[test]
    fn missing_fields_are_omitted_and_read_back_as_none() {
        let local = PackLabel {
            commit: None,
            python_version: None,
            ..pack("local")
        };
        let value = encode(std::slice::from_ref(&local));
        assert!(!value.contains("commit") && !value.contains("python"));
        assert_eq!(decode(&value).unwrap(), vec![local.clone()]);
        // Other writers may spell absence as null.
        let with_nulls = r#"[{"name":"local","version":"1.0.0","commit":null,"source":"https://example.com/local.git","python":null}]"#;
        assert_eq!(decode(with_nulls).unwrap(), vec![local]);
    }

    #[test]
    fn credentials_never_reach_the_label() {
        let leaky = PackLabel {
            source: "https://bob:hunter2@git.example.com/p.git".into(),
            ..pack("p")
        };
        let value = encode(&[leaky]);
        assert!(!value.contains("hunter2"), "{value}");
    }

    #[test]
    fn malformed_label_names_the_label() {
        let err = decode("{not json").unwrap_err().to_string();
        assert!(err.contains(PACKS_LABEL), "{err}");
        assert!(decode(r#"[{"name":"x"}]"#).is_err());
    }

    #[test]
    fn packs_round_trip_through_an_image_config() {
        let mut image = Image::scratch();
        assert_eq!(packs(&image).unwrap(), vec![]);
        set_packs(&mut image, &[pack("b"), pack("a")]);
        assert_eq!(packs(&image).unwrap(), vec![pack("a"), pack("b")]);
        image.set_label(PACKS_LABEL, "garbage");
        assert!(packs(&image).is_err());
    }

    #[test]
    fn from_provenance_takes_version_commit_and_python() {
        let provenance = Provenance {
            name: "demo".into(),
            version: "2.1.0".into(),
            source: "https://u:secret@host/demo.git".into(),
            r#ref: Some("v2.1.0".into()),
            commit: Some("abc".into()),
            content_digest: None,
            virtualenv: VirtualenvRecord {
                key: "k".into(),
                python_version: "3.10.12".into(),
            },
        };
        let label = PackLabel::from_provenance(&provenance);
        assert_eq!(label.version, "2.1.0");
        assert_eq!(label.commit.as_deref(), Some("abc"));
        assert_eq!(label.python_version.as_deref(), Some("3.10.12"));
        assert!(!label.source.contains("secret"));
    }
}

//! The image label listing the packs an image carries, made from their pins.
//!
//! A pack image is opaque once pushed: the chart only copies its trees. The
//! `org.stackstorm.st2pack.packs` label lets a person (or `st2pack inspect`, or
//! `skopeo inspect | jq`) see which packs, at which versions and commits, and for which Python,
//! an image carries without pulling its layers. It lives in the image *config* (not the
//! manifest) because that is what `docker inspect` and `skopeo inspect` show as `Labels`, and it
//! is covered by the image digest — so its bytes never change for the same packs.
//!
//! Each entry is the part of a [`PackPin`] worth showing: name, version, commit, source and the
//! virtualenv's Python and the runtime it was built for, under short keys (`python`,
//! `runtime`). Reading a label back gives pins with just
//! those facts.

use serde::{Deserialize, Serialize, Serializer};

use crate::image::assemble::Image;
use crate::pack::pin::{PackPin, RuntimePin, VirtualenvPin};
use crate::redact::redact_url;

/// Config label listing the packs in the image (a compact JSON array, see [`encode`]).
pub const PACKS_LABEL: &str = "org.stackstorm.st2pack.packs";

/// One pack as the label spells it.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    name: String,
    version: String,
    /// Git commit the pack was installed from; absent for a directory copied as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    /// Where the pack came from, as a user could type it again, credentials removed.
    source: String,
    /// Python version of the pack's virtualenv (`3.8.10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    python: Option<String>,
    /// The runtime the virtualenv was built for: what the cluster's st2 image must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    runtime: Option<RuntimePin>,
}

impl Entry {
    /// Sources are passed through [`redact_url`] once more, because an image is the one place a
    /// leaked secret can never be taken back.
    fn of(pin: &PackPin) -> Entry {
        Entry {
            name: pin.name.clone(),
            version: pin.version.clone(),
            commit: pin.commit.clone(),
            source: redact_url(&pin.source),
            python: pin.python_version().map(str::to_string),
            runtime: pin.runtime().cloned(),
        }
    }

    fn into_pin(self) -> PackPin {
        PackPin {
            name: self.name,
            version: self.version,
            source: self.source,
            r#ref: None,
            commit: self.commit,
            content_digest: None,
            virtualenv: self.python.map(|python_version| VirtualenvPin {
                key: None,
                python_version,
                runtime: self.runtime,
                ..Default::default()
            }),
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
/// bytes (and so the same image digest) whatever order they were installed in.
pub fn encode(packs: &[PackPin]) -> String {
    let mut entries: Vec<Entry> = packs.iter().map(Entry::of).collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    // Serializing plain strings and options cannot fail.
    serde_json::to_string(&entries).unwrap_or_else(|_| "[]".to_string())
}

/// Parses a label value written by [`encode`] into pins holding what the label records.
pub fn decode(value: &str) -> Result<Vec<PackPin>, LabelError> {
    let entries: Vec<Entry> = serde_json::from_str(value).map_err(|e| LabelError::Malformed {
        reason: e.to_string(),
    })?;
    Ok(entries.into_iter().map(Entry::into_pin).collect())
}

/// Serializes pins as label entries (for `st2pack inspect --json`, which shows the label).
pub fn serialize_entries<S: Serializer>(
    packs: &[PackPin],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(packs.iter().map(Entry::of))
}

/// Records `packs` in the image config's [`PACKS_LABEL`].
pub fn set_packs(image: &mut Image, packs: &[PackPin]) {
    image.set_label(PACKS_LABEL, encode(packs));
}

/// The packs an image carries, from its [`PACKS_LABEL`]; an image without the label (not built
/// by st2pack) carries none that we know of.
pub fn packs(image: &Image) -> Result<Vec<PackPin>, LabelError> {
    match image.labels().get(PACKS_LABEL) {
        Some(value) => decode(value),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pin as a label reads it back: no ref, content digest or virtualenv key.
    fn pack(name: &str) -> PackPin {
        PackPin {
            name: name.into(),
            version: "1.0.0".into(),
            source: format!("https://example.com/{name}.git"),
            r#ref: None,
            commit: Some("0123abc".into()),
            content_digest: None,
            virtualenv: Some(VirtualenvPin {
                key: None,
                python_version: "3.8.10".into(),
                ..Default::default()
            }),
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
    fn install_only_facts_stay_out_of_the_label() {
        let installed = PackPin {
            r#ref: Some("v1.0.0".into()),
            content_digest: Some("d".repeat(64)),
            virtualenv: Some(VirtualenvPin {
                key: Some("k".repeat(64)),
                python_version: "3.8.10".into(),
                ..Default::default()
            }),
            ..pack("alpha")
        };
        assert_eq!(encode(&[installed]), encode(&[pack("alpha")]));
    }

    #[test]
    fn missing_fields_are_omitted_and_read_back_as_none() {
        let local = PackPin {
            commit: None,
            virtualenv: None,
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
    fn the_runtime_is_recorded_and_read_back() {
        let mut built = pack("alpha");
        built.virtualenv.as_mut().unwrap().runtime = Some(RuntimePin {
            kind: "preset".into(),
            name: Some("st2-3.8".into()),
            python: "3.8".into(),
            interpreter: "/usr/bin/python3.8".into(),
            platform: Some("x86_64-manylinux_2_31".into()),
            ..Default::default()
        });
        let value = encode(std::slice::from_ref(&built));
        assert!(
            value.contains(r#""runtime":{"kind":"preset","name":"st2-3.8","python":"3.8""#),
            "{value}"
        );
        assert_eq!(decode(&value).unwrap(), vec![built]);
    }

    #[test]
    fn credentials_never_reach_the_label() {
        let leaky = PackPin {
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
}

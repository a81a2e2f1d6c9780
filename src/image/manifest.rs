//! Reading manifests and image indexes: the one parser behind the registry pull, the OCI layout
//! reader, `inspect` and the push's own check.
//!
//! The documents are parsed into oci-spec's types ([`ImageManifest`], [`ImageIndex`]), docker's
//! v2 schema 2 manifests and manifest lists included (same shape, other media types: busybox on
//! Docker Hub is served so). Before that, the checks every reader needs with a message that says
//! what is wrong: schema version 2 (a docker v1 manifest says to copy the image again), a media
//! type st2pack can read, and sha256 digests only, because a digest becomes a file name in a blob
//! store or a layout and a URL on a registry.
//!
//! Writing stays in [`super::assemble`]: images are written as canonical JSON (keys sorted), which
//! oci-spec's serialiser does not produce, and their bytes are their digest.

use oci_spec::image::{Descriptor as OciDescriptor, ImageIndex, ImageManifest};
use serde_json::Value;

use super::model::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, OCI_INDEX, OCI_MANIFEST, sha256_hex,
};

/// The manifest media types st2pack reads, in the order it prefers them.
pub const ACCEPTED: &[&str] = &[
    OCI_MANIFEST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
];

/// A manifest document: one image, or an index of images (one per platform).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// An OCI image manifest or a docker v2 manifest, with the media type it came as.
    Image {
        media_type: String,
        manifest: Box<ImageManifest>,
    },
    /// An OCI image index or a docker manifest list.
    Index {
        media_type: String,
        index: Box<ImageIndex>,
    },
}

impl Manifest {
    pub fn media_type(&self) -> &str {
        match self {
            Manifest::Image { media_type, .. } | Manifest::Index { media_type, .. } => media_type,
        }
    }
}

/// Why a document is not a manifest st2pack can use. The messages complete "its manifest …" or
/// "manifest sha256:… …", which is how every reader reports them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("is not valid JSON ({0})")]
    NotJson(String),
    #[error(
        "has schema version {found}; only version 2 (OCI and docker v2) is supported, so copy \
         the image again with a current docker or skopeo"
    )]
    SchemaVersion { found: String },
    #[error("has media type {media_type}; supported are {}", ACCEPTED.join(", "))]
    MediaType { media_type: String },
    #[error("names blob `{digest}`, which is not a sha256 digest")]
    Digest { digest: String },
    #[error("({media_type}) has no config: it is not a container image")]
    NoConfig { media_type: String },
    #[error("is not a valid {kind} ({reason})")]
    Malformed { kind: &'static str, reason: String },
}

/// Parses a manifest or index from a registry or a layout's blobs.
pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let mut value = json_object(bytes)?;
    let version = value.get("schemaVersion");
    if version.and_then(Value::as_u64) != Some(2) {
        return Err(ManifestError::SchemaVersion {
            found: version.map_or("(none)".into(), Value::to_string),
        });
    }
    let media_type = match value.get("mediaType").and_then(Value::as_str) {
        Some(media_type) => media_type.to_string(),
        None if value.get("manifests").is_some() => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    };
    if !ACCEPTED.contains(&media_type.as_str()) {
        return Err(ManifestError::MediaType { media_type });
    }
    check_digests(&value)?;
    if media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST {
        let index = Box::new(typed(value, "image index")?);
        return Ok(Manifest::Index { media_type, index });
    }
    if value.get("config").is_none() {
        return Err(ManifestError::NoConfig { media_type });
    }
    if let Some(fields) = value.as_object_mut() {
        // A manifest of an image with no layers may leave the list out.
        fields
            .entry("layers")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
    let manifest = Box::new(typed(value, "image manifest")?);
    Ok(Manifest::Image {
        media_type,
        manifest,
    })
}

/// Parses a layout's `index.json`, where a missing `schemaVersion` (written by hand, or by old
/// tools) means 2 and a missing `manifests` an empty layout.
pub fn parse_layout_index(bytes: &[u8]) -> Result<ImageIndex, ManifestError> {
    let mut value = json_object(bytes)?;
    if let Some(fields) = value.as_object_mut() {
        fields.entry("schemaVersion").or_insert(Value::from(2));
        match fields.get("manifests") {
            None | Some(Value::Null) => {
                fields.insert("manifests".into(), Value::Array(Vec::new()));
            }
            Some(_) => {}
        }
    }
    check_digests(&value)?;
    typed(value, "image index")
}

/// Our descriptor of a blob named in a parsed document (its digest was checked to be sha256).
pub fn descriptor(d: &OciDescriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type().to_string(),
        digest: d.digest().to_string(),
        size: d.size(),
        annotations: d
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
    }
}

/// The image's config and layers as our descriptors.
pub fn blobs(manifest: &ImageManifest) -> (Descriptor, Vec<Descriptor>) {
    (
        descriptor(manifest.config()),
        manifest.layers().iter().map(descriptor).collect(),
    )
}

fn json_object(bytes: &[u8]) -> Result<Value, ManifestError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::NotJson(e.to_string()))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ManifestError::NotJson("not a JSON object".into()))
    }
}

/// Every digest the document names must be sha256 (they become paths and URLs).
fn check_digests(value: &Value) -> Result<(), ManifestError> {
    let single = value.get("config").into_iter();
    let lists = ["layers", "manifests"]
        .into_iter()
        .filter_map(|key| value.get(key)?.as_array())
        .flatten();
    for entry in single.chain(lists) {
        if let Some(digest) = entry.get("digest").and_then(Value::as_str)
            && sha256_hex(digest).is_none()
        {
            return Err(ManifestError::Digest {
                digest: digest.to_string(),
            });
        }
    }
    Ok(())
}

fn typed<T: serde::de::DeserializeOwned>(
    value: Value,
    kind: &'static str,
) -> Result<T, ManifestError> {
    serde_json::from_value(value).map_err(|e| ManifestError::Malformed {
        kind,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn reads_oci_and_docker_manifests_and_indexes() {
        let oci = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{ZERO}","size":2}},"layers":[]}}"#
        );
        let Manifest::Image { manifest, .. } = parse(oci.as_bytes()).unwrap() else {
            panic!("not an image");
        };
        assert_eq!(blobs(&manifest).0.digest, ZERO);

        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{ZERO}","size":2}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{ZERO}","size":3}}]}}"#
        );
        let parsed = parse(docker.as_bytes()).unwrap();
        assert_eq!(parsed.media_type(), DOCKER_MANIFEST);
        let Manifest::Image { manifest, .. } = parsed else {
            panic!("not an image");
        };
        assert_eq!(
            blobs(&manifest).1[0].media_type,
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );

        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{ZERO}","size":5,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#
        );
        let Manifest::Index { index, .. } = parse(list.as_bytes()).unwrap() else {
            panic!("not an index");
        };
        assert_eq!(index.manifests().len(), 1);
        let bare_index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(parse(bare_index).unwrap().media_type(), OCI_INDEX);
    }

    #[test]
    fn refuses_what_no_reader_can_use() {
        let v1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(matches!(
            parse(v1),
            Err(ManifestError::SchemaVersion { found }) if found == "1"
        ));
        let helm = br#"{"schemaVersion":2,"mediaType":"application/vnd.cncf.helm.chart"}"#;
        assert!(
            parse(helm)
                .unwrap_err()
                .to_string()
                .contains("supported are")
        );
        assert!(matches!(parse(b"nope"), Err(ManifestError::NotJson(_))));
        let hostile = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:../../etc/passwd","size":1},"layers":[]}"#;
        assert!(matches!(parse(hostile), Err(ManifestError::Digest { .. })));
        let no_config = br#"{"schemaVersion":2,"layers":[]}"#;
        assert!(matches!(
            parse(no_config),
            Err(ManifestError::NoConfig { .. })
        ));
    }

    #[test]
    fn layout_indexes_may_leave_out_the_version_and_the_list() {
        assert!(parse_layout_index(b"{}").unwrap().manifests().is_empty());
        assert!(matches!(
            parse_layout_index(br#"{"manifests":{}}"#),
            Err(ManifestError::Malformed { .. })
        ));
    }
}

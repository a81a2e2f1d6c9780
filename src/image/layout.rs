//! OCI image layout directories: `--output oci:DIR[:tag]` and `--base oci:DIR[:tag]`.
//!
//! A layout is the daemon-less, registry-less way to hand an image to other tools (`skopeo copy
//! oci:DIR:tag docker://…`, `umoci`, `crane`, `kind` via skopeo): `oci-layout`, `index.json`
//! naming each tag, and every blob under `blobs/sha256/<hex>`. Because that blob directory has
//! the same shape as our [`BlobStore`], a layout is also directly usable as a blob source for a
//! base image (see [`layout_blob_store`]).
//!
//! Writes are ordered so that a crash never leaves an index naming a missing blob: blobs first
//! (each through a temporary name and a rename), `index.json` last through a temporary file and a
//! rename. Two st2pack processes writing *different* tags into one layout at the same moment can
//! still lose one tag (last rename wins); write tags of one layout from one process.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor as OciDescriptor, ImageIndex};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::annotations::ANNOTATION_REF_NAME;
use super::assemble::{Image, ImageError, canonical_json};
use super::blobs::{BlobError, BlobStore};
use super::manifest::{self, Manifest, ManifestError};
use super::model::{
    self, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, OCI_INDEX, OCI_MANIFEST,
};
use super::platform;

/// Name of the file marking a directory as an OCI image layout.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The only layout version there is.
pub const OCI_LAYOUT_VERSION: &str = "1.0.0";
/// How deep nested image indexes are followed before giving up (real images use one level).
const MAX_INDEX_DEPTH: usize = 4;
/// Manifests, configs and indexes are small; refuse anything pretending otherwise.
const MAX_JSON_BLOB: u64 = 16 << 20;

/// Errors reading or writing an OCI layout. Each names the directory (as the user typed it in
/// `oci:DIR`) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("OCI layout {dir}: no such directory; check the path in oci:{dir}")]
    MissingDir { dir: PathBuf },
    #[error(
        "{dir} is not an OCI image layout (it has no {OCI_LAYOUT_FILE} file); give a directory \
         written by `st2pack build --output oci:DIR` or `skopeo copy … oci:DIR`"
    )]
    NotALayout { dir: PathBuf },
    #[error(
        "{dir} exists, is not empty and is not an OCI image layout; refusing to write an image \
         into it: give a new or empty directory, or an existing layout"
    )]
    NotEmpty { dir: PathBuf },
    #[error(
        "{path} exists and is not a directory; give a new or empty directory, or an existing \
         OCI layout"
    )]
    NotADirectory { dir: PathBuf, path: PathBuf },
    #[error(
        "OCI layout {dir} has imageLayoutVersion {version:?}; only {OCI_LAYOUT_VERSION} is \
         supported"
    )]
    UnsupportedVersion { dir: PathBuf, version: String },
    #[error(
        "OCI layout {dir} holds no images; write one with `st2pack build --output oci:{dir}:TAG`"
    )]
    Empty { dir: PathBuf },
    #[error("OCI layout {dir} has no tag {tag:?}; it has: {}", list(available))]
    TagNotFound {
        dir: PathBuf,
        tag: String,
        available: Vec<String>,
    },
    #[error(
        "OCI layout {dir} holds several images; say which with oci:{dir}:TAG (tags: {})",
        list(available)
    )]
    Ambiguous {
        dir: PathBuf,
        available: Vec<String>,
    },
    #[error(
        "OCI layout {dir}: the image index has no manifest for {wanted}; it has: {}; \
         pick an image built for {wanted}",
        list(available)
    )]
    NoPlatform {
        dir: PathBuf,
        wanted: String,
        available: Vec<String>,
    },
    #[error(
        "OCI layout {dir}: blob {digest} is missing; the layout is incomplete, write or copy it \
         again"
    )]
    MissingBlob { dir: PathBuf, digest: String },
    #[error(
        "OCI layout {dir}: blob {digest} does not match its digest; the layout is corrupt, write \
         or copy it again"
    )]
    CorruptBlob { dir: PathBuf, digest: String },
    #[error("OCI layout {dir}: {what} is not valid ({reason}); write or copy the layout again")]
    Malformed {
        dir: PathBuf,
        what: String,
        reason: String,
    },
    #[error("OCI layout {dir}: {media_type} is not an image manifest st2pack can read")]
    UnsupportedManifest { dir: PathBuf, media_type: String },
    #[error(
        "invalid tag {tag:?} for oci:{dir}: use letters, digits and . _ - : @ + /, starting and \
         ending with a letter or digit"
    )]
    InvalidTag { dir: PathBuf, tag: String },
    #[error(
        "blob {digest} of the image is in none of the blob stores given; the build cache may \
         have been cleaned while building, build again"
    )]
    BlobNotFound { digest: String },
    #[error("OCI layout {dir}: the image in it is not usable: {source}")]
    Image {
        dir: PathBuf,
        #[source]
        source: ImageError,
    },
    #[error("OCI layout {dir}: cannot open its blobs: {source}")]
    Store {
        dir: PathBuf,
        #[source]
        source: BlobError,
    },
    #[error("{}: {source}; check that the path exists and is writable", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Splits `oci:DIR[:TAG]` (the `oci:` prefix is optional) into the directory and the tag, the way
/// skopeo does: the first colon ends the path, so directories with colons cannot be named.
pub fn parse_reference(reference: &str) -> (PathBuf, Option<String>) {
    let rest = reference.strip_prefix("oci:").unwrap_or(reference);
    match rest.split_once(':') {
        Some((dir, tag)) if !tag.is_empty() => (PathBuf::from(dir), Some(tag.to_string())),
        Some((dir, _)) => (PathBuf::from(dir), None),
        None => (PathBuf::from(rest), None),
    }
}

/// The layout's blob directory as a [`BlobStore`], so a base image read from a layout needs no
/// copying before it is built on.
pub fn layout_blob_store(dir: &Path) -> Result<BlobStore, LayoutError> {
    check_layout(dir)?;
    BlobStore::open_existing(dir.join("blobs")).map_err(|source| LayoutError::Store {
        dir: dir.to_path_buf(),
        source,
    })
}

/// Writes `image` into the layout at `dir` (created when missing) under each of `tags`, and
/// returns the manifest's descriptor.
///
/// Layer blobs are hard-linked from the first of `sources` holding them (copied, and checked
/// against their digest, when a link is impossible); blobs the layout already has are skipped.
/// Other tags in an existing layout are kept; a tag written again now names this image. With no
/// tags, the image replaces the layout's untagged entries.
pub fn write_image(
    dir: &Path,
    image: &Image,
    annotations: &BTreeMap<String, String>,
    tags: &[&str],
    sources: &[&BlobStore],
) -> Result<Descriptor, LayoutError> {
    check_target(dir, tags)?;
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let blob_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blob_dir).map_err(io_err(&blob_dir))?;

    // Every layer must be found before anything is written, so a missing blob fails fast.
    let mut layer_sources = Vec::with_capacity(image.layers.len());
    for layer in &image.layers {
        let digest = &layer.descriptor.digest;
        let dest = blob_path(dir, digest)?;
        if blob_present(&dest, layer.descriptor.size) {
            continue;
        }
        let source = find_blob(sources, digest)?;
        layer_sources.push((source, dest, layer.descriptor.clone()));
    }
    for (source, dest, descriptor) in layer_sources {
        link_or_copy(dir, &source, &dest, &descriptor)?;
    }

    let config = image.config_bytes();
    write_small_blob(dir, &config)?;
    let manifest = image.manifest_bytes(annotations);
    write_small_blob(dir, &manifest)?;
    let descriptor = super::assemble::descriptor_of(OCI_MANIFEST, &manifest);

    let mut index = read_index_for_update(dir)?;
    let (os, architecture, variant) = image.platform();
    let mut platform = json!({ "os": os, "architecture": architecture });
    if let Some(variant) = variant {
        platform["variant"] = json!(variant);
    }
    let entry_for = |tag: Option<&str>| {
        let mut entry = json!({
            "mediaType": OCI_MANIFEST,
            "digest": descriptor.digest,
            "size": descriptor.size,
            "platform": platform,
        });
        if let Some(tag) = tag {
            entry["annotations"] = json!({ ANNOTATION_REF_NAME: tag });
        }
        entry
    };
    let manifests = manifests_array(&mut index);
    if tags.is_empty() {
        manifests.retain(|m| ref_name(m).is_some());
        manifests.push(entry_for(None));
    } else {
        for tag in tags {
            let entry = entry_for(Some(tag));
            match manifests.iter_mut().find(|m| ref_name(m) == Some(tag)) {
                Some(slot) => *slot = entry,
                None => manifests.push(entry),
            }
        }
    }

    let layout_file = dir.join(OCI_LAYOUT_FILE);
    if !layout_file.exists() {
        let text = canonical_json(&json!({ "imageLayoutVersion": OCI_LAYOUT_VERSION }));
        write_atomically(dir, &layout_file, &text)?;
    }
    write_atomically(dir, &dir.join("index.json"), &canonical_json(&index))?;
    Ok(descriptor)
}

/// Reads the image `tag` names in the layout at `dir` (or its only image when `tag` is `None`),
/// following a multi-platform index to the manifest [`platform::choose`] picks for this machine.
/// Returns the image and the layout's blobs as a store its layers can be read from.
pub fn read_image(dir: &Path, tag: Option<&str>) -> Result<(Image, BlobStore), LayoutError> {
    read_image_with_digest(dir, tag).map(|(image, store, _)| (image, store))
}

/// [`read_image`], with the digest of the image manifest read (the platform's, for an index):
/// what names that exact image, as a registry's manifest digest does.
pub fn read_image_with_digest(
    dir: &Path,
    tag: Option<&str>,
) -> Result<(Image, BlobStore, String), LayoutError> {
    check_layout(dir)?;
    let index = read_layout_index(dir)?;
    let manifests = index.manifests();
    let tags: Vec<String> = manifests
        .iter()
        .filter_map(|m| descriptor_ref_name(m).map(String::from))
        .collect();
    if manifests.is_empty() {
        return Err(LayoutError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    let chosen = match tag {
        Some(tag) => manifests
            .iter()
            .find(|m| descriptor_ref_name(m) == Some(tag))
            .ok_or_else(|| LayoutError::TagNotFound {
                dir: dir.to_path_buf(),
                tag: tag.to_string(),
                available: tags.clone(),
            })?,
        None if manifests.len() == 1 => &manifests[0],
        // An untagged multi-platform set written straight into index.json.
        None if manifests.iter().all(|m| m.platform().is_some()) && tags.is_empty() => {
            pick_platform(dir, manifests)?
        }
        None => {
            return Err(LayoutError::Ambiguous {
                dir: dir.to_path_buf(),
                available: tags,
            });
        }
    };
    let mut descriptor = manifest::descriptor(chosen);
    for _ in 0..MAX_INDEX_DEPTH {
        match descriptor.media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let image = read_manifest(dir, &descriptor)?;
                let store = layout_blob_store(dir)?;
                return Ok((image, store, descriptor.digest));
            }
            OCI_INDEX | DOCKER_MANIFEST_LIST => {
                let bytes = read_small_blob(dir, &descriptor)?;
                let what = format!("image index {}", descriptor.digest);
                let Manifest::Index { index, .. } = parse_manifest(dir, &bytes, &what)? else {
                    return Err(LayoutError::Malformed {
                        dir: dir.to_path_buf(),
                        what,
                        reason: "it is an image manifest, not an index".into(),
                    });
                };
                descriptor = manifest::descriptor(pick_platform(dir, index.manifests())?);
            }
            other => {
                return Err(LayoutError::UnsupportedManifest {
                    dir: dir.to_path_buf(),
                    media_type: other.to_string(),
                });
            }
        }
    }
    Err(LayoutError::Malformed {
        dir: dir.to_path_buf(),
        what: "index.json".into(),
        reason: format!("image indexes nest more than {MAX_INDEX_DEPTH} deep"),
    })
}

/// [`read_image`] for a reference as the user typed it: `oci:DIR` or `oci:DIR:TAG`.
pub fn read_reference(reference: &str) -> Result<(Image, BlobStore), LayoutError> {
    let (dir, tag) = parse_reference(reference);
    read_image(&dir, tag.as_deref())
}

/// The tags in the layout at `dir`, in index order.
pub fn tags(dir: &Path) -> Result<Vec<String>, LayoutError> {
    check_layout(dir)?;
    Ok(read_layout_index(dir)?
        .manifests()
        .iter()
        .filter_map(|m| descriptor_ref_name(m).map(String::from))
        .collect())
}

fn read_manifest(dir: &Path, descriptor: &Descriptor) -> Result<Image, LayoutError> {
    let bytes = read_small_blob(dir, descriptor)?;
    let what = format!("manifest {}", descriptor.digest);
    let Manifest::Image { manifest, .. } = parse_manifest(dir, &bytes, &what)? else {
        return Err(LayoutError::Malformed {
            dir: dir.to_path_buf(),
            what,
            reason: "it is an image index, not a manifest".into(),
        });
    };
    let (config, layers) = manifest::blobs(&manifest);
    let config = read_small_blob(dir, &config)?;
    for layer in &layers {
        let path = blob_path(dir, &layer.digest)?;
        if !path.is_file() {
            return Err(LayoutError::MissingBlob {
                dir: dir.to_path_buf(),
                digest: layer.digest.clone(),
            });
        }
    }
    Image::from_config_and_descriptors(&config, layers).map_err(|source| LayoutError::Image {
        dir: dir.to_path_buf(),
        source,
    })
}

/// The entry [`platform::choose`] picks for this machine.
fn pick_platform<'a>(
    dir: &Path,
    entries: &'a [OciDescriptor],
) -> Result<&'a OciDescriptor, LayoutError> {
    platform::choose(entries).ok_or_else(|| LayoutError::NoPlatform {
        dir: dir.to_path_buf(),
        wanted: platform::host_platform().os_arch(),
        available: platform::offered(entries),
    })
}

/// The layout's `index.json`, parsed.
fn read_layout_index(dir: &Path) -> Result<ImageIndex, LayoutError> {
    let path = dir.join("index.json");
    let bytes = fs::read(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => LayoutError::Malformed {
            dir: dir.to_path_buf(),
            what: "index.json".into(),
            reason: "the file is missing".into(),
        },
        _ => LayoutError::Io {
            path: path.clone(),
            source: e,
        },
    })?;
    manifest::parse_layout_index(&bytes).map_err(|e| LayoutError::Malformed {
        dir: dir.to_path_buf(),
        what: "index.json".into(),
        reason: format!("it {e}"),
    })
}

/// A manifest or index blob, parsed; what st2pack cannot read is named as such.
fn parse_manifest(dir: &Path, bytes: &[u8], what: &str) -> Result<Manifest, LayoutError> {
    manifest::parse(bytes).map_err(|e| match e {
        ManifestError::MediaType { media_type } => LayoutError::UnsupportedManifest {
            dir: dir.to_path_buf(),
            media_type,
        },
        other => LayoutError::Malformed {
            dir: dir.to_path_buf(),
            what: what.to_string(),
            reason: format!("it {other}"),
        },
    })
}

fn descriptor_ref_name(entry: &OciDescriptor) -> Option<&str> {
    entry
        .annotations()
        .as_ref()?
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}

fn ref_name(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(ANNOTATION_REF_NAME)?.as_str()
}

fn index_manifests(dir: &Path, index: &Value, what: &str) -> Result<Vec<Value>, LayoutError> {
    match index.get("manifests") {
        Some(Value::Array(items)) => Ok(items.clone()),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(_) => Err(LayoutError::Malformed {
            dir: dir.to_path_buf(),
            what: what.to_string(),
            reason: "\"manifests\" is not a list".into(),
        }),
    }
}

fn parse_json(dir: &Path, bytes: &[u8], what: &str) -> Result<Value, LayoutError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| LayoutError::Malformed {
        dir: dir.to_path_buf(),
        what: what.to_string(),
        reason: e.to_string(),
    })?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(LayoutError::Malformed {
            dir: dir.to_path_buf(),
            what: what.to_string(),
            reason: "not a JSON object".into(),
        })
    }
}

fn read_json_file(dir: &Path, path: &Path, what: &str) -> Result<Value, LayoutError> {
    let bytes = fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => LayoutError::Malformed {
            dir: dir.to_path_buf(),
            what: what.to_string(),
            reason: "the file is missing".into(),
        },
        _ => LayoutError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    parse_json(dir, &bytes, what)
}

/// Reads a manifest, index or config blob, checking its digest (it is about to be trusted).
fn read_small_blob(dir: &Path, descriptor: &Descriptor) -> Result<Vec<u8>, LayoutError> {
    let path = blob_path(dir, &descriptor.digest)?;
    let missing = || LayoutError::MissingBlob {
        dir: dir.to_path_buf(),
        digest: descriptor.digest.clone(),
    };
    let file = File::open(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => missing(),
        _ => LayoutError::Io {
            path: path.clone(),
            source: e,
        },
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON_BLOB)
        .read_to_end(&mut bytes)
        .map_err(io_err(&path))?;
    if model::sha256_digest(&bytes) != descriptor.digest {
        return Err(LayoutError::CorruptBlob {
            dir: dir.to_path_buf(),
            digest: descriptor.digest.clone(),
        });
    }
    Ok(bytes)
}

/// `dir/blobs/sha256/<hex>`, refusing digests that are not plain sha256 (they become paths).
fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, LayoutError> {
    let hex = model::sha256_hex(digest).ok_or_else(|| LayoutError::Malformed {
        dir: dir.to_path_buf(),
        what: format!("digest {digest:?}"),
        reason: "only sha256 digests are supported".into(),
    })?;
    Ok(dir.join("blobs").join("sha256").join(hex))
}

fn check_layout(dir: &Path) -> Result<(), LayoutError> {
    if !dir.is_dir() {
        return Err(LayoutError::MissingDir {
            dir: dir.to_path_buf(),
        });
    }
    let layout_file = dir.join(OCI_LAYOUT_FILE);
    let text = match fs::read(&layout_file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(LayoutError::NotALayout {
                dir: dir.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err(&layout_file)(e)),
    };
    let value = parse_json(dir, &text, OCI_LAYOUT_FILE)?;
    match value.get("imageLayoutVersion").and_then(Value::as_str) {
        Some(OCI_LAYOUT_VERSION) => Ok(()),
        other => Err(LayoutError::UnsupportedVersion {
            dir: dir.to_path_buf(),
            version: other.unwrap_or("(missing)").to_string(),
        }),
    }
}

/// Checks, without writing anything, that [`write_image`] can write `tags` into `dir`: each tag
/// is valid, and `dir` is an existing layout, an empty directory, or a path that can be created
/// (its nearest existing ancestor is a directory). Lets a command refuse a bad `--output` before
/// it does any work.
pub fn check_target(dir: &Path, tags: &[&str]) -> Result<(), LayoutError> {
    if let Some(tag) = tags.iter().find(|tag| !valid_tag(tag)) {
        return Err(LayoutError::InvalidTag {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
        });
    }
    let not_a_directory = |path: &Path| LayoutError::NotADirectory {
        dir: dir.to_path_buf(),
        path: path.to_path_buf(),
    };
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(not_a_directory(dir)),
        Ok(_) if dir.join(OCI_LAYOUT_FILE).exists() => check_layout(dir),
        Ok(_) => match fs::read_dir(dir).map_err(io_err(dir))?.next() {
            Some(_) => Err(LayoutError::NotEmpty {
                dir: dir.to_path_buf(),
            }),
            None => Ok(()),
        },
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            // Creatable when the first ancestor that exists is a directory.
            for ancestor in dir.ancestors().skip(1) {
                let ancestor = if ancestor.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    ancestor
                };
                if let Ok(meta) = fs::metadata(ancestor) {
                    return if meta.is_dir() {
                        Ok(())
                    } else {
                        Err(not_a_directory(ancestor))
                    };
                }
            }
            Ok(())
        }
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// The existing index (to add a tag to) or a new empty one.
fn read_index_for_update(dir: &Path) -> Result<Value, LayoutError> {
    let path = dir.join("index.json");
    let mut index = if path.exists() {
        read_json_file(dir, &path, "index.json")?
    } else {
        Value::Object(Map::new())
    };
    index["schemaVersion"] = json!(2);
    index["mediaType"] = json!(OCI_INDEX);
    index_manifests(dir, &index, "index.json")?;
    Ok(index)
}

fn manifests_array(index: &mut Value) -> &mut Vec<Value> {
    if !index["manifests"].is_array() {
        index["manifests"] = json!([]);
    }
    match &mut index["manifests"] {
        Value::Array(items) => items,
        _ => unreachable!("just made an array"),
    }
}

/// OCI `ref.name` grammar, loosely: components of alphanumerics joined by `.-_:@+/`.
fn valid_tag(tag: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !tag.is_empty()
        && tag.len() <= 256
        && tag.starts_with(alnum)
        && tag.ends_with(alnum)
        && tag.chars().all(|c| alnum(c) || "._-:@+/".contains(c))
}

fn blob_present(path: &Path, size: u64) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
}

fn find_blob(sources: &[&BlobStore], digest: &str) -> Result<PathBuf, LayoutError> {
    sources
        .iter()
        .find(|store| store.contains(digest))
        .and_then(|store| store.path(digest).ok())
        .ok_or_else(|| LayoutError::BlobNotFound {
            digest: digest.to_string(),
        })
}

/// Puts the blob at `source` at `dest`: a hard link when both are on one filesystem (layers can
/// be large, and blobs never change), otherwise a copy whose digest is checked on the way.
fn link_or_copy(
    dir: &Path,
    source: &Path,
    dest: &Path,
    descriptor: &Descriptor,
) -> Result<(), LayoutError> {
    let tmp = temp_name(dir, dest);
    let _ = fs::remove_file(&tmp);
    if fs::hard_link(source, &tmp).is_err() {
        let result = copy_verified(source, &tmp, descriptor);
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    }
    fs::rename(&tmp, dest).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(dest)(e)
    })
}

fn copy_verified(source: &Path, dest: &Path, descriptor: &Descriptor) -> Result<(), LayoutError> {
    let mut input = File::open(source).map_err(io_err(source))?;
    let mut output = File::create(dest).map_err(io_err(dest))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(io_err(source))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        output.write_all(&buf[..n]).map_err(io_err(dest))?;
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    if digest != descriptor.digest || size != descriptor.size {
        return Err(LayoutError::CorruptBlob {
            dir: source.parent().unwrap_or(source).to_path_buf(),
            digest: descriptor.digest.clone(),
        });
    }
    set_mode(dest, 0o644)?;
    output.sync_all().map_err(io_err(dest))
}

fn write_small_blob(dir: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let path = blob_path(dir, &model::sha256_digest(bytes))?;
    if blob_present(&path, bytes.len() as u64) {
        return Ok(());
    }
    write_atomically(dir, &path, bytes)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader sees the old file or the new one, never half of one.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let tmp = temp_name(dir, path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(())
    })()
    .map_err(io_err(&tmp))
    .and_then(|()| set_mode(&tmp, 0o644))
    .and_then(|()| fs::rename(&tmp, path).map_err(io_err(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A temporary name for `path`, in the layout's top directory `dir`: on the same filesystem as
/// the blobs (so a rename is atomic), but outside `blobs/sha256`, where a stray file left by a
/// crash would look like a corrupt blob to tools that walk it (`umoci gc`).
fn temp_name(dir: &Path, path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("blob");
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".st2pack-{name}.{}.{n}.tmp", std::process::id()))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), LayoutError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_like_skopeo() {
        let cases = [
            ("oci:/tmp/x:1.0", "/tmp/x", Some("1.0")),
            ("oci:/tmp/x", "/tmp/x", None),
            ("oci:/tmp/x:", "/tmp/x", None),
            ("out/layout:latest", "out/layout", Some("latest")),
            ("oci:dir:repo/name:tag", "dir", Some("repo/name:tag")),
        ];
        for (input, dir, tag) in cases {
            let (d, t) = parse_reference(input);
            assert_eq!(d, PathBuf::from(dir), "{input}");
            assert_eq!(t.as_deref(), tag, "{input}");
        }
    }

    #[test]
    fn tags_follow_the_ref_name_grammar() {
        for good in ["1.0", "latest", "v1.2.3-rc.1", "a/b:c", "x_y+z@1"] {
            assert!(valid_tag(good), "{good}");
        }
        for bad in ["", "-x", "x-", "a b", "x\n", ".", &"a".repeat(300)] {
            assert!(!valid_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_file_on_the_path_of_a_layout_is_refused_before_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, "x").unwrap();
        for dir in [file.clone(), file.join("layout/deeper")] {
            let err = check_target(&dir, &[]).unwrap_err();
            assert!(
                matches!(&err, LayoutError::NotADirectory { path, .. } if *path == file),
                "{err}"
            );
        }
        check_target(&tmp.path().join("new/layout"), &["1.0"]).unwrap();
        assert!(check_target(&tmp.path().join("new"), &["bad tag"]).is_err());
        assert!(!tmp.path().join("new").exists());
    }

    #[test]
    fn checks_the_layout_version_and_empty_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("layout");
        fs::create_dir(&dir).unwrap();
        // An existing empty directory is a fine place for a new layout.
        check_target(&dir, &[]).unwrap();
        fs::write(
            dir.join(OCI_LAYOUT_FILE),
            r#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .unwrap();
        let err = read_image(&dir, None).unwrap_err();
        assert!(
            matches!(err, LayoutError::UnsupportedVersion { .. }),
            "{err}"
        );
        assert!(check_target(&dir, &[]).is_err());
        fs::write(
            dir.join(OCI_LAYOUT_FILE),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        // A layout without index.json, or with an empty one.
        let err = read_image(&dir, None).unwrap_err();
        assert!(err.to_string().contains("index.json"), "{err}");
        fs::write(
            dir.join("index.json"),
            r#"{"schemaVersion":2,"manifests":[]}"#,
        )
        .unwrap();
        assert!(matches!(
            read_image(&dir, None),
            Err(LayoutError::Empty { .. })
        ));
        fs::write(dir.join("index.json"), r#"{"manifests":{}}"#).unwrap();
        assert!(matches!(
            read_image(&dir, None),
            Err(LayoutError::Malformed { .. })
        ));
    }

    #[test]
    fn hostile_digests_never_become_paths() {
        let dir = Path::new("/layout");
        assert!(blob_path(dir, "sha256:../../etc/passwd").is_err());
        assert!(blob_path(dir, &model::sha256_digest(b"")).is_ok());
    }

    #[test]
    fn foreign_manifest_types_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::write(
            dir.join(OCI_LAYOUT_FILE),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let index = json!({"manifests": [{
            "mediaType": "application/vnd.example.thing",
            "digest": model::sha256_digest(b"x"), "size": 1,
        }]});
        fs::write(dir.join("index.json"), index.to_string()).unwrap();
        let err = read_image(dir, None).unwrap_err();
        assert!(
            matches!(err, LayoutError::UnsupportedManifest { .. }),
            "{err}"
        );
    }
}

//! Pushing an image: blobs first, each only if the registry lacks it, the manifest last.
//!
//! Order is what makes a push safe to interrupt: a tag is written only after every blob it
//! references is confirmed present, so a failed or killed push leaves the previous image under
//! the tag, never a manifest pointing at missing layers. Skipping what the registry has (HEAD)
//! and mounting what another repository of the registry has (the base image) is what makes a
//! rebuild after a one-pack change upload one layer, not the whole image.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::errors::OciDistributionError;
use reqwest::header::HeaderValue;
use tokio_util::io::ReaderStream;

use super::client::RegistryClient;
use super::options::{RegistryEvent, UploadMode};
use super::reference::Reference;
use super::session::{Op, Session};
use super::{RegistryError, Result};
use crate::image::blobs::BlobStore;
use crate::image::manifest::{self, Manifest};
use crate::image::model::{Descriptor, sha256_digest, sha256_hex};

/// Read size for monolithic uploads: memory stays small whatever the blob size.
const UPLOAD_READ_SIZE: usize = 256 * 1024;
/// Read size for chunked uploads: oci-client sends one PATCH per piece it is given.
const CHUNK_READ_SIZE: usize = 2 * 1024 * 1024;

/// What to push besides the blobs and the manifest.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// More tags for the same manifest, besides the target reference's own.
    pub extra_tags: Vec<String>,
    /// A repository on the target's registry that already has some of the blobs (the base
    /// image's): they are mounted from it instead of uploaded. Ignored on another registry.
    pub mount_from: Option<Reference>,
    /// Repositories known to hold particular blobs, by digest (the images an image was merged
    /// from, the `--cache-from` images a build took layers from): each of these blobs is mounted
    /// from its own instead of [`Self::mount_from`] on the same registry; elsewhere, when the
    /// store lacks it, it is downloaded from there, then uploaded.
    pub blob_sources: BTreeMap<String, Reference>,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushReport {
    /// `sha256:` digest of the manifest: pin the image with `repository@digest`.
    pub digest: String,
    /// Every reference the manifest was written to (one per tag).
    pub references: Vec<String>,
    /// Blobs sent to the registry (these three lists are in image order: layers, then config).
    pub uploaded: Vec<String>,
    /// Blobs the registry already had in the target repository.
    pub skipped: Vec<String>,
    /// Blobs mounted from [`PushOptions::mount_from`] or [`PushOptions::blob_sources`].
    pub mounted: Vec<String>,
    /// Bytes of the uploaded blobs.
    pub bytes_uploaded: u64,
}

enum Content {
    /// A blob in the store, streamed from its file.
    Store,
    Bytes(Bytes),
}

/// An upload in flight (the two kinds of body make two future types).
type Pending<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = std::result::Result<String, OciDistributionError>>
            + Send
            + 'a,
    >,
>;

enum Outcome {
    Skipped,
    Mounted,
    Uploaded(u64),
}

/// Pushes the image made of `config` (its bytes and descriptor), `layers` (blobs in `store`) and
/// `manifest_bytes` to `target` and to each of `opts.extra_tags`, and returns what it did.
///
/// Layers are sent concurrently ([`RegistryOptions::concurrency`]), each retried on transient
/// failures from a fresh read of its file. The manifest goes last, to every tag, only after
/// every blob is confirmed present. A target given by digest (`repo@sha256:…`) must be the
/// manifest's digest.
///
/// [`RegistryOptions::concurrency`]: super::RegistryOptions::concurrency
pub async fn push_image(
    client: &RegistryClient,
    target: &Reference,
    store: &BlobStore,
    config: (&[u8], &Descriptor),
    layers: &[Descriptor],
    manifest_bytes: &[u8],
    opts: &PushOptions,
) -> Result<PushReport> {
    let (config_bytes, config_desc) = config;
    let content_type = check_image(target, config_bytes, config_desc, layers, manifest_bytes)?;
    let digest = sha256_digest(manifest_bytes);
    let destinations = destinations(target, &digest, &opts.extra_tags)?;

    let session = client.session(target, true).await?;
    let mountable =
        |from: &&Reference| from.same_registry(target) && from.repository() != target.repository();
    let mount_from = |digest: &str| {
        opts.blob_sources
            .get(digest)
            .or(opts.mount_from.as_ref())
            .filter(mountable)
    };

    // Layers, then the config; each digest once (an image may repeat a layer).
    let mut seen = HashSet::new();
    let mut blobs: Vec<(Descriptor, Content)> = Vec::new();
    for layer in layers {
        if seen.insert(layer.digest.clone()) {
            blobs.push((layer.clone(), Content::Store));
        }
    }
    if seen.insert(config_desc.digest.clone()) {
        blobs.push((
            config_desc.clone(),
            Content::Bytes(Bytes::copy_from_slice(config_bytes)),
        ));
    }

    client.emit(RegistryEvent::PushStarted { blobs: blobs.len() });
    let mut outcomes: Vec<(usize, String, Outcome)> = stream::iter(blobs.into_iter().enumerate())
        .map(|(index, (desc, content))| {
            let session = &session;
            async move {
                let blob = Blob {
                    desc: &desc,
                    content: &content,
                    mount_from: mount_from(&desc.digest),
                    source: opts.blob_sources.get(&desc.digest),
                };
                let outcome = push_blob(client, session, target, store, &blob).await?;
                Ok::<_, RegistryError>((index, desc.digest, outcome))
            }
        })
        .buffer_unordered(client.options().concurrency.max(1))
        .try_collect()
        .await?;
    // The report lists blobs in image order, whatever order they finished in.
    outcomes.sort_by_key(|(index, _, _)| *index);

    let mut report = PushReport {
        digest: digest.clone(),
        ..PushReport::default()
    };
    for (_, blob, outcome) in outcomes {
        match outcome {
            Outcome::Skipped => report.skipped.push(blob),
            Outcome::Mounted => report.mounted.push(blob),
            Outcome::Uploaded(size) => {
                report.bytes_uploaded += size;
                report.uploaded.push(blob);
            }
        }
    }

    let manifest = Bytes::copy_from_slice(manifest_bytes);
    let content_type =
        HeaderValue::from_str(&content_type).map_err(|_| RegistryError::InvalidImage {
            reference: target.to_string(),
            reason: format!(
                "the manifest's media type `{content_type}` is not a valid header value"
            ),
        })?;
    for destination in destinations {
        let op = Op::new(
            format!("writing the manifest of {destination}"),
            format!("repository {}", destination.repository()),
        );
        let oci_ref = destination.to_oci();
        client
            .retry(&op.doing, |_| {
                session.timed(
                    &op,
                    session
                        .oci
                        .push_manifest_raw(&oci_ref, manifest.clone(), content_type.clone()),
                )
            })
            .await?;
        client.emit(RegistryEvent::ManifestPushed {
            reference: destination.to_string(),
            digest: digest.clone(),
        });
        report.references.push(destination.to_string());
    }
    Ok(report)
}

/// Checks that the blobs given are the ones the manifest names (a mismatch would push a tag
/// pointing at blobs that were never sent) and returns the manifest's media type.
fn check_image(
    target: &Reference,
    config_bytes: &[u8],
    config: &Descriptor,
    layers: &[Descriptor],
    manifest_bytes: &[u8],
) -> Result<String> {
    let fail = |reason: String| RegistryError::InvalidImage {
        reference: target.to_string(),
        reason,
    };
    let actual = sha256_digest(config_bytes);
    if actual != config.digest || config_bytes.len() as u64 != config.size {
        return Err(fail(format!(
            "the config is {} bytes with digest {actual}, but its descriptor says {} bytes, {}",
            config_bytes.len(),
            config.size,
            config.digest
        )));
    }
    if let Some(bad) = layers
        .iter()
        .chain([config])
        .map(|d| &d.digest)
        .find(|d| sha256_hex(d).is_none())
    {
        return Err(fail(format!("`{bad}` is not a sha256 digest")));
    }
    let (media_type, manifest) = match manifest::parse(manifest_bytes) {
        Ok(Manifest::Image {
            media_type,
            manifest,
        }) => (media_type, manifest),
        Ok(Manifest::Index { media_type, .. }) => {
            return Err(fail(format!(
                "the manifest is not an image manifest: it is an index ({media_type})"
            )));
        }
        Err(e) => {
            return Err(fail(format!(
                "the manifest is not an image manifest: it {e}"
            )));
        }
    };
    let (named_config, named_layers) = manifest::blobs(&manifest);
    if named_config.digest != config.digest {
        return Err(fail(format!(
            "the manifest names config {}, but config {} was given",
            named_config.digest, config.digest
        )));
    }
    let named: Vec<&str> = named_layers.iter().map(|l| l.digest.as_str()).collect();
    let given: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    if named != given {
        return Err(fail(format!(
            "the manifest names layers [{}], but [{}] were given",
            named.join(", "),
            given.join(", ")
        )));
    }
    Ok(media_type)
}

/// The references the manifest is written to: each tag, or the digest when there is no tag.
fn destinations(target: &Reference, digest: &str, extra_tags: &[String]) -> Result<Vec<Reference>> {
    if let Some(pinned) = target.digest()
        && pinned != digest
    {
        return Err(RegistryError::InvalidImage {
            reference: target.to_string(),
            reason: format!(
                "the reference pins digest {pinned}, but the manifest's digest is {digest}"
            ),
        });
    }
    let mut tags: Vec<&str> = target.tag().into_iter().collect();
    for tag in extra_tags {
        if !tags.contains(&tag.as_str()) {
            tags.push(tag);
        }
    }
    if tags.is_empty() {
        return Ok(vec![target.with_digest(digest)?]);
    }
    tags.into_iter()
        .map(|tag| target.with_tag(tag).map_err(RegistryError::from))
        .collect()
}

/// One blob to push, and where else it is.
struct Blob<'a> {
    desc: &'a Descriptor,
    content: &'a Content,
    /// A repository of the target's registry to mount it from.
    mount_from: Option<&'a Reference>,
    /// An image holding it, to download it from when the store lacks it.
    source: Option<&'a Reference>,
}

/// One blob: HEAD, then a mount (first attempt only), then an upload (downloaded first from its
/// source when the store lacks it); the whole sequence is retried, so a retry notices a blob
/// that a broken-off attempt did manage to store.
async fn push_blob(
    client: &RegistryClient,
    session: &Session,
    target: &Reference,
    store: &BlobStore,
    blob: &Blob<'_>,
) -> Result<Outcome> {
    let Blob {
        desc,
        content,
        mount_from,
        source,
    } = *blob;
    let digest = desc.digest.as_str();
    let repo = target.repository();
    let oci_ref = target.to_oci();
    let head = Op::new(
        format!("checking for blob {digest} in repository {repo}"),
        format!("repository {repo}"),
    );
    let upload = Op::new(
        format!("uploading blob {digest} to repository {repo}"),
        format!("repository {repo}"),
    );
    let outcome = client
        .retry(&upload.doing, |attempt| {
            let (oci_ref, head, upload) = (&oci_ref, &head, &upload);
            async move {
                if session
                    .timed(head, session.oci.blob_exists(oci_ref, digest))
                    .await?
                {
                    return Ok(if attempt == 1 {
                        Outcome::Skipped
                    } else {
                        Outcome::Uploaded(desc.size)
                    });
                }
                if attempt == 1
                    && let Some(from) = mount_from
                {
                    // Refused (202 with an upload session, 404, …) means: upload it.
                    let mounted = tokio::time::timeout(
                        session.read_timeout,
                        session.mount_blob(target, from, digest),
                    )
                    .await;
                    if mounted == Ok(true) {
                        return Ok(Outcome::Mounted);
                    }
                }
                if let (Content::Store, Some(source)) = (content, source)
                    && !store.contains(&desc.digest)
                {
                    super::pull::pull_layers(client, source, store, std::slice::from_ref(desc))
                        .await?;
                }
                upload_blob(client, session, oci_ref, store, desc, content, upload).await?;
                Ok(Outcome::Uploaded(desc.size))
            }
        })
        .await?;
    client.emit(match &outcome {
        Outcome::Skipped => RegistryEvent::BlobSkipped {
            digest: digest.to_string(),
        },
        Outcome::Mounted => RegistryEvent::BlobMounted {
            digest: digest.to_string(),
            from: mount_from
                .map(|r| r.repository().to_string())
                .unwrap_or_default(),
        },
        Outcome::Uploaded(size) => RegistryEvent::BlobUploaded {
            digest: digest.to_string(),
            size: *size,
        },
    });
    Ok(outcome)
}

/// Streams the blob from its file (or the config's bytes) with its known digest and size,
/// reporting the bytes sent as events. A watchdog fails the upload when no bytes have moved for
/// the read timeout (the registry stopped reading, or stopped answering after the last byte),
/// however long the upload as a whole takes.
async fn upload_blob(
    client: &RegistryClient,
    session: &Session,
    oci_ref: &oci_client::Reference,
    store: &BlobStore,
    desc: &Descriptor,
    content: &Content,
    op: &Op,
) -> Result<()> {
    client.emit(RegistryEvent::BlobUploadStarted {
        digest: desc.digest.clone(),
        size: desc.size,
    });
    let started = Instant::now();
    let last_progress = Arc::new(AtomicU64::new(0));
    // The body must be 'static, so the bytes it hands over come back here to be reported.
    let (sent, mut sent_reports) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mark = {
        let last_progress = last_progress.clone();
        move |bytes: usize| {
            last_progress.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            let _ = sent.send(bytes as u64);
        }
    };
    let push: Pending<'_> = match content {
        Content::Store => {
            let file = store
                .open_blob(&desc.digest)
                .map_err(|source| RegistryError::Store {
                    context: format!("cannot upload blob {}", desc.digest),
                    source,
                })?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
            if len != desc.size {
                return Err(RegistryError::InvalidImage {
                    reference: format!("{}/{}", session.registry, oci_ref.repository()),
                    reason: format!(
                        "blob {} is {len} bytes in the blob store, but its descriptor says {}",
                        desc.digest, desc.size
                    ),
                });
            }
            let read_size = match client.options().upload_mode {
                UploadMode::Monolithic => UPLOAD_READ_SIZE,
                UploadMode::Chunked => CHUNK_READ_SIZE,
            };
            let body = ReaderStream::with_capacity(tokio::fs::File::from_std(file), read_size)
                .inspect(move |read| mark(read.as_ref().map_or(0, Bytes::len)))
                .map_err(OciDistributionError::IoError);
            Box::pin(
                session
                    .oci
                    .push_blob_stream(oci_ref, body, &desc.digest, Some(desc.size)),
            )
        }
        Content::Bytes(bytes) => {
            let len = bytes.len();
            let body = stream::iter([Ok::<_, OciDistributionError>(bytes.clone())])
                .inspect(move |_| mark(len));
            Box::pin(
                session
                    .oci
                    .push_blob_stream(oci_ref, body, &desc.digest, Some(desc.size)),
            )
        }
    };
    let idle_limit = session.read_timeout;
    let tick = (idle_limit / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(tick);
    tokio::pin!(push);
    loop {
        tokio::select! {
            result = &mut push => return result.map(|_| ()).map_err(|e| session.error(op, e)),
            Some(bytes) = sent_reports.recv() => client.emit(RegistryEvent::BlobBytesSent {
                digest: desc.digest.clone(),
                bytes,
            }),
            _ = ticks.tick() => {
                let last = Duration::from_millis(last_progress.load(Ordering::Relaxed));
                if started.elapsed().saturating_sub(last) > idle_limit {
                    return Err(session.timeout(op));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::model::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};

    fn desc(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            annotations: None,
        }
    }

    fn manifest(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn the_manifest_must_name_the_blobs_given() {
        let target = Reference::parse("127.0.0.1:5000/packs:1").unwrap();
        let config = desc(OCI_CONFIG, b"{}");
        let a = desc(OCI_LAYER_GZIP, b"a");
        let b = desc(OCI_LAYER_GZIP, b"b");
        let m = manifest(&config, &[a.clone(), b.clone()]);
        assert_eq!(
            check_image(&target, b"{}", &config, &[a.clone(), b.clone()], &m).unwrap(),
            OCI_MANIFEST
        );
        let err = check_image(&target, b"{}", &config, &[b.clone(), a.clone()], &m).unwrap_err();
        assert!(err.to_string().contains("names layers"), "{err}");
        let err = check_image(&target, b"{ }", &config, &[a.clone(), b], &m).unwrap_err();
        assert!(err.to_string().contains("descriptor says"), "{err}");
        let mut hostile = a.clone();
        hostile.digest = "sha256:../../x".into();
        let err = check_image(&target, b"{}", &config, &[hostile], &m).unwrap_err();
        assert!(err.to_string().contains("not a sha256 digest"), "{err}");
        let err = check_image(&target, b"{}", &config, &[], b"[]").unwrap_err();
        assert!(err.to_string().contains("not an image manifest"), "{err}");
    }

    /// The CLI may spawn pushes and pulls on a multi-threaded runtime (checked when compiled).
    #[allow(dead_code)]
    fn futures_are_send(client: &RegistryClient, store: &BlobStore, r: &Reference, d: &Descriptor) {
        fn send<T: Send>(_: T) {}
        send(push_image(
            client,
            r,
            store,
            (b"", d),
            &[],
            b"",
            &PushOptions::default(),
        ));
        send(super::super::pull_image(client, r, store));
        send(super::super::fetch_manifest_and_config(client, r));
    }

    #[test]
    fn every_tag_gets_the_manifest() {
        let digest = sha256_digest(b"m");
        let target = Reference::parse("127.0.0.1:5000/packs:1.0").unwrap();
        let refs = destinations(&target, &digest, &["latest".into(), "1.0".into()]).unwrap();
        let refs: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            refs,
            ["127.0.0.1:5000/packs:1.0", "127.0.0.1:5000/packs:latest"]
        );

        let pinned = Reference::parse(&format!("127.0.0.1:5000/packs@{digest}")).unwrap();
        let refs = destinations(&pinned, &digest, &[]).unwrap();
        assert_eq!(refs[0].digest(), Some(digest.as_str()));

        let wrong =
            Reference::parse(&format!("127.0.0.1:5000/packs@{}", sha256_digest(b"x"))).unwrap();
        assert!(destinations(&wrong, &digest, &[]).is_err());
        assert!(destinations(&target, &digest, &["bad tag".into()]).is_err());
    }
}

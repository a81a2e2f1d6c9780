//! Pulling a base image into the blob store, and reading a manifest and config for `inspect`.
//!
//! Base images come as OCI manifests, docker v2 manifests, or multi-platform indexes; all are
//! accepted (parsed by [`crate::image::manifest`]), and from an index we take the image
//! [`crate::image::platform`] chooses for this machine. Every blob is verified
//! against its digest while it streams to disk, so a corrupted download never enters the store,
//! and a blob the store already has is not downloaded again.

use std::io::Write as _;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::errors::DigestError;

use super::client::RegistryClient;
use super::options::RegistryEvent;
use super::reference::Reference;
use super::session::{Op, Session};
use super::{RegistryError, Result};
use crate::image::blobs::{BlobError, BlobStore};
use crate::image::manifest::{self, ACCEPTED, Manifest};
use crate::image::model::{Descriptor, sha256_digest};
use crate::image::platform;
/// An image config is a few KiB; anything this large is not one, and is not held in memory.
const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

/// A base image in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The config JSON (also in the store, under `config.digest`).
    pub config: Vec<u8>,
    pub config_descriptor: Descriptor,
    /// The layers as the source manifest lists them (media types unchanged), all in the store.
    pub layers: Vec<Descriptor>,
    /// The media type of the image manifest (OCI or docker v2).
    pub media_type: String,
    /// Digest of the image manifest (of the platform's manifest, when the reference is an index).
    pub manifest_digest: String,
}

/// An image manifest, with the bytes and digest it came as.
struct ImageManifest {
    bytes: Bytes,
    digest: String,
    media_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// Pulls `reference` into `store`: its config and every layer, each verified; returns the config
/// and the layer descriptors for the image assembler.
pub async fn pull_image(
    client: &RegistryClient,
    reference: &Reference,
    store: &BlobStore,
) -> Result<PulledImage> {
    let pulled = pull_config(client, reference, store).await?;
    pull_layers(client, reference, store, &pulled.layers).await?;
    Ok(pulled)
}

/// Pulls the manifest and config of `reference` into `store`, and no layer: for an image whose
/// layers are mounted where they are pushed, and downloaded only when a file needs them
/// ([`pull_layers`]).
pub async fn pull_config(
    client: &RegistryClient,
    reference: &Reference,
    store: &BlobStore,
) -> Result<PulledImage> {
    let session = client.session(reference, false).await?;
    let manifest = resolve_manifest(client, &session, reference).await?;
    let config = fetch_config(client, &session, reference, &manifest.config, Some(store)).await?;
    Ok(PulledImage {
        config,
        config_descriptor: manifest.config,
        layers: manifest.layers,
        media_type: manifest.media_type,
        manifest_digest: manifest.digest,
    })
}

/// Downloads `layers` of the image `reference` names into `store`, each verified, skipping those
/// the store has: for an image whose manifest and config were read before and of which only some
/// layers are wanted.
pub async fn pull_layers(
    client: &RegistryClient,
    reference: &Reference,
    store: &BlobStore,
    layers: &[Descriptor],
) -> Result<()> {
    let session = client.session(reference, false).await?;
    download_layers(client, &session, reference, store, layers).await
}

async fn download_layers(
    client: &RegistryClient,
    session: &Session,
    reference: &Reference,
    store: &BlobStore,
    layers: &[Descriptor],
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    // Owned descriptors: a closure over references here would make the future not `Send`.
    let wanted: Vec<Descriptor> = layers
        .iter()
        .filter(|l| seen.insert(l.digest.clone()))
        .cloned()
        .collect();
    stream::iter(wanted)
        .map(|layer: Descriptor| async move {
            if store.contains(&layer.digest) {
                return Ok(());
            }
            let op = Op::new(
                format!("downloading layer {} of {reference}", layer.digest),
                format!("layer {} of {reference}", layer.digest),
            );
            client
                .retry(&op.doing, |_| {
                    download_blob(session, reference, store, &layer, &op)
                })
                .await?;
            client.emit(RegistryEvent::BlobDownloaded {
                digest: layer.digest.clone(),
                size: layer.size,
            });
            Ok::<_, RegistryError>(())
        })
        .buffer_unordered(client.options().concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// For `st2pack inspect`: the image manifest (the platform's, for an index), its digest, and the
/// config, without touching any blob store.
pub async fn fetch_manifest_and_config(
    client: &RegistryClient,
    reference: &Reference,
) -> Result<(Vec<u8>, String, Vec<u8>)> {
    let session = client.session(reference, false).await?;
    let manifest = resolve_manifest(client, &session, reference).await?;
    let config = fetch_config(client, &session, reference, &manifest.config, None).await?;
    Ok((manifest.bytes.to_vec(), manifest.digest, config))
}

/// The digest of the image manifest `reference` names (for an index, of the manifest
/// [`platform`] chooses): one manifest request, two for an index, and no blob. Lets a caller that
/// keeps what it made from an image by digest find it without pulling anything.
pub async fn resolve_manifest_digest(
    client: &RegistryClient,
    reference: &Reference,
) -> Result<String> {
    let session = client.session(reference, false).await?;
    Ok(resolve_manifest(client, &session, reference).await?.digest)
}

/// Fetches the manifest; for an index, then the manifest of this machine's platform.
async fn resolve_manifest(
    client: &RegistryClient,
    session: &Session,
    reference: &Reference,
) -> Result<ImageManifest> {
    let (bytes, digest) = fetch_manifest(client, session, reference).await?;
    let (bytes, digest, parsed) = match parse_manifest(reference, &bytes)? {
        Manifest::Index { index, .. } => {
            let chosen = choose_platform(reference, index.manifests())?;
            let by_digest = reference.with_digest(&chosen)?;
            let (bytes, digest) = fetch_manifest(client, session, &by_digest).await?;
            match parse_manifest(reference, &bytes)? {
                Manifest::Index { .. } => {
                    return Err(RegistryError::Manifest {
                        reference: reference.to_string(),
                        reason: format!(
                            "the index entry {chosen} is itself an index; nested indexes are not supported"
                        ),
                    });
                }
                image => (bytes, digest, image),
            }
        }
        image => (bytes, digest, image),
    };
    let Manifest::Image {
        media_type,
        manifest,
    } = parsed
    else {
        unreachable!("indexes were followed above");
    };
    let (config, layers) = manifest::blobs(&manifest);
    Ok(ImageManifest {
        bytes,
        digest,
        media_type,
        config,
        layers,
    })
}

async fn fetch_manifest(
    client: &RegistryClient,
    session: &Session,
    reference: &Reference,
) -> Result<(Bytes, String)> {
    let op = Op::new(
        format!("fetching the manifest of {reference}"),
        format!("image {reference}"),
    );
    let oci_ref = reference.to_oci();
    let (bytes, digest) = client
        .retry(&op.doing, |_| {
            session.timed(
                &op,
                session
                    .oci
                    .pull_manifest_raw(&oci_ref, &session.auth, ACCEPTED),
            )
        })
        .await?;
    // oci-client checks a pinned digest; check the content against the digest we report too.
    let actual = sha256_digest(&bytes);
    if digest.starts_with("sha256:") && actual != digest {
        return Err(RegistryError::DigestMismatch {
            registry: session.registry.clone(),
            what: format!("the manifest of {reference}"),
            expected: digest,
            actual,
        });
    }
    Ok((bytes, actual))
}

fn parse_manifest(reference: &Reference, bytes: &[u8]) -> Result<Manifest> {
    manifest::parse(bytes).map_err(|e| RegistryError::Manifest {
        reference: reference.to_string(),
        reason: format!("its manifest {e}"),
    })
}

/// The digest of the index entry for this machine (see [`platform`] for the rule).
fn choose_platform(
    reference: &Reference,
    entries: &[oci_spec::image::Descriptor],
) -> Result<String> {
    if let Some(entry) = platform::choose(entries) {
        return Ok(entry.digest().to_string());
    }
    let available = platform::offered(entries);
    let host = platform::host_platform().os_arch();
    let wanted = if host == "linux/amd64" {
        host
    } else {
        format!("{host} or linux/amd64")
    };
    Err(RegistryError::Manifest {
        reference: reference.to_string(),
        reason: format!(
            "it is a multi-platform image without {wanted} (it has: {}); pick a platform's \
             manifest by digest",
            if available.is_empty() {
                "no platforms listed".to_string()
            } else {
                available.join(", ")
            }
        ),
    })
}

/// The config's bytes, verified; read from or written to `store` when one is given.
async fn fetch_config(
    client: &RegistryClient,
    session: &Session,
    reference: &Reference,
    config: &Descriptor,
    store: Option<&BlobStore>,
) -> Result<Vec<u8>> {
    let store_error = |source: BlobError| RegistryError::Store {
        context: format!("cannot keep the config of {reference}"),
        source,
    };
    if let Some(store) = store
        && store.contains(&config.digest)
    {
        let path = store.path(&config.digest).map_err(store_error)?;
        if let Ok(bytes) = tokio::fs::read(&path).await
            && sha256_digest(&bytes) == config.digest
        {
            return Ok(bytes);
        }
    }
    if config.size > MAX_CONFIG_SIZE {
        return Err(RegistryError::Manifest {
            reference: reference.to_string(),
            reason: format!(
                "its config is {} bytes; a container image config is a few KiB (limit {MAX_CONFIG_SIZE})",
                config.size
            ),
        });
    }
    let op = Op::new(
        format!("downloading the config of {reference}"),
        format!("config {} of {reference}", config.digest),
    );
    let oci_ref = reference.to_oci();
    let bytes = client
        .retry(&op.doing, |_| async {
            let mut body = session
                .timed(
                    &op,
                    session
                        .oci
                        .pull_blob_stream(&oci_ref, config.digest.as_str()),
                )
                .await?;
            let mut bytes = Vec::with_capacity(config.size as usize);
            while let Some(chunk) = next_chunk(session, &op, &mut body).await? {
                if (bytes.len() + chunk.len()) as u64 > MAX_CONFIG_SIZE {
                    return Err(RegistryError::Manifest {
                        reference: reference.to_string(),
                        reason: format!("its config is larger than {MAX_CONFIG_SIZE} bytes"),
                    });
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(bytes)
        })
        .await?;
    let actual = sha256_digest(&bytes);
    if actual != config.digest {
        return Err(RegistryError::DigestMismatch {
            registry: session.registry.clone(),
            what: format!("the config of {reference}"),
            expected: config.digest.clone(),
            actual,
        });
    }
    if let Some(store) = store {
        let store = store.clone();
        let (media_type, data) = (config.media_type.clone(), bytes.clone());
        tokio::task::spawn_blocking(move || store.put_bytes(&media_type, &data))
            .await
            .map_err(|e| internal(session, &op, e))?
            .map_err(store_error)?;
    }
    Ok(bytes)
}

/// The next piece of a download, failing when none arrives within the read timeout.
async fn next_chunk(
    session: &Session,
    op: &Op,
    body: &mut oci_client::client::SizedStream,
) -> Result<Option<Bytes>> {
    match tokio::time::timeout(session.read_timeout, body.next()).await {
        Err(_) => Err(session.timeout(op)),
        Ok(None) => Ok(None),
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(e))) => Err(
            match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<DigestError>())
            {
                Some(DigestError::VerificationError { expected, actual }) => {
                    RegistryError::DigestMismatch {
                        registry: session.registry.clone(),
                        what: op.subject.clone(),
                        expected: expected.clone(),
                        actual: actual.clone(),
                    }
                }
                _ => RegistryError::ConnectionLost {
                    registry: session.registry.clone(),
                    operation: op.doing.clone(),
                    reason: super::classify::error_chain(&e),
                },
            },
        ),
    }
}

/// Streams one layer to a new blob in the store; disk writes happen on a blocking thread, fed
/// through a small channel, so memory stays bounded and the async workers never block.
async fn download_blob(
    session: &Session,
    reference: &Reference,
    store: &BlobStore,
    layer: &Descriptor,
    op: &Op,
) -> Result<()> {
    let store_error = |source: BlobError| RegistryError::Store {
        context: format!("cannot store layer {} of {reference}", layer.digest),
        source,
    };
    let oci_ref = reference.to_oci();
    let mut body = session
        .timed(
            op,
            session
                .oci
                .pull_blob_stream(&oci_ref, layer.digest.as_str()),
        )
        .await?;
    let writer = store.writer().map_err(store_error)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let write = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        while let Some(chunk) = rx.blocking_recv() {
            writer.write_all(&chunk)?;
        }
        Ok::<_, std::io::Error>(writer)
    });
    let streamed: Result<()> = async {
        while let Some(chunk) = next_chunk(session, op, &mut body).await? {
            if tx.send(chunk).await.is_err() {
                break; // The writer failed; its error is reported below.
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    let writer = write.await.map_err(|e| internal(session, op, e))?;
    streamed?;
    let writer = writer.map_err(|source| {
        store_error(BlobError::Io {
            action: "write a blob into",
            path: store.root().to_path_buf(),
            source,
        })
    })?;
    let media_type = layer.media_type.clone();
    let written = tokio::task::spawn_blocking(move || writer.finish(&media_type))
        .await
        .map_err(|e| internal(session, op, e))?
        .map_err(store_error)?;
    if written.digest != layer.digest || written.size != layer.size {
        return Err(RegistryError::DigestMismatch {
            registry: session.registry.clone(),
            what: op.subject.clone(),
            expected: format!("{} ({} bytes)", layer.digest, layer.size),
            actual: format!("{} ({} bytes)", written.digest, written.size),
        });
    }
    Ok(())
}

fn internal(session: &Session, op: &Op, e: tokio::task::JoinError) -> RegistryError {
    RegistryError::Protocol {
        registry: session.registry.clone(),
        operation: op.doing.clone(),
        detail: format!("a worker thread failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{Arch, DescriptorBuilder, MediaType, Os, PlatformBuilder};

    fn r() -> Reference {
        Reference::parse("127.0.0.1:5000/base:1").unwrap()
    }

    fn index(platforms: &[(&str, &str, Option<&str>)]) -> Vec<oci_spec::image::Descriptor> {
        platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut platform = PlatformBuilder::default()
                    .os(Os::from(*os))
                    .architecture(Arch::from(*arch));
                if let Some(variant) = variant {
                    platform = platform.variant(variant.to_string());
                }
                DescriptorBuilder::default()
                    .media_type(MediaType::ImageManifest)
                    .digest(
                        format!("sha256:{i:064}")
                            .parse::<oci_spec::image::Digest>()
                            .unwrap(),
                    )
                    .size(1u64)
                    .platform(platform.build().unwrap())
                    .build()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn picks_this_machine_then_amd64() {
        let host = platform::host_architecture();
        let entries = index(&[
            ("linux", "s390x", None),
            ("linux", "amd64", None),
            ("linux", host, None),
        ]);
        let chosen = choose_platform(&r(), &entries).unwrap();
        let expected = if host == "amd64" { 1 } else { 2 };
        assert_eq!(chosen, format!("sha256:{expected:064}"));

        let only_amd64 = index(&[("windows", "amd64", None), ("linux", "amd64", None)]);
        if host != "amd64" {
            assert_eq!(
                choose_platform(&r(), &only_amd64).unwrap(),
                format!("sha256:{:064}", 1)
            );
        }

        let none = index(&[("windows", "amd64", None), ("linux", "mips64le", None)]);
        if host != "mips64le" {
            let err = choose_platform(&r(), &none).unwrap_err().to_string();
            assert!(
                err.contains("windows/amd64") && err.contains("linux/mips64le"),
                "{err}"
            );
        }
    }

    #[test]
    fn manifests_are_checked() {
        let oci = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
        assert!(matches!(
            parse_manifest(&r(), oci).unwrap(),
            Manifest::Image { .. }
        ));
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            parse_manifest(&r(), index).unwrap().media_type(),
            crate::image::model::OCI_INDEX
        );
        let v1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let err = parse_manifest(&r(), v1).unwrap_err().to_string();
        assert!(err.contains("schema version 1"), "{err}");
        let helm = br#"{"schemaVersion":2,"mediaType":"application/vnd.cncf.helm.chart"}"#;
        assert!(
            parse_manifest(&r(), helm)
                .unwrap_err()
                .to_string()
                .contains("supported are")
        );
        assert!(parse_manifest(&r(), b"nope").is_err());
        let hostile = String::from_utf8_lossy(oci).replace(
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "sha256:../../etc/passwd",
        );
        let err = parse_manifest(&r(), hostile.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a sha256 digest"), "{err}");
    }
}

//! docker-archive tars: `--output docker-archive:FILE`, for `docker load` and
//! `kind load image-archive` on machines where pushing to a registry is not an option.
//!
//! We write the shape `docker save` has produced since Docker 25: an OCI layout inside the tar
//! (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) plus the classic `manifest.json` whose
//! `Config` and `Layers` point into `blobs/`. Every blob is stored once, as it is: layers stay
//! compressed. Readers of the classic format (`docker load` with the graph drivers, skopeo's
//! `docker-archive:` transport) detect compression of each layer file; readers of the OCI
//! format (containerd, so `docker load` with the containerd store and `kind load`) follow
//! `index.json`. Writing both costs a few hundred bytes and spares users guessing which loader
//! their machine has.
//!
//! The tar is reproducible: entries sorted by name, owner 0:0, fixed modes, and one mtime from
//! the caller (`SOURCE_DATE_EPOCH`). It is written to a temporary file beside the target and
//! renamed, so a failed or interrupted write never leaves a truncated archive that `docker load`
//! would half-import.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::annotations::{ANNOTATION_CONTAINERD_IMAGE_NAME, ANNOTATION_REF_NAME};
use super::assemble::{Image, canonical_json, descriptor_of};
use super::blobs::BlobStore;
use super::layout::{OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION};
use super::model::{self, OCI_INDEX, OCI_MANIFEST};

/// Errors writing a docker-archive. Each names the file or reference and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(
        "invalid image name {reference:?} for docker-archive:{file}: {reason}; give names like \
         `st2packs:1.0` or `registry.example.com:5000/team/st2packs:1.0`"
    )]
    InvalidName {
        file: PathBuf,
        reference: String,
        reason: String,
    },
    #[error(
        "{file} is a directory; name the archive file to write, e.g. docker-archive:{}",
        file.join("st2packs.tar").display()
    )]
    IsADirectory { file: PathBuf },
    #[error(
        "{dir} is not an existing directory; create it first or name a file in an existing \
         directory"
    )]
    NoDirectory { file: PathBuf, dir: PathBuf },
    #[error(
        "blob {digest} of the image is in none of the blob stores given; the build cache may \
         have been cleaned while building, build again"
    )]
    BlobNotFound { digest: String },
    #[error(
        "blob {digest} in {} does not match its digest; delete it and build again",
        path.display()
    )]
    CorruptBlob { digest: String, path: PathBuf },
    #[error(
        "cannot write docker-archive:{}: {source}; check that the directory exists and is \
         writable and that the disk is not full",
        file.display()
    )]
    Write {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read blob {}: {source}; build again to recreate it", path.display())]
    ReadBlob {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(file: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Write {
        file: file.to_path_buf(),
        source,
    }
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::ReadBlob {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `image` to `file` as a docker-archive naming it `repo_tags` (e.g. `st2packs:1.0`; a
/// name without a tag gets `:latest`, as `docker save` does), with every entry's mtime `mtime`.
/// Returns the manifest's descriptor. Blobs are streamed from the first of `sources` that holds
/// them and checked against their digest on the way.
pub fn write_archive(
    file: &Path,
    image: &Image,
    annotations: &BTreeMap<String, String>,
    repo_tags: &[&str],
    sources: &[&BlobStore],
    mtime: u64,
) -> Result<model::Descriptor, ArchiveError> {
    let names = parse_names(file, repo_tags)?;

    let config = image.config_bytes();
    let config_digest = model::sha256_digest(&config);
    let manifest = image.manifest_bytes(annotations);
    let manifest_descriptor = descriptor_of(OCI_MANIFEST, &manifest);

    // Every blob once, sorted by name; found before anything is written.
    let mut blobs: BTreeMap<String, BlobSource> = BTreeMap::new();
    blobs.insert(config_digest.clone(), BlobSource::Bytes(config));
    blobs.insert(
        manifest_descriptor.digest.clone(),
        BlobSource::Bytes(manifest),
    );
    for layer in &image.layers {
        let digest = &layer.descriptor.digest;
        if blobs.contains_key(digest) {
            continue;
        }
        let path = sources
            .iter()
            .find(|store| store.contains(digest))
            .and_then(|store| store.path(digest).ok())
            .ok_or_else(|| ArchiveError::BlobNotFound {
                digest: digest.clone(),
            })?;
        blobs.insert(
            digest.clone(),
            BlobSource::File {
                path,
                size: layer.descriptor.size,
            },
        );
    }

    let blob_name = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let docker_manifest = json!([{
        "Config": blob_name(&config_digest),
        "RepoTags": names.iter().map(DockerName::repo_tag).collect::<Vec<_>>(),
        "Layers": image.layers.iter().map(|l| blob_name(&l.descriptor.digest)).collect::<Vec<_>>(),
    }]);
    let index_entry = |annotations: Option<serde_json::Value>| {
        let mut entry = json!({
            "mediaType": OCI_MANIFEST,
            "digest": manifest_descriptor.digest,
            "size": manifest_descriptor.size,
        });
        if let Some(annotations) = annotations {
            entry["annotations"] = annotations;
        }
        entry
    };
    let index_entries: Vec<_> = if names.is_empty() {
        vec![index_entry(None)]
    } else {
        names
            .iter()
            .map(|n| {
                index_entry(Some(json!({
                    ANNOTATION_CONTAINERD_IMAGE_NAME: n.full_name(),
                    ANNOTATION_REF_NAME: n.tag,
                })))
            })
            .collect()
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": index_entries,
    });

    let temp = temp_file_beside(file)?;

    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 17, temp.as_file()));
    append_dir(&mut tar, "blobs/", mtime).map_err(io_err(file))?;
    append_dir(&mut tar, "blobs/sha256/", mtime).map_err(io_err(file))?;
    for (digest, source) in &blobs {
        let name = blob_name(digest);
        match source {
            BlobSource::Bytes(bytes) => {
                append_file(&mut tar, &name, bytes.len() as u64, &bytes[..], mtime)
                    .map_err(io_err(file))?
            }
            BlobSource::File { path, size } => {
                append_blob(&mut tar, &name, digest, path, *size, mtime, file)?
            }
        }
    }
    for (name, bytes) in [
        ("index.json", canonical_json(&index)),
        ("manifest.json", canonical_json(&docker_manifest)),
        (
            OCI_LAYOUT_FILE,
            canonical_json(&json!({ "imageLayoutVersion": OCI_LAYOUT_VERSION })),
        ),
    ] {
        append_file(&mut tar, name, bytes.len() as u64, &bytes[..], mtime).map_err(io_err(file))?;
    }
    let mut writer = tar.into_inner().map_err(io_err(file))?;
    writer.flush().map_err(io_err(file))?;
    drop(writer);

    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o644))
            .map_err(io_err(file))?;
    }
    temp.as_file().sync_all().map_err(io_err(file))?;
    temp.persist(file).map_err(|e| io_err(file)(e.error))?;
    Ok(manifest_descriptor)
}

/// Checks, without leaving anything behind, that [`write_archive`] can write `file` naming the
/// image `repo_tags`: each name is valid, `file` is not a directory, and its directory exists and
/// takes new files. Lets a command refuse a bad `--output` before it does any work.
pub fn check_target(file: &Path, repo_tags: &[&str]) -> Result<(), ArchiveError> {
    parse_names(file, repo_tags)?;
    if file.is_dir() {
        return Err(ArchiveError::IsADirectory {
            file: file.to_path_buf(),
        });
    }
    let dir = directory_of(file);
    if !dir.is_dir() {
        return Err(ArchiveError::NoDirectory {
            file: file.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    temp_file_beside(file).map(drop)
}

fn parse_names(file: &Path, repo_tags: &[&str]) -> Result<Vec<DockerName>, ArchiveError> {
    repo_tags
        .iter()
        .map(|r| {
            DockerName::parse(r).map_err(|reason| ArchiveError::InvalidName {
                file: file.to_path_buf(),
                reference: r.to_string(),
                reason,
            })
        })
        .collect()
}

fn directory_of(file: &Path) -> &Path {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The temporary file the archive is written to, in `file`'s directory so that it can be renamed
/// into place.
fn temp_file_beside(file: &Path) -> Result<tempfile::NamedTempFile, ArchiveError> {
    let file_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("archive");
    tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(directory_of(file))
        .map_err(io_err(file))
}

enum BlobSource {
    Bytes(Vec<u8>),
    File { path: PathBuf, size: u64 },
}

fn header(entry_type: tar::EntryType, size: u64, mode: u32, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(entry_type);
    header.set_size(size);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str, mtime: u64) -> io::Result<()> {
    let mut header = header(tar::EntryType::Directory, 0, 0o755, mtime);
    tar.append_data(&mut header, name, io::empty())
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
    mtime: u64,
) -> io::Result<()> {
    let mut header = header(tar::EntryType::Regular, size, 0o644, mtime);
    tar.append_data(&mut header, name, data)
}

/// Streams a layer blob into the tar, hashing it on the way: a blob whose bytes changed under
/// its name (a damaged cache) fails the write instead of producing an archive `docker load`
/// rejects later with a less helpful message.
fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    digest: &str,
    path: &Path,
    size: u64,
    mtime: u64,
    file: &Path,
) -> Result<(), ArchiveError> {
    let blob = File::open(path).map_err(read_err(path))?;
    let actual_size = blob.metadata().map_err(read_err(path))?.len();
    let corrupt = || ArchiveError::CorruptBlob {
        digest: digest.to_string(),
        path: path.to_path_buf(),
    };
    if actual_size != size {
        return Err(corrupt());
    }
    let mut reader = HashingReader {
        inner: blob.take(size),
        hasher: Sha256::new(),
        read: 0,
        failed: None,
    };
    if let Err(e) = append_file(tar, name, size, &mut reader, mtime) {
        return Err(match reader.failed.take() {
            // The blob could not be read: say which one, not that the archive could not be written.
            Some(source) => ArchiveError::ReadBlob {
                path: path.to_path_buf(),
                source,
            },
            None => io_err(file)(e),
        });
    }
    let actual = format!("sha256:{}", hex::encode(reader.hasher.finalize()));
    if actual != digest || reader.read != size {
        return Err(corrupt());
    }
    Ok(())
}

/// Hashes what passes through, and remembers a read error so it can be told apart from a write
/// error of the tar it is copied into.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    failed: Option<io::Error>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed = Some(io::Error::new(e.kind(), e.to_string()));
            }
        })?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// An image name as `docker save` records it: `RepoTags` keeps the short form the user typed,
/// containerd's annotation needs the fully qualified one (`docker.io/library/…`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DockerName {
    repository: String,
    tag: String,
}

impl DockerName {
    fn parse(reference: &str) -> Result<DockerName, String> {
        if reference.is_empty() {
            return Err("the name is empty".into());
        }
        if reference.contains('@') {
            return Err("an archive names images by tag, not by digest".into());
        }
        if let Some(c) = reference
            .chars()
            .find(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!("it contains {c:?}"));
        }
        let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match reference[last_slash..].rfind(':') {
            Some(i) => (
                &reference[..last_slash + i],
                &reference[last_slash + i + 1..],
            ),
            None => (reference, "latest"),
        };
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !tag_ok {
            return Err(format!(
                "tag {tag:?} must be letters, digits, '.', '_' or '-' (at most 128)"
            ));
        }
        let (domain, path) = split_domain(repository);
        if path.is_empty() || domain.is_some_and(str::is_empty) {
            return Err("the repository name is empty".into());
        }
        for component in path.split('/') {
            let ok = !component.is_empty()
                && component.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && component.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && component
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
            if !ok {
                return Err(format!(
                    "repository part {component:?} must be lowercase letters, digits and . _ -"
                ));
            }
        }
        Ok(DockerName {
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }

    fn repo_tag(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }

    fn full_name(&self) -> String {
        let repository = match split_domain(&self.repository) {
            (Some(_), _) => self.repository.clone(),
            (None, path) if path.contains('/') => format!("docker.io/{path}"),
            (None, path) => format!("docker.io/library/{path}"),
        };
        format!("{repository}:{}", self.tag)
    }
}

/// Docker's rule: the first component is a registry when it has a `.` or `:` or is `localhost`.
fn split_domain(repository: &str) -> (Option<&str>, &str) {
    match repository.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, repository),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names_are_completed_like_docker_does() {
        let cases = [
            (
                "st2packs",
                "st2packs:latest",
                "docker.io/library/st2packs:latest",
            ),
            (
                "st2packs:1.0",
                "st2packs:1.0",
                "docker.io/library/st2packs:1.0",
            ),
            ("team/packs:v2", "team/packs:v2", "docker.io/team/packs:v2"),
            (
                "localhost:5000/packs:1",
                "localhost:5000/packs:1",
                "localhost:5000/packs:1",
            ),
            (
                "registry.example.com/a/b",
                "registry.example.com/a/b:latest",
                "registry.example.com/a/b:latest",
            ),
            (
                "localhost/packs:x_1",
                "localhost/packs:x_1",
                "localhost/packs:x_1",
            ),
        ];
        for (input, repo_tag, full) in cases {
            let name = DockerName::parse(input).unwrap();
            assert_eq!(name.repo_tag(), repo_tag, "{input}");
            assert_eq!(name.full_name(), full, "{input}");
        }
    }

    #[test]
    fn bad_docker_names_are_rejected_with_a_reason() {
        for bad in [
            "",
            "Upper/case:1",
            "packs@sha256:abc",
            "packs:",
            "packs:-x",
            "a b:1",
            "/packs",
            "packs/:1",
            "registry.example.com/:1",
        ] {
            assert!(DockerName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

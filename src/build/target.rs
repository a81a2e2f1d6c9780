//! Where a built image goes: a registry (every tag of one repository in one push), an OCI layout
//! directory, or a docker-archive file. Every target is written the same way, from the same
//! [`BuiltImage`], so one build can go to several of them and `st2pack base-image` writes its
//! image exactly as `st2pack build` does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use thiserror::Error;

use super::BuiltImage;
use crate::image::archive::{self, ArchiveError, write_archive};
use crate::image::blobs::BlobStore;
use crate::image::layout::{self, LayoutError};
use crate::progress::{Phase, Progress};
use crate::registry::{
    PushOptions, PushReport, Reference, ReferenceError, RegistryClient, RegistryError, pull_layers,
    push_image,
};

/// One place to write an image to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Tags of one repository, pushed together: blobs once, then the manifest under each tag.
    Registry { tags: Vec<Reference> },
    /// An OCI image layout directory, naming the image with each tag.
    Layout { dir: PathBuf, tags: Vec<String> },
    /// A docker-archive tar naming the image with each name (`docker load`, `kind load`).
    Archive { file: PathBuf, names: Vec<String> },
}

/// What writing one target did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Pushed(PushReport),
    Layout { dir: PathBuf, tags: Vec<String> },
    Archive { file: PathBuf },
}

impl Written {
    /// The target as the user could type it again, for a layout or an archive.
    pub fn output(&self) -> Option<String> {
        match self {
            Written::Pushed(_) => None,
            Written::Layout { dir, .. } => Some(format!("oci:{}", dir.display())),
            Written::Archive { file } => Some(format!("docker-archive:{}", file.display())),
        }
    }
}

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("--tag: {0}")]
    Tag(ReferenceError),
    #[error("--tag {0}: a tag names the image to write, so it cannot carry a digest; use NAME:TAG")]
    TagWithDigest(String),
    #[error("{0}")]
    DefaultTag(ReferenceError),
    #[error("--output oci: needs a directory, e.g. --output oci:out/st2packs")]
    LayoutWithoutDir,
    #[error("--output docker-archive: needs a file, e.g. --output docker-archive:st2packs.tar")]
    ArchiveWithoutFile,
    #[error(
        "--output {0:?}: unknown target; use oci:DIR (an OCI image layout) or docker-archive:FILE"
    )]
    UnknownOutput(String),
    /// A layout that cannot be written, found before any work started.
    #[error("--output oci:{}: {source}", dir.display())]
    UnusableLayout {
        dir: PathBuf,
        source: Box<LayoutError>,
    },
    /// An archive that cannot be written, found before any work started.
    #[error("--output docker-archive:{}: {source}", file.display())]
    UnusableArchive {
        file: PathBuf,
        source: Box<ArchiveError>,
    },
    #[error("--output oci:{}: {source}", dir.display())]
    Layout {
        dir: PathBuf,
        source: Box<LayoutError>,
    },
    #[error("--output docker-archive:{}: {source}", file.display())]
    Archive {
        file: PathBuf,
        source: Box<ArchiveError>,
    },
    #[error("{reference}: cannot download a layer this build takes from it: {source}")]
    LayerSource {
        reference: String,
        source: Box<RegistryError>,
    },
    #[error("push to {repository} failed: {source}")]
    Push {
        repository: String,
        source: Box<RegistryError>,
    },
}

impl TargetError {
    /// Exit code: 2 for what the user typed, 1 for a write that failed (a registry's own code).
    pub fn exit_code(&self) -> i32 {
        match self {
            TargetError::Tag(_)
            | TargetError::TagWithDigest(_)
            | TargetError::DefaultTag(_)
            | TargetError::LayoutWithoutDir
            | TargetError::ArchiveWithoutFile
            | TargetError::UnknownOutput(_)
            | TargetError::UnusableLayout { .. }
            | TargetError::UnusableArchive { .. } => 2,
            TargetError::Layout { .. } | TargetError::Archive { .. } => 1,
            TargetError::Push { source, .. } | TargetError::LayerSource { source, .. } => {
                source.exit_code()
            }
        }
    }
}

/// The image's names as typed with `--tag`: a name without a tag gets `latest`; a digest is
/// refused, since a tag names the image to write.
pub fn parse_tags(tags: &[String]) -> Result<Vec<Reference>, TargetError> {
    tags.iter()
        .map(|tag| {
            let reference = Reference::parse(tag).map_err(TargetError::Tag)?;
            if reference.digest().is_some() {
                return Err(TargetError::TagWithDigest(tag.clone()));
            }
            if reference.tag().is_none() {
                return reference
                    .with_tag("latest")
                    .map_err(TargetError::DefaultTag);
            }
            Ok(reference)
        })
        .collect()
}

/// The targets for an image named `tags`: each output (`oci:DIR[:TAG]`, `docker-archive:FILE`)
/// in the order given, then, with `push`, one registry target per repository of the tags.
pub fn targets(
    tags: &[Reference],
    push: bool,
    outputs: &[String],
) -> Result<Vec<Target>, TargetError> {
    let mut targets = outputs
        .iter()
        .map(|output| parse_output(output, tags))
        .collect::<Result<Vec<_>, _>>()?;
    if push {
        let mut repositories: BTreeMap<String, Vec<Reference>> = BTreeMap::new();
        for tag in tags {
            repositories
                .entry(repository_of(tag))
                .or_default()
                .push(tag.clone());
        }
        targets.extend(
            repositories
                .into_values()
                .map(|tags| Target::Registry { tags }),
        );
    }
    Ok(targets)
}

/// A layout without its own `:TAG` names the image with the tags of `tags`; an archive names it
/// with the whole references.
fn parse_output(output: &str, tags: &[Reference]) -> Result<Target, TargetError> {
    if let Some(rest) = output.strip_prefix("oci:") {
        if rest.is_empty() {
            return Err(TargetError::LayoutWithoutDir);
        }
        let (dir, tag) = layout::parse_reference(output);
        let tags = match tag {
            Some(tag) => vec![tag],
            None => tags
                .iter()
                .filter_map(|t| t.tag().map(str::to_string))
                .collect(),
        };
        return Ok(Target::Layout { dir, tags });
    }
    if let Some(file) = output.strip_prefix("docker-archive:") {
        if file.is_empty() {
            return Err(TargetError::ArchiveWithoutFile);
        }
        return Ok(Target::Archive {
            file: PathBuf::from(file),
            names: tags.iter().map(|t| t.to_string()).collect(),
        });
    }
    Err(TargetError::UnknownOutput(output.to_string()))
}

fn repository_of(reference: &Reference) -> String {
    format!("{}/{}", reference.registry(), reference.repository())
}

impl Target {
    /// Checks, before any work starts, that this target can be written as the user gave it: a
    /// layout's directory and tags, an archive's file and names. Writes nothing that stays, so
    /// a bad `--output` fails at once instead of after the whole build. A registry is only
    /// known when pushed to.
    pub fn check(&self) -> Result<(), TargetError> {
        match self {
            Target::Layout { dir, tags } => {
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                layout::check_target(dir, &tags).map_err(|source| TargetError::UnusableLayout {
                    dir: dir.clone(),
                    source: Box::new(source),
                })
            }
            Target::Archive { file, names } => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                archive::check_target(file, &names).map_err(|source| TargetError::UnusableArchive {
                    file: file.clone(),
                    source: Box::new(source),
                })
            }
            Target::Registry { .. } => Ok(()),
        }
    }

    /// Writes `built`, whose blobs are in `store` or in [`BuiltImage::layer_sources`], to this
    /// target; `registry` is used to push, which `progress` shows, and to download the blobs a
    /// layout or an archive needs that the store lacks. A push sends the manifest last, so a tag
    /// never points at missing blobs.
    pub async fn write(
        &self,
        built: &BuiltImage,
        store: &BlobStore,
        registry: &RegistryClient,
        progress: &Progress,
    ) -> Result<Written, TargetError> {
        if !matches!(self, Target::Registry { .. }) {
            fetch_missing_blobs(built, store, registry).await?;
        }
        match self {
            Target::Layout { dir, tags } => {
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                layout::write_image(dir, &built.image, &built.annotations, &tags, &[store])
                    .map_err(|source| TargetError::Layout {
                        dir: dir.clone(),
                        source: Box::new(source),
                    })?;
                Ok(Written::Layout {
                    dir: dir.clone(),
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                })
            }
            Target::Archive { file, names } => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                write_archive(
                    file,
                    &built.image,
                    &built.annotations,
                    &names,
                    &[store],
                    built.created,
                )
                .map_err(|source| TargetError::Archive {
                    file: file.clone(),
                    source: Box::new(source),
                })?;
                Ok(Written::Archive { file: file.clone() })
            }
            Target::Registry { tags } => push(built, store, registry, tags, progress).await,
        }
    }
}

/// Downloads the layers the build took from other images (the base, `--cache-from` images) and
/// the store lacks: a file target holds every blob.
async fn fetch_missing_blobs(
    built: &BuiltImage,
    store: &BlobStore,
    registry: &RegistryClient,
) -> Result<(), TargetError> {
    for layer in &built.image.layers {
        let digest = &layer.descriptor.digest;
        if let Some(source) = built.layer_sources.get(digest)
            && !store.contains(digest)
        {
            pull_layers(
                registry,
                source,
                store,
                std::slice::from_ref(&layer.descriptor),
            )
            .await
            .map_err(|e| TargetError::LayerSource {
                reference: source.to_string(),
                source: Box::new(e),
            })?;
        }
    }
    Ok(())
}

async fn push(
    built: &BuiltImage,
    store: &BlobStore,
    registry: &RegistryClient,
    tags: &[Reference],
    progress: &Progress,
) -> Result<Written, TargetError> {
    let Some(first) = tags.first() else {
        return Ok(Written::Pushed(PushReport::default()));
    };
    let manifest = built.image.manifest_bytes(&built.annotations);
    let config = built.image.config_bytes();
    let config_descriptor = built.image.config_descriptor();
    progress.named(&config_descriptor.digest, "image config");
    let layers: Vec<_> = built
        .image
        .layers
        .iter()
        .map(|l| l.descriptor.clone())
        .collect();
    let options = PushOptions {
        extra_tags: tags[1..]
            .iter()
            .filter_map(|r| r.tag().map(str::to_string))
            .collect(),
        mount_from: built.mount_from.clone(),
        blob_sources: built.layer_sources.clone(),
    };
    let _pushing = progress.phase(Phase::Push);
    push_image(
        registry,
        first,
        store,
        (&config, &config_descriptor),
        &layers,
        &manifest,
        &options,
    )
    .await
    .map(Written::Pushed)
    .map_err(|source| TargetError::Push {
        repository: repository_of(first),
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags_of(names: &[&str]) -> Vec<Reference> {
        parse_tags(&names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn outputs_come_first_then_one_push_per_repository() {
        let tags = tags_of(&[
            "registry.example.com/team/packs:1",
            "127.0.0.1:5000/packs",
            "registry.example.com/team/packs:latest",
        ]);
        let outputs = [
            "docker-archive:out.tar".to_string(),
            "oci:out/layout".into(),
        ];
        let all = targets(&tags, true, &outputs).unwrap();
        assert_eq!(
            all[0],
            Target::Archive {
                file: "out.tar".into(),
                names: vec![
                    "registry.example.com/team/packs:1".into(),
                    "127.0.0.1:5000/packs:latest".into(),
                    "registry.example.com/team/packs:latest".into(),
                ],
            }
        );
        assert_eq!(
            all[1],
            Target::Layout {
                dir: "out/layout".into(),
                tags: vec!["1".into(), "latest".into(), "latest".into()],
            }
        );
        let pushed: Vec<Vec<String>> = all[2..]
            .iter()
            .map(|t| match t {
                Target::Registry { tags } => tags.iter().map(|t| t.to_string()).collect(),
                other => panic!("{other:?} is not a registry"),
            })
            .collect();
        assert_eq!(
            pushed,
            [
                vec!["127.0.0.1:5000/packs:latest".to_string()],
                vec![
                    "registry.example.com/team/packs:1".to_string(),
                    "registry.example.com/team/packs:latest".to_string()
                ],
            ]
        );
        assert_eq!(targets(&tags, false, &[]).unwrap(), []);
    }

    #[test]
    fn a_layout_tag_of_its_own_wins() {
        let targets = targets(&tags_of(&["packs:1"]), false, &["oci:dir:dev".into()]).unwrap();
        assert_eq!(
            targets,
            [Target::Layout {
                dir: "dir".into(),
                tags: vec!["dev".into()]
            }]
        );
    }

    #[test]
    fn bad_outputs_and_tags_are_usage_errors() {
        for output in ["oci:", "docker-archive:", "dir:x"] {
            let err = targets(&[], false, &[output.to_string()]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{err}");
        }
        let err = parse_tags(&["packs@sha256:".to_string() + &"a".repeat(64)]).unwrap_err();
        assert!(err.to_string().contains("cannot carry a digest"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}

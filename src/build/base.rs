//! The image a build starts from: a registry reference, an OCI layout directory (`oci:DIR[:TAG]`)
//! or `scratch`, parsed once and loaded one way: its config in the build's blob store, and its
//! layers either there too (a layout) or named by where they are (a registry), so that a push to
//! that registry never moves them.

use thiserror::Error;

use crate::image::assemble::{Image, ImageError};
use crate::image::blobs::{BlobError, BlobStore};
use crate::image::layout::{self, LayoutError};
use crate::registry::{Reference, ReferenceError, RegistryClient, RegistryError, pull_config};

/// A base image as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseImage {
    /// No base: the image is the packs alone (no `/bin/sh`, which the chart needs).
    Scratch,
    /// `oci:DIR[:TAG]`, as the user typed it.
    Layout(String),
    /// An image in a registry, pulled into the blob store; `name` is the reference as typed.
    Registry { name: String, reference: Reference },
}

#[derive(Debug, Error)]
pub enum BaseError {
    #[error("--base: {0}")]
    Reference(ReferenceError),
    #[error("--base {base}: {source}")]
    Pull {
        base: String,
        source: Box<RegistryError>,
    },
    #[error("--base {base}: {source}")]
    Layout {
        base: String,
        source: Box<LayoutError>,
    },
    #[error("--base {base}: {source}")]
    Config { base: String, source: ImageError },
    #[error("--base {base}: {source}")]
    Import { base: String, source: BlobError },
}

impl BaseError {
    /// Exit code: 2 for a base that is named wrongly or cannot be read where the user said it
    /// is, 1 for a failure along the way (a registry's own code).
    pub fn exit_code(&self) -> i32 {
        match self {
            BaseError::Reference(_) | BaseError::Layout { .. } => 2,
            BaseError::Pull { source, .. } => source.exit_code(),
            BaseError::Config { .. } | BaseError::Import { .. } => 1,
        }
    }
}

impl BaseImage {
    /// Parses `--base`: `scratch`, `oci:DIR[:TAG]`, or a registry reference.
    pub fn parse(base: &str) -> Result<BaseImage, BaseError> {
        if base == "scratch" {
            return Ok(BaseImage::Scratch);
        }
        if base.starts_with("oci:") {
            return Ok(BaseImage::Layout(base.to_string()));
        }
        let reference = Reference::parse(base).map_err(BaseError::Reference)?;
        Ok(BaseImage::Registry {
            name: base.to_string(),
            reference,
        })
    }

    /// The registry reference, for a base pulled from a registry: the push mounts its layers
    /// from there instead of uploading them.
    pub fn reference(&self) -> Option<&Reference> {
        match self {
            BaseImage::Registry { reference, .. } => Some(reference),
            _ => None,
        }
    }

    /// The base, with its config in `store`. A registry base's layers stay in the registry: a
    /// push mounts them, and a file output downloads them ([`BaseImage::reference`] is where
    /// from); an `oci:` base's are imported into `store`.
    pub async fn load(
        &self,
        registry: &RegistryClient,
        store: &BlobStore,
    ) -> Result<Image, BaseError> {
        match self {
            BaseImage::Scratch => Ok(Image::scratch()),
            BaseImage::Registry { name, reference } => {
                let base = name.clone();
                let pulled = pull_config(registry, reference, store)
                    .await
                    .map_err(|source| BaseError::Pull {
                        base: base.clone(),
                        source: Box::new(source),
                    })?;
                Image::from_config_and_descriptors(&pulled.config, pulled.layers)
                    .map_err(|source| BaseError::Config { base, source })
            }
            BaseImage::Layout(base) => {
                let (image, layout_store) =
                    layout::read_reference(base).map_err(|source| BaseError::Layout {
                        base: base.clone(),
                        source: Box::new(source),
                    })?;
                for layer in &image.layers {
                    store
                        .import(&layout_store, &layer.descriptor.digest)
                        .map_err(|source| BaseError::Import {
                            base: base.clone(),
                            source,
                        })?;
                }
                Ok(image)
            }
        }
    }
}

impl std::fmt::Display for BaseImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BaseImage::Scratch => f.write_str("scratch"),
            BaseImage::Layout(base) => f.write_str(base),
            BaseImage::Registry { name, .. } => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_kinds() {
        assert_eq!(BaseImage::parse("scratch").unwrap(), BaseImage::Scratch);
        assert_eq!(
            BaseImage::parse("oci:out/base:local").unwrap(),
            BaseImage::Layout("oci:out/base:local".into())
        );
        let registry = BaseImage::parse("127.0.0.1:5000/base:1").unwrap();
        assert_eq!(
            registry.reference().map(|r| r.to_string()).as_deref(),
            Some("127.0.0.1:5000/base:1")
        );
        let err = BaseImage::parse("Not A Reference").unwrap_err();
        assert!(err.to_string().starts_with("--base: "), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}

//! Reading back what an image carries — the packs its label lists, and its layers — from a
//! registry or an OCI layout, without pulling the layers (`st2pack inspect`, and the images
//! `st2pack merge` takes).

use serde::Serialize;
use thiserror::Error;

use super::label::{self, LabelError};
use crate::image::assemble::{Image, ImageError};
use crate::image::blobs::BlobStore;
use crate::image::layout::{self, LayoutError};
use crate::image::manifest::{self, Manifest};
use crate::image::model::Descriptor;
use crate::pack::pin::PackPin;
use crate::registry::{
    Reference, ReferenceError, RegistryClient, RegistryError, fetch_manifest_and_config,
};

/// An image to inspect, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageName {
    /// `oci:DIR[:TAG]`, as typed.
    Layout(String),
    /// An image in a registry; `name` is the reference as typed.
    Registry { name: String, reference: Reference },
}

/// What an image carries.
#[derive(Debug, Clone)]
pub struct Inspected {
    /// The image's name: the layout as typed, or the full registry reference.
    pub image: String,
    /// The manifest's digest, when read from a registry.
    pub digest: Option<String>,
    /// The packs, as the image's label records them.
    pub packs: Vec<PackPin>,
    pub layers: Vec<InspectedLayer>,
}

/// One layer of an inspected image.
#[derive(Debug, Clone, Serialize)]
pub struct InspectedLayer {
    #[serde(flatten)]
    pub descriptor: Descriptor,
    /// What the config's history says made it (for a pack image, `st2pack: virtualenv aws
    /// 2.0.2` or `st2pack: pack aws 2.0.2`), when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

#[derive(Debug, Error)]
pub enum InspectError {
    #[error(transparent)]
    Reference(ReferenceError),
    #[error("{image}: {source}")]
    Layout {
        image: String,
        source: Box<LayoutError>,
    },
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error("{image}: {source}")]
    Config { image: String, source: ImageError },
    #[error("{image}: {source}")]
    Label { image: String, source: LabelError },
}

impl InspectError {
    /// Exit code: 2 for an image named wrongly or not found where the user said, 1 for an image
    /// that cannot be read (a registry's own code).
    pub fn exit_code(&self) -> i32 {
        match self {
            InspectError::Reference(_) | InspectError::Layout { .. } => 2,
            InspectError::Registry(e) => e.exit_code(),
            InspectError::Config { .. } | InspectError::Label { .. } => 1,
        }
    }
}

impl ImageName {
    /// `oci:DIR[:TAG]`, or a registry reference.
    pub fn parse(image: &str) -> Result<ImageName, InspectError> {
        if image.starts_with("oci:") {
            return Ok(ImageName::Layout(image.to_string()));
        }
        let reference = Reference::parse(image).map_err(InspectError::Reference)?;
        Ok(ImageName::Registry {
            name: image.to_string(),
            reference,
        })
    }

    /// The registry reference, for an image in a registry.
    pub fn reference(&self) -> Option<&Reference> {
        match self {
            ImageName::Registry { reference, .. } => Some(reference),
            ImageName::Layout(_) => None,
        }
    }

    /// Reads the image's config and layer list; `registry` is only used for a registry image.
    pub async fn inspect(&self, registry: &RegistryClient) -> Result<Inspected, InspectError> {
        let read = self.read(registry).await?;
        let name = match self {
            ImageName::Layout(name) => name.clone(),
            ImageName::Registry { name, .. } => name.clone(),
        };
        Ok(Inspected {
            packs: packs_of(&read.image, &name)?,
            image: match self {
                ImageName::Layout(_) => name,
                ImageName::Registry { reference, .. } => reference.to_string(),
            },
            digest: read.digest,
            layers: layers_of(&read.image),
        })
    }

    /// Reads the image's manifest and config, never a layer; `registry` is only used for a
    /// registry image.
    pub async fn read(&self, registry: &RegistryClient) -> Result<ReadImage, InspectError> {
        match self {
            ImageName::Layout(name) => {
                let (image, store) =
                    layout::read_reference(name).map_err(|source| InspectError::Layout {
                        image: name.clone(),
                        source: Box::new(source),
                    })?;
                Ok(ReadImage {
                    image,
                    digest: None,
                    layout_store: Some(store),
                })
            }
            ImageName::Registry { name, reference } => {
                let (manifest, digest, config) = fetch_manifest_and_config(registry, reference)
                    .await
                    .map_err(|e| InspectError::Registry(Box::new(e)))?;
                // The pull parsed and checked this manifest already; only an index would not be
                // an image.
                let layers = match manifest::parse(&manifest) {
                    Ok(Manifest::Image { manifest, .. }) => manifest::blobs(&manifest).1,
                    Ok(Manifest::Index { .. }) | Err(_) => Vec::new(),
                };
                let image =
                    Image::from_config_and_descriptors(&config, layers).map_err(|source| {
                        InspectError::Config {
                            image: name.clone(),
                            source,
                        }
                    })?;
                Ok(ReadImage {
                    image,
                    digest: Some(digest),
                    layout_store: None,
                })
            }
        }
    }
}

/// An image's config and layer list, as [`ImageName::read`] found them.
#[derive(Debug, Clone)]
pub struct ReadImage {
    pub image: Image,
    /// The manifest's digest, when read from a registry.
    pub digest: Option<String>,
    /// Where the layers are, for an image in an OCI layout.
    pub layout_store: Option<BlobStore>,
}

/// The image's layers, each with what the history says made it (nothing when the history does
/// not describe every layer: then it cannot be told which entry is which layer's).
fn layers_of(image: &Image) -> Vec<InspectedLayer> {
    let history = image.layer_history();
    image
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| InspectedLayer {
            descriptor: layer.descriptor.clone(),
            created_by: history
                .as_ref()
                .map(|h| h[i].clone())
                .filter(|described| !described.is_empty()),
        })
        .collect()
}
fn packs_of(image: &Image, name: &str) -> Result<Vec<PackPin>, InspectError> {
    label::packs(image).map_err(|source| InspectError::Label {
        image: name.to_string(),
        source,
    })
}

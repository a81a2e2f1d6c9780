//! The OCI annotation names the image writers use.

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

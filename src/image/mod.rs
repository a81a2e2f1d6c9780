//! OCI images of installed packs: deterministic layers, the image model, and the writers that
//! put an image into an OCI layout directory or a docker-archive tar.

pub mod archive;
pub mod assemble;
pub mod blobs;
mod cache_key;
pub mod labels;
pub mod layer;
pub mod layer_cache;
pub mod layout;
pub mod manifest;
pub mod model;
pub mod platform;
pub mod segment_cache;

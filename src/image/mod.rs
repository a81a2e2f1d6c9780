//! A generic OCI image library: deterministic layers from file trees, the image model, a blob
//! store, the layer caches, and the writers that put an image into an OCI layout directory or a
//! docker-archive tar.
//!
//! It knows nothing of packs: what goes where in a pack image, and the pack label, are
//! `build`'s choices. Within it, dependencies point one way: `model` and `blobs` at the bottom,
//! `layer` (which builds a layer, reusing members recorded by `segment_cache`) above them,
//! `layer_cache` above `layer`, and `assemble`, `layout` and `archive` beside it; `unpack`
//! applies layers to a directory.

pub mod annotations;
pub mod archive;
pub mod assemble;
pub mod blobs;
mod cache_key;
pub mod in_root;
pub mod layer;
pub mod layer_cache;
pub mod layout;
pub mod manifest;
pub mod model;
pub mod platform;
pub mod segment_cache;
pub mod unpack;

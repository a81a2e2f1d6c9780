//! st2pack: install StackStorm packs without a running StackStorm, and build them into OCI images
//! that the stackstorm-k8s Helm chart mounts.
//!
//! Data flows one way: pack spec -> source -> installed tree -> layers -> image -> target.

pub mod build;
pub mod cache;
pub mod cli;
pub mod config;
pub mod file_lock;
pub mod image;
pub mod install;
pub mod lockfile;
pub mod pack;
pub mod progress;
pub mod redact;
pub mod registry;
pub mod runtime;
pub mod source;
pub mod validate;

/// The static musl build allocates with mimalloc: musl's own allocator made a warm install (many
/// small allocations while walking and linking trees) cost 1.5x the CPU of the glibc build
/// (BENCHMARKS.md).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

//! The two command lines, as clap definitions: the binaries parse them, and the tests parse the
//! commands written in the Dockerfiles and CI examples with them, so a renamed flag breaks a
//! test rather than a user's build.

use clap::{Parser, Subcommand};

use super::base::BaseArgs;
use super::build::BuildArgs;
use super::cache::CacheArgs;
use super::inspect::InspectArgs;
use super::install::InstallArgs;
use super::lock::LockArgs;
use super::merge::MergeArgs;
use super::validate::ValidateArgs;

/// What `--version` prints after the program name: the version, the git commit the binary was
/// built from and its target triple (both set by build.rs), so a binary found in an image or on
/// a runner says what it is.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ST2PACK_BUILD_COMMIT"),
    ", ",
    env!("ST2PACK_BUILD_TARGET"),
    ")"
);

/// Install StackStorm packs and one Python virtualenv per pack, with no database and no
/// message queue.
#[derive(Debug, Parser)]
#[command(name = "st2-pack-install", version = VERSION)]
pub struct PackInstallCli {
    #[command(flatten)]
    pub install: InstallArgs,
}

impl PackInstallCli {
    pub fn run(&self) -> i32 {
        super::install::run(&self.install)
    }
}

/// Install StackStorm packs and build them into OCI images.
#[derive(Debug, Parser)]
#[command(name = "st2pack", version = VERSION)]
pub struct St2packCli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install packs and their virtualenvs (the same engine as st2-pack-install).
    Install(Box<InstallArgs>),
    /// Build an image of packs for the stackstorm-k8s chart, and push or write it.
    Build(Box<BuildArgs>),
    /// Merge the pack layers of several pack images into one image, and push or write it.
    Merge(Box<MergeArgs>),
    /// Lock packs to their commits and requirements to exact versions and hashes, for builds
    /// with --locked; --check says whether the lock still matches.
    Lock(Box<LockArgs>),
    /// List the packs and layers of an image.
    Inspect(InspectArgs),
    /// Make a minimal base image (sh, cp) from a static busybox.
    BaseImage(BaseArgs),
    /// Check pack directories for problems before releasing them.
    Validate(ValidateArgs),
    /// Show where the cache is and what it holds, or prune it.
    Cache(CacheArgs),
}

impl St2packCli {
    pub fn run(&self) -> i32 {
        match &self.command {
            Command::Install(args) => super::install::run(args),
            Command::Build(args) => super::build::run(args),
            Command::Merge(args) => super::merge::run(args),
            Command::Lock(args) => super::lock::run(args),
            Command::Inspect(args) => super::inspect::run(args),
            Command::BaseImage(args) => super::base::run(args),
            Command::Validate(args) => super::validate::run(args),
            Command::Cache(args) => super::cache::run(args),
        }
    }
}

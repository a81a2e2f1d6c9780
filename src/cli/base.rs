//! `st2pack base-image`: a minimal base image from a static busybox (`build::busybox`), written
//! to the same targets as `st2pack build`.

use std::path::PathBuf;

use clap::Args;

use super::registry_args::RegistryArgs;
use super::target_args::{TargetArgs, print_written};
use super::{Failure, run_to_exit_code, usage};
use crate::build::{self, BuildEvent, busybox};
use crate::progress::Progress;

#[derive(Debug, Clone, Args)]
pub struct BaseArgs {
    /// A statically linked busybox binary (Debian: busybox-static installs /bin/busybox).
    #[arg(long, value_name = "PATH", default_value = "/bin/busybox")]
    pub busybox: PathBuf,

    #[command(flatten)]
    pub targets: TargetArgs,

    /// The cache: git mirrors, virtualenvs, bytecode, layers [default: ~/.cache/st2pack]
    #[arg(long, value_name = "DIR", env = "ST2PACK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: &BaseArgs) -> i32 {
    run_to_exit_code(base_image(args))
}

async fn base_image(args: &BaseArgs) -> Result<(), Failure> {
    let (tags, targets) = args.targets.parse()?;
    busybox::check(&args.busybox).map_err(|e| (e.exit_code(), e.to_string()))?;
    let mtime = build::source_date_epoch().map_err(|e| usage(e.to_string()))?;
    let mut registry = args
        .registry
        .client(&args.targets.registry_references(&tags, None))
        .map_err(usage)?;
    let progress = Progress::new(false);
    registry.on_event(progress.registry_sink());
    let cache = super::cache::open(args.cache_dir.clone(), super::cache::DEFAULT_LOCK_TIMEOUT)?;
    let outcome = busybox::run(
        &args.busybox,
        &cache,
        mtime,
        &targets,
        &registry,
        &progress,
        |event| {
            if let BuildEvent::Wrote(written) = event {
                print_written(written);
            }
        },
    )
    .await
    .map_err(|e| (e.exit_code(), e.to_string()))?;
    println!("{}", outcome.digest);
    Ok(())
}

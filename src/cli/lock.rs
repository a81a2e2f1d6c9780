//! `st2pack lock` (make or check a lock file), and `--locked FILE` of `st2pack build`,
//! `st2pack install` and `st2-pack-install`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::install::{InstallSettings, Placement};
use super::registry_args::RegistryArgs;
use super::runtime_args::{self, RuntimeDefault};
use super::{Failure, failed, run_to_exit_code, usage};
use crate::install::{self, InstallOptions};
use crate::lockfile::{DEFAULT_FILE, LockFile, diff, make, select};
use crate::pack::spec::PackSpec;
use crate::progress::Progress;

#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// Packs to lock, with the same specs as `build`; their dependencies are locked too. With
    /// --check and no PACK: the packs the lock file was made from.
    #[arg(value_name = "PACK")]
    pub packs: Vec<String>,

    /// The lock file to write (or, with --check, to compare).
    #[arg(long, short = 'o', value_name = "FILE", default_value = DEFAULT_FILE)]
    pub output: PathBuf,

    /// Write nothing: exit 1, saying what differs, when the lock file no longer matches what
    /// the packs and their requirements resolve to now; 0 when it does.
    #[arg(long)]
    pub check: bool,

    #[command(flatten)]
    pub install: InstallSettings,

    /// For --runtime-image.
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Lock pip and wheel too, for builds with --keep-pip (st2-pack-install keeps them).
    #[arg(long)]
    pub keep_pip: bool,

    /// Print each step as it happens.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// Runs `st2pack lock` and returns the exit code.
pub fn run(args: &LockArgs) -> i32 {
    run_to_exit_code(lock(args))
}

async fn lock(args: &LockArgs) -> Result<(), Failure> {
    let existing = if args.check {
        Some(LockFile::read(&args.output).map_err(|e| (e.exit_code(), e.to_string()))?)
    } else {
        None
    };
    let packs = match (&existing, args.packs.is_empty()) {
        (_, false) => args.packs.clone(),
        (Some(existing), true) => existing.requested.clone(),
        (None, true) => {
            return Err(usage(
                "give the packs to lock: st2pack lock PACK... [-o st2packs.lock]",
            ));
        }
    };
    let placement = Placement {
        progress: Progress::new(args.verbose),
        ..Placement::default()
    };
    let (mut options, specs) = args.install.to_options(&packs, placement).map_err(usage)?;
    options.keep_pip = args.keep_pip;
    let settings = &args.install;
    let cache = super::cache::open(
        settings.cache_dir.clone(),
        Duration::from_secs(settings.lock_timeout),
    )?;
    let registry = settings.runtime.registry_client(&args.registry)?;
    // As `build`: the lock is for the image's runtime.
    let default = RuntimeDefault::ChartDefault;
    let runtime_image =
        runtime_args::apply(&settings.runtime, &mut options, default, &registry, &cache).await?;
    let (lock, warnings) = make::make(&options, &specs)
        .await
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    drop(runtime_image);
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let file = args.output.display();
    match existing {
        Some(existing) => {
            let differences = diff::differences(&existing, &lock);
            if differences.is_empty() {
                eprintln!(
                    "{file} is up to date ({})",
                    counted(lock.packs.len(), "pack")
                );
                return Ok(());
            }
            Err(failed(format!(
                "{file} no longer matches the packs and their requirements:\n  {}\n  run `st2pack lock` \
                 with the same packs and options to update it",
                differences.join("\n  ")
            )))
        }
        None => {
            lock.write(&args.output)
                .map_err(|e| (e.exit_code(), e.to_string()))?;
            let requirements: usize = lock.packs.iter().map(|p| p.requirements.len()).sum();
            eprintln!(
                "locked {} and {} for {} in {file}",
                counted(lock.packs.len(), "pack"),
                counted(requirements, "requirement"),
                lock.runtime.describe()
            );
            Ok(())
        }
    }
}

fn counted(count: usize, what: &str) -> String {
    format!("{count} {what}{}", if count == 1 { "" } else { "s" })
}

/// Makes `options` install exactly what the lock file `path` holds, refusing a lock made for
/// another runtime; `given` (the PACK specs, maybe none) choose which of its packs. Returns the
/// specs to install. Call after the runtime is applied to `options`.
pub async fn apply_locked(
    path: &Path,
    given: &[PackSpec],
    options: &mut InstallOptions,
) -> Result<Vec<PackSpec>, Failure> {
    let lock = LockFile::read(path).map_err(|e| (e.exit_code(), e.to_string()))?;
    let asked = install::runtime_pin(options)
        .await
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    select::check_runtime(&lock, path, &asked).map_err(|e| usage(e.to_string()))?;
    let selection = select::select(&lock, path, given).map_err(|e| usage(e.to_string()))?;
    // Every locked pack is named; their `dependencies:` are the ones locked with them.
    options.skip_dependencies = true;
    options.locked = Some(Arc::new(selection.locked));
    Ok(selection.specs)
}

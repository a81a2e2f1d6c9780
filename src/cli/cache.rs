//! `st2pack cache dir|info|prune`: where the cache is, what it holds, and making it smaller.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use clap::{Args, Subcommand};

use super::{EXIT_OK, Failure, failed, run_to_exit_code};
use crate::cache::{Cache, PrunePolicy};

/// Entries unused for this many days are pruned when no limit is given.
const DEFAULT_UNUSED_DAYS: u64 = 30;

/// How long commands without a --lock-timeout wait for a prune to finish.
pub(super) const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,

    /// The cache directory [default: ~/.cache/st2pack]
    #[arg(long, value_name = "DIR", env = "ST2PACK_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CacheCommand {
    /// Print the cache directory.
    Dir,
    /// Show the size of each part of the cache.
    Info {
        /// Print a machine-readable summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove cache entries no build has used lately [default: unused for 30 days].
    Prune(PruneArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Remove entries no build has used for more than DAYS days.
    #[arg(long, value_name = "DAYS")]
    pub older_than: Option<u64>,

    /// Then remove the least recently used entries until the cache holds at most SIZE
    /// (e.g. 10G, 500M, 2GiB; 0 empties it).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// Seconds to wait for running st2pack commands that use the cache to finish.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub lock_timeout: u64,
}

fn parse_size(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| {
            format!("{value:?} is not a size; give bytes or a number with a unit, e.g. 10G, 500M, 2GiB or 0")
        })
}

pub fn run(args: &CacheArgs) -> i32 {
    let cache = Cache::from_option(args.cache_dir.clone());
    match &args.command {
        CacheCommand::Dir => {
            println!("{}", cache.root().display());
            EXIT_OK
        }
        CacheCommand::Info { json } => {
            info(&cache, *json);
            EXIT_OK
        }
        CacheCommand::Prune(prune_args) => run_to_exit_code(async { prune(&cache, prune_args) }),
    }
}

fn info(cache: &Cache, json: bool) {
    let usage = cache.usage();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&usage).unwrap_or_default()
        );
        return;
    }
    println!("cache directory: {}", usage.dir.display());
    println!("{:<13} {:>8} {:>12}", "bucket", "entries", "size");
    for bucket in &usage.buckets {
        println!(
            "{:<13} {:>8} {:>12}",
            bucket.name,
            bucket.entries,
            ByteSize(bucket.bytes).to_string()
        );
    }
    for old in &usage.old_formats {
        println!(
            "{:<22} {:>12}  (old format, removed by `st2pack cache prune`)",
            old.dir
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            ByteSize(old.bytes).to_string()
        );
    }
    println!(
        "{:<22} {:>12}  (hard-linked files counted once)",
        "total",
        ByteSize(usage.total_bytes).to_string()
    );
}

fn prune(cache: &Cache, args: &PruneArgs) -> Result<(), Failure> {
    let days = |d: u64| Duration::from_secs(d.saturating_mul(24 * 3600));
    let policy = PrunePolicy {
        unused_for: match (args.older_than, args.max_size) {
            (Some(d), _) => Some(days(d)),
            (None, Some(_)) => None,
            (None, None) => Some(days(DEFAULT_UNUSED_DAYS)),
        },
        max_bytes: args.max_size,
    };
    if !cache.root().is_dir() {
        eprintln!(
            "nothing to prune: there is no cache at {}",
            cache.root().display()
        );
        return Ok(());
    }
    let timeout = Duration::from_secs(args.lock_timeout);
    let exclusive = cache
        .lock_exclusive(timeout, || {
            eprintln!(
                "waiting for the st2pack commands using the cache {} to finish (at most {} s, see --lock-timeout)",
                cache.root().display(),
                timeout.as_secs()
            )
        })
        .map_err(failed)?;
    let report = exclusive.prune(&policy).map_err(failed)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for dir in &report.old_formats {
        eprintln!(
            "removed {} (a format this st2pack does not read)",
            dir.display()
        );
    }
    eprintln!(
        "removed {} entries ({}); {} entries ({}) kept in {}",
        report.removed_entries,
        ByteSize(report.removed_bytes),
        report.kept_entries,
        ByteSize(report.kept_bytes),
        cache.root().display()
    );
    Ok(())
}

/// The cache of a command that uses it, held (shared) until the handle is dropped; waits for a
/// running prune, saying so.
pub(super) fn open(dir: Option<PathBuf>, timeout: Duration) -> Result<Cache, Failure> {
    let cache = Cache::from_option(dir);
    let shown = cache.root().display().to_string();
    tokio::task::block_in_place(|| {
        cache.init(timeout, || {
            eprintln!("waiting for `st2pack cache prune` to finish with the cache {shown}")
        })
    })
    .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("500M"), Ok(500_000_000));
        assert_eq!(parse_size("10G"), Ok(10_000_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("abc").unwrap_err().contains("\"abc\""));
        assert!(parse_size("-1").is_err());
    }
}

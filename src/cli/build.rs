//! `st2pack build`: the command line of the build pipeline (`crate::build`). It turns the flags
//! into a [`BuildRequest`], prints the pipeline's events as they happen, and writes what the
//! user asked for last: the digest, the summary, the chart values.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::install::{InstallSettings, Placement, print_summary};
use super::registry_args::RegistryArgs;
use super::result_args::ResultArgs;
use super::runtime_args::{self, RuntimeDefault};
use super::target_args::{TargetArgs, print_written};
use super::{Failure, run_to_exit_code, usage};
use crate::build::{
    self, BaseImage, BuildEvent, BuildOutcome, BuildRequest, CacheRef, LayerOrigin, MadeLayer,
    PackInput, Written,
};
use crate::image::layer::{Compression, LayerOptions};
use crate::install;
use crate::progress::Progress;
use crate::registry::Reference;

/// The default base: a small public image with `/bin/sh` and `/bin/cp`, which the chart's init
/// container runs.
pub const DEFAULT_BASE: &str = "docker.io/library/busybox:1.36";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    /// Understood by every registry and runtime.
    Gzip,
    /// Smaller and faster; needs containerd 1.5+ or a recent CRI-O.
    Zstd,
}

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Packs to install into the image (same specs as st2-pack-install). Leave out to layer an
    /// installed tree given with --root. With --locked: the packs of the lock file to build
    /// (with their dependencies) [default: all of them]
    #[arg(value_name = "PACK")]
    pub packs: Vec<String>,

    /// Build exactly what this lock file (from `st2pack lock`) holds: its commits, and its
    /// requirements with their hashes checked.
    #[arg(long, value_name = "FILE")]
    pub locked: Option<PathBuf>,

    /// Installed tree to layer: DIR/packs/* and DIR/virtualenvs/*, as st2-pack-install writes
    /// them. With PACK specs, they are installed into DIR first (unchanged packs are skipped).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(flatten)]
    pub targets: TargetArgs,

    /// Base image: a registry reference, oci:DIR[:TAG], or scratch (no /bin/sh: the chart's
    /// init container needs sh and cp).
    #[arg(long, value_name = "REF", default_value = DEFAULT_BASE)]
    pub base: String,

    /// A pack image built before (registry reference or oci:DIR[:TAG]; repeatable): each
    /// pack whose layer there is exactly what this build would make (same source, commit,
    /// virtualenv inputs, runtime and layer format) is taken from it as it is, neither
    /// installed nor uploaded. Costs one manifest and config read per image; an image that
    /// cannot be read is a warning.
    #[arg(long, value_name = "REF")]
    pub cache_from: Vec<String>,

    /// Layer compression.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,

    /// Owner of every file in the pack layers [default: 0:0].
    #[arg(long, value_name = "UID:GID")]
    pub chown: Option<String>,

    #[command(flatten)]
    pub result: ResultArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub install: InstallSettings,

    /// Keep pip and wheel in the image's virtualenvs. They cannot install anything on the
    /// chart's read-only volumes, so they are left out by default (setuptools stays: packs
    /// import pkg_resources).
    #[arg(long)]
    pub keep_pip: bool,

    /// Print a machine-readable summary on stdout instead of the digest.
    #[arg(long)]
    pub json: bool,

    /// Print each step as it happens.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

#[derive(Serialize)]
struct BuildSummary {
    digest: String,
    tags: Vec<String>,
    base: String,
    packs: Vec<PackSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pushed: Vec<PushSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    outputs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    helm_values: Option<String>,
}

#[derive(Serialize)]
struct PackSummary {
    name: String,
    version: String,
    /// Installed by this run: fetched and placed in the build root (not found there unchanged,
    /// nor taken whole from a --cache-from image).
    installed: bool,
    /// The pack directory's layer.
    #[serde(flatten)]
    layer: LayerSummary,
    /// The virtualenv's layer, right below the pack's.
    #[serde(skip_serializing_if = "Option::is_none")]
    virtualenv: Option<LayerSummary>,
}

#[derive(Serialize)]
struct LayerSummary {
    layer: String,
    layer_reused: bool,
    /// `built` (tarred and compressed by this build), `local-cache` (the layer cache had it: the
    /// installed files were unchanged since an earlier build on this cache directory) or
    /// `cache-from` (taken from a --cache-from image: not installed nor layered).
    layer_source: &'static str,
    /// The --cache-from image the layer was taken from.
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_from: Option<String>,
    /// Bytes of the layer's tar this build compressed: 0 for a reused layer, less than the whole
    /// when the compressed bytes of unchanged files were copied.
    layer_bytes_compressed: u64,
}

impl LayerSummary {
    fn new(layer: &MadeLayer) -> LayerSummary {
        LayerSummary {
            layer: layer.digest.clone(),
            layer_reused: layer.reused(),
            layer_source: match &layer.origin {
                LayerOrigin::Built => "built",
                LayerOrigin::LocalCache => "local-cache",
                LayerOrigin::CacheFrom(_) => "cache-from",
                LayerOrigin::Merged => "merged",
            },
            layer_from: match &layer.origin {
                LayerOrigin::CacheFrom(from) => Some(crate::redact::redact_url(&from.to_string())),
                _ => None,
            },
            layer_bytes_compressed: layer.bytes_compressed,
        }
    }
}

#[derive(Serialize)]
pub(super) struct PushSummary {
    references: Vec<String>,
    uploaded: usize,
    skipped: usize,
    mounted: usize,
    bytes_uploaded: u64,
}

/// Runs `st2pack build` and returns the exit code.
pub fn run(args: &BuildArgs) -> i32 {
    run_to_exit_code(build(args))
}

async fn build(args: &BuildArgs) -> Result<(), Failure> {
    // Everything the user typed is checked before any work starts.
    let (tags, targets) = args.targets.parse()?;
    args.result.pull_as()?;
    if args.packs.is_empty() && args.root.is_none() && args.locked.is_none() {
        return Err(usage(
            "give the packs to build (st2pack build PACK... --tag REF) or an installed tree (--root DIR)",
        ));
    }
    let layer_options = LayerOptions {
        mtime: build::source_date_epoch().map_err(|e| usage(e.to_string()))?,
        uid: 0,
        gid: 0,
        compression: match args.compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
        },
    };
    let layer_options = match &args.chown {
        Some(chown) => {
            let (uid, gid) = parse_chown(chown)?;
            LayerOptions {
                uid,
                gid,
                ..layer_options
            }
        }
        None => layer_options,
    };
    let base = BaseImage::parse(&args.base).map_err(|e| (e.exit_code(), e.to_string()))?;
    let runtime_image = args.install.runtime.registry_reference();
    let cache_from = args
        .cache_from
        .iter()
        .map(|given| CacheRef::parse(given))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    let mut references = args.targets.registry_references(&tags, base.reference());
    references.extend(runtime_image.as_ref());
    references.extend(cache_from.iter().filter_map(CacheRef::reference));
    let mut registry = args.registry.client(&references).map_err(usage)?;
    let progress = Progress::new(args.verbose);
    registry.on_event(progress.registry_sink());
    // Held until the image is written, so that a prune never removes what this build uses.
    let cache = super::cache::open(
        args.install.cache_dir.clone(),
        Duration::from_secs(args.install.lock_timeout),
    )?;
    let placement = Placement {
        progress: progress.clone(),
        ..Placement::default()
    };
    let (mut options, specs) = args
        .install
        .to_options(&args.packs, placement)
        .map_err(usage)?;
    options.keep_pip = args.keep_pip;
    // The runtime image's launcher lives until the packs are installed.
    let mut runtime_image_in_use = None;
    let packs = if args.packs.is_empty() && args.locked.is_none() {
        // Only checked against the tree when asked for: the tree is layered as it is.
        let runtime = if args.install.runtime.given() {
            let flags = &args.install.runtime;
            let default = RuntimeDefault::Native;
            let _image =
                runtime_args::apply(flags, &mut options, default, &registry, &cache).await?;
            let pin = install::runtime_pin(&options)
                .await
                .map_err(|e| (e.exit_code(), e.to_string()))?;
            Some(pin)
        } else {
            None
        };
        PackInput::Installed {
            root: args.root.clone().unwrap_or_default(),
            runtime,
        }
    } else {
        let flags = &args.install.runtime;
        let default = RuntimeDefault::ChartDefault;
        runtime_image_in_use =
            runtime_args::apply(flags, &mut options, default, &registry, &cache).await?;
        let specs = match &args.locked {
            Some(file) => super::lock::apply_locked(file, &specs, &mut options).await?,
            None => specs,
        };
        PackInput::Install {
            root: args.root.clone(),
            specs,
            options: Box::new(options),
        }
    };
    let request = BuildRequest {
        packs,
        base,
        targets,
        cache_from,
        layer_options,
        source: args.result.source(),
        revision: args.result.revision(),
        jobs: args
            .install
            .jobs
            .unwrap_or_else(install::default_jobs)
            .max(1),
        cache,
        registry,
        progress,
    };

    let outcome = build::run(&request, print_event)
        .await
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    drop(runtime_image_in_use);

    args.result.finish(
        &tags,
        args.targets.push,
        &outcome.digest,
        args.json,
        |values| summary(args, &tags, &outcome, values),
    )
}

/// Shows each step of the pipeline on stderr as it completes.
fn print_event(event: BuildEvent<'_>) {
    match event {
        BuildEvent::Installed(report) => print_summary(report),
        BuildEvent::TakenFrom(taken) => eprintln!(
            "{} {}: layers taken from {}, not installed",
            taken.record.name, taken.record.pin.version, taken.from
        ),
        BuildEvent::VirtualenvTaken { pack, from } => eprintln!(
            "{} {}: virtualenv layer taken from {}, not built",
            pack.name, pack.pin.version, from
        ),
        BuildEvent::Warning(warning) => eprintln!("warning: {warning}"),
        BuildEvent::Built(built) => {
            let layers = || built.packs.iter().flat_map(|p| p.layers());
            eprintln!(
                "built {} with {} pack(s) in {} layer(s) ({} reused)",
                built.digest(),
                built.packs.len(),
                layers().count(),
                layers().filter(|l| l.reused()).count()
            )
        }
        BuildEvent::Wrote(written) => print_written(written),
    }
}

fn summary(
    args: &BuildArgs,
    tags: &[Reference],
    outcome: &BuildOutcome,
    helm_values: Option<String>,
) -> BuildSummary {
    BuildSummary {
        digest: outcome.digest.clone(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        base: args.base.clone(),
        packs: outcome
            .image
            .packs
            .iter()
            .map(|pack| PackSummary {
                installed: outcome.installed.contains(&pack.pin.name),
                name: pack.pin.name.clone(),
                version: pack.pin.version.clone(),
                layer: LayerSummary::new(&pack.layer),
                virtualenv: pack.virtualenv.as_ref().map(LayerSummary::new),
            })
            .collect(),
        pushed: push_summaries(&outcome.written),
        outputs: outcome.written.iter().filter_map(Written::output).collect(),
        helm_values,
    }
}

/// What each push of `written` did, for `--json`.
pub(super) fn push_summaries(written: &[Written]) -> Vec<PushSummary> {
    written
        .iter()
        .filter_map(|written| match written {
            Written::Pushed(report) => Some(PushSummary {
                references: report.references.clone(),
                uploaded: report.uploaded.len(),
                skipped: report.skipped.len(),
                mounted: report.mounted.len(),
                bytes_uploaded: report.bytes_uploaded,
            }),
            _ => None,
        })
        .collect()
}

fn parse_chown(chown: &str) -> Result<(u64, u64), Failure> {
    let parse = |part: &str| part.parse::<u64>().ok();
    match chown.split_once(':') {
        Some((uid, gid)) => parse(uid).zip(parse(gid)),
        None => parse(chown).map(|id| (id, id)),
    }
    .ok_or_else(|| {
        usage(format!(
            "--chown {chown:?}: give numeric ids as UID:GID, e.g. --chown 1000:1000"
        ))
    })
}

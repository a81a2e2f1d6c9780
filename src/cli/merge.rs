//! `st2pack merge IMAGE... --tag REF`: the command line of `build::merge`. It turns the flags
//! into a [`MergeRequest`], prints what the merge reports, and ends as `st2pack build` does: the
//! digest, the chart values.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::build::{PushSummary, push_summaries};
use super::registry_args::RegistryArgs;
use super::result_args::ResultArgs;
use super::target_args::{TargetArgs, print_written};
use super::{Failure, run_to_exit_code, usage};
use crate::build::inspect::ImageName;
use crate::build::merge::{self, MergeOutcome, MergeRequest};
use crate::build::{self, BaseImage, BuildEvent, Written};
use crate::progress::Progress;
use crate::registry::Reference;

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Pack images to merge (registry references or oci:DIR[:TAG]), in order: a pack in a later
    /// image replaces the same pack in an earlier one.
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,

    #[command(flatten)]
    pub targets: TargetArgs,

    /// Base image for the merged image: a registry reference, oci:DIR[:TAG], or scratch
    /// [default: the first image's base]
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,

    /// The cache, whose blob store holds the layers a local output needs [default:
    /// ~/.cache/st2pack]
    #[arg(long, value_name = "DIR", env = "ST2PACK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    #[command(flatten)]
    pub result: ResultArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Print a machine-readable summary on stdout instead of the digest.
    #[arg(long)]
    pub json: bool,

    /// Print each step as it happens.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

#[derive(Serialize)]
struct MergeSummary {
    digest: String,
    tags: Vec<String>,
    images: Vec<String>,
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
    layer: String,
    /// Its virtualenv's layer, when it has one of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    virtualenv_layer: Option<String>,
    /// The image the pack was taken from.
    from: String,
    /// Earlier images whose copy of the pack it replaced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    replaced: Vec<Replaced>,
}

#[derive(Serialize)]
struct Replaced {
    image: String,
    version: String,
}

/// Runs `st2pack merge` and returns the exit code.
pub fn run(args: &MergeArgs) -> i32 {
    run_to_exit_code(merge_images(args))
}

async fn merge_images(args: &MergeArgs) -> Result<(), Failure> {
    // Everything the user typed is checked before any work starts.
    let (tags, targets) = args.targets.parse()?;
    args.result.pull_as()?;
    let images = args
        .images
        .iter()
        .map(|image| ImageName::parse(image).map_err(|e| (e.exit_code(), e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let base = args
        .base
        .as_deref()
        .map(BaseImage::parse)
        .transpose()
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    let created = build::source_date_epoch().map_err(|e| usage(e.to_string()))?;

    // Credentials and --insecure for the push targets first (--username goes to the first),
    // then every registry an image is read from.
    let mut references: Vec<&Reference> = args.targets.registry_references(&tags, None);
    references.extend(images.iter().filter_map(ImageName::reference));
    references.extend(base.as_ref().and_then(BaseImage::reference));
    let mut registry = args.registry.client(&references).map_err(usage)?;
    let progress = Progress::new(args.verbose);
    registry.on_event(progress.registry_sink());
    let cache = super::cache::open(args.cache_dir.clone(), super::cache::DEFAULT_LOCK_TIMEOUT)?;

    let request = MergeRequest {
        images,
        base,
        targets,
        created,
        source: args.result.source(),
        revision: args.result.revision(),
        cache,
        registry,
        progress,
    };
    let outcome = merge::run(&request, print_event)
        .await
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    print_packs(&outcome);

    args.result.finish(
        &tags,
        args.targets.push,
        &outcome.digest,
        args.json,
        |values| summary(args, &tags, &outcome, values),
    )
}

/// Shows each step of the merge on stderr as it completes.
fn print_event(event: BuildEvent<'_>) {
    match event {
        BuildEvent::Installed(_)
        | BuildEvent::TakenFrom(_)
        | BuildEvent::VirtualenvTaken { .. } => {}
        BuildEvent::Warning(warning) => eprintln!("warning: {warning}"),
        BuildEvent::Built(built) => eprintln!(
            "merged {} with {} pack(s) in {} layer(s)",
            built.digest(),
            built.packs.len(),
            built.packs.iter().flat_map(|p| p.layers()).count()
        ),
        BuildEvent::Wrote(written) => print_written(written),
    }
}

/// Where each pack came from, on stderr.
fn print_packs(outcome: &MergeOutcome) {
    for pack in &outcome.packs {
        let replaced: Vec<String> = pack
            .replaced
            .iter()
            .map(|(image, version)| format!("{version} from {image}"))
            .collect();
        if replaced.is_empty() {
            eprintln!("  {} {} from {}", pack.name, pack.version, pack.from);
        } else {
            eprintln!(
                "  {} {} from {} (replaces {})",
                pack.name,
                pack.version,
                pack.from,
                replaced.join(", ")
            );
        }
    }
}

fn summary(
    args: &MergeArgs,
    tags: &[Reference],
    outcome: &MergeOutcome,
    helm_values: Option<String>,
) -> MergeSummary {
    MergeSummary {
        digest: outcome.digest.clone(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        images: args.images.clone(),
        base: args
            .base
            .clone()
            .unwrap_or_else(|| args.images.first().cloned().unwrap_or_default()),
        packs: outcome
            .packs
            .iter()
            .zip(&outcome.image.packs)
            .map(|(pack, layer)| PackSummary {
                name: pack.name.clone(),
                version: pack.version.clone(),
                layer: layer.layer.digest.clone(),
                virtualenv_layer: layer.virtualenv.as_ref().map(|l| l.digest.clone()),
                from: pack.from.clone(),
                replaced: pack
                    .replaced
                    .iter()
                    .map(|(image, version)| Replaced {
                        image: image.clone(),
                        version: version.clone(),
                    })
                    .collect(),
            })
            .collect(),
        pushed: push_summaries(&outcome.written),
        outputs: outcome.written.iter().filter_map(Written::output).collect(),
        helm_values,
    }
}

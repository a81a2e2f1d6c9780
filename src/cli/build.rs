//! `st2pack build`: install (or take) packs, layer them on a base image, and write the image to
//! a registry, an OCI layout directory or a docker-archive.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::install::{InstallSettings, Placement, RuntimeDirs, print_summary};
use super::registry_args::RegistryArgs;
use super::{Failure, failed, run_to_exit_code, usage};
use crate::build::tree::{self, PackTree};
use crate::build::{BuiltImage, DEFAULT_EPOCH, ImageInputs, build_image, helm};
use crate::cache::Cache;
use crate::image::archive::write_archive;
use crate::image::assemble::Image;
use crate::image::blobs::BlobStore;
use crate::image::layer::{Compression, LayerOptions, PACKS_IN_IMAGE, VIRTUALENVS_IN_IMAGE};
use crate::image::layout;
use crate::install::{self, Status};
use crate::pack::name::PackName;
use crate::progress::{Phase, Progress};
use crate::registry::{PushOptions, Reference, RegistryClient, pull_image, push_image};

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
    /// installed tree given with --root.
    #[arg(value_name = "PACK")]
    pub packs: Vec<String>,

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

    /// Layer compression.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,

    /// Owner of every file in the pack layers [default: 0:0].
    #[arg(long, value_name = "UID:GID")]
    pub chown: Option<String>,

    /// Source repository recorded in the image annotations
    /// [default: from GITHUB_SERVER_URL/GITHUB_REPOSITORY or CI_PROJECT_URL]
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,

    /// Source revision recorded in the image annotations [default: GITHUB_SHA or CI_COMMIT_SHA]
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,

    /// Write the image digest (sha256:...) to FILE.
    #[arg(long, value_name = "FILE")]
    pub digest_file: Option<PathBuf>,

    /// Write the st2.packs.images entry for the Helm chart, pinned by digest, to FILE.
    #[arg(long, value_name = "FILE")]
    pub helm_values: Option<PathBuf>,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub install: InstallSettings,

    /// Print a machine-readable summary on stdout instead of the digest.
    #[arg(long)]
    pub json: bool,

    /// Print each step as it happens.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// Where an image goes: its names, the registry, and files; shared by `build` and `base-image`.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Image name, e.g. registry.example.com:5000/team/st2packs:1.4.0 (repeat for more tags).
    #[arg(long = "tag", short = 't', value_name = "REF", required = true)]
    pub tags: Vec<String>,

    /// Push the image to the registry of each --tag.
    #[arg(long)]
    pub push: bool,

    /// Also write the image to oci:DIR (an OCI image layout) or docker-archive:FILE (for
    /// `docker load` / `kind load image-archive`); repeatable.
    #[arg(long = "output", short = 'o', value_name = "TARGET")]
    pub outputs: Vec<String>,
}

impl TargetArgs {
    /// The tags and outputs, checked before any work starts.
    pub(super) fn parse(&self) -> Result<(Vec<Reference>, Vec<Output>), Failure> {
        let tags = parse_tags(&self.tags)?;
        let outputs = self
            .outputs
            .iter()
            .map(|o| parse_output(o))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((tags, outputs))
    }
}

/// Where the image goes besides the registry.
pub(super) enum Output {
    Layout { dir: PathBuf, tag: Option<String> },
    Archive(PathBuf),
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
    layer: String,
    layer_reused: bool,
    /// Bytes of the layer's tar this build compressed: 0 for a reused layer, less than the whole
    /// when an unchanged virtualenv's compressed bytes were copied.
    layer_bytes_compressed: u64,
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
    let (targets, outputs) = args.targets.parse()?;
    if args.packs.is_empty() && args.root.is_none() {
        return Err(usage(
            "give the packs to build (st2pack build PACK... --tag REF) or an installed tree (--root DIR)",
        ));
    }
    let layer_options = LayerOptions {
        mtime: source_date_epoch()?,
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
    let base_reference = match args.base.as_str() {
        "scratch" | "oci:" => None,
        base if base.starts_with("oci:") => None,
        base => Some(Reference::parse(base).map_err(|e| usage(format!("--base: {e}")))?),
    };
    let mut registry_refs: Vec<&Reference> = if args.targets.push {
        targets.iter().collect()
    } else {
        Vec::new()
    };
    registry_refs.extend(base_reference.as_ref());
    let mut client = args.registry.client(&registry_refs).map_err(usage)?;
    let progress = Progress::new(args.verbose);
    client.on_event(progress.registry_sink());
    // Held until the image is written, so that a prune never removes what this build uses.
    let cache = super::cache::open(
        args.install.cache_dir.clone(),
        Duration::from_secs(args.install.lock_timeout),
    )?;

    // 1. The packs: installed now, or taken from --root.
    let packs = collect_packs(args, &cache, &progress).await?;

    // 2. The base, with all its blobs in our store.
    let store = cache.blob_store().map_err(failed)?;
    let base = load_base(&args.base, base_reference.as_ref(), &client, &store).await?;

    // 3. One layer per pack.
    let layer_cache = cache.layer_cache(&store).map_err(failed)?;
    let inputs = ImageInputs {
        packs: &packs,
        layer_options,
        source: args.source.clone().or_else(ci_source),
        revision: args.revision.clone().or_else(ci_revision),
        jobs: args
            .install
            .jobs
            .unwrap_or_else(install::default_jobs)
            .max(1),
        progress: progress.clone(),
    };
    let built =
        tokio::task::block_in_place(|| build_image(base, &layer_cache, &inputs)).map_err(failed)?;
    let digest = built.image.digest(&built.annotations);
    let reused = built.layers.iter().filter(|l| l.reused).count();
    eprintln!(
        "built {} with {} pack layer(s) ({} unchanged since an earlier build)",
        digest,
        built.layers.len(),
        reused
    );

    // 4. Outputs without a registry.
    let mut written = Vec::new();
    for output in &outputs {
        written.push(write_output(
            output,
            &built,
            &targets,
            &store,
            layer_options.mtime,
        )?);
    }

    // 5. The registry, manifest last.
    let mut pushed = Vec::new();
    if args.targets.push {
        let base = base_reference.as_ref();
        pushed = push(&client, &built, &targets, &store, base, &progress).await?;
    }

    // 6. What the user needs next: the digest, and the chart values pinned by it.
    let helm_values = targets.first().map(|target| {
        let image = format!("{}/{}", target.registry(), target.repository());
        helm::packs_image_values(&image, target.tag().unwrap_or("latest"), &digest)
    });
    if let Some(values) = &helm_values {
        if args.targets.push {
            eprintln!(
                "\nst2.packs.images entry for the stackstorm-k8s chart (pinned by digest):\n{values}"
            );
        }
        if let Some(file) = &args.helm_values {
            std::fs::write(file, values)
                .map_err(|e| failed(format!("--helm-values {}: {e}", file.display())))?;
        }
    }
    if let Some(file) = &args.digest_file {
        std::fs::write(file, format!("{digest}\n"))
            .map_err(|e| failed(format!("--digest-file {}: {e}", file.display())))?;
    }
    if args.json {
        let built_layer =
            |pack: &PackTree| built.layers.iter().find(|l| l.pack == pack.name.as_str());
        let summary = BuildSummary {
            digest: digest.clone(),
            tags: targets.iter().map(|t| t.to_string()).collect(),
            base: args.base.clone(),
            packs: packs
                .iter()
                .zip(&built.image.layers[built.image.layers.len() - packs.len()..])
                .map(|(pack, layer)| PackSummary {
                    name: pack.name.to_string(),
                    version: pack.version.clone(),
                    layer: layer.descriptor.digest.clone(),
                    layer_reused: built_layer(pack).is_some_and(|l| l.reused),
                    layer_bytes_compressed: built_layer(pack).map_or(0, |l| l.bytes_compressed),
                })
                .collect(),
            pushed,
            outputs: written,
            helm_values,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    } else {
        println!("{digest}");
    }
    Ok(())
}

fn parse_tags(tags: &[String]) -> Result<Vec<Reference>, Failure> {
    tags.iter()
        .map(|tag| {
            let reference = Reference::parse(tag).map_err(|e| usage(format!("--tag: {e}")))?;
            if reference.digest().is_some() {
                return Err(usage(format!(
                    "--tag {tag}: a tag names the image to write, so it cannot carry a digest; use NAME:TAG"
                )));
            }
            if reference.tag().is_none() {
                return reference.with_tag("latest").map_err(|e| usage(e.to_string()));
            }
            Ok(reference)
        })
        .collect()
}

fn parse_output(output: &str) -> Result<Output, Failure> {
    if let Some(rest) = output.strip_prefix("oci:") {
        if rest.is_empty() {
            return Err(usage(
                "--output oci: needs a directory, e.g. --output oci:out/st2packs",
            ));
        }
        let (dir, tag) = layout::parse_reference(output);
        return Ok(Output::Layout { dir, tag });
    }
    if let Some(file) = output.strip_prefix("docker-archive:") {
        if file.is_empty() {
            return Err(usage(
                "--output docker-archive: needs a file, e.g. --output docker-archive:st2packs.tar",
            ));
        }
        return Ok(Output::Archive(PathBuf::from(file)));
    }
    Err(usage(format!(
        "--output {output:?}: unknown target; use oci:DIR (an OCI image layout) or docker-archive:FILE"
    )))
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

/// `SOURCE_DATE_EPOCH` when set (the reproducible-builds convention), else a fixed epoch.
pub(super) fn source_date_epoch() -> Result<u64, Failure> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().map_err(|_| {
            usage(format!(
                "SOURCE_DATE_EPOCH={value:?} is not a number of seconds since 1970"
            ))
        }),
        _ => Ok(DEFAULT_EPOCH),
    }
}

fn ci_source() -> Option<String> {
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    match (env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY")) {
        (Some(server), Some(repository)) => Some(format!("{server}/{repository}")),
        _ => env("CI_PROJECT_URL"),
    }
}

fn ci_revision() -> Option<String> {
    ["GITHUB_SHA", "CI_COMMIT_SHA"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// Installs the given specs into the build root (persistent, so unchanged packs and their layers
/// are reused next time) or collects the packs of `--root`.
async fn collect_packs(
    args: &BuildArgs,
    cache: &Cache,
    progress: &Progress,
) -> Result<Vec<PackTree>, Failure> {
    if args.packs.is_empty() {
        let root = args.root.clone().unwrap_or_default();
        let packs = tree::collect(&root).map_err(|e| usage(e.to_string()))?;
        for pack in &packs {
            warn_if_built_elsewhere(pack);
        }
        return Ok(packs);
    }
    let root = args.root.clone().unwrap_or_else(|| cache.build_root());
    let placement = Placement {
        packs_dir: Some(root.join("packs")),
        virtualenvs_dir: Some(root.join("virtualenvs")),
        runtime: Some(RuntimeDirs {
            packs: PathBuf::from(PACKS_IN_IMAGE),
            virtualenvs: PathBuf::from(VIRTUALENVS_IN_IMAGE),
        }),
        progress: progress.clone(),
    };
    let (mut options, specs) = args
        .install
        .to_options(&args.packs, placement)
        .map_err(usage)?;
    options.cache = cache.clone();
    let report = install::install(&options, &specs)
        .await
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    print_summary(&report);
    if !report.all_succeeded() {
        return Err(failed(
            "no image was built because some packs did not install",
        ));
    }
    report
        .packs
        .iter()
        .filter(|p| matches!(p.status, Status::Installed | Status::Unchanged))
        .filter_map(|p| p.name.as_deref())
        .map(|name| {
            let name = PackName::new(name).map_err(failed)?;
            tree::pack_tree(&root, name).map_err(failed)
        })
        .collect()
}

/// A virtualenv only works at the path it was built for; in the image that is
/// `/opt/stackstorm/virtualenvs/<pack>`.
fn warn_if_built_elsewhere(pack: &PackTree) {
    let Some(venv) = &pack.virtualenv_dir else {
        return;
    };
    let expected = format!("{VIRTUALENVS_IN_IMAGE}/{}", pack.name);
    let activate = std::fs::read_to_string(venv.join("bin/activate")).unwrap_or_default();
    if !activate.is_empty() && !activate.contains(&expected) {
        eprintln!(
            "warning: the virtualenv of pack {} was built for another path than {expected}, where the image puts it; its scripts may not run there. Install with --virtualenvs-dir {VIRTUALENVS_IN_IMAGE}, or give the packs to st2pack build",
            pack.name
        );
    }
}

/// The base image, with every blob it needs in `store`.
async fn load_base(
    base: &str,
    reference: Option<&Reference>,
    client: &RegistryClient,
    store: &BlobStore,
) -> Result<Image, Failure> {
    if base == "scratch" {
        eprintln!(
            "warning: --base scratch has no /bin/sh or /bin/cp; the stackstorm-k8s chart's init container needs both to copy the packs"
        );
        return Ok(Image::scratch());
    }
    if let Some(reference) = reference {
        let pulled = pull_image(client, reference, store)
            .await
            .map_err(|e| (e.exit_code(), format!("--base {base}: {e}")))?;
        return Image::from_config_and_descriptors(&pulled.config, pulled.layers)
            .map_err(|e| failed(format!("--base {base}: {e}")));
    }
    let (image, layout_store) =
        layout::read_reference(base).map_err(|e| usage(format!("--base {base}: {e}")))?;
    for layer in &image.layers {
        store
            .import(&layout_store, &layer.descriptor.digest)
            .map_err(|e| failed(format!("--base {base}: {e}")))?;
    }
    Ok(image)
}

pub(super) fn write_output(
    output: &Output,
    built: &BuiltImage,
    targets: &[Reference],
    store: &BlobStore,
    mtime: u64,
) -> Result<String, Failure> {
    match output {
        Output::Layout { dir, tag } => {
            let tags: Vec<String> = match tag {
                Some(tag) => vec![tag.clone()],
                None => targets
                    .iter()
                    .filter_map(|t| t.tag().map(str::to_string))
                    .collect(),
            };
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            layout::write_image(dir, &built.image, &built.annotations, &tags, &[store])
                .map_err(|e| failed(format!("--output oci:{}: {e}", dir.display())))?;
            eprintln!("wrote OCI layout {} ({})", dir.display(), tags.join(", "));
            Ok(format!("oci:{}", dir.display()))
        }
        Output::Archive(file) => {
            let names: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            write_archive(
                file,
                &built.image,
                &built.annotations,
                &names,
                &[store],
                mtime,
            )
            .map_err(|e| failed(format!("--output docker-archive:{}: {e}", file.display())))?;
            eprintln!("wrote docker-archive {}", file.display());
            Ok(format!("docker-archive:{}", file.display()))
        }
    }
}

/// Pushes to every target; tags of the same repository share one push.
pub(super) async fn push(
    client: &RegistryClient,
    built: &BuiltImage,
    targets: &[Reference],
    store: &BlobStore,
    base: Option<&Reference>,
    progress: &Progress,
) -> Result<Vec<PushSummary>, Failure> {
    let manifest = built.image.manifest_bytes(&built.annotations);
    let config = built.image.config_bytes();
    let config_descriptor = built.image.config_descriptor();
    progress.named(&config_descriptor.digest, "image config");
    let layers: Vec<_> = built
        .image
        .layers
        .iter()
        .map(|l| l.descriptor.clone())
        .collect();
    let mut repositories: BTreeMap<String, Vec<&Reference>> = BTreeMap::new();
    for target in targets {
        repositories
            .entry(format!("{}/{}", target.registry(), target.repository()))
            .or_default()
            .push(target);
    }
    let mut summaries = Vec::new();
    for (repository, refs) in repositories {
        let options = PushOptions {
            extra_tags: refs[1..]
                .iter()
                .filter_map(|r| r.tag().map(str::to_string))
                .collect(),
            mount_from: base.cloned(),
        };
        let pushing = progress.phase(Phase::Push);
        let report = push_image(
            client,
            refs[0],
            store,
            (&config, &config_descriptor),
            &layers,
            &manifest,
            &options,
        )
        .await
        .map_err(|e| (e.exit_code(), format!("push to {repository} failed: {e}")))?;
        drop(pushing);
        eprintln!(
            "pushed {}: {} blob(s) uploaded ({} bytes), {} already there, {} mounted",
            report.references.join(", "),
            report.uploaded.len(),
            report.bytes_uploaded,
            report.skipped.len(),
            report.mounted.len()
        );
        summaries.push(PushSummary {
            references: report.references,
            uploaded: report.uploaded.len(),
            skipped: report.skipped.len(),
            mounted: report.mounted.len(),
            bytes_uploaded: report.bytes_uploaded,
        });
    }
    Ok(summaries)
}

//! `st2pack inspect REF | oci:DIR[:TAG]`: the packs an image carries (from its label) and its
//! layers, without pulling the layers (`build::inspect` reads them).

use clap::Args;
use serde::Serialize;

use super::registry_args::RegistryArgs;
use super::{EXIT_USAGE, Failure, run_to_exit_code};
use crate::build::inspect::{ImageName, Inspected, InspectedLayer};
use crate::build::label;
use crate::pack::pin::PackPin;

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// The image: a registry reference, or oci:DIR[:TAG].
    #[arg(value_name = "IMAGE")]
    pub image: String,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Inspection {
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(serialize_with = "label::serialize_entries")]
    packs: Vec<PackPin>,
    layers: Vec<InspectedLayer>,
}

pub fn run(args: &InspectArgs) -> i32 {
    run_to_exit_code(inspect(args))
}

async fn inspect(args: &InspectArgs) -> Result<(), Failure> {
    let name = ImageName::parse(&args.image).map_err(|e| (e.exit_code(), e.to_string()))?;
    let references: Vec<_> = name.reference().into_iter().collect();
    let registry = args
        .registry
        .client(&references)
        .map_err(|e| (EXIT_USAGE, e))?;
    let Inspected {
        image,
        digest,
        packs,
        layers,
    } = name
        .inspect(&registry)
        .await
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    let inspection = Inspection {
        image,
        digest,
        packs,
        layers,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&inspection).unwrap_or_default()
        );
        return Ok(());
    }
    println!("image  {}", inspection.image);
    if let Some(digest) = &inspection.digest {
        println!("digest {digest}");
    }
    println!("\npacks ({}):", inspection.packs.len());
    for pack in &inspection.packs {
        println!(
            "  {:<24} {:<10} python {:<8} {} {}",
            pack.name,
            pack.version,
            pack.python_version().unwrap_or("-"),
            pack.commit
                .as_deref()
                .map_or("-", |c| &c[..c.len().min(12)]),
            pack.source
        );
        if let Some(runtime) = pack.runtime() {
            println!("  {:<24} runtime {}", "", runtime.describe());
        }
    }
    println!("\nlayers ({}):", inspection.layers.len());
    for layer in &inspection.layers {
        let descriptor = &layer.descriptor;
        println!(
            "  {}  {:>12} bytes  {}{}",
            descriptor.digest,
            descriptor.size,
            descriptor.media_type,
            layer
                .created_by
                .as_deref()
                .map(|made| format!("  ({made})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

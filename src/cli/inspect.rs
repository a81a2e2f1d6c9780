//! `st2pack inspect REF | oci:DIR[:TAG]`: the packs an image carries (from its label) and its
//! layers, without pulling the layers.

use clap::Args;
use serde::Serialize;

use super::registry_args::RegistryArgs;
use super::{EXIT_FAILED, EXIT_USAGE, Failure, run_to_exit_code};
use crate::image::assemble::Image;
use crate::image::labels::{self, PackLabel};
use crate::image::layout;
use crate::image::manifest::{self, Manifest};
use crate::image::model::Descriptor;
use crate::registry::{Reference, fetch_manifest_and_config};

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
    packs: Vec<PackLabel>,
    layers: Vec<Descriptor>,
}

pub fn run(args: &InspectArgs) -> i32 {
    run_to_exit_code(inspect(args))
}

async fn inspect(args: &InspectArgs) -> Result<(), Failure> {
    let inspection = if args.image.starts_with("oci:") {
        inspect_layout(&args.image)?
    } else {
        inspect_registry(args).await?
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
            pack.python_version.as_deref().unwrap_or("-"),
            pack.commit
                .as_deref()
                .map_or("-", |c| &c[..c.len().min(12)]),
            pack.source
        );
    }
    println!("\nlayers ({}):", inspection.layers.len());
    for layer in &inspection.layers {
        println!(
            "  {}  {:>12} bytes  {}",
            layer.digest, layer.size, layer.media_type
        );
    }
    Ok(())
}

fn inspect_layout(image: &str) -> Result<Inspection, Failure> {
    let (parsed, _) =
        layout::read_reference(image).map_err(|e| (EXIT_USAGE, format!("{image}: {e}")))?;
    let packs = labels::packs(&parsed).map_err(|e| (EXIT_FAILED, format!("{image}: {e}")))?;
    Ok(Inspection {
        image: image.to_string(),
        digest: None,
        packs,
        layers: parsed.layers.iter().map(|l| l.descriptor.clone()).collect(),
    })
}

async fn inspect_registry(args: &InspectArgs) -> Result<Inspection, Failure> {
    let reference = Reference::parse(&args.image).map_err(|e| (EXIT_USAGE, e.to_string()))?;
    let client = args
        .registry
        .client(&[&reference])
        .map_err(|e| (EXIT_USAGE, e))?;
    let (manifest, digest, config) = fetch_manifest_and_config(&client, &reference)
        .await
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    // The pull parsed and checked this manifest already; only an index would not be an image.
    let layers = match manifest::parse(&manifest) {
        Ok(Manifest::Image { manifest, .. }) => manifest::blobs(&manifest).1,
        Ok(Manifest::Index { .. }) | Err(_) => Vec::new(),
    };
    let image = Image::from_config_and_descriptors(&config, layers.clone())
        .map_err(|e| (EXIT_FAILED, format!("{}: {e}", args.image)))?;
    let packs = labels::packs(&image).map_err(|e| (EXIT_FAILED, format!("{}: {e}", args.image)))?;
    Ok(Inspection {
        image: reference.to_string(),
        digest: Some(digest),
        packs,
        layers,
    })
}

//! Where an image goes, as flags shared by `st2pack build`, `merge` and `base-image`.

use clap::Args;

use super::{Failure, usage};
use crate::build::Written;
use crate::build::target::{self, Target};
use crate::registry::Reference;

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
    /// The tags and the targets, checked before any work starts.
    pub fn parse(&self) -> Result<(Vec<Reference>, Vec<Target>), Failure> {
        let to_usage = |e: target::TargetError| usage(e.to_string());
        let tags = target::parse_tags(&self.tags).map_err(to_usage)?;
        let targets = target::targets(&tags, self.push, &self.outputs).map_err(to_usage)?;
        for target in &targets {
            target.check().map_err(to_usage)?;
        }
        Ok((tags, targets))
    }

    /// The references a registry client needs credentials and transport settings for: the
    /// tags when pushing (the first one gets `--username`), and `base`.
    pub fn registry_references<'a>(
        &'a self,
        tags: &'a [Reference],
        base: Option<&'a Reference>,
    ) -> Vec<&'a Reference> {
        let mut references: Vec<&Reference> = if self.push {
            tags.iter().collect()
        } else {
            Vec::new()
        };
        references.extend(base);
        references
    }
}

/// Prints what writing a target did, on stderr.
pub fn print_written(written: &Written) {
    match written {
        Written::Layout { dir, tags } => {
            eprintln!("wrote OCI layout {} ({})", dir.display(), tags.join(", "));
        }
        Written::Archive { file } => eprintln!("wrote docker-archive {}", file.display()),
        Written::Pushed(report) => eprintln!(
            "pushed {}: {} blob(s) uploaded ({} bytes), {} already there, {} mounted",
            report.references.join(", "),
            report.uploaded.len(),
            report.bytes_uploaded,
            report.skipped.len(),
            report.mounted.len()
        ),
    }
}

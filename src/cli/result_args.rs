//! What `st2pack build` and `st2pack merge` record in the image besides its packs and write
//! beside it: the source and revision annotations, the digest, and the chart values pinned by
//! it. One definition, so the two commands cannot drift apart.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::{Failure, failed, usage};
use crate::build::helm;
use crate::registry::Reference;

#[derive(Debug, Clone, Args)]
pub struct ResultArgs {
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

    /// The image name the nodes pull, when not where it was pushed (the chart's in-cluster
    /// registry: pushed to its service, pulled as localhost:5000/NAME). Used in the printed and
    /// written Helm values, with the tag and digest of the image.
    #[arg(long, value_name = "NAME")]
    pub pull_as: Option<String>,
}

impl ResultArgs {
    /// `--pull-as`, checked before any work.
    pub fn pull_as(&self) -> Result<Option<Reference>, Failure> {
        self.pull_as
            .as_deref()
            .map(helm::parse_pull_as)
            .transpose()
            .map_err(|e| usage(e.to_string()))
    }

    /// `--source`, else the CI system's repository.
    pub fn source(&self) -> Option<String> {
        let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        self.source.clone().or_else(
            || match (env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY")) {
                (Some(server), Some(repository)) => Some(format!("{server}/{repository}")),
                _ => env("CI_PROJECT_URL"),
            },
        )
    }

    /// `--revision`, else the CI system's commit.
    pub fn revision(&self) -> Option<String> {
        self.revision.clone().or_else(|| {
            ["GITHUB_SHA", "CI_COMMIT_SHA"]
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        })
    }

    /// What the user needs next, for an image named `tags` with `digest`: the chart values
    /// pinned by the digest (printed after a push, written to `--helm-values`), the digest
    /// written to `--digest-file`, and on stdout the digest, or with `json` the summary that
    /// `summary` makes from the values.
    pub fn finish<S: Serialize>(
        &self,
        tags: &[Reference],
        pushed: bool,
        digest: &str,
        json: bool,
        summary: impl FnOnce(Option<String>) -> S,
    ) -> Result<(), Failure> {
        let pull_as = self.pull_as()?;
        let helm_values = tags.first().map(|tag| {
            let image = helm::pulled_image_name(tag, pull_as.as_ref());
            helm::packs_image_values(&image, tag.tag().unwrap_or("latest"), digest)
        });
        if let Some(values) = &helm_values {
            if pushed {
                eprintln!(
                    "\nst2.packs.images entry for the stackstorm-k8s chart (pinned by digest):\n{values}"
                );
            }
            if let Some(file) = &self.helm_values {
                std::fs::write(file, values)
                    .map_err(|e| failed(format!("--helm-values {}: {e}", file.display())))?;
            }
        }
        if let Some(file) = &self.digest_file {
            std::fs::write(file, format!("{digest}\n"))
                .map_err(|e| failed(format!("--digest-file {}: {e}", file.display())))?;
        }
        if json {
            let summary = summary(helm_values);
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
        } else {
            println!("{digest}");
        }
        Ok(())
    }
}

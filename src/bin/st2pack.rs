//! `st2pack`: install StackStorm packs and build them into OCI images.

use clap::{Parser, Subcommand};
use st2pack::cli::{
    self, base::BaseArgs, build::BuildArgs, inspect::InspectArgs, install::InstallArgs,
};

#[derive(Parser)]
#[command(
    name = "st2pack",
    version,
    about = "Install StackStorm packs and build them into OCI images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install packs and their virtualenvs (the same engine as st2-pack-install).
    Install(InstallArgs),
    /// Build an image of packs for the stackstorm-k8s chart, and push or write it.
    Build(Box<BuildArgs>),
    /// List the packs and layers of an image.
    Inspect(InspectArgs),
    /// Make a minimal base image (sh, cp) from a static busybox.
    BaseImage(BaseArgs),
}

fn main() {
    cli::run_guarded(|| match Cli::parse().command {
        Command::Install(args) => cli::install::run(&args),
        Command::Build(args) => cli::build::run(&args),
        Command::Inspect(args) => cli::inspect::run(&args),
        Command::BaseImage(args) => cli::base::run(&args),
    })
}

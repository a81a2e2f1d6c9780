//! `st2pack`: install StackStorm packs and build them into OCI images.

use clap::{Parser, Subcommand};
use st2pack::cli::{self, install::InstallArgs};

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
}

fn main() {
    cli::run_guarded(|| match Cli::parse().command {
        Command::Install(args) => cli::install::run(&args),
    })
}

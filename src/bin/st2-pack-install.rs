//! `st2-pack-install PACK...`: drop-in for StackStorm's command of the same name.

use clap::Parser;
use st2pack::cli::{self, install::InstallArgs};

/// Install StackStorm packs and one Python virtualenv per pack, with no database and no
/// message queue.
#[derive(Parser)]
#[command(name = "st2-pack-install", version)]
struct Cli {
    #[command(flatten)]
    install: InstallArgs,
}

fn main() {
    cli::run_guarded(|| cli::install::run(&Cli::parse().install))
}

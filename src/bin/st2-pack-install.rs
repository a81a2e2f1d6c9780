//! `st2-pack-install PACK...`: drop-in for StackStorm's command of the same name.

use clap::Parser;
use st2pack::cli::{self, commands::PackInstallCli};

fn main() {
    cli::run_guarded(|| PackInstallCli::parse().run())
}

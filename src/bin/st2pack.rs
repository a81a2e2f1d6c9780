//! `st2pack`: install StackStorm packs and build them into OCI images.

use clap::Parser;
use st2pack::cli::{self, commands::St2packCli};

fn main() {
    cli::run_guarded(|| St2packCli::parse().run())
}

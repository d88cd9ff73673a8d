//! `confab`: one binary, thin subcommands that parse configuration and compose the crates.

mod tune;

use clap::{Parser, Subcommand};

/// confab: a realtime chat pipeline that groups each chat's messages before writing them.
#[derive(Debug, Parser)]
#[command(name = "confab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Find the window policy for your traffic: replays or synthesizes chat messages through the
    /// real operator in virtual time and reports Firestore cost against delivery delay.
    Tune(tune::TuneArgs),
}

fn main() {
    if let Err(e) = run() {
        eprintln!("confab: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Tune(args) => tune::run(args),
    }
}

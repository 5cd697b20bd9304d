//! The command line: one subcommand per job, each handing off to the module that does it.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "runner", version, about = "Benchmark LLM inference: speed and quality in one run")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}

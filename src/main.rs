//! The `tapspan` binary: parses the command line, runs the command, maps failures to exit codes
//! (0 ok, 1 runtime failure, 2 bad usage or unreadable/damaged input) in one place.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

use tapspan::cli::{Cli, Command};
use tapspan::commands;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match &cli.command {
        Command::Replay(args) => commands::replay::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Diff(args) => commands::diff::run(args),
        #[cfg(feature = "live")]
        Command::Live(args) => commands::live::run(args),
        #[cfg(not(feature = "live"))]
        Command::Live(_) => {
            eprintln!("tapspan: {}", tapspan::cli::NO_LIVE);
            return ExitCode::from(2);
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("tapspan: {e:#}");
        ExitCode::from(1)
    })
}

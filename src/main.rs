//! The `tapspan` binary: parses the command line, runs the command, maps failures to exit codes
//! (0 ok, 1 runtime failure, 2 bad usage or unreadable/damaged input) in one place.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

mod app;

use app::cli::{Cli, Command};
use app::commands;

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
        Command::Live(_) => Err(commands::Failure::Usage(app::cli::NO_LIVE.into())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            for line in failure.messages() {
                eprintln!("tapspan: {line}");
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

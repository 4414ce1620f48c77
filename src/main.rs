//! The `tapspan` binary: parses the command line, runs the command, maps failures to exit codes
//! (0 ok, 1 runtime failure, 2 bad usage or unreadable/damaged input) in one place.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

mod app;

use app::cli::{Cli, Command};
use app::commands;

/// mimalloc, not the system's allocator: a replay allocates and frees per exchange and per span
/// on three threads (reading, causality, writing), and an exchange is made on the reading
/// thread and freed on the main one; with glibc's allocator, malloc and free were 15 % of the
/// instructions of a replay of the causality lab at 16 in flight (callgrind). Version 2,
/// without transparent huge pages: on that replay about 9 % faster than glibc, for about 7 MB
/// more peak memory (25 against 18); version 3 was 5 % faster, and with huge pages 17 %, but
/// held three times glibc's memory (56 MB) and 155 MB under the idle keep-alive flood
/// (tests/adversarial.rs, bound 128 MiB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

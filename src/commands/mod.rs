//! One module per subcommand; each returns the process exit code.

pub mod diff;
#[cfg(feature = "live")]
pub mod live;
pub mod replay;
pub mod report;

use std::process::ExitCode;

use crate::causality::CausalityBuilder;
use crate::cli::{CausalityArgs, LimitArgs};

/// The causality builder the flags describe; a bad `--services` file is a usage error (exit 2).
pub fn causality_builder(
    args: &CausalityArgs,
    limits: &LimitArgs,
) -> Result<CausalityBuilder, ExitCode> {
    match args.config(&limits.memory_limits()) {
        Ok(config) => Ok(CausalityBuilder::new(config)),
        Err(e) => {
            eprintln!("tapspan: {e:#}");
            Err(ExitCode::from(2))
        }
    }
}

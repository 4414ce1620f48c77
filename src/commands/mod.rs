//! One module per subcommand; each returns the process exit code.

pub mod diff;
#[cfg(feature = "live")]
pub mod live;
pub mod replay;
pub mod report;

use std::process::ExitCode;

use crate::causality::CausalityBuilder;
use crate::cli::{CausalityArgs, LimitArgs, OutputArgs};
use crate::sampling::Sampler;

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

/// The sampler the output flags describe (traces in pieces wait one trace window for the rest);
/// a bad `--sampling-rules` file is a usage error (exit 2).
pub fn sampler(
    output: &OutputArgs,
    causality: &CausalityArgs,
    limits: &LimitArgs,
) -> Result<Option<Sampler>, ExitCode> {
    let wait_ns = (causality.trace_window.max(0.0) * 1e9) as u64;
    let limits = limits.memory_limits();
    output.sampling.sampler(wait_ns, &limits).map_err(|e| {
        eprintln!("tapspan: {e:#}");
        ExitCode::from(2)
    })
}

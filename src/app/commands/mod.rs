//! One module per subcommand. Each returns `Ok(())` or a [`Failure`], which `main` prints and
//! turns into the exit code: the one place exit codes are chosen.

pub mod diff;
#[cfg(feature = "live")]
pub mod live;
pub mod replay;
pub mod report;

use std::fmt::Display;

use crate::app::cli::{CausalityArgs, LimitArgs, OutputArgs};
use tapspan::causality::CausalityConfig;
use tapspan::sampling::Sampler;

/// Why a command failed, which decides the exit code (see [`Failure::exit_code`]).
#[derive(Debug)]
pub enum Failure {
    /// Bad usage, or input that cannot be read: exit 2.
    Usage(String),
    /// Captures damaged part-way, one line each; the spans decoded before were written: exit 2.
    Damaged(Vec<String>),
    /// A runtime failure: exit 1.
    Runtime(anyhow::Error),
    /// Failures after everything captured was written (live capture), one line each: exit 1.
    #[cfg_attr(not(feature = "live"), allow(dead_code))]
    Stopped(Vec<String>),
    /// `diff --fail-on-regression` found regressions (already printed): exit 3.
    Regressed,
}

/// What a command returns.
pub type Outcome = Result<(), Failure>;

impl Failure {
    /// A usage error; `{e:#}` keeps an `anyhow` chain's causes.
    pub fn usage(e: impl Display) -> Self {
        Failure::Usage(format!("{e:#}"))
    }

    /// 0 ok; 1 runtime failure; 2 bad usage or unreadable input; 3 regressions found by `diff`.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Runtime(_) | Failure::Stopped(_) => 1,
            Failure::Usage(_) | Failure::Damaged(_) => 2,
            Failure::Regressed => 3,
        }
    }

    /// The lines to print on stderr, each after `tapspan: `.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Failure::Usage(m) => vec![m.clone()],
            Failure::Damaged(lines) | Failure::Stopped(lines) => lines.clone(),
            Failure::Runtime(e) => vec![format!("{e:#}")],
            Failure::Regressed => Vec::new(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

/// The causality the flags describe; a bad `--services` file is a usage error (exit 2).
pub fn causality_config(
    args: &CausalityArgs,
    limits: &LimitArgs,
) -> Result<CausalityConfig, Failure> {
    args.config(&limits.memory_limits()).map_err(Failure::usage)
}

/// The sampler the output flags describe (traces in pieces wait one trace window for the rest);
/// a bad `--sampling-rules` file is a usage error (exit 2).
pub fn sampler(
    output: &OutputArgs,
    causality: &CausalityArgs,
    limits: &LimitArgs,
) -> Result<Option<Sampler>, Failure> {
    let wait_ns = (causality.trace_window.max(0.0) * 1e9) as u64;
    let limits = limits.memory_limits();
    output
        .sampling
        .sampler(wait_ns, &limits)
        .map_err(Failure::usage)
}

//! One module per subcommand; each returns the process exit code.

#[cfg(feature = "live")]
pub mod live;
pub mod replay;

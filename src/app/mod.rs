//! The binary's side: the command line, one module per subcommand, where spans go (outputs and
//! the `--summary`), and the failures that decide the exit code (mapped in `main`). Nothing in
//! the library depends on it.

pub mod cli;
pub mod commands;
pub mod output;
pub mod summary;

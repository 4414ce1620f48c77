//! `tapspan replay FILE...`: captures → spans.

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ReplayArgs;
use crate::output::Outputs;
use crate::pipeline::replay_files;
use crate::span::spans_for;

/// Show a progress bar only for inputs at least this large.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let mut outputs = Outputs::open(&args.output)?;
    let show_progress = !args.no_progress && io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut progress = |done: u64, total: u64| {
        if !show_progress || total < PROGRESS_MIN_BYTES {
            return;
        }
        bar.get_or_insert_with(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        })
        .set_position(done);
    };
    let config = args.limits.pipeline_config(&args.output);
    let result = replay_files(&args.files, config, &mut progress, &mut |ex| {
        for span in spans_for(&ex) {
            outputs.send(&span);
        }
    });
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tapspan: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    outputs.finish(&outcome.stats)?;
    if outcome.damaged.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for e in &outcome.damaged {
        eprintln!("tapspan: {e} (spans decoded before it were written)");
    }
    Ok(ExitCode::from(2))
}

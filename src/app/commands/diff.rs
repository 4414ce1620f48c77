//! `tapspan diff BEFORE.json AFTER.json`: two `--analysis-json` files compared.

use std::path::Path;

use anyhow::Context;

use super::{Failure, Outcome};
use crate::app::cli::DiffArgs;

fn load(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if v["format"].as_u64() != Some(u64::from(tapspan::analysis::ANALYSIS_FORMAT)) {
        anyhow::bail!(
            "{} is not a tapspan analysis (format {})",
            path.display(),
            tapspan::analysis::ANALYSIS_FORMAT
        );
    }
    Ok(v)
}

pub fn run(args: &DiffArgs) -> Outcome {
    let (before, after) = match (load(&args.before), load(&args.after)) {
        (Ok(b), Ok(a)) => (b, a),
        (Err(e), _) | (_, Err(e)) => return Err(Failure::usage(e)),
    };
    let d = tapspan::analysis::diff::diff(&before, &after, args.threshold / 100.0);
    print!("{}", d.render());
    if args.fail_on_regression && d.regressions() > 0 {
        return Err(Failure::Regressed);
    }
    Ok(())
}

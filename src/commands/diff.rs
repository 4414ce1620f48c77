//! `tapspan diff BEFORE.json AFTER.json`: two `--analysis-json` files compared.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::DiffArgs;

fn load(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if v["format"].as_u64() != Some(u64::from(crate::analyze::ANALYSIS_FORMAT)) {
        anyhow::bail!(
            "{} is not a tapspan analysis (format {})",
            path.display(),
            crate::analyze::ANALYSIS_FORMAT
        );
    }
    Ok(v)
}

pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let (before, after) = match (load(&args.before), load(&args.after)) {
        (Ok(b), Ok(a)) => (b, a),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("tapspan: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let d = crate::analyze::diff::diff(&before, &after, args.threshold / 100.0);
    print!("{}", d.render());
    if args.fail_on_regression && d.regressions() > 0 {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

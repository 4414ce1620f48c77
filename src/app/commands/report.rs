//! `tapspan report FILE...`: the analysis of captures (replayed like `replay`) or of span JSON
//! lines written earlier, as an HTML report and/or JSON; no spans are written.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Context;

use crate::app::cli::ReportArgs;
use crate::app::output::{AnalysisOutputs, Outputs};

use super::replay::Replay;
use super::{Failure, Outcome};

pub fn run(args: &ReportArgs) -> Outcome {
    let Some(mut analysis) = AnalysisOutputs::wanted(
        args.html.as_deref(),
        args.analysis_json.as_deref(),
        args.summary,
        args.limits.memory_limits().analysis_config(),
    ) else {
        return Err(Failure::Usage(
            "report needs --report PATH (or --html PATH) and/or --analysis-json PATH".into(),
        ));
    };
    let files = args.input.files().map_err(Failure::usage)?;
    let policy = args.redact.policy(&[]);
    let mut kinds = Vec::new();
    for f in &files {
        kinds.push(is_span_json(f).map_err(Failure::usage)?);
    }
    if kinds.iter().all(|&json| !json) {
        let outputs = Outputs::analysis_only(analysis, args.summary);
        return Replay {
            files: &files,
            limits: &args.limits,
            causality: &args.causality,
            headers: policy.clone(),
            progress: !args.input.no_progress,
            summary: args.summary,
        }
        .run(outputs);
    }
    if kinds.iter().any(|&json| !json) {
        return Err(Failure::Usage(
            "report reads captures or span JSON lines, not both at once".into(),
        ));
    }
    analysis.inputs = files.iter().map(|f| f.display().to_string()).collect();
    for f in &files {
        let file = std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()));
        let reader = BufReader::new(file.map_err(Failure::usage)?);
        for (n, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", f.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            // Spans read back are held to today's policy, whoever wrote them.
            let mut parsed = serde_json::from_str::<serde_json::Value>(&line);
            if let Ok(span) = &mut parsed {
                policy.redact_span_json(span);
            }
            if !parsed.as_ref().is_ok_and(|v| analysis.push_json(v)) {
                let at = format!("{}:{}", f.display(), n + 1);
                return Err(Failure::Usage(format!("{at}: not a span")));
            }
        }
    }
    Outputs::analysis_only(analysis, args.summary).finish(None, "")?;
    Ok(())
}

/// Span JSON lines start with `{`; captures start with a magic number. Standard input (`-`)
/// is read as a capture: peeking at it would take its first bytes away.
fn is_span_json(path: &Path) -> anyhow::Result<bool> {
    if path.as_os_str() == "-" {
        return Ok(false);
    }
    let mut head = [0u8; 64];
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let n = file
        .read(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{'))
}

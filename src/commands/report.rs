//! `tapspan report FILE...`: the analysis of captures (replayed like `replay`) or of span JSON
//! lines written earlier, as an HTML report and/or JSON; no spans are written.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ReportArgs;
use crate::output::{AnalysisOutputs, Outputs};

use super::replay::Replay;

pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let Some(mut analysis) = AnalysisOutputs::wanted(
        args.html.as_deref(),
        args.analysis_json.as_deref(),
        args.summary,
        args.limits.memory_limits().analysis_config(),
    ) else {
        eprintln!(
            "tapspan: report needs --report PATH (or --html PATH) and/or --analysis-json PATH"
        );
        return Ok(ExitCode::from(2));
    };
    let files = match crate::cli::inputs(&args.files, &args.read) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("tapspan: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let policy = args.redact.policy(&[]);
    let mut kinds = Vec::new();
    for f in &files {
        match is_span_json(f) {
            Ok(k) => kinds.push(k),
            Err(e) => {
                eprintln!("tapspan: {e:#}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    if kinds.iter().all(|&json| !json) {
        let outputs = Outputs::analysis_only(analysis, args.summary);
        return Replay {
            files: &files,
            limits: &args.limits,
            causality: &args.causality,
            headers: policy.clone(),
            progress: !args.no_progress,
            summary: args.summary,
        }
        .run(outputs);
    }
    if kinds.iter().any(|&json| !json) {
        eprintln!("tapspan: report reads captures or span JSON lines, not both at once");
        return Ok(ExitCode::from(2));
    }
    analysis.inputs = files.iter().map(|f| f.display().to_string()).collect();
    for f in &files {
        let file = std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()));
        let reader = BufReader::new(match file {
            Ok(file) => file,
            Err(e) => {
                eprintln!("tapspan: {e:#}");
                return Ok(ExitCode::from(2));
            }
        });
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
                eprintln!("tapspan: {}:{}: not a span", f.display(), n + 1);
                return Ok(ExitCode::from(2));
            }
        }
    }
    Outputs::analysis_only(analysis, args.summary).finish(None, "")?;
    Ok(ExitCode::SUCCESS)
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

//! Issue 21's soak: a tap that runs for weeks must hold flat memory once it knows the endpoints.
//! A generated two-tier capture (`common::soak`) is streamed into `tapspan replay -` with every
//! output that keeps state (the analysis JSON, the HTML report, `--summary`), N and 8 N
//! requests long; the process's peak RSS (VmHWM, polled) must not grow with the length, and the
//! analysis must still count every request and every error.
//!
//! `TAPSPAN_SOAK_REQUESTS=3333334 cargo test --release --test soak -- --nocapture` runs the long
//! side at that size (10⁷ exchanges) and prints its figures.

mod common;

use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A run's peak RSS, wall time and analysis.
struct Run {
    peak_kib: u64,
    secs: f64,
    soak: common::soak::Soak,
    analysis: Value,
    stderr: String,
}

fn run(requests: u64, dir: &Path, tag: &str) -> Run {
    let json = dir.join(format!("{tag}.analysis.json"));
    let report = dir.join(format!("{tag}.html"));
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .args([
            "replay",
            "-",
            "--no-progress",
            "--summary",
            "-o",
            "/dev/null",
        ])
        .arg("--analysis-json")
        .arg(&json)
        .arg("--report")
        .arg(&report)
        // The analysis holds calls until their traces settle, at most this many: the bound the
        // run must stay under (100000 by default) is made small enough to bite here.
        .args(["--max-analysis-held-calls", "5000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tapspan");
    let stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || {
        let mut out = BufWriter::with_capacity(1 << 20, stdin);
        common::soak::write(requests, &mut out)
    });
    let mut stderr_pipe = child.stderr.take().expect("piped");
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr_pipe.read_to_string(&mut text).ok();
        text
    });
    let (status, peak_kib) = common::wait_with_peak_rss(&mut child, Duration::from_secs(3600));
    let soak = writer.join().expect("the generator");
    let stderr = stderr_reader.join().expect("stderr");
    assert!(status.success(), "{stderr}");
    let analysis = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    Run {
        peak_kib,
        secs: started.elapsed().as_secs_f64(),
        soak,
        analysis,
        stderr,
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapspan-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The analysis counted every request, every call and every error of the capture, and linked
/// every backend call to the front (one request at a time: nesting cannot be wrong here).
fn assert_counted(r: &Run) {
    let requests = r.soak.requests;
    let a = &r.analysis;
    assert_eq!(a["calls"], r.soak.exchanges, "{}", r.stderr);
    assert_eq!(a["calls_left_out"], 0);
    let endpoint = |route: &str| {
        a["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["route"] == route)
            .unwrap_or_else(|| panic!("no endpoint {route}"))
    };
    for route in ["/orders/{id}", "/items/{id}", "/prices/{id}"] {
        assert_eq!(endpoint(route)["count"], requests, "{route}");
    }
    assert_eq!(endpoint("/orders/{id}")["errors"], r.soak.errors);
    let edge = |callee: &str| -> u64 {
        a["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["caller"] == "10.9.1.1:8080" && e["callee"] == callee)
            .map(|e| e["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(edge("10.9.2.1:9000"), requests);
    assert_eq!(edge("10.9.2.2:9000"), requests);
}

#[test]
fn memory_stays_flat_over_a_long_capture() {
    // A debug build (the README's `cargo test`) replays about a tenth as fast: a shorter soak.
    // CI runs the release one too (`.ci/run`).
    let short = if cfg!(debug_assertions) {
        5_000
    } else {
        20_000
    };
    let long = std::env::var("TAPSPAN_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8 * short);
    let dir = scratch();
    let a = run(short, &dir, "short");
    let b = run(long, &dir, "long");
    std::fs::remove_dir_all(&dir).ok();
    for r in [&a, &b] {
        eprintln!(
            "{} requests, {} exchanges, {} packets: peak RSS {} KiB, {:.1} s, {:.0} exchanges/s",
            r.soak.requests,
            r.soak.exchanges,
            r.soak.packets,
            r.peak_kib,
            r.secs,
            r.soak.exchanges as f64 / r.secs
        );
        assert_counted(r);
    }
    // Measured: 23.6 MiB for 60 000 exchanges, 23.9 MiB for 480 000 (release build); 24.0 and
    // 25.2 MiB for 15 000 and 120 000 (debug). Eight times the capture may cost a tenth more,
    // plus 4 MiB for the allocator's whims; memory that grew with the calls (100 bytes each,
    // say) would add 40 MiB over the release run's 420 000 more.
    assert!(
        b.peak_kib <= a.peak_kib + a.peak_kib / 10 + 4096,
        "peak RSS grew from {} KiB to {} KiB",
        a.peak_kib,
        b.peak_kib
    );
}

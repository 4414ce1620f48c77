//! A capturing host whose clock steps back (NTP) in the middle of a capture: the exchanges and
//! traces after the step are found as they would be without it. Before, pairing believed that
//! a response stamped before its request answered a lost one (on every keep-alive connection
//! open across the step, every later response went unpaired), and capture time held at the old
//! clock made every later exchange look older than the trace window, so each was decided on
//! arrival, before its parent could be seen.

mod common;

use std::collections::HashMap;

use tapspan_capture::{FileSource, PacketSource};

/// pcaps/lab/threads-c4.pcap with every packet from the middle on stamped `step_s` earlier.
fn stepped_back(step_s: u64) -> std::path::PathBuf {
    let path = common::repo_path("pcaps/lab/threads-c4.pcap");
    let mut src = FileSource::open(&path).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = src.next_frame().unwrap() {
        frames.push((f.ts.0, f.data.to_vec()));
    }
    let half = frames.len() / 2;
    for f in &mut frames[half..] {
        f.0 -= step_s * 1_000_000_000;
    }
    let out = std::env::temp_dir().join(format!("tapspan-step-{}.pcap", std::process::id()));
    std::fs::write(&out, common::craft::pcap(1, true, &frames)).unwrap();
    out
}

/// Each span's parent span id, by span id.
fn parents(capture: &std::path::Path) -> HashMap<String, Option<String>> {
    let (exchanges, outcome) = common::replay(&[capture.to_path_buf()]);
    assert!(outcome.damaged.is_empty());
    common::spans(&exchanges)
        .into_iter()
        .map(|s| (s.span_id, s.parent_span_id))
        .collect()
}

#[test]
fn traces_after_a_clock_step_back_are_inferred_as_without_it() {
    let original = parents(&common::repo_path("pcaps/lab/threads-c4.pcap"));
    let stepped_path = stepped_back(1000);
    let stepped = parents(&stepped_path);
    std::fs::remove_file(&stepped_path).ok();
    // Every exchange is paired as before (the same spans).
    assert_eq!(stepped.len(), original.len());
    assert!(original.keys().all(|id| stepped.contains_key(id)));
    let differ = original
        .iter()
        .filter(|&(id, p)| stepped.get(id) != Some(p))
        .count();
    // Only the requests in flight across the step (4 clients) may be read differently: 42 of
    // 3 042 spans when this was written; 692 while capture time stayed at the old clock, and
    // 328 responses lost their requests while pairing trusted timestamps over the stream.
    assert!(
        differ * 50 <= original.len(),
        "{differ} of {} spans have another parent after the step",
        original.len()
    );
}

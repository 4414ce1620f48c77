//! Send/receive nesting on the causality lab's real recordings (pcaps/lab, recorded by
//! scripts/causality-lab): a three-tier shop of real services in three concurrency models, at
//! 1 to 64 concurrent clients, no ids past the front. Each call's parent is checked against the
//! truth the calling handler itself logged (`NAME.truth.tsv`), never against our own output.
//!
//! Every cell of the curve is asserted with its floor and the tolerance it allows below what
//! was measured when the floor was set (docs/causality.md has the table). At 16 clients the
//! floors are the targets: 95 % with a shared pool (threads), 98 % with connections per worker
//! (gunicorn), 93 % with an event loop (Node.js).

mod common;

use std::collections::HashMap;

use tapspan::span::{Link, Span, SpanKind};

/// One truth row: the call (its connection and when it was sent) and the parent request (its
/// connection and when its handler began).
struct Truth {
    call_conn: (String, String),
    call_sent: u64,
    parent_conn: (String, String),
    parent_began: u64,
}

fn truth(cell: &str) -> Vec<Truth> {
    let text = std::fs::read_to_string(common::repo_path(&format!("pcaps/lab/{cell}.truth.tsv")))
        .unwrap_or_else(|e| panic!("{cell}: {e}"));
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 7, "{cell}: {line}");
            Truth {
                call_conn: (f[1].to_string(), f[2].to_string()),
                call_sent: f[3].parse().unwrap(),
                parent_conn: (f[4].to_string(), f[5].to_string()),
                parent_began: f[6].parse().unwrap(),
            }
        })
        .collect()
}

fn conn_of(s: &Span) -> (String, String) {
    let a = &s.attributes;
    (
        format!("{}:{}", a.client_address, a.client_port),
        format!("{}:{}", a.server_address_text(), a.server_port),
    )
}

#[derive(Debug, Default)]
struct Score {
    calls: usize,
    right: usize,
    /// Calls linked by nesting, and of them those at confidence ≥ 0.9, and of those the right.
    inferred: usize,
    confident: usize,
    confident_right: usize,
}

impl Score {
    fn percent(&self) -> f64 {
        100.0 * self.right as f64 / self.calls as f64
    }
}

/// Every truth call found in the replay (by connection, the nearest start to when it was sent)
/// and whether its parent is the request the truth names (by connection, the latest to start
/// no later than its handler began, give or take a millisecond of clock reading).
fn score(cell: &str) -> Score {
    let (exchanges, _) = common::replay(&[common::repo_path(&format!("pcaps/lab/{cell}.pcap"))]);
    let spans = common::spans(&exchanges);
    let server_span_exchange: HashMap<&str, u64> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server)
        .map(|s| (s.span_id.as_str(), s.attributes.exchange_id))
        .collect();
    let mut on_conn: HashMap<(String, String), Vec<&Span>> = HashMap::new();
    for s in spans.iter().filter(|s| s.kind == SpanKind::Client) {
        on_conn.entry(conn_of(s)).or_default().push(s);
    }
    on_conn
        .values_mut()
        .for_each(|v| v.sort_by_key(|s| s.start_unix_nano));
    let mut score = Score::default();
    for t in truth(cell) {
        score.calls += 1;
        let call = on_conn[&t.call_conn]
            .iter()
            .min_by_key(|s| s.start_unix_nano.abs_diff(t.call_sent))
            .unwrap_or_else(|| panic!("{cell}: call {:?} not in the replay", t.call_conn));
        let parent = on_conn[&t.parent_conn]
            .iter()
            .rfind(|s| s.start_unix_nano <= t.parent_began + 1_000_000)
            .unwrap_or_else(|| panic!("{cell}: request {:?} not in the replay", t.parent_conn));
        let want = Some(parent.attributes.exchange_id);
        let got = call
            .parent_span_id
            .as_deref()
            .and_then(|p| server_span_exchange.get(p).copied());
        let right = got.is_some() && got == want;
        score.right += usize::from(right);
        if let Some((Link::Nesting, confidence)) = call.attributes.link {
            score.inferred += 1;
            if confidence >= 0.9 {
                score.confident += 1;
                score.confident_right += usize::from(right);
            }
        }
    }
    score
}

/// Asserts each cell of one model's curve: (clients, floor in %).
fn assert_curve(model: &str, floors: &[(u32, f64)]) {
    for &(clients, floor) in floors {
        let cell = format!("{model}-c{clients}");
        let s = score(&cell);
        eprintln!(
            "{cell}: {} of {} parents right ({:.2} %, floor {floor} %); confidence >= 0.9: {} of {} inferred links, {} right",
            s.right, s.calls, s.percent(), s.confident, s.inferred, s.confident_right
        );
        assert!(s.calls > 1000, "{cell}: {} calls", s.calls);
        assert!(s.percent() >= floor, "{cell}: {s:?}");
        // Calibration: links this sure are right 99 % of the time, and are no rarity.
        assert!(
            s.confident_right as f64 >= 0.99 * s.confident as f64,
            "{cell}: {s:?}"
        );
        assert!(
            s.confident as f64 >= 0.4 * s.inferred as f64,
            "{cell}: {s:?}"
        );
    }
}

// Floors. c1: 99 %, c4: 98 %; c16: the targets; c32 and c64: what was measured when they were
// set (docs/causality.md) less 2 and 3 points, the spread seen between recordings of a cell.

#[test]
fn threads_sharing_one_pool() {
    // measured: 100 / 99.77 / 99.45 / 92.09 / 84.25 %
    assert_curve(
        "threads",
        &[(1, 99.0), (4, 98.0), (16, 95.0), (32, 89.7), (64, 80.6)],
    );
}

#[test]
fn sync_workers_with_their_own_connections() {
    // measured: 100 / 100 / 99.91 / 99.96 / 99.96 % (with connections held together,
    // src/causality/partners.rs; 100 / 99.93 / 98.87 / 98.47 / 97.13 % before)
    assert_curve(
        "workers",
        &[(1, 99.0), (4, 98.0), (16, 98.0), (32, 97.9), (64, 96.9)],
    );
}

#[test]
fn an_event_loop_with_a_shared_agent() {
    // measured: 100 / 99.92 / 99.44 / 97.37 / 83.55 %
    assert_curve(
        "eventloop",
        &[(1, 99.0), (4, 98.0), (16, 93.0), (32, 95.0), (64, 81.0)],
    );
}

//! Every third-party capture in ../shared/pcaps with a NAME.truth.json reference: at least 99 % of
//! the reference transactions must be found with the same 4-tuple, method, URI and status, and no
//! exchange may be invented. Skips (with a message) where ../shared is absent, as in a user's clone,
//! unless `TAPSPAN_REQUIRE_SHARED` is set (CI).

mod common;

use std::collections::BTreeMap;

use serde_json::Value;
use tapspan::protocols::Exchange;

/// (client, client_port, server, server_port, method, uri, status)
type Key = (
    String,
    u16,
    String,
    u16,
    Option<String>,
    Option<String>,
    Option<u16>,
);

fn truth_keys(truth: &Value) -> Vec<Key> {
    truth["transactions"]
        .as_array()
        .expect("transactions array")
        .iter()
        .map(|t| {
            (
                t["client"].as_str().unwrap_or_default().to_string(),
                t["client_port"].as_u64().unwrap_or_default() as u16,
                t["server"].as_str().unwrap_or_default().to_string(),
                t["server_port"].as_u64().unwrap_or_default() as u16,
                t["method"].as_str().map(str::to_string),
                // The truth holds the secrets; tapspan redacts them as it parses the head.
                t["uri"]
                    .as_str()
                    .map(|u| tapspan::redact::HeaderPolicy::default().redact_target(u)),
                t["status_code"].as_u64().map(|s| s as u16),
            )
        })
        .collect()
}

fn exchange_key(ex: &Exchange) -> Key {
    (
        ex.client.ip().to_string(),
        ex.client.port(),
        ex.server.ip().to_string(),
        ex.server.port(),
        ex.request().map(|r| r.method.clone()),
        ex.request().map(|r| r.target.clone()),
        ex.response().and_then(|r| r.status),
    )
}

/// Reference transactions we knowingly report differently, with the reason.
fn known_exception(name: &str, key: &Key) -> Option<&'static str> {
    let _ = (name, key);
    None
}

#[test]
fn shared_captures_match_their_truth() {
    let Some(dir) = common::shared_pcaps() else {
        eprintln!(
            "skipping: ../shared/pcaps is not present (it is in the developers' checkout and CI)"
        );
        return;
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".truth.json"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let mut report = String::new();
    let mut failures = Vec::new();
    let (mut total_truth, mut total_found) = (0usize, 0usize);
    for truth_path in names {
        let name = truth_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".truth.json")
            .to_string();
        let truth: Value = serde_json::from_slice(&std::fs::read(&truth_path).unwrap()).unwrap();
        let pcap = dir.join(truth["pcap"].as_str().expect("pcap name"));
        let (exchanges, outcome) = common::replay(std::slice::from_ref(&pcap));
        assert!(outcome.damaged.is_empty(), "{name}: {:?}", outcome.damaged);

        let mut ours: BTreeMap<Key, usize> = BTreeMap::new();
        for ex in &exchanges {
            *ours.entry(exchange_key(ex)).or_default() += 1;
        }
        let keys = truth_keys(&truth);
        let mut found = 0;
        let mut missing = Vec::new();
        for key in &keys {
            match ours.get_mut(key) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    found += 1;
                }
                _ => {
                    if let Some(why) = known_exception(&name, key) {
                        report.push_str(&format!("{name}: excepted {key:?}: {why}\n"));
                        found += 1;
                    } else {
                        missing.push(key.clone());
                    }
                }
            }
        }
        let invented: Vec<_> = ours
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        total_truth += keys.len();
        total_found += found;
        report.push_str(&format!(
            "{name}: {found}/{} found, {} invented\n",
            keys.len(),
            invented.iter().map(|(_, n)| n).sum::<usize>()
        ));
        let ratio = if keys.is_empty() {
            1.0
        } else {
            found as f64 / keys.len() as f64
        };
        if ratio < 0.99 || !invented.is_empty() {
            failures.push(format!(
                "{name}: found {found}/{}; missing (first 5) {:?}; invented (first 5) {:?}",
                keys.len(),
                &missing[..missing.len().min(5)],
                &invented[..invented.len().min(5)]
            ));
        }
    }
    eprintln!("{report}total: {total_found}/{total_truth} reference transactions found");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

//! Findings on database calls (issue 19) on a real recording, pcaps/protocols/dbfindings.pcap,
//! checked against the service's own log beside it (parsed here, never a blessed output): the
//! N+1 of `GET /orders/ID` (one SELECT per item), the Redis GET that `GET /dashboard/ID`
//! repeats with the same key, and `GET /user/ID` with neither; and that no Redis key or SQL
//! value the log shows leaves in the span JSON lines, `--analysis-json` or the HTML report.

mod common;

use common::{findings, only};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::Value;
use tapspan::protocols::postgres::sql;

/// The service, Redis and PostgreSQL, named by address (no services map).
const SERVICE: &str = "127.0.0.1:8000";
const REDIS: &str = "127.0.0.2:6379";
const POSTGRES: &str = "127.0.0.3:5432";

struct Outputs {
    spans: String,
    analysis: Value,
    html: String,
}

/// `tapspan replay` of the recording, writing spans, the analysis JSON and the HTML report
/// (once for all tests).
fn outputs() -> &'static Outputs {
    static OUTPUTS: std::sync::OnceLock<Outputs> = std::sync::OnceLock::new();
    OUTPUTS.get_or_init(replay)
}

fn replay() -> Outputs {
    let dir = std::env::temp_dir().join(format!("tapspan-db-findings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| dir.join(name);
    let arg = |p: &PathBuf| p.to_str().unwrap().to_string();
    let pcap = common::repo_path("pcaps/protocols/dbfindings.pcap");
    let out = common::tapspan(&[
        "replay",
        &arg(&pcap),
        "--output",
        &arg(&file("spans.jsonl")),
        "--analysis-json",
        &arg(&file("analysis.json")),
        "--report",
        &arg(&file("report.html")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(file(name)).unwrap();
    let o = Outputs {
        spans: read("spans.jsonl"),
        analysis: serde_json::from_str(&read("analysis.json")).unwrap(),
        html: read("report.html"),
    };
    std::fs::remove_dir_all(&dir).ok();
    o
}

/// The service's log: one map of fields per line.
fn log() -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(common::repo_path("pcaps/protocols/dbfindings.service.log"))
        .unwrap();
    text.lines()
        .map(|l| {
            l.split(' ')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Per request of a handler (`/orders/`), the calls of statement or key `stmt` it logged.
fn per_request(
    log: &[HashMap<String, String>],
    handler: &str,
    stmt: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = log
        .iter()
        .filter(|l| l["kind"] == "http" && l["path"].starts_with(handler))
        .map(|l| (l["rid"].clone(), Vec::new()))
        .collect();
    for l in log
        .iter()
        .filter(|l| l.get("stmt").map(String::as_str) == Some(stmt))
    {
        if let Some(v) = m.get_mut(&l["rid"]) {
            v.push(l["value"].clone());
        }
    }
    m
}

#[test]
fn database_call_patterns_are_found_with_the_logged_counts_and_the_clean_handler_has_none() {
    let o = outputs();
    let a = &o.analysis;
    let log = log();
    assert_eq!(log.iter().filter(|l| l["kind"] == "http").count(), 90);

    // N+1: every order's items, one SELECT each, with different SKUs.
    let products = per_request(&log, "/orders/", "product");
    assert_eq!(products.len(), 30);
    for (rid, skus) in &products {
        let mut distinct = skus.clone();
        distinct.sort();
        distinct.dedup();
        assert!(
            skus.len() >= 3 && distinct.len() == skus.len(),
            "{rid}: {skus:?}"
        );
    }
    let calls: usize = products.values().map(Vec::len).sum();
    let n1 = only(a, "n_plus_one");
    assert_eq!(n1["context"], format!("{SERVICE} GET /orders/{{id}}"));
    let template = sql::sanitize("SELECT name, price FROM products WHERE sku = $1");
    assert_eq!(n1["target"], format!("{POSTGRES} SELECT {template}"));
    assert_eq!(n1["service"], SERVICE);
    assert_eq!(n1["occurrences"], products.len() as u64);
    assert_eq!(n1["calls"], calls as u64);
    let per = calls as f64 / products.len() as f64;
    assert!(
        n1["title"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{per:.1} times per request")),
        "{}",
        n1["title"]
    );

    // A cache not used: the tenant's flags, the same key three times per dashboard.
    let flags = per_request(&log, "/dashboard/", "flags");
    assert_eq!(flags.len(), 30);
    for (rid, keys) in &flags {
        assert!(
            keys.len() == 3 && keys.iter().all(|k| *k == keys[0]),
            "{rid}: {keys:?}"
        );
    }
    let rep = only(a, "repeated_get");
    assert_eq!(rep["context"], format!("{SERVICE} GET /dashboard/{{id}}"));
    assert_eq!(rep["target"], format!("{REDIS} GET GET flags:{{id}}"));
    assert_eq!(rep["occurrences"], flags.len() as u64);
    assert_eq!(
        rep["calls"],
        flags.values().map(Vec::len).sum::<usize>() as u64
    );

    // The clean handler: its two calls are neither repeated nor one statement many times, and
    // nothing failed, so nothing retried. (Python's http.server sends a response's head and
    // body in two writes: the 40 ms that Nagle and delayed ACKs add is a real slow transfer,
    // found on every handler.)
    let on_user: Vec<&Value> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["context"].as_str().unwrap().contains("/user/"))
        .filter(|f| {
            ["n_plus_one", "repeated_get", "retries"].contains(&f["kind"].as_str().unwrap())
        })
        .collect();
    assert!(on_user.is_empty(), "{on_user:#?}");
    assert!(findings(a, "retries").is_empty());

    // The report shows both, by template.
    for f in [n1, rep] {
        let target = f["target"].as_str().unwrap();
        let escaped = target
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
        assert!(o.html.contains(&escaped), "report lacks {target}");
    }
}

/// The service map's edges to Redis and PostgreSQL count answers, not HTTP statuses: every
/// statement the service logged was answered without an error; Redis also refused the
/// commands the service did not log (redis-py's `CLIENT SETINFO`, which Redis 7.0 does not
/// know), and those are the edge's failures; no call is left without an answer.
#[test]
fn database_edges_count_answers_and_refusals() {
    let o = outputs();
    let log = log();
    let logged = |kind: &str| log.iter().filter(|l| l["kind"] == kind).count() as u64;
    let edge = |callee: &str| {
        o.analysis["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["caller"] == SERVICE && e["callee"] == callee)
            .unwrap_or_else(|| panic!("no edge to {callee}"))
            .clone()
    };
    let n = |e: &Value, k: &str| e[k].as_u64().unwrap();
    let pg = edge(POSTGRES);
    assert_eq!(
        (n(&pg, "count"), n(&pg, "answered"), n(&pg, "failed")),
        (logged("postgres"), logged("postgres"), 0)
    );
    let redis = edge(REDIS);
    let refused: Vec<Value> = o
        .spans
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|s| s["kind"] == "client" && s["status"] == "error")
        .filter(|s| s["attributes"]["server.port"] == 6379)
        .collect();
    assert!(!refused.is_empty());
    assert!(
        refused.iter().all(|s| s["name"] == "CLIENT SETINFO"),
        "{refused:?}"
    );
    assert_eq!(n(&redis, "failed"), refused.len() as u64);
    assert!(n(&redis, "answered") >= logged("redis"));
    assert_eq!(
        n(&redis, "answered") + n(&redis, "failed"),
        n(&redis, "count")
    );
    for e in [&pg, &redis] {
        assert_eq!((n(e, "no_response"), n(e, "status_2xx")), (0, 0), "{e}");
    }
    let rate = redis["error_rate"].as_f64().unwrap();
    assert!((rate - refused.len() as f64 / n(&redis, "count") as f64).abs() < 1e-9);
}

#[test]
fn no_redis_key_or_sql_value_of_the_log_leaves_in_any_output() {
    let o = outputs();
    let log = log();
    // Every value the service sent (a Redis key, a bound SKU or tenant, an inline literal)
    // and, for a key, its identifier part; the order ids (`1`…`30`) are in the request paths
    // anyway, and too short to look for.
    let mut secrets: Vec<String> = Vec::new();
    for l in log.iter().filter(|l| l["kind"] != "http") {
        let v = &l["value"];
        if v.len() >= 8 {
            secrets.push(v.clone());
            if let Some((_, id)) = v.split_once(':') {
                secrets.push(id.to_string());
            }
        }
    }
    assert!(secrets.len() > 200, "{}", secrets.len());
    let analysis = o.analysis.to_string();
    for s in &secrets {
        for (name, text) in [
            ("spans", &o.spans),
            ("analysis", &analysis),
            ("report", &o.html),
        ] {
            assert!(!text.contains(s.as_str()), "{name} shows {s}");
        }
    }
    // The literal's statement is there, as its template.
    assert!(o
        .spans
        .contains(&sql::sanitize("SELECT name FROM users WHERE handle = 'x'")));
}

/// Share of the 330 logged calls whose span is a child of the request that made them. No id
/// reaches Redis or PostgreSQL, so timing decides, with payload tokens where a request's value
/// reappears in its calls (the order id in `items`' bound parameter, then each item's SKU from
/// that answer in `product`'s); the dashboard's and the user's calls carry no value of their
/// request (the keys hold hashed tags). Timing cannot tell those apart here: the three clients
/// send their next requests within about 150 µs of each other, and Python's lock starts the
/// handlers in an order of its own, up to 730 µs after arrival, so a rotation of whole
/// requests fits the timing as well as the truth does (pcaps/protocols/dbfindings.md). Their
/// confidences say so (0.3-0.5 where three were in flight). Measured with the default search:
/// 266 of 330 (0.806; `items` and `product` all right, `flags` 51 of 90, `tenant` 21,
/// `profile` 23 and `user` 21 of 30), 268 before a request's connection pair was learned as
/// held together (its calls were then split between requests, now they move as one). The
/// tolerance, four calls, leaves room for changes to causality's search that trade a call here
/// for accuracy elsewhere.
const MIN_RIGHT_PARENT: f64 = 0.79;

#[test]
fn database_calls_are_children_of_the_request_that_made_them() {
    let (exchanges, _) = common::replay(&[common::repo_path("pcaps/protocols/dbfindings.pcap")]);
    let log = std::fs::read_to_string(common::repo_path("pcaps/protocols/dbfindings.service.log"))
        .unwrap();
    let placed = common::placement::placement(&common::spans(&exchanges), &log, SERVICE);
    placed.check("dbfindings", (90, 330), MIN_RIGHT_PARENT);
}

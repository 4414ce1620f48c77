//! The real recording pcaps/nginx-request-id.pcap (nginx stamping X-Request-ID in front of two
//! python services, one calling the other; see its .md), replayed by the binary and read back as
//! JSON lines, against the services' own logs: every request nginx logged is one trace holding
//! exactly the backend calls logged with its request id, each under the right parent.

use std::collections::HashMap;
use std::process::Command;

use serde_json::Value;

const NGINX: u16 = 18086;
const USERS: u16 = 18087;
const ORDERS: u16 = 18088;

fn spans() -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .args(["replay", "pcaps/nginx-request-id.pcap"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn log(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/fixtures/reference/nginx-request-id.{name}.log",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// (server port, client port) → (client span, server span)
type Exchanges<'a> = HashMap<(u16, u16, String), (&'a Value, &'a Value)>;

fn port(span: &Value, key: &str) -> u16 {
    span["attributes"][key].as_u64().unwrap() as u16
}

#[test]
fn traces_match_the_services_logs() {
    let spans = spans();
    let mut pairs: HashMap<String, (Option<&Value>, Option<&Value>)> = HashMap::new();
    for s in &spans {
        let x = s["attributes"]["tapspan.exchange_id"]
            .as_str()
            .unwrap()
            .to_string();
        let e = pairs.entry(x).or_default();
        match s["kind"].as_str().unwrap() {
            "client" => e.0 = Some(s),
            _ => e.1 = Some(s),
        }
    }
    // Exchanges by (server port, client port, request id).
    let mut by_call: Exchanges = HashMap::new();
    for (c, s) in pairs.values() {
        let (c, s) = (c.unwrap(), s.unwrap());
        let a = &s["attributes"];
        let rid = a["http.request.header.x-request-id"][0]
            .as_str()
            .or(a["http.response.header.x-request-id"][0].as_str())
            .unwrap_or("-")
            .to_string();
        by_call.insert(
            (port(s, "server.port"), port(s, "client.port"), rid),
            (c, s),
        );
    }
    let find = |server: u16, rid: &str| -> Vec<(&Value, &Value)> {
        by_call
            .iter()
            .filter(|((sp, _, r), _)| *sp == server && r == rid)
            .map(|(_, v)| *v)
            .collect()
    };
    let parent_of = |child: &Value| child["parent_span_id"].as_str().map(str::to_string);

    // Backend log lines: "ts name ip:port METHOD path status rid=ID".
    let backend: Vec<(String, String, String)> = ["backend-users", "backend-orders"]
        .iter()
        .flat_map(|n| log(n).lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.get(1)?.to_string(),
                f.get(4)?.to_string(),
                f.get(6)?.strip_prefix("rid=")?.to_string(),
            ))
        })
        .collect();

    let mut traces_seen = Vec::new();
    let mut checked_links = 0;
    for line in log("access").lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let client_port: u16 = f[1].parse().unwrap();
        let path = f[4];
        let rid = f[10];
        // The client's exchange with nginx: found by its port; its trace is the request's trace.
        let (front_client, front) = by_call
            .iter()
            .find(|((sp, cp, _), (_, s))| {
                *sp == NGINX && *cp == client_port && s["attributes"]["url.path"] == path
            })
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no exchange for logged {path} from port {client_port}"));
        let trace = front["trace_id"].as_str().unwrap().to_string();
        assert!(
            !traces_seen.contains(&trace),
            "{rid}: trace shared with another request"
        );
        traces_seen.push(trace.clone());
        let front_server_span = front["span_id"].as_str().unwrap().to_string();

        let logged: Vec<_> = backend.iter().filter(|(_, _, r)| r == rid).collect();
        let users_calls = find(USERS, rid);
        let orders_calls = find(ORDERS, rid);
        assert_eq!(
            users_calls.len() + orders_calls.len(),
            logged.len(),
            "{rid}: calls seen vs calls the backends logged"
        );
        for (c, s) in users_calls.iter().chain(&orders_calls) {
            assert_eq!(
                c["trace_id"],
                trace.as_str(),
                "{rid}: backend call in the request's trace"
            );
            assert_eq!(s["trace_id"], trace.as_str());
            assert_eq!(parent_of(s), c["span_id"].as_str().map(str::to_string));
        }
        if path.starts_with("/orders/") {
            // nginx → orders, whose handler calls users.
            assert_eq!(orders_calls.len(), 1, "{rid}");
            let (oc, os) = orders_calls[0];
            assert_eq!(
                parent_of(oc),
                Some(front_server_span.clone()),
                "{rid}: nginx→orders under the client's request"
            );
            for (uc, _) in &users_calls {
                assert_eq!(
                    parent_of(uc),
                    os["span_id"].as_str().map(str::to_string),
                    "{rid}: orders→users under orders"
                );
                checked_links += 1;
            }
            checked_links += 1;
        } else if path.starts_with("/users/") {
            assert_eq!(users_calls.len(), 1, "{rid}");
            assert_eq!(
                parent_of(users_calls[0].0),
                Some(front_server_span.clone()),
                "{rid}: nginx→users under the client's request"
            );
            checked_links += 1;
        } else {
            assert!(
                users_calls.is_empty() && orders_calls.is_empty(),
                "{rid}: nginx answered itself"
            );
        }
        // The client's span of the request it sent is the trace's root, and the server's span
        // of it hangs under that client span.
        assert!(
            front_client["parent_span_id"].is_null(),
            "{rid}: the client's request is a root"
        );
        assert_eq!(front_client["kind"], "client");
        assert_eq!(
            parent_of(front),
            front_client["span_id"].as_str().map(str::to_string)
        );
    }
    assert_eq!(checked_links, 26, "every backend call checked");
}

//! The servers' own logs beside the recordings of issue 19 (pcaps/protocols/*.md say how they
//! were made), parsed into what tests compare decoded exchanges and spans with. Shared by
//! tests/protocol_recordings.rs and tests/protocol_spans.rs.
#![allow(dead_code)]

/// `redis-cli MONITOR` lines: (client port, command name upper-cased, first argument).
pub fn redis_log(text: &str) -> Vec<(u16, String, String)> {
    let mut v = Vec::new();
    for line in text.lines() {
        let Some((head, args)) = line.split_once("] ") else {
            continue;
        };
        let port = head.rsplit(':').next().unwrap().parse().unwrap();
        let words: Vec<&str> = args.split("\" \"").collect();
        let name = words[0].trim_matches('"').to_ascii_uppercase();
        let first = words.get(1).map(|w| w.trim_matches('"').to_string());
        v.push((port, name, first.unwrap_or_default()));
    }
    v
}

/// `log_statement=all` lines: (client port, statement, SQLSTATE) per statement, in order; an
/// ERROR line's SQLSTATE goes to the statement it names (logged just before, or not at all
/// for an Execute that failed).
pub fn postgres_log(text: &str) -> Vec<(u16, String, String)> {
    let mut v: Vec<(u16, String, String)> = Vec::new();
    let mut error: Option<(u16, String)> = None;
    for line in text.lines() {
        let Some((_, after)) = line.split_once("port=127.0.0.1(") else {
            continue;
        };
        let port: u16 = after[..after.find(')').unwrap()].parse().unwrap();
        let state = after.split("sqlstate=").nth(1).unwrap()[..5].to_string();
        let body = after.split_once(' ').unwrap().1;
        let body = body.splitn(4, ' ').nth(3).unwrap_or_default();
        if let Some(s) = body.strip_prefix("LOG:  statement: ") {
            v.push((port, s.to_string(), state));
        } else if let Some(s) = body.strip_prefix("LOG:  execute ") {
            v.push((port, s.split_once(": ").unwrap().1.to_string(), state));
        } else if body.starts_with("ERROR:") {
            error = Some((port, state));
        } else if let (Some(s), Some((p, state))) = (body.strip_prefix("STATEMENT:  "), &error) {
            match v.last_mut() {
                Some(last) if last.0 == *p && last.1 == s => last.2 = state.clone(),
                _ => v.push((*p, s.to_string(), state.clone())),
            }
            error = None;
        }
    }
    v
}

use super::*;
use crate::span::AttrValue;

const C: Direction = Direction::ClientToServer;
const S: Direction = Direction::ServerToClient;

fn cmd(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    v
}

fn run(steps: &[(Direction, &[u8])]) -> (Vec<RedisExchange>, RedisConn) {
    let mut conn = RedisConn::new(true);
    let mut out = Vec::new();
    for (i, (dir, bytes)) in steps.iter().enumerate() {
        conn.push(*dir, i as u64 * 10, bytes, &mut out);
    }
    conn.finish(&mut out);
    (out, conn)
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let mut req = cmd(&["SET", "session:8f3a9c", "secret-value"]);
    req.extend(cmd(&["GET", "session:8f3a9c"]));
    req.extend(cmd(&["GET", "user:1042:name"]));
    let (x, _) = run(&[(C, &req), (S, b"+OK\r\n$12\r\nsecret-value\r\n$-1\r\n")]);
    assert_eq!(x.len(), 3);
    assert_eq!(x[0].query, "SET session:{id} ?");
    assert_eq!(x[1].query, "GET session:{id}");
    assert_eq!(x[2].query, "GET user:{id}:name");
    assert!(x.iter().all(|x| x.error.is_none() && x.end == Some(10)));
    assert_eq!(x[1].response_size, 19);
    let all = format!("{:?}", x.iter().map(|x| x.attributes()).collect::<Vec<_>>());
    assert!(!all.contains("secret") && !all.contains("8f3a9c") && !all.contains("1042"));
}

#[test]
fn errors_are_errors_with_their_code() {
    let (x, _) = run(&[
        (C, &cmd(&["LPUSH", "plainstring", "x"])),
        (S, b"-WRONGTYPE Operation against a key\r\n"),
        (C, &cmd(&["NOSUCHCMD", "a"])),
        (S, b"-ERR unknown command 'NOSUCHCMD'\r\n"),
    ]);
    assert_eq!(x[0].error.as_deref(), Some("WRONGTYPE"));
    assert_eq!(x[1].error.as_deref(), Some("ERR"));
    assert!(x[0]
        .attributes()
        .contains(&("db.response.status_code", AttrValue::from("WRONGTYPE"))));
}

#[test]
fn multi_exec_queues_and_counts_nested_errors() {
    let mut req = cmd(&["MULTI"]);
    req.extend(cmd(&["SET", "txkey", "v"]));
    req.extend(cmd(&["LPUSH", "txkey", "x"]));
    req.extend(cmd(&["EXEC"]));
    let rep = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n-WRONGTYPE Operation\r\n";
    let (x, _) = run(&[(C, &req), (S, rep)]);
    let ops: Vec<_> = x.iter().map(|x| (x.operation.as_str(), x.queued)).collect();
    assert_eq!(
        ops,
        [
            ("MULTI", false),
            ("SET", true),
            ("LPUSH", true),
            ("EXEC", false)
        ]
    );
    assert_eq!(x[3].nested_errors, 1);
}

#[test]
fn pubsub_deliveries_and_resp3_pushes_are_not_exchanges() {
    let (x, conn) = run(&[
        (C, &cmd(&["SUBSCRIBE", "events:orders", "events:users"])),
        (
            S,
            b"*3\r\n$9\r\nsubscribe\r\n$13\r\nevents:orders\r\n:1\r\n",
        ),
        (S, b"*3\r\n$9\r\nsubscribe\r\n$12\r\nevents:users\r\n:2\r\n"),
        (
            S,
            b"*3\r\n$7\r\nmessage\r\n$13\r\nevents:orders\r\n$7\r\npayload\r\n",
        ),
        (C, &cmd(&["GET", "k"])),
        (S, b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"),
        (S, b"$1\r\nv\r\n"),
    ]);
    assert_eq!(x.len(), 2);
    assert_eq!(x[0].query, "SUBSCRIBE events:orders ?");
    assert_eq!((x[0].start, x[0].end), (0, Some(20)));
    assert_eq!(x[1].end, Some(60));
    assert_eq!(conn.stats.pushes, 2);
}

#[test]
fn resp3_subscribe_confirmations_are_pushes_that_answer() {
    let (x, _) = run(&[
        (C, &cmd(&["SUBSCRIBE", "ch"])),
        (S, b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"),
    ]);
    assert_eq!(x.len(), 1);
    assert!(x[0].error.is_none());
}

#[test]
fn midstream_pickup_waits_for_a_command_then_its_reply() {
    let mut conn = RedisConn::new(false);
    let mut out = Vec::new();
    conn.push(S, 1, b"lue\r\n+OK\r\n", &mut out);
    conn.push(
        C,
        2,
        b"ey\r\n$3\r\nval\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        &mut out,
    );
    conn.push(S, 3, b"$1\r\nv\r\n", &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].query, "GET k");
    assert_eq!(out[0].end, Some(3));
    assert_eq!(conn.stats.unmatched_replies, 0);
}

#[test]
fn a_gap_reports_pending_commands_and_resynchronises() {
    let mut conn = RedisConn::new(true);
    let mut out = Vec::new();
    conn.push(C, 1, &cmd(&["GET", "a"]), &mut out);
    conn.push(S, 2, b"$100\r\npartial", &mut out);
    conn.gap(S, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].error.as_deref(), Some("gap"));
    conn.push(S, 3, b"tail of the lost value\r\n", &mut out);
    conn.push(C, 4, &cmd(&["GET", "b"]), &mut out);
    conn.push(S, 5, b"$1\r\nv\r\n", &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!((out[1].query.as_str(), out[1].end), ("GET b", Some(5)));
}

#[test]
fn unanswered_commands_are_reported_at_the_end() {
    let (x, _) = run(&[(C, &cmd(&["BLPOP", "queue:jobs", "0"]))]);
    assert_eq!(x[0].error.as_deref(), Some("no_response"));
    assert!(!x[0].replied);
    assert!(!x[0]
        .attributes()
        .iter()
        .any(|(k, _)| *k == "db.response.status_code"));
}

#[test]
fn hostile_bulk_length_is_a_protocol_error() {
    let (x, conn) = run(&[
        (C, b"*2\r\n$3\r\nGET\r\n$9223372036854775808\r\n"),
        (C, &cmd(&["PING"])),
        (S, b"+PONG\r\n"),
    ]);
    assert_eq!(conn.stats.protocol_errors, 1);
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].operation, "PING");
}

#[test]
fn container_and_keyless_commands_hide_their_arguments() {
    let (x, _) = run(&[
        (C, &cmd(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"])),
        (C, &cmd(&["AUTH", "user", "hunter2"])),
        (C, &cmd(&["HSET", "user:17", "name", "n", "email", "e"])),
        (C, &cmd(&["SELECT", "3"])),
        (C, &cmd(&["GET", "k"])),
    ]);
    assert_eq!(x[0].query, "CLIENT SETINFO ? ?");
    assert_eq!(x[1].query, "AUTH ? ?");
    assert_eq!(x[2].query, "HSET user:{id} ? ? ? ?");
    assert_eq!(x[4].database, 3);
}

#[test]
fn sniff_takes_resp_arrays_only() {
    assert!(RedisConn::sniff(b"*3\r\n$3\r\nSET"));
    assert!(RedisConn::sniff(b"*1"));
    assert!(!RedisConn::sniff(b"GET / HTTP/1.1\r\n"));
    assert!(!RedisConn::sniff(b"*\r\n"));
    assert!(!RedisConn::sniff(b"*2\r\n+x"));
}

proptest::proptest! {
    /// Any bytes, any split, either direction, picked up anywhere: no panic, bounded state.
    #[test]
    fn arbitrary_input_never_panics(
        steps in proptest::collection::vec((proptest::bool::ANY, proptest::collection::vec(
            proptest::prop_oneof![proptest::num::u8::ANY, proptest::sample::select(b"*$+-:\r\n0123>%_".to_vec())],
            0..64)), 0..32),
        from_start in proptest::bool::ANY,
    ) {
        let mut conn = RedisConn::new(from_start);
        let mut out = Vec::new();
        for (i, (client, bytes)) in steps.iter().enumerate() {
            let dir = if *client { C } else { S };
            conn.push(dir, i as u64, bytes, &mut out);
            if i % 7 == 6 {
                conn.gap(dir, &mut out);
            }
        }
        conn.finish(&mut out);
        proptest::prop_assert!(conn.pending.is_empty());
    }
}

#[test]
fn a_commands_key_gives_its_tokens_never_the_key() {
    let (x, _) = run(&[(C, &cmd(&["GET", "session:8f3a9c"])), (C, &cmd(&["PING"]))]);
    let mut want = Collector::default();
    want.value(b"8f3a9c");
    want.value(b"session");
    assert_eq!(x[0].tokens, want.take());
    assert!(x[1].tokens.is_empty(), "no key, no tokens");
}

/// A command's key hash: equal for the same whole key, different for another, none without a
/// key or for a key longer than the decoder keeps (its tail unseen).
#[test]
fn the_key_hash_tells_the_same_key_from_another() {
    let long = "k".repeat(300);
    let mut req = cmd(&["GET", "item:1"]);
    req.extend(cmd(&["GET", "item:1"]));
    req.extend(cmd(&["GET", "item:2"]));
    req.extend(cmd(&["PING"]));
    req.extend(cmd(&["GET", &long]));
    let (x, _) = run(&[(C, &req), (S, b"$-1\r\n$-1\r\n$-1\r\n+PONG\r\n$-1\r\n")]);
    let h: Vec<Option<u64>> = x.iter().map(|x| x.key_hash).collect();
    assert_eq!(h.len(), 5);
    assert!(h[0].is_some() && h[0] == h[1] && h[0] != h[2], "{h:?}");
    assert_eq!((h[3], h[4]), (None, None));
}

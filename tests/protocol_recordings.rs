//! The protocol decoders over the real recordings of issue 19, checked against the servers' own
//! logs beside each capture (`pcaps/protocols/*.md` say how they were made). TCP bytes come from
//! the capture crate and the project's reassembly, as the pipeline feeds them; DNS goes through
//! the whole pipeline (UDP datagrams from the capture crate, TCP through the registry).

mod common;
#[path = "common/recorded.rs"]
mod recorded;
#[path = "common/server_logs.rs"]
mod server_logs;

use std::collections::HashMap;

use recorded::{pcap, tcp_conns, Conn, Piece};
use server_logs::{postgres_log, redis_log};
use tapspan::protocols::tls::TlsHandshake;
use tapspan::reassembly::Direction;

fn at_least_995(found: usize, total: usize, what: &str) {
    assert!(total > 0, "{what}: nothing in the log");
    assert!(
        found * 1000 >= total * 995,
        "{what}: {found} of {total} logged found"
    );
}

// ---------------------------------------------------------------------------------------------
// Redis

#[test]
fn redis_every_monitored_command_is_an_exchange_with_its_status() {
    use tapspan::protocols::redis::{key, RedisConn};
    let log = redis_log(&std::fs::read_to_string(pcap("redis-basic.monitor.log")).unwrap());
    let mut by_port: HashMap<u16, Vec<String>> = HashMap::new();
    let mut errors = Vec::new();
    let mut pushes = 0;
    for c in tcp_conns(&pcap("redis-basic.pcap")) {
        assert!(RedisConn::sniff(match &c.pieces[0] {
            Piece::Data(_, _, b) => b,
            Piece::Gap(_) => panic!("a gap first"),
        }));
        let mut dec = RedisConn::new(c.from_start);
        let mut out = Vec::new();
        for p in &c.pieces {
            match p {
                Piece::Data(dir, ts, b) => dec.push(*dir, *ts, b, &mut out),
                Piece::Gap(dir) => dec.gap(*dir, &mut out),
            }
        }
        dec.finish(&mut out);
        assert_eq!(dec.stats.unmatched_replies, 0);
        assert_eq!(dec.stats.protocol_errors, 0);
        pushes += dec.stats.pushes;
        for x in &out {
            assert!(x.end.is_some(), "{x:?} has no reply");
            let all = format!("{:?}", x.attributes());
            for secret in ["value-", "payload-", "8f3a9c", "1042", "@example"] {
                assert!(!all.contains(secret), "{secret} leaked: {all}");
            }
            if let Some(e) = &x.error {
                errors.push((x.operation.clone(), e.clone(), x.query.clone()));
            }
        }
        let names: Vec<String> = out.iter().map(|x| x.query.clone()).collect();
        by_port.insert(c.client.port(), names);
    }
    // Every logged command, in the log's order per connection, with its key's template.
    let mut found = 0;
    let ports: std::collections::BTreeSet<u16> = log.iter().map(|l| l.0).collect();
    for port in ports {
        let want: Vec<_> = log.iter().filter(|l| l.0 == port).collect();
        let mut have = by_port[&port].iter();
        found += want
            .iter()
            .filter(|(_, name, first)| {
                have.any(|q| {
                    let mut words = q.split(' ');
                    let (op, arg) = (words.next().unwrap(), words.next().unwrap_or("?"));
                    let keyed = arg != "?" && !arg.chars().all(|c| c.is_ascii_uppercase());
                    op == name && (!keyed || arg == key::template(first.as_bytes()))
                })
            })
            .count();
    }
    at_least_995(found, log.len(), "redis");
    assert_eq!(found, 166);
    // Errors: the three the script provokes, and the 19 commands MONITOR never logs because
    // the server refused them (CLIENT SETINFO ×16, CLIENT MAINT_NOTIFICATIONS ×2, NOSUCHCMD).
    let mut kinds: Vec<String> = errors.iter().map(|e| format!("{} {}", e.0, e.1)).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "CLIENT MAINT_NOTIFICATIONS ERR",
            "CLIENT SETINFO ERR",
            "INCRBY ERR",
            "LPUSH WRONGTYPE",
            "NOSUCHCMD ERR"
        ]
    );
    assert_eq!(errors.len(), 3 + 19, "{errors:?}");
    // 3 deliveries to the subscriber, 1 invalidation push to the tracking connection.
    assert_eq!(pushes, 4);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

#[test]
fn postgres_every_logged_statement_is_an_exchange_with_its_sqlstate() {
    use tapspan::protocols::postgres::{sql, PgConn};
    let log = postgres_log(&std::fs::read_to_string(pcap("postgres-basic.server.log")).unwrap());
    assert_eq!(log.len(), 49);
    let mut by_port: HashMap<u16, Vec<(String, String)>> = HashMap::new();
    for c in tcp_conns(&pcap("postgres-basic.pcap")) {
        let Piece::Data(_, _, first) = &c.pieces[0] else {
            panic!("a gap first")
        };
        assert!(PgConn::sniff(first));
        let mut dec = PgConn::new(c.from_start);
        let mut out = Vec::new();
        for p in &c.pieces {
            match p {
                Piece::Data(dir, ts, b) => dec.push(*dir, *ts, b, &mut out),
                Piece::Gap(dir) => dec.gap(*dir, &mut out),
            }
        }
        dec.finish(&mut out);
        assert_eq!(dec.stats.protocol_errors, 0);
        assert!(!dec.stats.encrypted);
        for x in &out {
            assert!(x.end.is_some() && x.cut.is_none(), "{x:?}");
            assert_eq!(x.database.as_deref(), Some("shop"));
            let all = format!("{:?}", x.attributes());
            for secret in ["-literal-", "-param-", "@example", "1.50", "4.25"] {
                assert!(!all.contains(secret), "{secret} leaked: {all}");
            }
        }
        let got = out
            .iter()
            .map(|x| {
                let state = x.sqlstate.clone().unwrap_or_else(|| "00000".into());
                (x.query.clone().unwrap_or_default(), state)
            })
            .collect();
        by_port.insert(c.client.port(), got);
    }
    let mut found = 0;
    let mut have: HashMap<u16, std::slice::Iter<'_, (String, String)>> =
        by_port.iter().map(|(p, v)| (*p, v.iter())).collect();
    for (port, text, state) in &log {
        let want = (sql::sanitize(text), state.clone());
        if have.get_mut(port).unwrap().any(|h| *h == want) {
            found += 1;
        }
    }
    at_least_995(found, log.len(), "postgres");
    assert_eq!(found, log.len());
    // Nothing but the logged statements: 24 simple queries and 25 Executes.
    assert_eq!(by_port.values().map(Vec::len).sum::<usize>(), 49);
}

// ---------------------------------------------------------------------------------------------
// DNS

/// dnsmasq `log-queries=extra`: per query (client port, type, name, what it answered).
fn dnsmasq_log(text: &str) -> Vec<(u16, String, String, String)> {
    let mut v: Vec<(u16, String, String, String)> = Vec::new();
    let mut serials: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once("]: ") else {
            continue;
        };
        let w: Vec<&str> = rest.split(' ').collect();
        if w.len() < 4 || !w[1].starts_with("127.0.0.1/") {
            continue;
        }
        let port = w[1].rsplit('/').next().unwrap().parse().unwrap();
        if let Some(t) = w[2].strip_prefix("query[") {
            v.push((
                port,
                t.trim_end_matches(']').into(),
                w[3].into(),
                String::new(),
            ));
            serials.push(w[0].into());
        } else if let Some(i) = serials.iter().rposition(|s| s == w[0]) {
            // `config NAME is ANSWER …`: the first word after `is`.
            let answer = rest.split(" is ").nth(1).and_then(|a| a.split(' ').next());
            if let (true, Some(a)) = (v[i].3.is_empty(), answer) {
                v[i].3 = a.to_string();
            }
        }
    }
    v
}

#[test]
fn dns_every_logged_query_is_an_exchange_with_its_outcome() {
    use tapspan::pipeline::PipelineConfig;
    use tapspan::protocols::dns::{message, DnsConfig, Transport};
    use tapspan::protocols::Call;
    let log = dnsmasq_log(&std::fs::read_to_string(pcap("dns-basic.dnsmasq.log")).unwrap());
    assert_eq!(log.len(), 24);
    // dig was told to wait 1 s (`+timeout=1`): so is the tracker.
    let mut config = PipelineConfig::default();
    config.protocols.dns = DnsConfig {
        timeout_ns: 1_000_000_000,
        ..DnsConfig::default()
    };
    let (exchanges, outcome) = common::replay_with(&[pcap("dns-basic.pcap")], config);
    let stats = &outcome.stats.protocols.dns;
    assert_eq!((stats.malformed, stats.unmatched_responses), (0, 0));
    // Every DNS exchange, with what the exchange itself says of it.
    let out: Vec<_> = exchanges
        .iter()
        .filter_map(|e| match &e.call {
            Call::Dns(x) => Some((e, x)),
            _ => None,
        })
        .collect();
    assert_eq!(
        out.len(),
        exchanges.len(),
        "nothing but DNS in this capture"
    );
    let mut found = 0;
    for (port, qtype, name, outcome) in &log {
        let hit = out.iter().any(|(e, x)| {
            let rcode = x.rcode.map(message::rcode_name);
            let right = match outcome.as_str() {
                "NXDOMAIN" | "REFUSED" => rcode.as_deref() == Some(outcome.as_str()),
                o if o.starts_with("NODATA") => {
                    rcode.as_deref() == Some("NOERROR") && x.answers == 0
                }
                _ => rcode.as_deref() == Some("NOERROR") && x.answers > 0,
            };
            e.client.port() == *port
                && e.server.port() == 53
                && x.name == *name
                && message::type_name(x.qtype) == *qtype
                && right
                && e.error.is_none()
                && e.t.response_end.is_some()
        });
        found += usize::from(hit);
    }
    at_least_995(found, log.len(), "dns");
    assert_eq!(found, log.len());
    // The two queries to a port where nobody answers, and nothing else, have no response.
    let mut unanswered: Vec<_> = out
        .iter()
        .filter(|(e, _)| e.t.response_end.is_none())
        .map(|(e, x)| (e.server.port(), x.name.as_str(), e.error.unwrap()))
        .collect();
    unanswered.sort();
    assert_eq!(
        unanswered,
        [
            (5353, "api.shop.test", "timeout"),
            (5353, "db.shop.test", "no_response")
        ]
    );
    assert_eq!(out.len(), 26);
    let tcp: Vec<_> = out
        .iter()
        .filter(|(_, x)| x.transport == Transport::Tcp)
        .map(|(e, _)| e.server.port())
        .collect();
    assert_eq!(tcp, [53, 53, 53]);
    assert_eq!(
        (stats.exchanges, stats.udp_exchanges, stats.tcp_exchanges),
        (26, 23, 3)
    );
    assert_eq!((stats.tcp_connections, stats.unanswered), (3, 2));
    // tshark: 5 NXDOMAIN and 1 REFUSED.
    assert_eq!(stats.error_answers, 6);
    assert_eq!(outcome.stats.decode.udp_datagrams, 23 + 21);
}

// ---------------------------------------------------------------------------------------------
// TLS handshakes

#[test]
fn tls_every_logged_handshake_is_read_with_its_name_version_cipher_and_alpn() {
    use tapspan::protocols::tls::TlsConn;
    let access = std::fs::read_to_string(pcap("tls-handshakes.nginx.log")).unwrap();
    let errors = std::fs::read_to_string(pcap("tls-handshakes.nginx-error.log")).unwrap();
    let mut hs = Vec::new();
    for c in tcp_conns(&pcap("tls-handshakes.pcap")) {
        let Piece::Data(_, _, first) = &c.pieces[0] else {
            panic!("a gap first")
        };
        assert!(TlsConn::sniff(first));
        let mut dec = TlsConn::new();
        let mut out = Vec::new();
        let mut last = 0;
        for p in &c.pieces {
            match p {
                Piece::Data(dir, ts, b) => {
                    last = *ts;
                    dec.push(*dir, *ts, b, &mut out)
                }
                Piece::Gap(_) => dec.gap(last, &mut out),
            }
        }
        dec.finish(last, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        hs.push((c.client.port(), out.remove(0)));
    }
    assert_eq!(hs.len(), 9);
    // OpenSSL's names (nginx's $ssl_cipher) for the IANA ones.
    let iana = |openssl: &str| match openssl {
        "ECDHE-RSA-AES256-GCM-SHA384" => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string(),
        s => s.to_string(),
    };
    let mut found = 0;
    let lines: Vec<&str> = access.lines().collect();
    for line in &lines {
        let port: u16 = line
            .split(' ')
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let field = |k: &str| {
            line.split(' ')
                .find_map(|w| w.strip_prefix(k))
                .unwrap()
                .to_string()
        };
        let (_, h) = hs.iter().find(|(p, _)| *p == port).unwrap();
        let a = h.attributes();
        let get = |k: &str| {
            a.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.as_str().unwrap().to_string())
        };
        let sni = get("tls.client.server_name").unwrap_or_else(|| "-".into());
        let version = format!("TLSv{}", get("tls.protocol.version").unwrap());
        assert!(h.established, "{h:?}");
        assert_eq!(sni, field("sni="));
        assert_eq!(version, field("proto="));
        assert_eq!(get("tls.cipher").unwrap(), iana(&field("cipher=")));
        // ALPN: chosen in the ServerHello (TLS 1.2), or the client's only offer (TLS 1.3),
        // else among the client's offers.
        let alpn = field("alpn=");
        match h.next_protocol() {
            Some(p) => assert_eq!(p, alpn),
            None => assert!(h.client.alpn.contains(&alpn) && version == "TLSv1.3"),
        }
        assert!(h.response_start.is_some() && h.end > h.start);
        found += 1;
    }
    at_least_995(found, lines.len(), "tls");
    // The failed handshakes, in the error log's order, with the alert that tells why.
    let mut failed: Vec<&TlsHandshake> = hs
        .iter()
        .map(|(_, h)| h)
        .filter(|h| !h.established)
        .collect();
    failed.sort_by_key(|h| h.start);
    let want = [
        ("unknown ca", 48, true),
        ("no shared cipher", 40, false),
        ("unsupported protocol", 70, false),
    ];
    let reasons: Vec<&str> = errors.lines().collect();
    assert_eq!((failed.len(), reasons.len()), (3, 3));
    for ((reason, alert, by_client), (h, line)) in want.iter().zip(failed.iter().zip(&reasons)) {
        assert!(line.contains(reason), "{line}");
        assert_eq!(h.alert, Some((*alert, *by_client)));
    }
}

// ---------------------------------------------------------------------------------------------
// Splits: the decoders give the same exchanges whatever the packet boundaries.

/// Each connection's pieces re-cut into chunks of `n` bytes (same times).
fn rechunk(conns: &[Conn], n: usize) -> Vec<Vec<Piece>> {
    conns
        .iter()
        .map(|c| {
            let mut v = Vec::new();
            for p in &c.pieces {
                match p {
                    Piece::Data(d, ts, b) => {
                        v.extend(b.chunks(n).map(|ch| Piece::Data(*d, *ts, ch.to_vec())))
                    }
                    Piece::Gap(d) => v.push(Piece::Gap(*d)),
                }
            }
            v
        })
        .collect()
}

#[test]
fn redis_and_postgres_give_the_same_exchanges_at_any_packet_boundaries() {
    use tapspan::protocols::{postgres::PgConn, redis::RedisConn};
    let redis = tcp_conns(&pcap("redis-basic.pcap"));
    let pg = tcp_conns(&pcap("postgres-basic.pcap"));
    let run_redis = |pieces: &[Piece]| {
        let mut d = RedisConn::new(true);
        let mut out = Vec::new();
        for p in pieces {
            if let Piece::Data(dir, ts, b) = p {
                d.push(*dir, *ts, b, &mut out);
            }
        }
        d.finish(&mut out);
        out
    };
    let run_pg = |pieces: &[Piece]| {
        let mut d = PgConn::new(true);
        let mut out = Vec::new();
        for p in pieces {
            if let Piece::Data(dir, ts, b) = p {
                d.push(*dir, *ts, b, &mut out);
            }
        }
        d.finish(&mut out);
        out
    };
    for n in [1, 3, 7, 64] {
        for (c, pieces) in redis.iter().zip(rechunk(&redis, n)) {
            assert_eq!(
                run_redis(&c.pieces),
                run_redis(&pieces),
                "redis, chunks of {n}"
            );
        }
        for (c, pieces) in pg.iter().zip(rechunk(&pg, n)) {
            assert_eq!(
                run_pg(&c.pieces),
                run_pg(&pieces),
                "postgres, chunks of {n}"
            );
        }
    }
}

/// Pieces from the `skip`-th client piece on, the server's too: a capture started late. Each
/// with its offset in the whole stream of its direction, which a late capture still knows
/// by sequence number.
fn late(c: &Conn, skip: usize) -> Vec<(u64, &Piece)> {
    let mut seen = 0;
    let mut offsets = [0u64; 2];
    let mut out = Vec::new();
    for p in &c.pieces {
        let Piece::Data(dir, _, b) = p else {
            if seen > skip {
                out.push((0, p));
            }
            continue;
        };
        if *dir == Direction::ClientToServer {
            seen += 1;
        }
        let at = &mut offsets[usize::from(*dir == Direction::ServerToClient)];
        if seen > skip {
            out.push((*at, p));
        }
        *at += b.len() as u64;
    }
    out
}

#[test]
fn picked_up_midstream_they_resynchronise_and_never_mispair() {
    use tapspan::protocols::{postgres::PgConn, redis::RedisConn};
    let mut resumed = 0;
    for c in tcp_conns(&pcap("redis-basic.pcap")) {
        let mut full = RedisConn::new(true);
        let mut all = Vec::new();
        for p in &c.pieces {
            if let Piece::Data(d, ts, b) = p {
                full.push(*d, *ts, b, &mut all);
            }
        }
        let mut dec = RedisConn::new(false);
        let mut out = Vec::new();
        for (at, p) in late(&c, 3) {
            if let Piece::Data(d, ts, b) = p {
                dec.push_at(*d, *ts, at, b, &mut out);
            }
        }
        // Every exchange found after the pickup is one of the full run's, with its reply.
        for x in &out {
            assert!(
                all.iter().any(|y| y == x),
                "{x:?} is not in the full run: {:?}",
                all.iter()
                    .filter(|y| y.start == x.start)
                    .collect::<Vec<_>>()
            );
        }
        resumed += out.len();
    }
    // 185 commands in all; those in the first three client packets of each connection are lost.
    assert!(resumed >= 90, "{resumed}");
    let mut resumed = 0;
    for c in tcp_conns(&pcap("postgres-basic.pcap")) {
        let mut dec = PgConn::new(false);
        let mut out = Vec::new();
        for (at, p) in late(&c, 4) {
            if let Piece::Data(d, ts, b) = p {
                dec.push_at(*d, *ts, at, b, &mut out);
            }
        }
        dec.finish(&mut out);
        resumed += out.len();
        for x in &out {
            assert!(x.cut.is_none() && x.end.is_some(), "{x:?}");
            // Statements prepared before the pickup are labelled, not guessed.
            assert!(x.query.is_some() || x.operation == "EXECUTE");
        }
    }
    // 49 in all; the first connection's first four client packets (SSLRequest, startup and
    // two queries) and the second's whole session are before the pickup.
    assert!(resumed >= 40, "{resumed}");
}

// ---------------------------------------------------------------------------------------------
// The multi-tier recording: Redis and PostgreSQL calls made for HTTP requests.

/// `key=value` fields of a service log line.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

#[test]
fn multitier_every_logged_call_is_an_exchange_inside_its_request() {
    use tapspan::protocols::{postgres::PgConn, redis::RedisConn};
    let log = std::fs::read_to_string(pcap("multitier.service.log")).unwrap();
    let lines: Vec<HashMap<&str, &str>> = log.lines().map(fields).collect();
    let num = |l: &HashMap<&str, &str>, k: &str| l[k].parse::<u64>().unwrap();
    // Decoded exchanges per local port: (operation, start, end).
    let mut by_port: HashMap<u16, Vec<(String, u64, u64)>> = HashMap::new();
    for c in tcp_conns(&pcap("multitier.pcap")) {
        let mut v = Vec::new();
        let data = c.pieces.iter().filter_map(|p| match p {
            Piece::Data(d, ts, b) => Some((*d, *ts, b)),
            Piece::Gap(_) => None,
        });
        let Some((_, _, first)) = data.clone().next() else {
            continue;
        };
        if RedisConn::sniff(first) {
            let (mut d, mut out) = (RedisConn::new(c.from_start), Vec::new());
            data.for_each(|(dir, ts, b)| d.push(dir, ts, b, &mut out));
            v.extend(
                out.into_iter()
                    .map(|x| (x.operation, x.start, x.end.unwrap())),
            );
        } else if PgConn::sniff(first) {
            let (mut d, mut out) = (PgConn::new(c.from_start), Vec::new());
            data.for_each(|(dir, ts, b)| d.push(dir, ts, b, &mut out));
            v.extend(
                out.into_iter()
                    .map(|x| (x.operation, x.start, x.end.unwrap())),
            );
        }
        by_port.insert(c.client.port(), v);
    }
    let requests: HashMap<&str, &HashMap<&str, &str>> = lines
        .iter()
        .filter(|l| l["kind"] == "http")
        .map(|l| (l["rid"], l))
        .collect();
    assert_eq!(requests.len(), 120);
    let mut cursors: HashMap<u16, usize> = HashMap::new();
    let (mut calls, mut found) = (0, 0);
    // Calls in the order they ended, per connection (a connection serves one call at a time).
    let mut logged: Vec<&HashMap<&str, &str>> =
        lines.iter().filter(|l| l["kind"] != "http").collect();
    logged.sort_by_key(|l| num(l, "end"));
    let slack = 1_000_000; // 1 ms between the service's clock reads and the capture's stamps
    for l in logged {
        calls += 1;
        let port: u16 = l["port"].parse().unwrap();
        let have = &by_port[&port];
        let at = cursors.entry(port).or_default();
        let Some(i) = have[*at..].iter().position(|x| x.0 == l["op"]) else {
            continue;
        };
        let (_, start, end) = have[*at + i];
        *at += i + 1;
        // The exchange lies within the call's logged window, which lies within its request's.
        assert!(
            start + slack >= num(l, "start") && end <= num(l, "end") + slack,
            "{l:?}"
        );
        let r = requests[l["rid"]];
        assert!(num(l, "start") >= num(r, "start") && num(l, "end") <= num(r, "end"));
        found += 1;
    }
    assert_eq!(calls, 294);
    at_least_995(found, calls, "multitier");
    assert_eq!(found, calls);
}

use super::*;
use crate::span::AttrValue;

const C: Direction = Direction::ClientToServer;
const S: Direction = Direction::ServerToClient;

fn m(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn startup() -> Vec<u8> {
    let mut body = PROTOCOL_3.to_be_bytes().to_vec();
    body.extend_from_slice(b"user\0postgres\0database\0shop\0\0");
    let mut v = (body.len() as u32 + 4).to_be_bytes().to_vec();
    v.extend(body);
    v
}

fn ssl_request() -> Vec<u8> {
    let mut v = 8u32.to_be_bytes().to_vec();
    v.extend_from_slice(&SSL_REQUEST.to_be_bytes());
    v
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn run(conn: &mut PgConn, steps: &[(Direction, Vec<u8>)]) -> Vec<PgExchange> {
    let mut out = Vec::new();
    for (i, (dir, b)) in steps.iter().enumerate() {
        conn.push(*dir, i as u64 * 10, b, &mut out);
    }
    conn.finish(&mut out);
    out
}

fn opened() -> Vec<(Direction, Vec<u8>)> {
    vec![
        (C, ssl_request()),
        (S, b"N".to_vec()),
        (C, startup()),
        (
            S,
            cat(&[m(b'R', &[0, 0, 0, 0]), m(b'S', b"a\0b\0"), m(b'Z', b"I")]),
        ),
    ]
}

#[test]
fn ssl_declined_then_a_multi_statement_query_with_literals() {
    let mut steps = opened();
    steps.push((
        C,
        m(b'Q', b"SELECT 1; SELECT 'two-literal-03'; SELECT 3.5\0"),
    ));
    steps.push((
        S,
        cat(&[m(b'T', b""), m(b'D', b"x"), m(b'C', b"SELECT 1\0")]),
    ));
    steps.push((
        S,
        cat(&[
            m(b'C', b"SELECT 1\0"),
            m(b'C', b"SELECT 1\0"),
            m(b'Z', b"I"),
        ]),
    ));
    let mut conn = PgConn::new(true);
    let x = run(&mut conn, &steps);
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].query.as_deref(), Some("SELECT ?; SELECT ?; SELECT ?"));
    assert_eq!((x[0].operation.as_str(), x[0].statements), ("BATCH", 3));
    assert_eq!(
        (x[0].start, x[0].response_start, x[0].end),
        (40, Some(50), Some(60))
    );
    assert_eq!(x[0].rows, 3);
    assert_eq!(x[0].database.as_deref(), Some("shop"));
    assert!(!format!("{:?}", x[0].attributes()).contains("literal"));
    // The literals' tokens (`1` is too short to be one).
    let mut want = Collector::default();
    want.value(b"'two-literal-03'");
    want.value(b"3.5");
    assert_eq!(x[0].tokens, want.take());
}

#[test]
fn extended_queries_are_named_by_their_parse() {
    let mut steps = opened();
    let parse = m(
        b'P',
        b"s1\0SELECT name FROM users WHERE id = $1 AND x = 'lit'\0\0\0",
    );
    let bind = m(b'B', b"\0s1\0\0\0\0\x01\0\0\0\x015\0\0");
    let exec = m(b'E', b"\0\0\0\0\0");
    steps.push((C, cat(&[parse, bind.clone(), exec.clone(), m(b'S', b"")])));
    steps.push((
        S,
        cat(&[
            m(b'1', b""),
            m(b'2', b""),
            m(b'C', b"SELECT 1\0"),
            m(b'Z', b"I"),
        ]),
    ));
    steps.push((C, cat(&[bind, exec, m(b'S', b"")])));
    steps.push((
        S,
        cat(&[m(b'2', b""), m(b'C', b"SELECT 0\0"), m(b'Z', b"I")]),
    ));
    let mut conn = PgConn::new(true);
    let x = run(&mut conn, &steps);
    assert_eq!(x.len(), 2);
    for x in &x {
        assert_eq!(
            x.query.as_deref(),
            Some("SELECT name FROM users WHERE id = $1 AND x = ?")
        );
        assert!(x.extended && x.sqlstate.is_none());
    }
    assert_eq!((x[0].start, x[0].end), (40, Some(50)));
}

#[test]
fn an_error_names_its_sqlstate_and_skips_the_rest_of_the_batch() {
    let mut steps = opened();
    let exec = |p: &[u8]| cat(&[m(b'P', p), m(b'B', b"\0\0\0\0\0\0"), m(b'E', b"\0\0\0\0\0")]);
    steps.push((
        C,
        cat(&[
            exec(b"\0SELECT 1 / $1\0\0\0"),
            exec(b"\0SELECT 2\0\0\0"),
            m(b'S', b""),
        ]),
    ));
    let err = m(b'E', b"SERROR\0VERROR\0C22012\0Mdivision by zero\0\0");
    steps.push((S, cat(&[m(b'1', b""), m(b'2', b""), err, m(b'Z', b"I")])));
    steps.push((C, m(b'Q', b"SELECT * FROM no_such_table\0")));
    steps.push((
        S,
        cat(&[m(b'E', b"SERROR\0C42P01\0Mrelation x\0\0"), m(b'Z', b"I")]),
    ));
    let mut conn = PgConn::new(true);
    let x = run(&mut conn, &steps);
    assert_eq!(x.len(), 2);
    assert_eq!(x[0].sqlstate.as_deref(), Some("22012"));
    assert_eq!(x[1].sqlstate.as_deref(), Some("42P01"));
    assert!(x[1]
        .attributes()
        .contains(&("db.response.status_code", AttrValue::from("42P01"))));
    assert_eq!(conn.stats.skipped, 1);
}

#[test]
fn copy_is_skipped_but_timed() {
    let mut steps = opened();
    steps.push((C, m(b'Q', b"COPY orders FROM STDIN\0")));
    steps.push((S, m(b'G', b"\0\0\0")));
    steps.push((
        C,
        cat(&[m(b'd', b"1\t1.25\n"), m(b'd', b"2\t2.25\n"), m(b'c', b"")]),
    ));
    steps.push((S, cat(&[m(b'C', b"COPY 2\0"), m(b'Z', b"I")])));
    let mut conn = PgConn::new(true);
    let x = run(&mut conn, &steps);
    assert_eq!(x.len(), 1);
    assert_eq!(
        (x[0].operation.as_str(), x[0].rows, x[0].copy_bytes),
        ("COPY", 2, 14)
    );
    assert_eq!((x[0].start, x[0].end), (40, Some(70)));
}

#[test]
fn ssl_accepted_means_nothing_more_is_decoded() {
    let mut conn = PgConn::new(true);
    let x = run(
        &mut conn,
        &[
            (C, ssl_request()),
            (S, b"S".to_vec()),
            (C, b"\x16\x03\x01\x02\x00\x01".to_vec()),
        ],
    );
    assert!(x.is_empty());
    assert!(conn.stats.encrypted);
}

#[test]
fn midstream_executes_are_labelled_not_guessed() {
    let mut conn = PgConn::new(false);
    let steps = [
        (S, m(b'D', b"tail of a row")),
        (
            C,
            cat(&[
                m(b'B', b"\0_pg3_1\0\0\0\0\0\0"),
                m(b'E', b"\0\0\0\0\0"),
                m(b'S', b""),
            ]),
        ),
        (
            S,
            cat(&[m(b'2', b""), m(b'C', b"SELECT 1\0"), m(b'Z', b"I")]),
        ),
    ];
    let x = run(&mut conn, &steps);
    assert_eq!(x.len(), 1);
    assert_eq!(
        (x[0].operation.as_str(), x[0].query.as_deref()),
        ("EXECUTE", None)
    );
    assert!(x[0].attributes().contains(&(
        "tapspan.postgresql.statement",
        AttrValue::from("prepared_before_capture")
    )));
}

#[test]
fn a_length_of_two_to_the_31_is_a_protocol_error_and_a_gap_cuts() {
    let mut conn = PgConn::new(true);
    let mut steps = opened();
    steps.push((C, m(b'Q', b"SELECT 1\0")));
    steps.push((S, b"C\x80\x00\x00\x00SELECT 1\0".to_vec()));
    let mut out = Vec::new();
    for (i, (d, b)) in steps.iter().enumerate() {
        conn.push(*d, i as u64, b, &mut out);
    }
    assert_eq!(conn.stats.protocol_errors, 1);
    conn.gap(S, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].cut.as_deref(), Some("gap"));
    conn.push(C, 9, &m(b'Q', b"SELECT 2\0"), &mut out);
    conn.push(
        S,
        10,
        &cat(&[m(b'C', b"SELECT 1\0"), m(b'Z', b"I")]),
        &mut out,
    );
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].end, Some(10));
}

#[test]
fn sniff_knows_startups() {
    assert!(PgConn::sniff(&ssl_request()));
    assert!(PgConn::sniff(&startup()));
    assert!(!PgConn::sniff(b"GET / HTTP/1.1\r\n"));
    assert!(!PgConn::sniff(b"*1\r\n$4\r\nPING\r\n"));
}

proptest::proptest! {
    /// Any bytes after a real opening, any split, either direction: no panic, bounded state.
    #[test]
    fn arbitrary_input_never_panics(
        steps in proptest::collection::vec((proptest::bool::ANY, proptest::collection::vec(
            proptest::prop_oneof![proptest::num::u8::ANY, proptest::sample::select(b"QPBESCZT\0\x04\x05\x80".to_vec())],
            0..64)), 0..32),
        from_start in proptest::bool::ANY,
    ) {
        let mut conn = PgConn::new(from_start);
        let mut out = Vec::new();
        for (dir, b) in opened() {
            conn.push(dir, 0, &b, &mut out);
        }
        for (i, (client, bytes)) in steps.iter().enumerate() {
            let dir = if *client { C } else { S };
            conn.push(dir, i as u64, bytes, &mut out);
        }
        conn.finish(&mut out);
        proptest::prop_assert!(conn.units.is_empty());
        proptest::prop_assert!(conn.statements.len() <= MAX_STATEMENTS);
    }
}

#[test]
fn bound_values_give_their_tokens() {
    let tokens_of = |values: &[&[u8]]| {
        let mut c = Collector::default();
        values.iter().for_each(|v| c.value(v));
        c.take()
    };
    // Portal "", statement "s1", one format code (text for all), three values: `17`, NULL,
    // `ab-12`; one result format code.
    let text = b"\0s1\0\0\x01\0\0\0\x03\0\0\0\x0217\xff\xff\xff\xff\0\0\0\x05ab-12\0\x01\0\0";
    // `bound_tokens` reads from the statement name on (after the portal's).
    let of_body = |body: &[u8]| bound_tokens(&body[cstr(body, 0).1..]);
    assert_eq!(of_body(text), tokens_of(&[b"17", b"ab-12"]));
    // Binary int4 42 and int8 -7, text `x9` (formats: binary, binary, text).
    let binary = b"\0\0\0\x03\0\x01\0\x01\0\0\0\x03\0\0\0\x04\0\0\0\x2a\0\0\0\x08\xff\xff\xff\xff\xff\xff\xff\xf9\0\0\0\x02x9\0\0";
    assert_eq!(of_body(binary), tokens_of(&[b"42", b"-7", b"x9"]));
    // Lying lengths and cuts anywhere: what was whole, never a panic.
    for cut in 0..binary.len() {
        let _ = bound_tokens(&binary[..cut]);
    }
    let lying = b"\0\0\0\0\0\0\x01\x7f\xff\xff\xff17";
    assert!(of_body(lying).is_empty());
}

/// The same statement with the same values hashes the same (under whatever statement name),
/// with another bound value or literal differently; a Bind cut by the decoder has no hash.
#[test]
fn an_execute_s_args_hash_tells_repeats_from_other_values() {
    let bind = |stmt: &str, value: &[u8]| {
        let mut body = format!("\0{stmt}\0\0\0\0\x01").into_bytes();
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
        body.extend_from_slice(b"\0\0");
        m(b'B', &body)
    };
    let exec = || cat(&[m(b'E', b"\0\0\0\0\0"), m(b'S', b"")]);
    let done = || cat(&[m(b'2', b""), m(b'C', b"SELECT 1\0"), m(b'Z', b"I")]);
    let parse = |stmt: &str, sql: &str| m(b'P', format!("{stmt}\0{sql}\0\0\0").as_bytes());
    let by_id = "SELECT name FROM products WHERE sku = $1";
    let mut steps = opened();
    for (p, b) in [
        (parse("", by_id), bind("", b"sku-1")),
        (parse("s1", by_id), bind("s1", b"sku-1")),
        (parse("", by_id), bind("", b"sku-2")),
        (parse("", "SELECT 1 WHERE 'a' = $1"), bind("", b"sku-1")),
        (parse("", "SELECT 1 WHERE 'b' = $1"), bind("", b"sku-1")),
        (parse("", by_id), bind("", &[b'x'; 300])),
    ] {
        steps.push((C, cat(&[p, b, exec()])));
        steps.push((S, cat(&[m(b'1', b""), done()])));
    }
    let x = run(&mut PgConn::new(true), &steps);
    let h: Vec<Option<u64>> = x.iter().map(|x| x.args_hash).collect();
    assert_eq!(h.len(), 6);
    assert!(h[..5].iter().all(Option::is_some), "{h:?}");
    assert_eq!(h[0], h[1]);
    assert_ne!(h[0], h[2]);
    assert_eq!(x[3].query, x[4].query);
    assert_ne!(h[3], h[4]);
    assert_eq!(h[5], None);
}

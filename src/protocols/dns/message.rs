//! DNS messages (RFC 1035 §4.1): the header and the first question, which is all an exchange
//! needs. Names may be compressed (§4.1.4); a pointer must point before the label it replaces
//! and at most [`MAX_JUMPS`] are followed, so a loop or a chain of pointers cannot spin.
//! A name longer than 255 bytes, a reserved label type or a message cut short is an error,
//! never a panic. Answers are counted from the header, not read.

/// Compression pointers followed in one name.
pub const MAX_JUMPS: usize = 16;
/// RFC 1035 §2.3.4: names are at most 255 bytes on the wire.
pub const MAX_NAME: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsMessage {
    pub id: u16,
    pub response: bool,
    pub opcode: u8,
    pub rcode: u8,
    pub truncated: bool,
    pub questions: u16,
    pub answers: u16,
    /// The first question: name (as sent, dotted, no trailing dot; `.` for the root) and type.
    /// Case is kept: it is what the client asked (DNS 0x20 randomisation included); names are
    /// equal regardless of ASCII case (RFC 4343 §3), see [`same_name`].
    pub question: Option<(String, u16)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// Shorter than its header or its question.
    Short,
    /// A compression pointer forward, in a loop, or too many.
    BadPointer,
    /// A reserved label type or a name over 255 bytes.
    BadName,
}

/// Parses a message's header and first question.
pub fn parse(b: &[u8]) -> Result<DnsMessage, DnsError> {
    if b.len() < 12 {
        return Err(DnsError::Short);
    }
    let word = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let flags = word(2);
    let questions = word(4);
    let question = match questions {
        0 => None,
        _ => {
            let (name, at) = read_name(b, 12)?;
            let qtype = b.get(at..at + 4).ok_or(DnsError::Short)?;
            Some((name, u16::from_be_bytes([qtype[0], qtype[1]])))
        }
    };
    Ok(DnsMessage {
        id: word(0),
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xf) as u8,
        truncated: flags & 0x0200 != 0,
        rcode: (flags & 0xf) as u8,
        questions,
        answers: word(6),
        question,
    })
}

/// A message that is DNS beyond doubt: a standard query or its response with one question of
/// class IN (or ANY), each resource record of every section read to its end, and the last one
/// ending where the message does. For traffic on ports that are not DNS's: a datagram that
/// passes this is very unlikely to be anything else. Bounded: each record is at least 11
/// bytes, so at most `b.len() / 11` are read, each name as [`read_name`] bounds it.
pub fn whole_message(b: &[u8]) -> Option<DnsMessage> {
    let m = parse(b).ok()?;
    let word = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    // Z (the bit after RA) is zero; a query carries no answer or authority records.
    let flags = word(2);
    if m.opcode != 0 || m.questions != 1 || flags & 0x0040 != 0 {
        return None;
    }
    if !m.response && (m.answers != 0 || word(8) != 0 || m.rcode != 0) {
        return None;
    }
    let (_, mut at) = read_name(b, 12).ok()?;
    let class = word(at + 2);
    if m.question.as_ref().is_some_and(|q| q.1 == 0) || !(class == 1 || class == 255) {
        return None;
    }
    at += 4;
    let records = u32::from(m.answers) + u32::from(word(8)) + u32::from(word(10));
    for _ in 0..records {
        let (_, after) = read_name(b, at).ok()?;
        let fixed = b.get(after..after + 10)?;
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        at = after + 10 + rdlen;
        if at > b.len() {
            return None;
        }
    }
    (at == b.len()).then_some(m)
}

/// Reads the name at `at`; returns it and the offset after it (after the first pointer, if any).
pub fn read_name(b: &[u8], at: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut wire = 0usize;
    let mut pos = at;
    let mut after = None;
    let mut jumps = 0;
    // Pointers must go strictly backwards from the lowest position read so far.
    let mut floor = at;
    loop {
        let len = *b.get(pos).ok_or(DnsError::Short)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => break,
            0x00 => {
                let label = b.get(pos + 1..pos + 1 + len).ok_or(DnsError::Short)?;
                wire += len + 1;
                if wire + 1 > MAX_NAME {
                    return Err(DnsError::BadName);
                }
                if !name.is_empty() {
                    name.push('.');
                }
                push_label(&mut name, label);
                pos += len + 1;
            }
            0xc0 => {
                let lo = *b.get(pos + 1).ok_or(DnsError::Short)? as usize;
                let target = ((len & 0x3f) << 8) | lo;
                jumps += 1;
                if target >= floor || jumps > MAX_JUMPS {
                    return Err(DnsError::BadPointer);
                }
                after.get_or_insert(pos + 2);
                floor = target;
                pos = target;
            }
            _ => return Err(DnsError::BadName),
        }
    }
    if name.is_empty() {
        name.push('.');
    }
    Ok((name, after.unwrap_or(pos + 1)))
}

/// A label as sent; bytes outside letters, digits, `-` and `_` as `\DDD` (RFC 4343 §2.1,
/// RFC 1035 §5.1).
fn push_label(name: &mut String, label: &[u8]) {
    for &c in label {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => name.push(c as char),
            _ => name.push_str(&format!("\\{c:03}")),
        }
    }
}

/// Whether two names read by [`read_name`] are the same name: ASCII letters compare without
/// case (RFC 4343 §3); escapes are `\DDD` with digits only, so they compare as they are.
pub fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// RR type mnemonics for the common types; others as `TYPE123` (RFC 3597).
pub fn type_name(t: u16) -> String {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        41 => "OPT",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        _ => return format!("TYPE{t}"),
    };
    s.to_string()
}

/// RCODE mnemonics (RFC 1035, 2136, 6895); others as `RCODE12`.
pub fn rcode_name(r: u8) -> String {
    let s = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return format!("RCODE{r}"),
    };
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut v = id.to_be_bytes().to_vec();
        v.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        for l in name.split('.') {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v.extend_from_slice(&qtype.to_be_bytes());
        v.extend_from_slice(&[0, 1]);
        v
    }

    #[test]
    fn a_query_parses() {
        let m = parse(&query(0xfc18, "API.shop.test", 1)).unwrap();
        assert_eq!(m.id, 0xfc18);
        assert!(!m.response);
        assert_eq!(m.question, Some(("API.shop.test".into(), 1)));
    }

    #[test]
    fn names_keep_the_case_they_were_sent_in() {
        // RFC 1035 §4.1: header (id 0xbeef, RD, one question), then QNAME as length-prefixed
        // labels, QTYPE AAAA (28), QCLASS IN; the 0x20 bits of the letters as a client set them.
        let mut b = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(b"\x03wWw\x07ExAmPlE\x03CoM\x00");
        b.extend_from_slice(&[0, 28, 0, 1]);
        let m = whole_message(&b).expect("a whole query");
        let (name, qtype) = m.question.unwrap();
        assert_eq!((name.as_str(), qtype), ("wWw.ExAmPlE.CoM", 28));
        // Same name whatever the case (RFC 4343 §3); an escaped byte is not a letter.
        assert!(same_name(&name, "www.example.com"));
        assert!(!same_name(&name, "www.example.co"));
        assert!(!same_name("a\\065", "a\\097"));
        // A pointer (§4.1.4) to the mixed-case name reads it as sent, too.
        b.extend_from_slice(b"\x03api\xc0\x10");
        assert_eq!(read_name(&b, 33).unwrap().0, "api.ExAmPlE.CoM");
    }

    #[test]
    fn compression_pointers_are_followed_backwards_only() {
        // "shop.test" at 12, then "api" + pointer to 12 at 23.
        let mut b = vec![0u8; 12];
        b.extend_from_slice(b"\x04shop\x04test\x00");
        b.extend_from_slice(b"\x03api\xc0\x0c");
        assert_eq!(read_name(&b, 23).unwrap(), ("api.shop.test".into(), 29));
        // A pointer to itself, and two pointing at each other: loops.
        let mut l = vec![0u8; 12];
        l.extend_from_slice(b"\xc0\x0c");
        assert_eq!(read_name(&l, 12), Err(DnsError::BadPointer));
        let mut l = vec![0u8; 12];
        l.extend_from_slice(b"\xc0\x0e\xc0\x0c");
        assert_eq!(read_name(&l, 12), Err(DnsError::BadPointer));
        assert_eq!(read_name(&l, 14), Err(DnsError::BadPointer));
    }

    #[test]
    fn a_chain_of_pointers_is_capped() {
        // Each pointer points to the one before it: legal steps, too many of them.
        let mut b = vec![0u8; 12];
        b.push(0);
        for i in 0..40u16 {
            // The pointer at 13 + 2i points at the one before it (the first at the root, 12).
            let target = if i == 0 { 12 } else { 13 + 2 * (i - 1) };
            b.extend_from_slice(&(0xc000 | target).to_be_bytes());
        }
        let last = b.len() - 2;
        assert_eq!(read_name(&b, last), Err(DnsError::BadPointer));
        assert_eq!(read_name(&b, 13).unwrap().0, ".");
    }

    #[test]
    fn long_names_and_truncations_are_errors() {
        let long = vec!["a".repeat(63); 5].join(".");
        assert_eq!(parse(&query(1, &long, 1)), Err(DnsError::BadName));
        let q = query(1, "api.shop.test", 1);
        for cut in 0..q.len() {
            let r = parse(&q[..cut]);
            assert!(r.is_err(), "{cut}");
        }
        assert_eq!(parse(&[0; 12]).unwrap().question, None);
        assert_eq!(read_name(b"\x40", 0), Err(DnsError::BadName));
    }

    #[test]
    fn whole_messages_only() {
        let q = query(7, "a.test", 1);
        assert!(whole_message(&q).is_some());
        // One byte more or less, a second question, an answer in a query: not DNS for sure.
        assert!(whole_message(&q[..q.len() - 1]).is_none());
        assert!(whole_message(&[&q[..], &[0]].concat()).is_none());
        let mut two = q.clone();
        two[5] = 2;
        assert!(whole_message(&two).is_none());
        let mut ans = q.clone();
        ans[7] = 1;
        assert!(whole_message(&ans).is_none());
        // A response with one A record (name compressed to the question's).
        let mut r = q.clone();
        r[2] |= 0x80;
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
        assert!(whole_message(&r).is_some());
        assert!(whole_message(&r[..r.len() - 1]).is_none());
        // A record count the bytes cannot hold is read no further than the bytes.
        r[7] = 0xff;
        r[6] = 0xff;
        assert!(whole_message(&r).is_none());
        assert!(whole_message(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_none());
    }

    #[test]
    fn odd_bytes_are_escaped() {
        let q = query(1, "a\u{1}b.test", 1);
        assert_eq!(parse(&q).unwrap().question.unwrap().0, "a\\001b.test");
    }
}

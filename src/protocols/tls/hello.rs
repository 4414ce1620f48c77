//! ClientHello and ServerHello bodies (RFC 8446 §4.1.2–4.1.3, RFC 5246 §7.4.1): the fields a
//! tap can read before encryption starts — SNI (RFC 6066 §3), ALPN (RFC 7301), the version
//! (with `supported_versions`) and the cipher suite. Every length is checked against what
//! remains; a short or inconsistent body is `None`, never a panic. Names are kept only up to
//! [`MAX_NAME`] bytes and protocols up to [`MAX_ALPN`] entries.

pub const MAX_NAME: usize = 255;
pub const MAX_ALPN: usize = 8;

/// What a ClientHello offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub server_name: Option<String>,
    pub alpn: Vec<String>,
    /// Highest version offered (`supported_versions` if present, else `legacy_version`).
    pub version: u16,
    pub ciphers: usize,
}

/// What a ServerHello chose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub version: u16,
    pub cipher: u16,
    pub alpn: Option<String>,
    /// A HelloRetryRequest (RFC 8446 §4.1.3: a ServerHello with that special random).
    pub retry: bool,
}

/// SHA-256 of "HelloRetryRequest", the random of a HelloRetryRequest.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A cursor over a body: every read is checked.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// A vector with a 1- or 2-byte length.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// Extensions: (type, data) pairs; stops at the first inconsistent length.
fn extensions(data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut c = Cur(data);
    std::iter::from_fn(move || Some((c.u16()?, c.vec16()?)))
}

pub fn client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut c = Cur(body);
    let mut hello = ClientHello {
        version: c.u16()?,
        ..Default::default()
    };
    c.take(32)?;
    c.vec8()?;
    hello.ciphers = c.vec16()?.len() / 2;
    c.vec8()?;
    let Some(ext) = c.vec16() else {
        return Some(hello);
    };
    for (kind, data) in extensions(ext) {
        match kind {
            0 => hello.server_name = server_name(data),
            16 => hello.alpn = alpn(data),
            43 => {
                let mut v = Cur(Cur(data).vec8().unwrap_or_default());
                while let Some(ver) = v.u16() {
                    // GREASE values (RFC 8701: 0x?a?a) are not versions.
                    if ver & 0x0f0f != 0x0a0a && ver > hello.version {
                        hello.version = ver;
                    }
                }
            }
            _ => {}
        }
    }
    Some(hello)
}

pub fn server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut c = Cur(body);
    let mut hello = ServerHello {
        version: c.u16()?,
        ..Default::default()
    };
    hello.retry = c.take(32)? == HRR_RANDOM;
    c.vec8()?;
    hello.cipher = c.u16()?;
    c.u8()?;
    let Some(ext) = c.vec16() else {
        return Some(hello);
    };
    for (kind, data) in extensions(ext) {
        match kind {
            16 => hello.alpn = alpn(data).into_iter().next(),
            43 => hello.version = Cur(data).u16().unwrap_or(hello.version),
            _ => {}
        }
    }
    Some(hello)
}

/// The first `host_name` of a server_name extension, lower-cased, if printable.
fn server_name(data: &[u8]) -> Option<String> {
    let mut list = Cur(Cur(data).vec16()?);
    while let Some(kind) = list.u8() {
        let name = list.vec16()?;
        if kind == 0 && !name.is_empty() && name.len() <= MAX_NAME {
            let ok = name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            return ok.then(|| String::from_utf8_lossy(name).to_ascii_lowercase());
        }
    }
    None
}

/// ALPN protocol names (printable ones, at most [`MAX_ALPN`]).
fn alpn(data: &[u8]) -> Vec<String> {
    let mut v = Vec::new();
    let mut list = Cur(Cur(data).vec16().unwrap_or_default());
    while let Some(p) = list.vec8() {
        if v.len() < MAX_ALPN && p.iter().all(|b| b.is_ascii_graphic()) {
            v.push(String::from_utf8_lossy(p).into_owned());
        }
    }
    v
}

/// `1.3`, `1.2`, …, or the hex value.
pub fn version_name(v: u16) -> String {
    match v {
        0x0304 => "1.3".into(),
        0x0303 => "1.2".into(),
        0x0302 => "1.1".into(),
        0x0301 => "1.0".into(),
        0x0300 => "3.0".into(),
        _ => format!("0x{v:04x}"),
    }
}

/// IANA names of common cipher suites; others as their hex value.
pub fn cipher_name(c: u16) -> String {
    let s = match c {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        _ => return format!("0x{c:04x}"),
    };
    s.into()
}

/// Alert descriptions (RFC 8446 §6, RFC 7301); others as `alert_N`.
pub fn alert_name(d: u8) -> String {
    let s = match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return format!("alert_{d}"),
    };
    s.into()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello body with SNI, ALPN and supported_versions.
    pub fn client_body(sni: &str, alpn: &[&str], versions: &[u16]) -> Vec<u8> {
        let mut ext = Vec::new();
        let name = sni.as_bytes();
        let mut sn = vec![0];
        sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sn.extend_from_slice(name);
        push_ext(&mut ext, 0, &with_len16(&sn));
        let mut al = Vec::new();
        for p in alpn {
            al.push(p.len() as u8);
            al.extend_from_slice(p.as_bytes());
        }
        push_ext(&mut ext, 16, &with_len16(&al));
        let mut sv = vec![(versions.len() * 2) as u8];
        for v in versions {
            sv.extend_from_slice(&v.to_be_bytes());
        }
        push_ext(&mut ext, 43, &sv);
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(0);
        b.extend_from_slice(&[0, 4, 0x13, 0x02, 0xc0, 0x30]);
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&with_len16(&ext));
        b
    }

    pub fn server_body(version: u16, cipher: u16, alpn: Option<&str>) -> Vec<u8> {
        let mut ext = Vec::new();
        if version == 0x0304 {
            push_ext(&mut ext, 43, &version.to_be_bytes());
        }
        if let Some(p) = alpn {
            let mut al = vec![p.len() as u8];
            al.extend_from_slice(p.as_bytes());
            push_ext(&mut ext, 16, &with_len16(&al));
        }
        let mut b = vec![3, 3];
        b.extend_from_slice(&[9; 32]);
        b.push(0);
        b.extend_from_slice(&cipher.to_be_bytes());
        b.push(0);
        b.extend_from_slice(&with_len16(&ext));
        b
    }

    fn with_len16(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    fn push_ext(ext: &mut Vec<u8>, kind: u16, data: &[u8]) {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&with_len16(data));
    }

    #[test]
    fn hellos_parse() {
        let c = client_hello(&client_body(
            "API.shop.test",
            &["h2", "http/1.1"],
            &[0x3a3a, 0x0304, 0x0303],
        ))
        .unwrap();
        assert_eq!(c.server_name.as_deref(), Some("api.shop.test"));
        assert_eq!(c.alpn, ["h2", "http/1.1"]);
        assert_eq!((c.version, c.ciphers), (0x0304, 2));
        let s = server_hello(&server_body(0x0304, 0x1302, None)).unwrap();
        assert_eq!(
            (s.version, s.cipher, s.alpn, s.retry),
            (0x0304, 0x1302, None, false)
        );
        let s = server_hello(&server_body(0x0303, 0xc030, Some("h2"))).unwrap();
        assert_eq!(
            (version_name(s.version), cipher_name(s.cipher)),
            ("1.2".into(), "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into())
        );
        assert_eq!(s.alpn.as_deref(), Some("h2"));
    }

    #[test]
    fn truncated_hellos_are_none_or_partial_never_a_panic() {
        let body = client_body("api.shop.test", &["h2"], &[0x0304]);
        for cut in 0..body.len() {
            if let Some(c) = client_hello(&body[..cut]) {
                assert!(
                    c.server_name.is_none() || c.server_name.as_deref() == Some("api.shop.test")
                );
            }
        }
        let body = server_body(0x0304, 0x1301, Some("h2"));
        for cut in 0..body.len() {
            let _ = server_hello(&body[..cut]);
        }
        assert!(client_hello(&[]).is_none());
    }
}

//! `grpc-trace-bin`: the binary trace context gRPC's OpenCensus instrumentation propagates
//! (OpenCensus "BinaryFormat"), base64 in the header value as gRPC sends every `-bin` header.
//!
//! Layout after decoding: a version byte (0), then fields each led by its id: 0 the 16-byte
//! trace id, 1 the 8-byte span id, 2 one byte of options. A field of an unknown id ends the
//! parse (later versions append fields). All-zero ids are invalid, as in W3C Trace Context.

/// The decoded value is 29 bytes; anything longer than this is not one.
const MAX_ENCODED: usize = 64;

/// (trace id, span id) of a `grpc-trace-bin` value, if it is one.
pub fn parse(value: &[u8]) -> Option<(u128, u64)> {
    let bytes = base64(value)?;
    let (&version, mut rest) = bytes.split_first()?;
    if version != 0 {
        return None;
    }
    let (mut trace, mut span) = (None, None);
    while let Some((&field, after)) = rest.split_first() {
        match field {
            0 => {
                let id: [u8; 16] = after.get(..16)?.try_into().ok()?;
                trace = Some(u128::from_be_bytes(id));
                rest = &after[16..];
            }
            1 => {
                let id: [u8; 8] = after.get(..8)?.try_into().ok()?;
                span = Some(u64::from_be_bytes(id));
                rest = &after[8..];
            }
            2 => rest = after.get(1..)?,
            _ => break,
        }
    }
    Some((trace.filter(|t| *t != 0)?, span.filter(|s| *s != 0)?))
}

/// Standard base64 (RFC 4648 §4), padding optional, as gRPC's `-bin` headers.
fn base64(text: &[u8]) -> Option<Vec<u8>> {
    let text = text.trim_ascii();
    if text.len() > MAX_ENCODED {
        return None;
    }
    let text = text
        .strip_suffix(b"==")
        .or(text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opencensus_binary_format() {
        // version 0; trace 4bf92f35…4736; span 00f067aa0ba902b7; options 1.
        let value = b"AABL+S81d7NNpqPOkp0ODkc2AQDwZ6oLqQK3AgE";
        assert_eq!(
            parse(value),
            Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7))
        );
        let padded = b"AABL+S81d7NNpqPOkp0ODkc2AQDwZ6oLqQK3AgE=";
        assert_eq!(parse(padded), parse(value));
        assert_eq!(parse(b"AQ"), None, "another version");
        assert_eq!(parse(b"AAA"), None, "cut short");
        assert_eq!(parse(b"not base64!"), None);
        assert_eq!(parse(&[b'A'; 200]), None);
    }
}

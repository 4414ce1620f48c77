//! Redis keys as templates, like routes: `session:8f3a9c` → `session:{id}`, so that an operation
//! name has low cardinality and no identifier leaves tapspan. A key is split on `:`, `/`, `.`
//! and `|`; a part stays literal only if it is a short word (letters, `_`, `-`) — anything with
//! a digit, a symbol, non-ASCII or more than 32 bytes is `{id}` — and a key of more than 8
//! parts ends in `{rest}`. Words that are values (a user name as `user:alice`) are left to the
//! per-position counts of [`crate::route`] once this is wired; this rule alone never keeps a
//! digit, a token or an e-mail address.

const MAX_PARTS: usize = 8;
const MAX_WORD: usize = 32;

/// The template of a key (raw bytes, not necessarily UTF-8).
pub fn template(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len().min(64));
    let mut parts = 0;
    let mut start = 0;
    for i in 0..=key.len() {
        let sep = key.get(i).copied();
        if let Some(b) = sep {
            if !matches!(b, b':' | b'/' | b'.' | b'|') {
                continue;
            }
        }
        if parts == MAX_PARTS {
            out.push_str("{rest}");
            return out;
        }
        push_part(&mut out, &key[start..i]);
        parts += 1;
        if let Some(b) = sep {
            out.push(b as char);
        }
        start = i + 1;
    }
    out
}

fn push_part(out: &mut String, part: &[u8]) {
    let word = part.len() <= MAX_WORD
        && part
            .iter()
            .all(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'-');
    if word {
        // Only ASCII letters, `_` and `-`: valid UTF-8.
        out.push_str(std::str::from_utf8(part).unwrap_or("{id}"));
    } else {
        out.push_str("{id}");
    }
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn identifiers_become_placeholders() {
        assert_eq!(template(b"session:8f3a9c"), "session:{id}");
        assert_eq!(template(b"user:1042:name"), "user:{id}:name");
        assert_eq!(template(b"cache:item:19"), "cache:item:{id}");
        assert_eq!(template(b"counter:page:home"), "counter:page:home");
        assert_eq!(template(b"plainstring"), "plainstring");
        assert_eq!(template(b"mail:bob@example.test"), "mail:{id}.test");
        assert_eq!(template(b"t:\xff\xfe"), "t:{id}");
        assert_eq!(template(b""), "");
        assert_eq!(template(b"a:b:c:d:e:f:g:h:i:j"), "a:b:c:d:e:f:g:h:{rest}");
        assert_eq!(template(b"{user1000}.following"), "{id}.following");
    }
}

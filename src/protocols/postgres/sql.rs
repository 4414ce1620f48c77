//! SQL text as `db.query.text`: every literal replaced by `?`, comments dropped, whitespace
//! collapsed, at most [`MAX_TEXT`] bytes. Literals are string constants (`'…'` with `''`, the
//! `E`, `B`, `X`, `N` and `U&` forms), dollar-quoted strings (`$tag$…$tag$`) and numbers;
//! `$1` parameters and `"quoted identifiers"` stay. Unterminated literals swallow the rest of
//! the text (it becomes one `?`), so a cut statement never leaks its tail. One pass, no
//! allocation beyond the output.

/// Longest `db.query.text` kept (bytes); longer texts end in ` …`.
pub const MAX_TEXT: usize = 2048;

/// The sanitised form of `sql`.
pub fn sanitize(sql: &str) -> String {
    sanitize_with(sql, &mut |_| {})
}

/// [`sanitize`], handing each literal replaced (quotes included) to `on_literal`: the values
/// a query carries, for its payload tokens (they never leave as text).
pub fn sanitize_with(sql: &str, on_literal: &mut dyn FnMut(&[u8])) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(b.len().min(MAX_TEXT + 4));
    let mut i = 0;
    while i < b.len() && out.len() < MAX_TEXT {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let start = i;
        let mut is_literal = true;
        i = match c {
            b'\'' => literal(b, i, false, &mut out),
            b'e' | b'E' if next == Some(b'\'') && !ident_before(b, i) => {
                literal(b, i + 1, true, &mut out)
            }
            b'b' | b'B' | b'x' | b'X' | b'n' | b'N'
                if next == Some(b'\'') && !ident_before(b, i) =>
            {
                literal(b, i + 1, false, &mut out)
            }
            b'u' | b'U' if b[i..].starts_with(b"U&'") || b[i..].starts_with(b"u&'") => {
                literal(b, i + 2, false, &mut out)
            }
            b'$' if next.is_some_and(|d| d.is_ascii_digit()) => {
                is_literal = false;
                copy_while(b, i, &mut out)
            }
            b'$' => dollar(b, i, &mut out),
            b'0'..=b'9' if !ident_before(b, i) => number(b, i, &mut out),
            b'.' if next.is_some_and(|d| d.is_ascii_digit()) && !ident_before(b, i) => {
                number(b, i, &mut out)
            }
            _ => {
                is_literal = false;
                match c {
                    b'"' => quoted_ident(b, i, &mut out),
                    b'-' if next == Some(b'-') => skip_line_comment(b, i, &mut out),
                    b'/' if next == Some(b'*') => skip_block_comment(b, i, &mut out),
                    c if c.is_ascii_whitespace() => {
                        space(&mut out);
                        i + 1
                    }
                    _ => {
                        let n = utf8_len(c).min(b.len() - i);
                        out.push_str(std::str::from_utf8(&b[i..i + n]).unwrap_or("?"));
                        i + n
                    }
                }
            }
        };
        // A lone `$` is copied, not a literal.
        if is_literal && out.ends_with('?') {
            on_literal(&b[start..i]);
        }
    }
    // A quoted identifier or a `$n` is copied whole, so the last one copied may cross the cap:
    // cut it there (on a character boundary), as any text that goes on past the cap.
    let over = out.len() > MAX_TEXT;
    if over {
        let mut n = MAX_TEXT;
        while !out.is_char_boundary(n) {
            n -= 1;
        }
        out.truncate(n);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    if over || i < b.len() {
        out.push_str(" …");
    }
    out
}

/// The operation: the first keyword, upper-cased (`SELECT`), or `?`.
pub fn operation(sanitized: &str) -> String {
    let w: String = sanitized
        .trim_start_matches(['(', ' '])
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .take(32)
        .collect();
    match w.is_empty() {
        true => "?".into(),
        false => w.to_ascii_uppercase(),
    }
}

/// Statements in a sanitised text (non-empty pieces between `;`).
pub fn statements(sanitized: &str) -> usize {
    sanitized
        .split(';')
        .filter(|s| !s.trim().is_empty())
        .count()
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] >= 0x80)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn space(out: &mut String) {
    if !out.is_empty() && !out.ends_with(' ') {
        out.push(' ');
    }
}

/// A quoted literal from the quote at `q`; `backslash`: `\` escapes (E strings).
fn literal(b: &[u8], q: usize, backslash: bool, out: &mut String) -> usize {
    out.push('?');
    let mut i = q + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if backslash => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// `$tag$…$tag$` (the tag may be empty); a lone `$` is copied.
fn dollar(b: &[u8], i: usize, out: &mut String) -> usize {
    let tag_len = b[i + 1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    let end_tag = i + 1 + tag_len;
    if b.get(end_tag) != Some(&b'$') {
        out.push('$');
        return i + 1;
    }
    let tag = &b[i..=end_tag];
    out.push('?');
    let body = end_tag + 1;
    match b[body..].windows(tag.len()).position(|w| w == tag) {
        Some(p) => body + p + tag.len(),
        None => b.len(),
    }
}

fn quoted_ident(b: &[u8], i: usize, out: &mut String) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'"' {
            if b.get(j + 1) == Some(&b'"') {
                j += 2;
                continue;
            }
            j += 1;
            break;
        }
        j += 1;
    }
    let j = j.min(b.len());
    out.push_str(&String::from_utf8_lossy(&b[i..j]));
    j
}

fn copy_while(b: &[u8], i: usize, out: &mut String) -> usize {
    let n = 1 + b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
    out.push_str(std::str::from_utf8(&b[i..i + n]).unwrap_or("$"));
    i + n
}

fn skip_line_comment(b: &[u8], i: usize, out: &mut String) -> usize {
    space(out);
    match b[i..].iter().position(|&c| c == b'\n') {
        Some(p) => i + p + 1,
        None => b.len(),
    }
}

/// `/* … */`, nested as PostgreSQL nests them.
fn skip_block_comment(b: &[u8], mut i: usize, out: &mut String) -> usize {
    space(out);
    let mut depth = 0u32;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// `42`, `3.5`, `.5`, `1e-3`, `0x1F` (PostgreSQL 16's hex, octal, binary and `_` too).
fn number(b: &[u8], mut i: usize, out: &mut String) -> usize {
    out.push('?');
    let mut prev = 0u8;
    while i < b.len() {
        let c = b[i];
        let ok = c.is_ascii_alphanumeric()
            || c == b'.'
            || c == b'_'
            || ((c == b'+' || c == b'-') && matches!(prev, b'e' | b'E'));
        if !ok {
            break;
        }
        prev = c;
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_literal_replaced_is_handed_over_and_nothing_else() {
        let mut seen: Vec<String> = Vec::new();
        let text = sanitize_with(
            "SELECT a, \"b1\" FROM t2 WHERE id = 17 AND s = 'o''k' AND p = $1 -- 99\n AND \
             x = E'\\n' AND d = $$body$$ AND f = 1.5e-3 AND c$ = 2",
            &mut |v| seen.push(String::from_utf8_lossy(v).into()),
        );
        assert_eq!(
            text,
            "SELECT a, \"b1\" FROM t2 WHERE id = ? AND s = ? AND p = $1 AND x = ? AND d = ? \
             AND f = ? AND c$ = ?"
        );
        assert_eq!(
            seen,
            ["17", "'o''k'", "E'\\n'", "$$body$$", "1.5e-3", "2"],
            "no identifier, parameter, comment or lone `$`"
        );
    }

    #[test]
    fn literals_become_placeholders() {
        let cases = [
            (
                "INSERT INTO users VALUES (1, 'name-literal-01', 'u1@example.test')",
                "INSERT INTO users VALUES (?, ?, ?)",
            ),
            (
                "SELECT count(*) FROM users WHERE name LIKE 'name-param-%'",
                "SELECT count(*) FROM users WHERE name LIKE ?",
            ),
            (
                "SELECT 1; SELECT 'two-literal-03'; SELECT 3.5",
                "SELECT ?; SELECT ?; SELECT ?",
            ),
            (
                "SELECT name FROM users WHERE id = $1",
                "SELECT name FROM users WHERE id = $1",
            ),
            (
                "SELECT E'it\\'s', 'o''k', X'1F', .5e-3, -7",
                "SELECT ?, ?, ?, ?, -?",
            ),
            ("SELECT $fn$ body 'x' $fn$, $$y$$", "SELECT ?, ?"),
            (
                "SELECT \"col1\" FROM t2 /* id=42 /* nested */ */ -- 99\nWHERE a1 = 4",
                "SELECT \"col1\" FROM t2 WHERE a1 = ?",
            ),
            ("SELECT 'unterminated secret", "SELECT ?"),
            ("  SELECT\n\t1  ", "SELECT ?"),
            ("SELECT 'é', 'ü' || nom_é", "SELECT ?, ? || nom_é"),
        ];
        for (sql, want) in cases {
            assert_eq!(sanitize(sql), want, "{sql}");
        }
    }

    #[test]
    fn operation_and_statement_count() {
        assert_eq!(operation("SELECT ?"), "SELECT");
        assert_eq!(operation("(SELECT ?) UNION (SELECT ?)"), "SELECT");
        assert_eq!(operation("?"), "?");
        assert_eq!(
            statements("CREATE TABLE a (); CREATE TABLE b (); INSERT INTO a VALUES (?)"),
            3
        );
        assert_eq!(statements("SELECT ?;"), 1);
    }

    #[test]
    fn long_texts_are_cut() {
        let sql = format!("SELECT {}", "a, ".repeat(5000));
        let s = sanitize(&sql);
        assert!(s.len() <= MAX_TEXT + 8 && s.ends_with(" …"));
        assert_eq!(sanitize(&"'".repeat(100_001)), "?");
    }

    #[test]
    fn a_long_quoted_identifier_is_cut_at_the_cap() {
        for ident in ["x".repeat(10_000), "é".repeat(5_000), "ab".repeat(1_100)] {
            for sql in [
                format!("SELECT \"{ident}\""),
                format!("SELECT \"{ident}\" FROM t WHERE a = 'secret'"),
                format!("SELECT ${}", "9".repeat(10_000)),
            ] {
                let s = sanitize(&sql);
                assert!(s.len() <= MAX_TEXT + " …".len(), "{} bytes", s.len());
                assert!(s.ends_with(" …"), "{s}");
                assert!(!s.contains("secret"));
            }
        }
    }
}

//! Text bound for a terminal, made harmless: values that came off the wire (routes, methods,
//! hosts, service names taken from headers) are printed with their control characters escaped,
//! so a crafted request cannot move the cursor, recolour, retitle or rewrite the terminal of
//! whoever reads `--summary` or `tapspan diff`.
//!
//! Contract: [`escape`] returns its input unchanged (borrowed) unless it holds a character a
//! terminal may act on: the C0 controls (below 0x20, tab and newline included), DEL (0x7f), the
//! C1 controls (0x80–0x9f, of which 0x9b starts a sequence like ESC [), and the Unicode
//! direction overrides and isolates, which reorder what is shown. Each is written as `\xNN` (up
//! to 0xff) or `\u{NNNN}`. Everything else, other non-ASCII text included, is kept. Never used
//! for machine output (JSON lines, OTLP, the report), which escapes by its own format.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` with the characters a terminal may act on escaped (see the module's contract).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(acts_on_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !acts_on_terminal(c) {
            out.push(c);
        } else if u32::from(c) <= 0xff {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

fn acts_on_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["/users/{id}", "GET", "café.example", "/a b?c=d", ""] {
            assert!(matches!(escape(s), Cow::Borrowed(t) if t == s), "{s:?}");
        }
    }

    #[test]
    fn escape_sequences_and_control_bytes_are_written_out() {
        assert_eq!(
            escape("/a\x1b[2J\x1b]0;pwned\x07"),
            "/a\\x1b[2J\\x1b]0;pwned\\x07"
        );
        assert_eq!(escape("a\rb\nc\td\0"), "a\\x0db\\x0ac\\x09d\\x00");
        assert_eq!(escape("\x7f"), "\\x7f");
        assert_eq!(escape("x\u{9b}31m"), "x\\x9b31m");
        assert_eq!(escape("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(escape("\u{2066}é\u{2069}"), "\\u{2066}é\\u{2069}");
    }
}

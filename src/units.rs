//! Numbers with units on the command line and in rules files (`64KiB`, `250ms`): one reading of
//! "a number, then a unit" for every such value.

/// `s` as a decimal number and the unit after it (trimmed; empty when there is none), or None
/// when it does not start with a number.
pub fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let value = t[..split].parse().ok()?;
    Some((value, t[split..].trim()))
}

#[cfg(test)]
mod tests {
    use super::number_and_unit;

    #[test]
    fn a_number_then_its_unit() {
        assert_eq!(number_and_unit(" 1.5 MB"), Some((1.5, "MB")));
        assert_eq!(number_and_unit("250ms"), Some((250.0, "ms")));
        assert_eq!(number_and_unit("7"), Some((7.0, "")));
        assert_eq!(number_and_unit("KiB"), None);
    }
}

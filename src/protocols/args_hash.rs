//! What a database call was asked, as one keyed hash: a Redis command's full key, a
//! PostgreSQL Execute's bound parameter values, a simple query's text (its literals included).
//! The analysis compares them within one request's calls: the same hash twice is the same
//! call repeated (a cache the code does not use), several hashes under one statement template
//! an N+1.
//!
//! Never a value: the hash is SipHash keyed with 128 random bits drawn once per process (the
//! standard library's `RandomState`), so equal values give equal hashes inside one run and a
//! hash cannot be checked against guesses; like payload tokens it lives in memory only and is
//! never exported (spans, reports, analysis JSON). A value the decoder kept only in part (a
//! key or a message longer than what it reads) has no hash: two different values sharing a
//! prefix must never look the same.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;

fn state() -> &'static RandomState {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    STATE.get_or_init(RandomState::new)
}

/// The hash of `value`, if it is `whole` (else `None`: it cannot be told apart from another).
pub fn of(value: &[u8], whole: bool) -> Option<u64> {
    whole.then(|| state().hash_one(value))
}

/// One hash for two parts, each known; `None` if either is not.
pub fn pair(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    Some(state().hash_one((a?, b?)))
}

#[cfg(test)]
mod tests {
    use super::{of, pair};

    #[test]
    fn equal_values_alone_hash_equal() {
        assert_eq!(of(b"session:000019", true), of(b"session:000019", true));
        assert_ne!(of(b"item:1", true), of(b"item:2", true));
        assert_eq!(of(b"item:1", false), None);
        let (a, b) = (of(b"a", true), of(b"b", true));
        assert_ne!(pair(a, b), pair(b, a));
        assert_eq!(pair(a, None), None);
    }
}

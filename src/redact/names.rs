//! Which header and parameter names hold credentials.
//!
//! A name is compared after percent-decoding and ASCII case folding (`%74oken`, `API_KEY` and
//! `Api-Key` are one name). It is secret when it contains one of [`SECRET_PARTS`] anywhere
//! (`access_token`, `X-Vault-Token`, `PHPSESSID`, `client_secret`), or when one of its words —
//! split at anything not a letter or digit — is one of [`SECRET_WORDS`], words too short or too
//! common to look for inside other names (`code` but not `zipcode`, `pass` but not `compass`).
//! A false alarm hides a harmless value; a miss leaks a credential to every reader of the
//! traces, so the lists lean to the first.

use super::shape::percent_decode;

/// Found anywhere in a name.
pub const SECRET_PARTS: &[&str] = &[
    "token",
    "secret",
    "key",
    "auth",
    "sess",
    "passw",
    "pwd",
    "credential",
    "signature",
    "jwt",
    "csrf",
    "xsrf",
    "cookie",
    "private",
];

/// Found as a whole word of a name.
pub const SECRET_WORDS: &[&str] = &[
    "pass",
    "code",
    "sig",
    "sid",
    "otp",
    "pin",
    "ticket",
    "nonce",
    "saml",
    "assertion",
];

/// Whether `name` (raw, as on the wire) names a credential.
pub fn is_secret(name: &str) -> bool {
    let name = percent_decode(name, true).to_ascii_lowercase();
    SECRET_PARTS.iter().any(|p| name.contains(p))
        || name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| SECRET_WORDS.contains(&w))
}

/// Whether `name` is one of `listed` (lower-case), compared as [`is_secret`] compares.
pub fn is_listed(name: &str, listed: &[String]) -> bool {
    if listed.is_empty() {
        return false;
    }
    let name = percent_decode(name, true).to_ascii_lowercase();
    listed.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_are_secret_however_spelled() {
        for name in [
            "access_token",
            "%74oken",
            "%54OKEN",
            "API_KEY",
            "X-Vault-Token",
            "x-access-token",
            "PHPSESSID",
            "jsessionid",
            "client_secret",
            "pass",
            "user.pass",
            "code",
            "oauth_code",
            "X-Amz-Signature",
            "sig",
            "otp",
            "Password",
            "passwd",
        ] {
            assert!(is_secret(name), "{name}");
        }
    }

    #[test]
    fn ordinary_names_are_not() {
        for name in [
            "page", "q", "zipcode", "compass", "user", "limit", "sort", "host", "accept", "b3",
        ] {
            assert!(!is_secret(name), "{name}");
        }
    }

    #[test]
    fn listed_names_match_after_decoding() {
        let listed = vec!["email".to_string()];
        assert!(is_listed("E%6Dail", &listed));
        assert!(!is_listed("emails", &listed));
    }
}

//! Secrets stay out of what `report` writes, of spans read back from JSON lines, and of error
//! messages; every output file is readable by its owner only. The capture is
//! pcaps/nginx-secrets.pcap (real nginx and curl, scripts/secrets-recording/record.sh), its
//! planted values listed in pcaps/nginx-secrets.secrets.txt. Replay's outputs and the
//! exporters are checked in tests/exporters.rs.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::tapspan;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn planted_secrets() -> Vec<String> {
    std::fs::read_to_string(repo("pcaps/nginx-secrets.secrets.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapspan-privacy-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_absent(name: &str, bytes: &[u8], secrets: &[String]) {
    for secret in secrets {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} leaked to {name}"
        );
    }
}

fn read_private(path: &Path) -> Vec<u8> {
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode,
        0o600,
        "{} is readable by its owner only",
        path.display()
    );
    std::fs::read(path).unwrap()
}

/// `report` of the capture itself, with a user-named parameter: the same policy as `replay`.
#[test]
fn report_of_a_capture_takes_the_redact_flags() {
    let dir = scratch("report");
    let (html, json) = (dir.join("r.html"), dir.join("a.json"));
    let o = tapspan(&[
        "report",
        "pcaps/nginx-secrets.pcap",
        "--html",
        html.to_str().unwrap(),
        "--analysis-json",
        json.to_str().unwrap(),
        "--summary",
        "--redact-query",
        "Q",
        "--no-progress",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut secrets = planted_secrets();
    secrets.push("shoes".into()); // `q=shoes`, redacted because the user asked
    for (name, bytes) in [
        ("HTML report", read_private(&html)),
        ("analysis JSON", read_private(&json)),
        ("stderr", o.stderr.clone()),
        ("stdout", o.stdout.clone()),
    ] {
        assert_absent(name, &bytes, &secrets);
    }
    let analysis = String::from_utf8(std::fs::read(&json).unwrap()).unwrap();
    assert!(analysis.contains("/oauth/callback"), "{analysis}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Spans written by an older version, or by hand, with secrets in them: `report` holds them to
/// today's policy before anything is analysed.
#[test]
fn spans_read_back_from_json_lines_are_redacted_again() {
    let dir = scratch("readback");
    let o = tapspan(&[
        "replay",
        "pcaps/nginx-secrets.pcap",
        "--capture-header",
        "x-vault-token",
        "--capture-header",
        "referer",
    ]);
    assert!(o.status.success());
    let secrets = planted_secrets();
    let jwt = secrets
        .iter()
        .find(|s| s.starts_with("eyJ"))
        .unwrap()
        .clone();
    // Put raw values back where this version wrote REDACTED.
    let old = String::from_utf8(o.stdout)
        .unwrap()
        .replace("/reset/REDACTED", &format!("/reset/{jwt}"))
        .replace("session_id=REDACTED", "session_id=refsess10")
        .replace("pass=REDACTED", "pass=passw0rd02")
        .replace("jsessionid=REDACTED", "jsessionid=jsess05")
        .replace(
            "\"http.request.header.x-vault-token\":[\"REDACTED\"]",
            "\"http.request.header.x-vault-token\":[\"vaulttok07\"]",
        );
    let planted = [
        jwt.as_str(),
        "refsess10",
        "passw0rd02",
        "jsess05",
        "vaulttok07",
    ];
    for p in planted {
        assert!(old.contains(p), "{p} was put back");
    }
    let old_path = dir.join("old.jsonl");
    std::fs::write(&old_path, &old).unwrap();
    let (html, json) = (dir.join("r.html"), dir.join("a.json"));
    let o = tapspan(&[
        "report",
        old_path.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--analysis-json",
        json.to_str().unwrap(),
        "--summary",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let planted: Vec<String> = planted.iter().map(|s| s.to_string()).collect();
    for (name, bytes) in [
        ("HTML report", read_private(&html)),
        ("analysis JSON", read_private(&json)),
        ("stderr", o.stderr),
    ] {
        assert_absent(name, &bytes, &planted);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A capture damaged after its secrets: the error names the file and offset, never a value,
/// and what was decoded before the damage is written, redacted.
#[test]
fn errors_on_a_damaged_capture_name_no_secret() {
    let dir = scratch("damaged");
    let mut bytes = std::fs::read(repo("pcaps/nginx-secrets.pcap")).unwrap();
    let cut = bytes.len() - 40;
    bytes.truncate(cut);
    bytes.extend_from_slice(&[0xff; 30]);
    let damaged = dir.join("damaged.pcap");
    std::fs::write(&damaged, &bytes).unwrap();
    let o = tapspan(&[
        "replay",
        damaged.to_str().unwrap(),
        "--summary",
        "--capture-header",
        "referer",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("damaged.pcap"), "{stderr}");
    let secrets = planted_secrets();
    assert_absent("stderr", &o.stderr, &secrets);
    assert_absent("stdout", &o.stdout, &secrets);
    assert!(String::from_utf8_lossy(&o.stdout).contains("/reset/REDACTED"));
    std::fs::remove_dir_all(&dir).ok();
}

/// An output file that existed world-readable is narrowed to its owner when written.
#[test]
fn an_existing_output_file_is_narrowed_to_its_owner() {
    let dir = scratch("narrowed");
    let out = dir.join("spans.jsonl");
    std::fs::write(&out, "old\n").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = tapspan(&[
        "replay",
        "pcaps/nginx-secrets.pcap",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let spans = read_private(&out);
    assert!(!spans.starts_with(b"old"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A SOCKS 5 proxy's user name and password (RFC 1929) are skipped with the handshake: the
/// HTTP after it is decoded, the password reaches no output.
#[test]
fn a_socks_password_is_skipped_with_its_handshake() {
    let wire = std::fs::read(repo("pcaps/curl-socks5.pcap")).unwrap();
    let password = "socks-pw-42".to_string();
    assert!(wire
        .windows(password.len())
        .any(|w| w == password.as_bytes()));
    let o = tapspan(&["replay", "pcaps/curl-socks5.pcap", "--summary"]);
    assert!(o.status.success());
    assert_absent("stdout", &o.stdout, std::slice::from_ref(&password));
    assert_absent("stderr", &o.stderr, std::slice::from_ref(&password));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 10, "5 exchanges through the proxies");
    assert!(text.contains("\"url.path\":\"/d\""), "{text}");
}

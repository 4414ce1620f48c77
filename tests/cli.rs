//! The command line as users run it: exit codes, messages, output files, and secrets that must
//! never reach the output.

mod common;

use std::process::{Command, Output};

use common::tapspan;

fn stdout_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is a JSON object"))
        .collect()
}

#[test]
fn help_reads_well() {
    let o = tapspan(&["replay", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--output",
        "--summary",
        "--max-connections",
        "--redact-header",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn damaged_capture_writes_what_was_decoded_then_exits_2_naming_file_and_offset() {
    let o = tapspan(&["replay", "fixtures/crafted/truncated.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("truncated.pcap"), "{err}");
    assert!(err.contains("byte offset"), "{err}");
    // Two exchanges (the second cut by the damage): four spans.
    let spans = stdout_lines(&o);
    assert_eq!(spans.len(), 4);
    assert_eq!(spans[3]["attributes"]["error.type"], "capture_ended");
}

#[test]
fn unreadable_input_exits_2() {
    let o = tapspan(&["replay", "no/such/file.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no/such/file.pcap"));
    let o = tapspan(&["replay", "README.md"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a pcap or pcapng"));
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(tapspan(&["replay"]).status.code(), Some(2));
    assert_eq!(tapspan(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn output_file_and_summary() {
    let dir = std::env::temp_dir().join(format!("tapspan-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("spans.jsonl");
    let o = tapspan(&[
        "replay",
        "fixtures/crafted/baseline.pcap",
        "--summary",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 4);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("10.1.0.2:8080"), "{err}");
    assert!(err.contains("/items/{id}"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn query_tokens_never_reach_the_output() {
    let o = tapspan(&["replay", "fixtures/crafted/baseline.pcap"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("access_token=REDACTED"), "{text}");
    assert!(
        !text.contains("access_token=abc"),
        "a secret leaked:\n{text}"
    );
}

#[test]
fn basic_auth_credentials_never_reach_the_output() {
    let Some(dir) = common::shared_pcaps() else {
        eprintln!("skipping: ../shared/pcaps is not present");
        return;
    };
    for name in [
        "arkime-http-basicauth.pcap",
        "zeek-basic-auth-with-colon.pcap",
    ] {
        let path = dir.join(name);
        let o = tapspan(&[
            "replay",
            path.to_str().unwrap(),
            "--capture-header",
            "authorization",
        ]);
        assert!(o.status.success());
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(!text.is_empty());
        assert!(
            !text.contains("Basic "),
            "{name}: credentials leaked:\n{text}"
        );
        assert!(
            text.contains("REDACTED"),
            "{name}: the header name is kept, its value redacted"
        );
    }
}

/// What `tapspan replay pcaps/nginx-mixed.pcap` writes, to compare other ways of reading it.
fn nginx_mixed_spans() -> Vec<u8> {
    let o = tapspan(&["replay", "pcaps/nginx-mixed.pcap"]);
    assert!(o.status.success());
    assert!(!o.stdout.is_empty());
    o.stdout
}

#[test]
fn captures_are_read_as_tcpdump_users_give_them() {
    let reference = nginx_mixed_spans();
    // -r FILE, as tcpdump and tshark take it.
    let o = tapspan(&["replay", "-r", "pcaps/nginx-mixed.pcap"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, reference, "-r FILE");
    // `-`: standard input (`tcpdump -w - | tapspan replay -`).
    let mut child = Command::new(env!("CARGO_BIN_EXE_tapspan"))
        .args(["replay", "-"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pcap = std::fs::read(common::repo_path("pcaps/nginx-mixed.pcap")).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&pcap).unwrap();
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(o.status.success());
    assert_eq!(o.stdout, reference, "standard input");
    // Standard input is read once: not beside other files.
    let o = tapspan(&["replay", "-", "pcaps/nginx-mixed.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("standard input"));
}

#[test]
fn compressed_captures_are_read_as_they_are() {
    use std::io::Write;
    let reference = nginx_mixed_spans();
    let pcap = std::fs::read(common::repo_path("pcaps/nginx-mixed.pcap")).unwrap();
    let dir = std::env::temp_dir().join(format!("tapspan-compressed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&pcap).unwrap();
    let zst =
        ruzstd::encoding::compress_to_vec(&pcap[..], ruzstd::encoding::CompressionLevel::Fastest);
    for (name, bytes) in [("c.pcap.gz", gz.finish().unwrap()), ("c.pcap.zst", zst)] {
        assert_ne!(bytes[..4], pcap[..4]);
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let o = tapspan(&["replay", path.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.stdout, reference, "{name}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_capture_with_nothing_decodable_says_what_it_holds() {
    // One connection of a binary protocol tapspan does not know: no spans, and a reason
    // instead of silence.
    use common::craft::{ethernet_frames, pcap, Conversation, Dir};
    let mut conv = Conversation::new(1000, 0);
    conv.handshake()
        .send(
            Dir::C2S,
            &[0, 0, 0, 12, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4],
            1400,
        )
        .send(Dir::S2C, &[0, 0, 0, 6, 0xfe, 0xed], 1400)
        .fin();
    let dir = std::env::temp_dir().join(format!("tapspan-undecoded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("binary.pcap");
    std::fs::write(&path, pcap(1, false, &ethernet_frames(&conv.segs))).unwrap();
    let o = tapspan(&["replay", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("1 TCP connection, none decoded (tapspan decodes HTTP/1.x, HTTP/2, Redis, PostgreSQL, DNS and TLS handshakes): 1 spoke another protocol"),
        "{err}"
    );
    // DNS over UDP and TCP (pcaps/protocols/dns-basic.md): a span pair per query, nothing said.
    let o = tapspan(&["replay", "pcaps/protocols/dns-basic.pcap"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.matches("\"dns.question.name\"").count(),
        2 * 26,
        "{out}"
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("none decoded"));
    // Two HTTPS connections (pcaps/tls/README.md): their handshakes are spans, and nothing is
    // said.
    let o = tapspan(&["replay", "pcaps/tls/curl-tls.pcap"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.matches("\"name\":\"TLS handshake\"").count(),
        4,
        "{out}"
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("none decoded"));
    // A capture with HTTP says nothing of the kind.
    let o = tapspan(&["replay", "pcaps/nginx-mixed.pcap"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("none decoded"));
}

#[test]
fn sizes_take_units_and_bad_ones_are_refused() {
    let with =
        |size: &str| tapspan(&["replay", "pcaps/nginx-mixed.pcap", "--max-held-bytes", size]);
    let o = with("64KiB");
    assert!(o.status.success());
    assert_eq!(o.stdout, nginx_mixed_spans());
    let o = with("12 parsecs");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown unit"));
}

#[cfg(not(feature = "live"))]
#[test]
fn live_in_a_build_without_it_says_how_to_get_it() {
    for args in [&["live", "-i", "eth0"][..], &["live", "--help"]] {
        let o = tapspan(args);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--features live"), "{err}");
        assert!(err.contains("libpcap-dev"), "{err}");
    }
}

#[test]
fn report_and_html_are_one_flag_on_both_commands() {
    let dir = std::env::temp_dir().join(format!("tapspan-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (cmd, flag) in [
        ("replay", "--report"),
        ("replay", "--html"),
        ("report", "--report"),
        ("report", "--html"),
    ] {
        let out = dir.join(format!("{cmd}{flag}.html"));
        let o = tapspan(&[cmd, "pcaps/nginx-mixed.pcap", flag, out.to_str().unwrap()]);
        assert!(o.status.success(), "{cmd} {flag}");
        let html = std::fs::read_to_string(&out).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{cmd} {flag}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

//! Every third-party capture in ../shared/pcaps decodes to TCP segments without damage.
//! Skipped (with a message) when the folder is not present, unless `TAPSPAN_REQUIRE_SHARED` is
//! set (CI): then its absence fails the test.

use std::path::Path;

use tapspan_capture::{DecodeConfig, Decoder, FileSource, PacketSource};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps");

#[test]
fn every_shared_capture_yields_tcp_segments() {
    let dir = Path::new(DIR);
    let Ok(entries) = std::fs::read_dir(dir) else {
        assert!(
            std::env::var_os("TAPSPAN_REQUIRE_SHARED").is_none(),
            "TAPSPAN_REQUIRE_SHARED is set but {} is not a folder",
            dir.display()
        );
        eprintln!("skipped: {} not found", dir.display());
        return;
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no captures in {}", dir.display());
    let mut checked = 0;
    for path in files {
        let mut src = FileSource::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut dec = Decoder::new(DecodeConfig::default());
        let mut segments = 0u64;
        loop {
            match src.next_frame() {
                Ok(Some(frame)) => {
                    if dec.decode(&frame).is_some() {
                        segments += 1;
                    }
                }
                Ok(None) => break,
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
        let stats = dec.stats().clone();
        eprintln!("{}: {stats:?}", path.file_name().unwrap().to_string_lossy());
        assert!(
            segments > 0,
            "{}: no TCP segments ({stats:?})",
            path.display()
        );
        assert_eq!(stats.tcp_segments, segments);
        assert_eq!(stats.unsupported_link, 0, "{}", path.display());
        assert_eq!(stats.malformed, 0, "{}: {stats:?}", path.display());
        assert_eq!(
            src.position(),
            src.total_len().unwrap(),
            "{}",
            path.display()
        );
        if let Some(packets) = truth_packet_count(&path) {
            assert_eq!(
                stats.frames,
                packets,
                "{}: frame count vs truth",
                path.display()
            );
            checked += 1;
        }
    }
    eprintln!("{checked} frame counts checked against NAME.truth.json");
    assert!(checked > 0);
}

/// `capture.packets` from `NAME.truth.json`, read without a JSON parser (first `"packets": N`).
fn truth_packet_count(capture: &Path) -> Option<u64> {
    let truth = capture.with_extension("truth.json");
    let text = std::fs::read_to_string(truth).ok()?;
    let at = text.find("\"packets\":")? + "\"packets\":".len();
    let digits: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

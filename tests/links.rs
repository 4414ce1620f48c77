//! Link layers no machine here records (Cisco HDLC, 802.11 behind radiotap or PPI): a real
//! recording re-framed in each (pcaps/links/README.md) gives exactly the spans of the original.

mod common;

fn spans(capture: &str) -> Vec<u8> {
    let o = common::tapspan(&["replay", capture, "--summary"]);
    assert!(o.status.success(), "{capture}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unsupported link 0,"), "{capture}: {err}");
    o.stdout
}

#[test]
fn reframed_captures_give_the_spans_of_the_original() {
    let original = spans("pcaps/nginx-mixed.pcap");
    assert_eq!(String::from_utf8_lossy(&original).lines().count(), 26);
    for link in ["hdlc", "radiotap", "ppi"] {
        let reframed = spans(&format!("pcaps/links/nginx-mixed.{link}.pcap"));
        assert!(reframed == original, "{link}");
    }
}

//! Recordings cut into what the protocol decoders take: each TCP connection's bytes (and
//! losses) in capture order, through the capture crate and the project's reassembly as the
//! pipeline feeds them, and UDP datagrams as the capture crate decodes them. Shared by
//! tests/protocol_recordings.rs and benches/protocols.rs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tapspan::reassembly::{Direction, OpenHow, Reassembler, ReassemblyConfig, StreamEvent};
use tapspan_capture::{DecodeConfig, Decoded, Decoder, FileSource, PacketSource};

/// A recording of issue 19 (pcaps/protocols).
pub fn pcap(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps/protocols")
        .join(name)
}

/// One direction's bytes (or a loss) in capture order.
#[derive(Debug)]
pub enum Piece {
    Data(Direction, u64, Vec<u8>),
    Gap(Direction),
}

#[derive(Debug)]
pub struct Conn {
    pub client: SocketAddr,
    pub from_start: bool,
    pub pieces: Vec<Piece>,
}

/// Every TCP connection of a capture, its pieces in capture order.
pub fn tcp_conns(path: &Path) -> Vec<Conn> {
    let mut src = FileSource::open(path).unwrap();
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut rea = Reassembler::new(ReassemblyConfig::default());
    let mut conns: Vec<Conn> = Vec::new();
    let mut index = HashMap::new();
    let mut on = |ev: StreamEvent<'_>| match ev {
        StreamEvent::Open {
            conn, client, how, ..
        } => {
            index.insert(conn, conns.len());
            conns.push(Conn {
                client,
                from_start: how == OpenHow::Handshake,
                pieces: Vec::new(),
            });
        }
        StreamEvent::Data {
            conn,
            dir,
            ts,
            bytes,
            ..
        } => conns[index[&conn]]
            .pieces
            .push(Piece::Data(dir, ts.as_nanos(), bytes.to_vec())),
        StreamEvent::Gap { conn, dir, .. } => conns[index[&conn]].pieces.push(Piece::Gap(dir)),
        _ => {}
    };
    while let Some(frame) = src.next_frame().unwrap() {
        if let Some(seg) = dec.decode(&frame) {
            rea.push(&seg, &mut on);
        }
    }
    rea.finish(&mut on);
    conns
}

/// UDP datagrams of a capture: (ts, source, destination, payload) (for benches/protocols.rs).
#[allow(dead_code)]
pub fn udp_datagrams(path: &Path) -> Vec<(u64, SocketAddr, SocketAddr, Vec<u8>)> {
    let mut src = FileSource::open(path).unwrap();
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut v = Vec::new();
    while let Some(frame) = src.next_frame().unwrap() {
        if let Some(Decoded::Udp(d)) = dec.decode_packet(&frame) {
            v.push((d.ts.as_nanos(), d.src, d.dst, d.payload.to_vec()));
        }
    }
    v
}

//! Clock offsets between capture points. Several files given to `replay` are views of the same
//! traffic from different places, each stamped by its own clock. The same packet seen at two
//! points bounds their offset: it was received after it was sent. For one connection seen at
//! points A and B, the client→server packets give `t_B − t_A = δ₁ + offset` and the
//! server→client ones `t_B − t_A = −δ₂ + offset` (δ ≥ 0 the delay between the points), so the
//! offset lies between the two minima; intersecting that interval over all connections gives
//! bounds, and the estimate is their midpoint (as NTP does with a request/response pair).
//!
//! Only a sample is compared (the first `MAX_SAMPLE` packets of the reference file), which
//! bounds memory; a file with no packet in common with the reference is left uncorrected.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tapspan_capture::{CaptureError, DecodeConfig, Decoder, FileSource, PacketSource, TcpSegment};

use crate::ids::hash64;

/// Packets of the reference file remembered for matching.
const MAX_SAMPLE: usize = 500_000;

/// The estimated offset of one capture file's clock relative to the first file's.
#[derive(Clone, Debug, PartialEq)]
pub struct ClockOffset {
    pub file: PathBuf,
    /// Add to the reference clock to get this file's clock; subtract to correct this file.
    pub offset_ns: i64,
    /// The offset is within these bounds (when consistent).
    pub bounds_ns: Option<(i64, i64)>,
    pub shared_packets: u64,
    pub connections: u64,
}

/// The identity of a packet, the same wherever it was captured.
type PacketKey = (SocketAddr, SocketAddr, u32, u32, u8, u64);

fn key(seg: &TcpSegment<'_>) -> PacketKey {
    let head = &seg.payload[..seg.payload.len().min(64)];
    let mut bytes = Vec::with_capacity(72);
    bytes.extend_from_slice(&(seg.payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(head);
    (
        seg.flow.src,
        seg.flow.dst,
        seg.seq,
        seg.ack,
        seg.flags.0,
        hash64("tapspan.packet", &bytes),
    )
}

fn sample(path: &Path) -> Result<HashMap<PacketKey, u64>, CaptureError> {
    let mut source = FileSource::open(path)?;
    let mut decoder = Decoder::new(DecodeConfig::default());
    let mut seen = HashMap::new();
    // A damaged file is sampled up to the damage; the replay itself reports it.
    while let Ok(Some(frame)) = source.next_frame() {
        if let Some(seg) = decoder.decode(&frame) {
            seen.entry(key(&seg)).or_insert(seg.ts.0);
            if seen.len() >= MAX_SAMPLE {
                break;
            }
        }
    }
    Ok(seen)
}

/// Offsets of `paths[1..]` relative to `paths[0]`.
pub fn estimate_offsets(paths: &[PathBuf]) -> Result<Vec<ClockOffset>, CaptureError> {
    // One file has nothing to be offset against: do not read it twice.
    let [reference, _, ..] = paths else {
        return Ok(Vec::new());
    };
    let reference_times = sample(reference)?;
    let mut out = Vec::new();
    for path in &paths[1..] {
        out.push(offset_of(path, &reference_times)?);
    }
    Ok(out)
}

fn offset_of(
    path: &Path,
    reference: &HashMap<PacketKey, u64>,
) -> Result<ClockOffset, CaptureError> {
    let mut source = FileSource::open(path)?;
    let mut decoder = Decoder::new(DecodeConfig::default());
    // Per connection (ordered endpoints), per direction: min of t_B − t_A.
    let mut minima: HashMap<(SocketAddr, SocketAddr), [Option<i64>; 2]> = HashMap::new();
    let mut shared = 0u64;
    while let Ok(Some(frame)) = source.next_frame() {
        let Some(seg) = decoder.decode(&frame) else {
            continue;
        };
        let Some(&t_a) = reference.get(&key(&seg)) else {
            continue;
        };
        shared += 1;
        let d = seg.ts.0 as i64 - t_a as i64;
        let (lo, hi, dir) = if seg.flow.src < seg.flow.dst {
            (seg.flow.src, seg.flow.dst, 0)
        } else {
            (seg.flow.dst, seg.flow.src, 1)
        };
        let slot = &mut minima.entry((lo, hi)).or_default()[dir];
        *slot = Some(slot.map_or(d, |m| m.min(d)));
    }
    let mut lower = i64::MIN;
    let mut upper = i64::MAX;
    let mut connections = 0u64;
    let mut all = Vec::new();
    for [a, b] in minima.values() {
        all.extend(a.iter().chain(b.iter()).copied());
        if let (Some(a), Some(b)) = (a, b) {
            connections += 1;
            lower = lower.max(*a.min(b));
            upper = upper.min(*a.max(b));
        }
    }
    let (offset_ns, bounds_ns) = if connections > 0 && lower <= upper {
        (lower + (upper - lower) / 2, Some((lower, upper)))
    } else if !all.is_empty() {
        // Inconsistent or one-sided: the median difference, without bounds.
        all.sort_unstable();
        (all[all.len() / 2], None)
    } else {
        (0, None)
    };
    Ok(ClockOffset {
        file: path.to_path_buf(),
        offset_ns,
        bounds_ns,
        shared_packets: shared,
        connections,
    })
}

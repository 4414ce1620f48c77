//! pcapng block contents (draft-ietf-opsawg-pcapng): interface descriptions, packet blocks and
//! timestamp arithmetic.
//!
//! Contract: [`packet`] interprets one whole block whose framing (type, lengths, trailing copy)
//! `file.rs` has already checked, updating the section's interface list, and says where the packet
//! bytes are inside the block. It returns the text of what is wrong for a damaged block; the
//! caller adds the file name and offset. Never: reads the file, allocates per packet, or guesses
//! an interface for a packet that names one not described.

use crate::bytes::{rd16, rd32};
use crate::{LinkType, Timestamp};

pub const SHB: u32 = 0x0A0D_0D0A;
pub const IDB: u32 = 1;
pub const PB: u32 = 2;
pub const SPB: u32 = 3;
pub const EPB: u32 = 6;
/// Section Header byte-order magic.
pub const BOM: u32 = 0x1A2B_3C4D;

/// Packets may always be this long, whatever the snap length says (libpcap's MAXIMUM_SNAPLEN).
const MIN_PACKET_CAP: u32 = 262_144;

/// One interface (Interface Description Block, §4.2).
#[derive(Clone, Copy, Debug)]
pub struct Interface {
    pub link: LinkType,
    pub snaplen: u32,
    /// `if_tsresol` (option 9): high bit clear → 10^-n seconds, set → 2^-n. Default 10^-6.
    pub tsresol: u8,
    /// `if_tsoffset` (option 14): seconds added to every timestamp.
    pub tsoffset: i64,
}

/// Where a packet sits inside its block.
pub struct Packet {
    pub data_start: usize,
    pub data_len: usize,
    pub ts: Timestamp,
    pub link: LinkType,
    pub orig_len: u32,
}

/// Timestamp units → nanoseconds since the epoch, exactly (floored) and saturating.
pub fn timestamp(ticks: u64, tsresol: u8, tsoffset: i64) -> Timestamp {
    let n = u32::from(tsresol & 0x7f);
    let ticks = u128::from(ticks);
    let ns: u128 = if tsresol & 0x80 != 0 {
        // 2^-n seconds: ticks < 2^64 and 1e9 < 2^30, so the product fits; n <= 127.
        (ticks * 1_000_000_000) >> n
    } else if n <= 9 {
        ticks * 10u128.pow(9 - n)
    } else if n - 9 <= 38 {
        ticks / 10u128.pow(n - 9)
    } else {
        0
    };
    let total = ns as i128 + i128::from(tsoffset) * 1_000_000_000;
    Timestamp(total.clamp(0, i128::from(u64::MAX)) as u64)
}

/// Interprets one whole block (`block` spans type to trailing length, at least the minimum
/// length of its type). Returns the packet it carries, if any.
pub fn packet(
    block_type: u32,
    block: &[u8],
    be: bool,
    interfaces: &mut Vec<Interface>,
    last_ts: &mut Timestamp,
) -> Result<Option<Packet>, String> {
    let len = block.len();
    match block_type {
        SHB => {
            let major = rd16(block, 12, be);
            if major != 1 {
                return Err(format!(
                    "section header of unsupported pcapng version {major}"
                ));
            }
            Ok(None)
        }
        IDB => {
            interfaces.push(interface(block, be));
            Ok(None)
        }
        EPB | PB => {
            // EPB: interface id (32); PB (obsolete, §A): interface id (16) + drops count (16).
            let if_id = if block_type == EPB {
                rd32(block, 8, be) as usize
            } else {
                usize::from(rd16(block, 8, be))
            };
            let ticks = (u64::from(rd32(block, 12, be)) << 32) | u64::from(rd32(block, 16, be));
            let cap_len = rd32(block, 20, be);
            let orig_len = rd32(block, 24, be);
            let Some(iface) = interfaces.get(if_id).copied() else {
                return Err(format!(
                    "packet block refers to undescribed interface {if_id}"
                ));
            };
            if cap_len as usize > len - 32 {
                return Err(format!(
                    "packet captured length {cap_len} exceeds its block"
                ));
            }
            let cap = iface.snaplen.max(MIN_PACKET_CAP);
            if cap_len > cap {
                return Err(format!(
                    "packet captured length {cap_len} exceeds the sanity cap {cap}"
                ));
            }
            let ts = timestamp(ticks, iface.tsresol, iface.tsoffset);
            *last_ts = ts;
            Ok(Some(Packet {
                data_start: 28,
                data_len: cap_len as usize,
                ts,
                link: iface.link,
                orig_len,
            }))
        }
        SPB => {
            let Some(iface) = interfaces.first().copied() else {
                return Err("simple packet block without an interface 0".into());
            };
            let orig_len = rd32(block, 8, be);
            // §4.4: the captured length is the smaller of the original length and the snap
            // length, bounded by what the block holds. There is no timestamp.
            let mut cap_len = (orig_len as usize).min(len - 16);
            if iface.snaplen != 0 {
                cap_len = cap_len.min(iface.snaplen as usize);
            }
            Ok(Some(Packet {
                data_start: 12,
                data_len: cap_len,
                ts: *last_ts,
                link: iface.link,
                orig_len,
            }))
        }
        _ => Ok(None),
    }
}

/// Reads an IDB: link type, snap length, and the options that change timestamps. Malformed
/// options end the option list (they cannot move packet data, so they are not damage).
fn interface(block: &[u8], be: bool) -> Interface {
    let mut iface = Interface {
        link: LinkType(u32::from(rd16(block, 8, be))),
        snaplen: rd32(block, 12, be),
        tsresol: 6,
        tsoffset: 0,
    };
    let mut opts = &block[16..block.len() - 4];
    while opts.len() >= 4 {
        let code = rd16(opts, 0, be);
        let olen = usize::from(rd16(opts, 2, be));
        let Some(value) = opts.get(4..4 + olen) else {
            break;
        };
        match code {
            0 => break,
            9 if olen >= 1 => iface.tsresol = value[0],
            14 if olen >= 8 => {
                let mut v = [0u8; 8];
                v.copy_from_slice(&value[..8]);
                iface.tsoffset = if be {
                    i64::from_be_bytes(v)
                } else {
                    i64::from_le_bytes(v)
                };
            }
            _ => {}
        }
        let padded = 4 + ((olen + 3) & !3);
        opts = opts.get(padded..).unwrap_or(&[]);
    }
    iface
}

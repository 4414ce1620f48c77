//! Live capture from a network interface through libpcap (cargo feature `live`).
//!
//! Contract: [`LiveSource::open`] creates, configures (snap length, promiscuous mode, kernel
//! buffer size, read timeout, nanosecond timestamps when the platform has them) and activates a
//! libpcap handle in non-blocking mode, then applies the BPF filter if one is given.
//! [`LiveSource::next_event`] yields one [`RawFrame`] per packet, borrowed from libpcap's ring, or
//! [`LiveEvent::Idle`] after waiting (`poll`) up to the read timeout without a packet, so a caller
//! can flush batches and look at its stop flag. (Blocking reads cannot be used for that: with
//! Linux's TPACKET_V3 ring, libpcap blocks until the kernel hands over a block of packets, which
//! on a quiet link is never.) The read timeout is also the kernel's block timeout: how long a
//! packet may wait in a partly filled block before it is delivered.
//! Through [`PacketSource`], a live source blocks until a packet arrives and ends (`Ok(None)`)
//! once its stop handle is set. Link types are reported with tcpdump.org's LINKTYPE_ numbers
//! (libpcap speaks DLT_ numbers, which differ for raw IP). [`LiveSource::stats`] gives libpcap's
//! counters widened to 64 bits.
//!
//! Unsafe code: the one module of this crate allowed it, for two foreign calls with no safe
//! wrapper — libpcap's `pcap_get_tstamp_precision` (the `pcap` crate does not export it) and
//! `poll(2)` on the handle's descriptor. Each block states what it relies on.
//!
//! Never: reads the wall clock itself (timestamps are the kernel's, from libpcap), allocates per
//! packet, or retries an interface that went away: a read error ends the capture with
//! [`CaptureError::Io`] naming the interface.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pcap::{Active, Capture, Device, Precision};

use super::PacketSource;
use crate::{CaptureError, LinkType, RawFrame, Timestamp};

/// How to open an interface.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub interface: String,
    /// A BPF expression (tcpdump syntax); `None` captures everything.
    pub filter: Option<String>,
    pub snaplen: u32,
    pub promisc: bool,
    /// Kernel capture buffer, bytes.
    pub buffer_bytes: usize,
    /// How long a read waits for packets before reporting [`LiveEvent::Idle`].
    pub read_timeout_ms: u32,
}

impl LiveConfig {
    pub fn new(interface: &str) -> Self {
        LiveConfig {
            interface: interface.to_string(),
            filter: None,
            snaplen: 262_144,
            promisc: false,
            buffer_bytes: 64 << 20,
            read_timeout_ms: 100,
        }
    }
}

/// What a read gave.
pub enum LiveEvent<'a> {
    Frame(RawFrame<'a>),
    /// The read timeout passed with no packet.
    Idle,
}

/// libpcap's counters since the capture was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Packets the kernel delivered to the capture (on Linux: passed the filter).
    pub received: u64,
    /// Packets dropped because the capture buffer was full (the reader fell behind).
    pub dropped: u64,
    /// Packets dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// One interface as libpcap lists it.
#[derive(Clone, Debug)]
pub struct InterfaceInfo {
    pub name: String,
    pub description: Option<String>,
    pub addresses: Vec<std::net::IpAddr>,
    pub up: bool,
    pub running: bool,
    pub loopback: bool,
}

/// A live capture handle.
pub struct LiveSource {
    cap: Capture<Active>,
    name: String,
    link: LinkType,
    snaplen: u32,
    read_timeout_ms: u32,
    nanos: bool,
    bytes: u64,
    stop: Arc<AtomicBool>,
    /// Last raw (32-bit) counters and the widened totals.
    last_raw: (u32, u32, u32),
    totals: KernelStats,
    /// The frame last returned through [`PacketSource::next_frame`].
    held: Vec<u8>,
}

// libpcap ≥ 1.5; the `pcap` crate links the library but does not export this one.
extern "C" {
    fn pcap_get_tstamp_precision(p: *mut std::ffi::c_void) -> std::ffi::c_int;
}

fn pcap_err(interface: &str, what: &str, e: pcap::Error) -> CaptureError {
    let msg = e.to_string();
    let hint = if msg.contains("permission") || msg.contains("not permitted") {
        " (run as root, or grant the binary `setcap cap_net_raw,cap_net_admin=eip`)"
    } else {
        ""
    };
    CaptureError::Io {
        path: interface.to_string(),
        source: io::Error::other(format!("{what}: {msg}{hint}")),
    }
}

/// libpcap's DLT_ number → tcpdump.org's LINKTYPE_ number (they differ only for a few types).
fn linktype_of_dlt(dlt: i32) -> LinkType {
    match dlt {
        // DLT_RAW is 12 on most systems and 14 on OpenBSD; LINKTYPE_RAW is 101.
        12 | 14 => LinkType::RAW,
        d => LinkType(d as u32),
    }
}

impl LiveSource {
    pub fn open(config: &LiveConfig) -> Result<Self, CaptureError> {
        let name = config.interface.as_str();
        let cap = Capture::from_device(name)
            .map_err(|e| pcap_err(name, "cannot open", e))?
            .snaplen(config.snaplen.min(i32::MAX as u32) as i32)
            .promisc(config.promisc)
            .buffer_size(config.buffer_bytes.min(i32::MAX as usize) as i32)
            .timeout(config.read_timeout_ms.clamp(1, i32::MAX as u32) as i32)
            .precision(Precision::Nano)
            .open()
            .map_err(|e| pcap_err(name, "cannot start capturing", e))?
            .setnonblock()
            .map_err(|e| pcap_err(name, "cannot set non-blocking mode", e))?;
        let mut cap = cap;
        if let Some(filter) = &config.filter {
            cap.filter(filter, true)
                .map_err(|e| pcap_err(name, &format!("bad filter {filter:?}"), e))?;
        }
        // SAFETY: `as_ptr` is the live, activated handle owned by `cap`; the call only reads it.
        let nanos = unsafe { pcap_get_tstamp_precision(cap.as_ptr().cast()) } == 1;
        let link = linktype_of_dlt(cap.get_datalink().0);
        Ok(LiveSource {
            cap,
            name: name.to_string(),
            link,
            snaplen: config.snaplen,
            read_timeout_ms: config.read_timeout_ms.max(1),
            nanos,
            bytes: 0,
            stop: Arc::new(AtomicBool::new(false)),
            last_raw: (0, 0, 0),
            totals: KernelStats::default(),
            held: Vec::new(),
        })
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Whether timestamps have nanosecond (rather than microsecond) resolution.
    pub fn nanosecond_timestamps(&self) -> bool {
        self.nanos
    }

    /// Setting this flag makes the source end at its next read (within the read timeout).
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// The next packet, or `Idle` when none was ready (after waiting up to the read timeout for
    /// one; the next call reads it).
    pub fn next_event(&mut self) -> Result<LiveEvent<'_>, CaptureError> {
        let fd = self.cap.as_raw_fd();
        match self.cap.next_packet() {
            Ok(p) => {
                let tv = p.header.ts;
                let frac = tv.tv_usec.max(0) as u64;
                let ts = (tv.tv_sec.max(0) as u64) * 1_000_000_000
                    + if self.nanos { frac } else { frac * 1_000 };
                self.bytes += p.data.len() as u64;
                Ok(LiveEvent::Frame(RawFrame {
                    ts: Timestamp(ts),
                    link_type: self.link,
                    data: p.data,
                    orig_len: p.header.len,
                    offset: 0,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                wait_readable(fd, self.read_timeout_ms);
                Ok(LiveEvent::Idle)
            }
            Err(e) => Err(pcap_err(&self.name, "capture failed", e)),
        }
    }

    /// libpcap's counters, widened: the 32-bit values it reports are accumulated across wraps.
    pub fn stats(&mut self) -> Result<KernelStats, CaptureError> {
        let s = self
            .cap
            .stats()
            .map_err(|e| pcap_err(&self.name, "reading statistics", e))?;
        let (r, d, i) = self.last_raw;
        self.totals.received += u64::from(s.received.wrapping_sub(r));
        self.totals.dropped += u64::from(s.dropped.wrapping_sub(d));
        self.totals.if_dropped += u64::from(s.if_dropped.wrapping_sub(i));
        self.last_raw = (s.received, s.dropped, s.if_dropped);
        Ok(self.totals)
    }
}

impl PacketSource for LiveSource {
    /// Blocks until a packet arrives; `Ok(None)` once the stop handle is set. This path copies
    /// each frame once (into a buffer the source keeps): a borrow cannot be returned from a loop
    /// that also retries. Hot loops use [`LiveSource::next_event`], which borrows libpcap's ring.
    fn next_frame(&mut self) -> Result<Option<RawFrame<'_>>, CaptureError> {
        let mut held = std::mem::take(&mut self.held);
        let meta = loop {
            if self.stop.load(Ordering::Relaxed) {
                self.held = held;
                return Ok(None);
            }
            match self.next_event() {
                Ok(LiveEvent::Frame(f)) => {
                    held.clear();
                    held.extend_from_slice(f.data);
                    break (f.ts, f.orig_len);
                }
                Ok(LiveEvent::Idle) => {}
                Err(e) => {
                    self.held = held;
                    return Err(e);
                }
            }
        };
        self.held = held;
        Ok(Some(RawFrame {
            ts: meta.0,
            link_type: self.link,
            data: &self.held,
            orig_len: meta.1,
            offset: 0,
        }))
    }

    fn position(&self) -> u64 {
        self.bytes
    }

    fn total_len(&self) -> Option<u64> {
        None
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Waits until `fd` is readable or `timeout_ms` passes (a signal cuts the wait short, which is
/// what a caller watching a stop flag wants).
fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: u32) {
    let mut fds = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout = timeout_ms.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: one valid pollfd, owned by this frame, for the duration of the call.
    unsafe {
        libc::poll(&mut fds, 1, timeout);
    }
}

/// Interfaces libpcap can capture from.
pub fn list_interfaces() -> Result<Vec<InterfaceInfo>, CaptureError> {
    let devices = Device::list().map_err(|e| pcap_err("(interfaces)", "cannot list", e))?;
    Ok(devices
        .into_iter()
        .map(|d| InterfaceInfo {
            up: d.flags.is_up(),
            running: d.flags.is_running(),
            loopback: d.flags.is_loopback(),
            addresses: d.addresses.iter().map(|a| a.addr).collect(),
            description: d.desc,
            name: d.name,
        })
        .collect())
}

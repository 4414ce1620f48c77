//! HPACK's index space (RFC 7541 §2.3): the static table (Appendix A) and one dynamic table,
//! kept so that a capture picked up mid-connection still resolves what it can.
//!
//! Entries are held newest first; index 62 is the newest (§2.3.3). Sizes follow §4.1 (name +
//! value + 32 octets) and eviction §4.3–4.4 (oldest first, until the new entry fits; an entry
//! larger than the table empties it and is not added).
//!
//! Tolerance. A table may have entries we never saw: those added before the capture started,
//! or in a header block we could not read. Such entries are always the *oldest* ones (after a
//! loss the known entries are forgotten, so everything unseen is older than everything seen),
//! so they form an unknown tail behind the known entries. Indexes count from the newest entry,
//! which eviction never moves, hence:
//! - an index inside the known entries resolves exactly, whatever the tail holds;
//! - an index past them is *unknown* while a tail may exist, and *invalid* once it cannot.
//!
//! Eviction uses lower bounds. Each entry has a size lower bound (exact when its name and
//! value are known; `32 + known part` when the name came from an unknown entry or a Huffman
//! string was undecodable), the tail counts 0, and the maximum size is an upper bound (exact
//! from the connection's start; otherwise the configured cap, until a size update says). An
//! entry is dropped only when it is certainly evicted. Keeping an entry the peer has evicted
//! is harmless: a correct encoder never refers to it. The tail certainly stopped existing when
//! fewer than 32 octets (the smallest entry) are left beside the known entries' lower bounds.
//! Memory is bounded by the cap: the table never holds more bytes than `max_size`.

use std::collections::VecDeque;

/// Appendix A.
#[rustfmt::skip]
pub const STATIC: [(&str, &str); 61] = [
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
];

/// Per-entry overhead (§4.1).
pub const ENTRY_OVERHEAD: usize = 32;

/// A field as far as it is known: `None` is a part we could not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl Field {
    /// The entry's size (§4.1), or a lower bound of it when a part is unknown.
    pub fn size_lower_bound(&self) -> usize {
        let part = |p: &Option<Vec<u8>>| p.as_ref().map_or(0, Vec::len);
        part(&self.name) + part(&self.value) + ENTRY_OVERHEAD
    }

    pub fn is_exact(&self) -> bool {
        self.name.is_some() && self.value.is_some()
    }
}

/// What an index refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    Static(&'static str, &'static str),
    Dynamic(&'a Field),
    /// A dynamic entry we never saw (older than the capture, or lost).
    Unknown,
    /// No such entry can exist: index 0, or past every entry once no unknown tail remains.
    Invalid,
}

/// One direction's dynamic table (see the module doc).
#[derive(Clone, Debug)]
pub struct DynamicTable {
    entries: VecDeque<Field>,
    /// Sum of the entries' size lower bounds.
    size: usize,
    /// Upper bound of the table's maximum size (exact when `max_exact`).
    max_size: usize,
    max_exact: bool,
    /// Whether unknown entries may sit behind the known ones.
    tail: bool,
    /// Our memory cap: a larger maximum is clamped to it (entries then evicted early become
    /// unknown, never wrong).
    cap: usize,
}

impl DynamicTable {
    /// From the connection's start: empty, `initial` octets (4096 unless SETTINGS said).
    pub fn new(initial: usize, cap: usize) -> Self {
        let mut t = DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size: 0,
            max_exact: true,
            tail: false,
            cap,
        };
        t.set_max(initial as u64);
        t
    }

    /// Picked up mid-connection: entries unknown, maximum unknown (assumed the cap).
    pub fn midstream(cap: usize) -> Self {
        let mut t = DynamicTable::new(cap, cap);
        t.lose();
        t
    }

    /// Something the peer's encoder did was not seen (a lost or unreadable header block):
    /// every entry may have moved, so all become the unknown tail.
    pub fn lose(&mut self) {
        self.entries.clear();
        self.size = 0;
        self.tail = true;
        if !self.max_exact {
            self.max_size = self.cap;
        }
    }

    /// A dynamic table size update (§6.3).
    pub fn set_max(&mut self, max: u64) {
        if max > self.cap as u64 {
            self.max_size = self.cap;
            self.max_exact = false;
            self.tail = true;
        } else {
            self.max_size = max as usize;
            self.max_exact = true;
        }
        self.evict_to(self.max_size);
    }

    /// Adds an entry (§4.4).
    pub fn insert(&mut self, entry: Field) {
        let need = entry.size_lower_bound();
        if need > self.max_size {
            // Certainly larger than the table: it empties it and is not added. (A part
            // unknown makes it only possibly larger: then it is kept, which is harmless.)
            self.entries.clear();
            self.size = 0;
            self.tail = !self.max_exact;
            return;
        }
        self.evict_to(self.max_size - need);
        self.size += need;
        self.entries.push_front(entry);
        self.settle_tail();
    }

    fn evict_to(&mut self, room: usize) {
        while self.size > room {
            let Some(old) = self.entries.pop_back() else {
                break;
            };
            self.size -= old.size_lower_bound();
        }
        self.settle_tail();
    }

    fn settle_tail(&mut self) {
        if self.max_exact && self.max_size - self.size.min(self.max_size) < ENTRY_OVERHEAD {
            self.tail = false;
        }
    }

    /// Resolves an index of the whole space (§2.3.3).
    pub fn get(&self, index: u64) -> Lookup<'_> {
        match index {
            0 => Lookup::Invalid,
            1..=61 => {
                let (n, v) = STATIC[index as usize - 1];
                Lookup::Static(n, v)
            }
            _ => {
                let d = index - 62;
                match self.entries.get(usize::try_from(d).unwrap_or(usize::MAX)) {
                    Some(e) => Lookup::Dynamic(e),
                    None if self.tail => Lookup::Unknown,
                    None => Lookup::Invalid,
                }
            }
        }
    }

    /// Known entries, newest first.
    pub fn entries(&self) -> impl Iterator<Item = &Field> {
        self.entries.iter()
    }

    /// The table's size as far as known (exact when every entry is, and no tail).
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn may_have_unknown_entries(&self) -> bool {
        self.tail
    }
}

//! HPACK header block decoding (RFC 7541), one direction of one connection, tolerant of a
//! capture that starts mid-connection or loses bytes.
//!
//! [`HpackDecoder::decode`] takes one complete header block (a HEADERS or PUSH_PROMISE frame's
//! fragment and its CONTINUATIONs, joined) and returns its fields in order. It never fails as a
//! whole: a field that refers to a dynamic table entry we never saw has that part unknown
//! (`None`) and the block goes on; a field whose index cannot exist is unknown and counted
//! invalid; a string whose Huffman code is bad is unknown. Only a block whose structure breaks
//! (an integer or string running past its end, an integer past 2^56) stops early, keeps the
//! fields before, and forgets the dynamic table (what followed may have added entries):
//! later references to it are unknown rather than wrong. See [`table`] for how the table
//! stays exact for entries added after the capture started.
//!
//! Bounded: the table holds at most its cap in octets; a block yields at most
//! `max_list_bytes` of fields (§4.1 sizes; the rest are still read, to keep the table right,
//! and the block is marked `list_truncated`). Never panics on any input.

pub mod huffman;
pub mod primitive;
pub mod table;

#[cfg(test)]
mod tests;

pub use table::{DynamicTable, Field, Lookup, STATIC};

/// The dynamic table's size before any update (RFC 9113 §6.5.2, SETTINGS_HEADER_TABLE_SIZE).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Why a header block stopped before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("an integer or string runs past the end of the block")]
    Truncated,
    #[error("an integer is larger than 2^56")]
    IntegerOverflow,
}

/// One decoded header block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block {
    pub fields: Vec<Field>,
    /// Fields with a part from a table entry we never saw.
    pub unknown: u32,
    /// Fields with an index no entry can have (the peer's bug, or our table is wrong).
    pub invalid: u32,
    /// Strings whose Huffman code was bad (§5.2).
    pub bad_huffman: u32,
    /// Fields past `max_list_bytes`, read but not kept.
    pub list_truncated: bool,
    /// Where decoding stopped early, and why.
    pub error: Option<(usize, HpackError)>,
}

/// One direction's decoder state: its dynamic table.
#[derive(Clone, Debug)]
pub struct HpackDecoder {
    table: DynamicTable,
}

impl HpackDecoder {
    /// `from_start`: the connection's first header block will be seen; else the table's
    /// earlier entries are unknown. `cap`: the most octets the table may hold.
    pub fn new(from_start: bool, cap: usize) -> Self {
        let table = if from_start {
            DynamicTable::new(DEFAULT_TABLE_SIZE.min(cap), cap)
        } else {
            DynamicTable::midstream(cap)
        };
        HpackDecoder { table }
    }

    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// A header block of this direction was lost or not read whole.
    pub fn lose(&mut self) {
        self.table.lose();
    }

    /// Decodes one whole header block (see the module doc).
    pub fn decode(&mut self, block: &[u8], max_list_bytes: usize) -> Block {
        let mut out = Block::default();
        let mut list_bytes = 0usize;
        let mut pos = 0;
        while pos < block.len() {
            match self.instruction(&block[pos..], &mut out) {
                Ok((used, field)) => {
                    pos += used;
                    if let Some(f) = field {
                        list_bytes = list_bytes.saturating_add(f.size_lower_bound());
                        if list_bytes > max_list_bytes {
                            out.list_truncated = true;
                        } else {
                            out.fields.push(f);
                        }
                    }
                }
                Err(e) => {
                    out.error = Some((pos, e));
                    self.table.lose();
                    break;
                }
            }
        }
        out
    }

    /// One representation (§6): bytes used, and the field it emits (none for a size update).
    fn instruction(
        &mut self,
        buf: &[u8],
        out: &mut Block,
    ) -> Result<(usize, Option<Field>), HpackError> {
        let b = buf[0];
        if b & 0x80 != 0 {
            // §6.1 Indexed Header Field.
            let (index, used) = primitive::integer(buf, 7)?;
            let field = self.resolve(index, out, true);
            return Ok((used, Some(field)));
        }
        if b & 0xe0 == 0x20 {
            // §6.3 Dynamic Table Size Update.
            let (max, used) = primitive::integer(buf, 5)?;
            self.table.set_max(max);
            return Ok((used, None));
        }
        // §6.2: with incremental indexing (01, 6-bit index), without indexing (0000) or
        // never indexed (0001), both with a 4-bit index.
        let (indexing, prefix) = if b & 0xc0 == 0x40 {
            (true, 6)
        } else {
            (false, 4)
        };
        let (index, mut used) = primitive::integer(buf, prefix)?;
        let name = if index == 0 {
            let (text, n) = primitive::string(&buf[used..])?;
            used += n;
            out.note_string(text)
        } else {
            self.resolve(index, out, false).name
        };
        let (text, n) = primitive::string(&buf[used..])?;
        used += n;
        let field = Field {
            name,
            value: out.note_string(text),
        };
        if indexing {
            self.table.insert(field.clone());
        }
        Ok((used, Some(field)))
    }

    /// The field (or, for a literal's indexed name, the name part) at `index`.
    fn resolve(&self, index: u64, out: &mut Block, whole: bool) -> Field {
        let unknown = Field {
            name: None,
            value: None,
        };
        let field = match self.table.get(index) {
            Lookup::Static(n, v) => Field {
                name: Some(n.as_bytes().to_vec()),
                value: whole.then(|| v.as_bytes().to_vec()),
            },
            Lookup::Dynamic(f) => Field {
                name: f.name.clone(),
                value: if whole { f.value.clone() } else { None },
            },
            Lookup::Unknown => {
                out.unknown += 1;
                return unknown;
            }
            Lookup::Invalid => {
                out.invalid += 1;
                return unknown;
            }
        };
        if field.name.is_none() || (whole && field.value.is_none()) {
            // An entry added after the capture started whose part came from before it.
            out.unknown += 1;
        }
        field
    }
}

impl Block {
    fn note_string(&mut self, text: Result<Vec<u8>, huffman::HuffmanError>) -> Option<Vec<u8>> {
        text.map_err(|_| self.bad_huffman += 1).ok()
    }

    /// The first field named `name` whose value is known.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.name.as_deref() == Some(name.as_bytes()))
            .and_then(|f| f.value.as_deref())
    }
}

//! Body framing per RFC 9112 §6: Content-Length, chunked (with extensions and trailers, §7.1),
//! close-delimited, or none. Counts body bytes without keeping them: bodies are never exported.

/// How a message's body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes the connection (responses only, RFC 9112 §6.3 rule 8).
    UntilClose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of a chunk size; `seen` says whether any digit was read.
    Size {
        seen: bool,
    },
    /// After the size: extensions until LF.
    Ext,
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerEndLf,
}

/// Body bytes consumed so far and whether the body is over.
#[derive(Clone, Debug)]
pub struct BodyReader {
    framing: Framing,
    remaining: u64,
    chunk: Chunk,
    chunk_size: u64,
    pub body_len: u64,
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked encoding")]
pub struct ChunkError;

/// Chunk sizes beyond this are treated as malformed (no real body needs 2^60 bytes).
const MAX_CHUNK_SIZE: u64 = 1 << 60;

impl BodyReader {
    pub fn new(framing: Framing) -> Self {
        let (remaining, done) = match framing {
            Framing::None => (0, true),
            Framing::Length(n) => (n, n == 0),
            _ => (0, false),
        };
        BodyReader {
            framing,
            remaining,
            chunk: Chunk::Size { seen: false },
            chunk_size: 0,
            body_len: 0,
            done,
        }
    }

    /// A body that is not read, only counted: `Length(n)` as its `n` bytes, any other framing
    /// as 0 (its length is unknown). For a message whose head the snap length cut: the body's
    /// bytes, and where it ends, are in the part not captured.
    pub fn declared(framing: Framing) -> Self {
        let mut reader = BodyReader::new(framing);
        if let Framing::Length(n) = framing {
            reader.remaining = 0;
            reader.body_len = n;
        }
        reader.done = true;
        reader
    }

    /// Bytes the snap length cut (`len` of them, exact): like [`Self::skip_gap`], but a cut that
    /// runs past a body of known length ends the body there rather than the message. Returns how
    /// many of the `len` bytes were the body's, or None if its framing is lost in them.
    pub fn skip_snapped(&mut self, len: u64) -> Option<u64> {
        let mine = match self.framing {
            Framing::Length(_) => len.min(self.remaining),
            _ => len,
        };
        self.skip_gap(mine).then_some(mine)
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Consume body bytes from `bytes`; returns how many belonged to this body.
    pub fn consume(&mut self, bytes: &[u8]) -> Result<usize, ChunkError> {
        if self.done {
            return Ok(0);
        }
        match self.framing {
            Framing::None => Ok(0),
            Framing::Length(_) => {
                let n = (bytes.len() as u64).min(self.remaining);
                self.remaining -= n;
                self.body_len += n;
                self.done = self.remaining == 0;
                Ok(n as usize)
            }
            Framing::UntilClose => {
                self.body_len += bytes.len() as u64;
                Ok(bytes.len())
            }
            Framing::Chunked => self.consume_chunked(bytes),
        }
    }

    /// Bytes lost in a capture gap. Returns true if the body can continue after it (its length
    /// is known and the gap fits inside it); false if the message is cut.
    pub fn skip_gap(&mut self, len: u64) -> bool {
        match self.framing {
            Framing::Length(_) if len <= self.remaining => {
                self.remaining -= len;
                self.body_len += len;
                self.done = self.remaining == 0;
                true
            }
            Framing::UntilClose => {
                self.body_len += len;
                true
            }
            Framing::Chunked => match self.chunk {
                Chunk::Data(left) if len <= left => {
                    self.body_len += len;
                    self.chunk = if left == len {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(left - len)
                    };
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// The sender closed its direction: a close-delimited body is complete.
    pub fn close(&mut self) {
        if self.framing == Framing::UntilClose {
            self.done = true;
        }
    }

    fn consume_chunked(&mut self, bytes: &[u8]) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < bytes.len() && !self.done {
            let b = bytes[i];
            match self.chunk {
                Chunk::Size { seen } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        self.chunk_size = self.chunk_size * 16 + d as u64;
                        if self.chunk_size > MAX_CHUNK_SIZE {
                            return Err(ChunkError);
                        }
                        self.chunk = Chunk::Size { seen: true };
                    } else if !seen {
                        return Err(ChunkError);
                    } else if b == b'\n' {
                        self.after_size();
                    } else if b == b';' || b == b' ' || b == b'\t' || b == b'\r' {
                        self.chunk = Chunk::Ext;
                    } else {
                        return Err(ChunkError);
                    }
                    i += 1;
                }
                Chunk::Ext => {
                    if b == b'\n' {
                        self.after_size();
                    }
                    i += 1;
                }
                Chunk::Data(left) => {
                    let n = ((bytes.len() - i) as u64).min(left);
                    self.body_len += n;
                    i += n as usize;
                    self.chunk = if n == left {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(left - n)
                    };
                }
                Chunk::DataCr => {
                    self.chunk = match b {
                        b'\r' => Chunk::DataLf,
                        b'\n' => Chunk::Size { seen: false },
                        _ => return Err(ChunkError),
                    };
                    i += 1;
                }
                Chunk::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError);
                    }
                    self.chunk = Chunk::Size { seen: false };
                    i += 1;
                }
                Chunk::TrailerStart => {
                    self.chunk = match b {
                        b'\r' => Chunk::TrailerEndLf,
                        b'\n' => {
                            self.done = true;
                            Chunk::TrailerStart
                        }
                        _ => Chunk::TrailerLine,
                    };
                    i += 1;
                }
                Chunk::TrailerLine => {
                    if b == b'\n' {
                        self.chunk = Chunk::TrailerStart;
                    }
                    i += 1;
                }
                Chunk::TrailerEndLf => {
                    if b != b'\n' {
                        return Err(ChunkError);
                    }
                    self.done = true;
                    i += 1;
                }
            }
        }
        Ok(i)
    }

    fn after_size(&mut self) {
        self.chunk = if self.chunk_size == 0 {
            Chunk::TrailerStart
        } else {
            Chunk::Data(self.chunk_size)
        };
        self.chunk_size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(body: &[u8], framing: Framing, split: usize) -> (BodyReader, usize) {
        let mut r = BodyReader::new(framing);
        let (a, b) = body.split_at(split);
        let mut used = r.consume(a).unwrap();
        if used == a.len() {
            used += r.consume(b).unwrap();
        }
        (r, used)
    }

    #[test]
    fn chunked_with_extension_and_trailer_at_every_split() {
        let body = b"4;name=v\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\nGET /next";
        let framed = body.len() - b"GET /next".len();
        for split in 0..=body.len() {
            let (r, used) = feed_split(body, Framing::Chunked, split);
            assert!(r.done, "split {split}");
            assert_eq!(used, framed, "split {split}");
            assert_eq!(r.body_len, 9);
        }
    }

    #[test]
    fn content_length_stops_at_the_length() {
        let (r, used) = feed_split(b"helloHTTP/1.1", Framing::Length(5), 3);
        assert!(r.done);
        assert_eq!(used, 5);
    }

    #[test]
    fn bad_chunk_size_is_an_error() {
        let mut r = BodyReader::new(Framing::Chunked);
        assert_eq!(r.consume(b"zz\r\n"), Err(ChunkError));
    }

    #[test]
    fn gap_inside_a_chunk_keeps_the_body() {
        let mut r = BodyReader::new(Framing::Chunked);
        assert_eq!(r.consume(b"a\r\n01").unwrap(), 5);
        assert!(r.skip_gap(6));
        assert_eq!(r.consume(b"89\r\n0\r\n\r\n").unwrap(), 9);
        assert!(r.done);
        assert_eq!(r.body_len, 10);
    }
}

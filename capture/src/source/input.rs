//! Where capture bytes come from, as a tcpdump user expects: a file, `-` for standard input
//! (`tcpdump -w - | tapspan replay -`), and files compressed with gzip or zstd, recognised by
//! their magic numbers (test suites ship `.pcap.gz`), decompressed while they are read — never
//! whole in memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The path that means standard input.
pub const STDIN: &str = "-";

/// An opened input: its name for messages, the reader of its (decompressed) bytes, and its
/// length when known (a plain file; unknown for a pipe or a compressed file).
pub struct Input {
    pub name: String,
    pub reader: Box<dyn Read + Send>,
    pub len: Option<u64>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

pub fn open(path: &Path) -> io::Result<Input> {
    let (name, raw, len): (String, Box<dyn Read + Send>, Option<u64>) = if path == Path::new(STDIN)
    {
        ("standard input".into(), Box::new(io::stdin()), None)
    } else {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        (path.display().to_string(), Box::new(file), Some(len))
    };
    decompressed(name, raw, len)
}

/// `raw`, decompressed if its first bytes say it is compressed.
pub fn decompressed(
    name: String,
    mut raw: Box<dyn Read + Send>,
    len: Option<u64>,
) -> io::Result<Input> {
    let mut magic = Vec::with_capacity(4);
    (&mut raw).take(4).read_to_end(&mut magic)?;
    let whole: Box<dyn Read + Send> = Box::new(io::Cursor::new(magic.clone()).chain(raw));
    let input = |reader, len| Input {
        name: name.clone(),
        reader,
        len,
    };
    if magic.starts_with(&GZIP_MAGIC) {
        // Concatenated members too, as gzip(1) writes them.
        return Ok(input(
            Box::new(flate2::read::MultiGzDecoder::new(whole)),
            None,
        ));
    }
    if magic == ZSTD_MAGIC {
        let decoder = ruzstd::decoding::StreamingDecoder::new(whole)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
        return Ok(input(Box::new(decoder), None));
    }
    Ok(input(whole, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const BYTES: &[u8] = b"\xd4\xc3\xb2\xa1 a pcap header and some records";

    fn read_all(input: Input) -> Vec<u8> {
        let mut out = Vec::new();
        let mut r = input.reader;
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn plain_bytes_pass_through_with_their_length() {
        let input = decompressed("x".into(), Box::new(BYTES), Some(BYTES.len() as u64)).unwrap();
        assert_eq!(input.len, Some(BYTES.len() as u64));
        assert_eq!(read_all(input), BYTES);
        let short = decompressed("x".into(), Box::new(&b"ab"[..]), Some(2)).unwrap();
        assert_eq!(read_all(short), b"ab");
    }

    #[test]
    fn gzip_is_decompressed_as_it_is_read() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(BYTES).unwrap();
        let gz = gz.finish().unwrap();
        let input = decompressed("x.gz".into(), Box::new(io::Cursor::new(gz)), Some(9)).unwrap();
        assert_eq!(input.len, None);
        assert_eq!(read_all(input), BYTES);
    }
}

//! gzip for `/metrics` with the expensive part compressed once per publish.
//!
//! An exposition is a large part that only changes when a collection
//! publishes (the snapshot families) followed by a small part read at every
//! scrape (the live families). [`GzipPrefix`] deflates the large part once,
//! ending it with a sync flush (a byte-aligned, non-final block boundary), and
//! [`GzipPrefix::with_suffix`] appends the small part deflated by a fresh
//! compressor as the final block: together one ordinary single-member gzip
//! stream (RFC 1951 blocks in an RFC 1952 member), which every client
//! decodes. The compression itself is flate2's; only the 10-byte header and
//! the 8-byte trailer (CRC-32 and length, flate2's [`Crc`]) are written here.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// The gzip member header: magic, deflate, no flags, no mtime, no extra
/// flags, OS unknown (RFC 1952 §2.3).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A text's deflated blocks (not final) and its CRC-32 and length, ready to
/// take a suffix.
#[derive(Debug)]
pub struct GzipPrefix {
    deflated: Vec<u8>,
    crc: Crc,
}

impl GzipPrefix {
    /// Deflates `prefix` at the fastest level, ending with a sync flush.
    pub fn new(prefix: &[u8]) -> Self {
        let mut crc = Crc::new();
        crc.update(prefix);
        let mut deflated = deflate(prefix, FlushCompress::Sync);
        // Kept until the next publish: not the quarter of the input that
        // `deflate` reserved.
        deflated.shrink_to_fit();
        Self { deflated, crc }
    }

    /// The compressed size of the prefix, bytes.
    pub fn compressed_len(&self) -> usize {
        self.deflated.len()
    }

    /// The whole gzip member of the prefix followed by `suffix`; only
    /// `suffix` is compressed here.
    pub fn with_suffix(&self, suffix: &[u8]) -> Vec<u8> {
        let tail = deflate(suffix, FlushCompress::Finish);
        let mut crc = Crc::new();
        crc.combine(&self.crc);
        crc.update(suffix);
        let mut out = Vec::with_capacity(HEADER.len() + self.deflated.len() + tail.len() + 8);
        out.extend_from_slice(&HEADER);
        out.extend_from_slice(&self.deflated);
        out.extend_from_slice(&tail);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the length modulo 2^32, as flate2's Crc keeps it.
        out.extend_from_slice(&crc.amount().to_le_bytes());
        out
    }
}

/// Raw deflate of `input` by a fresh compressor at the fastest level, up to
/// `flush` (`Sync`: ends on a non-final byte-aligned block; `Finish`: ends
/// with the final block).
fn deflate(input: &[u8], flush: FlushCompress) -> Vec<u8> {
    let mut c = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(input.len() / 4 + 64);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let done = c.total_in() as usize;
        // Compressing into a Vec with spare room cannot fail (no dictionary,
        // no corrupt input: errors are for inflate); stop if it ever did.
        let Ok(status) = c.compress_vec(&input[done..], &mut out, flush) else {
            break;
        };
        let all_in = c.total_in() as usize == input.len();
        let room_left = out.len() < out.capacity();
        match flush {
            FlushCompress::Finish if status == Status::StreamEnd => break,
            FlushCompress::Finish => {}
            // zlib's rule: a flush is complete once the output was not filled.
            _ if all_in && room_left => break,
            _ => {}
        }
    }
    out
}

/// Whether an `Accept-Encoding` header value accepts gzip: a `gzip`,
/// `x-gzip` or `*` coding whose quality is not 0 (RFC 9110 §12.5.3).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let named = ["gzip", "x-gzip", "*"].iter().any(|c| coding.eq_ignore_ascii_case(c));
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .and_then(|(_, v)| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        named && q > 0.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        // GzDecoder reads one member only: the output must be a single one.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn prefix_and_suffix_make_one_gzip_member() {
        let prefix: String = (0..20_000)
            .map(|i| {
                format!(
                    "barman_cloud_wal_objects{{target=\"t{}\",kind=\"segment\"}} {i}\n",
                    i % 97
                )
            })
            .collect();
        let gz = GzipPrefix::new(prefix.as_bytes());
        for suffix in ["", "process_cpu_seconds_total 1.5\n# EOF\n"] {
            let body = gz.with_suffix(suffix.as_bytes());
            assert_eq!(gunzip(&body), format!("{prefix}{suffix}").into_bytes());
            // A single member: a multi-member reader sees the same bytes.
            let mut multi = Vec::new();
            flate2::read::MultiGzDecoder::new(&body[..])
                .read_to_end(&mut multi)
                .unwrap();
            assert_eq!(multi, format!("{prefix}{suffix}").into_bytes());
        }
        assert!(gz.compressed_len() * 5 < prefix.len(), "{}", gz.compressed_len());
        // Empty prefix, and a suffix larger than one output buffer.
        let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        assert_eq!(gunzip(&GzipPrefix::new(b"").with_suffix(&big)), big);
        assert_eq!(
            gunzip(&GzipPrefix::new(&big).with_suffix(b"x")),
            [&big[..], b"x"].concat()
        );
    }

    #[test]
    fn accept_encoding_is_read_with_its_qualities() {
        for yes in [
            "gzip",
            "GZIP",
            "deflate, gzip;q=0.5",
            "x-gzip",
            "*",
            "br;q=1, gzip ; q=0.001",
        ] {
            assert!(accepts_gzip(yes), "{yes}");
        }
        for no in [
            "",
            "identity",
            "deflate, br",
            "gzip;q=0",
            "gzip; q=0.0",
            "*;q=0",
            "gzipx",
        ] {
            assert!(!accepts_gzip(no), "{no}");
        }
    }
}

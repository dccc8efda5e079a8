//! Decompression of the small objects the walk reads (`.history` files),
//! bounded in bytes after decompression: a compression bomb is refused after
//! at most `limit` + 1 bytes of output, whatever it claims or holds.
//!
//! barman-cloud compresses WAL files (`.history` included) with one of its
//! `ALLOWED_COMPRESSIONS` (barman `cloud.py`, `barman-cloud-wal-archive
//! --gzip/--bzip2/--xz/--snappy/--zstd/--lz4`), adding the codec's suffix to
//! the key. Each decoder also bounds its own memory: zstd windows above
//! [`MAX_WINDOW_BYTES`] and xz decoders needing more than twice that are
//! refused (the presets barman's Python libraries use stay below); gzip, bzip2 (≤ 900 kB blocks), snappy
//! framing (≤ 64 KiB chunks) and lz4 frames (≤ 4 MiB blocks) are bounded by
//! their formats.

use std::io::Read;

use thiserror::Error;

use super::key::Compression;

/// The largest zstd window accepted, bytes (8 MiB: zstd's level 19 for a
/// stream of unknown size); xz decoders may use twice that (preset 6, Python
/// `lzma`'s default, has an 8 MiB dictionary plus the decoder's state).
pub const MAX_WINDOW_BYTES: u64 = 8 << 20;

/// How an object is compressed, from the suffix of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Stored as is.
    Plain,
    /// `.gz`: gzip (the first member, as barman's `gzip.decompress` of one member).
    Gzip,
    /// `.bz2`: bzip2.
    Bzip2,
    /// `.xz`: xz (one stream).
    Xz,
    /// `.snappy`: snappy framing format (python-snappy's `stream_compress`).
    Snappy,
    /// `.zst`: one zstd frame.
    Zstd,
    /// `.lz4`: one lz4 frame.
    Lz4,
}

impl Codec {
    /// The codec of a key ending in `plain_suffix` (e.g. `history`) or in
    /// `<plain_suffix>.<codec>`; `None` for another suffix.
    pub fn of_key(key: &str, plain_suffix: &str) -> Option<Self> {
        let suffix = key.rsplit('.').next().unwrap_or("");
        if suffix == plain_suffix {
            return Some(Self::Plain);
        }
        Compression::from_suffix(suffix).map(Self::from)
    }

    /// The codec's name, as barman's option names it (`plain` when stored as is).
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Gzip => "gzip",
            Self::Bzip2 => "bzip2",
            Self::Xz => "xz",
            Self::Snappy => "snappy",
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
        }
    }
}

impl From<Compression> for Codec {
    /// The decoder of one of barman-cloud's compression suffixes.
    fn from(c: Compression) -> Self {
        match c {
            Compression::Gzip => Self::Gzip,
            Compression::Bzip2 => Self::Bzip2,
            Compression::Xz => Self::Xz,
            Compression::Snappy => Self::Snappy,
            Compression::Zstd => Self::Zstd,
            Compression::Lz4 => Self::Lz4,
        }
    }
}

/// Why an object could not be decompressed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecompressError {
    /// The bytes are not valid data of the codec (or need a larger window
    /// than [`MAX_WINDOW_BYTES`]).
    #[error("not valid {codec} data: {message}")]
    Invalid {
        /// [`Codec::name`].
        codec: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The decompressed content is larger than the bound, bytes.
    #[error("larger than {limit} bytes once decompressed")]
    TooLarge {
        /// The bound, bytes.
        limit: u64,
    },
}

/// Decompresses `body`, reading at most `limit` + 1 bytes of output.
///
/// # Errors
/// [`DecompressError::TooLarge`] when the content exceeds `limit` bytes (a
/// plain body included), [`DecompressError::Invalid`] when it does not decode.
pub fn decompress(codec: Codec, body: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    let invalid = |message: String| DecompressError::Invalid {
        codec: codec.name(),
        message,
    };
    let io = |e: std::io::Error| invalid(e.to_string());
    let out = match codec {
        Codec::Plain => {
            if body.len() as u64 > limit {
                return Err(DecompressError::TooLarge { limit });
            }
            body.to_vec()
        }
        Codec::Gzip => bounded(flate2::read::GzDecoder::new(body), limit).map_err(io)?,
        Codec::Bzip2 => bounded(bzip2::read::BzDecoder::new(body), limit).map_err(io)?,
        Codec::Xz => {
            let kib = u32::try_from(MAX_WINDOW_BYTES / 1024 * 2).unwrap_or(u32::MAX);
            bounded(lzma_rust2::XzReader::new_mem_limit(body, false, kib), limit).map_err(io)?
        }
        Codec::Snappy => bounded(snap::read::FrameDecoder::new(body), limit).map_err(io)?,
        Codec::Zstd => {
            let d = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(body, MAX_WINDOW_BYTES)
                .map_err(|e| invalid(e.to_string()))?;
            bounded(d, limit).map_err(io)?
        }
        Codec::Lz4 => bounded(lz4_flex::frame::FrameDecoder::new(body), limit).map_err(io)?,
    };
    if out.len() as u64 > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(out)
}

/// Reads at most `limit` + 1 bytes of `r` (one more than allowed, to tell
/// "exactly the limit" from "more").
fn bounded(r: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: &str = "1\t0/70000A0\tno recovery target specified\n";

    /// `data` compressed with `codec` the way barman's Python libraries write it.
    pub(crate) fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
        match codec {
            Codec::Plain => data.to_vec(),
            Codec::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Codec::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Codec::Xz => {
                let mut e = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).unwrap();
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Codec::Snappy => {
                let mut e = snap::write::FrameEncoder::new(Vec::new());
                e.write_all(data).unwrap();
                e.into_inner().unwrap()
            }
            Codec::Zstd => ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest),
            Codec::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    /// The key suffix barman gives an object written with `codec` (with the
    /// dot; empty for plain).
    pub(crate) fn suffix(codec: Codec) -> &'static str {
        match codec {
            Codec::Plain => "",
            Codec::Gzip => ".gz",
            Codec::Bzip2 => ".bz2",
            Codec::Xz => ".xz",
            Codec::Snappy => ".snappy",
            Codec::Zstd => ".zst",
            Codec::Lz4 => ".lz4",
        }
    }

    pub(crate) const ALL: [Codec; 7] = [
        Codec::Plain,
        Codec::Gzip,
        Codec::Bzip2,
        Codec::Xz,
        Codec::Snappy,
        Codec::Zstd,
        Codec::Lz4,
    ];

    #[test]
    fn codec_from_the_key_suffix() {
        assert_eq!(Codec::of_key("00000002.history", "history"), Some(Codec::Plain));
        assert_eq!(Codec::of_key("00000002.history.gz", "history"), Some(Codec::Gzip));
        assert_eq!(Codec::of_key("00000002.history.zst", "history"), Some(Codec::Zstd));
        assert_eq!(Codec::of_key("00000002.history.rar", "history"), None);
        assert_eq!(Codec::of_key("history", "history"), Some(Codec::Plain));
    }

    #[test]
    fn every_codec_decodes_a_normal_file() {
        for codec in ALL {
            let body = compress(codec, TEXT.as_bytes());
            assert_eq!(decompress(codec, &body, 1024).unwrap(), TEXT.as_bytes(), "{codec:?}");
        }
        assert!(matches!(
            decompress(Codec::Gzip, b"not gzip", 1024),
            Err(DecompressError::Invalid { codec: "gzip", .. })
        ));
    }

    #[test]
    fn every_codec_refuses_a_bomb_and_keeps_exactly_the_limit() {
        const LIMIT: u64 = 64 << 10;
        // 4 MiB of zeros: 64 times the bound.
        let zeros = vec![0u8; 4 << 20];
        for codec in ALL {
            let bomb = compress(codec, &zeros);
            if codec != Codec::Plain {
                assert!(bomb.len() < zeros.len() / 10, "{codec:?}: {} bytes", bomb.len());
            }
            assert_eq!(
                decompress(codec, &bomb, LIMIT),
                Err(DecompressError::TooLarge { limit: LIMIT }),
                "{codec:?}"
            );
            let at_limit = compress(codec, &zeros[..LIMIT as usize]);
            assert_eq!(
                decompress(codec, &at_limit, LIMIT).unwrap().len() as u64,
                LIMIT,
                "{codec:?}"
            );
            let over = compress(codec, &zeros[..LIMIT as usize + 1]);
            assert!(matches!(
                decompress(codec, &over, LIMIT),
                Err(DecompressError::TooLarge { .. })
            ));
        }
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused_before_decoding() {
        // A frame header (magic, descriptor: no checksum, not single segment)
        // with a window descriptor of exponent 30 (1 GiB), then nothing.
        let frame = [0x28, 0xB5, 0x2F, 0xFD, 0x00, (30 - 10) << 3];
        assert!(matches!(
            decompress(Codec::Zstd, &frame, 1 << 20),
            Err(DecompressError::Invalid { codec: "zstd", .. })
        ));
    }
}

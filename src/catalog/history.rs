//! Parser for PostgreSQL timeline history files (`wals/<TLI>.history`).
//!
//! barman `xlog.decode_history_file`: each non-comment line is
//! `parentTLI<TAB>switchLSN<TAB>reason`; `#` starts a comment. The file of
//! timeline T lists T's whole ancestry, oldest first: timeline `parent` was
//! left for the next one at `switch_lsn`.

use super::compression::{Codec, decompress};

/// The largest `.history` file read, in bytes after decompression (as
/// [`super::backup_info::MAX_BACKUP_INFO_BYTES`]; a real one is a line per
/// timeline switch).
pub const MAX_HISTORY_BYTES: u64 = super::backup_info::MAX_BACKUP_INFO_BYTES;

/// One line of a history file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEntry {
    /// The timeline that ended.
    pub parent: u32,
    /// Where it ended (the next timeline starts here), in bytes.
    pub switch_lsn: u64,
}

/// Parses a history file's text. Lines that do not parse are skipped, as a
/// reader must not fail on a comment or a trailing reason with spaces.
///
/// # Errors
/// Returns `None` when no line parses at all.
pub fn parse(text: &str) -> Option<Vec<HistoryEntry>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(tli), Some(lsn)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(parent), Some(switch_lsn)) = (tli.parse::<u32>(), super::wal::parse_lsn(lsn)) {
            out.push(HistoryEntry { parent, switch_lsn });
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Reads a `.history` object as fetched: `key` (its name, ending in
/// `.history` or `.history.<codec>`) picks the decompression
/// ([`super::compression`]), bounded to [`MAX_HISTORY_BYTES`], then the text
/// is parsed. `None` when the codec is unknown, the content does not decode,
/// is larger than the bound (a compression bomb), is not UTF-8 or holds no
/// entry: the walk counts the file as unreadable.
pub fn read(key: &str, body: &[u8]) -> Option<Vec<HistoryEntry>> {
    let codec = Codec::of_key(key, "history")?;
    let bytes = decompress(codec, body, MAX_HISTORY_BYTES).ok()?;
    parse(std::str::from_utf8(&bytes).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::compression::tests::{ALL, compress, suffix};

    #[test]
    fn reads_history_in_every_barman_compression_and_refuses_bombs() {
        let text = "1\t0/70000A0\tno recovery target specified\n";
        let want = parse(text).unwrap();
        // A valid first line, then 2 MiB of spaces: over the bound.
        let mut bomb = text.as_bytes().to_vec();
        bomb.resize(2 << 20, b' ');
        for codec in ALL {
            let key = format!("00000002.history{}", suffix(codec));
            assert_eq!(
                read(&key, &compress(codec, text.as_bytes())),
                Some(want.clone()),
                "{key}"
            );
            assert_eq!(read(&key, &compress(codec, &bomb)), None, "{key}");
        }
        assert_eq!(read("00000002.history.gz", b"not gzip"), None);
        assert_eq!(read("00000002.history.rar", text.as_bytes()), None);
        assert_eq!(read("00000002.history", b"caf\xe9 1\t0/1\n"), None);
    }

    #[test]
    fn parses_real_and_commented_history() {
        let h = parse("1\t0/70000A0\tno recovery target specified\n").unwrap();
        assert_eq!(
            h,
            vec![HistoryEntry {
                parent: 1,
                switch_lsn: 0x0700_00A0
            }]
        );
        let h = parse("# comment\n1\t0/3000000\tbefore 2000-01-01\n\n2\t1/A0000028\tat restore point \"x\"\n").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(
            h[1],
            HistoryEntry {
                parent: 2,
                switch_lsn: 0x1_A000_0028
            }
        );
        assert!(parse("garbage\n").is_none());
        assert!(parse("").is_none());
    }
}

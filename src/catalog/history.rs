//! Parser for PostgreSQL timeline history files (`wals/<TLI>.history`).
//!
//! barman `xlog.decode_history_file`: each non-comment line is
//! `parentTLI<TAB>switchLSN<TAB>reason`; `#` starts a comment. The file of
//! timeline T lists T's whole ancestry, oldest first: timeline `parent` was
//! left for the next one at `switch_lsn`.

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

#[cfg(test)]
mod tests {
    use super::*;

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

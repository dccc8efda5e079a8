//! What `barman-cloud-restore` needs of a base backup besides its
//! `backup.info`: the tars, from the `base/<id>/` listing alone (no GET).
//!
//! Source (barman 3.19.1 `cloud.py::CloudBackupCatalog.get_backup_files`,
//! `CloudUploadController._build_dest_name`): the PGDATA tar is
//! `data.tar[.gz|.bz2|.snappy|.lz4]`, each tablespace listed in `backup.info`
//! has `<oid>.tar[...]`, and an archive larger than `--max-archive-size` is
//! continued in `<name>_0001.tar[...]`, `<name>_0002.tar[...]`, ... in order.
//! `barman-cloud-restore` exits when a main tar is missing; it restores
//! whatever parts exist, so a missing part leaves files out (seen here as a
//! gap in the numbering; a missing *last* part cannot be seen from the
//! listing, barman records no part count). A zero-byte tar does not extract,
//! and an object in S3 `GLACIER`/`DEEP_ARCHIVE` cannot be read until restored
//! ([`super::needs_restore`]).

use std::collections::BTreeMap;
use std::fmt;

/// One tar of a backup directory as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarObject {
    /// The file name inside `base/<id>/` (e.g. `data_0001.tar.gz`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The storage class when it must be restored before a GET can read it.
    pub archive_tier: Option<String>,
}

impl TarObject {
    /// A tar in a directly readable storage class.
    pub fn readable(name: &str, size: u64) -> Self {
        Self {
            name: name.to_string(),
            size,
            archive_tier: None,
        }
    }
}

/// Why a DONE backup's payload cannot be restored as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// A main tar is missing: `None` for the PGDATA (`data`) tar, else the
    /// tablespace OID.
    Missing(Option<u32>),
    /// A continuation part is missing: the tar (`None`: data) and the part
    /// number (`data_0002` is part 2) below the highest part present.
    MissingPart(Option<u32>, u32),
    /// A tar of zero bytes: its file name.
    Empty(String),
    /// A tar in an archive storage class: file name and class.
    ArchiveTier(String, String),
}

impl Problem {
    /// True for a missing or empty object (what `barman_cloud_backups_incomplete`
    /// counts); false for an archive-tier object, which is there but not readable yet.
    pub fn is_incomplete(&self) -> bool {
        !matches!(self, Problem::ArchiveTier(..))
    }
}

fn tar_name(oid: Option<u32>) -> String {
    oid.map_or("data".to_string(), |o| o.to_string())
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing(None) => write!(f, "data tar missing"),
            Problem::Missing(Some(oid)) => write!(f, "tablespace {oid} tar missing"),
            Problem::MissingPart(oid, n) => write!(f, "{}_{n:04} tar part missing", tar_name(*oid)),
            Problem::Empty(name) => write!(f, "{name} is empty"),
            Problem::ArchiveTier(name, class) => write!(f, "{name} in {class}"),
        }
    }
}

/// Splits a tar file name into its tar (`None`: data, else tablespace OID)
/// and part number (0 for the main file); `None` for any other name.
fn parse_tar(name: &str) -> Option<(Option<u32>, u32)> {
    let stem = ["", ".gz", ".bz2", ".snappy", ".lz4"]
        .iter()
        .find_map(|c| name.strip_suffix(c).and_then(|n| n.strip_suffix(".tar")))?;
    let (base, part) = match stem.split_once('_') {
        Some((b, p)) if p.len() >= 4 && p.bytes().all(|c| c.is_ascii_digit()) => (b, p.parse().ok()?),
        Some(_) => return None,
        None => (stem, 0),
    };
    let oid = match base {
        "data" => None,
        b if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => Some(b.parse().ok()?),
        _ => return None,
    };
    Some((oid, part))
}

/// The problems of a backup's payload, sorted; empty when everything
/// `barman-cloud-restore` reads is there, not empty and readable.
/// `tablespaces`: the OIDs `backup.info` lists. Tars of tablespaces it does
/// not list are ignored (barman ignores them too).
pub fn check(tars: &[TarObject], tablespaces: &[u32]) -> Vec<Problem> {
    let mut parts: BTreeMap<Option<u32>, Vec<u32>> = BTreeMap::new();
    parts.insert(None, Vec::new());
    for oid in tablespaces {
        parts.insert(Some(*oid), Vec::new());
    }
    let mut out = Vec::new();
    for t in tars {
        let Some((oid, part)) = parse_tar(&t.name) else {
            continue;
        };
        let Some(list) = parts.get_mut(&oid) else { continue };
        list.push(part);
        if t.size == 0 {
            out.push(Problem::Empty(t.name.clone()));
        }
        if let Some(class) = &t.archive_tier {
            out.push(Problem::ArchiveTier(t.name.clone(), class.clone()));
        }
    }
    for (oid, mut list) in parts {
        list.sort_unstable();
        list.dedup();
        if list.first() != Some(&0) {
            out.push(Problem::Missing(oid));
        }
        let highest = list.last().copied().unwrap_or(0);
        for n in 1..highest {
            if list.binary_search(&n).is_err() {
                out.push(Problem::MissingPart(oid, n));
            }
        }
    }
    out.sort();
    out
}

/// The tablespace OIDs of a `backup.info` `tablespaces` value, a Python list
/// literal of `(name, oid, location)` tuples as barman writes it
/// (`infofile.py::output_tablespace_list`, e.g.
/// `[('tbs1', 16385, '/var/lib/tbs1')]`); `None` (barman's "no tablespaces")
/// and `[]` give an empty list. `None` when it does not parse.
pub fn tablespace_oids(literal: &str) -> Option<Vec<u32>> {
    let s = literal.trim();
    if s == "None" || s.is_empty() {
        return Some(Vec::new());
    }
    let mut chars = s.strip_prefix('[')?.strip_suffix(']')?.chars().peekable();
    let mut oids = Vec::new();
    // Fields of the current tuple: quoted strings are skipped whole.
    let mut field = String::new();
    let mut index = 0;
    let mut in_tuple = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' if in_tuple => {
                // A Python string literal: skip to the closing quote, honouring escapes.
                loop {
                    match chars.next()? {
                        '\\' => {
                            chars.next()?;
                        }
                        q if q == c => break,
                        _ => {}
                    }
                }
            }
            '(' if !in_tuple => {
                in_tuple = true;
                index = 0;
                field.clear();
            }
            ',' if in_tuple => {
                if index == 1 {
                    oids.push(field.trim().parse().ok()?);
                }
                index += 1;
                field.clear();
            }
            ')' if in_tuple => {
                if index != 2 {
                    return None;
                }
                in_tuple = false;
            }
            c if in_tuple => field.push(c),
            ',' | ' ' => {}
            _ => return None,
        }
    }
    (!in_tuple).then_some(oids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(name: &str, size: u64) -> TarObject {
        TarObject::readable(name, size)
    }

    #[test]
    fn a_complete_backup_has_no_problem() {
        let tars = [tar("data.tar.gz", 10), tar("16385.tar.gz", 5)];
        assert!(check(&tars, &[16385]).is_empty());
        let split = [tar("data.tar", 1), tar("data_0001.tar", 1), tar("data_0002.tar", 1)];
        assert!(check(&split, &[]).is_empty());
    }

    #[test]
    fn missing_empty_and_archived_tars_are_problems() {
        assert_eq!(check(&[], &[]), vec![Problem::Missing(None)]);
        assert_eq!(
            check(&[tar("data.tar.gz", 10)], &[16385]),
            vec![Problem::Missing(Some(16385))]
        );
        let split = [tar("data.tar", 1), tar("data_0002.tar", 1), tar("data_0003.tar", 1)];
        assert_eq!(check(&split, &[]), vec![Problem::MissingPart(None, 1)]);
        assert_eq!(
            check(&[tar("data.tar.gz", 0)], &[]),
            vec![Problem::Empty("data.tar.gz".into())]
        );
        let mut deep = tar("data.tar.gz", 10);
        deep.archive_tier = Some("DEEP_ARCHIVE".into());
        let p = check(&[deep], &[]);
        assert_eq!(
            p,
            vec![Problem::ArchiveTier("data.tar.gz".into(), "DEEP_ARCHIVE".into())]
        );
        assert!(!p[0].is_incomplete());
        // Unlisted tablespaces and other files are ignored, as barman does.
        assert!(check(&[tar("data.tar", 1), tar("99.tar", 0), tar("backup_label", 0)], &[]).is_empty());
    }

    #[test]
    fn problems_read_as_a_dba_would_say_them() {
        let said: Vec<String> = [
            Problem::Missing(None),
            Problem::Missing(Some(16385)),
            Problem::MissingPart(None, 2),
            Problem::Empty("16385.tar.gz".into()),
            Problem::ArchiveTier("data.tar".into(), "GLACIER".into()),
        ]
        .iter()
        .map(|p| p.to_string())
        .collect();
        assert_eq!(
            said,
            [
                "data tar missing",
                "tablespace 16385 tar missing",
                "data_0002 tar part missing",
                "16385.tar.gz is empty",
                "data.tar in GLACIER"
            ]
        );
    }

    #[test]
    fn parses_barmans_tablespace_lists() {
        assert_eq!(tablespace_oids("None"), Some(vec![]));
        assert_eq!(tablespace_oids("[]"), Some(vec![]));
        assert_eq!(
            tablespace_oids("[('tbs1', 16385, '/var/lib/postgresql/tablespaces/tbs1/data')]"),
            Some(vec![16385])
        );
        assert_eq!(
            tablespace_oids(r#"[('a, (b)', 16385, '/x'), ("it's", 16390, '/y\'z')]"#),
            Some(vec![16385, 16390])
        );
        for bad in ["[('a', x, '/p')]", "[('a', 1)]", "('a', 1, '/p')", "[('a', 1, '/p'"] {
            assert_eq!(tablespace_oids(bad), None, "{bad}");
        }
    }
}

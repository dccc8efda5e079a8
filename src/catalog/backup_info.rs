//! Parser for barman's `backup.info` files.
//!
//! Format (barman 3.19.1 `infofile.py::FieldListFile.load`, layout doc §4):
//! UTF-8, one `key=value` per line; blank lines and `#` comments are skipped;
//! the line is split on the first `=` and both sides are stripped; the literal
//! `None` means null. A line without `=` makes the file unreadable, as in barman.
//!
//! Deliberate differences from barman, because an exporter must keep reporting:
//! * unknown keys are kept in [`BackupInfo::unknown_keys`] instead of aborting
//!   (barman raises `SystemExit`), so a newer barman's extra field does not
//!   blind the exporter;
//! * timestamps without a UTC offset are read as UTC (barman reads them in the
//!   reader's local time zone, which the exporter cannot know).

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use thiserror::Error;

use super::wal::{DEFAULT_SEGMENT_SIZE, SegmentName, parse_lsn};

/// Largest `backup.info` the exporter reads, in bytes. Real files are 2–4 KiB;
/// anything larger is reported unreadable without being downloaded in full.
pub const MAX_BACKUP_INFO_BYTES: u64 = 1024 * 1024;

/// Why a `backup.info` could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BackupInfoError {
    /// The file is not valid UTF-8 (barman decodes every line as UTF-8).
    #[error("backup.info is not valid UTF-8")]
    NotUtf8,
    /// The file is larger than [`MAX_BACKUP_INFO_BYTES`].
    #[error("backup.info is larger than {MAX_BACKUP_INFO_BYTES} bytes")]
    TooLarge,
    /// A non-blank, non-comment line has no `=`.
    #[error("backup.info line {line}: no '=' in line")]
    InvalidLine {
        /// 1-based line number.
        line: usize,
    },
    /// A known key has a value of the wrong shape.
    #[error("backup.info key {key}: invalid value {value:?} ({expected})")]
    InvalidValue {
        /// The key.
        key: String,
        /// The offending value (truncated to 80 characters).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// A backup's `status` field (layout doc §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupStatus {
    /// `DONE`: complete. The only status barman retention counts as successful.
    Done,
    /// `FAILED`.
    Failed,
    /// `STARTED`: in progress, or crashed (a killed `barman-cloud-backup`).
    Started,
    /// Anything else (`EMPTY`, `WAITING_FOR_WALS`, `SYNCING`, unknown); never written by barman-cloud.
    Other(String),
}

impl BackupStatus {
    fn parse(s: &str) -> Self {
        match s {
            "DONE" => Self::Done,
            "FAILED" => Self::Failed,
            "STARTED" => Self::Started,
            other => Self::Other(other.to_string()),
        }
    }

    /// The status as barman writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Done => "DONE",
            Self::Failed => "FAILED",
            Self::Started => "STARTED",
            Self::Other(s) => s,
        }
    }
}

/// Every field of a barman 3.19.1 `backup.info` (layout doc §4 table).
/// Nullable fields are `None` when absent or the literal `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupInfo {
    /// `status` (default `EMPTY` when absent, as barman).
    pub status: BackupStatus,
    /// `begin_time`: PostgreSQL `now()` at backup start.
    pub begin_time: Option<DateTime<FixedOffset>>,
    /// `end_time`: PostgreSQL `now()` at backup stop.
    pub end_time: Option<DateTime<FixedOffset>>,
    /// `begin_wal`: first WAL segment the backup needs.
    pub begin_wal: Option<SegmentName>,
    /// `end_wal`: last WAL segment the backup needs (on the stop timeline).
    pub end_wal: Option<SegmentName>,
    /// `begin_xlog` as a byte position.
    pub begin_xlog: Option<u64>,
    /// `end_xlog` as a byte position.
    pub end_xlog: Option<u64>,
    /// `begin_offset`: byte offset of `begin_xlog` inside `begin_wal`.
    pub begin_offset: Option<u64>,
    /// `end_offset`.
    pub end_offset: Option<u64>,
    /// `timeline` at backup start.
    pub timeline: Option<u32>,
    /// `xlog_segment_size` in bytes (16 MiB when absent).
    pub xlog_segment_size: u64,
    /// `systemid`: the PostgreSQL system identifier (decimal string).
    pub systemid: Option<String>,
    /// `version`: `server_version_num`.
    pub version: Option<u32>,
    /// `server_name` (literal `cloud` for barman-cloud-backup).
    pub server_name: Option<String>,
    /// `backup_name` (`--name`; the plugin writes `backup-<YYYYMMDDhhmmss>`).
    pub backup_name: Option<String>,
    /// `backup_label`: the decoded label file contents.
    pub backup_label: Option<String>,
    /// `error`: why a FAILED backup failed.
    pub error: Option<String>,
    /// `cluster_size` in bytes.
    pub cluster_size: Option<u64>,
    /// `size` in bytes (None for barman-cloud-backup).
    pub size: Option<u64>,
    /// `deduplicated_size` in bytes.
    pub deduplicated_size: Option<u64>,
    /// `mode`.
    pub mode: Option<String>,
    /// `compression` (always None for barman-cloud).
    pub compression: Option<String>,
    /// `encryption`.
    pub encryption: Option<String>,
    /// `pgdata`.
    pub pgdata: Option<String>,
    /// `config_file`.
    pub config_file: Option<String>,
    /// `hba_file`.
    pub hba_file: Option<String>,
    /// `ident_file`.
    pub ident_file: Option<String>,
    /// `included_files` (Python list literal, kept verbatim).
    pub included_files: Option<String>,
    /// `tablespaces` (Python list literal, kept verbatim).
    pub tablespaces: Option<String>,
    /// `copy_stats` (Python dict literal, kept verbatim).
    pub copy_stats: Option<String>,
    /// `snapshots_info` (dict literal, kept verbatim; snapshot backups only).
    pub snapshots_info: Option<String>,
    /// `data_checksums` (`on`/`off`).
    pub data_checksums: Option<String>,
    /// `summarize_wal` (PostgreSQL 17+).
    pub summarize_wal: Option<String>,
    /// `parent_backup_id`.
    pub parent_backup_id: Option<String>,
    /// `children_backup_ids` (comma list).
    pub children_backup_ids: Option<String>,
    /// Keys this parser does not know (barman would refuse the file).
    pub unknown_keys: Vec<String>,
}

impl Default for BackupInfo {
    fn default() -> Self {
        Self {
            status: BackupStatus::Other("EMPTY".into()),
            begin_time: None,
            end_time: None,
            begin_wal: None,
            end_wal: None,
            begin_xlog: None,
            end_xlog: None,
            begin_offset: None,
            end_offset: None,
            timeline: None,
            xlog_segment_size: DEFAULT_SEGMENT_SIZE,
            systemid: None,
            version: None,
            server_name: None,
            backup_name: None,
            backup_label: None,
            error: None,
            cluster_size: None,
            size: None,
            deduplicated_size: None,
            mode: None,
            compression: None,
            encryption: None,
            pgdata: None,
            config_file: None,
            hba_file: None,
            ident_file: None,
            included_files: None,
            tablespaces: None,
            copy_stats: None,
            snapshots_info: None,
            data_checksums: None,
            summarize_wal: None,
            parent_backup_id: None,
            children_backup_ids: None,
            unknown_keys: Vec::new(),
        }
    }
}

impl BackupInfo {
    /// Parses the raw bytes of a `backup.info`.
    ///
    /// # Errors
    /// [`BackupInfoError`] when the bytes are not UTF-8, too large, have a line
    /// without `=`, or a known field has a value of the wrong type.
    pub fn parse(bytes: &[u8]) -> Result<Self, BackupInfoError> {
        if bytes.len() as u64 > MAX_BACKUP_INFO_BYTES {
            return Err(BackupInfoError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| BackupInfoError::NotUtf8)?;
        let mut info = BackupInfo::default();
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or(BackupInfoError::InvalidLine { line: i + 1 })?;
            info.set(key.trim(), value.trim())?;
        }
        Ok(info)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), BackupInfoError> {
        let s = || nullable(value).map(str::to_string);
        match key {
            "status" => self.status = BackupStatus::parse(value),
            "begin_time" => self.begin_time = opt(key, value, parse_time, "a timestamp")?,
            "end_time" => self.end_time = opt(key, value, parse_time, "a timestamp")?,
            "begin_wal" => self.begin_wal = opt(key, value, SegmentName::parse, "a WAL name")?,
            "end_wal" => self.end_wal = opt(key, value, SegmentName::parse, "a WAL name")?,
            "begin_xlog" => self.begin_xlog = opt(key, value, parse_lsn, "an LSN")?,
            "end_xlog" => self.end_xlog = opt(key, value, parse_lsn, "an LSN")?,
            "begin_offset" => self.begin_offset = opt(key, value, int, "an integer")?,
            "end_offset" => self.end_offset = opt(key, value, int, "an integer")?,
            "timeline" => self.timeline = opt(key, value, int, "an integer")?,
            "version" => self.version = opt(key, value, int, "an integer")?,
            "cluster_size" => self.cluster_size = opt(key, value, int, "an integer")?,
            "size" => self.size = opt(key, value, int, "an integer")?,
            "deduplicated_size" => self.deduplicated_size = opt(key, value, int, "an integer")?,
            "xlog_segment_size" => {
                let size: Option<u64> = opt(key, value, int, "an integer")?;
                let size = size.unwrap_or(DEFAULT_SEGMENT_SIZE);
                if !size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&size) {
                    return Err(invalid(key, value, "a power of two from 1 MiB to 1 GiB"));
                }
                self.xlog_segment_size = size;
            }
            "backup_label" => self.backup_label = opt(key, value, python_str_literal, "a Python string literal")?,
            "systemid" => self.systemid = s(),
            "server_name" => self.server_name = s(),
            "backup_name" => self.backup_name = s(),
            "error" => self.error = s(),
            "mode" => self.mode = s(),
            "compression" => self.compression = s(),
            "encryption" => self.encryption = s(),
            "pgdata" => self.pgdata = s(),
            "config_file" => self.config_file = s(),
            "hba_file" => self.hba_file = s(),
            "ident_file" => self.ident_file = s(),
            "included_files" => self.included_files = s(),
            "tablespaces" => self.tablespaces = s(),
            "copy_stats" => self.copy_stats = s(),
            "snapshots_info" => self.snapshots_info = s(),
            "data_checksums" => self.data_checksums = s(),
            "summarize_wal" => self.summarize_wal = s(),
            "parent_backup_id" => self.parent_backup_id = s(),
            "children_backup_ids" => self.children_backup_ids = s(),
            other => {
                if !self.unknown_keys.iter().any(|k| k == other) && self.unknown_keys.len() < 32 {
                    self.unknown_keys.push(truncate(other, 80));
                }
            }
        }
        Ok(())
    }
}

fn nullable(value: &str) -> Option<&str> {
    (value != "None").then_some(value)
}

fn opt<T>(
    key: &str,
    value: &str,
    parse: impl Fn(&str) -> Option<T>,
    expected: &'static str,
) -> Result<Option<T>, BackupInfoError> {
    match nullable(value) {
        None => Ok(None),
        Some(v) => parse(v).map(Some).ok_or_else(|| invalid(key, value, expected)),
    }
}

fn invalid(key: &str, value: &str, expected: &'static str) -> BackupInfoError {
    BackupInfoError::InvalidValue {
        key: truncate(key, 80),
        value: truncate(value, 80),
        expected,
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn int<T: std::str::FromStr>(v: &str) -> Option<T> {
    v.parse().ok()
}

/// Parses `str(datetime)` as barman writes it: `YYYY-MM-DD HH:MM:SS[.ffffff]±HH:MM`
/// (also accepts `T` as separator and `Z`). A value without an offset is read as UTC.
pub fn parse_time(v: &str) -> Option<DateTime<FixedOffset>> {
    let v = v.trim();
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(v, fmt) {
            return Some(t);
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t);
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(v, fmt) {
            return Some(Utc.from_utc_datetime(&naive).fixed_offset());
        }
    }
    None
}

/// Decodes a Python `repr()` of a `str` (`'...'` or `"..."`, with `\n`, `\t`,
/// `\\`, `\'`, `\"`, `\xNN`, `\uNNNN`, `\UNNNNNNNN` escapes), as barman's
/// `ast.literal_eval` on `backup_label`.
pub fn python_str_literal(v: &str) -> Option<String> {
    let quote = v.chars().next()?;
    if !(quote == '\'' || quote == '"') || v.len() < 2 || !v.ends_with(quote) {
        return None;
    }
    let inner = &v[1..v.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let esc = chars.next()?;
        let mut hex = |n: usize| -> Option<char> {
            let s: String = chars.by_ref().take(n).collect();
            if s.len() != n {
                return None;
            }
            char::from_u32(u32::from_str_radix(&s, 16).ok()?)
        };
        out.push(match esc {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '0' => '\0',
            '\\' | '\'' | '"' => esc,
            'x' => hex(2)?,
            'u' => hex(4)?,
            'U' => hex(8)?,
            _ => return None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the layout reference (serialized by barman 3.19.1).
    pub(crate) const EXAMPLE: &str = r#"backup_label='START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\nCHECKPOINT LOCATION: 0/6000080\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2025-11-26 09:15:49 UTC\nLABEL: Barman backup cloud 20251126T091549\nSTART TIMELINE: 1\n'
backup_name=backup-20251126091549
begin_offset=40
begin_time=2025-11-26 09:15:49.512345+00:00
begin_wal=000000010000000000000006
begin_xlog=0/6000028
children_backup_ids=None
cluster_size=31604551
compression=None
config_file=/var/lib/postgresql/data/pgdata/postgresql.conf
copy_stats={'total_time': 3.12, 'number_of_workers': 2, 'analysis_time': 0, 'analysis_time_per_item': {'data': 0}, 'copy_time_per_item': {'data': 2.4}, 'serialized_copy_time_per_item': {'data': 2.1}, 'copy_time': 2.4, 'serialized_copy_time': 2.1}
data_checksums=on
deduplicated_size=None
encryption=None
end_offset=344
end_time=2025-11-26 09:15:53.101112+00:00
end_wal=000000010000000000000006
end_xlog=0/6000158
error=None
hba_file=/var/lib/postgresql/data/pgdata/pg_hba.conf
ident_file=/var/lib/postgresql/data/pgdata/pg_ident.conf
included_files=['/var/lib/postgresql/data/pgdata/custom.conf']
mode=None
parent_backup_id=None
pgdata=/var/lib/postgresql/data/pgdata
server_name=cloud
size=None
status=DONE
summarize_wal=off
systemid=7441478432510885907
tablespaces=[('tbs1', 16385, '/var/lib/postgresql/tablespaces/tbs1/data')]
timeline=1
version=170006
xlog_segment_size=16777216
"#;

    #[test]
    fn parses_every_field_of_the_reference_example() {
        let i = BackupInfo::parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(i.status, BackupStatus::Done);
        assert_eq!(i.begin_time.unwrap().timestamp_micros(), 1_764_148_549_512_345);
        assert_eq!(i.end_time.unwrap().timestamp(), 1_764_148_553);
        assert_eq!(i.begin_wal.unwrap().to_string(), "000000010000000000000006");
        assert_eq!(i.end_wal.unwrap().to_string(), "000000010000000000000006");
        assert_eq!(i.begin_xlog, Some(0x0600_0028));
        assert_eq!(i.end_xlog, Some(0x0600_0158));
        assert_eq!((i.begin_offset, i.end_offset), (Some(40), Some(344)));
        assert_eq!(i.timeline, Some(1));
        assert_eq!(i.version, Some(170_006));
        assert_eq!(i.xlog_segment_size, 16 * 1024 * 1024);
        assert_eq!(i.systemid.as_deref(), Some("7441478432510885907"));
        assert_eq!(i.server_name.as_deref(), Some("cloud"));
        assert_eq!(i.backup_name.as_deref(), Some("backup-20251126091549"));
        assert_eq!(i.cluster_size, Some(31_604_551));
        assert_eq!((i.size, i.deduplicated_size), (None, None));
        assert_eq!((i.error.as_deref(), i.mode.as_deref()), (None, None));
        assert_eq!(i.data_checksums.as_deref(), Some("on"));
        assert_eq!(i.summarize_wal.as_deref(), Some("off"));
        assert!(i.tablespaces.unwrap().contains("tbs1"));
        assert!(i.copy_stats.unwrap().starts_with("{'total_time'"));
        let label = i.backup_label.unwrap();
        assert!(label.contains("\nLABEL: Barman backup cloud 20251126T091549\n"));
        assert!(i.unknown_keys.is_empty());
    }

    #[test]
    fn started_backup_has_no_end_fields() {
        let i = BackupInfo::parse(
            b"status=STARTED\nbegin_time=2025-11-26 09:15:49+01:00\nbegin_wal=000000010000000000000006\n",
        )
        .unwrap();
        assert_eq!(i.status, BackupStatus::Started);
        assert_eq!(i.begin_time.unwrap().timestamp(), 1_764_144_949);
        assert_eq!(i.end_time, None);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(
            BackupInfo::parse(b"status DONE\n"),
            Err(BackupInfoError::InvalidLine { line: 1 })
        );
        assert_eq!(BackupInfo::parse(b"\xff\xfe=1"), Err(BackupInfoError::NotUtf8));
        assert!(matches!(
            BackupInfo::parse(b"timeline=one"),
            Err(BackupInfoError::InvalidValue { .. })
        ));
        assert!(matches!(
            BackupInfo::parse(b"xlog_segment_size=12345"),
            Err(BackupInfoError::InvalidValue { .. })
        ));
        let big = vec![b'#'; MAX_BACKUP_INFO_BYTES as usize + 1];
        assert_eq!(BackupInfo::parse(&big), Err(BackupInfoError::TooLarge));
    }

    #[test]
    fn tolerant_where_barman_is_and_where_we_choose_to_be() {
        // comments, blank lines, spaces around '=', duplicate keys (last wins), unknown keys
        let i = BackupInfo::parse(
            b"# comment\n\n status = FAILED \nstatus=DONE\nnew_field=1\nend_time=2025-11-26 09:15:53\n",
        )
        .unwrap();
        assert_eq!(i.status, BackupStatus::Done);
        assert_eq!(i.unknown_keys, vec!["new_field".to_string()]);
        // naive timestamps are read as UTC
        assert_eq!(i.end_time.unwrap().timestamp(), 1_764_148_553);
    }

    #[test]
    fn python_literals() {
        assert_eq!(python_str_literal(r"'a\nb\'c\x41\u00e9'").unwrap(), "a\nb'cAé");
        assert_eq!(python_str_literal(r#""it's""#).unwrap(), "it's");
        assert!(python_str_literal("'unterminated").is_none());
        assert!(python_str_literal("plain").is_none());
    }
}

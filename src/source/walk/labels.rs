//! Finding the newest backup deleted from `base/` whose barman label file is
//! still under `wals/` ([`ServerCatalog::last_deleted`]), which decides
//! whether a leftover nobody keeps is `unprotected` or
//! `awaiting_next_deletion` ([`crate::catalog::retention::WalRules::resolve`]).
//!
//! The candidates are the label files below the first backup that belong to
//! no backup in the catalog ([`crate::catalog::WalTotals::foreign_labels`],
//! at most [`crate::catalog::MAX_FOREIGN_LABELS`]). They are read newest
//! first with a bounded GET, decompressed with a bound, and remembered by key
//! (PostgreSQL writes a label file once and never changes it), so in the
//! steady state this costs no request.

use std::collections::BTreeSet;

use crate::catalog::backup_info::MAX_BACKUP_INFO_BYTES;
use crate::catalog::compression::{Codec, decompress};
use crate::catalog::retention::barman_label_id;
use crate::catalog::wal::SegmentName;
use crate::source::store::ObjectStore;

use super::{ServerWalk, ServerWalker};

/// The barman backup id a label file's body names, if it decodes within
/// [`MAX_BACKUP_INFO_BYTES`] and is a barman label. `rest` is the key after
/// `wals/` (its suffix gives the codec).
pub(super) fn label_backup_id(rest: &str, body: &[u8]) -> Option<String> {
    let codec = Codec::of_key(rest, "backup")?;
    let bytes = decompress(codec, body, MAX_BACKUP_INFO_BYTES).ok()?;
    barman_label_id(std::str::from_utf8(&bytes).ok()?).map(str::to_string)
}

impl<S: ObjectStore> ServerWalker<'_, S> {
    /// Sets `w.catalog.last_deleted` from the foreign label files, newest
    /// first: the first whose backup id is no longer a directory under
    /// `base/`. Labels of `pg_basebackup` runs and of backups still in
    /// `base/` are skipped; one that cannot be read counts as not barman's.
    pub(super) async fn find_last_deleted(&self, w: &mut ServerWalk) -> Result<(), S::Error> {
        let wals = format!("{}wals/", self.root);
        let in_base: BTreeSet<&str> = w.catalog.backups.iter().map(|b| b.id.as_str()).collect();
        let labels: Vec<(String, String)> = w
            .catalog
            .wal
            .foreign_labels
            .iter()
            .rev()
            .map(|(bare, rest)| (bare.clone(), rest.clone()))
            .collect();
        for (bare, rest) in labels {
            let cached = self.prev.and_then(|p| p.labels.get(&rest));
            let id = match cached {
                Some(id) => {
                    w.stats.reused_objects += 1;
                    id.clone()
                }
                None => {
                    let body = self.get_small(&format!("{wals}{rest}")).await?;
                    body.and_then(|b| label_backup_id(&rest, &b))
                }
            };
            w.cache.labels.insert(rest, id.clone());
            if id.is_some_and(|id| !in_base.contains(id.as_str())) {
                w.catalog.last_deleted = SegmentName::parse(&bare[..bare.len().min(24)]);
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::compression::tests::{ALL, compress, suffix};

    #[test]
    fn reads_barman_labels_in_every_codec_and_refuses_others() {
        let text = "START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\n\
                    CHECKPOINT LOCATION: 0/6000060\nBACKUP METHOD: streamed\n\
                    BACKUP FROM: primary\nSTART TIME: 2026-12-03 10:00:00 UTC\n\
                    LABEL: Barman backup cloud 20261203T100000\nSTART TIMELINE: 1\n";
        for codec in ALL {
            let rest = format!(
                "0000000100000000/000000010000000000000006.00000028.backup{}",
                suffix(codec)
            );
            let body = compress(codec, text.as_bytes());
            assert_eq!(
                label_backup_id(&rest, &body).as_deref(),
                Some("20261203T100000"),
                "{rest}"
            );
        }
        let pg = text.replace("Barman backup cloud 20261203T100000", "pg_basebackup base backup");
        assert_eq!(label_backup_id("x.00000028.backup", pg.as_bytes()), None);
        assert_eq!(label_backup_id("x.00000028.backup", b"\xff\xfe"), None);
        assert_eq!(label_backup_id("x.00000028.backup.gz", b"not gzip"), None);
    }
}

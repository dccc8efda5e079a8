//! The reference for `awaiting_next_deletion` and `unprotected`: what a real
//! `barman-cloud-backup-delete` removes.

use std::collections::BTreeMap;

use super::{Scenario, segno};

/// WAL objects (key → size) under `wal_prefix` below the first valid backup
/// F (`first_begin_wal`): segments, `.partial` and `.backup` files with
/// `tli == F.timeline && name < F.begin_wal`, or `tli < F.timeline`.
/// `.history` files are left out (barman never deletes them).
pub async fn below_first(sc: &Scenario, wal_prefix: &str, first_begin_wal: &str) -> BTreeMap<String, i64> {
    let (ftli, fseg) = segno(first_begin_wal);
    let mut out = BTreeMap::new();
    for (k, sz) in sc.list(wal_prefix).await {
        if let Some((_, base)) = k[wal_prefix.len()..].split_once('/') {
            let (tli, n) = segno(base);
            if (tli == ftli && n < fseg) || tli < ftli {
                out.insert(k.clone(), sz);
            }
        }
    }
    out
}

/// Runs barman's next deletion on `server` at `dest` (an `s3://` URL whose
/// key prefix is `dest_prefix`) and returns the objects below the first
/// valid backup it removed, with their sizes.
///
/// "One more backup" is the newest DONE backup's `backup.info` copied under
/// a backup id one second later (same WAL range): then a real
/// `barman-cloud-backup-delete --retention-policy 'REDUNDANCY 1'` deletes
/// every backup before it that has no keep annotation, as retention does
/// once a newer backup exists. Changes the layout at `dest` (a copy under
/// `copies/` or `hostile/`): call it last.
pub async fn next_deletion_removes(
    sc: &Scenario,
    dest: &str,
    dest_prefix: &str,
    server: &str,
    first_begin_wal: &str,
) -> BTreeMap<String, i64> {
    let wal_prefix = format!("{dest_prefix}{server}/wals/");
    let before = below_first(sc, &wal_prefix, first_begin_wal).await;
    let out = sc.barman("barman-cloud-backup-list", &["--format", "json", dest, server]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let newest = list["backups_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "DONE")
        .map(|b| b["backup_id"].as_str().unwrap().to_string())
        .max()
        .expect("a DONE backup");
    let later = chrono::NaiveDateTime::parse_from_str(&newest, "%Y%m%dT%H%M%S").unwrap() + chrono::Duration::seconds(1);
    let later = later.format("%Y%m%dT%H%M%S").to_string();
    let client = sc.s3_client().await;
    let src = format!("{dest_prefix}{server}/base/{newest}/backup.info");
    let body = client.get_object().bucket(&sc.bucket).key(&src).send().await.unwrap();
    // barman takes the id from the directory name (`backup.info` has no id field).
    let info = body.body.collect().await.unwrap().into_bytes().to_vec();
    client
        .put_object()
        .bucket(&sc.bucket)
        .key(format!("{dest_prefix}{server}/base/{later}/backup.info"))
        .body(info.into())
        .send()
        .await
        .unwrap();
    sc.barman(
        "barman-cloud-backup-delete",
        &["--retention-policy", "REDUNDANCY 1", dest, server],
    );
    let after = sc.list(&wal_prefix).await;
    // Drop the stand-in backup, so that copying the layout again restores it.
    let fake = format!("{dest_prefix}{server}/base/{later}/");
    super::hostile::delete_where(&client, &sc.bucket, &fake, |_| true).await;
    let after: std::collections::BTreeSet<&str> = after.iter().map(|(k, _)| k.as_str()).collect();
    before
        .into_iter()
        .filter(|(k, _)| !after.contains(k.as_str()))
        .collect()
}

//! How much memory the walk keeps per WAL directory between cycles: builds
//! the `DirCache` a cold walk of one server with `DIRS` full directories of
//! 256 segments (16 MiB segments, 4 GiB a directory) leaves, through the
//! real accounting (`WalTotals::add`, `combine`), and prints the resident
//! memory it took, per directory. Linux only (reads `/proc/self/status`).
//!
//! usage: cargo run --release --example dir_memory [DIRS]   (default 39,063: 10,000,000 segments)

use std::collections::BTreeMap;

use barman_cloud_exporter::catalog::WalTotals;
use barman_cloud_exporter::catalog::listing::{combine, plan_wal_listing};
use barman_cloud_exporter::catalog::retention::WalRules;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let dirs: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(39_063);
    let rules = WalRules::default();
    let names: Vec<String> = (0..dirs).map(|d| format!("00000001{d:08X}")).collect();
    eprintln!("size_of WalTotals = {}", std::mem::size_of::<WalTotals>());
    let before = rss_kib();
    let mut listed = BTreeMap::new();
    for name in &names {
        let mut t = WalTotals::default();
        for s in 0..256u32 {
            let seg = format!("{name}{s:08X}");
            t.add(&format!("{name}/{seg}"), 16 << 20, Some(1.7e9 + f64::from(s)), &rules);
        }
        listed.insert(name.clone(), std::sync::Arc::new(t));
    }
    let plan = plan_wal_listing(None, &names, &rules, 1.7e9, 86_400.0);
    let mut server = WalTotals::default();
    let combined = combine(None, plan, names, listed, &rules, 1.7e9, &mut server);
    let after = rss_kib();
    let per_dir = (after.saturating_sub(before) * 1024) as f64 / f64::from(dirs.max(1));
    println!(
        "{dirs} directories ({} segments): {:.1} MiB resident for the cache, {per_dir:.0} bytes per directory",
        server.by_kind[0].objects,
        (after.saturating_sub(before)) as f64 / 1024.0
    );
    assert_eq!(combined.cache.dirs.len(), dirs as usize);
}

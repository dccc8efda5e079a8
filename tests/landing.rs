//! The landing page as a person's browser sees it: the real scenario's page
//! rendered by headless Chromium (Debian `chromium`, `--dump-dom`), checked
//! against `/api/status`: one timeline picture per server prefix, one mark per
//! backup directory with its id and status, and the recovery window drawn for
//! every server that has one.
//!
//! With `BCE_SCREENSHOT=path.png` the test also writes a screenshot of the
//! page (how `docs/img/landing.png` is made: run it right after
//! `scripts/scenario.sh up`, so the scenario's events spread over the axis).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Exporter, Scenario};

/// Runs headless Chromium on `url` with a fresh profile in `profile`, with
/// `extra` flags (`--dump-dom` or `--screenshot=...`); its standard output.
/// Nothing but `url` (on 127.0.0.1) is fetched: no first-run, sync, update
/// or QUIC traffic.
fn chromium(url: &str, profile: &Path, extra: &[&str]) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1560",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium (Debian chromium) on PATH; scripts/install-deps.sh installs it");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of attribute `name` in `tag`, a start tag after its name
/// (` class="x" ...`; as Chromium
/// serialises it: double quotes, `&amp;`, `&quot;`, `&lt;`, `&gt;` escaped).
fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let value = &tag[start..start + tag[start..].find('"')?];
    Some(
        value
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// One timeline picture of the rendered DOM.
#[derive(Debug, Default)]
struct Picture {
    /// `(data-id, data-status)` of each `g.backup`, in document order.
    backups: Vec<(String, String)>,
    /// Number of `g.window` (the recovery window bar).
    windows: usize,
}

/// Every `svg.timeline` of `dom` by its `data-server`, in document order.
fn pictures(dom: &str) -> Vec<(String, Picture)> {
    let mut out = Vec::new();
    for chunk in dom.split("<svg").skip(1) {
        let tag = &chunk[..chunk.find('>').unwrap()];
        if attr(tag, "class").as_deref() != Some("timeline") {
            continue;
        }
        let body = &chunk[..chunk.find("</svg>").unwrap()];
        let mut p = Picture::default();
        for g in body.split("<g").skip(1) {
            let gtag = &g[..g.find('>').unwrap()];
            match attr(gtag, "class").as_deref() {
                Some("backup") => p
                    .backups
                    .push((attr(gtag, "data-id").unwrap(), attr(gtag, "data-status").unwrap())),
                Some("window") => p.windows += 1,
                _ => {}
            }
        }
        out.push((attr(tag, "data-server").unwrap(), p));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn chromium_shows_one_timeline_per_server_and_one_mark_per_backup() {
    let sc = Scenario::load();
    let exporter = Exporter::start(|dir| sc.config_yaml(dir, "1h", "1m", true)).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, status) = exporter.get("/api/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{}/", exporter.base);
    let dom = tokio::task::spawn_blocking({
        let (url, profile) = (url.clone(), profile.path().to_path_buf());
        move || chromium(&url, &profile, &["--dump-dom"])
    })
    .await
    .unwrap();
    if let Some(path) = std::env::var_os("BCE_SCREENSHOT") {
        let shot = format!("--screenshot={}", Path::new(&path).display());
        chromium(&url, profile.path(), &[&shot, "--hide-scrollbars"]);
    }
    exporter.stop().await;

    // What the page must show, from the JSON status.
    let mut want: BTreeMap<String, (Vec<(String, String)>, bool)> = BTreeMap::new();
    for target in status["targets"].as_array().unwrap() {
        for server in target["s3"]["data"]["servers"].as_array().unwrap() {
            let backups = common::backup_statuses(server).into_iter().collect();
            let window = !server["continuity"]["recovery_window_end"].is_null();
            let name = server["name"].as_str().unwrap().to_string();
            assert!(
                want.insert(name, (backups, window)).is_none(),
                "one target in the scenario"
            );
        }
    }
    assert!(want.len() >= 2, "the scenario has several servers: {want:?}");
    assert!(want.values().any(|(b, _)| b.len() >= 2));

    if let Some(path) = std::env::var_os("BCE_DUMP_DOM") {
        std::fs::write(path, &dom).unwrap();
    }
    let got = pictures(&dom);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names.iter().copied().collect::<std::collections::BTreeSet<_>>(),
        want.keys().map(String::as_str).collect(),
        "one svg.timeline per server"
    );
    assert_eq!(names.len(), want.len(), "no server drawn twice: {names:?}");
    for (server, picture) in &got {
        let (backups, window) = &want[server];
        let mut drawn = picture.backups.clone();
        let mut listed = backups.clone();
        drawn.sort();
        listed.sort();
        assert_eq!(drawn, listed, "{server}: one g.backup per backup, with its status");
        assert_eq!(
            picture.windows,
            usize::from(*window),
            "{server}: the recovery window bar"
        );
    }
}

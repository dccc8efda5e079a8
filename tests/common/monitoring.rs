//! Prometheus and Alertmanager for the alerting test: processes stopped by
//! PID on drop, and the queries that read their alerts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One alert as the test compares them: name, severity, target, server.
pub type AlertKey = (String, String, String, String);

/// A process started by this test, stopped by its PID on drop (SIGTERM, then
/// SIGKILL after 5 s), so nothing outlives a failing assertion.
pub struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn start(name: &'static str, bin: &str, args: &[String], log: PathBuf) -> Self {
        assert!(
            Path::new(bin).exists(),
            "{bin} not found: run scripts/install-deps.sh (Debian prometheus and prometheus-alertmanager)"
        );
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e}"));
        Self { name, child, log }
    }

    /// The last lines of the process's output, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "---- {} log ----\n{}",
            self.name,
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

pub async fn get_json(url: &str) -> serde_json::Value {
    let resp = reqwest::get(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

pub async fn wait_http_ok(url: &str, within: Duration, daemon: &Daemon) {
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{url} not ready within {within:?}\n{}",
            daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn key_of(labels: &serde_json::Value) -> AlertKey {
    let l = |k: &str| labels[k].as_str().unwrap_or("").to_string();
    (l("alertname"), l("severity"), l("target"), l("server"))
}

/// Alerts Prometheus holds now (pending or firing): key → state.
pub async fn prometheus_alerts(prom: &str) -> BTreeMap<AlertKey, String> {
    let v = get_json(&format!("{prom}/api/v1/alerts")).await;
    v["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (key_of(&a["labels"]), a["state"].as_str().unwrap().to_string()))
        .collect()
}

/// Active alerts Alertmanager received: key → the whole alert.
pub async fn alertmanager_alerts(am: &str) -> BTreeMap<AlertKey, serde_json::Value> {
    let v = get_json(&format!("{am}/api/v2/alerts")).await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| (key_of(&a["labels"]), a.clone()))
        .collect()
}

/// Polls Alertmanager until its alert keys equal `want` and Prometheus has
/// nothing pending or firing outside `want`; then checks that this holds for
/// a further 15 s (nothing else was on its way). Returns
/// Alertmanager's alerts.
pub async fn settle_on(
    prom: &str,
    am: &str,
    want: &BTreeSet<AlertKey>,
    within: Duration,
    daemons: &[&Daemon],
) -> BTreeMap<AlertKey, serde_json::Value> {
    let logs = || daemons.iter().map(|d| d.log_tail()).collect::<Vec<_>>().join("\n");
    let start = Instant::now();
    let mut stable_since: Option<Instant> = None;
    loop {
        let p = prometheus_alerts(prom).await;
        let a = alertmanager_alerts(am).await;
        let p_keys: BTreeSet<AlertKey> = p.keys().cloned().collect();
        let a_keys: BTreeSet<AlertKey> = a.keys().cloned().collect();
        if &a_keys == want && &p_keys == want && p.values().all(|s| s == "firing") {
            let since = *stable_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(15) {
                return a;
            }
        } else {
            stable_since = None;
        }
        assert!(
            start.elapsed() < within,
            "alerts did not settle on the expected set within {within:?}\nwant: {want:#?}\nPrometheus: {p:#?}\n\
             Alertmanager: {a_keys:#?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

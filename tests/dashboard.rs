//! The Grafana dashboard (`dashboards/barman-cloud-exporter.json`) against a
//! real run: every query parses as PromQL (`promql-parser`) and selects only
//! metrics the exporter really emits, taken from the samples of a scrape of
//! the exporter running against the real scenario (S3 walk, PostgreSQL,
//! FAILED/STARTED backups, a target whose collection fails), not from a list.
//! Also the structural rules: the `DS_PROMETHEUS` datasource variable on every
//! panel, target and variable query, the fixed uid, the `cloudnativepg` tag,
//! the target/namespace/cluster/server variables applied to every selector.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Exporter, Scenario, samples, value};
use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;

const DASHBOARD: &str = "dashboards/barman-cloud-exporter.json";
const DATASOURCE_UID: &str = "${DS_PROMETHEUS}";
/// Series Prometheus adds itself; the only names allowed that the exporter does not emit.
const PROMETHEUS_OWN: &[&str] = &["up"];

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DASHBOARD);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// Replaces Grafana's variables by plausible values, as Grafana would before
/// sending the query (multi-value variables become a regex alternation).
fn substitute(expr: &str) -> String {
    let mut s = expr.to_string();
    for (var, v) in [
        ("${DS_PROMETHEUS}", "prometheus"),
        ("$__rate_interval", "4m"),
        ("$__interval", "1m"),
        ("$__range", "1d"),
        ("$namespace", "(demo|kilobase)"),
        ("$cluster", "pg-main"),
        ("$server", ".*"),
        ("$target", "(scenario|states)"),
        ("$job", "barman-cloud-exporter"),
    ] {
        s = s.replace(var, v);
    }
    assert!(!s.contains('$'), "unknown Grafana variable left in {expr:?} → {s:?}");
    s
}

/// One vector selector of a query: the metric name and its label matchers (name → op, value).
#[derive(Debug)]
struct Selector {
    name: String,
    matchers: BTreeMap<String, (String, String)>,
}

#[derive(Default)]
struct Selectors(Vec<Selector>);

impl Selectors {
    fn add(&mut self, vs: &VectorSelector) {
        let mut matchers = BTreeMap::new();
        let mut name = vs.name.clone();
        for m in &vs.matchers.matchers {
            if m.name == "__name__" {
                assert!(matches!(m.op, MatchOp::Equal), "__name__ must be matched exactly: {vs}");
                name = Some(m.value.clone());
            } else {
                let op = match m.op {
                    MatchOp::Equal => "=",
                    MatchOp::NotEqual => "!=",
                    MatchOp::Re(_) => "=~",
                    MatchOp::NotRe(_) => "!~",
                };
                matchers.insert(m.name.clone(), (op.to_string(), m.value.clone()));
            }
        }
        assert!(vs.matchers.or_matchers.is_empty(), "`or` matchers are not used: {vs}");
        self.0.push(Selector {
            name: name.unwrap_or_else(|| panic!("selector without a metric name: {vs}")),
            matchers,
        });
    }
}

impl ExprVisitor for Selectors {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        match expr {
            Expr::VectorSelector(vs) => self.add(vs),
            Expr::MatrixSelector(ms) => self.add(&ms.vs),
            _ => {}
        }
        Ok(true)
    }
}

/// Parses a (substituted) query and returns its selectors; panics with the parser's message.
fn selectors(context: &str, expr: &str) -> Vec<Selector> {
    let query = substitute(expr);
    let ast = parser::parse(&query).unwrap_or_else(|e| panic!("{context}: {query:?} does not parse: {e}"));
    let mut v = Selectors::default();
    walk_expr(&mut v, &ast).unwrap();
    assert!(!v.0.is_empty(), "{context}: {query:?} selects no metric");
    v.0
}

/// Every query of the dashboard: (where, PromQL, from a variable). The
/// `label_values(selector, label)` variable queries contribute their selector.
fn queries(d: &Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for p in panels(d) {
        let title = p["title"].as_str().unwrap_or("?");
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title:?}: target without expr"));
            out.push((format!("panel {title:?} {}", t["refId"]), expr.to_string(), false));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"].as_str().expect("string variable query");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.rsplit_once(','))
            .map(|(sel, _label)| sel.trim())
            .unwrap_or_else(|| {
                panic!(
                    "variable {}: expected label_values(selector, label), got {q:?}",
                    v["name"]
                )
            });
        out.push((format!("variable {}", v["name"]), inner.to_string(), true));
    }
    out
}

#[test]
fn structure_datasource_uid_tag_and_variables() {
    let d = dashboard();
    assert_eq!(d["uid"], "barman-cloud-exporter", "fixed uid");
    let tags: Vec<&str> = d["tags"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(tags.contains(&"cloudnativepg"), "tag cloudnativepg: {tags:?}");

    let vars: BTreeMap<&str, &Value> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    let ds = vars.get("DS_PROMETHEUS").expect("variable DS_PROMETHEUS");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    for name in ["target", "namespace", "cluster", "server"] {
        let v = vars.get(name).unwrap_or_else(|| panic!("variable {name}"));
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], DATASOURCE_UID, "variable {name}");
        // "All" must also match series without the label (a target without static labels).
        assert_eq!(v["allValue"], ".*", "variable {name}");
        let q = v["query"].as_str().unwrap();
        assert!(
            q.ends_with(&format!(", {name})")),
            "variable {name} lists label {name}: {q}"
        );
    }

    let mut ids = BTreeSet::new();
    let mut with_targets = 0;
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(p["id"].as_u64().expect("numeric id")),
            "duplicate id in {title:?}"
        );
        assert!(!title.is_empty(), "panel {} has a title", p["id"]);
        if p["type"] == "row" {
            assert!(p.get("targets").is_none(), "row {title:?} has no queries");
            continue;
        }
        assert_eq!(p["datasource"]["uid"], DATASOURCE_UID, "panel {title:?} datasource");
        assert_eq!(p["datasource"]["type"], "prometheus", "panel {title:?}");
        assert!(
            p["description"].as_str().is_some_and(|s| s.len() > 20),
            "panel {title:?} explains itself"
        );
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("panel {title:?} has targets"));
        assert!(!targets.is_empty(), "panel {title:?} has targets");
        for t in targets {
            assert_eq!(
                t["datasource"]["uid"], DATASOURCE_UID,
                "panel {title:?} target {}",
                t["refId"]
            );
        }
        with_targets += 1;
    }
    assert!(with_targets >= 20, "the dashboard has its panels: {with_targets}");
    // No panel overlaps another on the 24-column grid.
    let mut cells = BTreeSet::new();
    for p in panels(&d) {
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "panel {:?} fits the grid", p["title"]);
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "panel {:?} overlaps another at {cx},{cy}",
                    p["title"]
                );
            }
        }
    }
    // The DBA's first questions come first: the top row answers "can I restore?".
    let first_row = panels(&d)
        .into_iter()
        .find(|p| p["type"] == "row")
        .and_then(|p| p["title"].as_str());
    assert_eq!(first_row, Some("Can I restore?"));
}

/// Samples of a scrape, waiting until every collector ran and the scenario's
/// server has its continuity figures.
async fn populated_scrape(exporter: &Exporter, server: &str) -> String {
    exporter.wait_ready(Duration::from_secs(90)).await;
    let start = Instant::now();
    loop {
        let (status, body) = exporter.get("/metrics").await;
        assert_eq!(status, 200);
        let s = samples(&body);
        let scenario = [("target", "scenario")];
        let ok = value(&s, "barman_cloud_collector_up", &[scenario[0], ("collector", "s3")]) == Some(1.0)
            && value(
                &s,
                "barman_cloud_collector_up",
                &[scenario[0], ("collector", "postgres")],
            ) == Some(1.0)
            && value(&s, "barman_cloud_wal_missing_segments", &[("server", server)]).is_some()
            && s.iter()
                .any(|x| x.name == "barman_cloud_collector_errors_total" && x.value > 0.0);
        if ok {
            return body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no populated scrape within 90 s:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The FAILED/STARTED layout of `scenario.sh extra`: (destination, server).
fn states_layout(sc: &Scenario) -> (String, String) {
    let path = sc.dir.join("extra.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/test.sh runs `scenario.sh extra`)", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    (
        v["states"]["destination_path"].as_str().unwrap().to_string(),
        v["states"]["server"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn every_query_parses_and_selects_only_emitted_metrics() {
    let sc = Scenario::load();
    let (states_dest, states_server) = states_layout(&sc);
    let exporter = Exporter::start(|dir| {
        let base = sc.config_yaml(dir, "1h", "1m", true);
        let (head, target) = base.split_at(base.find("  - name:").unwrap());
        let target_no_pg = &target[..target.find("    postgres:").unwrap()];
        let denied = dir.join("denied_secret");
        std::fs::write(&denied, "not-the-secret").unwrap();
        format!(
            "{head}{target}    retention_policy: 3d\n{}{}",
            // The FAILED/STARTED layout: last failure, stuck backups.
            target_no_pg
                .replace("name: scenario", "name: states")
                .replace(&sc.destination_path, &states_dest)
                .replace("servers: [\"pg-main\"]", &format!("servers: [\"{states_server}\"]")),
            // Wrong secret: the collection fails, errors_total gets samples.
            target_no_pg.replace("name: scenario", "name: denied").replace(
                &dir.join("secret_access_key").display().to_string(),
                &denied.display().to_string()
            )
        )
    })
    .await;
    let om = populated_scrape(&exporter, &sc.postgres.server).await;
    exporter.stop().await;

    // Names with at least one sample, and the labels each carries.
    let mut emitted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in samples(&om) {
        emitted.entry(s.name).or_default().extend(s.labels.into_keys());
    }
    assert!(emitted.contains_key("barman_cloud_exporter_build_info"), "{om}");

    let d = dashboard();
    let mut used = BTreeSet::new();
    let mut checked = 0;
    for (place, expr, is_variable) in queries(&d) {
        for sel in selectors(&place, &expr) {
            checked += 1;
            used.insert(sel.name.clone());
            if PROMETHEUS_OWN.contains(&sel.name.as_str()) {
                assert_eq!(
                    sel.matchers.get("job").map(|(op, v)| (op.as_str(), v.as_str())),
                    Some(("=~", "barman-cloud-exporter")),
                    "{place}: `{}` is filtered by $job",
                    sel.name
                );
                continue;
            }
            let labels = emitted.get(&sel.name).unwrap_or_else(|| {
                panic!(
                    "{place}: `{}` is not emitted by the exporter (emitted: {:?})",
                    sel.name,
                    emitted.keys().collect::<Vec<_>>()
                )
            });
            for m in sel.matchers.keys().filter(|m| *m != "job") {
                assert!(labels.contains(m), "{place}: `{}` has no label {m}", sel.name);
            }
            // Every selector follows $job (added by Prometheus); every per-target
            // series follows the target variables, per-server ones $server too.
            // (Variable queries are the ones that define them.)
            let vars = ["job", "target", "namespace", "cluster", "server"];
            for var in vars
                .into_iter()
                .filter(|v| !is_variable && (*v == "job" || labels.contains(*v)))
            {
                let m = sel.matchers.get(var).map(|(op, v)| (op.as_str(), v.as_str()));
                let want = substitute(&format!("${var}"));
                assert_eq!(
                    m,
                    Some(("=~", want.as_str())),
                    "{place}: `{}` is filtered by {var}=~\"${var}\": {expr}",
                    sel.name
                );
            }
        }
    }
    assert!(checked > 40, "{checked} selectors checked");
    // namespace/cluster are the targets' static labels: the scrape carries them.
    for l in ["namespace", "cluster"] {
        assert!(
            emitted["barman_cloud_backups"].contains(l),
            "static label {l} on the series"
        );
    }
    // The dashboard covers what a DBA reads first (recovery window, continuity, archiver).
    for name in [
        "barman_cloud_backup_last_success_timestamp_seconds",
        "barman_cloud_first_recoverability_point_timestamp_seconds",
        "barman_cloud_recovery_window_end_timestamp_seconds",
        "barman_cloud_backups_restorable",
        "barman_cloud_wal_missing_segments",
        "barman_cloud_pg_archiver_last_archived_wal_in_storage",
        "barman_cloud_wal_before_first_backup_bytes",
        "barman_cloud_retention_reclaimable_bytes",
        "barman_cloud_orphan_bytes",
        "barman_cloud_backup_interval_seconds",
        "barman_cloud_collector_up",
        "barman_cloud_s3_requests_total",
    ] {
        assert!(used.contains(name), "the dashboard shows {name}");
    }
    eprintln!(
        "dashboard: {checked} selectors over {} metric names checked against {} emitted names",
        used.len(),
        emitted.len()
    );
}

//! Label escaping end to end: a server prefix whose name holds `"`, spaces,
//! `%`, `+`, unicode and a newline, on the real stack (a copy of the
//! scenario's `pg-main` in SeaweedFS, made by the test). SeaweedFS turns a
//! `\` in a key into `/` (a deeper prefix), so the backslash is carried by a
//! static label value of the target instead (with `"` and a newline too). The
//! whole exposition must pass `promtool check metrics` (Debian `prometheus`,
//! the real parser) and the series must carry the exact values.

mod common;

use std::time::Duration;

use common::{Exporter, Scenario, copy_prefix, exporter_yaml, promtool_check};

/// The awkward server name.
const SERVER: &str = "pg \"main\" 100% +1 ünï✓\nnext";
/// The awkward static label value (YAML-escaped in the configuration).
const NOTE: &str = "C:\\dir \"q\"\nline2";

/// The label values of the samples of `name` in a text exposition, unescaped
/// per the exposition format (`\\`, `\"`, `\n`), by label name.
fn label_values(text: &str, name: &str, label: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let mut chars = rest.chars();
        loop {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert_eq!(chars.next(), Some('"'), "{line}");
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c @ ('\\' | '"')) => value.push(c),
                        other => panic!("bad escape {other:?} in {line}"),
                    },
                    c => value.push(c),
                }
            }
            if key == label {
                out.push(value);
            }
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                other => panic!("unexpected {other:?} in {line}"),
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn an_awkward_server_name_is_escaped_and_parses() {
    let sc = Scenario::load();
    let root = "copies/label-escaping-2/";
    copy_prefix(
        &sc,
        &sc.server_prefix("pg-main"),
        &format!("{root}{SERVER}/"),
        |_| false,
        |_, t| t,
    )
    .await;
    let dest = format!("s3://{}/{}", sc.bucket, root.trim_end_matches('/'));
    let exporter = Exporter::start(|dir| {
        let note = serde_json::to_string(NOTE).unwrap(); // a JSON string is a YAML double-quoted scalar
        exporter_yaml(&sc, dir, &dest, "").replace(
            "labels: {namespace: demo,",
            &format!("labels: {{note: {note}, namespace: demo,"),
        )
    })
    .await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let text = exporter.get_text().await;
    let (om_status, om) = exporter.get("/metrics").await;
    exporter.stop().await;
    assert_eq!(om_status, 200);

    let (ok, msg) = promtool_check(&text);
    assert!(ok, "promtool check metrics: {msg}\n{text}");
    for exposition in [&text, &om] {
        assert_eq!(
            label_values(exposition, "barman_cloud_base_objects", "server"),
            [SERVER],
            "{exposition}"
        );
        let notes = label_values(exposition, "barman_cloud_storage_objects", "note");
        assert_eq!(notes, [NOTE], "{exposition}");
        let backups = label_values(exposition, "barman_cloud_backups", "server");
        assert!(backups.len() == 5 && backups.iter().all(|s| s == SERVER), "{backups:?}");
    }
    assert!(
        om.contains(r#"server="pg \"main\" 100% +1 ünï✓\nnext""#) && om.contains(r#"note="C:\\dir \"q\"\nline2""#),
        "escaped as the format says"
    );
    assert!(
        common::value(
            &common::samples(&om),
            "barman_cloud_collector_up",
            &[("collector", "s3")]
        ) == Some(1.0)
    );
}

//! An invalid configuration for each field: `check-config` and the daemon's
//! start (the real binary) fail with exit code 2 and an error naming the key.
//! No services needed.

mod common;

use common::hostile::run_bin;

#[test]
fn invalid_config_fails_check_config_and_daemon_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good_target = "{name: a, destination_path: 's3://b/p'}";
    let t = |extra: &str| format!("targets: [{{name: a, destination_path: 's3://b', {extra}}}]");
    let g = |top: &str| format!("{top}\ntargets: [{good_target}]");
    // (what is wrong, YAML, text the error must contain)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "interval zero",
            g("interval: 0s"),
            "interval: must be greater than zero",
        ),
        (
            "interval text",
            g("interval: soon"),
            r#"invalid duration "soon": expected number at 0 (use e.g. 30s, 5m, 1h) for key "default.interval""#,
        ),
        (
            "interval negative",
            g("interval: -5"),
            r#"invalid duration -5: must not be negative (use e.g. 30s, 5m, 1h) for key "default.interval""#,
        ),
        ("timeout zero", g("timeout: 0"), "timeout: must be greater than zero"),
        (
            "timeout text",
            g("timeout: 2 minutes please"),
            r#"invalid duration "2 minutes please": expected number at 10 (use e.g. 30s, 5m, 1h) for key "default.timeout""#,
        ),
        (
            "timeout not a duration",
            g("timeout: 1.5"),
            r#"expected a duration such as 30s, 5m or 1h, or a whole number of seconds for key "default.timeout""#,
        ),
        (
            "full_walk_interval text",
            g("full_walk_interval: daily"),
            r#"invalid duration "daily": expected number at 0 (use e.g. 30s, 5m, 1h) for key "default.full_walk_interval""#,
        ),
        (
            "full_walk_interval negative",
            g("full_walk_interval: -1"),
            r#"invalid duration -1: must not be negative (use e.g. 30s, 5m, 1h) for key "default.full_walk_interval""#,
        ),
        (
            "list_concurrency zero",
            g("list_concurrency: 0"),
            "list_concurrency: must be between 1 and 256, got 0",
        ),
        (
            "list_concurrency too high",
            g("list_concurrency: 300"),
            "list_concurrency: must be between 1 and 256, got 300",
        ),
        (
            "list_concurrency text",
            g("list_concurrency: many"),
            r#"invalid type: found string "many", expected usize for key "default.list_concurrency""#,
        ),
        (
            "ca_file missing",
            t("ca_file: /nonexistent/ca.pem"),
            "targets[0].ca_file: /nonexistent/ca.pem",
        ),
        ("no targets key", "interval: 1m\n".into(), "missing field `targets`"),
        (
            "empty targets",
            "targets: []\n".into(),
            "targets: at least one target is required",
        ),
        (
            "targets not a list",
            "targets: {name: a}\n".into(),
            r#"invalid type: found map, expected a sequence for key "default.targets""#,
        ),
        (
            "unknown top-level key",
            g("intervall: 1m"),
            r#"unknown field: found `intervall`"#,
        ),
        (
            "unknown target key",
            t("bucket: x"),
            r#"for key "default.targets.0.bucket""#,
        ),
        (
            "missing name",
            "targets: [{destination_path: 's3://b'}]".into(),
            r#"missing field `name` for key "default.targets.0""#,
        ),
        (
            "empty name",
            "targets: [{name: ' ', destination_path: 's3://b'}]".into(),
            "targets[0].name: must not be empty",
        ),
        (
            "duplicate name",
            format!("targets: [{good_target}, {good_target}]"),
            r#"targets[1].name: duplicate target name "a""#,
        ),
        (
            "missing destination",
            "targets: [{name: a}]".into(),
            r#"missing field `destination_path` for key "default.targets.0""#,
        ),
        (
            "destination of no provider",
            "targets: [{name: a, destination_path: 'ftp://b/p'}]".into(),
            r#"targets[0].destination_path: "ftp://b/p": must start with s3://, gs://, or http(s):// (Azure Blob Storage)"#,
        ),
        (
            "destination without bucket",
            "targets: [{name: a, destination_path: 's3://'}]".into(),
            r#"targets[0].destination_path: "s3://": the bucket name is empty or holds a space"#,
        ),
        (
            "azure destination without container",
            "targets: [{name: a, destination_path: 'http://b/p'}]".into(),
            r#"targets[0].destination_path: "http://b/p": an Azure URL needs a container"#,
        ),
        (
            "s3 key on an azure target",
            "targets: [{name: a, destination_path: 'https://acct.blob.core.windows.net/c/p', access_key_id_file: /k, secret_access_key_file: /s}]".into(),
            "targets[0].access_key_id_file: not a key of Azure Blob Storage targets",
        ),
        (
            "azure key on a gcs target",
            "targets: [{name: a, destination_path: 'gs://b/p', azure_sas_token_file: /t}]".into(),
            "targets[0].azure_sas_token_file: not a key of GCS (gs://) targets",
        ),
        (
            "google key on an s3 target",
            "targets: [{name: a, destination_path: 's3://b/p', google_application_credentials_file: /t}]".into(),
            "targets[0].google_application_credentials_file: not a key of S3 (s3://) targets",
        ),
        (
            "two azure secrets",
            "targets: [{name: a, destination_path: 'https://acct.blob.core.windows.net/c', azure_storage_key_file: /k, azure_sas_token_file: /t}]".into(),
            "targets[0]: azure_connection_string_file, azure_storage_key_file and azure_sas_token_file are mutually exclusive",
        ),
        (
            "azure account not the URL's",
            "targets: [{name: a, destination_path: 'https://acct.blob.core.windows.net/c', azure_storage_account: other, azure_storage_key_file: /k}]".into(),
            r#"targets[0].azure_storage_account: "other" is not the account of destination_path ("acct")"#,
        ),
        (
            "endpoint_url on an azure target",
            "targets: [{name: a, destination_path: 'https://acct.blob.core.windows.net/c', endpoint_url: 'https://h'}]".into(),
            "targets[0].endpoint_url: not a key of Azure Blob Storage targets",
        ),
        (
            "bad label name",
            t("labels: {'bad-name': x}"),
            "targets[0].labels.bad-name: not a valid Prometheus label name",
        ),
        (
            "reserved label",
            t("labels: {server: x}"),
            "targets[0].labels.server: reserved",
        ),
        (
            "labels not a map",
            t("labels: [x]"),
            r#"expected a map for key "default.targets.0.labels""#,
        ),
        (
            "endpoint scheme",
            t("endpoint_url: 'ftp://h'"),
            r#"targets[0].endpoint_url: "ftp://h" must start with http:// or https://"#,
        ),
        (
            "region not a string",
            t("region: [eu]"),
            r#"expected a string for key "default.targets.0.region""#,
        ),
        (
            "force_path_style not a bool",
            t("force_path_style: maybe"),
            r#"found string "maybe", expected a boolean for key "default.targets.0.force_path_style""#,
        ),
        (
            "servers with a slash",
            t("servers: ['a/b']"),
            "targets[0].servers: a serverName must be non-empty and contain no '/'",
        ),
        (
            "servers empty name",
            t("servers: ['']"),
            "targets[0].servers: a serverName must be non-empty and contain no '/'",
        ),
        (
            "access key without secret",
            t("access_key_id_file: /k"),
            "targets[0]: access_key_id_file and secret_access_key_file must be given together",
        ),
        (
            "secret without access key",
            t("secret_access_key_file: /s"),
            "targets[0]: access_key_id_file and secret_access_key_file must be given together",
        ),
        (
            "session token not a path",
            t("session_token_file: {x: 1}"),
            r#"expected path string for key "default.targets.0.session_token_file""#,
        ),
        (
            "retention policy",
            t("retention_policy: 3 days"),
            r#"targets[0].retention_policy: "3 days" must match ^[1-9][0-9]*[dwm]$"#,
        ),
        (
            "orphan_after",
            t("orphan_after: forever"),
            r#"invalid duration "forever": expected number at 0 (use e.g. 30s, 5m, 1h) for key "default.targets.0.orphan_after""#,
        ),
        (
            "stuck_after",
            t("stuck_after: '1 fortnight'"),
            r#"unknown time unit "fortnight""#,
        ),
        (
            "postgres without url",
            t("postgres: {server: x}"),
            "targets[0].postgres: one of url or url_file is required",
        ),
        (
            "postgres url and url_file",
            t("postgres: {url: 'postgresql://h/db', url_file: /u}"),
            "targets[0].postgres: url and url_file are mutually exclusive",
        ),
        (
            "postgres bad sslmode",
            t("postgres: {url: 'postgresql://h/db?sslmode=bogus'}"),
            r#"targets[0].postgres.url: invalid sslmode "bogus""#,
        ),
        (
            "postgres unknown key",
            t("postgres: {host: h}"),
            r#"unknown field: found `host`, expected `one of `url`, `url_file`, `server`` for key "default.targets.0.postgres.host""#,
        ),
        (
            "yaml syntax",
            "targets: [{name: a,\n  - ]".into(),
            "did not find expected node content at line 2 column 3",
        ),
        (
            "not a mapping",
            "- just\n- a list\n".into(),
            "invalid type: sequence, expected a map",
        ),
    ];
    let mut failures = Vec::new();
    for (i, (what, yaml, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let p = path.to_str().unwrap();
        let (code, out, err) = run_bin(&["--config.file", p, "check-config"], &[]);
        if code == 0 || !err.contains(needle) || !out.is_empty() {
            failures.push(format!(
                "check-config, {what}: exit {code}, stdout {out:?}, stderr {err:?}"
            ));
        }
        // The daemon refuses to start with the same message, before listening.
        let (code, _, err) = run_bin(&["--config.file", p, "--web.listen-address", "127.0.0.1:0"], &[]);
        if code == 0 || !err.contains(needle) {
            failures.push(format!("daemon, {what}: exit {code}, stderr {err:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Environment overrides are validated the same way and named.
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, format!("targets: [{good_target}]\n")).unwrap();
    let g = good.to_str().unwrap();
    let (code, out, err) = run_bin(&["--config.file", g, "check-config"], &[]);
    assert_eq!(
        (code, out.lines().next().unwrap_or_default()),
        (0, format!("{g}: valid, 1 target(s)").as_str()),
        "{err}"
    );
    assert_eq!(out.lines().nth(1), Some("  target \"a\": s3 s3://b/p"), "{out}");

    // check-config names each target's provider.
    let three = dir.path().join("three.yaml");
    std::fs::write(
        &three,
        "targets:\n  - {name: s, destination_path: 's3://b/p'}\n  - {name: az, destination_path: 'https://acct.blob.core.windows.net/c/p?sig=SECRET'}\n  - {name: g, destination_path: 'gs://b/p'}\n",
    )
    .unwrap();
    let (code, out, err) = run_bin(&["--config.file", three.to_str().unwrap(), "check-config"], &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "  target \"s\": s3 s3://b/p",
            "  target \"az\": azure https://acct.blob.core.windows.net/c/p",
            "  target \"g\": gcs gs://b/p",
        ],
        "no query (a SAS) is echoed"
    );
    let (code, _, err) = run_bin(
        &["--config.file", g, "check-config"],
        &[("BARMAN_CLOUD_EXPORTER_INTERVAL", "bogus")],
    );
    // figment names the variable: key "INTERVAL" in `BARMAN_CLOUD_EXPORTER_` environment variable(s).
    assert!(
        code != 0 && err.contains("\"INTERVAL\"") && err.contains("BARMAN_CLOUD_EXPORTER_") && err.contains("bogus"),
        "{err}"
    );
    // A missing file and a directory instead of a file.
    for bad in ["/nonexistent/config.yaml", dir.path().to_str().unwrap()] {
        let (code, _, err) = run_bin(&["--config.file", bad, "check-config"], &[]);
        assert!(
            code != 0 && err.contains(bad) && err.contains("not found or not a file"),
            "{err}"
        );
    }
}

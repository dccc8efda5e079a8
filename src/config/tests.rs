//! Unit tests of the parent module.

use super::*;
use figment::Jail;

const GOOD: &str = r#"
interval: 1m
timeout: 30s
targets:
  - name: kilobase
    labels: {namespace: kilobase, cluster: supabase-cluster}
    destination_path: s3://kilobase/barman/backup
    endpoint_url: https://fsn1.example-objectstorage.com
    region: us-east-1
    force_path_style: true
    servers: [kilobase-postgres-backup]
    postgres:
      url: postgresql://exporter:secret@db:5432/postgres?sslmode=require
"#;

fn load(jail: &mut Jail, yaml: &str) -> Result<Config, ConfigError> {
    jail.create_file("c.yaml", yaml).unwrap();
    Config::load(Path::new("c.yaml"))
}

#[test]
fn loads_the_documented_keys() {
    Jail::expect_with(|jail| {
        let c = load(jail, GOOD).unwrap();
        assert_eq!(c.interval, Duration::from_secs(60));
        assert_eq!(c.timeout, Duration::from_secs(30));
        let t = &c.targets[0];
        assert_eq!(t.labels["cluster"], "supabase-cluster");
        assert_eq!(
            t.bucket_and_prefix().unwrap(),
            ("kilobase".into(), "barman/backup/".into())
        );
        assert!(t.force_path_style);
        let pg = t.postgres.as_ref().unwrap();
        assert_eq!(pg.server_name(t), Some("kilobase-postgres-backup"));
        assert_eq!(format!("{:?}", pg.url), "Some(***)");
        Ok(())
    });
}

#[test]
fn env_overrides_file() {
    Jail::expect_with(|jail| {
        jail.set_env("BARMAN_CLOUD_EXPORTER_INTERVAL", "2m");
        let c = load(jail, GOOD).unwrap();
        assert_eq!(c.interval, Duration::from_secs(120));
        Ok(())
    });
}

#[test]
fn defaults_apply() {
    Jail::expect_with(|jail| {
        let c = load(jail, "targets: [{name: a, destination_path: 's3://b'}]").unwrap();
        assert_eq!((c.interval, c.timeout), (default_interval(), default_timeout()));
        assert_eq!(c.targets[0].bucket_and_prefix().unwrap(), ("b".into(), String::new()));
        Ok(())
    });
}

#[test]
fn errors_name_the_key() {
    Jail::expect_with(|jail| {
        let e = load(jail, "intervall: 1m\ntargets: []").unwrap_err().to_string();
        assert!(e.contains("intervall"), "{e}");
        let e = load(jail, "interval: soon\ntargets: []").unwrap_err().to_string();
        assert!(e.contains("interval") && e.contains("soon"), "{e}");
        let e = load(
            jail,
            r#"
targets:
  - {name: a, destination_path: "http://x", labels: {target: x, "bad-name": y}}
  - {name: a, destination_path: "s3://b", endpoint_url: "ftp://e", access_key_id_file: /k}
  - {name: c, destination_path: "s3://b", postgres: {server: x}}
  - {name: d, destination_path: "s3://b", postgres: {url: "postgresql://h/db?sslmode=bogus"}}
  - {name: e, destination_path: "s3://b", retention_policy: 3 days}
"#,
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "targets[0].destination_path",
            "targets[0].labels.target: reserved",
            "targets[0].labels.bad-name",
            "targets[1].name: duplicate",
            "targets[1].endpoint_url",
            "targets[1]: access_key_id_file",
            "targets[2].postgres: one of url or url_file",
            "targets[3].postgres.url",
            "targets[4].retention_policy",
        ] {
            assert!(e.contains(needle), "missing {needle:?} in {e}");
        }
        let e = load(jail, "targets: []").unwrap_err().to_string();
        assert!(e.contains("targets: at least one target"), "{e}");
        Ok(())
    });
}

#[test]
fn the_example_config_is_valid_and_sets_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml");
    let c = Config::load(&path).unwrap();
    let t = &c.targets[0];
    assert_eq!(t.retention().unwrap().window_seconds(), 3.0 * 86_400.0);
    assert_eq!(
        (t.orphan_after, t.stuck_after),
        (default_orphan_after(), default_stuck_after())
    );
    assert!(t.access_key_id_file.is_some() && t.postgres.as_ref().unwrap().url_file.is_some());
    let providers: Vec<_> = c.targets.iter().map(|t| t.provider()).collect();
    assert_eq!(
        providers,
        [Provider::S3, Provider::Azure, Provider::Gcs],
        "one target of each kind"
    );
    assert!(
        c.targets[1].azure_storage_key_file.is_some() && c.targets[2].google_application_credentials_file.is_some()
    );
}

#[test]
fn duration_errors_say_what_is_expected() {
    Jail::expect_with(|jail| {
        let t = "targets: [{name: a, destination_path: 's3://b'}]";
        let e = load(jail, &format!("interval: -5\n{t}")).unwrap_err().to_string();
        assert!(
            e.contains("invalid duration -5: must not be negative") && e.contains("interval"),
            "{e}"
        );
        let e = load(jail, &format!("timeout: 1.5\n{t}")).unwrap_err().to_string();
        assert!(
            e.contains("expected a duration such as 30s") && e.contains("timeout"),
            "{e}"
        );
        let e = load(jail, &format!("interval: [1]\n{t}")).unwrap_err().to_string();
        assert!(e.contains("expected a duration such as 30s"), "{e}");
        let c = load(jail, &format!("interval: 90\ntimeout: ' 2m '\n{t}")).unwrap();
        assert_eq!(
            (c.interval, c.timeout),
            (Duration::from_secs(90), Duration::from_secs(120))
        );
        Ok(())
    });
}

#[test]
fn missing_file_is_a_clear_error() {
    let e = Config::load(Path::new("/nonexistent/config.yaml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/config.yaml"), "{e}");
}

#[test]
fn urls_are_redacted() {
    assert_eq!(redact_url("http://a:pw@h:1/p?x#y"), "http://***@h:1/p?x#y");
    assert_eq!(redact_url("https://tok@h"), "https://***@h/");
    assert_eq!(redact_url("https://:pw@h"), "https://***@h/");
    assert_eq!(redact_url("https://h/p@q"), "https://h/p@q");
    assert_eq!(redact_url("http://u:pw@h:notaport"), "<not a URL>");
    assert_eq!(redact_url("not a url"), "<not a URL>");
}

#[test]
fn destinations_split_as_barman_urlparse_does() {
    let p = |u: &str| parse_destination(u).map(|(b, p)| format!("{b}|{p}"));
    assert_eq!(p("s3://b").as_deref(), Some("b|"));
    assert_eq!(p("s3://b/").as_deref(), Some("b|"));
    assert_eq!(p("s3://b/x/y").as_deref(), Some("b|x/y/"));
    assert_eq!(p("s3://b/x/y/").as_deref(), Some("b|x/y/"));
    assert_eq!(p("s3://b//x").as_deref(), Some("b|x/"), "lstrip(\"/\")");
    assert_eq!(p("s3://b/x//").as_deref(), Some("b|x//"), "os.path.join keeps it");
    assert_eq!(p("s3://b/x?versionId=1#f").as_deref(), Some("b|x/"), "query, fragment");
    assert_eq!(p("s3://b?x").as_deref(), Some("b|"));
    assert_eq!(
        p("s3://b/my dir/%41é").as_deref(),
        Some("b|my dir/%41é/"),
        "raw, no decoding"
    );
    assert_eq!(p("s3:///x"), None);
    assert_eq!(p("s3://my bucket/x"), None);
    assert_eq!(p("gs://b/x").as_deref(), Some("b|x/"), "GCS: strip(\"/\")");
    assert_eq!(p("ftp://b/x"), None);
}

#[test]
fn endpoint_urls_are_checked_without_echoing_secrets() {
    Jail::expect_with(|jail| {
        let e = load(
            jail,
            r#"
targets:
  - {name: a, destination_path: "s3://b", endpoint_url: "https://AKIA:s3cr3t@h"}
  - {name: b, destination_path: "s3://b", endpoint_url: "http://u:s3cr3t@h:port"}
  - {name: c, destination_path: "s3://b", endpoint_url: "ftp://h"}
"#,
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("s3cr3t") && !e.contains("AKIA"), "{e}");
        assert!(
            e.contains("targets[0].endpoint_url: \"https://***@h/\" must not carry credentials"),
            "{e}"
        );
        assert!(
            e.contains("targets[1].endpoint_url: not a valid URL (invalid port number)"),
            "{e}"
        );
        assert!(
            e.contains("targets[2].endpoint_url: \"ftp://h\" must start with http://"),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn ca_file_must_hold_a_certificate() {
    Jail::expect_with(|jail| {
        jail.create_file("not-a-ca.pem", "hello\n")?;
        let e = load(
            jail,
            r#"
targets:
  - {name: a, destination_path: "s3://b", ca_file: /nonexistent/ca.pem}
  - {name: b, destination_path: "s3://b", ca_file: not-a-ca.pem}
"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("targets[0].ca_file: /nonexistent/ca.pem"), "{e}");
        assert!(
            e.contains("targets[1].ca_file: not-a-ca.pem: no PEM certificate"),
            "{e}"
        );
        Ok(())
    });
}

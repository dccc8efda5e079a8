//! Unit tests of the parent module.

use super::*;

fn basic(user: &str, password: &str) -> HeaderValue {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {b64}")).unwrap()
}

#[test]
fn the_dummy_hash_is_a_valid_bcrypt_hash() {
    assert!(DUMMY_HASH.parse::<bcrypt::HashParts>().is_ok());
}

#[test]
fn parses_basic_credentials() {
    assert_eq!(parse_basic(&basic("u", "p:w")), Some(("u".into(), "p:w".into())));
    assert_eq!(parse_basic(&HeaderValue::from_static("Bearer x")), None);
    assert_eq!(parse_basic(&HeaderValue::from_static("Basic !!!")), None);
}

#[tokio::test]
async fn checks_and_caches_credentials() {
    let hash = bcrypt::hash("right", 4).unwrap();
    let yaml = format!("basic_auth_users:\n  alice: '{hash}'\n");
    let web = WebConfig::from_yaml(&yaml, Path::new(".")).unwrap();
    let auth = web.auth.clone().unwrap();
    assert!(!auth.clone().check(None).await);
    assert!(!auth.clone().check(Some(basic("alice", "wrong"))).await);
    assert!(!auth.clone().check(Some(basic("bob", "right"))).await);
    assert!(auth.cache.lock().unwrap().is_empty(), "failures are not cached");
    assert!(auth.clone().check(Some(basic("alice", "right"))).await);
    assert_eq!(auth.cache.lock().unwrap().len(), 1);
    assert!(auth.clone().check(Some(basic("alice", "right"))).await);
    assert_eq!(auth.cache.lock().unwrap().len(), 1);
}

#[test]
fn errors_name_the_key() {
    let e = WebConfig::from_yaml(
        "tls_server_config: {cert_file: a}\nbasic_auth_users: {u: plain}",
        Path::new("/nonexistent"),
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "tls_server_config.key_file: required",
        "tls_server_config.cert_file: /nonexistent/a",
        "basic_auth_users.u: not a bcrypt hash",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in {e}");
    }
    let e = WebConfig::from_yaml("tls_server_config: {cipher_suites: [x]}", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cipher_suites"), "{e}");
    let e = WebConfig::from_yaml(
        "tls_server_config: {cert_file: a, key_file: b, min_version: TLS10, client_auth_type: RequireAnyClientCert}",
        Path::new("/nonexistent"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("min_version: TLS10 is not supported"), "{e}");
    assert!(e.contains("client_auth_type: RequireAnyClientCert"), "{e}");
    let e = WebConfig::from_yaml(
        "tls_server_config: {cert_file: a, key_file: b, client_ca_file: c}",
        Path::new("/x"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("client_ca_file: set without a client_auth_type"), "{e}");
}

#[test]
fn an_empty_file_serves_plain_http_without_auth() {
    let web = WebConfig::from_yaml("# nothing\n", Path::new(".")).unwrap();
    assert!(web.tls().is_none() && !web.requires_auth());
    let web = WebConfig::from_yaml("basic_auth_users: {}\n", Path::new(".")).unwrap();
    assert!(!web.requires_auth());
}

//! The Azure (Azurite) and GCS (fake-gcs-server) layouts written by real
//! barman-cloud runs (`scripts/scenario.sh cloud DIR`, `DIR/cloud.json`):
//! loading them, running barman's tools and the provider's own SDK
//! (`scripts/cloudtool.py`) against them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use super::Scenario;

/// One provider's layout.
#[derive(Debug, Clone, Deserialize)]
pub struct Layout {
    /// `http://127.0.0.1:P/devstoreaccount1` (Azurite) or `http://127.0.0.1:P`.
    pub endpoint: String,
    pub destination_path: String,
    pub env_file: PathBuf,
    pub servers: Vec<String>,
    pub orphan_servers: Vec<String>,
    pub postgres: CloudPg,
    pub backups: BTreeMap<String, Vec<serde_json::Value>>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub connection_string_file: Option<PathBuf>,
    #[serde(default)]
    pub sas_token_file: Option<PathBuf>,
    #[serde(default)]
    pub account: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CloudPg {
    pub server: String,
    pub url: String,
    pub superuser_url: String,
}

/// `cloud.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Cloud {
    pub azure: Layout,
    pub gcs: Layout,
    #[serde(skip)]
    pub path: PathBuf,
}

/// Which provider, as the `cloudtool.py` argument and `provider` label say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Azure,
    Gcs,
}

impl Kind {
    pub fn tool(self) -> &'static str {
        match self {
            Self::Azure => "azure",
            Self::Gcs => "gcs",
        }
    }

    pub fn barman_provider(self) -> &'static str {
        match self {
            Self::Azure => "azure-blob-storage",
            Self::Gcs => "google-cloud-storage",
        }
    }
}

impl Cloud {
    /// `cloud.json` next to the scenario's `scenario.json`.
    pub fn load(sc: &Scenario) -> Self {
        let path = sc.dir.join("cloud.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/scenario.sh cloud DIR)", path.display()));
        let mut c: Self = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        c.path = path;
        c
    }

    pub fn layout(&self, kind: Kind) -> &Layout {
        match kind {
            Kind::Azure => &self.azure,
            Kind::Gcs => &self.gcs,
        }
    }

    /// `cloudtool.py --cloud cloud.json <provider> <args>`: stdout.
    pub fn tool(&self, sc: &Scenario, kind: Kind, args: &[&str]) -> String {
        let out = Command::new(sc.barman_bin.join("python"))
            .arg(sc.scripts_dir.join("cloudtool.py"))
            .args(["--cloud", self.path.to_str().unwrap(), kind.tool()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cloudtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A recursive listing with the provider's own SDK: key → (size, tier or storage class).
    pub fn list(&self, sc: &Scenario, kind: Kind, prefix: &str) -> BTreeMap<String, (i64, Option<String>)> {
        self.tool(sc, kind, &["list", prefix])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let class = v
                    .get("tier")
                    .or_else(|| v.get("storage_class"))
                    .and_then(|c| c.as_str())
                    .map(str::to_string);
                (
                    v["key"].as_str().unwrap().to_string(),
                    (v["size"].as_i64().unwrap(), class),
                )
            })
            .collect()
    }

    /// Runs a barman cloud tool against `kind` with the layout's environment
    /// (`env_file`, sourced by bash): stdout; panics with stderr on failure.
    pub fn barman(&self, sc: &Scenario, kind: Kind, tool: &str, args: &[&str]) -> String {
        let l = self.layout(kind);
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#"set -a; . "$1"; shift; exec "$@""#)
            .arg("bash")
            .arg(&l.env_file)
            .arg(sc.barman_bin.join(tool))
            .args(["--cloud-provider", kind.barman_provider()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `barman-cloud-backup-list --format json` now.
    pub fn backup_list(&self, sc: &Scenario, kind: Kind, destination: &str, server: &str) -> Vec<serde_json::Value> {
        let out = self.barman(
            sc,
            kind,
            "barman-cloud-backup-list",
            &["--format", "json", destination, server],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v["backups_list"].as_array().cloned().unwrap_or_default()
    }
}

/// The key prefix of `server` under `destination` (as the exporter parses it).
pub fn server_prefix(destination: &str, server: &str) -> String {
    let (_, prefix) = barman_cloud_exporter::config::parse_destination(destination).unwrap();
    format!("{prefix}{server}/")
}

/// `destination` with its `scheme://host:port` replaced by `proxy`'s
/// (an Azure emulator-form URL routed through a proxy).
pub fn via(destination: &str, proxy: &str) -> String {
    let rest = destination.split_once("://").unwrap().1;
    let path = &rest[rest.find('/').unwrap_or(rest.len())..];
    format!("{}{path}", proxy.trim_end_matches('/'))
}

/// `http://host:port` of `url`.
pub fn origin(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    format!("{}://{}:{}", u.scheme(), u.host_str().unwrap(), u.port().unwrap())
}

/// The `KEY=VALUE` lines of an env file (`export ` prefix and quotes dropped).
pub fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches("export ").trim();
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.trim_matches(['"', '\'']).to_string()))
        })
        .collect()
}

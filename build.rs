//! Records the git revision for `barman_cloud_exporter_build_info{revision}`.
use std::process::Command;

fn main() {
    let revision = std::env::var("BCE_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown".into())
        });
    println!("cargo:rustc-env=BCE_REVISION={revision}");
    println!("cargo:rerun-if-env-changed=BCE_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}

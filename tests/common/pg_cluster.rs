//! A throwaway PostgreSQL 15 cluster for the PostgreSQL fault tests: initdb
//! as the `postgres` OS user when run as root, a primary with role
//! `exporter` (password [`PASSWORD`], `pg_monitor`) or a standby from
//! `pg_basebackup -R`, on a free loopback port; stopped by its postmaster PID
//! and removed on drop, panics included.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The password of role `exporter` in every cluster made here.
pub const PASSWORD: &str = "faults-pg-password";

/// A throwaway PostgreSQL cluster; stopped (by its postmaster PID, via
/// `pg_ctl stop`) and removed when dropped, panics included.
pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// The loopback port it listens on.
    pub port: u16,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a PostgreSQL program as the PostgreSQL OS user when we are root.
pub fn as_pg(program: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if nix_is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Cluster {
    pub fn tmpdir() -> tempfile::TempDir {
        // Short path: unix socket paths are limited to ~100 bytes.
        let dir = tempfile::Builder::new().prefix("bce-fpg").tempdir_in("/tmp").unwrap();
        if nix_is_root() {
            assert!(
                Command::new("chown")
                    .arg("postgres:")
                    .arg(dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        dir
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// initdb, configure (loopback only, archive_command `true`, password auth
    /// over TCP), start, and create the `exporter` role (in `pg_monitor`).
    pub fn primary(bin: &Path) -> Self {
        let c = Self {
            bin: bin.to_path_buf(),
            dir: Self::tmpdir(),
            port: free_port(),
        };
        let data = c.data();
        as_pg(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nmax_connections = 30\n\
             shared_buffers = 16MB\nwal_level = replica\narchive_mode = on\narchive_command = 'true'\n\
             fsync = off\nautovacuum = off\nmax_wal_senders = 4\nhot_standby = on\n\
             password_encryption = 'scram-sha-256'\n",
            c.port,
            c.dir.path().display()
        );
        append(&data.join("postgresql.conf"), &conf);
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\n\
             host replication postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        c.start();
        c.psql(&format!(
            "CREATE ROLE exporter LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor"
        ));
        // One archived segment, so pg_stat_archiver has values to keep.
        c.psql("SELECT pg_switch_wal() FROM (SELECT txid_current()) x");
        c
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started.
    pub fn standby_of(primary: &Cluster) -> Self {
        let c = Self {
            bin: primary.bin.clone(),
            dir: Self::tmpdir(),
            port: free_port(),
        };
        let data = c.data();
        as_pg(
            &c.bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        append(
            &data.join("postgresql.conf"),
            &format!(
                "\nport = {}\nunix_socket_directories = '{}'\n",
                c.port,
                c.dir.path().display()
            ),
        );
        c.start();
        c
    }

    pub fn start(&self) {
        let log = self.dir.path().join("postgres.log");
        as_pg(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-s",
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    pub fn stop(&self) {
        if self.data().join("postmaster.pid").exists() {
            as_pg(
                &self.bin.join("pg_ctl"),
                &[
                    "-D",
                    self.data().to_str().unwrap(),
                    "-m",
                    "fast",
                    "-s",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ],
            );
        }
    }

    /// Runs SQL as the superuser over the unix socket; unaligned tuples only.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-w",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-h", self.dir.path().to_str().unwrap(), "-p", &self.port.to_string()])
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn url(&self, port: u16) -> String {
        format!("postgresql://exporter:{PASSWORD}@127.0.0.1:{port}/postgres?sslmode=disable")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // By the postmaster's PID (what pg_ctl stop does), never by name.
        let pid_file = self.data().join("postmaster.pid");
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string))
        {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
            let start = Instant::now();
            while pid_file.exists() && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

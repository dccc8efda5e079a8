//! The reference for "restorable": a real `barman-cloud-restore` of one
//! backup into a scratch directory, `restore_command` set to
//! `barman-cloud-wal-restore`, `recovery_target_timeline = 'latest'` and no
//! target (replay everything archived), then PostgreSQL 15 started on it
//! (`hot_standby = off`: no connection until recovery has ended).
//! Archiving is off in the restored server, so nothing is written to the
//! bucket. Stopped by its postmaster PID and removed afterwards.

use std::path::Path;
use std::process::Command;

use super::Scenario;
use super::pg_cluster::{Cluster, append, as_pg, free_port, nix_is_root};

/// What really happened to one backup.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `barman-cloud-restore` exited 0.
    pub restored: bool,
    /// PostgreSQL finished recovery and accepted connections.
    pub started: bool,
    /// In every database (`template0` included, opened for the check),
    /// every relation's file is there and every table could be read in
    /// full. A backup restored without one of its data tar parts still
    /// starts when the part held files PostgreSQL does not open at start-up
    /// (which files land in which part follows the directory order of the
    /// backed-up filesystem: on tmpfs, `template0`'s): `barman-cloud-restore`
    /// cannot tell a part is missing, this check can.
    pub readable: bool,
    /// `pg_last_wal_replay_lsn()` after recovery, in bytes.
    pub replay_lsn: Option<u64>,
    /// The tail of the server log or the tool's stderr, for messages.
    pub log: String,
}

impl Outcome {
    /// Restored, recovered and readable up to `lsn` (the end of the newest
    /// archived segment, bytes) or beyond.
    pub fn reaches(&self, lsn: u64) -> bool {
        self.restored && self.started && self.readable && self.replay_lsn.is_some_and(|l| l >= lsn)
    }
}

fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// A command run as the PostgreSQL OS user when we are root.
fn pg_command(program: &Path) -> Command {
    if nix_is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Restores `id` of `server` at `dest` and recovers it; `tablespaces` are
/// the tablespace names to relocate into the scratch directory (barman
/// restores them to their original location otherwise).
pub fn restore_and_recover(sc: &Scenario, dest: &str, server: &str, id: &str, tablespaces: &[&str]) -> Outcome {
    let dir = Cluster::tmpdir();
    let data = dir.path().join("data");
    let pg_bin = sc.pg_bin.clone();
    let mut restore = pg_command(&sc.barman_bin.join("barman-cloud-restore"));
    restore
        .args(["--endpoint-url", &sc.s3.endpoint, "--cloud-provider", "aws-s3"])
        .env("AWS_ACCESS_KEY_ID", &sc.s3.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &sc.s3.secret_key)
        .env("AWS_DEFAULT_REGION", &sc.s3.region)
        .env("AWS_CA_BUNDLE", std::env::var("AWS_CA_BUNDLE").unwrap_or_default());
    for t in tablespaces {
        let loc = dir.path().join(format!("tbs-{t}"));
        restore.args(["--tablespace", &format!("{t}:{}", loc.display())]);
    }
    let out = restore
        .args([dest, server, id, data.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let mut o = Outcome {
        restored: out.status.success() && data.join("PG_VERSION").exists(),
        started: false,
        readable: false,
        replay_lsn: None,
        log: String::from_utf8_lossy(&out.stderr).to_string(),
    };
    if !o.restored {
        return o;
    }
    // restore_command through a wrapper that carries the test credentials.
    let wrapper = dir.path().join("wal-restore.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec env AWS_ACCESS_KEY_ID='{}' AWS_SECRET_ACCESS_KEY='{}' AWS_DEFAULT_REGION='{}' \
             '{}' --endpoint-url '{}' --cloud-provider aws-s3 '{dest}' '{server}' \"$1\" \"$2\"\n",
            sc.s3.access_key,
            sc.s3.secret_key,
            sc.s3.region,
            sc.barman_bin.join("barman-cloud-wal-restore").display(),
            sc.s3.endpoint,
        ),
    )
    .unwrap();
    assert!(
        Command::new("chmod")
            .arg("755")
            .arg(&wrapper)
            .status()
            .unwrap()
            .success()
    );
    let port = free_port();
    append(
        &data.join("postgresql.auto.conf"),
        &format!(
            "\nport = {port}\nlisten_addresses = ''\nunix_socket_directories = '{}'\narchive_mode = off\n\
             restore_command = '{} %f %p'\nrecovery_target_timeline = 'latest'\nhot_standby = off\n\
             shared_buffers = 16MB\nfsync = off\n",
            dir.path().display(),
            wrapper.display()
        ),
    );
    std::fs::write(data.join("recovery.signal"), "").unwrap();
    if nix_is_root() {
        assert!(
            Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success()
        );
    }
    let log = dir.path().join("postgres.log");
    let start = pg_command(&pg_bin.join("pg_ctl"))
        .args(["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap()])
        .args(["-s", "-w", "-t", "120", "start"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let psql_in = |db: &str, sql: &str| -> Option<String> {
        let out = Command::new(pg_bin.join("psql"))
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
                db,
            ])
            .args(["-h", dir.path().to_str().unwrap(), "-p", &port.to_string(), "-c", sql])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let psql = |sql: &str| psql_in("postgres", sql);
    // `pg_ctl -w` counts a server in recovery as started: wait for the end
    // of recovery (promotion) or for the postmaster to exit.
    let began = std::time::Instant::now();
    while start.status.success() && began.elapsed() < std::time::Duration::from_secs(180) {
        if psql("SELECT pg_is_in_recovery()").as_deref() == Some("f") {
            o.started = true;
            break;
        }
        if !data.join("postmaster.pid").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    if o.started {
        o.replay_lsn = psql("SELECT pg_last_wal_replay_lsn()").and_then(|l| parse_lsn(&l));
        o.readable = every_database_readable(&psql, &psql_in);
        let _ = as_pg(
            &pg_bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-s",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
    }
    o.log = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    // The scratch directory (owned by postgres) goes with `dir`; a server
    // that did not stop would hold it, so stop by PID as a last resort.
    if let Some(pid) = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next().map(str::to_string))
    {
        let _ = Command::new("kill").args(["-QUIT", &pid]).status();
    }
    o
}

/// In every database, every relation with storage has its file
/// (`pg_stat_file` of `pg_relation_filepath` fails on a missing one) and
/// every table and materialized view reads in full. `template0` does not
/// accept connections: it is opened for the check (the restored server is a
/// throwaway).
fn every_database_readable(
    psql: &dyn Fn(&str) -> Option<String>,
    psql_in: &dyn Fn(&str, &str) -> Option<String>,
) -> bool {
    const CHECK: &str = "DO $$ DECLARE r record; BEGIN \
         PERFORM pg_stat_file(p) FROM (SELECT pg_relation_filepath(c.oid) AS p FROM pg_class c) f \
         WHERE p IS NOT NULL; \
         FOR r IN SELECT c.oid::regclass AS t FROM pg_class c WHERE c.relkind IN ('r', 'm') LOOP \
         EXECUTE 'SELECT count(*) FROM ' || r.t; END LOOP; END $$";
    if psql("ALTER DATABASE template0 ALLOW_CONNECTIONS true").is_none() {
        return false;
    }
    let Some(databases) = psql("SELECT datname FROM pg_database ORDER BY datname") else {
        return false;
    };
    let databases: Vec<&str> = databases.lines().collect();
    databases.len() >= 3 && databases.iter().all(|db| psql_in(db, CHECK).is_some())
}

//! The standard `process_*` figures of the Prometheus client libraries'
//! process collectors (client_golang's `processCollector`, client_python's
//! `ProcessCollector`), same names and semantics, read from Linux `/proc` with
//! the `procfs` crate. Linux only: elsewhere every figure is `None` and the
//! families are left out of the exposition.

/// One reading of the process figures; each `None` when unavailable.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessFigures {
    /// `process_cpu_seconds_total`: user + system CPU time, seconds
    /// (`/proc/self/stat` `utime + stime` over `sysconf(_SC_CLK_TCK)`).
    pub cpu_seconds: Option<f64>,
    /// `process_start_time_seconds`: process start, Unix seconds (the boot
    /// time of `/proc/stat` plus `/proc/self/stat` `starttime` in ticks).
    pub start_time_seconds: Option<f64>,
    /// `process_resident_memory_bytes`: resident set size, bytes
    /// (`/proc/self/stat` `rss` pages times the page size).
    pub resident_memory_bytes: Option<u64>,
    /// `process_virtual_memory_bytes`: virtual memory size, bytes (`/proc/self/stat` `vsize`).
    pub virtual_memory_bytes: Option<u64>,
    /// `process_open_fds`: entries of `/proc/self/fd`.
    pub open_fds: Option<u64>,
    /// `process_max_fds`: the soft `RLIMIT_NOFILE` of `/proc/self/limits`
    /// (`None` when unlimited).
    pub max_fds: Option<u64>,
}

impl ProcessFigures {
    /// Reads the figures of this process now.
    #[cfg(target_os = "linux")]
    pub fn read() -> Self {
        use procfs::process::{LimitValue, Process};
        let Ok(me) = Process::myself() else {
            return Self::default();
        };
        let mut out = Self {
            open_fds: me.fd_count().ok().map(|n| n as u64),
            max_fds: me.limits().ok().and_then(|l| match l.max_open_files.soft_limit {
                LimitValue::Value(v) => Some(v),
                LimitValue::Unlimited => None,
            }),
            ..Self::default()
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            if ticks > 0.0 {
                out.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
                out.start_time_seconds = procfs::boot_time_secs()
                    .ok()
                    .map(|boot| boot as f64 + stat.starttime as f64 / ticks);
            }
            out.resident_memory_bytes = Some(stat.rss * procfs::page_size());
            out.virtual_memory_bytes = Some(stat.vsize);
        }
        out
    }

    /// Reads the figures of this process now: none off Linux.
    #[cfg(not(target_os = "linux"))]
    pub fn read() -> Self {
        Self::default()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn figures_of_this_process_are_plausible() {
        let before = ProcessFigures::read();
        // Burn a little CPU and hold a file open.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let p = ProcessFigures::read();
        drop(file);
        let now = crate::snapshot::unix_now();
        let start = p.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "started at {start}, now {now}"
        );
        assert!(p.cpu_seconds.unwrap() >= before.cpu_seconds.unwrap());
        let rss = p.resident_memory_bytes.unwrap();
        assert!(rss > 1 << 20 && rss <= p.virtual_memory_bytes.unwrap(), "{p:?}");
        assert!(p.open_fds.unwrap() >= 4, "stdin, stdout, stderr and the file: {p:?}");
        if let Some(max) = p.max_fds {
            assert!(max >= p.open_fds.unwrap());
        }
    }
}

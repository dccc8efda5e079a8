#!/usr/bin/env python3
"""Measurements of scripts/bench.sh (run it through bench.sh, which installs,
builds, starts SeaweedFS and seeds the data this reads).

Against one SeaweedFS, in one run:
  * the two Python jobs the exporter replaces (../shared/baseline, unchanged),
    per server, each under /usr/bin/time -v: wall time and peak RSS;
  * the exporter's cold walk of the same bucket (wall time from its own
    collector duration, S3 requests, peak RSS = VmHWM), for the big and the
    small data set (memory flatness);
  * the exporter's steady-state (incremental) cycle on the unchanged bucket
    vs a full walk (full_walk_interval: 0s): requests and wall time;
  * /metrics under wrk (2 connections: an HA pair of Prometheus scraping
    back to back) with 50 targets, while the big set is walked without pause
    (its cold walk, then full walks one after the other);
  * the stripped release binary's size.
Prints a JSON document on stdout. Standard library only.
"""
import argparse
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} [bench] {msg}", file=sys.stderr, flush=True)


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.strip().split("=", 1)
                env[k] = v
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink(http.server.BaseHTTPRequestHandler):
    """Stands in for the Pushgateway: accepts any push."""

    def _ok(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST = _ok

    def log_message(self, *args):
        pass


def time_v(cmd, env):
    """Runs cmd under /usr/bin/time -v; returns (wall seconds, peak RSS bytes, rc)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        p = subprocess.run(["/usr/bin/time", "-v", "-o", t.name] + cmd, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        out = open(t.name).read()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", out)
    h, m, s = wall.groups()
    seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out).group(1)) * 1024
    if p.returncode != 0:
        log(f"{cmd[-1]} exited {p.returncode}: {p.stderr.strip()[-300:]}")
    return seconds, rss, p.returncode


def python_jobs(args, s3, prefix, servers):
    """Both jobs for every server, sequentially as the CronJobs would run."""
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    env = dict(os.environ,
               S3_BUCKET=args.bucket,
               PUSHGATEWAY_URL=f"http://127.0.0.1:{sink.server_address[1]}",
               AWS_ENDPOINT_URL=s3["S3_ENDPOINT"],
               AWS_ACCESS_KEY_ID=s3["S3_ACCESS_KEY"],
               AWS_SECRET_ACCESS_KEY=s3["S3_SECRET_KEY"],
               AWS_DEFAULT_REGION=s3.get("S3_REGION", "us-east-1"),
               AWS_EC2_METADATA_DISABLED="true")
    result = {}
    for job in ("backup_health_check.py", "storage_usage_report.py"):
        total, peak, failed = 0.0, 0, 0
        for server in servers:
            env["BACKUP_PATH"] = f"{prefix}/{server}"
            wall, rss, rc = time_v([args.python, os.path.join(args.baseline, job)], env)
            total += wall
            peak = max(peak, rss)
            failed += rc != 0
        result[job] = {"seconds": round(total, 2), "peak_rss_bytes": peak, "failed_runs": failed}
        log(f"{job}: {total:.1f} s for {len(servers)} servers, peak RSS {peak / 2**20:.1f} MiB")
    sink.shutdown()
    return result


def target_yaml(name, s3, destination, keys_dir, extra=None):
    """One target: an s3:// one on SeaweedFS with the key files in keys_dir,
    or any other destination with the YAML keys in extra (credentials)."""
    out = f"""  - name: {name}
    destination_path: "{destination}"
"""
    if destination.startswith("s3://"):
        out += f"""    endpoint_url: "{s3['S3_ENDPOINT']}"
    region: "{s3.get('S3_REGION', 'us-east-1')}"
    force_path_style: true
    access_key_id_file: "{keys_dir}/ak"
    secret_access_key_file: "{keys_dir}/sk"
"""
    for k, v in (extra or {}).items():
        out += f'    {k}: "{v}"\n'
    return out


class Exporter:
    """The real binary on a free loopback port with a generated config.
    targets: (name, destination) or (name, destination, extra YAML keys);
    env: extra environment (STORAGE_EMULATOR_HOST)."""

    def __init__(self, args, s3, targets, interval="10s", full_walk_interval="24h", env=None):
        self.dir = tempfile.mkdtemp(prefix="bce-bench-exporter.")
        with open(f"{self.dir}/ak", "w") as f:
            f.write(s3["S3_ACCESS_KEY"])
        with open(f"{self.dir}/sk", "w") as f:
            f.write(s3["S3_SECRET_KEY"])
        config = f"interval: {interval}\ntimeout: 30m\nfull_walk_interval: {full_walk_interval}\ntargets:\n"
        for t in targets:
            config += target_yaml(t[0], s3, t[1], self.dir, t[2] if len(t) > 2 else None)
        with open(f"{self.dir}/config.yaml", "w") as f:
            f.write(config)
        self.port = free_port()
        self.log = open(f"{self.dir}/exporter.log", "w")
        env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true", **(env or {}))
        self.proc = subprocess.Popen(
            [args.exporter, "--config.file", f"{self.dir}/config.yaml",
             "--web.listen-address", f"127.0.0.1:{self.port}", "--log.level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.started = time.monotonic()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def status(self):
        try:
            with urllib.request.urlopen(self.url("/api/status"), timeout=5) as r:
                return json.load(r)
        except OSError:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exporter exited {self.proc.returncode}; see {self.dir}/exporter.log")
            return None

    def target(self, name):
        st = self.status()
        if st is None:
            return None
        return next(t for t in st["targets"] if t["name"] == name)

    def wait(self, name, pred, timeout, poll=0.2):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            t = self.target(name)
            if t is not None:
                if t["s3"].get("last_error") and not t["s3"].get("up"):
                    raise RuntimeError(f"{name}: {t['s3']['last_error']}")
                if pred(t):
                    return t
            time.sleep(poll)
        raise RuntimeError(f"{name}: timed out after {timeout} s")

    def wait_all(self, pred, timeout, poll=1.0):
        """Waits until pred holds for every target; returns them by name."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = self.status()
            if st is not None:
                ts = {t["name"]: t for t in st["targets"]}
                for n, t in ts.items():
                    if t["s3"].get("last_error") and not t["s3"].get("up"):
                        raise RuntimeError(f"{n}: {t['s3']['last_error']}")
                if all(pred(t) for t in ts.values()):
                    return ts
            time.sleep(poll)
        raise RuntimeError(f"not every target got there within {timeout} s")

    def wait_ready(self, timeout, poll=0.05):
        """Seconds from the start of the process to /readyz answering 200
        (every target finished its first collection)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(self.url("/readyz"), timeout=5) as r:
                    if r.status == 200:
                        return time.monotonic() - self.started
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"exporter exited {self.proc.returncode}; see {self.dir}/exporter.log")
            time.sleep(poll)
        raise RuntimeError(f"not ready within {timeout} s")

    def metrics(self):
        """The text exposition's samples: [(name, {label: value}, value)]."""
        req = urllib.request.Request(self.url("/metrics"), headers={"Accept": "text/plain"})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read().decode()
        out = []
        for line in body.splitlines():
            m = re.match(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)', line)
            if m:
                labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
                out.append((m.group(1), labels, float(m.group(3))))
        return out

    def peak_rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        subprocess.run(["rm", "-rf", self.dir])


def walks(kind):
    return lambda t: t.get("s3_walks", {}).get(kind, 0)


def last_walk(t):
    w = t["s3_last_walk"]
    return {"seconds": round(t["s3"]["last_duration_seconds"], 3), "requests": w["requests"],
            "listed_dirs": w["listed_dirs"], "reused_dirs": w["reused_dirs"],
            "incremental_servers": w["incremental_servers"]}


def exporter_walks(args, s3, destination, timeout):
    """Cold walk (a process that walks once), then two steady-state cycles of
    a process on the interval; then a fresh process walking fully every
    cycle for the full-walk figures."""
    out = {"cold": cold_only(args, s3, destination, timeout)}
    e = Exporter(args, s3, [("bench", destination)], interval=args.interval)
    try:
        t = e.wait("bench", lambda t: walks("incremental")(t) >= 2, timeout)
        out["incremental"] = last_walk(t)
        out["incremental"]["peak_rss_bytes"] = e.peak_rss()
        log(f"incremental cycle: {out['incremental']}")
    finally:
        e.stop()
    e = Exporter(args, s3, [("bench", destination)], interval=args.interval, full_walk_interval="0s")
    try:
        t = e.wait("bench", lambda t: walks("full")(t) >= 2, 2 * timeout)
        out["full"] = last_walk(t)
        # Peak over a cold walk and a full reconcile (old and new cache).
        out["full"]["peak_rss_bytes"] = e.peak_rss()
        log(f"full walk (warm): {out['full']}")
    finally:
        e.stop()
    return out


def cold_only(args, s3, destination, timeout):
    e = Exporter(args, s3, [("bench", destination)], interval="1h")
    try:
        t = e.wait("bench", lambda t: walks("full")(t) >= 1, timeout)
        out = last_walk(t)
        out["peak_rss_bytes"] = e.peak_rss()
        log(f"cold walk: {out}")
        return out
    finally:
        e.stop()


CLK_TCK = os.sysconf("SC_CLK_TCK")


def threads_cpu(pid):
    """CPU seconds (user + system) of a process's threads, summed by thread
    name: the exporter's collector runtime threads are named "collector"."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
        except OSError:
            continue  # the thread ended
        name = head.split("(", 1)[1]
        fields = rest.split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def machine_busy():
    """CPU seconds the whole machine spent busy (all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def s3_server_pid(args):
    """SeaweedFS's PID (weed.pid next to the S3 env file), or None."""
    try:
        with open(os.path.join(os.path.dirname(args.s3_env), "weed.pid")) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None


class CpuWatch:
    """Who used the CPU between start and stop, in cores (CPU seconds per
    second of wall time): the exporter's collector threads, its other
    threads (HTTP and the rest), the S3 server, this script's children (wrk)
    and the machine as a whole (the cores it has: os.cpu_count())."""

    def __init__(self, args, exporter_pid):
        self.pids = {"exporter": exporter_pid, "s3_server": s3_server_pid(args)}
        self.start = self.read()
        self.t0 = time.monotonic()

    def read(self):
        r = {"machine": machine_busy(), "children": sum(os.times()[2:4])}
        ex = threads_cpu(self.pids["exporter"])
        r["exporter_collector"] = sum(v for k, v in ex.items() if k.startswith("collector"))
        r["exporter_other"] = sum(v for k, v in ex.items() if not k.startswith("collector"))
        if self.pids["s3_server"]:
            r["s3_server"] = sum(threads_cpu(self.pids["s3_server"]).values())
        return r

    def stop(self):
        end, wall = self.read(), time.monotonic() - self.t0
        out = {k: round((end[k] - self.start[k]) / wall, 3) for k in end if k in self.start}
        out["cores"] = os.cpu_count()
        return out


def run_wrk(args, url, headers):
    """wrk --latency on url for args.load_seconds with args.load_connections
    connections (one thread each): requests, p50/p99 in ms, errors."""
    started = time.monotonic()
    cmd = ["wrk", f"-t{args.load_connections}", f"-c{args.load_connections}", f"-d{args.load_seconds}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    wrk = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - started

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", wrk, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", wrk)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"requests": int(re.search(r"(\d+) requests in", wrk).group(1)),
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "errors": errors,
            "wrk_seconds": round(elapsed, 1)}


def load(args, s3, big, small, timeout):
    """wrk on /metrics with 50 targets (the big set and 49 on the load set)
    while the big set is walked: its cold walk first, then full walks
    (full_walk_interval: 0s) one after the other for the whole load period
    (interval 10s; the 49 small targets are walked on that interval too)."""
    targets = [("big", big)] + [(f"small-{i:02d}", small) for i in range(49)]
    e = Exporter(args, s3, targets, interval="10s", full_walk_interval="0s")
    try:
        # Serve first, and let the small targets publish so /metrics is full.
        e.wait_all(lambda t: t["name"] == "big" or walks("full")(t) >= 1, timeout, poll=0.2)
        big_before = e.target("big")
        cpu = CpuWatch(args, e.proc.pid)
        w = run_wrk(args, e.url("/metrics"), ["Accept: text/plain"])
        w["cpu_cores"] = cpu.stop()
        big_after = e.target("big")
        with urllib.request.urlopen(e.url("/metrics"), timeout=5) as r:
            body = r.read()
    finally:
        e.stop()
    out = {"targets": len(targets), "seconds": args.load_seconds, **w,
           "metrics_bytes": len(body), "metrics_series": sum(1 for l in body.splitlines() if l and not l.startswith(b"#")),
           "connections": args.load_connections,
           "big_walks_finished": walks("full")(big_after) - walks("full")(big_before),
           "big_walk_seconds": round(big_after["s3"]["last_duration_seconds"] or 0, 2),
           "cold_walk_running_at_start": walks("full")(big_before) == 0}
    log(f"load: {out}")
    return out


def common_arguments():
    """The arguments bench.py and bench_shapes.py share (bench.sh passes
    them to both)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--exporter", required=True)
    ap.add_argument("--s3-env", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--servers", type=int, required=True)
    ap.add_argument("--interval", default="10s")
    ap.add_argument("--load-seconds", type=int, default=30)
    ap.add_argument("--load-connections", type=int, default=2,
                    help="concurrent scrapers (wrk threads = connections)")
    ap.add_argument("--timeout", type=int, default=1800)
    return ap


def main():
    ap = common_arguments()
    ap.add_argument("--big", required=True, help="prefix of the big data set")
    ap.add_argument("--small", required=True, help="prefix of the small data set (memory flatness)")
    ap.add_argument("--tiny", required=True, help="prefix of the set the 49 load targets walk")
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--python", required=True)
    args = ap.parse_args()
    s3 = read_env(args.s3_env)
    dest = lambda p: f"s3://{args.bucket}/{p}"
    servers = [f"bench-{i:03d}" for i in range(args.servers)]
    result = {"python": python_jobs(args, s3, args.big, servers)}
    result["exporter"] = exporter_walks(args, s3, dest(args.big), args.timeout)
    result["exporter_small_cold"] = cold_only(args, s3, dest(args.small), args.timeout)
    result["load"] = load(args, s3, dest(args.big), dest(args.tiny), args.timeout)
    result["binary_bytes"] = os.path.getsize(args.exporter)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

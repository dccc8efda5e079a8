#!/usr/bin/env python3
"""More measurements of scripts/bench.sh (run it through bench.sh, which
starts the stores and seeds the data this reads), with bench.py's helpers.

--cloud PREFIX: the same synthetic layout (PREFIX) in SeaweedFS (S3),
  Azurite (Azure Blob Storage) and fake-gcs-server (GCS):
  * per provider, the cold walk of a process that walks once: wall time
    (its collector duration), requests (the walk's count in /api/status, and
    barman_cloud_s3_requests_total per operation), peak RSS (VmHWM);
  * the second incremental cycle of the three targets in one process on the
    interval: requests and wall time per provider (emulators ignore listing
    offsets: the walk applies them itself, so a range listing pages from the
    start of its prefix there).
--fleet PREFIX: TARGETS target prefixes PREFIX/tNNN of SERVERS servers each
  (one bucket), and --fleet-four: as many objects over 4 servers:
  * cold walk of each: seconds from the start of the process to /readyz
    (every target walked once), requests, peak RSS;
  * steady state on the unchanged bucket: the second incremental cycle of
    every target, requests per server per cycle;
  * /metrics under wrk with gzip (Accept-Encoding: gzip; 2 connections)
    while every target walks fully (full_walk_interval: 0s) on the interval.
--single PREFIX and --single-small PREFIX: one server of N WAL objects and
  one of N/10 (the 10,000,000-object shape with BCE_BENCH_SINGLE=1), each
  walked as bench.py walks the big set: the cold walk of a process that walks
  once (wall time, requests, peak RSS), two steady-state cycles of a process
  on the interval (requests), and a process walking fully every cycle (peak
  RSS over its cold walk and a full reconcile, when the old and the new cache
  are both held).
Prints a JSON document on stdout. Standard library only.
"""
import json
import sys
import urllib.request

from bench import CpuWatch, Exporter, common_arguments, exporter_walks, last_walk, log, read_env, run_wrk, walks


def requests_by_operation(e, target):
    return {l["operation"]: int(v) for n, l, v in e.metrics()
            if n == "barman_cloud_s3_requests_total" and l.get("target") == target}


def cloud(args, s3):
    az = read_env(args.azure_env)
    gcs = read_env(args.gcs_env)
    with open(args.azure_sas) as f:
        f.read()  # must exist; the exporter reads it
    providers = {
        "s3": ((f"s3://{args.bucket}/{args.cloud}",), {}),
        "azure": ((f"{az['AZURE_ENDPOINT']}/{az['AZURE_CONTAINER']}/{args.cloud}",
                   {"azure_sas_token_file": args.azure_sas}), {}),
        "gcs": ((f"gs://{gcs['GCS_BUCKET']}/{args.cloud}",),
                {"STORAGE_EMULATOR_HOST": gcs["STORAGE_EMULATOR_HOST"]}),
    }
    out = {"prefix": args.cloud, "cold": {}, "incremental": {}}
    for name, (target, env) in providers.items():
        e = Exporter(args, s3, [(name, *target)], interval="1h", env=env)
        try:
            t = e.wait(name, lambda t: walks("full")(t) >= 1, args.timeout)
            w = last_walk(t)
            w["peak_rss_bytes"] = e.peak_rss()
            w["by_operation"] = requests_by_operation(e, name)
            w["objects"] = t["s3"]["data"]["storage"]["objects"]
            out["cold"][name] = w
            log(f"cold walk on {name}: {w}")
        finally:
            e.stop()
    env = {k: v for _, env in providers.values() for k, v in env.items()}
    e = Exporter(args, s3, [(n, *t) for n, (t, _) in providers.items()], interval=args.interval, env=env)
    try:
        ts = e.wait_all(lambda t: walks("incremental")(t) >= 2, args.timeout, poll=0.5)
        for name in providers:
            out["incremental"][name] = last_walk(ts[name])
        log(f"incremental cycles: {out['incremental']}")
    finally:
        e.stop()
    return out


def fleet_cold(args, s3, targets):
    """A process that walks once: seconds to /readyz, the summed walk
    figures, peak RSS."""
    e = Exporter(args, s3, targets, interval="1h")
    cpu = CpuWatch(args, e.proc.pid)
    try:
        ready = e.wait_ready(args.timeout)
        cores = cpu.stop()
        # Before /api/status: serving it for many servers takes memory too.
        rss = e.peak_rss()
        ts = e.wait_all(lambda t: walks("full")(t) >= 1, 60)
        w = [last_walk(t) for t in ts.values()]
        out = {"ready_seconds": round(ready, 3), "peak_rss_bytes": rss,
               "requests": sum(x["requests"] for x in w), "listed_dirs": sum(x["listed_dirs"] for x in w),
               "max_target_seconds": max(x["seconds"] for x in w),
               "cpu_cores": cores,
               "servers": sum(len(t["s3"]["data"]["servers"]) for t in ts.values()),
               "objects": sum(t["s3"]["data"]["storage"]["objects"] for t in ts.values()),
               "by_operation": {}}
        for n, labels, v in e.metrics():
            if n == "barman_cloud_s3_requests_total":
                op = labels["operation"]
                out["by_operation"][op] = out["by_operation"].get(op, 0) + int(v)
        return out
    finally:
        e.stop()


def fleet(args, s3):
    prefix = f"s3://{args.bucket}/{args.fleet}"
    targets = [(f"t{t:03d}", f"{prefix}/t{t:03d}") for t in range(args.fleet_targets)]
    servers = args.fleet_targets * args.fleet_servers
    out = {"prefix": args.fleet, "targets": args.fleet_targets, "servers": servers}
    out["cold"] = fleet_cold(args, s3, targets)
    log(f"fleet cold walk: {out['cold']}")
    out["four"] = fleet_cold(args, s3, [("four", f"s3://{args.bucket}/{args.fleet_four}")])
    log(f"4 servers, as many objects: {out['four']}")

    e = Exporter(args, s3, targets, interval=args.interval)
    try:
        ts = e.wait_all(lambda t: walks("incremental")(t) >= 2, args.timeout)
        w = [last_walk(t) for t in ts.values()]
        out["incremental"] = {
            "requests": sum(x["requests"] for x in w),
            "per_server": sum(x["requests"] for x in w) / servers,
            "max_target_seconds": max(x["seconds"] for x in w),
            "listed_dirs": sum(x["listed_dirs"] for x in w),
            "reused_dirs": sum(x["reused_dirs"] for x in w),
            "incremental_servers": sum(x["incremental_servers"] for x in w)}
        log(f"fleet steady state: {out['incremental']}")
    finally:
        e.stop()

    e = Exporter(args, s3, targets, interval=args.interval, full_walk_interval="0s")
    try:
        e.wait_ready(args.timeout)
        before = e.wait_all(lambda t: True, 60)
        cpu = CpuWatch(args, e.proc.pid)
        w = run_wrk(args, e.url("/metrics"), ["Accept-Encoding: gzip"])
        w["cpu_cores"] = cpu.stop()
        after = e.wait_all(lambda t: True, 60)
        sizes = {}
        for enc in ("gzip", "identity"):
            req = urllib.request.Request(e.url("/metrics"), headers={"Accept-Encoding": enc})
            with urllib.request.urlopen(req, timeout=30) as r:
                body = r.read()
            sizes[enc] = len(body)
            if enc == "identity":
                series = sum(1 for l in body.splitlines() if l and not l.startswith(b"#"))
        full = sum(walks("full")(after[n]) - walks("full")(before[n]) for n in after)
        # Warm full walks (backup.info reused): the last walk of the targets
        # that finished a second one.
        warm = [t for t in after.values() if walks("full")(t) >= 2]
        warm_full = (sum(last_walk(t)["requests"] for t in warm) /
                     max(1, sum(len(t["s3"]["data"]["servers"]) for t in warm))) if warm else None
        out["load"] = {**w, "seconds": args.load_seconds, "connections": args.load_connections,
                       "gzip_bytes": sizes["gzip"], "metrics_bytes": sizes["identity"],
                       "metrics_series": series, "full_walks_finished": full,
                       "warm_full_walk_requests_per_server": warm_full,
                       "cycles": round(full / len(targets), 1)}
        log(f"fleet load: {out['load']}")
    finally:
        e.stop()
    return out


def single(args, s3):
    out = {}
    for size, prefix in (("big", args.single), ("small", args.single_small)):
        log(f"single server {prefix}")
        out[size] = exporter_walks(args, s3, f"s3://{args.bucket}/{prefix}", args.timeout)
        out[size]["prefix"] = prefix
    return out


def main():
    ap = common_arguments()
    ap.add_argument("--cloud", help="prefix of the set seeded in all three stores")
    ap.add_argument("--azure-env")
    ap.add_argument("--azure-sas")
    ap.add_argument("--gcs-env")
    ap.add_argument("--fleet", help="prefix of the fleet (PREFIX/tNNN/bench-NNN)")
    ap.add_argument("--fleet-targets", type=int)
    ap.add_argument("--fleet-servers", type=int, help="servers per target")
    ap.add_argument("--fleet-four", help="prefix of the 4-server set of as many objects")
    ap.add_argument("--single", help="prefix of the one-server set of N objects")
    ap.add_argument("--single-small", help="prefix of the one-server set of N/10 objects")
    args = ap.parse_args()
    s3 = read_env(args.s3_env)
    result = {}
    if args.cloud:
        result["cloud"] = cloud(args, s3)
    if args.fleet:
        result["fleet"] = fleet(args, s3)
    if args.single:
        result["single"] = single(args, s3)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

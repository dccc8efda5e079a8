#!/usr/bin/env python3
"""Turns scripts/bench.py's JSON into the tables of docs/benchmarks.md.

usage: bench_table.py RESULTS.json N SMALL_N SERVERS
       bench_table.py --shapes RESULTS-shapes.json N SERVERS   (bench_shapes.py's)
"""
import json
import math
import os
import sys

# AWS S3 Standard list prices (us-east-1): LIST/PUT/COPY/POST per 1,000
# requests; every request is priced as a LIST here (an upper bound: the few
# GETs cost $0.0004 per 1,000).
LIST_PRICE = 0.005 / 1000
GET_PRICE = 0.0004 / 1000
CYCLES_PER_MONTH = 30 * 24 * 12  # a 5-minute interval


def mib(b):
    return f"{b / 2**20:.1f} MiB"


def cpu_text(c):
    """A CpuWatch record as text: cores used by each party."""
    if not c:
        return ""
    parts = [f"exporter collectors {c['exporter_collector']:.2f}", f"exporter HTTP and rest {c['exporter_other']:.2f}"]
    if "s3_server" in c:
        parts.append(f"S3 server {c['s3_server']:.2f}")
    parts += [f"wrk and other children {c['children']:.2f}", f"machine {c['machine']:.2f} of {c['cores']}"]
    return "CPU in cores: " + ", ".join(parts)


def main():
    results, n, small, servers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    r = json.load(open(results))
    py = r["python"]
    ex = r["exporter"]
    small_cold = r["exporter_small_cold"]
    load = r["load"]
    py_seconds = sum(j["seconds"] for j in py.values())
    py_rss = max(j["peak_rss_bytes"] for j in py.values())
    cold = ex["cold"]
    inc = ex["incremental"]
    full = ex["full"]
    rows = [
        ("Python jobs, both, all servers: wall time", f"{py_seconds:.1f} s", ""),
        ("  backup_health_check.py", f"{py['backup_health_check.py']['seconds']:.1f} s", ""),
        ("  storage_usage_report.py", f"{py['storage_usage_report.py']['seconds']:.1f} s", ""),
        ("Python jobs: peak RSS (largest run)", mib(py_rss), ""),
        ("Exporter cold walk: wall time", f"{cold['seconds']:.1f} s",
         f"{py_seconds / cold['seconds']:.1f}x faster than the Python jobs (goal >= 4x)"),
        ("Exporter cold walk: S3 requests", f"{cold['requests']}", ""),
        (f"Exporter peak RSS at {n:,} WAL objects", mib(cold["peak_rss_bytes"]), "goal <= 40 MiB"),
        (f"Exporter peak RSS at {small:,} WAL objects", mib(small_cold["peak_rss_bytes"]),
         f"{cold['peak_rss_bytes'] / small_cold['peak_rss_bytes']:.2f}x from {small:,} to {n:,} (flat = about 1x)"),
        ("Full walk (warm, full_walk_interval: 0s): wall time / requests",
         f"{full['seconds']:.2f} s / {full['requests']}", ""),
        ("Steady-state incremental cycle: wall time / requests",
         f"{inc['seconds']:.3f} s / {inc['requests']}",
         f"{inc['requests'] / servers:.1f} requests per server (goal <= 10); "
         f"{full['requests'] / max(inc['requests'], 1):.0f}x fewer than a full walk (goal >= 100x)"),
        (f"/metrics under wrk ({load['connections']} connections), {load['targets']} targets, {load['seconds']} s, "
         f"while the big set is walked without pause ({'its cold walk, then ' if load['cold_walk_running_at_start'] else ''}"
         f"{load['big_walks_finished']} full walks of ~{load['big_walk_seconds']:.0f} s)",
         f"p50 {load['p50_ms']:.2f} ms, p99 {load['p99_ms']:.2f} ms, {load['errors']} errors",
         f"{load['requests']} requests; {load['metrics_series']} series, {load['metrics_bytes']:,} bytes (goal p99 <= 2 ms, 0 errors); "
         f"{cpu_text(load.get('cpu_cores'))}"),
        ("Release binary (stripped)", mib(r["binary_bytes"]), "goal <= 25 MiB"),
    ]
    print(f"| measure (N = {n:,} WAL objects, {servers} servers) | value | ratio / goal |")
    print("|---|---|---|")
    for a, b, c in rows:
        print(f"| {a} | {b} | {c} |")
    # Request cost: full walks scale with objects (a linear fit through the
    # two cold walks); incremental cycles with servers, plus one page per
    # 1,000 WAL directories per server for the `wals/` delimiter listing
    # (directories scale with objects as in the seeded layout).
    slope = (cold["requests"] - small_cold["requests"]) / max(n - small, 1)
    base = cold["requests"] - slope * n
    dirs_per_object = cold["listed_dirs"] / n

    def delimiter_pages(objects):
        return servers * max(1, math.ceil(objects * dirs_per_object / servers / 1000))

    def incremental(objects):
        return inc["requests"] + delimiter_pages(objects) - delimiter_pages(n)
    print()
    print("| objects | full walk every cycle: requests/cycle | $/month | incremental (daily full reconcile included): requests/cycle | $/month |")
    print("|---|---|---|---|---|")
    for objects in (10_000, 1_000_000, 10_000_000):
        f = max(base + slope * objects, incremental(objects))
        # plus the daily full reconcile (full_walk_interval: 24h), amortized
        i = incremental(objects) + f / (24 * 12)
        print(f"| {objects:,} | {f:,.0f} | ${f * CYCLES_PER_MONTH * LIST_PRICE:,.2f} "
              f"| {i:,.1f} | ${i * CYCLES_PER_MONTH * LIST_PRICE:,.2f} |")


def smoke_checks(results, servers):
    """What must hold at any N (BCE_BENCH_ASSERT=1, the CI smoke run)."""
    r = json.load(open(results))
    problems = []
    for job, j in r["python"].items():
        if j["failed_runs"]:
            problems.append(f"{job}: {j['failed_runs']} failed runs")
    cold = r["exporter"]["cold"]
    if cold["reused_dirs"] or cold["listed_dirs"] == 0:
        problems.append(f"the cold walk was not cold: {cold}")
    inc = r["exporter"]["incremental"]
    if inc["requests"] > 10 * servers:
        problems.append(f"steady state sent {inc['requests']} requests for {servers} servers")
    if inc["listed_dirs"] > 2 * servers or inc["reused_dirs"] == 0:
        problems.append(f"steady state listed {inc['listed_dirs']} and reused {inc['reused_dirs']} directories")
    if r["load"]["errors"]:
        problems.append(f"{r['load']['errors']} errors on /metrics under load")
    for p in problems:
        print(f"bench smoke: {p}", file=sys.stderr)
    return not problems


PROVIDERS = {"s3": "S3 (SeaweedFS)", "azure": "Azure Blob Storage (Azurite)", "gcs": "GCS (fake-gcs-server)"}


def verdict(ok):
    return "**met**" if ok else "**missed**"


def cloud_table(c, servers):
    objects = c["cold"]["s3"]["objects"]
    print(f"| provider ({objects:,} objects, {servers} servers, same layout) | cold walk: wall time "
          "| cold walk: requests (by operation) | cold walk: peak RSS | steady-state cycle: wall time / requests |")
    print("|---|---|---|---|---|")
    for p, label in PROVIDERS.items():
        w, inc = c["cold"][p], c["incremental"][p]
        ops = ", ".join(f"{k} {v}" for k, v in sorted(w["by_operation"].items()))
        print(f"| {label} | {w['seconds']:.2f} s | {w['requests']} ({ops}) | {mib(w['peak_rss_bytes'])} "
              f"| {inc['seconds']:.3f} s / {inc['requests']} |")


def fleet_table(f):
    cold, four, inc, load = f["cold"], f["four"], f["incremental"], f["load"]
    ratio = cold["ready_seconds"] / four["ready_seconds"]
    per_server = inc["per_server"]
    print(f"| measure ({f['servers']:,} servers over {f['targets']} targets, {cold['objects']:,} objects, one bucket) "
          "| value | ratio / goal |")
    print("|---|---|---|")
    rows = [
        ("Fleet cold walk: start to /readyz (every target walked once)", f"{cold['ready_seconds']:.1f} s",
         f"{ratio:.2f}x the 4-server walk (goal <= 1.2x) {verdict(ratio <= 1.2)}; "
         f"{cold['requests'] / cold['ready_seconds']:,.0f} requests/s; {cpu_text(cold.get('cpu_cores'))}"),
        (f"Same {four['objects']:,} objects over 4 servers (1 target): start to /readyz",
         f"{four['ready_seconds']:.1f} s",
         f"{four['requests'] / four['ready_seconds']:,.0f} requests/s; {cpu_text(four.get('cpu_cores'))}"),
        ("Cold walk requests: fleet / 4 servers", f"{cold['requests']:,} / {four['requests']:,}",
         f"{cold['requests'] / cold['servers']:.1f} / {four['requests'] / 4:.1f} per server"),
        ("Fleet cold walk: peak RSS", mib(cold["peak_rss_bytes"]),
         f"goal <= 64 MiB {verdict(cold['peak_rss_bytes'] <= 64 * 2**20)}; 4 servers: {mib(four['peak_rss_bytes'])}"),
        ("Steady state (unchanged bucket), one incremental cycle of every target: requests",
         f"{inc['requests']:,} ({per_server:.2f} per server)",
         f"goal <= 3 per server {verdict(per_server <= 3)}; slowest target {inc['max_target_seconds']:.3f} s"),
        (f"/metrics under wrk, {load['connections']} connections, gzip, {load['seconds']} s, while every target "
         f"walks fully (full_walk_interval: 0s; {load['cycles']} full cycles finished)",
         f"p50 {load['p50_ms']:.2f} ms, p90 {load['p90_ms']:.2f} ms, p99 {load['p99_ms']:.2f} ms, {load['errors']} errors",
         f"goal p99 <= 5 ms {verdict(load['p99_ms'] <= 5 and not load['errors'])}; {load['requests']:,} scrapes; "
         f"{load['metrics_series']:,} series, {load['metrics_bytes']:,} bytes ({load['gzip_bytes']:,} gzipped); "
         f"{cpu_text(load.get('cpu_cores'))}"),
    ]
    for a, b, c in rows:
        print(f"| {a} | {b} | {c} |")
    # Cost for 1,000 servers at a 5-minute interval, from the measured
    # requests per server (the fleet's shape: 10 servers per target).
    scale = 1000 / f["servers"]
    gets = cold["by_operation"].get("GetObject", 0)
    # A warm full walk: measured under load when a target finished one, else
    # the cold walk without its GETs.
    warm = load.get("warm_full_walk_requests_per_server")
    full = warm * 1000 if warm is not None else (cold["requests"] - gets) * scale
    incr = inc["requests"] * scale
    month = CYCLES_PER_MONTH
    print()
    print("| 1,000 servers, one cycle every 5 minutes | requests/cycle | $/month (LIST $0.005, GET $0.0004 per 1,000) |")
    print("|---|---|---|")
    print(f"| full walk every cycle (warm: backup.info not fetched again) | {full:,.0f} | ${full * month * LIST_PRICE:,.2f} |")
    print(f"| incremental, plus the daily full reconcile (full_walk_interval: 24h) | {incr + full / 288:,.1f} "
          f"| ${(incr + full / 288) * month * LIST_PRICE:,.2f} |")
    print(f"| (a cold start: {cold['requests'] * scale:,.0f} requests, {gets * scale:,.0f} of them GETs) | | "
          f"${((cold['requests'] - gets) * LIST_PRICE + gets * GET_PRICE) * scale:,.2f} once |")


def single_table(s):
    big, small = s["big"], s["small"]
    nb, ns = (int(x["prefix"].split("-n")[1]) for x in (big, small))
    cold_ratio = big["cold"]["peak_rss_bytes"] / small["cold"]["peak_rss_bytes"]
    full_ratio = big["full"]["peak_rss_bytes"] / small["full"]["peak_rss_bytes"]
    inc = big["incremental"]
    print(f"| measure (1 server) | {ns:,} WAL objects | {nb:,} WAL objects | ratio / goal |")
    print("|---|---|---|---|")
    rows = [
        ("Cold walk: wall time / requests",
         *(f"{x['cold']['seconds']:.1f} s / {x['cold']['requests']:,}" for x in (small, big)), ""),
        ("Cold walk: peak RSS", mib(small["cold"]["peak_rss_bytes"]), mib(big["cold"]["peak_rss_bytes"]),
         f"{cold_ratio:.2f}x (goal <= 1.1x {verdict(cold_ratio <= 1.1)}; <= 40 MiB "
         f"{verdict(big['cold']['peak_rss_bytes'] <= 40 * 2**20)})"),
        ("Cold walk then a full reconcile (both caches held): peak RSS",
         mib(small["full"]["peak_rss_bytes"]), mib(big["full"]["peak_rss_bytes"]),
         f"{full_ratio:.2f}x (goal <= 1.1x {verdict(full_ratio <= 1.1)}; <= 40 MiB "
         f"{verdict(big['full']['peak_rss_bytes'] <= 40 * 2**20)})"),
        ("Full walk (warm): wall time / requests",
         *(f"{x['full']['seconds']:.1f} s / {x['full']['requests']:,}" for x in (small, big)), ""),
        ("Steady-state cycle (unchanged bucket): wall time / requests",
         *(f"{x['incremental']['seconds']:.3f} s / {x['incremental']['requests']}" for x in (small, big)),
         f"goal <= 3 per server {verdict(inc['requests'] <= 3)}; "
         f"{big['full']['requests'] / max(1, inc['requests']):,.0f}x fewer than a full walk"),
    ]
    for row in rows:
        print("| " + " | ".join(row) + " |")


def shapes_main(path):
    r = json.load(open(path))
    servers = int(sys.argv[4])
    if "cloud" in r:
        cloud_table(r["cloud"], servers)
        print()
    if "fleet" in r:
        fleet_table(r["fleet"])
        print()
    if "single" in r:
        single_table(r["single"])


def shapes_checks(path, servers):
    """What must hold at any N for the cloud and fleet runs."""
    r = json.load(open(path))
    problems = []
    if "cloud" in r:
        c = r["cloud"]
        seen = {p: c["cold"][p]["objects"] for p in PROVIDERS}
        if len(set(seen.values())) != 1:
            problems.append(f"the providers saw different layouts: {seen}")
        for p in PROVIDERS:
            if c["cold"][p]["reused_dirs"] or not c["cold"][p]["listed_dirs"]:
                problems.append(f"{p}: the cold walk was not cold: {c['cold'][p]}")
            if not c["incremental"][p]["reused_dirs"]:
                problems.append(f"{p}: the steady-state cycle reused nothing: {c['incremental'][p]}")
    if "fleet" in r:
        f = r["fleet"]
        if f["cold"]["servers"] != f["servers"] or f["four"]["servers"] != 4:
            problems.append(f"fleet: {f['cold']['servers']} and {f['four']['servers']} servers walked")
        if f["cold"]["objects"] != f["four"]["objects"]:
            problems.append(f"fleet: {f['cold']['objects']} objects vs {f['four']['objects']} over 4 servers")
        if f["incremental"]["per_server"] > 10 or f["incremental"]["incremental_servers"] != f["servers"]:
            problems.append(f"fleet steady state: {f['incremental']}")
        if f["load"]["errors"]:
            problems.append(f"fleet: {f['load']['errors']} errors on /metrics under load")
    if "single" in r:
        for size, x in r["single"].items():
            if x["cold"]["reused_dirs"] or not x["cold"]["listed_dirs"]:
                problems.append(f"single {size}: the cold walk was not cold: {x['cold']}")
            if x["incremental"]["incremental_servers"] != 1 or not x["incremental"]["reused_dirs"]:
                problems.append(f"single {size}: the steady-state cycle was not incremental: {x['incremental']}")
            if x["incremental"]["requests"] > 3:
                problems.append(f"single {size}: {x['incremental']['requests']} requests in a steady-state cycle")
    for p in problems:
        print(f"bench smoke: {p}", file=sys.stderr)
    return not problems


if __name__ == "__main__":
    check = os.environ.get("BCE_BENCH_ASSERT") == "1"
    if sys.argv[1] == "--shapes":
        shapes_main(sys.argv[2])
        if check and not shapes_checks(sys.argv[2], int(sys.argv[4])):
            sys.exit(1)
    else:
        main()
        if check and not smoke_checks(sys.argv[1], int(sys.argv[4])):
            sys.exit(1)

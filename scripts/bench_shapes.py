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
Prints a JSON document on stdout. Standard library only.
"""
import argparse
import json
import sys

from bench import Exporter, last_walk, log, read_env, walks


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exporter", required=True)
    ap.add_argument("--s3-env", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--servers", type=int, required=True)
    ap.add_argument("--interval", default="10s")
    ap.add_argument("--load-seconds", type=int, default=30)
    ap.add_argument("--load-connections", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--cloud", help="prefix of the set seeded in all three stores")
    ap.add_argument("--azure-env")
    ap.add_argument("--azure-sas")
    ap.add_argument("--gcs-env")
    args = ap.parse_args()
    s3 = read_env(args.s3_env)
    result = {}
    if args.cloud:
        result["cloud"] = cloud(args, s3)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

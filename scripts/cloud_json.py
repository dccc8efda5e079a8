#!/usr/bin/env python3
"""Check the `scenario.sh cloud` layouts and write DIR/cloud.json.

usage: cloud_json.py WORKDIR OUTPUT

WORKDIR (DIR/cloud-work) holds what scenario-cloud.sh collected, per
provider KIND (azure, gcs):
  KIND.env               KEY=VALUE facts (destination, servers, emulator...)
  keys-KIND.tsv          "<size>\\t<key>" of every object of the container/bucket
  list-KIND.jsonl        cloudtool.py list of the same
  clusters-KIND.tsv      name server port socket data password running walcomp
  backups-SERVER.json    barman-cloud-backup-list --format json of each server

Every check that fails is printed; the exit status is 1 if any failed, and
OUTPUT is only written when all passed. Standard library only.
"""

import json
import os
import re
import sys

SUFFIX = {"none": "", "gzip": ".gz", "bzip2": ".bz2", "snappy": ".snappy", "zstd": ".zst", "lz4": ".lz4", "xz": ".xz"}
BACKUP_FIELDS = ("backup_id", "status", "timeline", "begin_wal", "end_wal", "begin_time_iso", "end_time_iso", "systemid")


def read_env(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
    return out


def dest_root(dest):
    """Key prefix of a barman destination (as scenario.sh's dest_root)."""
    scheme, rest = dest.split("://", 1)
    parts = rest.split("/")[1:]
    if scheme in ("http", "https"):
        parts = parts[1:] if rest.split("/")[0].endswith(".blob.core.windows.net") else parts[2:]
    return "/".join(p for p in parts if p)


def main():
    work, output = sys.argv[1], sys.argv[2]
    errors = []

    def check(cond, msg):
        if not cond:
            errors.append(msg)
        return cond

    out = {}
    for kind in ("azure", "gcs"):
        facts = read_env(os.path.join(work, kind + ".env"))
        keys = []
        with open(os.path.join(work, "keys-%s.tsv" % kind), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    keys.append(line.rstrip("\n").split("\t", 1)[1])
        listed = []
        with open(os.path.join(work, "list-%s.jsonl" % kind), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    listed.append(json.loads(line))
        check(sorted(o["key"] for o in listed) == sorted(keys), "%s: cloudtool list and ls disagree" % kind)
        root = dest_root(facts["destination_path"])
        servers = facts["servers"].split()
        orphans = facts["orphans"].split()
        main_server = [s for s in servers if s not in orphans][0]

        # ---- keys
        for server, comp, n_done, two_tl in (
            (main_server, facts["main_wal_compression"], 2, True),
            (orphans[0], facts["old_wal_compression"], 1, False),
        ):
            p = "%s/%s/" % (root, server) if root else server + "/"
            sfx = re.escape(SUFFIX[comp])
            mine = [k[len(p):] for k in keys if k.startswith(p)]
            check(mine, "%s: no object under %s" % (kind, p))
            res = [r"^wals/0000000100000000/000000010000000000000[0-9A-F]{3}%s$" % sfx,
                   r"^wals/0000000100000000/000000010000000000000[0-9A-F]{3}\.[0-9A-F]{8}\.backup%s$" % sfx,
                   r"^base/[0-9]{8}T[0-9]{6}/backup\.info$",
                   r"^base/[0-9]{8}T[0-9]{6}/data\.tar(\.gz)?$"]
            if two_tl:
                res += [r"^wals/00000002\.history%s$" % sfx,
                        r"^wals/0000000100000000/000000010000000000000[0-9A-F]{3}\.partial%s$" % sfx,
                        r"^wals/0000000200000000/000000020000000000000[0-9A-F]{3}%s$" % sfx,
                        r"^wals/0000000200000000/000000020000000000000[0-9A-F]{3}\.[0-9A-F]{8}\.backup%s$" % sfx]
            for r in res:
                check(any(re.search(r, k) for k in mine), "%s: no key under %s matches %s" % (kind, p, r))
            wals = [k for k in mine if k.startswith("wals/") and re.search(r"/[0-9A-F]{24}", k)]
            check(all(k.endswith(SUFFIX[comp]) or (not SUFFIX[comp]) for k in wals),
                  "%s: %s has WAL not compressed with %s" % (kind, server, comp))
            if not SUFFIX[comp]:
                check(all(re.search(r"[0-9A-F](\.partial|\.backup|\.history)?$", k) for k in mine if k.startswith("wals/")),
                      "%s: %s has compressed WAL although it archives uncompressed" % (kind, server))

        # ---- barman-cloud-backup-list
        backups = {}
        for s in servers:
            with open(os.path.join(work, "backups-%s.json" % s), encoding="utf-8") as f:
                lst = json.load(f)["backups_list"]
            backups[s] = [{k: b.get(k) for k in BACKUP_FIELDS} for b in lst]
        got = [(b["status"], b["timeline"]) for b in backups[main_server]]
        check(got == [("DONE", 1), ("DONE", 2)], "%s: %s backups are %s, expected DONE on TL1, DONE on TL2" % (kind, main_server, got))
        check([b["backup_id"] for b in backups[main_server]] == facts["main_ids"].split(),
              "%s: %s backup ids differ from the ones barman-cloud-backup made" % (kind, main_server))
        got = [(b["status"], b["timeline"]) for b in backups[orphans[0]]]
        check(got == [("DONE", 1)], "%s: %s backups are %s, expected DONE on TL1" % (kind, orphans[0], got))

        # ---- clusters
        clusters = {}
        with open(os.path.join(work, "clusters-%s.tsv" % kind), encoding="utf-8") as f:
            for line in f:
                name, server, port, sock, data, pw, running, walc = line.rstrip("\n").split("\t")
                port = int(port)
                clusters[name] = {
                    "server": server,
                    "port": port,
                    "socket_dir": sock,
                    "data_dir": data,
                    "running": running == "true",
                    "wal_compression": walc,
                    "url": "postgresql://exporter:%s@127.0.0.1:%d/postgres" % (pw, port),
                    "superuser_url": "postgresql://postgres@127.0.0.1:%d/postgres" % port,
                    "superuser_socket_url": "postgresql://postgres@/postgres?host=%s&port=%d" % (sock, port),
                    "exporter_user": "exporter",
                    "exporter_password": pw,
                }
        primary = facts["primary"]
        check(clusters.get(primary, {}).get("running"), "%s: cluster %s is not running" % (kind, primary))
        for name, c in clusters.items():
            if name != primary:
                check(not c["running"], "%s: cluster %s should be stopped" % (kind, name))
        pg = dict(clusters.get(primary, {}))
        pg["cluster"] = primary

        entry = {"dir": facts["dir"], "provider": facts["provider"], "endpoint": facts["endpoint"]}
        if kind == "azure":
            entry.update({
                "account": facts["account"],
                "container": facts["container"],
                "destination_path": facts["destination_path"],
                "key_file": facts["key_file"],
                "connection_string_file": facts["connection_string_file"],
                "sas_token_file": facts["sas_token_file"],
            })
            for k in ("key_file", "connection_string_file", "sas_token_file"):
                check(os.path.getsize(facts[k]) > 0, "azure: %s %s is empty" % (k, facts[k]))
        else:
            entry.update({"bucket": facts["bucket"], "project": facts["project"],
                          "destination_path": facts["destination_path"]})
        entry.update({
            "env_file": facts["env_file"],
            "pid": int(facts["pid"]),
            "pid_file": facts["pid_file"],
            "log": facts["log"],
            "servers": servers,
            "orphan_servers": orphans,
            "postgres": pg,
            "clusters": clusters,
            "backups": backups,
            "objects": len(keys),
        })
        out[kind] = entry

    if errors:
        for e in errors:
            print("cloud_json.py: %s" % e, file=sys.stderr)
        return 1
    tmp = output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(tmp, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

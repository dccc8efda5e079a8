#!/usr/bin/env python3
"""Check the `scenario.sh extra` layouts and write DIR/extra.json.

usage: extra_json.py WORKDIR OUTPUT

WORKDIR (DIR/extra-work) holds what scenario-extra.sh collected:
  <layout>.env          KEY=VALUE facts recorded while building each layout
  keys.tsv              "<size>\\t<key>" of every object under extra/
  list-<server>.json    barman-cloud-backup-list --format json of each server
  keep-annotation.txt   body of the keep annotation of the standalone backup

Every check that fails is printed; the exit status is 1 if any failed, and
OUTPUT is only written when all passed. Standard library only.
"""

import json
import os
import re
import sys

SEG_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")


def read_env(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
    return out


def main():
    work, output = sys.argv[1], sys.argv[2]
    errors = []

    def check(cond, msg):
        if not cond:
            errors.append(msg)
        return cond

    keys = []
    with open(os.path.join(work, "keys.tsv"), encoding="utf-8") as f:
        for line in f:
            size, key = line.rstrip("\n").split("\t", 1)
            keys.append(key)

    def env(layout):
        return read_env(os.path.join(work, layout + ".env"))

    def backups(server):
        with open(os.path.join(work, "list-%s.json" % server), encoding="utf-8") as f:
            return json.load(f)["backups_list"]

    def prefix(dest, server):
        path = dest.split("://", 1)[1].split("/", 1)[1]
        return "%s/%s/" % (path, server)

    def under(p):
        return [k[len(p):] for k in keys if k.startswith(p)]

    def wal_names(p):
        return [os.path.basename(k) for k in under(p + "wals/")]

    def check_data_tar(layout, p, blist, comp):
        """every DONE backup of blist has its data.tar[.<ext>] for compression comp."""
        name = "data.tar" + {"none": "", "gzip": ".gz", "bzip2": ".bz2", "snappy": ".snappy", "lz4": ".lz4"}[comp]
        for b in blist:
            if b["status"] == "DONE":
                check("base/%s/%s" % (b["backup_id"], name) in under(p),
                      "%s: backup %s has no %s" % (layout, b["backup_id"], name))

    # ---- states
    st = env("states")
    sb = backups(st["server"])
    by_status = {}
    for b in sb:
        by_status.setdefault(b["status"], []).append(b["backup_id"])
    done, failed, started = st["done"].split(), [st["failed"]], [st["started"]]
    check(by_status.get("DONE") == done, "states: DONE backups %s, expected %s" % (by_status.get("DONE"), done))
    check(by_status.get("FAILED") == failed, "states: FAILED backups %s, expected %s" % (by_status.get("FAILED"), failed))
    check(by_status.get("STARTED") == started, "states: STARTED backups %s, expected %s" % (by_status.get("STARTED"), started))
    check(set(by_status) == {"DONE", "FAILED", "STARTED"}, "states: unexpected statuses %s" % sorted(by_status))
    check([b["backup_id"] for b in sb] == [done[0], failed[0], started[0], done[1]],
          "states: order is not DONE, FAILED, STARTED, DONE: %s" % [(b["backup_id"], b["status"]) for b in sb])
    check(all(b["timeline"] == 1 for b in sb), "states: not all backups on timeline 1")
    sp = prefix(st["destination_path"], st["server"])
    base = under(sp + "base/")
    check_data_tar("states", sp, sb, st["backup_compression"])
    for b in sb:
        if b["status"] != "DONE":
            check(b.get("end_wal") is None, "states: %s %s has end_wal %s" % (b["status"], b["backup_id"], b.get("end_wal")))
    fb = next(b for b in sb if b["status"] == "FAILED")
    check(bool(fb.get("error")), "states: FAILED backup has no error")
    kb = next(b for b in sb if b["status"] == "STARTED")
    check(not any(k.startswith(kb["backup_id"] + "/data.tar") for k in base), "states: STARTED backup has a data.tar")
    check(not any(n.startswith(kb["begin_wal"] + ".") and ".backup" in n for n in wal_names(sp)),
          "states: the STARTED backup (killed mid-upload) has a .backup history file")
    failed_label = any(n.startswith(fb["begin_wal"] + ".") and ".backup" in n for n in wal_names(sp))

    # ---- keep
    kp = env("keep")
    kbk = backups(kp["server"])
    ids = kp["ids"].split()
    check([b["backup_id"] for b in kbk] == ids, "keep: backups %s, expected %s" % ([b["backup_id"] for b in kbk], ids))
    check(all(b["status"] == "DONE" for b in kbk), "keep: not all backups DONE")
    check(kp["standalone"] == ids[0], "keep: standalone is not the oldest backup")
    kpp = prefix(kp["destination_path"], kp["server"])
    check("base/%s/annotations/keep" % ids[0] in under(kpp), "keep: no annotation object base/%s/annotations/keep" % ids[0])
    check([k for k in under(kpp) if "/annotations/" in k] == ["base/%s/annotations/keep" % ids[0]],
          "keep: unexpected annotations %s" % [k for k in under(kpp) if "/annotations/" in k])
    with open(os.path.join(work, "keep-annotation.txt"), encoding="utf-8") as f:
        body = f.read()
    check(body == "standalone", "keep: annotation body is %r, expected 'standalone'" % body)
    check_data_tar("keep", kpp, kbk, kp["backup_compression"])

    # ---- compression
    comps = []
    for name in ("bzip2", "zstd", "snappy"):
        c = env(name)
        cb = backups(c["server"])
        sfx = c["suffix"]
        summary = [(b["status"], b["timeline"]) for b in cb]
        check(summary == [("DONE", 1), ("DONE", 2)], "%s: backups are %s, expected DONE on TL1, DONE on TL2" % (name, summary))
        check([b["backup_id"] for b in cb] == c["ids"].split(), "%s: backup ids differ from the recorded ones" % name)
        cp = prefix(c["destination_path"], c["server"])
        names = wal_names(cp)
        check(bool(names) and all(n.endswith("." + sfx) for n in names),
              "%s: WAL objects not all *.%s: %s" % (name, sfx, [n for n in names if not n.endswith("." + sfx)]))
        check("00000002.history." + sfx in names, "%s: no 00000002.history.%s" % (name, sfx))
        check(any(re.match(r"^00000001[0-9A-F]{16}\.partial\.%s$" % re.escape(sfx), n) for n in names),
              "%s: no timeline-1 .partial.%s" % (name, sfx))
        check(any(re.match(r"^00000002[0-9A-F]{16}\.%s$" % re.escape(sfx), n) for n in names),
              "%s: no timeline-2 segment" % name)
        check_data_tar(name, cp, cb, c["backup_compression"])
        comps.append({
            "name": name,
            "suffix": sfx,
            "destination_path": c["destination_path"],
            "server": c["server"],
            "backup_compression": c["backup_compression"],
        })

    # ---- seg64
    s6 = env("seg64")
    s6b = backups(s6["server"])
    check([(b["status"], b["timeline"]) for b in s6b] == [("DONE", 1), ("DONE", 1)], "seg64: backups are not two DONE on TL1")
    check(all(b.get("xlog_segment_size") == 67108864 for b in s6b), "seg64: xlog_segment_size is not 67108864 in backup.info")
    check(int(s6["segment_size"]) == 67108864, "seg64: segment_size %s" % s6["segment_size"])
    s6p = prefix(s6["destination_path"], s6["server"])
    check_data_tar("seg64", s6p, s6b, s6["backup_compression"])
    segs = []
    for n in wal_names(s6p):
        m = SEG_RE.match(n.split(".", 1)[0])
        if m and n.split(".", 1)[1] == "gz":
            segs.append((int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)))
    segs.sort()
    check(bool(segs) and all(s[2] < 64 for s in segs), "seg64: a segment number >= 0x40 exists: %s" % [s for s in segs if s[2] >= 64])
    abs_ = [s[1] * 64 + s[2] for s in segs]
    check(abs_ == list(range(abs_[0], abs_[0] + len(abs_))) if abs_ else False,
          "seg64: archived segments are not contiguous (64 per log): %s" % abs_)
    check(any(s[1] == 0 and s[2] > 0x10 for s in segs) and any(s[1] >= 1 for s in segs),
          "seg64: segments do not cross from log 0 (seg > 0x10) into log 1")
    fmt = lambda s: "%08X%08X%08X" % s  # noqa: E731

    # ---- payload
    pl = env("payload")
    plb = backups(pl["server"])
    check([(b["status"], b["backup_id"]) for b in plb] == [("DONE", pl["ids"])],
          "payload: backups are %s, expected one DONE %s" % ([(b["status"], b["backup_id"]) for b in plb], pl["ids"]))
    plp = prefix(pl["destination_path"], pl["server"])
    pl_files = sorted(k.split("/", 2)[2] for k in under(plp) if k.startswith("base/%s/" % pl["ids"]))
    data_parts = [f for f in pl_files if re.match(r"^data(_\d{4})?\.tar$", f)]
    check(len(data_parts) >= 3, "payload: data tar in %d part(s), expected >= 3: %s" % (len(data_parts), pl_files))
    check("%s.tar" % pl["tablespace_oid"] in pl_files,
          "payload: no tablespace tar %s.tar: %s" % (pl["tablespace_oid"], pl_files))

    if errors:
        for e in errors:
            print("extra_json.py: CHECK FAILED: " + e, file=sys.stderr)
        return 1

    out = {
        "states": {
            "destination_path": st["destination_path"],
            "server": st["server"],
            "done": done,
            "failed": failed,
            "started": started,
            "failed_has_backup_history_file": failed_label,
            "backup_compression": st["backup_compression"],
        },
        "keep": {
            "destination_path": kp["destination_path"],
            "server": kp["server"],
            "ids": ids,
            "standalone": kp["standalone"],
            "backup_compression": kp["backup_compression"],
        },
        "payload": {
            "destination_path": pl["destination_path"],
            "server": pl["server"],
            "id": pl["ids"],
            "tablespace_oid": int(pl["tablespace_oid"]),
            "data_parts": len(data_parts),
        },
        "compression": comps,
        "seg64": {
            "destination_path": s6["destination_path"],
            "server": s6["server"],
            "segment_size": int(s6["segment_size"]),
            "ids": s6["ids"].split(),
            "backup_compression": s6["backup_compression"],
            "first_wal": fmt(segs[0]),
            "last_wal": fmt(segs[-1]),
        },
    }
    tmp = output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(tmp, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

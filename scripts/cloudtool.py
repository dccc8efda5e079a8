#!/usr/bin/env python3
"""Azure Blob Storage / Google Cloud Storage helper for the scenario scripts
and the tests, with the providers' own SDKs (azure-storage-blob,
google-cloud-storage). Run it with the tools venv's python.

usage: cloudtool.py (--cloud CLOUD_JSON | --env ENV_FILE) {azure|gcs} COMMAND [ARGS...]

Where to connect:
  --cloud DIR/cloud.json   written by `scenario.sh cloud`: azure.connection_string_file
                           and azure.container, or gcs.endpoint and gcs.bucket
  --env FILE               azure.env (AZURE_STORAGE_CONNECTION_STRING,
                           AZURE_CONTAINER) written by azurite.sh, or gcs.env
                           (STORAGE_EMULATOR_HOST, GCS_BUCKET) written by fakegcs.sh
  --container NAME         override the container (azure) / bucket (gcs)

Commands (keys are relative to the container / bucket):
  ping                     one request to the service; exit 1 on failure
  create-container         create the container (azure) or bucket (gcs) unless it exists
  sas-token [DAYS]         (azure) print a container SAS token with read+list
                           permission only, valid DAYS (default 365) days
  list [PREFIX]            one JSON object a line per object, sorted by key, from a
                           recursive (flat) listing: {"key", "size", "etag",
                           "last_modified", "tier"} (azure) or {..., "storage_class"} (gcs)
  ls [PREFIX]              "<size>\\t<key>" per object, sorted by key
  wait-keys TIMEOUT REGEX...  wait until every REGEX matches a key
  cat KEY                  print an object's body on stdout
  put KEY FILE             upload FILE ("-": stdin) to KEY (overwrites)
  put-many [THREADS]       upload the JSON lines on stdin ({"key", "body": base64},
                           as examples/bench_seed.rs --store emit writes them) with
                           THREADS (default 8) uploads in flight; a {"done": PATH}
                           line creates the file PATH once every object before it
                           is stored (resumable seeding)
  delete KEY...            delete objects (missing ones are ignored)
  delete-prefix PREFIX     delete every object whose key starts with PREFIX
                           (PREFIX must not be empty)
  set-tier KEY TIER        (azure) set the access tier: Hot, Cool, Cold or Archive
  copy-prefix SRC DST      copy every object under the prefix SRC to DST + the
                           rest of its key (azure: server-side copy keeping the
                           access tier; gcs: download and upload, metadata kept)
"""

import argparse
import datetime
import json
import os
import re
import sys
import time


def die(msg):
    sys.exit("cloudtool: %s" % msg)


def read_env_file(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            env[k.strip()] = v
    return env


def load_config(a):
    """{"connection_string", "container"} (azure) or {"endpoint", "bucket"} (gcs)."""
    if a.cloud:
        with open(a.cloud, encoding="utf-8") as f:
            c = json.load(f)[a.provider]
        if a.provider == "azure":
            with open(c["connection_string_file"], encoding="utf-8") as f:
                cfg = {"connection_string": f.read().strip(), "container": c["container"],
                       "account": c.get("account"), "key_file": c.get("key_file")}
        else:
            cfg = {"endpoint": c["endpoint"], "bucket": c["bucket"]}
    else:
        env = dict(os.environ)
        if a.env:
            env.update(read_env_file(a.env))
        if a.provider == "azure":
            cs = env.get("AZURE_STORAGE_CONNECTION_STRING")
            if not cs:
                die("no AZURE_STORAGE_CONNECTION_STRING (give --cloud or --env)")
            cfg = {"connection_string": cs, "container": env.get("AZURE_CONTAINER", "backups")}
        else:
            ep = env.get("STORAGE_EMULATOR_HOST") or env.get("GCS_ENDPOINT")
            if not ep:
                die("no STORAGE_EMULATOR_HOST (give --cloud or --env)")
            cfg = {"endpoint": ep, "bucket": env.get("GCS_BUCKET", "backups")}
    if a.container:
        cfg["container" if a.provider == "azure" else "bucket"] = a.container
    return cfg


def iso(t):
    return t.isoformat() if t is not None else None


# ---------------------------------------------------------------- azure --


class Azure:
    def __init__(self, cfg):
        from azure.storage.blob import BlobServiceClient

        self.cfg = cfg
        self.service = BlobServiceClient.from_connection_string(
            cfg["connection_string"], connection_timeout=5, read_timeout=30, retry_total=2
        )
        self.container = self.service.get_container_client(cfg["container"])

    def ping(self):
        next(iter(self.service.list_containers(results_per_page=1).by_page()), None)

    def create_container(self):
        from azure.core.exceptions import ResourceExistsError

        try:
            self.container.create_container()
        except ResourceExistsError:
            pass
        self.container.get_container_properties()

    def sas_token(self, days):
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        cs = dict(p.split("=", 1) for p in self.cfg["connection_string"].split(";") if "=" in p)
        return generate_container_sas(
            account_name=cs["AccountName"],
            container_name=self.cfg["container"],
            account_key=cs["AccountKey"],
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days),
        )

    def list(self, prefix):
        out = []
        for b in self.container.list_blobs(name_starts_with=prefix or None):
            out.append({
                "key": b.name,
                "size": b.size,
                "etag": b.etag,
                "last_modified": iso(b.last_modified),
                "tier": b.blob_tier,
            })
        out.sort(key=lambda o: o["key"])
        return out

    def cat(self, key):
        return self.container.download_blob(key).readall()

    def put(self, key, data, metadata=None):
        self.container.upload_blob(key, data, overwrite=True, metadata=metadata)

    def delete(self, key):
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.container.delete_blob(key)
        except ResourceNotFoundError:
            pass

    def set_tier(self, key, tier):
        self.container.get_blob_client(key).set_standard_blob_tier(tier)

    def copy(self, src, dst, tier=None):
        # Server-side copy (a same-account source is authorised by the shared
        # key), keeping the access tier. An Archive-tier blob cannot be read,
        # nor copied to another tier (BlobArchived), only to Archive.
        from azure.storage.blob import StandardBlobTier

        sc = self.container.get_blob_client(src)
        dc = self.container.get_blob_client(dst)
        kw = {}
        if tier:
            kw["standard_blob_tier"] = StandardBlobTier(tier)
        props = dc.start_copy_from_url(sc.url, requires_sync=False, **kw)
        deadline = time.monotonic() + 60
        while props.get("copy_status") == "pending":
            if time.monotonic() >= deadline:
                die("copy of %r to %r still pending after 60 s" % (src, dst))
            time.sleep(0.2)
            props = {"copy_status": dc.get_blob_properties().copy.status}
        if props.get("copy_status") not in ("success", None):
            die("copy of %r to %r ended %s" % (src, dst, props.get("copy_status")))


# ------------------------------------------------------------------ gcs --


class Gcs:
    def __init__(self, cfg):
        # With STORAGE_EMULATOR_HOST set, google-cloud-storage talks to the
        # emulator with anonymous credentials (as barman's client does).
        os.environ["STORAGE_EMULATOR_HOST"] = cfg["endpoint"]
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self.cfg = cfg
        self.client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "test"),
                                     credentials=AnonymousCredentials())
        self.bucket = self.client.bucket(cfg["bucket"])

    def ping(self):
        list(self.client.list_buckets(max_results=1))

    def create_container(self):
        from google.api_core.exceptions import Conflict

        if not self.bucket.exists():
            try:
                self.client.create_bucket(self.cfg["bucket"])
            except Conflict:
                pass
        self.bucket.reload()

    def list(self, prefix):
        out = []
        for b in self.client.list_blobs(self.bucket, prefix=prefix or None):
            out.append({
                "key": b.name,
                "size": b.size,
                "etag": b.etag,
                "last_modified": iso(b.updated),
                "storage_class": b.storage_class,
            })
        out.sort(key=lambda o: o["key"])
        return out

    def cat(self, key):
        return self.bucket.blob(key).download_as_bytes()

    def put(self, key, data, metadata=None):
        if key.endswith("/"):
            # fake-gcs-server's filesystem backend answers 200 and drops it.
            die("the GCS emulator cannot store a key ending in '/' (%r)" % key)
        blob = self.bucket.blob(key)
        if metadata:
            blob.metadata = metadata
        # No retries: fake-gcs-server's filesystem backend answers 500 for a
        # key that is also a "directory" of another key (a/b next to a/b/c),
        # and the default retry policy would spin on it for 120 s.
        blob.upload_from_string(data, retry=None, timeout=60)

    def delete(self, key):
        from google.api_core.exceptions import NotFound

        try:
            self.bucket.blob(key).delete()
        except NotFound:
            pass

    def copy(self, src, dst, tier=None):
        blob = self.bucket.get_blob(src)
        if blob is None:
            die("no object %r" % src)
        self.put(dst, blob.download_as_bytes(), metadata=blob.metadata)


# ----------------------------------------------------------------- main --


def put_many(c, threads):
    """Uploads the JSON lines on stdin; writes each "done" marker once every
    object before it is stored. Prints the count and rate on stderr."""
    import base64
    from concurrent.futures import ThreadPoolExecutor

    started, n, pending = time.monotonic(), 0, []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for line in sys.stdin:
            o = json.loads(line)
            if "done" in o:
                for f in pending:
                    f.result()
                pending = []
                with open(o["done"], "w", encoding="utf-8"):
                    pass
                continue
            pending.append(pool.submit(c.put, o["key"], base64.b64decode(o["body"])))
            n += 1
            if len(pending) >= 16 * threads:
                # Bounded memory; surfaces a failed upload early.
                pending[0].result()
                rest = []
                for f in pending:
                    if f.done():
                        f.result()
                    else:
                        rest.append(f)
                pending = rest
        for f in pending:
            f.result()
    secs = time.monotonic() - started
    print("put-many: %d objects in %.1f s (%.0f/s)" % (n, secs, n / max(secs, 1e-3)), file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cloud", help="cloud.json written by scenario.sh cloud")
    g.add_argument("--env", help="azure.env or gcs.env written by azurite.sh / fakegcs.sh")
    p.add_argument("--container", help="container (azure) or bucket (gcs) instead of the configured one")
    p.add_argument("provider", choices=["azure", "gcs"])
    p.add_argument("command")
    p.add_argument("args", nargs="*")
    a = p.parse_args()
    cfg = load_config(a)
    c = Azure(cfg) if a.provider == "azure" else Gcs(cfg)
    cmd, args = a.command, a.args

    def nargs(lo, hi=None):
        if len(args) < lo or (hi is not None and len(args) > hi):
            die("wrong number of arguments for %s (see --help)" % cmd)

    if cmd == "ping":
        nargs(0, 0)
        c.ping()
    elif cmd in ("create-container", "create-bucket"):
        nargs(0, 0)
        c.create_container()
    elif cmd == "sas-token":
        nargs(0, 1)
        if a.provider != "azure":
            die("sas-token is for azure only")
        print(c.sas_token(int(args[0]) if args else 365))
    elif cmd in ("list", "ls"):
        nargs(0, 1)
        objs = c.list(args[0] if args else "")
        for o in objs:
            if cmd == "list":
                print(json.dumps(o, sort_keys=True))
            else:
                print("%d\t%s" % (o["size"], o["key"]))
    elif cmd == "wait-keys":
        nargs(2)
        timeout, patterns = float(args[0]), [re.compile(r) for r in args[1:]]
        deadline = time.monotonic() + timeout
        while True:
            keys = [o["key"] for o in c.list("")]
            missing = [r.pattern for r in patterns if not any(r.search(k) for k in keys)]
            if not missing:
                return 0
            if time.monotonic() >= deadline:
                die("timed out after %gs waiting for keys matching: %s" % (timeout, ", ".join(missing)))
            time.sleep(0.3)
    elif cmd == "cat":
        nargs(1, 1)
        sys.stdout.buffer.write(c.cat(args[0]))
        sys.stdout.buffer.flush()
    elif cmd == "put":
        nargs(2, 2)
        if args[1] == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args[1], "rb") as f:
                data = f.read()
        c.put(args[0], data)
    elif cmd == "put-many":
        nargs(0, 1)
        put_many(c, int(args[0]) if args else 8)
    elif cmd == "delete":
        nargs(1)
        for k in args:
            c.delete(k)
    elif cmd == "delete-prefix":
        nargs(1, 1)
        if not args[0]:
            die("delete-prefix needs a non-empty prefix")
        for o in c.list(args[0]):
            c.delete(o["key"])
    elif cmd == "set-tier":
        nargs(2, 2)
        if a.provider != "azure":
            die("set-tier is for azure only (GCS storage classes are not emulated)")
        c.set_tier(args[0], args[1])
    elif cmd == "copy-prefix":
        nargs(2, 2)
        src, dst = args
        if not src:
            die("copy-prefix needs a non-empty source prefix")
        objs = c.list(src)
        if not objs:
            die("nothing under %r" % src)
        for o in objs:
            c.copy(o["key"], dst + o["key"][len(src):], o.get("tier"))
    else:
        die("unknown command %r (see --help)" % cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Small S3 helper for the scenario scripts (run it with the tools venv's python).

Credentials come from an env file written by seaweedfs.sh (S3_ENDPOINT,
S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION), given with --env FILE, or from the
same variables in the environment.

Commands:
  ping                                 ListBuckets once; exit 1 on failure
  create-bucket BUCKET                 create BUCKET unless it exists
  ls BUCKET [PREFIX]                   "<size>\t<key>" per object, sorted by key
  ls-json BUCKET [PREFIX]              [{"key", "size", "last_modified"}] as JSON
  wait-keys BUCKET TIMEOUT REGEX...    wait until every REGEX matches a key
  cat BUCKET KEY                       print an object's body on stdout
  delete BUCKET KEY...                 delete objects
  delete-prefix BUCKET PREFIX          delete every object whose key starts with
                                       PREFIX (PREFIX must not be empty)
"""

import argparse
import json
import os
import re
import sys
import time

import boto3
from botocore.config import Config


def load_env(path):
    env = {}
    if path:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                k, v = line.split("=", 1)
                env[k.strip()] = v.strip().strip("'\"")
    for k in ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_REGION"):
        env.setdefault(k, os.environ.get(k, ""))
    missing = [k for k in ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY") if not env[k]]
    if missing:
        sys.exit("s3tool: missing %s" % ", ".join(missing))
    return env


def client(env):
    return boto3.client(
        "s3",
        endpoint_url=env["S3_ENDPOINT"],
        aws_access_key_id=env["S3_ACCESS_KEY"],
        aws_secret_access_key=env["S3_SECRET_KEY"],
        region_name=env["S3_REGION"] or "us-east-1",
        config=Config(
            connect_timeout=3,
            read_timeout=15,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )


def list_objects(s3, bucket, prefix=""):
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(page.get("Contents", []))
    out.sort(key=lambda o: o["Key"])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", help="env file with S3_* variables")
    p.add_argument("command")
    p.add_argument("args", nargs="*")
    a = p.parse_args()
    s3 = client(load_env(a.env))

    if a.command == "ping":
        s3.list_buckets()
    elif a.command == "create-bucket":
        (bucket,) = a.args
        names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in names:
            s3.create_bucket(Bucket=bucket)
        s3.head_bucket(Bucket=bucket)
    elif a.command in ("ls", "ls-json"):
        bucket, prefix = a.args[0], (a.args[1] if len(a.args) > 1 else "")
        objs = list_objects(s3, bucket, prefix)
        if a.command == "ls":
            for o in objs:
                print("%d\t%s" % (o["Size"], o["Key"]))
        else:
            json.dump(
                [{"key": o["Key"], "size": o["Size"], "last_modified": o["LastModified"].isoformat()} for o in objs],
                sys.stdout,
                indent=1,
            )
            print()
    elif a.command == "wait-keys":
        bucket, timeout, patterns = a.args[0], float(a.args[1]), [re.compile(r) for r in a.args[2:]]
        deadline = time.monotonic() + timeout
        while True:
            keys = [o["Key"] for o in list_objects(s3, bucket)]
            missing = [r.pattern for r in patterns if not any(r.search(k) for k in keys)]
            if not missing:
                return 0
            if time.monotonic() >= deadline:
                sys.exit("s3tool: timed out after %gs waiting for keys matching: %s" % (timeout, ", ".join(missing)))
            time.sleep(0.3)
    elif a.command == "cat":
        bucket, key = a.args
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    elif a.command == "delete-prefix":
        bucket, prefix = a.args
        if not prefix:
            sys.exit("s3tool: delete-prefix needs a non-empty prefix")
        for o in list_objects(s3, bucket, prefix):
            s3.delete_object(Bucket=bucket, Key=o["Key"])
    elif a.command == "delete":
        bucket, keys = a.args[0], a.args[1:]
        for k in keys:
            s3.delete_object(Bucket=bucket, Key=k)
    else:
        sys.exit("s3tool: unknown command %r" % a.command)
    return 0


if __name__ == "__main__":
    sys.exit(main())

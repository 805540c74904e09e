"""The publish window per store: how long a plain reader may see a run's parts before its commit.

    python -m benchmarks.publish_window [--parts 100] [--part-bytes 20000] [--repeat 3] [--stores local,moto,s3rver]

A run's parts become visible one by one while `commits.publish` completes them (S3:
CompleteMultipartUpload per part; local: a rename per part), then the commit manifest is written and the
shell records the materialization. A reader that lists the prefix (Athena, Spark, Glue crawlers) sees the
parts completed so far during that window; Dagster's readers and manifest readers do not. This prints the
window (the whole ``publish``: intent, completions, manifest) per ``--parts`` parts on each store, beside
the time the same parts take as plain PUTs on the same store (the reference: writing the objects directly,
with no pending step, which is what a writer without a commit protocol shows readers for as long).

The S3 servers are real, over HTTP on 127.0.0.1: moto's ThreadedMotoServer and npm's s3rver
(``.ci/node``, ``npm ci --prefix .ci/node``; skipped with a note when Node.js or the package is missing).
Figures in docs/guarantees.md ("The publish window").
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from glueflow_dagster.core.commits import Attempt, publish
from glueflow_dagster.core.storage import LocalStorage, S3Storage, Storage


def _client(endpoint: str, key: str, secret: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}),
    )


@contextmanager
def local_store() -> Iterator[Storage]:
    with tempfile.TemporaryDirectory(prefix="glueflow-publish-") as tmp:
        yield LocalStorage(Path(tmp) / "output")


@contextmanager
def moto_store() -> Iterator[Storage]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = _client(f"http://{host}:{port}", "testing", "testing")
        client.create_bucket(Bucket="bench")
        yield S3Storage("bench", "output", client)
    finally:
        server.stop()


@contextmanager
def s3rver_store() -> Iterator[Storage]:
    import shutil

    from glueflow_dagster_tests.support import s3rver

    reason = s3rver.missing_reason()
    if reason is not None:
        raise RuntimeError(reason)
    server = s3rver.start_s3rver()
    try:
        client = _client(server.endpoint, s3rver.ACCESS_KEY, s3rver.SECRET_KEY)
        client.create_bucket(Bucket="bench")
        yield S3Storage("bench", "output", client)
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


STORES: dict[str, Callable[[], Any]] = {"local": local_store, "moto": moto_store, "s3rver": s3rver_store}


def one_round(storage: Storage, parts: int, payload: Path) -> tuple[float, float]:
    """(publish seconds, plain PUT seconds) for ``parts`` parts of ``payload``."""
    attempt = Attempt(uuid.uuid4().hex)
    pending = [storage.begin_upload(payload, f"{attempt.part_prefix}-part-r-{i:05d}.json") for i in range(parts)]
    started = time.perf_counter()
    publish(storage, attempt, "bench", pending, records_written=0)
    window = time.perf_counter() - started
    data = payload.read_bytes()
    started = time.perf_counter()
    for i in range(parts):
        storage.write_bytes(f"plain-{attempt.run_id}-{i:05d}.json", data)
    plain = time.perf_counter() - started
    return window, plain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=100)
    parser.add_argument("--part-bytes", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default="local,moto,s3rver")
    args = parser.parse_args(argv)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="glueflow-publish-payload-") as tmp:
        payload = Path(tmp) / "part.json"
        line = b'{"event_id":123456,"user_id":7,"amount":12.25}\n'
        payload.write_bytes(line * max(1, args.part_bytes // len(line)))
        for name in args.stores.split(","):
            try:
                with STORES[name]() as storage:
                    rounds = [one_round(storage, args.parts, payload) for _ in range(args.repeat)]
            except RuntimeError as err:
                rows.append(f"| {name} | skipped: {err} | |")
                continue
            window = statistics.median(r[0] for r in rounds)
            plain = statistics.median(r[1] for r in rounds)
            per100 = 100 / args.parts
            rows.append(f"| {name} | {window * per100:.2f} s | {plain * per100:.2f} s |")
    median = f"median of {args.repeat}; {os.cpu_count()} cores"
    print(f"publish window per 100 parts of {args.part_bytes:,} bytes ({median})")
    print("| store | publish (intent, completions, manifest) | reference: the same parts as plain PUTs |")
    print("|---|---|---|")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        raise SystemExit(main())

"""Many small objects (Glue's groupFiles case): ``python -m benchmarks.stage --small-files N [--s3]``.

    python -m benchmarks.stage --small-files 100000         # 100,000 objects of 1-4 KB against a few large ones
    python -m benchmarks.stage --small-files 10000 --s3     # the same on S3 (a moto server), against boto3 GETs

Generates N objects of 1-4 KB of the stage benchmark's events, cut at line boundaries from one generated
block, and the same bytes as a few large objects (at most ``--object-mb`` each): glueflow runs on both,
side by side, in MB/s of input (target: the small objects at least a third of the large ones' MB/s); each
run is ``benchmarks.stage``'s own glueflow child. With ``--s3`` it starts a moto ThreadedMotoServer in this
process, uploads the N objects to it, and compares the stage over S3Storage (listing not timed; the mapped
output goes to a local folder) with a plain boto3 loop of GetObject calls over the same keys on a
ThreadPoolExecutor of the same size, in objects per second (target: glueflow at least half the loop's
rate). Both use a client with ``max_pool_connections`` equal to that pool. The server is stopped at the
end; each side runs in its own child process (this module's child modes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.children import child_env, child_line, cpu_seconds, load_average, machine, run_child, scratch
from benchmarks.events import MAPPINGS, MB, OBJECT_MB

SMALL_MIN_BYTES, SMALL_MAX_BYTES = 1000, 4000  # the "1-4 KB"
GET_THREADS = 16  # the plain boto3 loop's pool, and the client's connection pool on both sides
BUCKET = "glueflow-bench"
SMALL_PREFIX = "small"


def _s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
            max_pool_connections=GET_THREADS,
        ),
    )


def _small_objects(count: int) -> tuple[bytes, list[int]]:
    """One block of JSON lines and the end offsets of ``count`` line-aligned objects of 1-4 KB cut from it."""
    import bisect
    import random

    from glueflow_dagster.core.sample_data import BYTES_PER_EVENT, events_frame

    events = math.ceil(count * (SMALL_MIN_BYTES + SMALL_MAX_BYTES) / 2 / BYTES_PER_EVENT * 1.3) + 100
    data = events_frame(events).collect().write_ndjson().encode()
    line_ends, at = [], data.find(b"\n")
    while at >= 0:  # C-speed find: about 0.1 s per million lines
        line_ends.append(at + 1)
        at = data.find(b"\n", at + 1)
    rng = random.Random(0)
    ends, start = [], 0
    for _ in range(count):
        want = rng.randint(SMALL_MIN_BYTES, SMALL_MAX_BYTES)
        index = bisect.bisect_right(line_ends, start + want) - 1  # the last line end within the size
        if index < 0 or line_ends[index] - start < SMALL_MIN_BYTES:
            index = bisect.bisect_left(line_ends, start + SMALL_MIN_BYTES)
        if index >= len(line_ends):
            raise SystemExit("benchmark bug: generated too few events for the small objects")
        start = line_ends[index]
        ends.append(start)
    return data[:start], ends


def generate_small(folder: Path, count: int, object_mb: int, endpoint: str | None) -> dict[str, Any]:
    """N small objects in ``folder/small`` (or uploaded to the moto server at ``endpoint``) and, locally,
    the same bytes as a few large objects in ``folder/large``."""
    data, ends = _small_objects(count)
    starts = [0, *ends[:-1]]
    rows = data.count(b"\n")
    if endpoint is not None:
        from concurrent.futures import ThreadPoolExecutor

        client = _s3_client(endpoint)
        client.create_bucket(Bucket=BUCKET)
        view = memoryview(data)

        def put(index: int) -> None:
            key = f"{SMALL_PREFIX}/o-{index:07d}.json"
            client.put_object(Bucket=BUCKET, Key=key, Body=bytes(view[starts[index] : ends[index]]))

        with ThreadPoolExecutor(GET_THREADS) as pool:
            list(pool.map(put, range(count)))
        return {"bytes": len(data), "files": count, "rows": rows}
    small, large = folder / "small", folder / "large"
    small.mkdir(parents=True)
    large.mkdir(parents=True)
    view = memoryview(data)
    for index, (begin, end) in enumerate(zip(starts, ends, strict=True)):
        # Spread over folders of 1,000 like a partitioned producer's; plain os calls keep generation short.
        folder_path = small / f"batch={index // 1000:05d}"
        if index % 1000 == 0:
            folder_path.mkdir()
        fd = os.open(folder_path / f"o-{index:07d}.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, view[begin:end])
        finally:
            os.close(fd)
    limit, begin, part = object_mb * MB, 0, 0
    while begin < len(data):
        end = data.rfind(b"\n", begin, begin + limit) + 1 if begin + limit < len(data) else len(data)
        (large / f"events-{part:04d}.json").write_bytes(view[begin:end])
        begin, part = end, part + 1
    return {"bytes": len(data), "files": count, "rows": rows, "large_files": part}


def run_glueflow_s3(endpoint: str, out: Path) -> dict[str, Any]:
    from glueflow_dagster.core.quarantine import list_stage_inputs
    from glueflow_dagster.core.stage import run_stage
    from glueflow_dagster.core.storage import LocalStorage, S3Storage

    source = S3Storage(BUCKET, SMALL_PREFIX, _s3_client(endpoint))
    objects = list(list_stage_inputs(source, recurse=True, exclusions=()))
    cpu, started = cpu_seconds(), time.perf_counter()
    result = run_stage(source, objects, MAPPINGS, LocalStorage(out), name_prefix="run-bench", compression="gzip")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_s": cpu_seconds() - cpu,
        "objects": result.files_read,
        "records": result.records_written,
        "bytes_in": result.bytes_read,
        "errors": result.error_records + result.error_files + len(result.vanished),
    }


def run_boto3_gets(endpoint: str) -> dict[str, Any]:
    """The reference: GetObject and read every body, GET_THREADS at a time, nothing else."""
    from concurrent.futures import ThreadPoolExecutor

    client = _s3_client(endpoint)
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{SMALL_PREFIX}/")
        for obj in page.get("Contents", ())
    ]

    def get(key: str) -> int:
        return len(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    cpu, started = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(GET_THREADS) as pool:
        total = sum(pool.map(get, keys))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu_s": cpu_seconds() - cpu, "objects": len(keys), "records": -1, "bytes_in": total}


def run(args: argparse.Namespace) -> None:
    """Generate the small objects, run both sides (best of ``--repeat``), print them side by side."""
    count = args.small_files
    extra_env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="glueflow-bench-small-", dir=args.tmp_dir) as tmp:
        data, out = Path(tmp) / "input", Path(tmp) / "output"
        data.mkdir()
        if args.s3:
            _small_files_s3(count, data, out, args.repeat, extra_env)
            return
        started = time.perf_counter()
        generated = json.loads(
            child_line(
                "benchmarks.small_files",
                ["--generate-small", str(count), "--data", str(data), "--object-mb", str(args.object_mb)],
            )
        )
        os.sync()
        print(
            f"input: {count:,} objects of 1-4 KB, {generated['bytes'] / MB:,.1f} MB of JSON lines, "
            f"{generated['rows']:,} records; the same bytes in {generated['large_files']} large objects "
            f"(ready in {time.perf_counter() - started:.0f} s)"
        )
        print(machine())
        runs: dict[str, list[dict[str, Any]]] = {"large": [], "small": []}
        for _ in range(args.repeat):
            for side in ("large", "small"):
                stage = ["--engine", "glueflow", "--data", str(data / side)]
                runs[side].append(_spawn("benchmarks.stage", stage, out, extra_env))
        print(f"load average after: {load_average()}")
    labels = {"small": f"{count:,} small objects", "large": f"{generated['large_files']} large objects"}
    best = _small_table(runs, labels, generated["bytes"])
    ratio = best["large"]["seconds"] / best["small"]["seconds"]
    print(f"small / large MB/s: {ratio:.2f} (target >= 0.33)")
    print("records written agree" if best["small"]["records"] == best["large"]["records"] else "records DIFFER")


def _small_files_s3(count: int, data: Path, out: Path, repeat: int, extra_env: dict[str, str]) -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        started = time.perf_counter()
        generated = json.loads(
            child_line(
                "benchmarks.small_files", ["--generate-small", str(count), "--data", str(data), "--endpoint", endpoint]
            )
        )
        print(
            f"input: {count:,} objects of 1-4 KB on a moto server ({endpoint}, this process), "
            f"{generated['bytes'] / MB:,.1f} MB, {generated['rows']:,} records "
            f"(generated and uploaded in {time.perf_counter() - started:.0f} s)"
        )
        print(machine())
        runs: dict[str, list[dict[str, Any]]] = {"boto3": [], "glueflow": []}
        for _ in range(repeat):
            for side, engine in (("boto3", "boto3-get"), ("glueflow", "glueflow-s3")):
                one_side = ["--small-engine", engine, "--endpoint", endpoint]
                runs[side].append(_spawn("benchmarks.small_files", one_side, out, extra_env))
        print(f"load average after: {load_average()}")
    finally:
        server.stop()
    labels = {
        "boto3": f"boto3 GETs, {GET_THREADS} threads",
        "glueflow": "glueflow (run_stage, S3)",
    }
    best = _small_table(runs, labels, generated["bytes"])
    ratio = best["boto3"]["seconds"] / best["glueflow"]["seconds"]
    print(f"glueflow / boto3 objects/s: {ratio:.2f} (target >= 0.50); glueflow also maps and writes the records")
    if best["glueflow"].get("errors"):
        print(f"glueflow reported {best['glueflow']['errors']} bad or missing objects (expected 0)")


def _spawn(module: str, args: list[str], out: Path, extra_env: dict[str, str]) -> dict[str, Any]:
    """One side in a child process (``python -m module args --out OUT``); its figures and peak RSS."""
    with scratch(out):
        return run_child(module, [*args, "--out", str(out)], what=args[1], env=child_env(extra_env))


def _small_table(runs: dict[str, list[dict[str, Any]]], labels: dict[str, str], size: int) -> dict[str, Any]:
    header = f"{'':28} {'seconds':>8} {'MB/s in':>8} {'objects/s':>10} {'CPU s':>7} {'records':>10}"
    print()
    print(header)
    print("-" * len(header))
    best: dict[str, Any] = {}
    for name, results in runs.items():
        fastest = best[name] = min(results, key=lambda r: r["seconds"])
        seconds = fastest["seconds"]
        records = f"{fastest['records']:,}" if fastest["records"] >= 0 else "-"
        print(
            f"{labels[name]:28} {seconds:8.2f} {size / MB / seconds:8.1f} {fastest['objects'] / seconds:10,.0f} "
            f"{fastest['cpu_s']:7.1f} {records:>10}"
        )
        if len(results) > 1:
            print(f"{'':28} all runs (s): " + ", ".join(f"{r['seconds']:.2f}" for r in results))
    print()
    return best


def main(argv: list[str] | None = None) -> None:
    """The child modes: generate the objects, or run one side over S3."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.small_files", description=__doc__.splitlines()[0])
    parser.add_argument("--generate-small", type=int, metavar="N", help="generate N objects in --data")
    parser.add_argument("--small-engine", choices=["glueflow-s3", "boto3-get"], help="one side over S3")
    parser.add_argument("--object-mb", type=int, default=OBJECT_MB, help="size of one large object")
    parser.add_argument("--endpoint", help="the moto server's URL")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.generate_small:
        print(json.dumps(generate_small(args.data, args.generate_small, args.object_mb, args.endpoint)))
    elif args.small_engine == "glueflow-s3":
        print(json.dumps(run_glueflow_s3(args.endpoint, args.out)))
    elif args.small_engine == "boto3-get":
        print(json.dumps(run_boto3_gets(args.endpoint)))
    else:
        parser.error("give --generate-small N or --small-engine")


if __name__ == "__main__":
    main()

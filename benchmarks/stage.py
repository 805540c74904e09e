"""One Input stage through the real job code, side by side with the same mapping in DuckDB.

    python -m benchmarks.stage                  # 400 MB of JSON lines
    python -m benchmarks.stage --size-mb 2000   # 2 GB
    python -m benchmarks.stage --repeat 3       # best of three runs per engine
    python -m benchmarks.stage --keep-data /tmp/bench-400   # keep the input for the next run
    python -m benchmarks.stage --size-mb 1000 --object-mb 1000 --engines glueflow   # one 1 GB object
    python -m benchmarks.stage --small-files 100000         # 100,000 objects of 1-4 KB against a few large ones
    python -m benchmarks.stage --small-files 10000 --s3     # the same on S3 (a moto server), against boto3 GETs
    python -m benchmarks.stage --shapes --size-mb 100       # data shapes beside DuckDB and the polars floor

Generates nested JSON-lines events (``glueflow_dagster.core.sample_data.events_frame``) in a temporary folder,
then runs each engine in its own child process, one after the other:

* ``glueflow``: ``run_stage`` (list -> read -> ApplyMapping -> write gzip JSON-lines parts), local folders,
  default options (gzip level 2, written by ISA-L);
* ``glueflow (gzip level 4)`` and ``(gzip level 6)``: the same with ``compression_level: 4`` (zlib, the
  default before ISA-L) and ``6`` (zlib's default), to show what the default level (2, ISA-L) buys;
* ``duckdb (auto schema)``: ``COPY (SELECT ...) TO ... (FORMAT JSON, COMPRESSION GZIP)`` over
  ``read_json(...)`` with DuckDB's own schema detection, default settings (all cores);
* ``duckdb (columns)``: the same with the mapped columns declared as VARCHAR/STRUCT up front (the work
  glueflow does: read text, cast), in case that is DuckDB's faster form (``--engines ...,duckdb`` means this);
* ``spark``: the PySpark stage script of ``engine: spark`` (its session and ``run``, without Pipes) on Spark
  ``local[2]``, 1 GB driver heap; its row is a cold stage, the JVM's start-up included, in seconds and in
  the CPU of the whole process tree (driver, JVM, Python workers); the parts and a second run in the warm
  JVM are printed below the table, and its peak RSS is reported (the JVM is reaped by
  the child, so the child's ``wait4`` peak covers it).

Throughput is megabytes (10^6 bytes) of uncompressed input per second of the engine's work (timed inside
the child, without interpreter start-up); peak RSS is the child's whole-process maximum resident set,
read by the parent with ``os.wait4``. Linux counts in a child's peak the parent's resident set at the
fork, before the exec, so the parent stays small: it generates the data in a child process too and
imports neither polars nor DuckDB. The ratios compare each glueflow row with the faster DuckDB variant,
in time, CPU time and output bytes. The generated data is deleted afterwards (unless ``--keep-data``).
Other load on the machine slows both engines: the load average is printed with the figures.

``--small-files N`` (Glue's groupFiles case) generates N objects of 1-4 KB of the same events instead, cut
at line boundaries from one generated block, and the same bytes as a few large objects (at most
``--object-mb`` each): glueflow runs on both, side by side, in MB/s of input (target: the small objects
at least a third of the large ones' MB/s). With ``--s3`` it starts a moto ThreadedMotoServer in this
process, uploads the N objects to it, and compares the stage over S3Storage (listing not timed; the
mapped output goes to a local folder) with a plain boto3 loop of GetObject calls over the same keys on a
ThreadPoolExecutor of the same size, in objects per second (target: glueflow at least half the loop's
rate). Both use a client with ``max_pool_connections`` equal to that pool. The server is stopped at the
end; each side runs in its own child process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MB = 1_000_000
OBJECT_MB = 128  # default size of one generated input object
MAPPINGS = [
    ["id", "long", "event_id", "long"],  # rename
    ["type", "string", "event_type", "string"],  # rename
    ["ts", "string", "event_time", "timestamp"],  # string -> timestamp
    ["user.id", "long", "user_id", "long"],  # nested source
    ["user.country", "string", "user.country", "string"],  # nested source -> nested target
    ["amount", "string", "amount", "double"],  # string -> double
    ["device.os", "string", "device_os", "string"],  # nested source, renamed
]
SELECT = """
    TRY_CAST(id AS BIGINT) AS event_id,
    CAST(type AS VARCHAR) AS event_type,
    TRY_CAST(ts AS TIMESTAMP) AS event_time,
    TRY_CAST("user".id AS BIGINT) AS user_id,
    {'country': CAST("user".country AS VARCHAR)} AS "user",
    TRY_CAST(amount AS DOUBLE) AS amount,
    CAST(device.os AS VARCHAR) AS device_os
"""
DUCKDB_COLUMNS = (
    "{id: 'VARCHAR', type: 'VARCHAR', ts: 'VARCHAR', \"user\": 'STRUCT(id VARCHAR, country VARCHAR)', "
    "device: 'STRUCT(os VARCHAR)', amount: 'VARCHAR'}"
)
ENGINES = {
    "glueflow": "glueflow (run_stage)",
    "glueflow-level4": "glueflow (gzip level 4)",
    "glueflow-level6": "glueflow (gzip level 6)",
    "duckdb-auto": "duckdb (auto schema)",
    "duckdb-columns": "duckdb (columns)",
    "spark": "spark local[2]",
}
SPARK_MASTER = "local[2]"


# --------------------------------------------------------------------------------------------------
# Children: one engine each


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _tree_cpu_seconds() -> float:
    """CPU seconds so far of this process and every live descendant (the JVM, its Python workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(name)] = fields
            children.setdefault(int(fields[1]), []).append(int(name))
    total, todo = 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        fields = stats.get(pid)
        if fields is not None:  # utime, stime, and those of waited-for children
            total += sum(int(v) for v in fields[11:15]) / tick
        todo += children.get(pid, [])
    return total


def run_glueflow(data: Path, out: Path, compression_level: int | None = None) -> dict[str, Any]:
    from glueflow_dagster.core.quarantine import list_stage_inputs
    from glueflow_dagster.core.stage import run_stage
    from glueflow_dagster.core.storage import LocalStorage

    source, target = LocalStorage(data), LocalStorage(out)
    objects = list(list_stage_inputs(source, recurse=True, exclusions=()))
    cpu, started = _cpu_seconds(), time.perf_counter()
    result = run_stage(
        source,
        objects,
        MAPPINGS,
        target,
        name_prefix="run-bench",
        compression="gzip",
        compression_level=compression_level,
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_s": _cpu_seconds() - cpu,
        "records": result.records_written,
        "objects": result.files_read,
        "bytes_in": result.bytes_read,
        "bytes_out": result.bytes_written,
        "files_out": result.files_written,
        "errors": result.error_records + result.error_files,
        "cast_errors": result.cast_errors,
    }


def run_duckdb(data: Path, out: Path, *, columns: bool) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    files = sorted(str(p) for p in data.glob("*.json"))
    options = f", columns={DUCKDB_COLUMNS}" if columns else ""
    target = out / "duckdb.json.gz"
    sql = (
        f"COPY (SELECT {SELECT} FROM read_json({files!r}, format='newline_delimited'{options})) "
        f"TO '{target}' (FORMAT JSON, COMPRESSION GZIP)"
    )
    cpu, started = _cpu_seconds(), time.perf_counter()
    copied = con.execute(sql).fetchall()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_s": _cpu_seconds() - cpu,
        "records": int(copied[0][0]) if copied and copied[0] else -1,
        "bytes_in": sum(Path(f).stat().st_size for f in files),
        "bytes_out": target.stat().st_size,
        "files_out": 1,
        "threads": con.execute("SELECT current_setting('threads')").fetchone()[0],  # type: ignore[index]
    }


def run_spark(data: Path, out: Path) -> dict[str, Any]:
    """The stage script's ``run`` (what ``engine: spark`` runs), without Pipes, Spark ``local[2]``.

    The session is the stage script's own (``start_session``: the local launcher's JVM options and
    settings). The CPU counted is the whole process tree's (this driver, the JVM, its Python workers,
    from /proc): ``cpu_s`` is a cold stage as the local launcher runs it, the JVM's start-up included;
    ``startup_cpu_s`` and ``stage_cpu_s`` are its two parts. A second run in the same JVM (JIT warm, as a
    long-lived cluster's) is timed apart (``warm_*``). The JVM is a child of this process; it is ended
    and reaped at the end, so the parent's ``wait4`` peak RSS covers it and this child reports the JVM's
    own peak (``jvm_peak_rss_mb``) too.
    """
    import resource

    from glueflow_dagster.core.quarantine import list_stage_inputs
    from glueflow_dagster.core.storage import LocalStorage
    from glueflow_dagster.spark import jvm
    from glueflow_dagster.spark.stage_script import run, start_session

    objects = list(list_stage_inputs(LocalStorage(data), recurse=True, exclusions=()))
    extras = {
        "manifest": [
            {"key": o.key, "size": o.size, "last_modified_ms": o.last_modified_ms, "etag": o.etag} for o in objects
        ],
        "mappings": MAPPINGS,
        "source": str(data),
        "target": str(out),
        "compression": "gzip",
        "part_prefix": "run-bench",
        "quarantine_prefix": "_errors/run-bench",
        "max_error_records": 0,
        "target_file_bytes": 128 * 1024 * 1024,
        "master": SPARK_MASTER,
        "driver_memory": "1g",
    }
    workdir = Path(tempfile.mkdtemp(prefix="glueflow-bench-spark-"))
    archive = jvm.archive_path()  # the local launcher's class archive: mapped when there, else written at exit
    archived = "off" if archive is None else "mapped" if archive.is_file() else "written at the JVM's exit"
    java_options, pending_archive = jvm.java_options(archive)
    tree, started = _tree_cpu_seconds(), time.perf_counter()
    session = start_session(extras, workdir, java_options)
    startup, startup_cpu = time.perf_counter() - started, _tree_cpu_seconds() - tree
    tree, started = _tree_cpu_seconds(), time.perf_counter()
    figures = run(extras, lambda _message: None)
    seconds, stage_cpu = time.perf_counter() - started, _tree_cpu_seconds() - tree
    warm_out = out.with_name(out.name + "-warm")
    tree, started = _tree_cpu_seconds(), time.perf_counter()
    warm = run({**extras, "target": str(warm_out)}, lambda _message: None)
    warm_seconds, warm_cpu = time.perf_counter() - started, _tree_cpu_seconds() - tree
    shutil.rmtree(warm_out, ignore_errors=True)
    session.stop()
    jvm.end_gateway_jvm()  # end the JVM now and reap it, so its usage is counted
    jvm.keep_archive(pending_archive, archive)
    shutil.rmtree(workdir, ignore_errors=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "seconds": startup + seconds,
        "startup_s": startup,
        "stage_s": seconds,
        "cpu_s": startup_cpu + stage_cpu,
        "startup_cpu_s": startup_cpu,
        "stage_cpu_s": stage_cpu,
        "warm_seconds": warm_seconds,
        "warm_cpu_s": warm_cpu,
        "spark_jobs": figures.get("spark_jobs"),
        "warm_spark_jobs": warm.get("spark_jobs"),
        "records": figures["records_written"],
        "bytes_in": sum(o.size for o in objects),
        "bytes_out": sum(p["size"] for p in figures["pending"]),
        "files_out": len(figures["pending"]),
        "errors": figures["error_records"] + figures["error_files"],
        "cast_errors": figures["cast_errors"],
        "jvm_peak_rss_mb": children.ru_maxrss * 1024 / MB,
        "class_archive": archived,
    }


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
    cpu, started = _cpu_seconds(), time.perf_counter()
    result = run_stage(source, objects, MAPPINGS, LocalStorage(out), name_prefix="run-bench", compression="gzip")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_s": _cpu_seconds() - cpu,
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

    cpu, started = _cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(GET_THREADS) as pool:
        total = sum(pool.map(get, keys))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu_s": _cpu_seconds() - cpu, "objects": len(keys), "records": -1, "bytes_in": total}


def child(engine: str, data: Path, out: Path) -> None:
    if engine == "spark":
        figures = run_spark(data, out)
    elif engine == "glueflow":
        figures = run_glueflow(data, out)
    elif engine.startswith("glueflow-level"):
        figures = run_glueflow(data, out, compression_level=int(engine.removeprefix("glueflow-level")))
    else:
        figures = run_duckdb(data, out, columns=engine == "duckdb-columns")
    print(json.dumps(figures))


# --------------------------------------------------------------------------------------------------
# Parent: data, children, table


def generate(folder: Path, size_mb: int, object_mb: int = OBJECT_MB) -> tuple[int, int, int]:
    """JSON-lines objects of about ``object_mb`` MB each, totalling at least ``size_mb`` MB; (bytes, files, rows)."""
    from glueflow_dagster.core.sample_data import events_frame, write_events_file

    sample = events_frame(20_000).collect().write_ndjson().encode()
    per_event = len(sample) / 20_000
    total_events = math.ceil(size_mb * MB / per_event * 1.005)
    files = max(1, math.ceil(size_mb / object_mb))
    per_file = math.ceil(total_events / files)
    for index in range(files):
        write_events_file(folder / f"events-{index:04d}.json", per_file, first_id=index * per_file, seed=index)
    size = sum(p.stat().st_size for p in folder.glob("*.json"))
    return size, files, per_file * files


def _input(data: Path, size_mb: int, object_mb: int) -> tuple[int, int, int]:
    """The benchmark's input in ``data``: generated unless a kept folder already holds this size."""
    marker = data.parent / f"{data.name}.benchmark.json"  # beside the data: it is not input
    if marker.exists():
        kept = json.loads(marker.read_text())
        if (kept["size_mb"], kept.get("object_mb", OBJECT_MB)) == (size_mb, object_mb):
            return kept["bytes"], kept["files"], kept["rows"]
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    generated = _run_child(
        ["--generate", "--data", str(data), "--size-mb", str(size_mb), "--object-mb", str(object_mb)]
    )
    size, files, rows = json.loads(generated)
    kept = {"size_mb": size_mb, "object_mb": object_mb, "bytes": size, "files": files, "rows": rows}
    marker.write_text(json.dumps(kept))
    return size, files, rows


def spawn(engine: str, data: Path, out: Path, extra_env: dict[str, str], *, digest: bool = False) -> dict[str, Any]:
    """Run one engine in a child process; adds its peak RSS (MB) from wait4, and with ``digest`` the digest
    of the records it wrote (computed by another child afterwards, so nothing measured pays for it)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = _child_env(extra_env)
    cmd = [sys.executable, "-m", "benchmarks.stage", "--engine", engine, "--data", str(data), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    output = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{engine} child failed with exit code {proc.returncode}")
    figures = json.loads(output.decode().strip().splitlines()[-1])
    figures["peak_rss_mb"] = usage.ru_maxrss * 1024 / MB  # Linux reports KiB
    if digest:
        figures["records_digest"] = _run_child(["--digest", str(out)])
    shutil.rmtree(out, ignore_errors=True)
    return figures


def records_digest(out: Path) -> str:
    """An order-independent digest of the records an engine's parts hold: each record's fields by name and
    value (polars parses every part; the row hashes are summed), so parts, order and number formatting
    do not matter, the records do. DuckDB's output has other field spellings and is not compared."""
    import polars as pl

    files = sorted(p for p in out.rglob("*part-r-*") if p.is_file() and "_errors" not in p.parts)
    if not files:
        return "no records"
    frame = pl.concat([pl.read_ndjson(f) for f in files], how="diagonal_relaxed")
    frame = frame.select(sorted(frame.columns))
    return f"{frame.height} records, digest {int(frame.hash_rows(seed=0).cast(pl.UInt64).sum()) % 2**64:016x}"


def _child_env(extra_env: dict[str, str]) -> dict[str, str]:
    """The environment of a child process: ours, ``extra_env``, and this checkout importable."""
    path = os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])
    return {**os.environ, **extra_env, "PYTHONPATH": path}


def _run_child(args: list[str]) -> str:
    """Run this module in a child process with ``args``; its last line of output."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.stage", *args], env=_child_env({}), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark child {args[0]} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip().splitlines()[-1]


def _versions() -> str:
    import duckdb
    import polars

    return f"python {platform.python_version()}, polars {polars.__version__}, duckdb {duckdb.__version__}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stage", description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=400, help="uncompressed input size (default 400)")
    parser.add_argument(
        "--object-mb", type=int, default=OBJECT_MB, help=f"size of one input object (default {OBJECT_MB})"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine; the fastest counts (default 1)")
    parser.add_argument(
        "--engines",
        default=",".join(e for e in ENGINES if e != "spark"),  # Spark (minutes per run) only when asked for
        help="comma-separated subset of " + ",".join(ENGINES) + " (default: all but spark)",
    )
    parser.add_argument("--tmp-dir", default=None, help="where to generate the data (default: system temp)")
    parser.add_argument(
        "--keep-data",
        type=Path,
        default=None,
        metavar="DIR",
        help="generate the input into DIR and keep it; a later run with the same --size-mb reuses it",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable for the engine processes (repeatable), e.g. POLARS_MAX_THREADS=2",
    )
    parser.add_argument(
        "--small-files",
        type=int,
        default=None,
        metavar="N",
        help="N objects of 1-4 KB against the same bytes in a few large objects (Glue's groupFiles case)",
    )
    parser.add_argument(
        "--s3",
        action="store_true",
        help="with --small-files: on a moto S3 server, against a plain boto3 GetObject loop, in objects/s",
    )
    parser.add_argument(
        "--formats", action="store_true", help="CSV/JSON/Parquet pairs beside DuckDB (benchmarks/formats.py)"
    )
    parser.add_argument(
        "--shapes", action="store_true", help="data shapes beside DuckDB and the polars floor (benchmarks/shapes.py)"
    )
    parser.add_argument("--shapes-only", default=None, metavar="S,S", help="with --shapes: a comma-separated subset")
    parser.add_argument("--engine", choices=list(ENGINES), help=argparse.SUPPRESS)  # child modes
    parser.add_argument("--small-engine", choices=["glueflow-s3", "boto3-get"], help=argparse.SUPPRESS)
    parser.add_argument("--generate-small", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--versions", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--digest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.engine:
        child(args.engine, args.data, args.out)
        return
    if args.digest:
        print(records_digest(args.digest))
        return
    if args.generate:
        print(json.dumps(generate(args.data, args.size_mb, args.object_mb)))
        return
    if args.small_engine:
        if args.small_engine == "glueflow-s3":
            print(json.dumps(run_glueflow_s3(args.endpoint, args.out)))
        else:
            print(json.dumps(run_boto3_gets(args.endpoint)))
        return
    if args.generate_small:
        print(json.dumps(generate_small(args.data, args.generate_small, args.object_mb, args.endpoint)))
        return
    if args.formats:
        from benchmarks.formats import main as formats_main

        formats_main(args.size_mb, args.tmp_dir, args.repeat)
        return
    if args.shapes:
        from benchmarks.shapes import main as shapes_main

        shapes_main(args.size_mb, args.tmp_dir, args.repeat, args.shapes_only)
        return
    if args.small_files is not None:
        if args.small_files < 1:
            parser.error("--small-files must be at least 1")
        small_files(args)
        return
    if args.s3:
        parser.error("--s3 goes with --small-files N")
    if args.versions:
        print(_versions())
        return

    aliases = {"duckdb": "duckdb-columns"}  # the issue's `--engines glueflow,spark,duckdb`
    engines = [aliases.get(e, e) for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine {unknown[0]!r} (choose from {', '.join([*ENGINES, *aliases])})")
    extra_env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="glueflow-bench-", dir=args.tmp_dir) as tmp:
        data, out = args.keep_data or Path(tmp) / "input", Path(tmp) / "output"
        started = time.perf_counter()
        size, files, rows = _input(data, args.size_mb, args.object_mb)
        # Both engines read from the page cache: the generated data is written back to disk first, so
        # the writeback does not slow whichever engine runs first.
        os.sync()
        print(
            f"input: {size / MB:,.0f} MB of JSON lines in {files} objects, {rows:,} nested records "
            f"(ready in {time.perf_counter() - started:.0f} s)"
        )
        print(f"mapping: {len(MAPPINGS)} fields: renames, nested fields, string->double, string->timestamp")
        print(f"machine: {os.cpu_count()} cores; {_run_child(['--versions'])}; load average {_load()}")
        if extra_env:
            print("engine environment: " + " ".join(f"{k}={v}" for k, v in extra_env.items()))
        results: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        # With Spark in the run, the first run of each polars/Spark engine also digests the records it wrote.
        compare = "spark" in engines
        for repeat in range(args.repeat):
            for engine in engines:
                digest = compare and repeat == 0 and not engine.startswith("duckdb")
                results[engine].append(spawn(engine, data, out, extra_env, digest=digest))
        print(f"load average after: {_load()}; this parent's peak RSS: {_own_peak_rss_mb():.0f} MB")
    _table(results, size)
    digests = {e: runs[0]["records_digest"] for e, runs in results.items() if runs and "records_digest" in runs[0]}
    if len(digests) > 1:
        same = len(set(digests.values())) == 1
        listed = "; ".join(f"{engine} {digest}" for engine, digest in digests.items())
        print(f"output records {'identical' if same else 'DIFFER'}: {listed}")


# --------------------------------------------------------------------------------------------------
# Many small objects (--small-files)


def small_files(args: argparse.Namespace) -> None:
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
            _run_child(["--generate-small", str(count), "--data", str(data), "--object-mb", str(args.object_mb)])
        )
        os.sync()
        print(
            f"input: {count:,} objects of 1-4 KB, {generated['bytes'] / MB:,.1f} MB of JSON lines, "
            f"{generated['rows']:,} records; the same bytes in {generated['large_files']} large objects "
            f"(ready in {time.perf_counter() - started:.0f} s)"
        )
        print(f"machine: {os.cpu_count()} cores; {_run_child(['--versions'])}; load average {_load()}")
        runs: dict[str, list[dict[str, Any]]] = {"large": [], "small": []}
        for _ in range(args.repeat):
            runs["large"].append(spawn("glueflow", data / "large", out, extra_env))
            runs["small"].append(spawn("glueflow", data / "small", out, extra_env))
        print(f"load average after: {_load()}")
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
            _run_child(["--generate-small", str(count), "--data", str(data), "--endpoint", endpoint])
        )
        print(
            f"input: {count:,} objects of 1-4 KB on a moto server ({endpoint}, this process), "
            f"{generated['bytes'] / MB:,.1f} MB, {generated['rows']:,} records "
            f"(generated and uploaded in {time.perf_counter() - started:.0f} s)"
        )
        print(f"machine: {os.cpu_count()} cores; {_run_child(['--versions'])}; load average {_load()}")
        runs: dict[str, list[dict[str, Any]]] = {"boto3": [], "glueflow": []}
        for _ in range(repeat):
            runs["boto3"].append(_spawn_small("boto3-get", endpoint, out, extra_env))
            runs["glueflow"].append(_spawn_small("glueflow-s3", endpoint, out, extra_env))
        print(f"load average after: {_load()}")
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


def _spawn_small(engine: str, endpoint: str, out: Path, extra_env: dict[str, str]) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "benchmarks.stage", "--small-engine", engine, "--endpoint", endpoint]
    done = subprocess.run([*cmd, "--out", str(out)], env=_child_env(extra_env), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{engine} child failed: {done.stderr.strip().splitlines()[-1:]}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


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


def _own_peak_rss_mb() -> float:
    """The parent's peak RSS, which bounds what it adds to a child's (see the module docstring)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _table(results: dict[str, list[dict[str, Any]]], size: int) -> None:
    header = (
        f"{'engine':22} {'seconds':>8} {'MB/s in':>8} {'CPU s':>7} {'MB/CPU-s':>9} {'peak RSS MB':>12} {'records':>12} "
        f"{'out MB':>7}"
    )
    print()
    print(header)
    print("-" * len(header))
    best: dict[str, dict[str, Any]] = {}
    for engine, runs in results.items():
        fastest = min(runs, key=lambda r: r["seconds"])
        fastest = {**fastest, "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
        best[engine] = fastest
        print(
            f"{ENGINES[engine]:22} {fastest['seconds']:8.2f} {size / MB / fastest['seconds']:8.1f} "
            f"{fastest['cpu_s']:7.1f} {size / MB / max(fastest['cpu_s'], 1e-9):9.1f} {fastest['peak_rss_mb']:12.0f} "
            f"{fastest['records']:12,} {fastest['bytes_out'] / MB:7.1f}"
        )
        if len(runs) > 1:
            print(f"{'':22} all runs (s): " + ", ".join(f"{r['seconds']:.2f}" for r in runs))
    print()
    ducks = [best[e] for e in best if e.startswith("duckdb")]
    for engine in (e for e in ENGINES if e.startswith("glueflow")):
        if engine in best and ducks:
            glue, duck = best[engine], min(ducks, key=lambda r: r["seconds"])
            print(
                f"throughput ratio {ENGINES[engine]} / fastest duckdb: {duck['seconds'] / glue['seconds']:.2f}x "
                f"(target >= 2.0x); CPU-time ratio: {duck['cpu_s'] / glue['cpu_s']:.2f}x; "
                f"output bytes ratio: {glue['bytes_out'] / duck['bytes_out']:.2f}"
            )
    if "glueflow" in best:
        print(f"glueflow peak RSS: {best['glueflow']['peak_rss_mb']:.0f} MB (target <= 300 MB)")
        if best["glueflow"].get("errors"):
            print(f"glueflow reported {best['glueflow']['errors']} bad records/objects (expected 0)")
    if "spark" in best:
        spark = best["spark"]
        print(
            f"spark: a cold stage as the local launcher runs it (the row above): "
            f"JVM start-up {spark['startup_s']:.1f} s, {spark['startup_cpu_s']:.1f} CPU s, "
            f"then the stage {spark['stage_s']:.2f} s, {spark['stage_cpu_s']:.1f} CPU s "
            f"({size / MB / max(spark['stage_cpu_s'], 1e-9):.1f} MB per CPU-second without the start-up); "
            f"CPU of the whole process tree (driver, JVM, Python workers); {spark['spark_jobs']} Spark jobs; "
            f"JVM peak RSS {spark['jvm_peak_rss_mb']:.0f} MB, driver heap 1g; class archive {spark['class_archive']}"
        )
        print(
            f"spark warm: the same stage again in the warm JVM: {spark['warm_seconds']:.2f} s, "
            f"{spark['warm_cpu_s']:.1f} CPU s, {size / MB / max(spark['warm_cpu_s'], 1e-9):.1f} MB per CPU-second "
            f"({spark['warm_spark_jobs']} Spark jobs)"
        )
        if "glueflow" in best:
            same = (spark["cast_errors"], spark["errors"]) == (
                best["glueflow"]["cast_errors"],
                best["glueflow"]["errors"],
            )
            print(
                f"spark / glueflow: {best['glueflow']['seconds'] / spark['seconds']:.2f}x the throughput; cast errors "
                f"and bad records {'agree' if same else 'DIFFER'} ({spark['cast_errors']}, {spark['errors']})"
            )
    counts = {best[e]["records"] for e in best}
    print("records written agree" if len(counts) == 1 else f"records written DIFFER: {counts}")


if __name__ == "__main__":
    main()

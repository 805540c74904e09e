"""Format pairs: glueflow's stage beside DuckDB's COPY of the same mapping (``python -m benchmarks.stage --formats``).

Four pairs, each read and written on local disk: CSV -> JSON lines, JSON lines -> Parquet, CSV -> Parquet
and Parquet -> Parquet (snappy). The input is the stage benchmark's events, flattened to eight columns so
CSV can hold them (``id, type, ts, user_id, country, premium, os, amount``), written once as JSON lines,
CSV with a header and Parquet with its native types (``id``/``user_id`` long, ``ts`` timestamp, ``amount``
double); the mapping renames six columns and casts ``ts`` to timestamp, ``amount`` to double (from text,
or typed already for Parquet). glueflow runs ``run_stage`` (the stage as the jobs run it, parts completed);
DuckDB runs ``COPY (SELECT <the same casts> FROM read_csv/read_json/read_parquet(...)) TO ...``; ``polars-floor``
scans the mapped source columns and writes them as they are (no casts, counts or commit: the floor of any
polars-based stage here). Each run is
a child process, timed inside (no interpreter start-up); peak RSS is the child's whole-process maximum
resident set (wait4). MB/s is input bytes on disk per second. With ``--repeat R`` the engines take turns R times and
each shows its fastest run. Under each pair, glueflow's phases (wall and
CPU seconds): plan (the sample and the query plan), query (read -> map -> write the part files), upload
(the parts as pending objects) and commit.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.children import cpu_seconds, run_child, scratch

MB = 1_000_000
OBJECT_MB = 64  # one generated input object, in MB of JSON lines
PAIRS = {  # name: (input format, output format)
    "csv->json": ("csv", "json"),
    "json->parquet": ("json", "parquet"),
    "csv->parquet": ("csv", "parquet"),
    "parquet->parquet": ("parquet", "parquet"),
}
TEXT_MAPPINGS = [
    ["id", "string", "event_id", "long"],
    ["type", "string", "event_type", "string"],
    ["ts", "string", "event_time", "timestamp"],
    ["user_id", "string", "user_id", "long"],
    ["country", "string", "country", "string"],
    ["amount", "string", "amount", "double"],
    ["os", "string", "device_os", "string"],
]
TYPED_MAPPINGS = [  # Parquet input keeps its types
    ["id", "long", "event_id", "long"],
    ["type", "string", "event_type", "string"],
    ["ts", "timestamp", "event_time", "timestamp"],
    ["user_id", "long", "user_id", "long"],
    ["country", "string", "country", "string"],
    ["amount", "double", "amount", "double"],
    ["os", "string", "device_os", "string"],
]
SELECT = """
    TRY_CAST(id AS BIGINT) AS event_id, CAST(type AS VARCHAR) AS event_type,
    TRY_CAST(ts AS TIMESTAMP) AS event_time, TRY_CAST(user_id AS BIGINT) AS user_id,
    CAST(country AS VARCHAR) AS country, TRY_CAST(amount AS DOUBLE) AS amount, CAST(os AS VARCHAR) AS device_os
"""


def generate(folder: Path, size_mb: int) -> dict[str, Any]:
    """The same events as JSON lines (``json/``), CSV (``csv/``) and Parquet (``parquet/``) objects."""
    import polars as pl

    from glueflow_dagster.core.sample_data import events_frame

    per_event = len(_flat(events_frame(20_000)).collect().write_ndjson().encode()) / 20_000
    events = math.ceil(size_mb * MB / per_event)
    files = max(1, math.ceil(size_mb / OBJECT_MB))
    per_file = math.ceil(events / files)
    for kind in ("json", "csv", "parquet"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for index in range(files):
        frame = _flat(events_frame(per_file, first_id=index * per_file, seed=index)).collect()
        frame.write_ndjson(folder / "json" / f"events-{index:04d}.json")
        frame.write_csv(folder / "csv" / f"events-{index:04d}.csv")
        typed = frame.with_columns(pl.col("ts").str.to_datetime("%Y-%m-%d %H:%M:%S"), pl.col("amount").cast(pl.Float64))
        typed.write_parquet(folder / "parquet" / f"events-{index:04d}.parquet", compression="snappy")
    sizes = {kind: sum(p.stat().st_size for p in (folder / kind).iterdir()) for kind in ("json", "csv", "parquet")}
    return {"files": files, "rows": per_file * files, "bytes": sizes}


def _flat(events: Any) -> Any:
    import polars as pl

    user, device = pl.col("user").struct, pl.col("device").struct
    return events.select(
        "id",
        "type",
        "ts",
        user.field("id").alias("user_id"),
        user.field("country"),
        user.field("premium"),
        device.field("os"),
        "amount",
    )


# The stage's phases, timed in the glueflow child (wall and process CPU seconds, all threads): the plan
# (the sample of the first objects and the query plan made from it), the query (read -> map -> write the
# part files), the upload of the parts as pending objects, the commit (complete) that makes them visible.
PHASES = (  # (module, function, phase)
    ("glueflow_dagster.core.stage.run", "sample_json_lines", "plan"),
    ("glueflow_dagster.core.stage.run", "make_plan", "plan"),
    ("glueflow_dagster.core.stage.plan", "_query_once", "query"),
    ("glueflow_dagster.core.stage.run", "begin_parts", "upload"),
    ("glueflow_dagster.core.stage.run", "complete", "commit"),
)


def _timed_phases() -> dict[str, list[float]]:
    """Wrap the stage's phase functions (in the child only) to add up their wall and CPU seconds."""
    import functools
    import importlib

    totals: dict[str, list[float]] = {}
    for module_name, function, phase in PHASES:
        module = importlib.import_module(module_name)
        inner = getattr(module, function)

        def timed(*args: Any, _inner: Any = inner, _phase: str = phase, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return _inner(*args, **kwargs)
            finally:
                spent = totals.setdefault(_phase, [0.0, 0.0])
                spent[0] += time.perf_counter() - wall
                spent[1] += time.process_time() - cpu

        setattr(module, function, functools.wraps(inner)(timed))
    return totals


def run_glueflow(pair: str, data: Path, out: Path) -> dict[str, Any]:
    from glueflow_dagster.core.formats.options import CsvOptions, DataFormat
    from glueflow_dagster.core.stage import run_stage
    from glueflow_dagster.core.storage import LocalStorage

    phases = _timed_phases()
    source_format, target_format = PAIRS[pair]
    source, target = LocalStorage(data / source_format), LocalStorage(out)
    objects = list(source.list())
    cpu, started = cpu_seconds(), time.perf_counter()
    result = run_stage(
        source, objects, TYPED_MAPPINGS if source_format == "parquet" else TEXT_MAPPINGS, target,
        name_prefix="run-bench", compression="snappy" if target_format == "parquet" else "none",
        read_format=DataFormat(source_format, CsvOptions(with_header=True)), write_format=DataFormat(target_format),
    )  # fmt: skip
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": cpu_seconds() - cpu,
        "records": result.records_written,
        "bytes_in": result.bytes_read,
        "bytes_out": result.bytes_written,
        "errors": result.error_records + result.error_files + result.cast_errors,
        "phases": {phase: [round(wall, 3), round(cpu, 3)] for phase, (wall, cpu) in phases.items()},
    }


def run_duckdb(pair: str, data: Path, out: Path) -> dict[str, Any]:
    import duckdb

    source_format, target_format = PAIRS[pair]
    files = sorted(str(p) for p in (data / source_format).iterdir())
    scan = {
        "csv": f"read_csv({files!r}, header=true, all_varchar=true)",
        "json": f"read_json({files!r}, format='newline_delimited')",
        "parquet": f"read_parquet({files!r})",
    }[source_format]
    target = out / f"duckdb.{target_format}"
    written = "(FORMAT PARQUET, COMPRESSION SNAPPY)" if target_format == "parquet" else "(FORMAT JSON)"
    con = duckdb.connect()
    cpu, started = cpu_seconds(), time.perf_counter()
    copied = con.execute(f"COPY (SELECT {SELECT} FROM {scan}) TO '{target}' {written}").fetchall()
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": cpu_seconds() - cpu,
        "records": int(copied[0][0]) if copied and copied[0] else -1,
        "bytes_in": sum(Path(f).stat().st_size for f in files),
        "bytes_out": target.stat().st_size,
    }


def run_polars_floor(pair: str, data: Path, out: Path) -> dict[str, Any]:
    """polars alone: the mapped source columns scanned and written as they are (no casts, no counts, no
    commit), the floor of any polars-based stage on this machine."""
    import polars as pl

    source_format, target_format = PAIRS[pair]
    files = sorted(str(p) for p in (data / source_format).iterdir())
    columns = [m[0] for m in TEXT_MAPPINGS]
    cpu, started = cpu_seconds(), time.perf_counter()
    if source_format == "csv":
        frames = [pl.scan_csv(f, infer_schema=False) for f in files]
    elif source_format == "parquet":
        frames = [pl.scan_parquet(f) for f in files]
    else:
        frames = [pl.scan_ndjson(f) for f in files]
    frame = pl.concat([f.select(columns) for f in frames], parallel=False)
    target = out / f"polars.{target_format}"
    if target_format == "parquet":
        frame.sink_parquet(target, compression="snappy", engine="streaming")
    else:
        frame.sink_ndjson(target, engine="streaming")
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": cpu_seconds() - cpu,
        "records": pl.scan_parquet(target).select(pl.len()).collect().item()
        if target_format == "parquet"
        else _lines(target),
        "bytes_in": sum(Path(f).stat().st_size for f in files),
        "bytes_out": target.stat().st_size,
    }


def _lines(path: Path) -> int:
    """The lines of a file, read in blocks: polars' count of a JSON-lines file maps it whole, which put the
    floor's output into its peak RSS (CSV -> JSON at 200 MB: 269 MB after the query, 446 after the count)."""
    with open(path, "rb") as lines:
        return sum(block.count(b"\n") for block in iter(lambda: lines.read(1 << 20), b""))


RUNNERS = {"glueflow": run_glueflow, "duckdb": run_duckdb, "polars-floor": run_polars_floor}


def child(engine: str, pair: str, data: Path, out: Path) -> None:
    print(json.dumps(RUNNERS[engine](pair, data, out)))


def _spawn(engine: str, pair: str, data: Path, out: Path) -> dict[str, Any]:
    with scratch(out):
        return run_child("benchmarks.formats", ["--child", engine, pair, str(data), str(out)], what=f"{engine} {pair}")


def main(size_mb: int, tmp_dir: str | None = None, repeat: int = 1) -> None:
    """Generate ``size_mb`` MB of events in each format and print each pair on both engines."""
    with tempfile.TemporaryDirectory(prefix="glueflow-formats-", dir=tmp_dir) as tmp:
        data = Path(tmp) / "input"
        generated = subprocess.run(
            [sys.executable, "-m", "benchmarks.formats", "--generate", str(size_mb), str(data)],
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        info = json.loads(generated.stdout.strip().splitlines()[-1])
        sizes = ", ".join(f"{kind} {size / MB:.0f} MB" for kind, size in info["bytes"].items())
        load = os.getloadavg()[0]
        print(f"input: {info['rows']:,} events in {info['files']} objects per format ({sizes}); load {load:.1f}")
        print(f"{'pair':<18} {'engine':<12} {'s':>7} {'MB/s':>7} {'cpu s':>7} {'peak RSS MB':>12} {'records':>11}")
        for pair in PAIRS:
            # The engines take turns (glueflow, DuckDB, the floor, glueflow, ...): on a shared machine the
            # load moves between the repeats, and turns expose every engine to it alike.
            runs: dict[str, list[dict[str, Any]]] = {engine: [] for engine in RUNNERS}
            for _ in range(repeat):
                for engine in RUNNERS:
                    runs[engine].append(_spawn(engine, pair, data, Path(tmp) / "out"))
            results = {}
            for engine in RUNNERS:
                best = min(runs[engine], key=lambda r: r["seconds"])
                results[engine] = best
                rate = best["bytes_in"] / MB / best["seconds"]
                print(
                    f"{pair:<18} {engine:<12} {best['seconds']:>7.2f} {rate:>7.1f} {best['cpu_s']:>7.2f} "
                    f"{best['peak_rss_mb']:>12.0f} {best['records']:>11,}"
                )
            spent = results["glueflow"].get("phases", {})
            print(f"{pair:<18} glueflow's phases (s wall/cpu): " + ", ".join(
                f"{phase} {wall:.3f}/{cpu:.3f}" for phase, (wall, cpu) in spent.items()
            ))  # fmt: skip
            ratio = results["duckdb"]["seconds"] / results["glueflow"]["seconds"]
            cpu_ratio = results["duckdb"]["cpu_s"] / results["glueflow"]["cpu_s"]
            print(f"{pair:<18} glueflow is {ratio:.2f}x DuckDB's speed ({cpu_ratio:.2f}x by CPU seconds)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5]))
    elif sys.argv[1:2] == ["--generate"]:
        print(json.dumps(generate(Path(sys.argv[3]), int(sys.argv[2]))))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)

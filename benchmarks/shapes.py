"""Data shapes: the Input stage beside DuckDB and the polars floor (``python -m benchmarks.stage --shapes``).

    python -m benchmarks.stage --shapes --size-mb 100            # every shape, 100 MB each
    python -m benchmarks.stage --shapes --size-mb 100 --repeat 3 # fastest of three runs per engine
    python -m benchmarks.stage --shapes --shapes-only wide,epoch # a subset

Each shape is about ``--size-mb`` MB of JSON lines (the stage benchmark's nested events,
``core.sample_data.events_frame``, with the timestamp written another way or other fields around it),
mapped by six or seven mappings, through three engines, each run in its own child process:

* ``glueflow``: ``run_stage`` (list -> read -> ApplyMapping -> gzip JSON-lines parts), default options;
* ``duckdb``: ``COPY (SELECT <the same casts> FROM read_json(...)) TO ... (FORMAT JSON, COMPRESSION GZIP)``;
* ``polars floor``: the same query written directly in polars: ``scan_ndjson`` with the mapped fields'
  schema, the casts with fixed formats (``str.to_datetime("%Y-%m-%dT%H:%M:%SZ")`` and the like, no
  Spark semantics, no cast-error counts), ``sink_ndjson`` gzip level 2 (the stage's default level).

The shapes: ``iso_z`` (``2026-11-02T01:28:55Z``), ``fractions`` (``...34.136758-03:30``, offsets vary),
``plain`` (``2026-11-02 01:28:55``), ``epoch`` (seconds as JSON numbers), ``date`` (``2026-11-02`` to a
date), ``wide`` (120 fields, 6 mapped), ``nested`` (arrays of objects beside, unmapped) and ``malformed``
(ISO ``Z`` with 20% of the timestamps malformed: cast errors, counted). Throughput is MB (10^6 bytes) of
input per second of the engine's work, timed inside the child; peak RSS is the child's (``wait4``); the
CPU-time ratios (user + system seconds of the child) move less than wall time on a shared machine.
Targets (issue #20): glueflow at least 2.5x DuckDB and 0.8x the floor, at most 300 MB peak RSS.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.children import clear, cpu_seconds, load_average, run_child, scratch

MB = 1_000_000
OBJECT_MB = 128
SHAPES = ["iso_z", "fractions", "plain", "epoch", "date", "wide", "nested", "malformed"]
ENGINES = ["glueflow", "duckdb", "floor"]
WIDE_FIELDS = 120
ISO_Z = "%Y-%m-%dT%H:%M:%SZ"


def _mappings(shape: str) -> list[list[str]]:
    ts_type = "long" if shape == "epoch" else "string"
    ts_target = "date" if shape == "date" else "timestamp"
    mappings = [
        ["id", "long", "event_id", "long"],
        ["type", "string", "event_type", "string"],
        ["ts", ts_type, "event_time", ts_target],
        ["user.id", "long", "user_id", "long"],
        ["user.country", "string", "user.country", "string"],
        ["amount", "string", "amount", "double"],
        ["device.os", "string", "device_os", "string"],
    ]
    return [m for m in mappings if m[0] != "user.country"] if shape == "wide" else mappings  # 6 mapped


def _duckdb_select(shape: str) -> str:
    if shape == "epoch":
        ts = "make_timestamp(TRY_CAST(ts AS BIGINT) * 1000000)"
    elif shape == "date":
        ts = "TRY_CAST(ts AS DATE)"
    else:
        ts = "TRY_CAST(ts AS TIMESTAMP)"
    country = "" if shape == "wide" else """{'country': CAST("user".country AS VARCHAR)} AS "user","""
    return f"""TRY_CAST(id AS BIGINT) AS event_id, CAST(type AS VARCHAR) AS event_type, {ts} AS event_time,
        TRY_CAST("user".id AS BIGINT) AS user_id, {country}
        TRY_CAST(amount AS DOUBLE) AS amount, CAST(device.os AS VARCHAR) AS device_os"""


# --------------------------------------------------------------------------------------------------
# Data


def _shape_frame(shape: str, count: int, first_id: int, seed: int) -> Any:
    import polars as pl

    from glueflow_dagster.core.sample_data import events_frame

    events = events_frame(count, first_id=first_id, seed=seed)
    moment = pl.datetime(2026, 11, 2) + pl.duration(seconds=(pl.col("id") * 7919) % (86_400 * 365))
    micros = (pl.col("id") * 104_729 % 1_000_000).cast(pl.String).str.zfill(6)
    offsets = pl.lit(pl.Series(["-03:30", "+05:30", "+01:00", "-08:00", "+00:00", "+0930"]))
    ts: pl.Expr
    if shape in ("iso_z", "wide", "nested"):
        ts = moment.dt.strftime(ISO_Z)
    elif shape == "fractions":
        ts = pl.concat_str(moment.dt.strftime("%Y-%m-%dT%H:%M:%S."), micros, offsets.gather(pl.col("id") % 6))
    elif shape == "plain":
        ts = moment.dt.strftime("%Y-%m-%d %H:%M:%S")
    elif shape == "epoch":
        ts = moment.dt.epoch("s")
    elif shape == "date":
        ts = moment.dt.strftime("%Y-%m-%d")
    else:  # malformed: one in five is not a timestamp Spark reads
        bad = pl.lit(pl.Series(["not a time", "2026-13-45T99:99:99Z", "yesterday", "2026/11/02 01:28", ""]))
        ts = pl.when(pl.col("id") % 5 == 0).then(bad.gather(pl.col("id") // 5 % 5)).otherwise(moment.dt.strftime(ISO_Z))
    events = events.with_columns(ts.alias("ts"))
    if shape == "wide":
        extra = [
            (pl.col("id") * (i + 3) % 100_003).alias(f"f{i:03d}")
            if i % 3 == 0
            else pl.format("v{}-{}", pl.col("id") % (i + 7), i).alias(f"f{i:03d}")
            if i % 3 == 1
            else ((pl.col("id") % (i + 11)) / 7).alias(f"f{i:03d}")
            for i in range(WIDE_FIELDS - len(events.collect_schema()))
        ]
        events = events.with_columns(extra)
    if shape == "nested":
        item = pl.struct(
            sku=pl.format("sku-{}", pl.col("id") % 977),
            qty=(pl.col("id") % 5 + 1),
            price=((pl.col("id") % 10_000) / 100),
            attrs=pl.concat_list(pl.lit("a"), pl.format("c{}", pl.col("id") % 13)),
        )
        events = events.with_columns(pl.concat_list(item, item, item).alias("items"))
    return events


def generate(folder: Path, shape: str, size_mb: int) -> dict[str, Any]:
    """About ``size_mb`` MB of JSON lines of ``shape`` in ``folder``, in objects of OBJECT_MB MB."""
    sample = _shape_frame(shape, 5_000, 0, 0).collect().write_ndjson().encode()
    events = math.ceil(size_mb * MB / (len(sample) / 5_000))
    files = max(1, math.ceil(size_mb / OBJECT_MB))
    per_file = math.ceil(events / files)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        frame = _shape_frame(shape, per_file, index * per_file, index)
        frame.sink_ndjson(folder / f"events-{index:04d}.json", engine="streaming")
    size = sum(p.stat().st_size for p in folder.glob("*.json"))
    return {"bytes": size, "files": files, "rows": per_file * files}


# --------------------------------------------------------------------------------------------------
# Children: one engine each


def run_glueflow(shape: str, data: Path, out: Path) -> dict[str, Any]:
    from glueflow_dagster.core.quarantine import list_stage_inputs
    from glueflow_dagster.core.stage import run_stage
    from glueflow_dagster.core.storage import LocalStorage

    source, target = LocalStorage(data), LocalStorage(out)
    objects = list(list_stage_inputs(source, recurse=True, exclusions=()))
    cpu, started = cpu_seconds(), time.perf_counter()
    result = run_stage(source, objects, _mappings(shape), target, name_prefix="run-bench", compression="gzip")
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": cpu_seconds() - cpu,
        "records": result.records_written,
        "bytes_in": result.bytes_read,
        "bytes_out": result.bytes_written,
        "cast_errors": result.cast_errors,
    }


def run_duckdb(shape: str, data: Path, out: Path) -> dict[str, Any]:
    import duckdb

    files = sorted(str(p) for p in data.glob("*.json"))
    target = out / "duckdb.json.gz"
    sql = (
        f"COPY (SELECT {_duckdb_select(shape)} FROM read_json({files!r}, format='newline_delimited')) "
        f"TO '{target}' (FORMAT JSON, COMPRESSION GZIP)"
    )
    con = duckdb.connect()
    cpu, started = cpu_seconds(), time.perf_counter()
    copied = con.execute(sql).fetchall()
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": cpu_seconds() - cpu,
        "records": int(copied[0][0]) if copied and copied[0] else -1,
        "bytes_in": sum(Path(f).stat().st_size for f in files),
        "bytes_out": target.stat().st_size,
    }


def _floor_query(shape: str, files: list[str]) -> Any:
    import polars as pl

    user = pl.Struct({"id": pl.Int64, "country": pl.String})
    schema = pl.Schema(
        {
            "id": pl.Int64,
            "type": pl.String,
            "ts": pl.Int64 if shape == "epoch" else pl.String,
            "user": user,
            "device": pl.Struct({"os": pl.String}),
            "amount": pl.String,
        }
    )
    ts = pl.col("ts")
    event_time = {
        "fractions": ts.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", time_unit="us", strict=False)
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None),
        "plain": ts.str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", strict=False),
        "epoch": (ts * 1_000_000).cast(pl.Datetime("us")),
        "date": ts.str.to_date("%Y-%m-%d", strict=False),
    }.get(shape, ts.str.to_datetime(ISO_Z, time_unit="us", strict=False))
    columns = [
        pl.col("id").alias("event_id"),
        pl.col("type").alias("event_type"),
        event_time.alias("event_time"),
        pl.col("user").struct.field("id").alias("user_id"),
        pl.struct(pl.col("user").struct.field("country")).alias("user"),
        pl.col("amount").cast(pl.Float64, strict=False).alias("amount"),
        pl.col("device").struct.field("os").alias("device_os"),
    ]
    if shape == "wide":
        columns.pop(4)
    return pl.scan_ndjson(files, schema=schema).select(columns)


def run_floor(shape: str, data: Path, out: Path) -> dict[str, Any]:
    import polars as pl

    files = sorted(str(p) for p in data.glob("*.json"))
    target = out / "floor.json.gz"
    cpu, started = cpu_seconds(), time.perf_counter()
    _floor_query(shape, files).sink_ndjson(target, compression="gzip", compression_level=2, engine="streaming")
    seconds = time.perf_counter() - started
    records = pl.scan_ndjson(str(target), schema={"event_id": pl.Int64}).select(pl.len()).collect().item()
    return {
        "seconds": seconds,
        "cpu_s": cpu_seconds() - cpu,
        "records": records,
        "bytes_in": sum(Path(f).stat().st_size for f in files),
        "bytes_out": target.stat().st_size,
    }


def child(engine: str, shape: str, data: Path, out: Path) -> None:
    runner = {"glueflow": run_glueflow, "duckdb": run_duckdb, "floor": run_floor}[engine]
    print(json.dumps(runner(shape, data, out)))


# --------------------------------------------------------------------------------------------------
# Parent


def _spawn(args: list[str]) -> dict[str, Any]:
    """Run this module with ``args`` in a child; its JSON figures plus its peak RSS (MB, from wait4)."""
    return run_child("benchmarks.shapes", args, what="benchmark " + " ".join(args[:3]))


def main(size_mb: int, tmp_dir: str | None = None, repeat: int = 1, only: str | None = None) -> None:
    """Generate each shape, run every engine on it (fastest of ``repeat``), print the table."""
    shapes = [s for s in (only.split(",") if only else SHAPES) if s]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        raise SystemExit(f"unknown shape {unknown[0]!r} (choose from {', '.join(SHAPES)})")
    import duckdb
    import polars

    print(f"machine: {os.cpu_count()} cores; polars {polars.__version__}, duckdb {duckdb.__version__}")
    print(f"load average before: {load_average()}")
    header = (
        f"{'shape':<10} {'engine':<9} {'s':>6} {'MB/s':>7} {'CPU s':>6} {'peak RSS MB':>11} {'out MB':>7} "
        f"{'records':>10} {'vs duckdb':>9} {'vs floor':>8}"
    )
    print(header)
    print("-" * len(header))
    summary = []
    with tempfile.TemporaryDirectory(prefix="glueflow-shapes-", dir=tmp_dir) as tmp:
        for shape in shapes:
            data, out = Path(tmp) / shape, Path(tmp) / "out"
            info = _spawn(["--generate", shape, str(size_mb), str(data)])
            os.sync()
            best: dict[str, dict[str, Any]] = {}
            for _ in range(repeat):
                for engine in ENGINES:
                    with scratch(out):
                        figures = _spawn(["--child", engine, shape, str(data), str(out)])
                    if engine not in best or figures["seconds"] < best[engine]["seconds"]:
                        peak = max(figures["peak_rss_mb"], best.get(engine, {}).get("peak_rss_mb", 0))
                        best[engine] = {**figures, "peak_rss_mb": peak}
                    else:
                        best[engine]["peak_rss_mb"] = max(best[engine]["peak_rss_mb"], figures["peak_rss_mb"])
            clear(data)
            summary.append(_print_shape(shape, best, info))
    print()
    print(f"load average after: {load_average()}")
    print(
        f"{'shape':<10} {'glueflow MB/s':>13} {'x duckdb':>8} {'x floor':>7} {'peak RSS MB':>11}"
        f" {'CPU x duckdb':>12} {'CPU x floor':>11}  (targets: >= 2.5, >= 0.8, <= 300)"
    )
    for shape, rate, duck, floor, rss, cpu_duck, cpu_floor in summary:
        print(f"{shape:<10} {rate:>13.1f} {duck:>8.2f} {floor:>7.2f} {rss:>11.0f} {cpu_duck:>12.2f} {cpu_floor:>11.2f}")


def _print_shape(shape: str, best: dict[str, dict[str, Any]], info: dict[str, Any]) -> tuple[Any, ...]:
    """The shape's rows; returns its summary (MB/s, wall-time ratios, peak RSS, CPU-time ratios)."""
    glue = best["glueflow"]
    for engine, figures in best.items():
        seconds = figures["seconds"]
        ratios = ""
        if engine == "glueflow":
            ratios = f"{best['duckdb']['seconds'] / seconds:>9.2f} {best['floor']['seconds'] / seconds:>8.2f}"
        print(
            f"{shape:<10} {engine:<9} {seconds:>6.2f} {info['bytes'] / MB / seconds:>7.1f} {figures['cpu_s']:>6.1f} "
            f"{figures['peak_rss_mb']:>11.0f} {figures['bytes_out'] / MB:>7.1f} {figures['records']:>10,} {ratios}"
        )
    if glue.get("cast_errors"):
        print(f"{'':<10} glueflow counted {glue['cast_errors']:,} cast errors")
    return (
        shape,
        info["bytes"] / MB / glue["seconds"],
        best["duckdb"]["seconds"] / glue["seconds"],
        best["floor"]["seconds"] / glue["seconds"],
        glue["peak_rss_mb"],
        best["duckdb"]["cpu_s"] / glue["cpu_s"],
        best["floor"]["cpu_s"] / glue["cpu_s"],
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5]))
    elif sys.argv[1:2] == ["--generate"]:
        print(json.dumps(generate(Path(sys.argv[4]), sys.argv[2], int(sys.argv[3]))))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)

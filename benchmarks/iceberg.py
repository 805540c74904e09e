"""The Output stage writing an Iceberg table beside DuckDB writing Parquet of the same mapping (issue 24 item 7).

``python -m benchmarks.iceberg --size-mb N [--repeat R] [--partition KEY] [--tmp-dir DIR]``

The input is staging as the Output job reads it: JSON lines objects of the stage benchmark's events,
flattened to eight columns (``benchmarks/formats.py``), in objects of 64 MB. The mapping renames six
columns and casts ``ts`` to timestamp and ``amount`` to double.

* **glueflow** does what an Output run with ``output.format: iceberg`` does, without Dagster: opens the
  table (in a SQLite SQL catalog, as the demo's; created first, untimed, as a first run would have made
  it: its time and the peak RSS by then are printed apart), stages the objects into
  Parquet data files under the table's ``data/`` folder (``stage_pending``), then commits: the adoption
  record, the files completed (``commits.publish``) and one Iceberg append (``add_files``, which reads
  each file's footer for its statistics). Every run starts from an empty warehouse. ``glueflow -> Parquet
  parts`` is the same stage and publish into a prefix of Parquet parts: the table's cost by difference.
* **DuckDB** runs ``COPY (SELECT <the same casts> FROM read_json(...)) TO '...parquet' (FORMAT PARQUET,
  COMPRESSION SNAPPY)``: the same mapping into Parquet, no table.

Each run is a child process, timed inside (no interpreter start-up); peak RSS is the child's whole-process
maximum resident set (wait4). MB/s is input bytes (JSON lines on disk) per second.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.children import child_env, cpu_seconds, run_child, scratch

MB = 1_000_000
OBJECT_MB = 64


def generate(folder: Path, size_mb: int) -> dict[str, Any]:
    """``size_mb`` MB of flattened events as JSON lines objects (staging as the Output job reads it)."""
    from benchmarks.formats import _flat
    from glueflow_dagster.core.sample_data import events_frame

    per_event = len(_flat(events_frame(20_000)).collect().write_ndjson().encode()) / 20_000
    events = math.ceil(size_mb * MB / per_event)
    files = max(1, math.ceil(size_mb / OBJECT_MB))
    per_file = math.ceil(events / files)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        frame = _flat(events_frame(per_file, first_id=index * per_file, seed=index)).collect()
        frame.write_ndjson(folder / f"events-{index:04d}.json")
    return {"files": files, "rows": per_file * files, "bytes": sum(p.stat().st_size for p in folder.iterdir())}


def _flow_file(data: Path, out: Path, partition: str | None, table: bool = True) -> Path:
    import yaml

    from benchmarks.formats import TEXT_MAPPINGS

    output: dict[str, Any] = {"uri": str(out / "warehouse"), "format": "iceberg", "table": "bench.events"}
    if not table:  # the same stage writing a prefix of Parquet parts: what the table adds, by difference
        output = {"uri": str(out / "warehouse"), "format": "parquet"}
    if partition and table:
        output["partition_keys"] = [partition]
    document = {
        "flows": {
            "events": {
                "input": {"uri": str(out / "raw")},
                "staging": {"uri": str(data)},
                "output": output,
                "input_job": {"mappings": [["id", "long", "id", "long"]]},
                "output_job": {"mappings": TEXT_MAPPINGS},
            }
        }
    }
    path = out / "glueflow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run_glueflow(data: Path, out: Path, partition: str | None, table: bool = True) -> dict[str, Any]:
    """The Output run's stage and commit into the table (``table``), or into a prefix of Parquet parts."""
    from glueflow_dagster.core.commits import Attempt, publish
    from glueflow_dagster.core.config import load_config
    from glueflow_dagster.core.job_run import stage_request
    from glueflow_dagster.core.stage.run import stage_pending
    from glueflow_dagster.core.storage import LocalStorage

    flow = load_config(_flow_file(data, out, partition, table)).flows["events"]
    source, target = LocalStorage(data), LocalStorage(out / "warehouse")
    objects = sorted(source.list(), key=lambda o: o.key)
    attempt = Attempt(str(uuid.uuid4()))
    output, created_s, created_rss_mb = None, 0.0, 0.0
    if table:  # the first run creates the table (timed apart); the measured run opens it as every later run
        from glueflow_dagster.core.iceberg_commit import open_output

        created = time.perf_counter()
        open_output(flow, target)
        created_s, created_rss_mb = time.perf_counter() - created, _own_peak_rss_mb()
    cpu, started = cpu_seconds(), time.perf_counter()
    if table:
        output = open_output(flow, target)
    opened_s = time.perf_counter() - started
    reads, writes = (source, flow.staging), (target, flow.output)
    request = stage_request(flow.output_job, objects, attempt, reads=reads, writes=writes)
    result = stage_pending(output.staged(request) if output is not None else request)
    staged_s = time.perf_counter() - started
    staged_rss_mb = _own_peak_rss_mb()
    staged_pyarrow = "pyarrow" in sys.modules
    imported_s = 0.0
    if output is not None:
        # The append's pyarrow (pyiceberg's Arrow IO reads the files' footers), imported only now, after the
        # stage's peak (core/iceberg_io.py): timed apart inside the commit's time.
        before_import = time.perf_counter()
        import pyiceberg.io.pyarrow  # noqa: F401

        imported_s = time.perf_counter() - before_import
        record, figures = output.commit(target, attempt, "bench", result, {}, "bench/v0")
        records, bytes_out = int(figures["iceberg_added_records"]), int(figures["iceberg_added_files_bytes"])
    else:
        record = publish(target, attempt, "bench", result.pending, result.records_written)
        records, bytes_out = result.records_written, result.bytes_written
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "create_s": created_s,
        "created_rss_mb": created_rss_mb,
        "open_s": opened_s,
        "stage_s": staged_s - opened_s,
        "stage_peak_rss_mb": staged_rss_mb,
        "commit_s": seconds - staged_s,
        "import_s": imported_s,
        "pyarrow_before_stage": staged_pyarrow,
        "cpu_s": cpu_seconds() - cpu,
        "records": records,
        "files": len(record.parts),
        "bytes_in": result.bytes_read,
        "bytes_out": bytes_out,
        "errors": result.error_records + result.error_files + result.cast_errors,
    }


def _own_peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def run_duckdb(data: Path, out: Path) -> dict[str, Any]:
    import duckdb

    from benchmarks.formats import SELECT

    files = sorted(str(p) for p in data.iterdir())
    target = out / "duckdb.parquet"
    con = duckdb.connect()
    cpu, started = cpu_seconds(), time.perf_counter()
    copied = con.execute(
        f"COPY (SELECT {SELECT} FROM read_json({files!r}, format='newline_delimited')) TO '{target}' "
        "(FORMAT PARQUET, COMPRESSION SNAPPY)"
    ).fetchall()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_s": cpu_seconds() - cpu,
        "records": int(copied[0][0]) if copied and copied[0] else -1,
        "files": 1,
        "bytes_in": sum(Path(f).stat().st_size for f in files),
        "bytes_out": target.stat().st_size,
    }


def _spawn(engine: str, data: Path, out: Path, partition: str | None) -> dict[str, Any]:
    args = ["--child", engine, str(data), str(out), partition or ""]
    with scratch(out):
        return run_child("benchmarks.iceberg", args, what=engine)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.iceberg", description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=100, help="MB of JSON lines staging to read (default 100)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine; the fastest is shown (default 1)")
    parser.add_argument("--partition", default=None, help="glueflow's partition_keys entry, e.g. 'day(event_time)'")
    parser.add_argument("--tmp-dir", default=None, help="where to write the input and the outputs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="glueflow-iceberg-", dir=args.tmp_dir) as tmp:
        data = Path(tmp) / "staging"
        generated = subprocess.run(
            [sys.executable, "-m", "benchmarks.iceberg", "--generate", str(args.size_mb), str(data)],
            env=child_env(), capture_output=True, text=True, check=True,
        )  # fmt: skip
        info = json.loads(generated.stdout.strip().splitlines()[-1])
        spec = f", partition_keys [{args.partition}]" if args.partition else ""
        print(
            f"input: {info['rows']:,} events, {info['bytes'] / MB:.0f} MB of JSON lines in {info['files']} objects"
            f"{spec}; load {os.getloadavg()[0]:.1f}"
        )
        header = f"{'engine':<28} {'s':>7} {'MB/s':>7} {'cpu s':>7} {'peak RSS MB':>12} {'records':>11} {'files':>6}"
        print(header)
        best: dict[str, dict[str, Any]] = {}
        labels = {
            "glueflow": "glueflow -> Iceberg table",
            "glueflow-parquet": "glueflow -> Parquet parts",
            "duckdb": "DuckDB -> Parquet",
        }
        for engine in labels:
            runs = [_spawn(engine, data, Path(tmp) / "out", args.partition) for _ in range(args.repeat)]
            best[engine] = run = min(runs, key=lambda r: r["seconds"])
            rate = run["bytes_in"] / MB / run["seconds"]
            print(
                f"{labels[engine]:<28} {run['seconds']:>7.2f} {rate:>7.1f} {run['cpu_s']:>7.2f} "
                f"{run['peak_rss_mb']:>12.0f} {run['records']:>11,} {run['files']:>6}"
            )
        glueflow = best["glueflow"]
        print(
            f"glueflow -> Iceberg: table created first (untimed) {glueflow['create_s']:.2f} s, peak RSS "
            f"{glueflow['created_rss_mb']:.0f} MB then; timed: table opened {glueflow['open_s']:.2f} s, "
            f"stage {glueflow['stage_s']:.2f} s "
            f"(peak RSS {glueflow['stage_peak_rss_mb']:.0f} MB at its end), "
            f"commit (publish + Iceberg append) {glueflow['commit_s']:.2f} s, of which importing pyarrow "
            f"{glueflow['import_s']:.2f} s (loaded before the stage: {glueflow['pyarrow_before_stage']}); "
            f"glueflow is {best['duckdb']['seconds'] / glueflow['seconds']:.2f}x DuckDB's speed"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        engine, data, out, partition = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5] or None
        if engine == "duckdb":
            figures = run_duckdb(data, out)
        else:
            figures = run_glueflow(data, out, partition, table=engine == "glueflow")
        print(json.dumps(figures))
    elif sys.argv[1:2] == ["--generate"]:
        print(json.dumps(generate(Path(sys.argv[3]), int(sys.argv[2]))))
    else:
        main()

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

``--small-files N`` (Glue's groupFiles case: N objects of 1-4 KB against the same bytes in a few large
objects, locally or with ``--s3`` on a moto server) is ``benchmarks/small_files.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.children import child_env, child_line, cpu_seconds, load_average, machine, run_child, scratch
from benchmarks.events import DUCKDB_COLUMNS, MAPPINGS, MB, OBJECT_MB, SELECT, generate

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
    cpu, started = cpu_seconds(), time.perf_counter()
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
        "cpu_s": cpu_seconds() - cpu,
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
    cpu, started = cpu_seconds(), time.perf_counter()
    copied = con.execute(sql).fetchall()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_s": cpu_seconds() - cpu,
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


def _input(data: Path, size_mb: int, object_mb: int) -> tuple[int, int, int]:
    """The benchmark's input in ``data``: generated unless a kept folder already holds this size."""
    marker = data.parent / f"{data.name}.benchmark.json"  # beside the data: it is not input
    if marker.exists():
        kept = json.loads(marker.read_text())
        if (kept["size_mb"], kept.get("object_mb", OBJECT_MB)) == (size_mb, object_mb):
            return kept["bytes"], kept["files"], kept["rows"]
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    generated = child_line(
        "benchmarks.stage",
        ["--generate", "--data", str(data), "--size-mb", str(size_mb), "--object-mb", str(object_mb)],
    )
    size, files, rows = json.loads(generated)
    kept = {"size_mb": size_mb, "object_mb": object_mb, "bytes": size, "files": files, "rows": rows}
    marker.write_text(json.dumps(kept))
    return size, files, rows


def spawn(engine: str, data: Path, out: Path, extra_env: dict[str, str], *, digest: bool = False) -> dict[str, Any]:
    """Run one engine in a child process; adds its peak RSS (MB) from wait4, and with ``digest`` the digest
    of the records it wrote (computed by another child afterwards, so nothing measured pays for it)."""
    with scratch(out):
        args = ["--engine", engine, "--data", str(data), "--out", str(out)]
        figures = run_child("benchmarks.stage", args, what=engine, env=child_env(extra_env))
        if digest:
            figures["records_digest"] = child_line("benchmarks.stage", ["--digest", str(out)])
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


def _versions() -> str:
    import duckdb
    import polars

    return f"python {platform.python_version()}, polars {polars.__version__}, duckdb {duckdb.__version__}"


def _parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--versions", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--digest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.engine:  # the child modes
        child(args.engine, args.data, args.out)
    elif args.digest:
        print(records_digest(args.digest))
    elif args.generate:
        print(json.dumps(generate(args.data, args.size_mb, args.object_mb)))
    elif args.versions:
        print(_versions())
    elif args.formats:
        from benchmarks.formats import main as formats_main

        formats_main(args.size_mb, args.tmp_dir, args.repeat)
    elif args.shapes:
        from benchmarks.shapes import main as shapes_main

        shapes_main(args.size_mb, args.tmp_dir, args.repeat, args.shapes_only)
    elif args.small_files is not None:
        if args.small_files < 1:
            parser.error("--small-files must be at least 1")
        from benchmarks.small_files import run as small_files

        small_files(args)
    elif args.s3:
        parser.error("--s3 goes with --small-files N")
    else:
        _compare(parser, args)


def _compare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The engines side by side on the generated events: the benchmark's main mode."""
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
        print(machine())
        if extra_env:
            print("engine environment: " + " ".join(f"{k}={v}" for k, v in extra_env.items()))
        results: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        # With Spark in the run, the first run of each polars/Spark engine also digests the records it wrote.
        compare = "spark" in engines
        for repeat in range(args.repeat):
            for engine in engines:
                digest = compare and repeat == 0 and not engine.startswith("duckdb")
                results[engine].append(spawn(engine, data, out, extra_env, digest=digest))
        print(f"load average after: {load_average()}; this parent's peak RSS: {_own_peak_rss_mb():.0f} MB")
    _table(results, size)
    digests = {e: runs[0]["records_digest"] for e, runs in results.items() if runs and "records_digest" in runs[0]}
    if len(digests) > 1:
        same = len(set(digests.values())) == 1
        listed = "; ".join(f"{engine} {digest}" for engine, digest in digests.items())
        print(f"output records {'identical' if same else 'DIFFER'}: {listed}")


def _own_peak_rss_mb() -> float:
    """The parent's peak RSS, which bounds what it adds to a child's (see the module docstring)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


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

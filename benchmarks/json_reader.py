"""Memory and speed of Glue's ``multiline`` / ``jsonPath`` reader (``python -m benchmarks.json_reader``).

Each case converts one generated object with ``convert_object`` (as the stage does) in a child process and
prints the child's peak resident set over its baseline (``VmHWM`` from ``/proc/self/status`` read after the
imports and again after the conversion: ``ru_maxrss`` is carried over fork and exec on Linux, so it would
report the parent's peak) beside the largest record's size, with the time and MB/s. DuckDB's ``read_json``
of the same object (``maximum_object_size`` raised to fit), copied to JSON lines, runs beside it in its own
child as the reference.

Cases (``--mb`` scales them; the issue's figures are for 20 and 51 MB):

- ``record-objects``: one record of ``--mb`` MB holding an array of small objects (``multiline``);
- ``record-strings``: one record of ``--mb`` MB holding an array of short strings (``multiline``);
- ``one-string``: one record whose one string is ``--mb`` MB (``multiline``);
- ``skipped-sibling``: a ``--sibling-mb`` MB value beside ``$.records[*]`` (two small records), skipped;
- ``many-records``: ``--mb`` MB of small records in one array (``multiline``): the throughput case.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MB = 1_000_000
CASES = ("record-objects", "record-strings", "one-string", "skipped-sibling", "many-records")


def _write_array(out: Any, item: Any, size: int) -> None:
    """``[item(0), item(1), ...]`` until about ``size`` bytes, written in pieces."""
    out.write("[")
    written, i = 0, 0
    while written < size:
        piece = ",".join(item(j) for j in range(i, i + 10_000))
        out.write(("," if i else "") + piece)
        written += len(piece) + 1
        i += 10_000
    out.write("]")


def generate(case: str, path: Path, mb: int, sibling_mb: int) -> tuple[str, int]:
    """Write the case's object; (the jsonPath or "" for multiline, the largest record's size in bytes)."""
    size = mb * MB
    with open(path, "w", encoding="utf-8") as out:
        if case == "record-objects":
            out.write('{"id": 1, "items": ')
            _write_array(out, lambda i: json.dumps({"k": i, "v": "ab", "f": 1.5}), size)
            out.write("}\n")
            return "", path.stat().st_size
        if case == "record-strings":
            out.write('{"id": 1, "items": ')
            _write_array(out, lambda i: f'"s{i % 1000}"', size)
            out.write("}\n")
            return "", path.stat().st_size
        if case == "one-string":
            out.write('{"id": 1, "text": "')
            for _ in range(mb):
                out.write("y" * MB)
            out.write('"}\n')
            return "", path.stat().st_size
        if case == "skipped-sibling":
            out.write('{"skip": ')
            _write_array(out, lambda i: json.dumps({"k": i, "v": 'a]}\\"b', "f": [1.5, None]}), sibling_mb * MB)
            out.write(', "records": [{"id": 1}, {"id": 2}]}\n')
            return "$.records[*]", len('{"id": 1}')
        if case == "many-records":
            _write_array(out, lambda i: json.dumps({"id": i, "user": {"name": f"u{i}"}, "v": [1.5, None, "x"]}), size)
            return "", 60
    raise ValueError(case)


def _hwm() -> int:
    """The process's peak resident set so far, in bytes (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def child(engine: str, path: str, json_path: str, workdir: str) -> None:
    """Run one conversion and print {"seconds", "peak_over_baseline", "records"} as JSON."""
    if engine == "glueflow":
        from glueflow_dagster.core.json_reader import JsonFormat, convert_object

        fmt = JsonFormat(json_path=json_path) if json_path else JsonFormat(multiline=True)
        baseline = _hwm()
        started = time.perf_counter()
        report = convert_object(Path(path), path, Path(workdir), fmt)
        seconds = time.perf_counter() - started
        records = report.good_records
        if report.error:
            records = f"error: {report.error}"  # type: ignore[assignment]
    else:
        import duckdb

        connection = duckdb.connect()
        connection.execute("SET threads = 1")
        out = str(Path(workdir) / "duckdb.json")
        source = f"read_json('{path}', format='auto', maximum_object_size=1000000000)"
        if json_path:
            source = f"(SELECT unnest(records, recursive := false) AS r FROM {source})"
        baseline = _hwm()
        started = time.perf_counter()
        connection.execute(f"COPY (SELECT * FROM {source}) TO '{out}' (FORMAT json)")
        seconds = time.perf_counter() - started
        records = connection.execute(f"SELECT count(*) FROM read_json('{out}')").fetchone()[0]  # type: ignore[index]
    print(json.dumps({"seconds": seconds, "peak_over_baseline": _hwm() - baseline, "records": records}))


def _run(engine: str, path: Path, json_path: str, workdir: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.json_reader", "--child", engine, str(path), json_path, str(workdir)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1][:120]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=20, help="size of the large record (MB)")
    parser.add_argument("--sibling-mb", type=int, default=51, help="size of the skipped sibling value (MB)")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--engines", default="glueflow,duckdb")
    parser.add_argument("--child", nargs=4, metavar=("ENGINE", "PATH", "JSON_PATH", "WORKDIR"))
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    head = ("case", "engine", "object MB", "record MB", "peak-base MB", "s", "MB/s")
    print(f"{head[0]:<16} {head[1]:<9} {head[2]:>9} {head[3]:>9} {head[4]:>12} {head[5]:>7} {head[6]:>6}  records")
    with tempfile.TemporaryDirectory() as folder:
        for case in args.cases.split(","):
            path = Path(folder) / f"{case}.json"
            json_path, record = generate(case, path, args.mb, args.sibling_mb)
            size = path.stat().st_size
            for engine in args.engines.split(","):
                work = Path(folder) / f"work-{engine}"
                work.mkdir(exist_ok=True)
                got = _run(engine, path, json_path, work)
                for leftover in work.iterdir():
                    leftover.unlink()
                if "error" in got:
                    print(f"{case:<16} {engine:<9} {size / MB:9.1f} {record / MB:9.1f}  {got['error']}")
                    continue
                print(
                    f"{case:<16} {engine:<9} {size / MB:9.1f} {record / MB:9.1f} "
                    f"{got['peak_over_baseline'] / MB:+12.1f} {got['seconds']:7.2f} "
                    f"{size / MB / max(got['seconds'], 1e-9):6.1f}  {got['records']}",
                    flush=True,
                )
            os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

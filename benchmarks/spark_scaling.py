"""The Spark stage on a standalone cluster of one worker, then two, on the same data.

    python -m benchmarks.spark_scaling --data /tmp/bench-50 --workers 1,2
    python -m benchmarks.spark_scaling --size-mb 100 --object-mb 10 --workers 1,2

Starts a master and N one-core workers from the pyspark package (``glueflow_dagster_tests.support.spark_cluster``),
runs the stage script's ``run`` as its own driver process (``spark://`` master) on local JSON-lines objects
(``--data``, e.g. kept by ``benchmarks.stage --keep-data``, or generated here), and prints the driver's
wall-clock seconds per cluster size with MB/s of input. Every cluster is stopped before the next starts.
The executors read and write the objects themselves; the driver only coordinates.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.events import MAPPINGS, MB, generate
from glueflow_dagster_tests.support.spark_cluster import SparkCluster, start_driver, wait_driver


def run_once(data: Path, workers: int, work: Path) -> tuple[float, int]:
    from glueflow_dagster.core.storage import LocalStorage

    objects = list(LocalStorage(data).list())
    out = work / "out"
    cluster = SparkCluster(work / "cluster", workers=workers, cores=1, memory="1g").start()
    try:
        extras = {
            "manifest": [{"key": o.key, "size": o.size, "last_modified_ms": 0, "etag": ""} for o in objects],
            "mappings": MAPPINGS,
            "source": str(data),
            "target": str(out),
            "compression": "gzip",
            "part_prefix": "run-scaling-attempt-1",
            "quarantine_prefix": "_errors/scaling",
            "max_error_records": 0,
            "target_file_bytes": 128 * 1024 * 1024,
            "master": cluster.url,
            "driver_memory": "512m",
        }
        started = time.perf_counter()
        process, result = start_driver(extras, work)
        figures = wait_driver(process, result)["figures"]
        return time.perf_counter() - started, int(figures["records_written"])
    finally:
        cluster.stop()
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a folder of JSON-lines objects (default: generated)")
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--object-mb", type=int, default=10)
    parser.add_argument("--workers", default="1,2", help="comma-separated cluster sizes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="glueflow-scaling-") as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "input"
            data.mkdir()
            generate(data, args.size_mb, args.object_mb)
        size = sum(p.stat().st_size for p in data.iterdir() if p.is_file())
        print(f"input: {size / MB:,.0f} MB in {sum(1 for p in data.iterdir() if p.is_file())} objects")
        print(f"{'workers':>8} {'seconds':>8} {'MB/s in':>8} {'records':>10}")
        for workers in (int(n) for n in args.workers.split(",")):
            work = Path(tmp) / f"w{workers}"
            work.mkdir()
            seconds, records = run_once(data, workers, work)
            print(f"{workers:8d} {seconds:8.1f} {size / MB / seconds:8.2f} {records:10,}", flush=True)


if __name__ == "__main__":
    main()

"""The Spark stage on a real standalone cluster (a master and two workers from the pyspark package).

Raw input and staging are on S3 (the moto server over HTTP). The stage script's ``run`` is the driver, a
process of its own with a botocore event hook counting its S3 calls; the executors run on the workers.
Every record must come out exactly once, the driver must make no data request (no GetObject, no
UploadPart, no PutObject of data), and a worker killed in the middle of the stage (its executor and Python
workers with it) must not change that. Minutes of JVMs: slow.
"""

from __future__ import annotations

import gzip
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glueflow_dagster.components.spark_stage import stage_result
from glueflow_dagster.core.commits import Attempt, publish
from glueflow_dagster.core.storage import S3Storage
from glueflow_dagster_tests.support.spark_cluster import SparkCluster, start_driver, wait_driver

pytestmark = [pytest.mark.slow, pytest.mark.spark]

MAPPINGS = [
    ["id", "long", "event_id", "long"],
    ["user.id", "int", "user.id", "long"],
    ["amount", "string", "amount", "double"],
    ["ts", "string", "event_time", "timestamp"],
]
DATA_CALLS = {"GetObject", "UploadPart", "PutObject", "CreateMultipartUpload", "HeadObject"}


@pytest.fixture
def cluster(tmp_path: Path, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SparkCluster]:
    """A master and two one-core workers next to the moto server; every process stopped at teardown."""
    if shutil.which("java") is None:
        pytest.skip("no java on PATH")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)  # the driver's and (through it) the executors'
    started = SparkCluster(tmp_path / "cluster", workers=2, cores=1, memory="1g").start()
    try:
        yield started
    finally:
        started.stop()


def _objects(s3_client: Any, bucket: str, count: int, lines: int, bad_every: int = 0) -> set[int]:
    """``count`` gzip objects of ``lines`` records under raw/ (every ``bad_every``-th line not JSON)."""
    ids: set[int] = set()
    for n in range(count):
        rows = []
        for i in range(n * lines, (n + 1) * lines):
            if bad_every and i % bad_every == 0:
                rows.append("not json {")
                continue
            rows.append(json.dumps({"id": i, "user": {"id": i % 7}, "amount": f"{i}.5", "ts": "2024-01-02 03:04:05"}))
            ids.add(i)
        data = gzip.compress(("\n".join(rows) + "\n").encode(), compresslevel=1)
        s3_client.put_object(Bucket=bucket, Key=f"raw/part-{n:03d}.json.gz", Body=data)
    return ids


def _extras(s3_client: Any, bucket: str, run_id: str, master: str, **more: Any) -> dict[str, Any]:
    listing = s3_client.list_objects_v2(Bucket=bucket, Prefix="raw/")["Contents"]
    return {
        "manifest": [
            {"key": o["Key"].removeprefix("raw/"), "size": o["Size"], "last_modified_ms": 0, "etag": o["ETag"]}
            for o in listing
        ],
        "mappings": MAPPINGS,
        "source": f"s3://{bucket}/raw",
        "target": f"s3://{bucket}/staging",
        "compression": "gzip",
        "part_prefix": f"run-{run_id}-attempt-1",
        "quarantine_prefix": f"_errors/{run_id}",
        "max_error_records": 1000,
        "target_file_bytes": 64 * 1024,
        "master": master,
        "driver_memory": "512m",
        **more,
    }


def _committed_ids(s3_client: Any, bucket: str, figures: dict[str, Any], run_id: str) -> list[int]:
    target = S3Storage(bucket, "staging", s3_client)
    result = stage_result(figures, target, 0.0)
    record = publish(target, Attempt(run_id, 1), "events_input_job", result.pending, result.records_written)
    ids = []
    for part in record.parts:
        body = s3_client.get_object(Bucket=bucket, Key=f"staging/{part.key}")["Body"].read()
        ids += [json.loads(line)["event_id"] for line in gzip.decompress(body).decode().splitlines()]
    return ids


def test_executors_read_and_write_and_the_driver_makes_no_data_request(
    tmp_path: Path, cluster: SparkCluster, s3_client: Any, s3_bucket: str
) -> None:
    ids = _objects(s3_client, s3_bucket, count=6, lines=3000, bad_every=997)
    extras = _extras(s3_client, s3_bucket, "c1", cluster.url, group_size=1)
    process, result_path = start_driver(extras, tmp_path)
    result = wait_driver(process, result_path)
    figures, calls = result["figures"], result["calls"]

    # Executors did the data path: the parts are open multipart uploads with etags, made elsewhere.
    assert figures["pending"] and all(p["parts"] for p in figures["pending"])
    data_calls = [(op, key) for op, key in calls if op in DATA_CALLS and "/_errors/" not in (key or "")]
    assert data_calls == []  # the driver read and wrote no data object (its quarantine is not data)
    # Listing, the quarantine's own objects, and the look-up for pending parts of failed tasks.
    assert {op for op, _key in calls} <= {
        "DeleteObjects",
        "ListObjectsV2",
        "PutObject",
        "HeadObject",
        "ListMultipartUploads",
    }
    assert cluster.log("worker-0").count("Asked to launch executor") and cluster.log("worker-1").count(
        "Asked to launch executor"
    )

    # Every record exactly once; every bad line quarantined with its object and line number.
    assert (figures["records_read"], figures["error_records"]) == (18000, 18000 - len(ids))
    assert sorted(_committed_ids(s3_client, s3_bucket, figures, "c1")) == sorted(ids)
    entries = [
        json.loads(line)
        for o in figures["quarantined"]
        for line in s3_client.get_object(Bucket=s3_bucket, Key=f"staging/{o['key']}")["Body"].read().splitlines()
    ]
    expected = {(f"s3://{s3_bucket}/raw/part-{i // 3000:03d}.json.gz", i % 3000 + 1) for i in range(0, 18000, 997)}
    assert {(e["source"], e["line"]) for e in entries} == expected
    assert {e["error"] for e in entries} == {"malformed JSON"}


def test_a_worker_killed_mid_stage_still_gives_every_record_exactly_once(
    tmp_path: Path, cluster: SparkCluster, s3_client: Any, s3_bucket: str
) -> None:
    ids = _objects(s3_client, s3_bucket, count=16, lines=20000)
    extras = _extras(s3_client, s3_bucket, "k1", cluster.url, group_size=1)
    process, result_path = start_driver(extras, tmp_path)
    # Mid-stage: once some task has left a pending part (and the driver is still running), worker 0 dies.
    deadline = time.monotonic() + 300
    while not s3_client.list_multipart_uploads(Bucket=s3_bucket, Prefix="staging/").get("Uploads"):
        assert process.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no task wrote a part in 300 s"
        time.sleep(0.2)
    cluster.kill_worker(0)
    assert process.poll() is None, "the stage ended before the worker was killed"
    figures = wait_driver(process, result_path)["figures"]
    assert "Lost executor" in (tmp_path / "driver.log").read_text(errors="replace")  # tasks were retried

    assert figures["records_read"] == figures["records_written"] == len(ids)
    assert sorted(_committed_ids(s3_client, s3_bucket, figures, "k1")) == sorted(ids)  # no loss, no duplicate
    # The killed tasks' pending parts were aborted by the driver: no upload is left open.
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket, Prefix="staging/").get("Uploads", []) == []

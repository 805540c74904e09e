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
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from glueflow_dagster.components import spark_stage
from glueflow_dagster.components.jobs import INPUT_RUN_TAG, output_key, staging_key
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.components.spark_stage import stage_result
from glueflow_dagster.core.commits import Attempt, publish
from glueflow_dagster.core.storage import S3Storage
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.components.test_spark_stage import _flow, _raw_lines, _run
from glueflow_dagster_tests.support.spark_cluster import (
    ClusterEMRServerlessClient,
    ClusterGlueClient,
    SparkCluster,
    start_driver,
    wait_driver,
)

# One pytest-xdist worker runs them all, so the cluster starts once.
pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.xdist_group("spark_cluster")]

MAPPINGS = [
    ["id", "long", "event_id", "long"],
    ["user.id", "int", "user.id", "long"],
    ["amount", "string", "amount", "double"],
    ["ts", "string", "event_time", "timestamp"],
]
JAVA_TOOL_OPTIONS = "-XX:TieredStopAtLevel=1"
DATA_CALLS = {"GetObject", "UploadPart", "PutObject", "CreateMultipartUpload", "HeadObject"}


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> Iterator[SparkCluster]:
    """A master and two one-core workers next to the moto server, started once for the module (the tests
    share one pytest-xdist worker through their group); every process stopped at teardown."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no java on PATH")
    workdir = tmp_path_factory.mktemp("cluster")
    # The workers' own S3 endpoint (the executors inherit it), as a real worker has its own credentials;
    # JVMs that compile with C1 only start their work sooner (minutes of the module's time on 2 shared cores).
    env = {"AWS_ENDPOINT_URL": moto_server, "JAVA_TOOL_OPTIONS": JAVA_TOOL_OPTIONS}
    started = SparkCluster(workdir, workers=2, cores=1, memory="1g", env=env).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def cluster(spark_cluster: SparkCluster, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> SparkCluster:
    """The module's cluster with both workers alive (a worker a test killed is started again)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)  # the drivers' (and, on spark://, passed on)
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", JAVA_TOOL_OPTIONS)  # the drivers' JVMs
    spark_cluster.ensure_workers()
    return spark_cluster


def _executors_of(cluster: SparkCluster, app: str) -> list[int]:
    """How many executors each worker was asked to launch for the application named ``glueflow <app>``."""
    return [cluster.log(f"worker-{i}").count(f"for glueflow {app}\n") for i in range(cluster.workers)]


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
    assert all(_executors_of(cluster, "run-c1-attempt-1"))  # both workers ran executors of this stage

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
    ids = _objects(s3_client, s3_bucket, count=12, lines=20000)
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


def _spark_flow(tmp_path: Path, bucket: str, spark: dict[str, Any], output_engine: str = "spark") -> Path:
    """test_spark_stage's flow (raw and staging on S3, output local) with this ``spark:`` section."""
    flow_file = _flow(tmp_path, bucket, "spark")
    document = yaml.safe_load(flow_file.read_text())
    document["flows"]["events"]["output_job"]["engine"] = output_engine
    document["flows"]["events"]["spark"] = spark
    flow_file.write_text(yaml.safe_dump(document, sort_keys=False))
    return flow_file


def _put_raw(s3_client: Any, bucket: str, objects: int, lines: int) -> list[int]:
    """``objects`` objects of ``lines`` records under spark/raw/, each ending in one bad line; their ids."""
    for n in range(objects):
        body = "\n".join([*_raw_lines(n * lines, lines), "not json"]) + "\n"
        data = gzip.compress(body.encode()) if n % 2 else body.encode()
        s3_client.put_object(Bucket=bucket, Key=f"spark/raw/part-{n}.json{'.gz' if n % 2 else ''}", Body=data)
    return list(range(objects * lines))


def test_a_dagster_flow_on_the_cluster_gives_every_record_exactly_once(
    tmp_path: Path, cluster: SparkCluster, instance: Any, s3_client: Any, s3_bucket: str
) -> None:
    """Input and Output runs through the definitions, ``engine: spark`` and ``spark.master: spark://...``."""
    ids = _put_raw(s3_client, s3_bucket, objects=4, lines=250)
    spark = {"launcher": "local", "master": cluster.url, "driver_memory": "512m"}
    defs = load_definitions(_spark_flow(tmp_path, s3_bucket, spark))
    input_run = _run(defs, instance, "events_input_job")
    output_run = _run(defs, instance, "events_output_job", tags={INPUT_RUN_TAG: input_run})

    staging = run_materialization_metadata(instance, input_run, staging_key("events"))
    output = run_materialization_metadata(instance, output_run, output_key("events"))
    assert (staging["records_read"], staging["records_written"], staging["error_records"]) == (1004, 1000, 4)
    assert (output["records_read"], output["records_written"], output["error_records"]) == (1000, 1000, 0)
    records = [
        json.loads(line)
        for path in sorted((tmp_path / "data" / "output").glob("run-*-part-r-*"))
        for line in path.read_text().splitlines()
    ]
    assert sorted(r["event_id"] for r in records) == ids  # every record exactly once
    # Both stages ran on the cluster's workers, and left no upload open.
    assert all(_executors_of(cluster, f"run-{input_run}-attempt-1"))
    assert sum(_executors_of(cluster, f"run-{output_run}-attempt-1")) >= 1
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket, Prefix="spark/").get("Uploads", []) == []


def test_the_glue_launcher_runs_the_stage_on_the_cluster_through_pipes(
    tmp_path: Path, cluster: SparkCluster, instance: Any, s3_client: Any, s3_bucket: str
) -> None:
    """moto runs no Glue job: the test's client submits the job's script to the cluster, as Glue would."""
    glue = ClusterGlueClient(boto3.client("glue", region_name="us-east-1"), s3_client, tmp_path, cluster.url)
    spark = {
        "launcher": "glue",
        "job_name": "glueflow-events-input",
        "script_uri": f"s3://{s3_bucket}/glue/scripts/glueflow_stage.py",
        "iam_role": "arn:aws:iam::123456789012:role/glueflow",
        "worker_type": "G.2X",
        "number_of_workers": 3,
    }
    flow_file = _spark_flow(tmp_path, s3_bucket, spark, output_engine="polars")
    ids = _put_raw(s3_client, s3_bucket, objects=2, lines=25)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spark_stage, "glue_client_factory", lambda: glue)
        defs = load_definitions(flow_file)
        input_run = _run(defs, instance, "events_input_job")
    staging = run_materialization_metadata(instance, input_run, staging_key("events"))
    assert (staging["records_read"], staging["records_written"], staging["error_records"]) == (52, 50, 2)
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="spark/staging/")["Contents"]]
    assert any(re.fullmatch(rf"spark/staging/run-{input_run}-attempt-1-part-r-\d+\.json\.gz", key) for key in keys)
    # The Glue job as the flow file describes it, Glue's bookmarks off, the shipped script uploaded.
    job = glue.get_job(JobName="glueflow-events-input")["Job"]
    assert (job["WorkerType"], job["NumberOfWorkers"], job["GlueVersion"]) == ("G.2X", 3, "5.0")
    assert job["DefaultArguments"]["--job-bookmark-option"] == "job-bookmark-disable"
    uploaded = s3_client.get_object(Bucket=s3_bucket, Key="glue/scripts/glueflow_stage.py")["Body"].read()
    assert uploaded == spark_stage.STAGE_SCRIPT.read_bytes() and b"awsglue" not in uploaded.replace(b"``awsglue``", b"")
    [argv] = glue.argv
    assert "--dagster-pipes-context" in argv and "--dagster-pipes-messages" in argv
    assert argv[argv.index("--master") + 1] == cluster.url
    assert sum(_executors_of(cluster, f"run-{input_run}-attempt-1")) >= 1  # the workers ran the stage
    # The Output job (polars) reads what the Glue stage committed, every record once.
    output_run = _run(defs, instance, "events_output_job", tags={INPUT_RUN_TAG: input_run})
    assert run_materialization_metadata(instance, output_run, output_key("events"))["records_written"] == 50
    output = tmp_path / "data" / "output"
    records = [json.loads(line) for part in output.glob("run-*") for line in part.read_text().splitlines()]
    assert sorted(r["event_id"] for r in records) == ids


def test_the_emr_serverless_launcher_runs_the_stage_on_the_cluster_through_pipes(
    tmp_path: Path, cluster: SparkCluster, instance: Any, s3_client: Any, s3_bucket: str
) -> None:
    """moto runs no EMR job: the test's client submits the entry point to the cluster, as the service would."""
    real = boto3.client("emr-serverless", region_name="us-east-1")
    application = real.create_application(name="glueflow", releaseLabel="emr-7.2.0", type="SPARK")["applicationId"]
    emr = ClusterEMRServerlessClient(real, s3_client, tmp_path, cluster.url)
    spark = {
        "launcher": "emr_serverless",
        "application_id": application,
        "script_uri": f"s3://{s3_bucket}/emr/scripts/glueflow_stage.py",
        "iam_role": "arn:aws:iam::123456789012:role/glueflow-emr",
    }
    flow_file = _spark_flow(tmp_path, s3_bucket, spark, output_engine="polars")
    _put_raw(s3_client, s3_bucket, objects=2, lines=25)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spark_stage, "emr_serverless_client_factory", lambda: emr)
        input_run = _run(load_definitions(flow_file), instance, "events_input_job")
    staging = run_materialization_metadata(instance, input_run, staging_key("events"))
    assert (staging["records_read"], staging["records_written"], staging["error_records"]) == (52, 50, 2)
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="spark/staging/")["Contents"]]
    assert any(re.fullmatch(rf"spark/staging/run-{input_run}-attempt-1-part-r-\d+\.json\.gz", key) for key in keys)
    [driver_env] = emr.env
    assert "DAGSTER_PIPES_CONTEXT" in driver_env and "DAGSTER_PIPES_MESSAGES" in driver_env
    [argv] = emr.argv
    assert argv[argv.index("--master") + 1] == cluster.url and argv[-1] == "--glueflow-pipes-s3"
    assert sum(_executors_of(cluster, f"run-{input_run}-attempt-1")) >= 1  # the workers ran the stage

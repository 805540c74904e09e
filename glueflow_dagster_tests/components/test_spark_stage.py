"""`engine: spark` end to end: the same flow on polars and on Spark (local launcher, through Dagster Pipes).

One Spark test (two stage-script subprocesses, each its own JVM): Input -> Output through the real
definitions and a real Dagster instance, raw input and staging on S3 (the moto server; the stage script's
executors read and write S3 with boto3), output local. Both engines must write the same records and
record the same figures, bad input included. The config tests need no JVM. The Glue and EMR Serverless
launchers are tested on a standalone cluster, in test_spark_cluster.py.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from glueflow_dagster.components.jobs import INPUT_RUN_TAG, output_key, staging_key
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.core.config import ConfigError, load_config
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.conftest import write_flow_file

MAPPINGS = {
    "input_job": [
        ["id", "long", "event_id", "long"],
        ["user.id", "int", "user.id", "long"],
        ["user.name", "string", "user.name", "string"],
        ["amount", "string", "amount", "double"],
        ["ts", "string", "event_time", "timestamp"],
    ],
    "output_job": [
        ["event_id", "long", "event_id", "long"],
        ["user.id", "long", "user_id", "long"],
        ["amount", "double", "amount", "double"],
        ["event_time", "timestamp", "event_time", "timestamp"],
    ],
}
FIGURES = ("records_read", "records_written", "error_records", "cast_errors", "files_read", "files_written")


def _raw_lines(first: int, count: int) -> list[str]:
    lines = []
    for i in range(first, first + count):
        record: dict[str, Any] = {"id": i, "user": {"id": i % 7, "name": f"u{i}"}, "amount": f"{i}.25"}
        record["ts"] = f"2024-01-{1 + i % 28:02d} 10:{i % 60:02d}:00" if i % 5 else 1_700_000_000 + i
        if i % 11 == 0:
            record["amount"] = "abc"  # a cast error, kept as null
        if i % 13 == 0:
            record["ID"] = record.pop("id")  # another spelling: matched case-insensitively
        lines.append(json.dumps(record))
    return lines


def _flow(directory: Path, bucket: str, engine: str) -> Path:
    path = write_flow_file(
        directory,
        input_uri=f"s3://{bucket}/{engine}/raw",
        staging_uri=f"s3://{bucket}/{engine}/staging",
        output_uri="data/output",
    )
    document = yaml.safe_load(path.read_text())
    flow = document["flows"]["events"]
    for job in ("input_job", "output_job"):
        flow[job]["mappings"] = MAPPINGS[job]
        flow[job]["engine"] = engine
    flow["input_job"]["max_error_records"] = 5
    flow["spark"] = {"launcher": "local", "master": "local[1]", "driver_memory": "512m"}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _run(defs: Any, instance: Any, name: str, tags: dict[str, str] | None = None) -> str:
    result = defs.resolve_job_def(name).execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    if not result.success:
        [failure] = result.get_step_failure_events()
        pytest.fail(f"{name} failed: {failure.step_failure_data.user_failure_data or failure.step_failure_data.error}")
    return result.run_id


def _output_records(flow_file: Path) -> list[dict[str, Any]]:
    folder = flow_file.parent / "data" / "output"
    rows = [
        json.loads(line)
        for path in sorted(folder.glob("run-*-part-r-*"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    return sorted(rows, key=lambda r: (r["event_id"] is None, r["event_id"] or 0))


@pytest.mark.spark
def test_a_flow_on_spark_writes_what_polars_writes_with_the_same_figures(
    tmp_path: Path, instance: Any, moto_server: str, s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyspark")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    good = _raw_lines(0, 60)
    bad = ["not json", "[1, 2]", '"just text"']
    objects = {
        "raw/batch=0/a.json": ("\n".join(good[:30] + bad[:2]) + "\n").encode(),
        "raw/batch=0/b.json.gz": gzip.compress(("\n".join(good[30:] + bad[2:]) + "\n\n").encode()),
    }
    seen: dict[str, dict[str, Any]] = {}
    for engine in ("polars", "spark"):
        for key, body in objects.items():
            s3_client.put_object(Bucket=s3_bucket, Key=f"{engine}/{key}", Body=body)
        flow_file = _flow(tmp_path / engine, s3_bucket, engine)
        defs = load_definitions(flow_file)
        input_run = _run(defs, instance, "events_input_job")
        output_run = _run(defs, instance, "events_output_job", tags={INPUT_RUN_TAG: input_run})
        staging = run_materialization_metadata(instance, input_run, staging_key("events"))
        output = run_materialization_metadata(instance, output_run, output_key("events"))
        listing = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=f"{engine}/staging/")["Contents"]
        quarantine = [o["Key"] for o in listing if "/_errors/" in o["Key"]]
        entries = [
            json.loads(line)
            for key in quarantine
            for line in s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read().decode().splitlines()
        ]
        seen[engine] = {
            "input_run": input_run,
            "staging": staging,
            "output": output,
            "records": _output_records(flow_file),
            "staged": sorted(o["Key"] for o in listing if "-part-r-" in o["Key"]),
            "entries": entries,
            "open_uploads": s3_client.list_multipart_uploads(Bucket=s3_bucket, Prefix=f"{engine}/").get("Uploads", []),
        }

    polars, spark = seen["polars"], seen["spark"]
    assert len(spark["records"]) == 60
    assert spark["records"] == polars["records"]
    for name in FIGURES:
        assert spark["staging"][name] == polars["staging"][name], name
        assert spark["output"][name] == polars["output"][name], name
    assert spark["staging"]["error_records"] == 3 and spark["staging"]["records_read"] == 63
    assert spark["staging"]["cast_errors"] == polars["staging"]["cast_errors"] > 0
    # Committed through the same protocol: attempt-named parts, completed; no upload left open.
    [staged] = spark["staged"]  # one part, named after the attempt and the Spark task attempt that wrote it
    assert re.fullmatch(rf"spark/staging/run-{spark['input_run']}-attempt-1-part-r-\d+\.json\.gz", staged)
    assert spark["open_uploads"] == [] and polars["open_uploads"] == []

    # Quarantine: the same bad records, with their source objects, line numbers and errors.
    def quarantined(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((e["source"].rsplit("/", 1)[-1], e["line"], e["raw"], e["error"]) for e in entries)

    assert quarantined(spark["entries"]) == quarantined(polars["entries"])
    sources = {e["source"].rsplit("/", 1)[-1] for e in spark["entries"]}
    assert sources == {e["source"].rsplit("/", 1)[-1] for e in polars["entries"]} == {"a.json", "b.json.gz"}


def _write(tmp_path: Path, patch: dict[str, Any]) -> Path:
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    flow = document["flows"]["events"]
    for dotted, value in patch.items():
        node = flow
        *heads, last = dotted.split(".")
        for head in heads:
            node = node.setdefault(head, {})
        node[last] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_engine_defaults_to_polars_and_spark_settings_reach_each_job(tmp_path: Path) -> None:
    flow = load_config(write_flow_file(tmp_path / "a")).flows["events"]
    assert flow.input_job.engine == flow.output_job.engine == "polars"
    flow = load_config(_write(tmp_path / "b", {"output_job.engine": "spark", "spark.master": "local[*]"})).flows[
        "events"
    ]
    assert (flow.input_job.engine, flow.output_job.engine) == ("polars", "spark")
    assert flow.output_job.spark.master == "local[*]" and flow.output_job.spark.launcher == "local"
    cluster = load_config(_write(tmp_path / "c", {"output_job.engine": "spark", "spark.master": "spark://h.x:7077"}))
    assert cluster.flows["events"].output_job.spark.master == "spark://h.x:7077"  # a standalone cluster


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"input_job.engine": "duckdb"}, "flow 'events'.input_job.engine: expected one of polars, spark, got 'duckdb'"),
        ({"spark.launcher": "yarn"}, "flow 'events'.spark.launcher: expected one of local, glue, emr_serverless"),
        (
            {"spark.launcher": "emr_serverless"},
            "flow 'events'.spark.application_id: required with launcher: emr_serverless",
        ),
        ({"spark.launcher": "glue"}, "flow 'events'.spark.job_name: required with launcher: glue"),
        ({"spark.job_name": "j"}, "flow 'events'.spark.job_name: only with launcher: glue (launcher is 'local')"),
        (
            {
                "spark": {
                    "launcher": "emr_serverless",
                    "application_id": "a",
                    "script_uri": "s3://b/s.py",
                    "iam_role": "r",
                    "job_name": "j",
                }
            },
            "flow 'events'.spark.job_name: only with launcher: glue (launcher is 'emr_serverless')",
        ),
        (
            {"spark": {"launcher": "glue", "job_name": "j", "script_uri": "/tmp/s.py", "iam_role": "r"}},
            "flow 'events'.spark.script_uri: expected s3://bucket/key.py, got '/tmp/s.py'",
        ),
        (
            {
                "spark": {
                    "launcher": "glue",
                    "job_name": "j",
                    "script_uri": "s3://b/s.py",
                    "iam_role": "r",
                    "worker_type": "G.3X",
                }
            },
            "flow 'events'.spark.worker_type: expected one of G.1X, G.2X, G.4X, G.8X, got 'G.3X'",
        ),
        (
            {"spark.master": "spark://h"},
            "flow 'events'.spark.master: expected local, local[N], local[*] or spark://host:port",
        ),
        ({"spark.driver_memory": "lots"}, "flow 'events'.spark.driver_memory: expected a JVM size such as 512m"),
        ({"spark.workers": 3}, "flow 'events'.spark: unknown field 'workers'"),
        (
            {"input_job.engine": "spark", "input.multiline": True},
            "input_job.engine: spark reads JSON lines only: not with input.multiline (use engine: polars)",
        ),
    ],
)
def test_engine_and_spark_section_errors_are_one_line(tmp_path: Path, patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, patch))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_stage_script_samples_as_the_polars_stage_does(spark_session: Any, tmp_path: Path) -> None:
    """The executors take the polars stage's sample (the driver reads no data)."""
    from glueflow_dagster.core.stage import sample_schema
    from glueflow_dagster.spark.stage_script import sample_schema_of

    lines = [{"ID": 1, "user": {"Id": 2}, "o": {"x": 1}, "n": 1.5}, {"id": "2", "user": None, "o": {"x": 2}, "n": 2}]
    (tmp_path / "a.json").write_text("not json\n")  # the first object does not read: the next is sampled
    (tmp_path / "b.json.gz").write_bytes(gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode()))
    paths = [tmp_path / "a.json", tmp_path / "b.json.gz"]
    manifest = [{"key": p.name, "size": p.stat().st_size} for p in paths]
    observed = sample_schema_of(spark_session, str(tmp_path), manifest)
    assert observed == sample_schema(paths)
    assert dict(observed) == {
        "ID": pl.Int64(),
        "user": pl.Struct({"Id": pl.Int64()}),
        "o": pl.Struct({"x": pl.Int64()}),
        "n": pl.Float64(),
        "id": pl.String(),
    }


@pytest.mark.spark
def test_the_stage_script_leaves_pending_parts_quarantines_with_lines_and_aborts_past_the_threshold(
    spark_session: Any, tmp_path: Path
) -> None:
    """The script's ``run`` on the test session's Spark (no new JVM): what it leaves before the commit."""
    from glueflow_dagster.components.spark_stage import stage_result
    from glueflow_dagster.core.commits import Attempt, publish
    from glueflow_dagster.core.storage import LocalStorage
    from glueflow_dagster.spark.stage_script import run

    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    source.write_bytes("a.json", ("\n".join(_raw_lines(0, 20) + ["not json", "[1, 2]"]) + "\n").encode())
    extras = {
        "manifest": [
            {"uri": source.uri_for(o.key), "key": o.key, "size": o.size, "last_modified_ms": o.last_modified_ms}
            for o in source.list()
        ]
        + [{"key": "gone.json", "size": 3, "last_modified_ms": 0, "etag": ""}],
        "mappings": MAPPINGS["input_job"],
        "source": source.uri,
        "target": target.uri,
        "compression": "none",
        "part_prefix": "run-r1-attempt-1",
        "quarantine_prefix": "_errors/r1",
        "max_error_records": 2,
        "target_file_bytes": 1000,  # about 10 records per part
        "master": "local[1]",
    }
    figures = run(extras, lambda _message: None)
    assert (figures["records_read"], figures["records_written"], figures["error_records"]) == (22, 20, 2)
    assert figures["cast_errors"] == 6  # amount "abc" on ids 0 and 11; epoch seconds in text on ids 0, 5, 10, 15
    assert [o["key"] for o in figures["vanished"]] == ["gone.json"]
    # Pending: hidden under _glueflow/pending/, nothing at the part names until the commit.
    visible = [o.key for o in target.list() if not o.key.startswith(("_glueflow/", "_errors/"))]
    assert visible == [] and len(figures["pending"]) >= 2
    assert all(p["token"].startswith("_glueflow/pending/") for p in figures["pending"])
    [entries_key] = [o["key"] for o in figures["quarantined"]]
    entries = [json.loads(line) for line in target.read_bytes(entries_key).decode().splitlines()]
    assert [(e["raw"], e["line"], e["error"]) for e in entries] == [
        ("not json", 21, "malformed JSON"),
        ("[1, 2]", 22, "not a JSON object (array)"),
    ]
    assert {e["source"] for e in entries} == {source.uri_for("a.json")}
    result = stage_result(figures, target, 0.0)
    record = publish(target, Attempt("r1", 1), "events_input_job", result.pending, result.records_written)
    lines = [line for part in record.parts for line in target.read_bytes(part.key).decode().splitlines()]
    assert sorted(json.loads(line)["event_id"] for line in lines) == list(range(20))
    # Named after the attempt and the Spark task attempt that wrote it: the protocol's part names.
    assert all(re.fullmatch(r"run-r1-attempt-1-part-r-\d+\.json", part.key) for part in record.parts)

    # Past the threshold: nothing pending is left behind, the good records are counted as discarded.
    figures = run({**extras, "max_error_records": 1, "part_prefix": "run-r2-attempt-1"}, lambda _m: None)
    assert figures["exceeded"] and figures["pending"] == [] and figures["records_discarded"] == 20
    assert [u for u in target.pending_uploads() if "r2" in u.key] == []

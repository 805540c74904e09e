"""`import-glue --from-aws`: jobs, scripts and triggers read from the moto server; the flow runs on S3."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from glueflow_dagster.cli.demo import run_cycle
from glueflow_dagster.core.config import load_config
from glueflow_dagster_tests.glue_import.glue_scripts import GUIDE_INPUT, guide_output, import_glue

# --- --from-aws against the moto server ---------------------------------------------------------------


def _create_glue_flow(
    s3_client: Any,
    bucket: str,
    endpoint: str,
    schedule: str,
    output_script: str,
    max_runs: int = 1,
    condition: str = "SUCCEEDED",
    input_location: str | None = None,
    extra_arguments: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Scripts in moto S3, the two jobs and the guide's two triggers; returns the job names."""
    glue = boto3.client("glue", endpoint_url=endpoint, region_name="us-east-1")
    suffix = uuid.uuid4().hex[:8]
    input_job, output_job = f"Input-{suffix}", f"Output-{suffix}"
    s3_client.put_object(Bucket=bucket, Key="scripts/input.py", Body=GUIDE_INPUT.encode())
    s3_client.put_object(Bucket=bucket, Key="scripts/output.py", Body=output_script.encode())
    paths = {name: f"s3://{bucket}/{name}" for name in ("input", "staging", "output")}
    role = "arn:aws:iam::123456789012:role/GlueEtlRole"
    glue.create_job(
        Name=input_job,
        Role=role,
        Command={
            "Name": "glueetl",
            "ScriptLocation": input_location or f"s3://{bucket}/scripts/input.py",
            "PythonVersion": "3",
        },
        DefaultArguments={
            "--job-bookmark-option": "job-bookmark-enable",
            "--input_path": paths["input"],
            "--staging_path": paths["staging"],
            "--TempDir": f"s3://{bucket}/tmp/",
            **(extra_arguments or {}),
        },
        ExecutionProperty={"MaxConcurrentRuns": 1},
    )
    glue.create_job(
        Name=output_job,
        Role=role,
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/scripts/output.py", "PythonVersion": "3"},
        DefaultArguments={
            "--job-bookmark-option": "job-bookmark-enable",
            "--staging_path": paths["staging"],
            "--output_path": paths["output"],
        },
        ExecutionProperty={"MaxConcurrentRuns": max_runs},
    )
    glue.create_trigger(
        Name=f"every-30-{suffix}",
        Type="SCHEDULED",
        Schedule=schedule,
        Actions=[{"JobName": input_job}],
        StartOnCreation=True,
    )
    glue.create_trigger(
        Name=f"after-input-{suffix}",
        Type="CONDITIONAL",
        Predicate={
            "Logical": "AND",
            "Conditions": [{"LogicalOperator": "EQUALS", "JobName": input_job, "State": condition}],
        },
        Actions=[{"JobName": output_job}],
        StartOnCreation=True,
    )
    return input_job, output_job


def test_from_aws_reads_jobs_scripts_and_triggers_and_the_flow_runs_on_s3(
    tmp_path: Path,
    capsys,
    instance,
    moto_server: str,
    s3_client: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    input_job, output_job = _create_glue_flow(
        s3_client, s3_bucket, moto_server, "cron(0/30 * * * ? *)", guide_output(fixed=True), max_runs=3
    )
    flow_file = tmp_path / "glueflow.yaml"
    args = ("--from-aws", "--input-job", input_job, "--output-job", output_job, "--flow", "events")
    code, stdout, stderr = import_glue(capsys, *args, "--out", str(flow_file), "--json")
    assert code == 0, stdout + stderr
    report = json.loads(stdout)
    assert report["sources"] == {
        "input": f"s3://{s3_bucket}/scripts/input.py",
        "output": f"s3://{s3_bucket}/scripts/output.py",
    }
    converted = {i["field"]: i for i in report["converted"]}
    assert converted["input_job.schedule"]["value"] == "*/30 * * * *"
    assert converted["input_job.schedule"]["source"].startswith("trigger every-30-")
    assert "Output sensor" in converted["output_job (trigger)"]["message"]
    assert converted["output_job.bookmark"]["value"] == "enable"
    [concurrency] = [i for i in report["needs_user"] if i["field"] == "max concurrency"]
    assert concurrency["value"] == 3 and concurrency["source"] == f"Glue job {output_job}"
    assert any(i["message"].startswith("--TempDir") for i in report["needs_user"])
    assert {v["name"]: v["default"] for v in report["variables"]} == {
        "input_path": f"s3://{s3_bucket}/input",
        "staging_path": f"s3://{s3_bucket}/staging",
        "output_path": f"s3://{s3_bucket}/output",
    }
    [iam] = [i for i in report["needs_user"] if i["field"] == "iam"]
    assert "GlueEtlRole" in iam["message"]

    # The job's default arguments become ${VAR:-default}: the flow loads and runs with no variable set.
    entry = yaml.safe_load(flow_file.read_text())["flows"]["events"]
    assert entry["input"]["uri"] == f"${{input_path:-s3://{s3_bucket}/input}}"
    from glueflow_dagster.definitions import build_definitions

    config = load_config(flow_file)
    flow = config.flows["events"]
    assert flow.input_job.schedule == "*/30 * * * *" and flow.staging.uri == f"s3://{s3_bucket}/staging"
    defs = build_definitions(config)
    figures, _ = run_cycle(defs, instance, flow, 0, None, files=2, events_per_file=200)
    assert figures.ratio == pytest.approx(1.0) and len(figures.output_run_ids) == 1
    listed = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="output/")["Contents"]]
    keys = [key for key in listed if not key.startswith("output/_glueflow/")]  # commits, the chart
    assert len(keys) == 1 and keys[0].startswith("output/run-") and keys[0].endswith("-part-r-00000.json")


def test_from_aws_refuses_a_glue_cron_without_five_field_equivalent(
    tmp_path: Path, capsys, moto_server: str, s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    input_job, output_job = _create_glue_flow(
        s3_client, s3_bucket, moto_server, "cron(0 12 L * ? *)", guide_output(fixed=True)
    )
    flow_file = tmp_path / "glueflow.yaml"
    args = (
        "--from-aws",
        "--input-job",
        input_job,
        "--output-job",
        output_job,
        "--flow",
        "events",
        "--out",
        str(flow_file),
    )
    code, stdout, stderr = import_glue(capsys, *args)
    assert code == 1 and not flow_file.exists()
    [line] = [row for row in stdout.splitlines() if "input_job.schedule" in row]
    assert "day-of-month 'L' uses L/W/#" in line and "no five-field cron equivalent" in line
    assert "1 construct(s) not converted" in stderr
    # --allow-partial writes the rest with the default schedule, and says so.
    code, stdout, _ = import_glue(capsys, *args, "--allow-partial")
    assert code == 0 and load_config(flow_file).flows["events"].input_job.schedule == "*/30 * * * *"


def test_from_aws_missing_job_is_one_line(capsys, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    code, _, stderr = import_glue(
        capsys, "--from-aws", "--input-job", "NoSuchJob", "--output-job", "Nope", "--flow", "x"
    )
    assert code == 2 and stderr.count("\n") == 1
    assert stderr.startswith("glueflow: AWS GetJob 'NoSuchJob': EntityNotFoundException")


def test_from_aws_reports_a_conditional_trigger_that_is_not_the_output_sensor(
    capsys, moto_server: str, s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    input_job, output_job = _create_glue_flow(
        s3_client, s3_bucket, moto_server, "cron(15 6 ? * MON-FRI *)", guide_output(fixed=True), condition="FAILED"
    )
    glue = boto3.client("glue", endpoint_url=moto_server, region_name="us-east-1")
    glue.create_trigger(
        Name=f"by-hand-{input_job}",
        Type="ON_DEMAND",
        Actions=[{"JobName": input_job, "Arguments": {"--input_path": f"s3://{s3_bucket}/backfill"}}],
    )
    args = ("--from-aws", "--input-job", input_job, "--output-job", output_job, "--flow", "events", "--json")
    code, stdout, _ = import_glue(capsys, *args)
    assert code == 1
    report = json.loads(stdout)
    [schedule] = [i for i in report["converted"] if i["field"] == "input_job.schedule"]
    assert schedule["value"] == "15 6 * * 1-5"
    refused = {i["field"]: i for i in report["unsupported"]}
    assert f"{input_job} FAILED" in refused["output_job (trigger)"]["message"]
    assert refused["trigger"]["message"].startswith(f"ON_DEMAND trigger starting {input_job}")
    [passed] = [i for i in report["needs_user"] if i["field"] == "trigger argument"]
    assert passed["value"] == f"s3://{s3_bucket}/backfill" and "environment variable input_path" in passed["message"]


KEY_ID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def test_from_aws_never_shows_credentials_in_a_script_location_or_an_argument(
    capsys, moto_server: str, s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    # A ScriptLocation with user:password@: refused in one line, the credentials redacted.
    location = f"s3://{KEY_ID}:{SECRET}@{s3_bucket}/scripts/input.py"
    input_job, output_job = _create_glue_flow(
        s3_client, s3_bucket, moto_server, "cron(0/30 * * * ? *)", guide_output(fixed=True), input_location=location
    )
    args = ("--from-aws", "--input-job", input_job, "--output-job", output_job, "--flow", "events")
    code, stdout, stderr = import_glue(capsys, *args)
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert f"s3://***@{s3_bucket}/scripts/input.py" in stderr and "holds credentials" in stderr
    assert KEY_ID not in stdout + stderr and SECRET not in stdout + stderr
    # A job argument and a trigger argument holding a URI with credentials: reported, redacted.
    database = f"postgresql://{KEY_ID}:{SECRET}@db.example.com/sales"
    input_job, output_job = _create_glue_flow(
        s3_client,
        s3_bucket,
        moto_server,
        "cron(0/30 * * * ? *)",
        guide_output(fixed=True),
        extra_arguments={"--database_url": database},
    )
    glue = boto3.client("glue", endpoint_url=moto_server, region_name="us-east-1")
    glue.create_trigger(
        Name=f"by-hand-{input_job}",
        Type="ON_DEMAND",
        Actions=[{"JobName": input_job, "Arguments": {"--input_path": f"s3://{KEY_ID}:{SECRET}@{s3_bucket}/backfill"}}],
    )
    args = ("--from-aws", "--input-job", input_job, "--output-job", output_job, "--flow", "events")
    code, stdout, stderr = import_glue(capsys, *args, "--json")
    assert code == 1, stderr  # the ON_DEMAND trigger is not converted
    assert KEY_ID not in stdout + stderr and SECRET not in stdout + stderr
    report = json.loads(stdout)
    [argument] = [i for i in report["needs_user"] if i["message"].startswith("--database_url")]
    [passed] = [i for i in report["needs_user"] if i["field"] == "trigger argument"]
    assert argument["value"] == "postgresql://***@db.example.com/sales"
    assert passed["value"] == f"s3://***@{s3_bucket}/backfill"

"""`--from-aws`: the two Glue jobs, their scripts and their triggers, read with boto3.

boto3 is imported only here, and only when called. Every AWS error becomes one line naming the call
and the error code; never credentials, never a whole response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from glueflow_dagster.core.storage import redact
from glueflow_dagster.glue_import.report import ImportGlueError, ReportItem, short
from glueflow_dagster.glue_import.script import MAX_SCRIPT_BYTES
from glueflow_dagster.glue_import.triggers import read_triggers


@dataclass
class AwsJob:
    """What `--from-aws` read about one Glue job."""

    name: str
    script_location: str
    default_arguments: dict[str, str] = field(default_factory=dict)
    max_concurrent_runs: int = 1
    role: str | None = None
    command: str = "glueetl"
    max_retries: int = 0


@dataclass
class AwsFacts:
    """The two jobs and what their triggers say."""

    input_job: AwsJob
    output_job: AwsJob
    schedule: str | None = None  # converted five-field cron
    items: list[ReportItem] = field(default_factory=list)
    glue: Any = field(default=None, repr=False)  # the Glue client: `catalog` reads from_catalog tables with it

    def get_table(self, database: str, name: str) -> dict[str, Any]:
        """Glue's GetTable for a table a script reads or writes with from_catalog; one-line errors."""
        if self.glue is None:
            raise ImportGlueError(f"GetTable {database}.{name}: no Glue client")
        try:
            return dict(self.glue.get_table(DatabaseName=database, Name=name)["Table"])
        except Exception as err:  # noqa: BLE001
            raise aws_error(f"GetTable {database}.{name}", err) from None


def aws_error(action: str, err: Exception) -> ImportGlueError:
    """One line naming the call and the AWS error code; never credentials, never a whole response."""
    response = getattr(err, "response", None)
    if isinstance(response, dict) and "Error" in response:
        code = response["Error"].get("Code", "error")
        message = short(str(response["Error"].get("Message", "")))
        return ImportGlueError(f"AWS {action}: {code}: {message}")
    kind = type(err).__name__
    if kind == "NoCredentialsError":
        return ImportGlueError(
            f"AWS {action}: no credentials found (boto3's chain: environment, ~/.aws, instance role)"
        )
    if kind == "NoRegionError":
        return ImportGlueError(f"AWS {action}: no region set (AWS_REGION or AWS_DEFAULT_REGION)")
    return ImportGlueError(f"AWS {action}: {kind}: {short(str(err))}")


def read_aws(input_job: str, output_job: str, glue: Any = None, s3: Any = None) -> tuple[AwsFacts, str, str]:
    """Read both jobs, their scripts and the triggers; returns the facts and the two script texts."""
    import boto3

    try:
        glue = glue or boto3.client("glue")  # boto3's usual chain; honours AWS_ENDPOINT_URL
        s3 = s3 or boto3.client("s3")
    except Exception as err:  # noqa: BLE001 - botocore raises many kinds; all become one line
        raise aws_error("client", err) from None
    jobs = [_get_job(glue, name) for name in (input_job, output_job)]
    texts = [_get_script(s3, job) for job in jobs]
    facts = AwsFacts(jobs[0], jobs[1], glue=glue)
    try:
        triggers = [t for page in glue.get_paginator("get_triggers").paginate() for t in page.get("Triggers", [])]
    except Exception as err:  # noqa: BLE001
        raise aws_error("GetTriggers", err) from None
    facts.schedule, facts.items = read_triggers(facts.input_job.name, facts.output_job.name, triggers)
    return facts, texts[0], texts[1]


def _get_job(glue: Any, name: str) -> AwsJob:
    try:
        job = glue.get_job(JobName=name)["Job"]
    except Exception as err:  # noqa: BLE001
        raise aws_error(f"GetJob {name!r}", err) from None
    command = job.get("Command") or {}
    location = command.get("ScriptLocation")
    if not location or not str(location).startswith("s3://"):
        shown = short(redact(str(location))) if location else location
        raise ImportGlueError(f"Glue job {name!r}: Command.ScriptLocation {shown!r} is not an s3:// URI")
    if redact(location) != location:
        # An S3 URI has no user:password@ part; its bucket would be the credentials. Never read, never shown.
        raise ImportGlueError(
            f"Glue job {name!r}: Command.ScriptLocation {short(redact(location))!r} holds credentials "
            "(user:password@); an s3:// location never does, so the script is not read"
        )
    return AwsJob(
        name=name,
        script_location=location,
        default_arguments=dict(job.get("DefaultArguments") or {}),
        max_concurrent_runs=int((job.get("ExecutionProperty") or {}).get("MaxConcurrentRuns", 1)),
        role=job.get("Role"),
        command=command.get("Name", "glueetl"),
        max_retries=int(job.get("MaxRetries") or 0),
    )


def _get_script(s3: Any, job: AwsJob) -> str:
    bucket, _, key = job.script_location.removeprefix("s3://").partition("/")
    action = f"GetObject {job.script_location} (script of Glue job {job.name!r})"
    try:
        body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{MAX_SCRIPT_BYTES}")["Body"].read()
    except Exception as err:  # noqa: BLE001
        raise aws_error(action, err) from None
    if len(body) > MAX_SCRIPT_BYTES:
        raise ImportGlueError(f"{job.script_location}: larger than {MAX_SCRIPT_BYTES:,} bytes, not a Glue script")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ImportGlueError(f"{job.script_location}: not UTF-8 text (byte {err.start})") from None

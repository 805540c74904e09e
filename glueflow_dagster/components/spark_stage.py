"""A stage on Spark, launched through Dagster Pipes: the shell side of ``engine: spark``.

Part of the Dagster shell. ``run_stage_or_fail`` calls :func:`run_spark_stage` with the run's
:class:`~glueflow_dagster.core.stage.StageRequest` for a job with ``engine: spark``; it hands the frozen
manifest, the mappings, the target, its compression and the attempt's part prefix to the stage script
(:mod:`glueflow_dagster.spark.stage_script`) in the Pipes ``extras``, runs it with the flow's launcher,
and turns the figures it reports into the same :class:`~glueflow_dagster.core.stage.StageResult` the
polars stage returns, with ``pending`` set: the caller publishes (after its commit fence) or aborts those
parts exactly as for polars.

Launchers: ``local`` runs ``python stage_script.py`` (the pyspark package, Spark ``local[N]`` or a
standalone cluster's ``spark://host:port``, the script its driver) through ``PipesSubprocessClient``;
``glue`` runs it as an AWS Glue job through dagster-aws's ``PipesGlueClient``.
``emr_serverless`` runs it as an EMR Serverless job run through ``PipesEMRServerlessClient``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, Failure, PipesSubprocessClient
from dagster._core.errors import DagsterPipesExecutionError  # raised by PipesSubprocessClient on a non-zero exit

from glueflow_dagster.core.config import SparkConfig
from glueflow_dagster.core.stage import QUARANTINE_DIR, StageError, StageRequest, StageResult
from glueflow_dagster.core.storage import ObjectInfo, PendingObject, Storage
from glueflow_dagster.spark import stage_script

#: The script the launchers run, shipped in the package.
STAGE_SCRIPT = Path(stage_script.__file__)


def _objects(entries: Sequence[dict[str, Any]]) -> tuple[ObjectInfo, ...]:
    return tuple(
        ObjectInfo(e["key"], int(e["size"]), int(e.get("last_modified_ms", 0)), str(e.get("etag", ""))) for e in entries
    )


def stage_result(figures: dict[str, Any], target: Storage, duration_s: float) -> StageResult:
    """The script's reported figures as a StageResult (``pending`` set, nothing visible yet)."""
    pending = tuple(
        PendingObject(p["key"], int(p["size"]), str(p["token"]), tuple((int(n), str(e)) for n, e in p["parts"]))
        for p in figures["pending"]
    )
    return StageResult(
        read=_objects(figures["read"]),
        written=tuple(ObjectInfo(p.key, p.size, 0, "") for p in pending),
        records_read=int(figures["records_read"]),
        records_written=int(figures["records_written"]),
        error_records=int(figures["error_records"]),
        cast_errors=int(figures["cast_errors"]),
        duration_s=duration_s,
        target_uri=target.uri,
        extra={"engine": "spark"},
        error_files=int(figures["error_files"]),
        records_discarded=int(figures.get("records_discarded", 0)),
        quarantined=_objects(figures["quarantined"]),
        quarantine_uri=figures.get("quarantine_uri"),
        first_error=figures.get("first_error"),
        pending=pending,
        vanished=_objects(figures["vanished"]),
    )


def run_spark_stage(context: AssetExecutionContext, request: StageRequest, spark: SparkConfig) -> StageResult:
    """Run one stage with the stage script on Spark; raises StageError past the error threshold."""
    import time

    started = time.monotonic()
    source, target = request.source, request.target
    extras = {
        "manifest": [
            {
                "uri": source.uri_for(o.key),
                "key": o.key,
                "size": o.size,
                "last_modified_ms": o.last_modified_ms,
                "etag": o.etag,
            }
            for o in request.objects
            if not o.key.endswith("/")  # folder markers hold no records
        ],
        "mappings": [list(m) for m in request.mappings],  # Glue's 4-sequences (job.raw_mappings)
        "source": source.uri,
        "target": target.uri,
        "compression": request.compression,
        "part_prefix": request.name_prefix,
        "quarantine_prefix": request.quarantine_prefix or f"{QUARANTINE_DIR}/{request.name_prefix}",
        "max_error_records": request.max_error_records,
        "target_file_bytes": request.target_file_bytes,
        "refused": [list(r) for r in request.refused],
        "master": spark.master,
        "driver_memory": spark.driver_memory,
    }
    context.log.info(f"running the stage on Spark ({spark.launcher}): {len(extras['manifest'])} objects")
    if spark.launcher == "glue":
        messages = _run_glue(context, spark, {**extras, "master": None, "driver_memory": None})
    elif spark.launcher == "emr_serverless":
        messages = _run_emr_serverless(context, spark, {**extras, "master": None, "driver_memory": None})
    else:
        messages = _run_local(context, spark, extras)
    errors = [m["error"] for m in messages if isinstance(m, dict) and "error" in m]
    if errors:
        raise Failure(description=f"Spark stage failed: {errors[0]}")
    reported = [m["figures"] for m in messages if isinstance(m, dict) and "figures" in m]
    if not reported:
        raise Failure(description="Spark stage failed: the stage script reported no figures")
    figures = reported[-1]
    result = stage_result(figures, target, time.monotonic() - started)
    if figures.get("exceeded"):
        what = f"{result.error_records} error records"
        if result.error_files:
            what += f" and {result.error_files} unreadable objects"
        message = f"{what} exceed max_error_records={request.max_error_records}; first: {result.first_error}"
        raise StageError(message, result=result)
    context.log.info(
        f"Spark wrote {result.records_written:,} records in {len(result.pending)} pending parts "
        f"({result.bytes_written:,} bytes); {result.error_records} error records, {result.cast_errors} cast errors"
    )
    return result


def _run_local(context: AssetExecutionContext, spark: SparkConfig, extras: dict[str, Any]) -> list[Any]:
    """``python stage_script.py`` (pyspark, Spark local[N]) through PipesSubprocessClient."""
    # The child imports the same glueflow_dagster as this process (not whatever else is installed): the
    # folder holding the package, two levels above glueflow_dagster/spark/stage_script.py.
    package_root = str(STAGE_SCRIPT.resolve().parents[2])
    env = {"PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
    command = [sys.executable, str(STAGE_SCRIPT)]
    if shutil.which("timeout"):
        # The run fails instead of hanging; the JVM exits with the script (py4j ends it when stdin closes).
        command = ["timeout", "--kill-after=30", str(spark.timeout_s), *command]
    if sys.platform.startswith("linux") and shutil.which("setpriv"):
        # The stage dies with the run worker: a SIGKILLed worker (OOM, lost node, the UI's terminate past its
        # grace) would otherwise leave timeout, the script and its JVM running, writing pending parts for an
        # attempt that is dead. SIGTERM on the parent's death; timeout passes it to its process group (the
        # script and the JVM) and SIGKILLs what is left after 30 s.
        command = ["setpriv", "--pdeathsig", "TERM", *command]
    client = PipesSubprocessClient(env=env)
    try:
        return client.run(context=context, command=command, extras=extras).get_custom_messages()
    except DagsterPipesExecutionError as err:
        # The script reports its own failures as a message and exits 0; a non-zero exit is a crash or the timeout.
        if "code 124" in str(err) or "code 137" in str(err):
            raise Failure(description=f"Spark stage exceeded spark.timeout_s={spark.timeout_s} and was ended") from err
        raise Failure(description=f"Spark stage failed: {_one_line(err)} (see the run's stderr)") from err


def _glue_client() -> Any:
    import boto3

    return boto3.client("glue")


#: Makes the Glue client; tests put a client here that runs the job's script locally (moto runs nothing).
glue_client_factory: Callable[[], Any] = _glue_client


def _run_glue(context: AssetExecutionContext, spark: SparkConfig, extras: dict[str, Any]) -> list[Any]:
    """The stage script as an AWS Glue job, through dagster-aws's PipesGlueClient.

    The script is uploaded to ``spark.script_uri``; the Glue job ``spark.job_name`` is created, or updated
    to this flow's settings (Glue version, worker type and count, IAM role, ``--additional-python-modules``;
    Glue's own bookmarks disabled: bookmarks are Dagster's). Pipes' context and messages go through S3
    beside the script (``<script folder>/_glueflow_pipes/``).
    """
    import boto3
    from dagster_aws.pipes import PipesGlueClient, PipesS3ContextInjector, PipesS3MessageReader

    assert spark.job_name and spark.script_uri and spark.iam_role  # checked at load
    bucket, _, key = spark.script_uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    s3.upload_file(str(STAGE_SCRIPT), bucket, key)
    arguments = {"--job-bookmark-option": "job-bookmark-disable"}
    if spark.python_modules:
        arguments["--additional-python-modules"] = spark.python_modules
    job = {
        "Role": spark.iam_role,
        "Command": {"Name": "glueetl", "ScriptLocation": spark.script_uri, "PythonVersion": "3"},
        "GlueVersion": spark.glue_version,
        "WorkerType": spark.worker_type,
        "NumberOfWorkers": spark.number_of_workers,
        "DefaultArguments": arguments,
        "Timeout": max(1, spark.timeout_s // 60),  # minutes
    }
    glue = glue_client_factory()
    try:
        glue.get_job(JobName=spark.job_name)
        glue.update_job(JobName=spark.job_name, JobUpdate=job)
    except glue.exceptions.EntityNotFoundException:
        glue.create_job(Name=spark.job_name, **job)
    prefix = f"{key.rsplit('/', 1)[0]}/_glueflow_pipes" if "/" in key else "_glueflow_pipes"
    client = PipesGlueClient(
        context_injector=PipesS3ContextInjector(bucket=bucket, client=s3, key_prefix=prefix),
        message_reader=PipesS3MessageReader(bucket=bucket, client=s3, interval=1),
        client=glue,
    )
    try:
        invocation = client.run(
            context=context, start_job_run_params={"JobName": spark.job_name, "Arguments": {}}, extras=extras
        )
    except RuntimeError as err:  # the job run ended FAILED, TIMEOUT, STOPPED or ERROR
        raise Failure(description=f"Spark stage failed (glue launcher): {_one_line(err)}") from err
    return invocation.get_custom_messages()


def _emr_serverless_client() -> Any:
    import boto3

    return boto3.client("emr-serverless")


#: Makes the EMR Serverless client; tests put one here that runs the job's script locally (moto runs nothing).
emr_serverless_client_factory: Callable[[], Any] = _emr_serverless_client


def _run_emr_serverless(context: AssetExecutionContext, spark: SparkConfig, extras: dict[str, Any]) -> list[Any]:
    """The stage script as an EMR Serverless job run, through dagster-aws's PipesEMRServerlessClient.

    The script is uploaded to ``spark.script_uri`` and run on the application ``spark.application_id``
    with the execution role ``spark.iam_role``. Pipes' parameters reach the driver as environment
    variables (the client's ``spark.emr-serverless.driverEnv`` confs); context and messages go through S3
    beside the script; ``--glueflow-pipes-s3`` tells the script so.
    """
    import boto3
    from dagster_aws.pipes import PipesEMRServerlessClient, PipesS3ContextInjector, PipesS3MessageReader

    assert spark.application_id and spark.script_uri and spark.iam_role  # checked at load
    bucket, _, key = spark.script_uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    s3.upload_file(str(STAGE_SCRIPT), bucket, key)
    prefix = f"{key.rsplit('/', 1)[0]}/_glueflow_pipes" if "/" in key else "_glueflow_pipes"
    client = PipesEMRServerlessClient(
        client=emr_serverless_client_factory(),
        context_injector=PipesS3ContextInjector(bucket=bucket, client=s3, key_prefix=prefix),
        message_reader=PipesS3MessageReader(bucket=bucket, client=s3, interval=1),
        poll_interval=1,
    )
    params: dict[str, Any] = {
        "applicationId": spark.application_id,
        "executionRoleArn": spark.iam_role,
        "name": f"glueflow {extras['part_prefix']}",
        "executionTimeoutMinutes": max(1, spark.timeout_s // 60),
        "jobDriver": {"sparkSubmit": {"entryPoint": spark.script_uri, "entryPointArguments": ["--glueflow-pipes-s3"]}},
    }
    try:
        invocation = client.run(context=context, start_job_run_params=params, extras=extras)  # type: ignore[arg-type]
    except RuntimeError as err:  # the job run ended FAILED or CANCELLED
        raise Failure(description=f"Spark stage failed (emr_serverless launcher): {_one_line(err)}") from err
    return invocation.get_custom_messages()


def _one_line(err: BaseException) -> str:
    from glueflow_dagster.core.storage import redact

    return redact(" ".join(str(err).split()))[:300]

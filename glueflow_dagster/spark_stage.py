"""A stage on Spark, launched through Dagster Pipes: the shell side of ``engine: spark``.

Part of the Dagster shell. ``run_stage_or_fail`` calls :func:`run_spark_stage` for a job with
``engine: spark``; it hands the frozen manifest, the mappings, the target, its compression and the
attempt's part prefix to the stage script (:mod:`glueflow_dagster.spark.stage_script`) in the Pipes
``extras``, runs it with the flow's launcher, and turns the figures it reports into the same
:class:`~glueflow_dagster.stage.StageResult` the polars stage returns, with ``pending`` set: the caller
publishes (after its commit fence) or aborts those parts exactly as for polars.

Launchers: ``local`` runs ``python stage_script.py`` (the pyspark package, Spark ``local[N]``) through
``PipesSubprocessClient``. ``glue`` and ``emr_serverless`` are refused at load for now (see README).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, Failure, PipesSubprocessClient
from dagster._core.errors import DagsterPipesExecutionError  # raised by PipesSubprocessClient on a non-zero exit

import glueflow_dagster
from glueflow_dagster.config import JobConfig, Location
from glueflow_dagster.spark import stage_script
from glueflow_dagster.stage import StageError, StageResult
from glueflow_dagster.storage import ObjectInfo, PendingObject, Storage

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


def run_spark_stage(
    context: AssetExecutionContext,
    source: Storage,
    manifest: Sequence[ObjectInfo],
    job: JobConfig,
    target: Storage,
    name_prefix: str,
    target_location: Location,
    quarantine_prefix: str,
    refused: Sequence[tuple[str, str]] = (),
) -> StageResult:
    """Run one stage with the stage script on Spark; raises StageError past the error threshold."""
    import time

    started = time.monotonic()
    spark = job.spark
    extras = {
        "manifest": [
            {
                "uri": source.uri_for(o.key),
                "key": o.key,
                "size": o.size,
                "last_modified_ms": o.last_modified_ms,
                "etag": o.etag,
            }
            for o in manifest
            if not o.key.endswith("/")  # folder markers hold no records
        ],
        "mappings": [list(m) for m in job.raw_mappings],
        "source": source.uri,
        "target": target.uri,
        "compression": target_location.compression,
        "part_prefix": name_prefix,
        "quarantine_prefix": quarantine_prefix,
        "max_error_records": job.max_error_records,
        "target_file_bytes": job.target_file_bytes,
        "refused": [list(r) for r in refused],
        "master": spark.master,
        "driver_memory": spark.driver_memory,
    }
    # The child imports the same glueflow_dagster as this process (not whatever else is installed).
    package_root = str(Path(glueflow_dagster.__file__).resolve().parent.parent)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
    command = [sys.executable, str(STAGE_SCRIPT)]
    if shutil.which("timeout"):
        # The run fails instead of hanging; the JVM exits with the script (py4j ends it when stdin closes).
        command = ["timeout", "--kill-after=30", str(spark.timeout_s), *command]
    context.log.info(
        f"running the stage on Spark ({spark.launcher}, {spark.master}): {len(extras['manifest'])} objects"
    )
    client = PipesSubprocessClient(env=env)
    try:
        messages = client.run(context=context, command=command, extras=extras).get_custom_messages()
    except DagsterPipesExecutionError as err:
        # The script reports its own failures as a message and exits 0; a non-zero exit is a crash or the timeout.
        if "code 124" in str(err) or "code 137" in str(err):
            raise Failure(description=f"Spark stage exceeded spark.timeout_s={spark.timeout_s} and was ended") from err
        raise Failure(description=f"Spark stage failed: {_one_line(err)} (see the run's stderr)") from err
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
        message = f"{what} exceed max_error_records={job.max_error_records}; first: {result.first_error}"
        raise StageError(message, result=result)
    context.log.info(
        f"Spark wrote {result.records_written:,} records in {len(result.pending)} pending parts "
        f"({result.bytes_written:,} bytes); {result.error_records} error records, {result.cast_errors} cast errors"
    )
    return result


def _one_line(err: BaseException) -> str:
    from glueflow_dagster.storage import redact

    return redact(" ".join(str(err).split()))[:300]

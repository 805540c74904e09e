"""The PySpark stage script: one glueflow stage (read JSON lines, map, write pending parts) on Spark.

Run by a Spark launcher through Dagster Pipes (``glueflow_dagster.components.spark_stage``), as
``python stage_script.py`` with the pyspark package or ``spark-submit stage_script.py``. No ``awsglue``
import, so the same script runs on local Spark, AWS Glue, EMR and Databricks. Orchestration stays on the
Dagster side: the script gets a frozen manifest and writes *pending* objects only; bookmarks, manifests
and the commit (or abort) are Dagster's, exactly as for the polars engine, so exactly-once is the same on every engine.

What it gets in the Pipes ``extras``:

- ``manifest``: the frozen manifest, ``[{uri, key, size, last_modified_ms, etag}]`` (keys under ``source``);
- ``mappings``: Glue ApplyMapping tuples (parsed here by glueflow's one parser);
- ``source``, ``target``: location URIs; ``compression`` (``gzip`` | ``none``); ``part_prefix`` (the
  attempt's name prefix); ``quarantine_prefix``; ``max_error_records``; ``target_file_bytes``;
  ``refused`` (objects the listing refused, quarantined as unreadable); ``master``, ``driver_memory``.

What it reports back: one custom Pipes message with the figures the polars stage records
(``records_read``, ``records_written``, ``error_records``, ``cast_errors``, objects read and written
with their bytes, ``error_files``) and ``pending``, the parts written but not visible:
``[{key, size, token, parts}]``. On a failure it reports ``{"error": one line}`` (and exits 0, so Pipes
delivers the message).

The data path. S3 objects are fetched with boto3 on the driver into a local folder (Spark here has no
hadoop-aws jars and cannot read ``s3://`` itself); Spark reads local files in PERMISSIVE mode with a
``_corrupt_record`` column and ``input_file_name()`` naming each record's object, applies the mapping
compiled by :mod:`glueflow_dagster.core.spark_mapping`, and writes JSON-lines parts to a local folder. The driver
then turns each part into a pending object with :meth:`Storage.begin_upload` (this script imports
``glueflow_dagster``, so the package must be installed where the driver runs): a hidden file under
``<target>/_glueflow/pending/`` locally, an open multipart upload on S3.

Bad records go to the quarantine with their source object, and ``"line": null``: Spark's JSON reader
does not know line numbers.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# Lines of each object sampled for the spellings of field names (as the polars stage does).
_SAMPLE_LINES = 100
_SAMPLE_FILES = 3
_CORRUPT = "_corrupt_record"
_SOURCE = "__glueflow_source"
_DEFAULT_RECORD_BYTES = 256
_SIZE_SAMPLE_ROWS = 1000
_ERROR = "malformed JSON or not a JSON object (Spark PERMISSIVE mode; Spark gives no line numbers)"


def _lines(path: Path, limit: int) -> Iterator[bytes]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        for index, line in enumerate(f):
            if index >= limit:
                return
            yield line


def _merge(tree: dict[str, Any], record: Mapping[str, Any]) -> None:
    """Add every field name of a JSON object (at every level) to a field tree.

    Scalars are text; a field seen both as an object and as a scalar is read whole as text (the compiled
    mapping then descends into its JSON), so no record is refused for the type of one field.
    """
    for name, value in record.items():
        existing = tree.get(name)
        if isinstance(value, dict):
            if existing is None:
                existing = tree[name] = {}
            if isinstance(existing, dict):
                _merge(existing, value)
        elif value is not None or existing is None:
            tree[name] = "string"


def observed_tree(paths: list[Path]) -> dict[str, Any]:
    """Field names (every spelling) seen in the first lines of the first objects."""
    tree: dict[str, Any] = {}
    for path in paths[:_SAMPLE_FILES]:
        try:
            for line in _lines(path, _SAMPLE_LINES):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    _merge(tree, record)
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
    return tree


def _local_inputs(source: Any, manifest: list[dict[str, Any]], folder: Path) -> tuple[list[Path], dict, list]:
    """Local paths of the manifest's objects (S3 objects downloaded with boto3 on the driver).

    Returns (paths, {file uri: (object, source uri)}, vanished objects).
    """
    from glueflow_dagster.core.storage import LocalStorage, StorageError

    paths: list[Path] = []
    by_uri: dict[str, tuple[dict[str, Any], str]] = {}
    vanished: list[dict[str, Any]] = []
    for index, obj in enumerate(manifest):
        uri = source.uri_for(obj["key"])
        if isinstance(source, LocalStorage):
            path = Path(uri)
            if not path.is_file():
                vanished.append(obj)
                continue
        else:
            # Keep the key's name (Spark decompresses by the .gz suffix); an index keeps names unique.
            path = folder / f"{index:06d}-{Path(obj['key']).name}"
            try:
                with source.open_read(obj["key"]) as body, open(path, "wb") as out:
                    shutil.copyfileobj(body, out, 8 * 1024 * 1024)
            except StorageError as err:
                if "does not exist" in str(err):
                    vanished.append(obj)
                    continue
                raise
        paths.append(path)
        by_uri[path.resolve().as_uri()] = (obj, uri)
    return paths, by_uri, vanished


def _pending_dict(pending: Any) -> dict[str, Any]:
    return {"key": pending.key, "size": pending.size, "token": pending.token, "parts": [list(p) for p in pending.parts]}


def run(extras: Mapping[str, Any], log: Any) -> dict[str, Any]:
    """The stage; returns the figures to report. Raises on failure (pending parts are aborted first)."""
    from pyspark.sql import Observation, SparkSession
    from pyspark.sql.functions import expr, input_file_name
    from pyspark.sql.types import StructType

    from glueflow_dagster.core.commits import abort
    from glueflow_dagster.core.mapping import parse_mappings
    from glueflow_dagster.core.quarantine import object_entry, quarantine_key
    from glueflow_dagster.core.spark_mapping import compile_mapping, quote, read_schema_json
    from glueflow_dagster.core.stage import output_object_key
    from glueflow_dagster.core.storage import open_storage

    parsed = parse_mappings(extras["mappings"])
    source, target = open_storage(extras["source"]), open_storage(extras["target"])
    compression = extras["compression"]
    qprefix = extras["quarantine_prefix"].strip("/")
    manifest = list(extras["manifest"])
    figures: dict[str, Any] = {
        "records_read": 0,
        "records_written": 0,
        "error_records": 0,
        "cast_errors": 0,
        "error_files": 0,
        "read": [],
        "written": [],
        "pending": [],
        "quarantined": [],
        "vanished": [],
        "first_error": None,
        "exceeded": False,
    }
    target.delete_prefix(qprefix)  # a retried attempt replaces its quarantine
    quarantined: list[dict[str, Any]] = []

    def quarantine(data: bytes) -> None:
        info = target.write_bytes(quarantine_key(qprefix, len(quarantined)), data)
        quarantined.append(
            {"key": info.key, "size": info.size, "last_modified_ms": info.last_modified_ms, "etag": info.etag}
        )

    for uri, cause in extras.get("refused", ()):
        figures["error_files"] += 1
        quarantine(object_entry(uri, cause))
        figures["first_error"] = figures["first_error"] or f"{uri}: {cause}"

    pending: list[Any] = []
    spark = None
    # A session this call did not start (a test's, a notebook's) is used and left running.
    owned = SparkSession.getActiveSession() is None
    try:
        with tempfile.TemporaryDirectory(prefix="glueflow-spark-") as tmp:
            workdir = Path(tmp)
            (workdir / "in").mkdir()
            paths, by_uri, vanished = _local_inputs(source, manifest, workdir / "in")
            figures["vanished"] = vanished
            figures["read"] = [obj for obj in manifest if obj not in vanished]
            if paths:
                builder = SparkSession.builder
                if extras.get("master"):  # local launcher; on Glue and EMR the service sets master and memory
                    builder = builder.master(extras["master"]).config(
                        "spark.driver.memory", extras.get("driver_memory") or "1g"
                    )
                builder = (
                    builder.appName(f"glueflow {extras['part_prefix']}")
                    .config("spark.sql.ansi.enabled", "false")  # Glue's casts
                    .config("spark.sql.session.timeZone", "UTC")  # Glue timestamps carry no zone
                    .config("spark.sql.caseSensitive", "true")  # every spelling its own column (coalesced)
                    .config("spark.ui.enabled", "false")
                    .config("spark.local.dir", str(workdir / "spark"))
                )
                spark = builder.getOrCreate()
                spark.sparkContext.setLogLevel("ERROR")
                observed = observed_tree(paths)
                schema = read_schema_json(parsed, observed)
                schema["fields"].append({"name": _CORRUPT, "type": "string", "nullable": True, "metadata": {}})
                frame = (
                    spark.read.schema(StructType.fromJson(schema))
                    .option("mode", "PERMISSIVE")
                    .option("columnNameOfCorruptRecord", _CORRUPT)
                    .json([str(p) for p in paths])
                    .withColumn(_SOURCE, input_file_name())
                )
                compiled = compile_mapping(parsed, observed, json_output=True)
                frame = frame.selectExpr("*", *compiled.values)  # each mapped value computed once
                # A data column in every query: Spark refuses queries of the corrupt-record column alone.
                anchor = quote(schema["fields"][0]["name"])
                bad = f"{quote(_CORRUPT)} IS NOT NULL"
                # One pass over the input: the write's own job counts records, bad records and cast
                # errors on the way (Observation); only bad records need a second pass, to quarantine them.
                observation = Observation("glueflow")
                counted = frame.observe(
                    observation,
                    expr("count(*)").alias("records"),
                    expr(f"sum(CASE WHEN {bad} THEN 1 ELSE 0 END)").alias("bad"),
                    expr(f"sum(CASE WHEN {bad} THEN 0 ELSE {compiled.cast_errors} END)").alias("casts"),
                    expr(f"count({anchor})").alias("anchored"),
                )
                good_rows = f"{quote(_CORRUPT)} IS NULL"
                sample = (
                    frame.filter(good_rows).selectExpr(*compiled.columns).limit(_SIZE_SAMPLE_ROWS).toJSON().collect()
                )
                record_bytes = (
                    max(1.0, sum(len(s) + 1 for s in sample) / len(sample)) if sample else _DEFAULT_RECORD_BYTES
                )
                per_part = max(1, int(int(extras["target_file_bytes"]) // record_bytes))
                out = workdir / "out"
                (
                    counted.filter(good_rows)
                    .selectExpr(*compiled.columns)
                    .write.option("compression", "gzip" if compression == "gzip" else "none")
                    .option("ignoreNullFields", "false")
                    .option("maxRecordsPerFile", per_part)
                    .mode("overwrite")
                    .json(str(out))
                )
                totals = observation.get
                records, error_records = int(totals["records"]), int(totals["bad"] or 0)
                figures["records_read"] = records
                figures["error_records"] = error_records
                figures["cast_errors"] = int(totals["casts"] or 0)
                if error_records:
                    entries: dict[str, list[bytes]] = {}
                    rows = frame.filter(bad).select(_SOURCE, _CORRUPT, anchor).toLocalIterator()
                    for row in rows:
                        uri = by_uri.get(row[_SOURCE], (None, row[_SOURCE]))[1]
                        entry = {
                            "source": uri,
                            "line": None,
                            "error": _ERROR,
                            "raw": row[_CORRUPT],
                            "raw_encoding": "utf-8",
                        }
                        entries.setdefault(uri, []).append(
                            (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                        )
                        if figures["first_error"] is None:
                            figures["first_error"] = f"{uri}: {_ERROR}"
                    for lines in entries.values():
                        quarantine(b"".join(lines))
                exceeded = error_records + figures["error_files"] > int(extras["max_error_records"])
                figures["exceeded"] = exceeded
                good = records - error_records
                if exceeded:
                    figures["records_discarded"] = good  # written locally, never uploaded
                elif good:
                    parts = sorted(p for p in out.iterdir() if p.name.startswith("part-") and p.stat().st_size)
                    for number, part in enumerate(parts):
                        key = output_object_key(extras["part_prefix"], number, compression)
                        pending.append(target.begin_upload(part, key))
                    figures["records_written"] = good
        figures["exceeded"] = figures["exceeded"] or figures["error_files"] > int(extras["max_error_records"])
        if figures["exceeded"]:
            abort(target, pending, log)
            pending = []
    except BaseException:
        abort(target, pending, log)
        raise
    finally:
        if spark is not None and owned:
            spark.stop()
    figures["pending"] = [_pending_dict(p) for p in pending]
    figures["written"] = [{"key": p.key, "size": p.size} for p in pending]
    figures["quarantined"] = quarantined
    figures["quarantine_uri"] = target.uri_for(qprefix) if quarantined else None
    return figures


def main() -> int:
    from dagster_pipes import open_dagster_pipes

    loaders: dict[str, Any] = {}
    glue, emr = "--dagster-pipes-context" in sys.argv, "--glueflow-pipes-s3" in sys.argv
    if glue or emr:
        # Launched as a Glue job (Pipes' parameters arrive as job arguments) or an EMR Serverless job run
        # (as driver environment variables, the default loader); context and messages go through S3
        # (boto3 honours AWS_ENDPOINT_URL).
        import boto3
        from dagster_pipes import PipesCliArgsParamsLoader, PipesS3ContextLoader, PipesS3MessageWriter

        s3 = boto3.client("s3")
        loaders = {
            "context_loader": PipesS3ContextLoader(client=s3),
            "message_writer": PipesS3MessageWriter(client=s3, interval=1),
        }
        if glue:
            loaders["params_loader"] = PipesCliArgsParamsLoader()
    with open_dagster_pipes(**loaders) as pipes:
        try:
            figures = run(pipes.extras, pipes.log.info)
        except Exception as err:  # reported as one line; the Dagster side fails the run with it
            from glueflow_dagster.core.storage import redact

            line = redact(" ".join(f"{type(err).__name__}: {err}".split()))[:500]
            # Reported as a message and exit 0: Pipes gives the Dagster side the messages of a successful
            # process only, and this line is the run's failure (a crash still exits non-zero).
            pipes.report_custom_message({"error": line})
            return 0
        pipes.report_custom_message({"figures": figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())

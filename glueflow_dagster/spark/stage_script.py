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
  ``refused`` (objects the listing refused, quarantined as unreadable); ``master`` (``local[N]`` or a
  standalone cluster's ``spark://host:port``), ``driver_memory``; ``group_size`` (optional: bytes of input
  per task, Glue's ``groupSize``).

What it reports back: one custom Pipes message with the figures the polars stage records
(``records_read``, ``records_written``, ``error_records``, ``cast_errors``, objects read and written
with their bytes, ``error_files``) and ``pending``, the parts written but not visible:
``[{key, size, token, parts}]``. On a failure it reports ``{"error": one line}`` (and exits 0, so Pipes
delivers the message).

The data path: the driver only coordinates. The frozen manifest is split into tasks by size; each
Spark task reads its own objects in the executor, parses them with the mapping's read schema in one typed
pass, maps them with the mapping compiled by :mod:`glueflow_dagster.core.spark_mapping`, writes its parts
as pending objects (an open multipart upload on S3, a hidden file under ``<target>/_glueflow/pending/``
locally) and returns a small descriptor; the driver collects the descriptors and reports them
(:mod:`glueflow_dagster.spark.tasks`). ``glueflow_dagster`` must be importable on the driver and the
executors.

Bad records go to the quarantine with their source object and 1-based line number, with the polars
stage's errors; the driver writes the quarantine objects from the entries the tasks return.

The script uses the core's public functions only (the stage's samples and spellings, the mapping's
parser and compiler, the quarantine's entries and gzip check, the commit's abort), the same ones the
polars stage uses, so a change to the core's internals cannot silently change the Spark engine.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_CORRUPT = "_corrupt_record"
_ROW = "__glueflow_row"
_BAD = "__glueflow_not_object"
_ANCHOR = "__glueflow_anchor"
_SIZE_SAMPLE_ROWS = 1000
# A line that is not a JSON object (its whole row null, or its text in the corrupt-record column without keys);
# a JSON object whose values do not fit their types keeps what reads (partial results): mismatched.
_BAD_EXPR = (
    f"__glueflow_kind = 0 AND ({_ROW} IS NULL OR ({_CORRUPT} IS NOT NULL AND json_object_keys({_CORRUPT}) IS NULL))"
)
_MISMATCH = f"{_CORRUPT} IS NOT NULL AND json_object_keys({_CORRUPT}) IS NOT NULL"


class _Totals:
    """What one pass over the input counted (the sum of its tasks' descriptors)."""

    def __init__(self, descriptors: list[dict[str, Any]]) -> None:
        def total(name: str) -> int:
            return sum(int(d["counts"][name]) for d in descriptors)

        self.records = total("records")
        self.bad = total("bad")
        self.mismatched = total("mismatched")
        self.cast_errors = total("casts")
        self.missing = total("missing")


def _lines(spark: Any, source_uri: str, manifest: list[dict[str, Any]], group_bytes: int) -> Any:
    """The input's lines as the executors read them: one Spark task per group of the manifest."""
    from glueflow_dagster.spark.tasks import READ_SCHEMA, map_in_arrow, plan_tasks, read_objects

    groups = plan_tasks(manifest, group_bytes, spark.sparkContext.defaultParallelism)
    rows = [(json.dumps(group),) for group in groups]
    tasks = spark.createDataFrame(spark.sparkContext.parallelize(rows, len(rows)), "objects string")
    return map_in_arrow(tasks, read_objects(source_uri), READ_SCHEMA)


def _frame(lines: Any, schema: Any) -> Any:
    """The lines parsed with the read schema in one pass (``from_json``, JSON types kept), a line that does
    not read in ``_corrupt_record``.

    ``_ANCHOR`` (a hash of every data column) is there for the queries of ``_corrupt_record``: Spark parses
    only the columns a query uses, so a record whose unused field does not fit its type would not show up
    as corrupt.
    """
    from pyspark.sql.functions import col, from_json, lit, xxhash64
    from pyspark.sql.types import StructType

    from glueflow_dagster.core.spark_mapping import quote, spark_schema_json
    from glueflow_dagster.spark.tasks import KIND, LINE, SOURCE, VALUE

    struct = StructType.fromJson(spark_schema_json(schema, _CORRUPT))
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}
    meta = (KIND, SOURCE, LINE, VALUE)
    parsed = lines.select(*meta, from_json(col(VALUE), struct, options).alias(_ROW))
    columns = [col(quote(name)) for name in schema] or [lit(0)]
    return parsed.select(*meta, _ROW, f"{_ROW}.*").withColumn(_ANCHOR, xxhash64(*columns))


def _written(frame: Any, compiled: Any, count: int, target: str, extras: Mapping[str, Any]) -> Any:
    """The writer's input (the mapped lines, the flags it counts, the quarantine entries) and its tasks."""
    from glueflow_dagster.spark.tasks import (
        BAD,
        CASTS,
        DESCRIPTOR_SCHEMA,
        ENTRY,
        KIND,
        LINE,
        MISMATCH,
        MISSING,
        OUT,
        SOURCE,
        VALUE,
        map_in_arrow,
        write_parts,
    )

    good = f"{KIND} = 0 AND NOT {_BAD}"
    # Mapped values that came out null and are no cast error (a cast error's source is there): only those can
    # hide a spelling the sample did not show, as the polars stage counts them (``missing`` less ``casts``).
    nulls = " + ".join(f"CAST(`__glueflow_v{i}` IS NULL AS INT)" for i in range(count)) or "0"
    keep_nulls = "map('ignoreNullFields', 'false')"
    line = f"concat(to_json(struct({', '.join(compiled.columns)}), {keep_nulls}), '\\n')"
    entry = (
        f"to_json(named_struct('source', {SOURCE}, 'line', {LINE}, 'error', {_error(VALUE)}, 'raw', {VALUE}, "
        f"'raw_encoding', 'utf-8'), {keep_nulls})"
    )
    inputs = frame.selectExpr(
        KIND,
        # Only an object's marker row (vanished, unreadable) needs these: a data line's go no further.
        f"CASE WHEN {KIND} <> 0 THEN {SOURCE} END AS {SOURCE}",
        f"CASE WHEN {KIND} <> 0 THEN {VALUE} END AS {VALUE}",
        f"{_BAD} AS {BAD}",
        f"CASE WHEN {good} THEN {line} END AS {OUT}",
        f"{KIND} = 0 AND {_MISMATCH} AS {MISMATCH}",
        f"CAST(CASE WHEN {good} THEN {compiled.cast_errors} ELSE 0 END AS BIGINT) AS {CASTS}",
        f"{good} AND ({nulls}) > ({compiled.cast_errors}) AS {MISSING}",
        f"CASE WHEN {_BAD} THEN {entry} END AS {ENTRY}",
    )
    writer = write_parts(target, extras["part_prefix"], extras["compression"], int(extras["target_file_bytes"]))
    return map_in_arrow(inputs, writer, DESCRIPTOR_SCHEMA)


def _error(value: str) -> str:
    """The quarantine's error for a line that is not a JSON object (the polars stage's words)."""
    first = f"left(ltrim({value}), 1)"
    return (
        f"CASE WHEN trim({value}) = 'null' THEN 'not a JSON object (null)' "
        f"WHEN {first} = '{{' OR get_json_object({value}, '$') IS NULL THEN 'malformed JSON' "
        f"WHEN {first} = '[' THEN 'not a JSON object (array)' "
        f"WHEN {first} = '\"' THEN 'not a JSON object (string)' "
        f"WHEN {first} IN ('t', 'f') THEN 'not a JSON object (boolean)' "
        "ELSE 'not a JSON object (number)' END"
    )


def _pass(frame: Any, compiled: Any, count: int, target: Any, extras: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One pass: the executors map and write; the driver gets their descriptors only."""
    written = _written(
        frame.selectExpr("*", *compiled.values, f"{_BAD_EXPR} AS {_BAD}"), compiled, count, target.uri, extras
    )
    return [json.loads(row["descriptor"]) for row in written.collect()]


def map_lines(
    spark: Any,
    lines: Any,
    mappings: Any,
    target: Any,
    extras: Mapping[str, Any],
    *,
    observed: Any,
    log: Any = lambda _message: None,
) -> tuple[_Totals, list[dict[str, Any]], Any]:
    """Map the lines and write the good records as pending parts, in the executors.

    The same reads as the polars stage: the read schema comes from polars' own sample of the input
    (``observed``, :func:`sample_schema_of`, and :func:`mapping.source_read_schema`), so a field whose
    sampled values are all JSON numbers (booleans, objects, arrays) is read as such, in one typed pass.
    Where later records hold another JSON type for a typed field, that field is read as text and the
    input mapped again (as the polars stage's ``stage.read.query_tolerant``); where mapped values came out
    null, the input is scanned for spellings of mapped names the sample did not show and mapped again with
    them (``stage.plan.respelled``): names match case-insensitively over the whole run. A pass mapped
    again has its pending parts aborted first.

    A record is bad (quarantined) when its line is not a JSON object; a JSON object whose structure does
    not fit (a number where the mappings expect an object) keeps what reads, as in polars.

    Returns the last pass's figures, its tasks' descriptors and its frame.
    """
    from glueflow_dagster.core.commits import abort
    from glueflow_dagster.core.mapping import parse_mappings, source_read_schema
    from glueflow_dagster.core.spark_mapping import compile_mapping, polars_tree

    parsed = parse_mappings(mappings)
    spellings = _names(observed)
    read_schema = source_read_schema(parsed, observed)
    respelled = False
    while True:
        compiled = compile_mapping(parsed, polars_tree(read_schema), json_output=True)
        frame = _frame(lines, read_schema)
        descriptors = _pass(frame, compiled, len(parsed), target, extras)
        totals = _Totals(descriptors)
        again = None
        if totals.mismatched:
            narrowed = _narrowed(frame, parsed, observed, _MISMATCH)
            if narrowed != read_schema:
                again = "JSON types differ from the sample's: the fields that differ are read as text, mapped again"
                read_schema = narrowed
        if again is None and totals.missing and not respelled:
            respelled = True
            extended = _respelled(lines, parsed, observed, spellings)
            if extended is not None:
                observed, new = extended
                again = f"field names spelled differently past the sample ({', '.join(sorted(new))[:80]}): mapped again"
                spellings |= new
                read_schema = source_read_schema(parsed, observed)
        if again is None:
            return totals, descriptors, frame
        log(again)
        abort(target, _pending_of(descriptors), log)


def sample_schema_of(spark: Any, source_uri: str, manifest: list[dict[str, Any]]) -> Any:
    """The polars stage's sample (:func:`stage.sample_schema`) of the same objects, taken in the executors
    (the first readable of the first few objects, as there)."""
    import polars as pl

    from glueflow_dagster.spark.tasks import SAMPLE_OBJECTS, sample_object

    probes = list(enumerate(manifest[:SAMPLE_OBJECTS]))
    if not probes:
        return None
    found = spark.sparkContext.parallelize(probes, len(probes)).map(
        lambda probe: (probe[0], sample_object(source_uri, probe[1]))
    )
    for _index, schema in sorted(found.collect(), key=lambda pair: pair[0]):
        if schema:
            return pl.Schema(schema)
    return None


def _names(schema: Any) -> frozenset[str]:
    from glueflow_dagster.core.stage import field_names

    return frozenset(field_names(schema or {}))


def _narrowed(frame: Any, parsed: Any, observed: Any, mismatch: str) -> Any:
    """The read schema keeping the JSON types of exactly the mappings whose every value reads with them.

    Only records that did not read (``mismatch``: JSON objects in ``_corrupt_record``) can fail; each is
    parsed again with one mapping's fields typed at a time (``from_json``, one job for all mappings).
    """
    from pyspark.sql.functions import col, from_json
    from pyspark.sql.functions import sum as total
    from pyspark.sql.types import StructType

    from glueflow_dagster.core.mapping import source_read_schema
    from glueflow_dagster.core.spark_mapping import spark_schema_json

    text = source_read_schema(parsed, observed, typed=False)
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}

    def fails(schema: Any) -> Any:
        parsed_line = from_json(col(_CORRUPT), StructType.fromJson(spark_schema_json(schema, _CORRUPT)), options)
        return parsed_line.getField(_CORRUPT).isNotNull()

    candidates = {}
    for index in range(len(parsed)):
        alone = source_read_schema(parsed, observed, typed={index})
        if alone != text:
            candidates[index] = alone
    if not candidates:
        return text
    # A record that fails even as text (a number where an object is expected) says nothing about types.
    rows = frame.filter(mismatch).select(_CORRUPT, _ANCHOR).filter(~fails(text))
    counts = rows.select(
        *(total(fails(schema).cast("int")).alias(f"c{i}") for i, schema in candidates.items()),
        total(_ANCHOR).alias("anchored"),  # every data column parsed, as in the pass
    )
    [row] = counts.collect()
    keep = {index for index in candidates if not row[f"c{index}"]}
    return source_read_schema(parsed, observed, typed=keep)


def _respelled(lines: Any, parsed: Any, observed: Any, spellings: frozenset[str]) -> tuple[Any, frozenset[str]] | None:
    """The observed schema extended by spellings of mapped names the sample did not show, or None.

    As the polars stage's ``stage.plan.respelled``: one regex pass over the lines finds the keys spelling a mapped
    name; the first lines holding new ones are sampled for their schema.
    """
    import polars as pl
    from pyspark.sql.functions import col, explode, lit, regexp_extract_all

    from glueflow_dagster.core.stage import READ_ERRORS, merged_schemas, spelling_regex

    regex = spelling_regex(parsed)
    if regex is None:
        return None
    from glueflow_dagster.spark.tasks import KIND, VALUE

    lines = lines.filter(f"{KIND} = 0").select(col(VALUE).alias("value"))
    java_regex = "(?iu)" + regex.removeprefix("(?i)")  # Unicode case folding, as polars' regex
    keys = lines.select(explode(regexp_extract_all(col("value"), lit(java_regex), 0)).alias("k")).distinct()
    new = frozenset(row["k"].split('"')[1] for row in keys.collect()) - spellings
    if not new:
        return None
    pattern = "|".join(re.escape(f'"{name}"') for name in sorted(new))
    sample = [row["value"] for row in lines.filter(col("value").rlike(pattern)).limit(_SIZE_SAMPLE_ROWS).collect()]
    # The sample of lines holding the new spellings (at most _SIZE_SAMPLE_ROWS lines) is read here.
    with tempfile.TemporaryDirectory(prefix="glueflow-spellings-") as tmp:
        path = Path(tmp) / "spellings.json"
        path.write_text("".join(line + "\n" for line in sample), encoding="utf-8")
        try:
            extra = pl.scan_ndjson(str(path), infer_schema_length=None).collect_schema()
        except READ_ERRORS:
            extra = pl.Schema()
    return pl.Schema(merged_schemas(observed or {}, extra)), new


class _Quarantine:
    """The attempt's quarantine in the target location, and the figures it moves (``error_files``,
    ``first_error``)."""

    def __init__(self, target: Any, prefix: str, figures: dict[str, Any]) -> None:
        self.target = target
        self.prefix = prefix
        self.figures = figures
        self.objects: list[dict[str, Any]] = []

    def add(self, data: bytes) -> None:
        from glueflow_dagster.core.quarantine import quarantine_key

        info = self.target.write_bytes(quarantine_key(self.prefix, len(self.objects)), data)
        self.objects.append(
            {"key": info.key, "size": info.size, "last_modified_ms": info.last_modified_ms, "etag": info.etag}
        )

    def unreadable(self, uri: str, cause: str) -> None:
        from glueflow_dagster.core.quarantine import object_entry

        self.figures["error_files"] += 1
        self.add(object_entry(uri, cause))
        self.figures["first_error"] = self.figures["first_error"] or f"{uri}: {cause}"

    def bad_records(self, descriptors: list[dict[str, Any]]) -> None:
        """The entries the executors made for records that are not JSON objects (source object and line),
        one quarantine object per source object, in line order."""
        entries: dict[str, list[tuple[int, str]]] = {}
        for descriptor in descriptors:
            for text in descriptor["entries"]:
                entry = json.loads(text)
                entries.setdefault(entry["source"], []).append((entry["line"] or 0, text))
        for uri in sorted(entries):
            lines = sorted(entries[uri])
            if self.figures["first_error"] is None:
                line, text = lines[0]
                self.figures["first_error"] = f"{uri}:{line}: {json.loads(text)['error']}"
            self.add("".join(text + "\n" for _line, text in lines).encode())


def start_session(extras: Mapping[str, Any], workdir: Path, java_options: str = "") -> Any:
    """The Spark session with Glue's semantics (casts, UTC timestamps, every spelling its own column).

    On a standalone cluster (``spark://``) the executors get this Python and the package's folder
    (:func:`tasks.executor_env`); on Glue and EMR the service sets master, memory and Python. The local
    launcher's driver JVM gets ``java_options`` (its class archive, :mod:`glueflow_dagster.spark.jvm`).
    """
    from pyspark.sql import SparkSession

    from glueflow_dagster.spark.tasks import executor_env

    builder = SparkSession.builder
    master = extras.get("master")
    if master:  # local launcher
        builder = builder.master(master).config("spark.driver.memory", extras.get("driver_memory") or "1g")
        if java_options:
            builder = builder.config("spark.driver.extraJavaOptions", java_options)
    if master and master.startswith("spark://"):
        builder = builder.config("spark.pyspark.python", sys.executable).config("spark.executor.memory", "512m")
        for name, value in executor_env().items():
            builder = builder.config(f"spark.executorEnv.{name}", value)
    builder = (
        builder.appName(f"glueflow {extras['part_prefix']}")
        .config("spark.sql.ansi.enabled", "false")  # Glue's casts
        .config("spark.sql.session.timeZone", "UTC")  # Glue timestamps carry no zone
        .config("spark.sql.caseSensitive", "true")  # every spelling its own column (coalesced)
        .config("spark.sql.json.enablePartialResults", "true")  # a field that does not fit is null
        .config("spark.ui.enabled", "false")
        .config("spark.local.dir", str(workdir / "spark"))
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _pending(descriptors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for d in sorted(descriptors, key=lambda d: d["partition"]) for p in d["pending"]]


def _pending_of(descriptors: list[dict[str, Any]]) -> list[Any]:
    from glueflow_dagster.core.storage import PendingObject

    return [
        PendingObject(p["key"], int(p["size"]), str(p["token"]), tuple((int(n), str(e)) for n, e in p["parts"]))
        for p in _pending(descriptors)
    ]


def _pending_dict(pending: Any) -> dict[str, Any]:
    return {"key": pending.key, "size": pending.size, "token": pending.token, "parts": [list(p) for p in pending.parts]}


def _figures() -> dict[str, Any]:
    return {
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
        "spark_jobs": 0,
    }


def _stage(
    extras: Mapping[str, Any], parsed: Any, target: Any, quarantine: _Quarantine, pending: list[Any], log: Any
) -> None:
    """Map and write pending parts in the executors; the figures go to ``quarantine.figures``."""
    from pyspark.sql import SparkSession

    from glueflow_dagster.core.scratch import scratch_folder
    from glueflow_dagster.spark import jvm
    from glueflow_dagster.spark.tasks import DEFAULT_GROUP_BYTES, UNREADABLE, VANISHED, abort_stray_uploads

    figures = quarantine.figures
    manifest = [dict(obj) for obj in extras["manifest"]]
    if not manifest:
        return
    with scratch_folder("spark", log) as tmp:  # a killed driver's folder (Spark's local dirs) goes next time
        # A session this call did not start (a test's, a notebook's) is used and left running.
        owned = SparkSession.getActiveSession() is None
        archive = jvm.archive_path() if owned and extras.get("master") else None
        java_options, pending_archive = jvm.java_options(archive)
        spark = start_session(extras, tmp, java_options)
        job_group = f"glueflow {extras['part_prefix']} {uuid.uuid4().hex}"
        spark.sparkContext.setJobGroup(job_group, "glueflow stage")
        try:
            observed = sample_schema_of(spark, extras["source"], manifest)
            group = int(extras.get("group_size") or DEFAULT_GROUP_BYTES)
            lines = _lines(spark, extras["source"], manifest, group)
            totals, descriptors, _frame_ = map_lines(spark, lines, parsed, target, extras, observed=observed, log=log)
            pending += _pending_of(descriptors)
            kept = {p.token for p in pending}
            abort_stray_uploads(target, extras["part_prefix"], kept, log)
            # Each action is a Spark job: the sample and the pass, plus one per pass mapped again.
            figures["spark_jobs"] = len(spark.sparkContext.statusTracker().getJobIdsForGroup(job_group))
        finally:
            spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
            if owned:
                spark.stop()
            if owned and extras.get("master"):  # the local launcher's JVM ends with the stage (and writes its archive)
                jvm.end_gateway_jvm()
                jvm.keep_archive(pending_archive, archive)
    by_uri = {target_uri(extras["source"], obj["key"]): obj for obj in manifest}
    marked = [item for d in descriptors for item in d["objects"]]
    vanished = [by_uri[uri] for kind, uri, _cause in marked if kind == VANISHED and uri in by_uri]
    for kind, uri, cause in sorted(marked, key=lambda item: item[1]):
        if kind == UNREADABLE:
            log(f"{uri}: {cause}; quarantined as unreadable")
            quarantine.unreadable(uri, cause)
    figures["vanished"] = vanished
    figures["read"] = [obj for obj in manifest if obj not in vanished]
    figures["records_read"] = totals.records
    figures["error_records"] = totals.bad
    figures["cast_errors"] = totals.cast_errors
    if totals.bad:
        quarantine.bad_records(descriptors)
    figures["exceeded"] = totals.bad + figures["error_files"] > int(extras["max_error_records"])
    figures["records_written"] = sum(int(p["records"]) for p in _pending(descriptors))
    if figures["exceeded"]:
        figures["records_discarded"] = figures["records_written"]  # aborted by run(), never visible
        figures["records_written"] = 0


def target_uri(source_uri: str, key: str) -> str:
    """The URI the executors name an object of the source by (``Storage.uri_for``, without a client)."""
    from glueflow_dagster.core.storage import LocalStorage

    if source_uri.startswith("s3://"):
        return f"{source_uri.rstrip('/')}/{key}"
    return LocalStorage(source_uri).uri_for(key)


def run(extras: Mapping[str, Any], log: Any) -> dict[str, Any]:
    """The stage; returns the figures to report. Raises on failure (pending parts are aborted first)."""
    from glueflow_dagster.core.commits import abort, aborted_on_failure
    from glueflow_dagster.core.mapping import parse_mappings
    from glueflow_dagster.core.storage import open_storage

    parsed = parse_mappings(extras["mappings"])
    target = open_storage(extras["target"])
    qprefix = extras["quarantine_prefix"].strip("/")
    figures = _figures()
    target.delete_prefix(qprefix)  # a retried attempt replaces its quarantine
    quarantine = _Quarantine(target, qprefix, figures)
    for uri, cause in extras.get("refused", ()):
        quarantine.unreadable(uri, cause)
    pending: list[Any] = []
    with aborted_on_failure(target, pending, log):
        _stage(extras, parsed, target, quarantine, pending, log)
    figures["exceeded"] = figures["exceeded"] or figures["error_files"] > int(extras["max_error_records"])
    if figures["exceeded"]:
        abort(target, pending, log)
        pending = []
    figures["pending"] = [_pending_dict(p) for p in pending]
    figures["written"] = [{"key": p.key, "size": p.size} for p in pending]
    figures["quarantined"] = quarantine.objects
    figures["quarantine_uri"] = target.uri_for(qprefix) if quarantine.objects else None
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

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

The script uses the core's public functions only (the stage's samples and spellings, the mapping's
parser and compiler, the quarantine's entries and gzip check, the commit's abort), the same ones the
polars stage uses, so a change to the core's internals cannot silently change the Spark engine.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_CORRUPT = "_corrupt_record"
_SOURCE = "__glueflow_source"
_BAD = "__glueflow_bad"
_ANCHOR = "__glueflow_anchor"
_DEFAULT_RECORD_BYTES = 256
_SIZE_SAMPLE_ROWS = 1000
_ERROR = "malformed JSON or not a JSON object (Spark PERMISSIVE mode; Spark gives no line numbers)"


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


class _Totals:
    """What one pass over the input counted (an ``Observation`` of the write's own job)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.records = int(values["records"])
        self.bad = int(values["bad"] or 0)
        self.mismatched = int(values["mismatched"] or 0)
        self.cast_errors = int(values["casts"] or 0)
        self.missing = int(values["missing"] or 0)


def _read(spark: Any, paths: list[str], schema: Any) -> Any:
    """The input read with a polars read schema (JSON types kept), bad lines in ``_corrupt_record``.

    ``_ANCHOR`` (a hash of every data column) is selected beside the corrupt-record column: Spark refuses
    queries of that column alone, and its reader parses only the columns a query uses, so a record whose
    unused field does not fit its type would not show up as corrupt.
    """
    from pyspark.sql.functions import col, input_file_name, xxhash64
    from pyspark.sql.types import StructType

    from glueflow_dagster.core.spark_mapping import quote, spark_schema_json

    return (
        spark.read.schema(StructType.fromJson(spark_schema_json(schema, _CORRUPT)))
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", _CORRUPT)
        .json(paths)
        .withColumn(_SOURCE, input_file_name())
        .withColumn(_ANCHOR, xxhash64(*(col(quote(name)) for name in schema)))
    )


def map_lines(
    spark: Any,
    paths: list[str],
    mappings: Any,
    out: Path,
    *,
    compression: str,
    target_file_bytes: int,
    workdir: Path,
    log: Any = lambda _message: None,
) -> tuple[_Totals, Any]:
    """Read JSON lines, map them and write the good records as JSON-lines parts into ``out``.

    The same reads as the polars stage: the read schema comes from polars' own sample of the input
    (:func:`stage.sample_schema` and :func:`mapping.source_read_schema`), so a field whose sampled values
    are all JSON numbers (booleans, objects, arrays) is read as such. Where later records hold another
    JSON type for a typed field, that field is read as text and the input mapped again (as the polars
    stage's ``stage.read.query_tolerant``); where mapped values came out null, the input is scanned for spellings
    of mapped names the sample did not show and mapped again with them (``stage.plan.respelled``): names match
    case-insensitively over the whole run.

    A record is bad (quarantined) when its line is not a JSON object; a JSON object whose structure does
    not fit (a number where the mappings expect an object) keeps what reads, as in polars.

    Returns the last pass's figures and its frame (``_SOURCE``, ``_CORRUPT``, ``_BAD`` to quarantine).
    """
    from pyspark.sql import Observation
    from pyspark.sql.functions import expr

    from glueflow_dagster.core.mapping import parse_mappings, source_read_schema
    from glueflow_dagster.core.spark_mapping import compile_mapping, polars_tree

    parsed = parse_mappings(mappings)
    observed = sample_schema_of(paths)
    spellings = _names(observed)
    read_schema = source_read_schema(parsed, observed)
    respelled = False
    per_part: int | None = None
    bad = f"{_CORRUPT} IS NOT NULL AND json_object_keys({_CORRUPT}) IS NULL"
    mismatch = f"{_CORRUPT} IS NOT NULL AND json_object_keys({_CORRUPT}) IS NOT NULL"
    while True:
        compiled = compile_mapping(parsed, polars_tree(read_schema), json_output=True)
        frame = _read(spark, paths, read_schema).selectExpr("*", *compiled.values, f"{bad} AS {_BAD}")
        if per_part is None:
            sample = frame.filter(f"NOT {_BAD}").selectExpr(*compiled.columns).limit(_SIZE_SAMPLE_ROWS).toJSON()
            sizes = [len(line) + 1 for line in sample.collect()]
            record_bytes = max(1.0, sum(sizes) / len(sizes)) if sizes else _DEFAULT_RECORD_BYTES
            per_part = max(1, int(target_file_bytes // record_bytes))
        nulls = " OR ".join(f"`__glueflow_v{i}` IS NULL" for i in range(len(parsed)))
        # One pass: the write's own job counts records, bad records and cast errors on the way.
        observation = Observation(f"glueflow-{uuid.uuid4().hex}")
        counted = frame.observe(
            observation,
            expr("count(*)").alias("records"),
            expr(f"sum(CASE WHEN {_BAD} THEN 1 ELSE 0 END)").alias("bad"),
            expr(f"sum(CASE WHEN {mismatch} THEN 1 ELSE 0 END)").alias("mismatched"),
            expr(f"sum(CASE WHEN {_BAD} THEN 0 ELSE {compiled.cast_errors} END)").alias("casts"),
            expr(f"sum(CASE WHEN NOT {_BAD} AND ({nulls}) THEN 1 ELSE 0 END)").alias("missing"),
        )
        (
            counted.filter(f"NOT {_BAD}")
            .selectExpr(*compiled.columns)
            .write.option("compression", "gzip" if compression == "gzip" else "none")
            .option("ignoreNullFields", "false")
            .option("maxRecordsPerFile", per_part)
            .mode("overwrite")
            .json(str(out))
        )
        totals = _Totals(observation.get)
        if totals.mismatched:
            narrowed = _narrowed(frame, parsed, observed, mismatch)
            if narrowed != read_schema:
                log("JSON types differ from the sample's: the fields that differ are read as text, mapped again")
                read_schema = narrowed
                continue
        if totals.missing and not respelled:
            respelled = True
            extended = _respelled(spark, paths, parsed, observed, spellings, workdir)
            if extended is not None:
                observed, new = extended
                log(f"field names spelled differently past the sample ({', '.join(sorted(new))[:80]}): mapped again")
                spellings |= new
                read_schema = source_read_schema(parsed, observed)
                continue
        return totals, frame


def sample_schema_of(paths: list[str]) -> Any:
    """The polars stage's sample (:func:`stage.sample_schema`) of the same objects."""
    from glueflow_dagster.core.stage import sample_schema

    return sample_schema([Path(p) for p in paths])


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


def _respelled(
    spark: Any, paths: list[str], parsed: Any, observed: Any, spellings: frozenset[str], workdir: Path
) -> tuple[Any, frozenset[str]] | None:
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
    lines = spark.read.text(paths)
    java_regex = "(?iu)" + regex.removeprefix("(?i)")  # Unicode case folding, as polars' regex
    keys = lines.select(explode(regexp_extract_all(col("value"), lit(java_regex), 0)).alias("k")).distinct()
    new = frozenset(row["k"].split('"')[1] for row in keys.collect()) - spellings
    if not new:
        return None
    pattern = "|".join(re.escape(f'"{name}"') for name in sorted(new))
    sample = [row["value"] for row in lines.filter(col("value").rlike(pattern)).limit(_SIZE_SAMPLE_ROWS).collect()]
    path = workdir / f"spellings-{uuid.uuid4().hex}.json"
    path.write_text("".join(line + "\n" for line in sample), encoding="utf-8")
    try:
        extra = pl.scan_ndjson(str(path), infer_schema_length=None).collect_schema()
    except READ_ERRORS:
        extra = pl.Schema()
    finally:
        path.unlink(missing_ok=True)
    return pl.Schema(merged_schemas(observed or {}, extra)), new


def _broken_gzip(paths: list[str]) -> list[tuple[str, str]]:
    """(path, cause) of the gzip objects that do not decompress to the end (the polars stage's causes)."""
    from glueflow_dagster.core.quarantine import gzip_problem

    broken = []
    for path in paths:
        cause = gzip_problem(Path(path))
        if cause is not None:
            broken.append((path, cause))
    return broken


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

    def bad_records(self, frame: Any, by_uri: dict[str, tuple[dict[str, Any], str]]) -> None:
        """The records Spark could not read, one quarantine object per source object (``"line": null``)."""
        entries: dict[str, list[bytes]] = {}
        for row in frame.filter(_BAD).select(_SOURCE, _CORRUPT, _ANCHOR).toLocalIterator():
            uri = by_uri.get(row[_SOURCE], (None, row[_SOURCE]))[1]
            entry = {"source": uri, "line": None, "error": _ERROR, "raw": row[_CORRUPT], "raw_encoding": "utf-8"}
            entries.setdefault(uri, []).append(
                (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
            )
            if self.figures["first_error"] is None:
                self.figures["first_error"] = f"{uri}: {_ERROR}"
        for lines in entries.values():
            self.add(b"".join(lines))


def _session(extras: Mapping[str, Any], workdir: Path) -> Any:
    """The Spark session with Glue's semantics (casts, UTC timestamps, every spelling its own column)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    if extras.get("master"):  # local launcher; on Glue and EMR the service sets master and memory
        builder = builder.master(extras["master"]).config("spark.driver.memory", extras.get("driver_memory") or "1g")
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


def _map_readable(
    spark: Any,
    parsed: Any,
    paths: list[Path],
    by_uri: dict[str, tuple[dict[str, Any], str]],
    extras: Mapping[str, Any],
    workdir: Path,
    quarantine: _Quarantine,
    log: Any,
) -> tuple[_Totals | None, Any]:
    """``map_lines`` over the local objects; a broken gzip object fails Spark's job: it is found on the
    driver, quarantined as unreadable (as the polars stage does) and the rest mapped again."""
    readable = [str(p) for p in paths]
    while readable:
        try:
            return map_lines(
                spark,
                readable,
                parsed,
                workdir / "out",
                compression=extras["compression"],
                target_file_bytes=int(extras["target_file_bytes"]),
                workdir=workdir,
                log=log,
            )
        except Exception:
            broken = _broken_gzip(readable)
            if not broken:
                raise
        for path, cause in broken:
            uri = by_uri[Path(path).resolve().as_uri()][1]
            log(f"{uri}: {cause}; quarantined as unreadable")
            quarantine.unreadable(uri, cause)
        readable = [p for p in readable if p not in dict(broken)]
    return None, None


def _begin_parts(out: Path, target: Any, extras: Mapping[str, Any], pending: list[Any]) -> None:
    """Every non-empty part Spark wrote, as a pending object named after the attempt (appended to ``pending``
    as it is made, so a failure aborts the ones made so far)."""
    from glueflow_dagster.core.stage import output_object_key

    parts = sorted(p for p in out.iterdir() if p.name.startswith("part-") and p.stat().st_size)
    for number, part in enumerate(parts):
        key = output_object_key(extras["part_prefix"], number, extras["compression"])
        pending.append(target.begin_upload(part, key))


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
    }


def _stage(
    extras: Mapping[str, Any], parsed: Any, target: Any, quarantine: _Quarantine, pending: list[Any], log: Any
) -> None:
    """Read, map and write pending parts inside a temporary folder; the figures go to ``quarantine.figures``."""
    from pyspark.sql import SparkSession

    from glueflow_dagster.core.storage import open_storage

    figures = quarantine.figures
    manifest = list(extras["manifest"])
    with tempfile.TemporaryDirectory(prefix="glueflow-spark-") as tmp:
        workdir = Path(tmp)
        (workdir / "in").mkdir()
        paths, by_uri, vanished = _local_inputs(open_storage(extras["source"]), manifest, workdir / "in")
        figures["vanished"] = vanished
        figures["read"] = [obj for obj in manifest if obj not in vanished]
        if not paths:
            return
        # A session this call did not start (a test's, a notebook's) is used and left running.
        owned = SparkSession.getActiveSession() is None
        spark = _session(extras, workdir)
        try:
            totals, frame = _map_readable(spark, parsed, paths, by_uri, extras, workdir, quarantine, log)
            records = totals.records if totals else 0
            error_records = totals.bad if totals else 0
            figures["records_read"] = records
            figures["error_records"] = error_records
            figures["cast_errors"] = totals.cast_errors if totals else 0
            if error_records and frame is not None:
                quarantine.bad_records(frame, by_uri)
            exceeded = error_records + figures["error_files"] > int(extras["max_error_records"])
            figures["exceeded"] = exceeded
            good = records - error_records
            if exceeded:
                figures["records_discarded"] = good  # written locally, never uploaded
            elif good:
                _begin_parts(workdir / "out", target, extras, pending)
                figures["records_written"] = good
        finally:
            if owned:
                spark.stop()


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

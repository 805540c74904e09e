"""CSV and Parquet sources and sinks, and `partitionKeys`, as the flow file's `format` keys (docs/formats.md).

- `format="csv"` -> `format: csv`; Glue's CSV `format_options` keep their names on the location:
  `separator`, `quoteChar`, `escaper` (sources and sinks), `multiLine`, `withHeader`, `skipFirst`
  (sources), `writeHeader` (sinks); `"true"`/`"false"` strings become booleans. Any other CSV option
  (`optimizePerformance`, `strictCheckingOfValues`, ...) is reported.
- `format="parquet"` / `"glueparquet"` -> `format: parquet`; a sink's `format_options` `compression`
  (`snappy`, Glue's default; `gzip`; `zstd`; `uncompressed`/`none` -> `none`); `useGlueParquetWriter`
  changes nothing written; any other option (`blockSize`, `pageSize`, ...) is reported.
- a sink's `partitionKeys: [...]` -> `partition_keys` on staging or output. A partitioned staging is
  read back by glueflow with its partition columns (text from the folder names), which Glue's
  `from_options` reader does not add: an Output mapping that reads one is reported (`staging_partitions`).
- Staging is one location: the Output job must read it as the Input job writes it (format, CSV
  separator/quote/escaper, header line); `staging_read_as_written` reports each difference in one line.
"""

from __future__ import annotations

import re
from typing import Any

from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.report import CONVERTED, DEFAULT, UNSUPPORTED, short
from glueflow_dagster.glue_import.script import GlueScript, Step
from glueflow_dagster.glue_import.values import Text, plain

FORMATS = {"json": "json", "csv": "csv", "parquet": "parquet", "glueparquet": "parquet"}
_CSV_SHARED = ("separator", "quoteChar", "escaper")
_CSV_READ = ("multiLine", "withHeader", "skipFirst")
_CSV_WRITE = ("writeHeader",)
_BOOLEAN = ("multiLine", "withHeader", "skipFirst", "writeHeader")
_PARQUET_COMPRESSIONS = {"snappy": "snappy", "gzip": "gzip", "zstd": "zstd", "uncompressed": "none", "none": "none"}


def flow_format(step: Step) -> str | None:
    """The flow file's format for the step's `format=` ("csv", "parquet", "json"), None if not convertible."""
    fmt = step.args.get("format")
    name = fmt.text.lower() if isinstance(fmt, Text) else None
    return FORMATS.get(name or "")


def other_format_options(draft: Draft, script: GlueScript, step: Step, location: str, sink: bool) -> None:
    """`format_options` of a CSV or Parquet source or sink: each converted to a location key, or reported."""
    fmt = flow_format(step)
    options = step.args.get("format_options") or {}
    draft.set(f"{location}.format", fmt, CONVERTED, f"format={plain(step.args.get('format'))!r}", script, step.line)
    if not isinstance(options, dict):
        draft.add(UNSUPPORTED, f"{location} (format_options)", "not a literal dict", script=script, line=step.line)
        return
    allowed = (*_CSV_SHARED, *(_CSV_WRITE if sink else _CSV_READ)) if fmt == "csv" else ()
    for key, value in options.items():
        shown = plain(value)
        if key in allowed:
            if key in _BOOLEAN and shown in ("true", "false", "True", "False"):
                shown = shown.lower() == "true"
            if key in _BOOLEAN and not isinstance(shown, bool):
                draft.add(UNSUPPORTED, f"{location}.{key}", "expected true or false", shown, script, step.line)
                continue
            if key not in _BOOLEAN and not (isinstance(value, Text) and not value.variables):
                draft.add(
                    UNSUPPORTED, f"{location}.{key}", "expected a literal string", short(shown), script, step.line
                )
                continue
            if key not in _BOOLEAN and len(shown) != 1 and not (key == "quoteChar" and shown == "-1"):
                why = "expected one character" + (' (or "-1": no quoting)' if key == "quoteChar" else "")
                draft.add(UNSUPPORTED, f"{location}.{key}", why, short(shown), script, step.line)
                continue
            draft.set(f"{location}.{key}", shown, CONVERTED, f"format_options {key}", script, step.line)
        elif fmt == "parquet" and sink and key == "compression":
            _parquet_compression(draft, script, step, location, shown)
        elif fmt == "csv" and not sink and key == "optimizePerformance" and shown in (False, "false", "False"):
            # Glue Studio writes `"optimizePerformance": False` into every CSV source: Glue's default reader.
            why = "Glue's default CSV reader (not the SIMD one): glueflow's reads the same records"
            draft.add(DEFAULT, f"{location} ({key})", why, shown, script, step.line)
        elif fmt == "parquet" and sink and key == "useGlueParquetWriter":
            why = "Glue's writer choice: the Parquet written holds the same rows"
            draft.add(DEFAULT, f"{location} ({key})", why, shown, script, step.line)
        else:
            draft.add(
                UNSUPPORTED,
                f"{location} (format_options {key})",
                f"{fmt} format option not converted",
                short(shown),
                script,
                step.line,
            )
    if fmt == "parquet" and sink and "compression" not in options:
        draft.set(f"{location}.compression", "snappy", DEFAULT, "Glue's Parquet default", script, step.line)


def _parquet_compression(draft: Draft, script: GlueScript, step: Step, location: str, value: Any) -> None:
    codec = _PARQUET_COMPRESSIONS.get(str(value).lower()) if isinstance(value, str) else None
    if codec is None:
        draft.add(
            UNSUPPORTED, f"{location}.compression", "Parquet: snappy, gzip, zstd or none", value, script, step.line
        )
        return
    draft.set(f"{location}.compression", codec, CONVERTED, "format_options compression", script, step.line)


def partition_keys(draft: Draft, script: GlueScript, step: Step, location: str, value: Any) -> None:
    """A sink's `partitionKeys` (literal column names): `partition_keys` on staging or output."""
    keys = plain(value)
    if keys == []:
        return
    literal = isinstance(value, list) and all(isinstance(k, Text) and not k.variables and k.text for k in value)
    if not literal or any(not _FOLDER_NAME.fullmatch(k.text) for k in value) or len(set(keys)) != len(keys):
        why = "expected a literal list of distinct column names (a folder name: no '/', '=' or control character)"
        draft.add(UNSUPPORTED, f"{location} (partitionKeys)", why, short(keys), script, step.line)
        return
    draft.set(f"{location}.partition_keys", keys, CONVERTED, "partitionKeys", script, step.line)


_FOLDER_NAME = re.compile(r"[^/=\x00-\x1f]{1,128}")  # the flow file's partition column names
_READ_DEFAULTS = {"format": "json", "separator": ",", "quoteChar": '"', "escaper": None}


def staging_read_as_written(draft: Draft, written: dict[str, Any], read: dict[str, Any], step: Step) -> dict[str, Any]:
    """Staging's keys: what the Input job writes and how the Output job reads it, each difference reported.

    glueflow's staging is one location, read as it was written; a Glue Output job reading it another way
    (another format, separator, quote, escaper, or without the header line the Input job writes) would
    read other records, so it is reported at the Output source's line rather than converted.
    """
    merged = {**written, **read}
    if draft.unknown_format & {"staging read", "staging written"}:
        return merged  # one side's format is the user's to check (reported as needing the user): nothing to compare
    for key, default in _READ_DEFAULTS.items():
        wrote, reads = written.get(key, default), read.get(key, default)
        if key != "format" and merged.get("format", "json") != "csv":
            continue
        if wrote != reads:
            draft.add(
                UNSUPPORTED,
                f"staging.{key}",
                f"the Input job writes staging with {key} {wrote!r} but the Output job reads it with {reads!r}: "
                "glueflow reads staging as written",
                reads,
                draft.out,
                step.line,
            )
            merged[key] = wrote
    if merged.get("format") == "csv":
        header, with_header = written.get("writeHeader", True), read.get("withHeader", False)
        if header != with_header:
            wrote = "writes a header line (writeHeader, Glue's default true)" if header else "writes no header line"
            reads = "reads it with withHeader true" if with_header else "reads it without withHeader (Glue's default)"
            draft.add(
                UNSUPPORTED,
                "staging.withHeader",
                f"the Input job {wrote} but the Output job {reads}: Glue would read "
                + ("the header line as a record" if header else "the first record as the header")
                + "; glueflow reads staging as written",
                with_header,
                draft.out,
                step.line,
            )
            merged.pop("withHeader", None)
    if merged.get("partition_keys") and merged.get("recurse") is False:
        draft.add(
            UNSUPPORTED,
            "staging.recurse",
            "the Input job writes staging in partition folders but the Output job reads without recurse "
            "(Glue then reads only the top level)",
            False,
            draft.out,
            step.line,
        )
    return merged


def staging_partitions(draft: Draft, step: Step | None) -> None:
    """An Output mapping reading a column staging is partitioned by: Glue's from_options reader does not
    add partition columns (the files leave them out, so Glue reads them as missing); glueflow would."""
    keys = {str(key).lower() for key in draft.entry["staging"].get("partition_keys") or []}
    if step is None or not keys or not isinstance(step.args.get("mappings"), list):
        return
    raw = step.args["mappings"]
    for entry, line in zip(raw, getattr(raw, "lines", [step.line] * len(raw)), strict=True):
        source = plain(entry)[0] if isinstance(entry, list) and entry else None
        if isinstance(source, str) and source.split(".", 1)[0].strip("`").lower() in keys:
            draft.add(
                UNSUPPORTED,
                "output_job.mappings",
                f"{source!r} is a partition column of staging (partitionKeys): the files leave it out and Glue's "
                "from_options reader does not add it from the folder; glueflow would",
                script=draft.out,
                line=line,
            )


def written_columns(draft: Draft, script: GlueScript, step: Step | None, location: str, job: str) -> None:
    """What a written location holds, against the job's mapped columns (the flow file's own checks, reported
    at the sink's line): `partition_keys` are mapped top-level columns, not all of them (Glue fails the run
    on a partitionKeys column the frame lacks; Spark refuses to partition by every column), and a CSV
    location holds no nested column (a struct or array value has no CSV form)."""
    mappings = draft.entry[job].get("mappings")
    if step is None or not isinstance(mappings, list):
        return
    keys = draft.entry[location].get("partition_keys") or []
    targets = list(dict.fromkeys(str(m[2]).split(".", 1)[0].strip("`") for m in mappings if len(m) == 4))
    missing = [key for key in keys if key not in targets]
    why = None
    if missing:
        why = f"{missing[0]!r} is not a column {job} maps to (top level): Glue fails the run"
    elif keys and len(set(keys)) == len(targets):
        why = "every mapped column would be a folder (Spark refuses to partition by all columns)"
    if why is not None:
        draft.add(UNSUPPORTED, f"{location}.partition_keys", why, keys, script, step.line)
        draft.entry[location].pop("partition_keys", None)
    if draft.entry[location].get("format") == "csv":
        nested = [
            m[2]
            for m in mappings
            if len(m) == 4 and ("." in str(m[2]) or str(m[3]).lower().startswith(("struct", "array")))
        ]
        if nested:
            draft.add(
                UNSUPPORTED,
                f"{location}.format",
                f"{nested[0]!r} is nested: CSV holds no nested column",
                "csv",
                script,
                step.line,
            )


def null_fields_columns(draft: Draft, script: GlueScript, before: list[Step], location: str) -> None:
    """DropNullFields before ApplyMapping, when the job writes CSV or Parquet: a field null in every record
    of a run is dropped, so Glue's files of that run lack the column; glueflow's have it (all null). JSON
    leaves a null field out either way, so there it is folded (see `transforms`)."""
    fmt = draft.entry[location].get("format", "json")
    if fmt == "json":
        return
    for step in before:
        if step.name.startswith("DropNullFields"):
            draft.add(
                UNSUPPORTED,
                f"{location}.format",
                f"{step.name} before ApplyMapping: a field null in every record of a run is dropped, so Glue's "
                f"{fmt} files of that run lack its column; glueflow writes the column (null)",
                fmt,
                script,
                step.line,
            )

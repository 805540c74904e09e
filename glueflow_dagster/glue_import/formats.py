"""CSV and Parquet sources and sinks, and `partitionKeys`, as the flow file's `format` keys (issue 23's spelling).

Behind one switch, FLOW_FILE_FORMATS: while it is False (until the flow file takes `format`, Glue's CSV
options, Parquet's `compression` and `partition_keys`), CSV, Parquet and glueparquet are reported as
not converted, with their line, exactly as before. When True:

- `format="csv"` -> `format: csv`; Glue's CSV `format_options` keep their names on the location:
  `separator`, `quoteChar`, `escaper` (sources and sinks), `multiLine`, `withHeader`, `skipFirst`
  (sources), `writeHeader` (sinks); `"true"`/`"false"` strings become booleans. Any other CSV option
  (`optimizePerformance`, `strictCheckingOfValues`, ...) is reported.
- `format="parquet"` / `"glueparquet"` -> `format: parquet`; a sink's `format_options` `compression`
  (`snappy`, Glue's default; `gzip`; `zstd`; `uncompressed`/`none` -> `none`); `useGlueParquetWriter`
  changes nothing written; any other option (`blockSize`, `pageSize`, ...) is reported.
- a sink's `partitionKeys: [...]` -> `partition_keys` on output; on staging it is reported (the
  Output job would read the partition columns back, which Glue's `from_options` reader does not).
"""

from __future__ import annotations

from typing import Any

from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.report import CONVERTED, DEFAULT, UNSUPPORTED, short
from glueflow_dagster.glue_import.script import GlueScript, Step
from glueflow_dagster.glue_import.values import Text, plain

FLOW_FILE_FORMATS = False  # True once the flow file takes format / CSV options / partition_keys (issue 23)

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
    converted = FORMATS.get(name or "")
    if converted is None or (converted != "json" and not FLOW_FILE_FORMATS):
        return None
    return converted


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
            draft.set(f"{location}.{key}", shown, CONVERTED, f"format_options {key}", script, step.line)
        elif fmt == "parquet" and sink and key == "compression":
            _parquet_compression(draft, script, step, location, shown)
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
    """A sink's `partitionKeys`: `partition_keys` on output; reported on staging and while the switch is off."""
    keys = plain(value)
    if keys == []:
        return
    literal = isinstance(value, list) and all(isinstance(k, Text) and not k.variables and k.text for k in value)
    if not FLOW_FILE_FORMATS or location != "output" or not literal:
        why = "sink option not supported by glueflow"
        if FLOW_FILE_FORMATS and location == "staging":
            why = "a partitioned staging is read back with its partition columns, which Glue's from_options does not"
        draft.add(UNSUPPORTED, f"{location} (partitionKeys)", why, short(keys), script, step.line)
        return
    draft.set(f"{location}.partition_keys", keys, CONVERTED, "connection_options partitionKeys", script, step.line)

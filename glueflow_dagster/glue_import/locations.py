"""Sources and sinks: Glue's S3 JSON reader and writer options as the flow's location keys.

Only `create_dynamic_frame.from_options` / `write_dynamic_frame.from_options` on S3 in JSON, and a
catalog table whose location the user gives, are converted; every other option is reported with its
line. Options glueflow does not need (S3 listing, grouping) are reported as defaults, never dropped.
"""

from __future__ import annotations

import json
import re
from typing import Any

from glueflow_dagster.glue_import.catalog import catalog_sink, catalog_source
from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.formats import flow_format, other_format_options, partition_keys
from glueflow_dagster.glue_import.getsink import report_catalog_updates
from glueflow_dagster.glue_import.iceberg import dataframe_sink
from glueflow_dagster.glue_import.report import CONVERTED, DEFAULT, UNSUPPORTED, short
from glueflow_dagster.glue_import.script import DATAFRAME_SINKS, GlueScript, Step
from glueflow_dagster.glue_import.values import Text, plain

# Suffixes of data objects: a path ending in one of them names an object, not a folder.
_OBJECT_SUFFIXES = (
    *(".json", ".jsonl", ".ndjson", ".gz", ".bz2", ".zst", ".txt", ".csv", ".parquet", ".avro", ".orc"),
    *(".tsv", ".psv", ".dat", ".log", ".xml", ".ion", ".zip", ".deflate", ".lz4", ".lzo", ".snappy", ".zstd"),
)
_SOURCE_KEYS_INPUT = {"paths", "recurse", "exclusions"}
_SOURCE_KEYS_OUTPUT = {"paths", "recurse", "exclusions", "maxBand", "boundedFiles", "boundedSize"}


def source(
    draft: Draft, script: GlueScript, step: Step | None, location: str, job: str, set_uri: bool = True
) -> str | None:
    """Fill `location` (input or staging) from a source step; returns its uri."""
    if step is None:
        return None
    if step.kind == "catalog":
        return catalog_source(draft, script, step, location, set_uri)
    args = step.args
    uri = None
    if not _s3_json(draft, script, step, "source"):
        return None
    options = args.get("connection_options", {})
    if not isinstance(options, dict):
        draft.add(
            UNSUPPORTED,
            f"{location}.uri",
            "connection_options is not a literal dict",
            script=script,
            line=step.line,
        )
        return None
    paths = options.get("paths")
    if not isinstance(paths, list) or len(paths) != 1:
        shown = short(plain(paths)) if paths is not None else "missing"
        draft.add(
            UNSUPPORTED,
            f"{location}.uri",
            f"'paths' must hold exactly one S3 path, got {shown}",
            script=script,
            line=step.line,
        )
    else:
        uri = draft.text(paths[0], f"{location}.uri", script, step.line, expandable=True)
        if uri is not None and _glob(uri):
            # Glue (Hadoop) expands a glob in a read path; glueflow reads one prefix: the flow would read nothing.
            draft.add(
                UNSUPPORTED,
                f"{location}.uri",
                "the path is a glob (* ? [ ] { }), which Glue expands; glueflow reads one folder (prefix): give the "
                "folder above it (with recurse and exclusions for what to leave out)",
                uri,
                script,
                step.line,
            )
            uri = None
        elif uri is not None and _names_an_object(uri):
            # Glue reads that one object; glueflow reads a location as a folder, so the flow would read nothing.
            draft.add(
                UNSUPPORTED,
                f"{location}.uri",
                "the path names one object; glueflow reads a folder (prefix): give the folder that holds it",
                uri,
                script,
                step.line,
            )
            uri = None
        elif uri is not None and set_uri:
            draft.set(f"{location}.uri", uri, CONVERTED, "connection_options paths", script, step.line)
    recurse = options.get("recurse")
    if recurse is None:
        # Glue reads only the top level unless recurse is set; glueflow's own default is true.
        draft.set(
            f"{location}.recurse", False, DEFAULT, "Glue's default (no 'recurse' in the script)", script, step.line
        )
    elif isinstance(recurse, bool) or plain(recurse) in ("true", "false"):
        # Glue reads its connection options as strings too: "true" is True.
        value = recurse if isinstance(recurse, bool) else plain(recurse) == "true"
        draft.set(f"{location}.recurse", value, CONVERTED, "connection_options recurse", script, step.line)
    else:
        draft.add(
            UNSUPPORTED,
            f"{location}.recurse",
            f"expected True or False, got {short(plain(recurse))}",
            script=script,
            line=step.line,
        )
    if "exclusions" in options:
        _exclusions(draft, script, step, options["exclusions"], location)
    _other_source_options(draft, script, step, options, location, job)
    if flow_format(step) == "json":
        _format_options(draft, script, step, location)
    else:
        other_format_options(draft, script, step, location, sink=False)
    return uri


def _other_source_options(
    draft: Draft, script: GlueScript, step: Step, options: dict[str, Any], location: str, job: str
) -> None:
    """The source's connection options beside paths, recurse and exclusions: each converted or reported."""
    allowed = _SOURCE_KEYS_OUTPUT if job == "output_job" else _SOURCE_KEYS_INPUT
    for key, value in options.items():
        if key in ("paths", "recurse", "exclusions"):
            continue
        shown = plain(value)
        if key == "useS3ListImplementation":
            draft.add(
                DEFAULT,
                f"{location} (useS3ListImplementation)",
                "not needed: glueflow always lists S3 in pages",
                shown,
                script,
                step.line,
            )
        elif key in ("groupFiles", "groupSize"):
            # No flow key: glueflow always groups small objects (stage._SMALL_OBJECT_BYTES, _GROUP_BYTES).
            draft.add(
                DEFAULT,
                f"{location} ({key})",
                "not needed: glueflow always reads objects of up to 1 MiB as group files of about 64 MiB "
                "(Glue's groupFiles; the records are the same, parts are target_file_bytes)",
                shown,
                script,
                step.line,
            )
        elif key == "compressionType":
            _compression_type(draft, script, step, value, location)
        elif key in allowed:
            _bounded(draft, script, step, key, value)
        elif key in ("maxBand", "boundedFiles", "boundedSize", "maxFilesInBand"):
            draft.add(
                UNSUPPORTED,
                f"{location} ({key})",
                f"not supported on the {job.split('_')[0]} job's source by glueflow",
                shown,
                script,
                step.line,
            )
        else:
            draft.add(
                UNSUPPORTED,
                f"{location} ({key})",
                "connection option not supported by glueflow",
                shown,
                script,
                step.line,
            )


def _exclusions(draft: Draft, script: GlueScript, step: Step, value: Any, location: str) -> None:
    globs = plain(value)
    if isinstance(value, Text):
        try:
            globs = json.loads(value.text)  # Glue takes exclusions as a JSON string of a list
        except ValueError:
            globs = None
    if not isinstance(globs, list) or not all(isinstance(g, str) and g for g in globs):
        draft.add(
            UNSUPPORTED,
            f"{location}.exclusions",
            f"expected a JSON list of globs, got {short(plain(value))}",
            script=script,
            line=step.line,
        )
        return
    if any("${" in g for g in globs):
        draft.add(
            UNSUPPORTED,
            f"{location}.exclusions",
            "job arguments in exclusions are not expanded by glueflow",
            script=script,
            line=step.line,
        )
        return
    draft.set(f"{location}.exclusions", globs, CONVERTED, "connection_options exclusions", script, step.line)


def _compression_type(draft: Draft, script: GlueScript, step: Step, value: Any, location: str) -> None:
    if isinstance(value, Text) and value.text.lower() == "gzip":
        draft.add(
            DEFAULT,
            f"{location} (compressionType)",
            "glueflow reads gzip by the .gz suffix and the gzip magic bytes",
            "gzip",
            script,
            step.line,
        )
    else:
        draft.add(
            UNSUPPORTED,
            f"{location} (compressionType)",
            "only gzip input is read by glueflow",
            plain(value),
            script,
            step.line,
        )


def _bounded(draft: Draft, script: GlueScript, step: Step, key: str, value: Any) -> None:
    target = {"maxBand": "max_band_ms", "boundedFiles": "max_files_per_run", "boundedSize": "max_bytes_per_run"}[key]
    number = plain(value)
    if isinstance(number, str) and number.isdigit():
        number = int(number)  # Glue takes these as strings ("1000")
    if not isinstance(number, int) or isinstance(number, bool) or number < (0 if key == "maxBand" else 1):
        draft.add(
            UNSUPPORTED,
            f"output_job.{target}",
            f"{key}: expected a whole number, got {short(number)!r}",
            script=script,
            line=step.line,
        )
        return
    draft.set(f"output_job.{target}", number, CONVERTED, f"connection_options {key}", script, step.line)


def _format_options(draft: Draft, script: GlueScript, step: Step, location: str) -> None:
    options = step.args.get("format_options") or {}
    if not isinstance(options, dict):
        draft.add(
            UNSUPPORTED,
            f"{location} (format_options)",
            "format_options is not a literal dict",
            script=script,
            line=step.line,
        )
        return
    for key, value in options.items():
        shown = plain(value)
        if key.lower() == "multiline" and shown in (False, "false", "False"):
            draft.add(
                DEFAULT,
                f"{location} (format_options {key})",
                "one JSON record per line: glueflow's format",
                shown,
                script,
                step.line,
            )
        elif key.lower() == "multiline" and shown in (True, "true", "True"):
            draft.set(f"{location}.multiline", True, CONVERTED, f"format_options {key}", script, step.line)
        elif key.lower() == "multiline":
            draft.add(
                UNSUPPORTED,
                f"{location} (format_options {key})",
                "expected true or false",
                shown,
                script,
                step.line,
            )
        elif key == "jsonPath" and shown == "":
            # The older Glue console wrote `"jsonPath": ""` into every script: no path, each document is a record.
            draft.add(
                DEFAULT,
                f"{location} (format_options jsonPath)",
                "an empty jsonPath is no path: each JSON record is read whole (glueflow's default)",
                shown,
                script,
                step.line,
            )
        elif key == "jsonPath" and isinstance(shown, str) and _json_path_problem(shown) is None:
            draft.set(f"{location}.jsonPath", shown, CONVERTED, "format_options jsonPath", script, step.line)
        elif key == "jsonPath":
            problem = _json_path_problem(shown) if isinstance(shown, str) else "expected a literal string"
            draft.add(
                UNSUPPORTED,
                f"{location} (format_options jsonPath)",
                f"glueflow cannot read this jsonPath: {problem}",
                shown,
                script,
                step.line,
            )
        else:
            draft.add(
                UNSUPPORTED,
                f"{location} (format_options {key})",
                "JSON format option not supported by glueflow",
                shown,
                script,
                step.line,
            )


def _s3_json(draft: Draft, script: GlueScript, step: Step, what: str) -> bool:
    ok = True
    connection = step.args.get("connection_type")
    if not (isinstance(connection, Text) and connection.text.lower() == "s3"):
        shown = plain(connection) if connection is not None else "missing"
        draft.add(
            UNSUPPORTED,
            "step",
            f"{step.name}: connection_type {shown!r} not supported (S3 only)" + _table_format_note(shown),
            script=script,
            line=step.line,
        )
        ok = False
    fmt = step.args.get("format")
    if flow_format(step) is None:
        shown = plain(fmt) if fmt is not None else "missing"
        draft.add(
            UNSUPPORTED,
            "step",
            f"{step.name}: format {shown!r} not supported (json, csv, parquet or glueparquet)"
            + _table_format_note(shown),
            script=script,
            line=step.line,
        )
        ok = False
    if what == "source" and step.args.get("push_down_predicate"):
        draft.add(UNSUPPORTED, "step", f"{step.name}: push_down_predicate not supported", script=script, line=step.line)
    return ok


def _table_format_note(name: object) -> str:
    """Iceberg, Hudi and Delta: table formats, named as such (Iceberg sinks are issue 24's, not converted yet)."""
    if str(name).lower() in ("iceberg", "hudi", "delta"):
        return "; table formats (Iceberg, Hudi, Delta) are not converted yet"
    return ""


def sink(draft: Draft, script: GlueScript, step: Step | None, location: str) -> str | None:
    if step is None:
        return None
    if step.name == "write_dynamic_frame.from_catalog":
        return catalog_sink(draft, script, step, location)
    if step.name in DATAFRAME_SINKS:
        return dataframe_sink(draft, script, step, location)
    _s3_json(draft, script, step, "sink")  # reported; the options are still read, so all is reported at once
    if step.name == "getSink":
        draft.items.extend(report_catalog_updates(script, step.args, location, step.line))
    options = step.args.get("connection_options", {})
    if not isinstance(options, dict):
        draft.add(
            UNSUPPORTED,
            f"{location}.uri",
            "connection_options is not a literal dict",
            script=script,
            line=step.line,
        )
        return None
    uri = None
    if "path" not in options:
        draft.add(UNSUPPORTED, f"{location}.uri", "connection_options has no 'path'", script=script, line=step.line)
    else:
        uri = draft.text(options["path"], f"{location}.uri", script, step.line, expandable=True)
        if uri is not None:
            draft.set(f"{location}.uri", uri, CONVERTED, "connection_options path", script, step.line)
    compression = options.get("compression")
    fmt = flow_format(step)
    if fmt == "parquet":
        if compression is not None:
            draft.add(
                UNSUPPORTED,
                f"{location}.compression",
                "Parquet's compression is a format_options key",
                plain(compression),
                script,
                step.line,
            )
    elif compression is None:
        draft.set(
            f"{location}.compression",
            "none",
            DEFAULT,
            "Glue's default (no 'compression' in the script)",
            script,
            step.line,
        )
    elif isinstance(compression, Text) and compression.text.lower() in ("gzip", "none"):
        draft.set(
            f"{location}.compression",
            compression.text.lower(),
            CONVERTED,
            "connection_options compression",
            script,
            step.line,
        )
    else:
        draft.add(
            UNSUPPORTED,
            f"{location}.compression",
            "glueflow writes gzip or none",
            plain(compression),
            script,
            step.line,
        )
    for key, value in options.items():
        if key in ("path", "compression"):
            continue
        if key == "partitionKeys":
            partition_keys(draft, script, step, location, value)
            continue
        draft.add(
            UNSUPPORTED,
            f"{location} ({key})",
            "sink option not supported by glueflow",
            plain(value),
            script,
            step.line,
        )
    if fmt not in (None, "json"):
        other_format_options(draft, script, step, location, sink=True)
        return uri
    for key, value in (step.args.get("format_options") or {}).items():
        draft.add(
            UNSUPPORTED,
            f"{location} (format_options {key})",
            "sink format option not supported by glueflow",
            plain(value),
            script,
            step.line,
        )
    return uri


def _glob(uri: str) -> bool:
    """True when the path holds a Hadoop glob character (job arguments, `${X}`, aside)."""
    return any(c in re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}", "", uri) for c in "*?[]{}\\")


def _names_an_object(uri: str) -> bool:
    """True when the path's last segment is a data object's name (`.../readings-2024-01-01.json`)."""
    last = uri.rstrip("/").rsplit("/", 1)[-1] if not uri.endswith("/") else ""
    return "}" not in last and last.lower().endswith(_OBJECT_SUFFIXES)


def _json_path_problem(path: str) -> str | None:
    """Why glueflow's JSON reader cannot take this jsonPath (the flow file's own check), or None."""
    from glueflow_dagster.core.json_reader import JsonPathError, parse_json_path

    try:
        parse_json_path(path)
    except JsonPathError as err:
        return str(err)
    return None

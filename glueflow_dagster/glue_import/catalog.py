"""Data Catalog tables read or written with `from_catalog`: their S3 location, format, SerDe and partitions.

glueflow reads and writes S3 locations, so a table becomes its location. Where the location comes from:
`--catalog-location DB.TABLE=s3://...` (the user says it; the table's format is then theirs to check),
else with `--from-aws` Glue's GetTable (location, classification or SerDe, SerDe parameters,
compressionType, partition keys), else the table is reported with the exact option to pass.

A table converts only if it holds JSON lines in one S3 folder. A partitioned source table converts
(its partitions are `key=value/` sub-prefixes, read with recurse) unless the job maps a partition
column: Glue adds those from the path, glueflow reads the records only. A partitioned sink table is
reported (glueflow does not write partitions yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.report import CONVERTED, DEFAULT, NEEDS_USER, UNSUPPORTED, ImportGlueError, short
from glueflow_dagster.glue_import.script import GlueScript, Step
from glueflow_dagster.glue_import.values import Text, plain

# SerDe parameters that change nothing glueflow reads or writes as JSON lines.
_HARMLESS_SERDE = {"serialization.format", "paths"}
_JSON_SERDES = ("org.openx.data.jsonserde.JsonSerDe", "org.apache.hive.hcatalog.data.JsonSerDe")


@dataclass
class CatalogTable:
    """What GetTable says about one table."""

    name: str
    location: str | None
    format: str | None  # json | csv | parquet | avro | orc | None (not known)
    serde_parameters: dict[str, str] = field(default_factory=dict)
    partition_keys: list[str] = field(default_factory=list)
    compression: str | None = None


def read_table(name: str, table: dict[str, Any]) -> CatalogTable:
    storage = table.get("StorageDescriptor") or {}
    serde = storage.get("SerdeInfo") or {}
    library = str(serde.get("SerializationLibrary") or "")
    parameters = {**(storage.get("Parameters") or {}), **(table.get("Parameters") or {})}
    classification = str(parameters.get("classification") or "").lower() or None
    if classification is None:
        formats = f"{library} {storage.get('InputFormat') or ''}".lower()
        for fmt, marker in (("json", "json"), ("parquet", "parquet"), ("orc", "orc"), ("avro", "avro")):
            if marker in formats:
                classification = fmt
                break
        else:
            classification = "csv" if "lazysimpleserde" in formats or "opencsvserde" in formats else None
    return CatalogTable(
        name=name,
        location=storage.get("Location"),
        format=classification,
        serde_parameters={str(k): str(v) for k, v in (serde.get("Parameters") or {}).items()},
        partition_keys=[str(key.get("Name")) for key in table.get("PartitionKeys") or []],
        compression=(str(parameters["compressionType"]).lower() if parameters.get("compressionType") else None),
    )


def _resolve(draft: Draft, script: GlueScript, step: Step, location: str) -> tuple[str, CatalogTable | None] | None:
    """The table's S3 location and, through GetTable, the table; None when it is reported instead."""
    database, table = step.args.get("database"), step.args.get("table_name")
    if not all(isinstance(v, Text) and not v.variables for v in (database, table)):
        shown = f"{short(plain(database))}.{short(plain(table))}"
        draft.add(
            UNSUPPORTED,
            f"{location}.uri",
            f"{step.name}({shown}): database and table_name must be literal strings",
            script=script,
            line=step.line,
        )
        return None
    name = f"{database.text}.{table.text}"  # type: ignore[union-attr]
    option = f"--catalog-location {name}=s3://bucket/prefix"
    if name in draft.catalog:
        return draft.catalog[name], None
    if draft.aws is None:
        draft.add(
            UNSUPPORTED,
            f"{location}.uri",
            f"{step.name}({name}): glueflow reads S3 locations, not the Data Catalog; give the table's location "
            f"with {option} (or read it with --from-aws)",
            script=script,
            line=step.line,
        )
        return None
    try:
        found = read_table(name, draft.aws.get_table(database.text, table.text))  # type: ignore[union-attr]
    except ImportGlueError as err:
        draft.add(UNSUPPORTED, f"{location}.uri", f"{err}; or give {option}", script=script, line=step.line)
        return None
    if not str(found.location or "").startswith("s3://"):
        draft.add(
            UNSUPPORTED,
            f"{location}.uri",
            f"table {name}: StorageDescriptor.Location {short(found.location)!r} is not an s3:// folder; give {option}",
            script=script,
            line=step.line,
        )
        return None
    return str(found.location), found


def catalog_source(draft: Draft, script: GlueScript, step: Step, location: str, set_uri: bool) -> str | None:
    resolved = _resolve(draft, script, step, location)
    if resolved is None:
        return None
    uri, table = resolved
    name = f"{plain(step.args.get('database'))}.{plain(step.args.get('table_name'))}"
    how = "--catalog-location" if table is None else "Glue GetTable"
    if set_uri:
        draft.set(f"{location}.uri", uri, CONVERTED, f"location of catalog table {name} ({how})", script, step.line)
    draft.set(
        f"{location}.recurse",
        True,
        DEFAULT,
        "a catalog table reads all its partitions (sub-prefixes)",
        script,
        step.line,
    )
    if table is None:
        draft.add(
            NEEDS_USER,
            f"{location} (format)",
            f"glueflow reads JSON lines: check that table {name} is JSON",
            script=script,
            line=step.line,
        )
    else:
        _table_format(draft, script, step, table, location)
        if table.partition_keys:
            draft.partition_keys[location] = table.partition_keys
            draft.add(
                DEFAULT,
                f"{location} (partitions)",
                f"table {name} is partitioned by {', '.join(table.partition_keys)}: its key=value/ sub-prefixes "
                "are read with recurse (a mapping that reads a partition column is reported)",
                table.partition_keys,
                script,
                step.line,
            )
    _report_options(
        draft, script, step, location, ("push_down_predicate", "additional_options", "redshift_tmp_dir", "catalog_id")
    )
    return uri


def _report_options(draft: Draft, script: GlueScript, step: Step, location: str, keys: tuple[str, ...]) -> None:
    """Each of ``keys`` the from_catalog call passes: reported at its line (glueflow has no such option)."""
    for key in keys:
        if step.args.get(key):
            draft.add(
                UNSUPPORTED,
                f"{location} ({key})",
                "from_catalog option not supported by glueflow",
                plain(step.args[key]),
                script,
                step.line,
            )


def _table_format(draft: Draft, script: GlueScript, step: Step, table: CatalogTable, location: str) -> None:
    """A table converts only as JSON lines; its SerDe parameters and compression are each converted or reported."""
    if table.format != "json":
        draft.add(
            UNSUPPORTED,
            f"{location} (format)",
            f"table {table.name} holds {table.format or 'an unknown format'}: glueflow reads and writes JSON lines",
            table.format,
            script,
            step.line,
        )
    else:
        draft.add(
            CONVERTED, f"{location} (format)", f"table {table.name} is JSON (GetTable)", "json", script, step.line
        )
    for key, value in table.serde_parameters.items():
        if key in _HARMLESS_SERDE:
            draft.add(DEFAULT, f"{location} (SerDe {key})", "no effect on JSON lines", short(value), script, step.line)
        else:
            draft.add(
                UNSUPPORTED,
                f"{location} (SerDe {key})",
                f"SerDe parameter of table {table.name} not converted",
                short(value),
                script,
                step.line,
            )


def catalog_sink(draft: Draft, script: GlueScript, step: Step, location: str) -> str | None:
    """`write_dynamic_frame.from_catalog`: the table's location, JSON format and compression."""
    resolved = _resolve(draft, script, step, location)
    if resolved is None:
        return None
    uri, table = resolved
    name = f"{plain(step.args.get('database'))}.{plain(step.args.get('table_name'))}"
    how = "--catalog-location" if table is None else "Glue GetTable"
    draft.set(f"{location}.uri", uri, CONVERTED, f"location of catalog table {name} ({how})", script, step.line)
    if table is None:
        draft.add(
            NEEDS_USER,
            f"{location} (format)",
            f"glueflow writes JSON lines, uncompressed: check that table {name} is JSON without compression",
            script=script,
            line=step.line,
        )
        draft.set(f"{location}.compression", "none", DEFAULT, "the table's compression is not known", script, step.line)
    else:
        _table_format(draft, script, step, table, location)
        compression = table.compression or "none"
        if compression in ("gzip", "none"):
            draft.set(
                f"{location}.compression", compression, CONVERTED, "the table's compressionType", script, step.line
            )
        else:
            draft.add(
                UNSUPPORTED, f"{location}.compression", "glueflow writes gzip or none", compression, script, step.line
            )
        if table.partition_keys:
            draft.add(
                UNSUPPORTED,
                f"{location} (partitions)",
                f"table {name} is partitioned by {', '.join(table.partition_keys)}: glueflow does not write partitions",
                table.partition_keys,
                script,
                step.line,
            )
    _report_options(draft, script, step, location, ("additional_options", "redshift_tmp_dir", "catalog_id"))
    return uri


def partition_columns(draft: Draft, script: GlueScript, step: Step | None, location: str, job: str) -> None:
    """A mapping that reads a partition column of a catalog source: Glue fills it from the path, glueflow cannot."""
    keys = {key.lower() for key in draft.partition_keys.get(location, [])}
    if step is None or not keys or not isinstance(step.args.get("mappings"), list):
        return
    raw = step.args["mappings"]
    for entry, line in zip(raw, getattr(raw, "lines", [step.line] * len(raw)), strict=True):
        source = plain(entry)[0] if isinstance(entry, list) and entry else None
        if isinstance(source, str) and source.split(".", 1)[0].strip("`").lower() in keys:
            draft.add(
                UNSUPPORTED,
                f"{job}.mappings",
                f"{source!r} is a partition column: Glue adds it from the key=value/ path, glueflow reads records only",
                script=script,
                line=line,
            )

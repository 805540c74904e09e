"""Data Catalog tables read or written with `from_catalog`: their S3 location, format, SerDe and partitions.

glueflow reads and writes S3 locations, so a table becomes its location. Where the location comes from:
`--catalog-location DB.TABLE=s3://...` (the user says it; the table's format is then theirs to check),
else with `--from-aws` Glue's GetTable (location, classification or SerDe, SerDe parameters,
compressionType, partition keys), else the table is reported with the exact option to pass.

A table converts if it holds JSON lines, CSV or Parquet in one S3 folder: its format and SerDe
parameters become the location's `format` and Glue's CSV option names (`field.delim`/`separatorChar`
-> `separator`, `quoteChar`, `escape.delim`/`escapeChar` -> `escaper`, the table's
`skip.header.line.count` 1 -> `withHeader`), its `compressionType` (or `parquet.compression`) the
sink's `compression`. A partitioned source table converts (its partitions are `key=value/`
sub-prefixes, read with recurse) unless the job maps a partition column: Glue adds those from the
path, glueflow's input reads the records only. A sink table's partitions are written when the sink
passes them (`additional_options={"partitionKeys": [...]}`, the table's keys): `partition_keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.formats import partition_keys
from glueflow_dagster.glue_import.report import CONVERTED, DEFAULT, NEEDS_USER, UNSUPPORTED, ImportGlueError, short
from glueflow_dagster.glue_import.script import GlueScript, Step
from glueflow_dagster.glue_import.values import Text, plain

# SerDe parameters that change nothing glueflow reads or writes (per format), and the CSV ones with Glue's names.
_HARMLESS_SERDE = {"serialization.format", "paths"}
_HARMLESS_CSV_SERDE = {"serialization.format", "line.delim", "serialization.null.format"}
_CSV_SERDE = {
    "field.delim": "separator",
    "separatorChar": "separator",
    "quoteChar": "quoteChar",
    "escape.delim": "escaper",
    "escapeChar": "escaper",
}
_PARQUET_CODECS = {"snappy": "snappy", "gzip": "gzip", "zstd": "zstd", "uncompressed": "none", "none": "none"}
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
    header_lines: str | None = None  # the table's skip.header.line.count


def read_table(name: str, table: dict[str, Any]) -> CatalogTable:
    storage = table.get("StorageDescriptor") or {}
    serde = storage.get("SerdeInfo") or {}
    library = str(serde.get("SerializationLibrary") or "")
    parameters = {**(storage.get("Parameters") or {}), **(table.get("Parameters") or {})}
    classification = str(parameters.get("classification") or "").lower() or None
    table_type = str(parameters.get("table_type") or parameters.get("spark.sql.sources.provider") or "").lower()
    if table_type in ("iceberg", "hudi", "delta"):
        classification = table_type  # a table format: an Iceberg Output sink converts, the rest is reported
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
        compression=(
            str(parameters.get("compressionType") or parameters.get("parquet.compression")).lower()
            if parameters.get("compressionType") or parameters.get("parquet.compression")
            else None
        ),
        header_lines=str(parameters["skip.header.line.count"]) if "skip.header.line.count" in parameters else None,
    )


def given_location(draft: Draft, name: str) -> str | None:
    """The `--catalog-location` of table `database.table`: the Data Catalog's names are case-insensitive."""
    for table, uri in draft.catalog.items():
        if table.lower() == name.lower():
            return uri
    return None


def resolve_table(
    draft: Draft, script: GlueScript, step: Step, location: str
) -> tuple[str, CatalogTable | None] | None:
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
    given = given_location(draft, name)
    if given is not None:
        return given, None
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
    resolved = resolve_table(draft, script, step, location)
    if resolved is None:
        return None
    uri, table = resolved
    name = f"{plain(step.args.get('database'))}.{plain(step.args.get('table_name'))}"
    if table is not None and table.format == "iceberg":
        return _iceberg_sink(draft, script, step, location, name, table)
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
        draft.unknown_format.add(f"{location} read")
        draft.add(
            NEEDS_USER,
            f"{location} (format)",
            f"table {name}'s format is not known (--catalog-location gives its location only): the flow reads it "
            f"as JSON lines; if it holds CSV or Parquet, set {location}.format and its options (or use --from-aws)",
            script=script,
            line=step.line,
        )
    else:
        _table_format(draft, script, step, table, location, sink=False)
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


def _table_format(draft: Draft, script: GlueScript, step: Step, table: CatalogTable, location: str, sink: bool) -> None:
    """The table's format (JSON, CSV or Parquet) and its SerDe parameters: each converted or reported."""
    fmt = table.format
    if fmt not in ("json", "csv", "parquet"):
        draft.add(
            UNSUPPORTED,
            f"{location} (format)",
            f"table {table.name} holds {fmt or 'an unknown format'}: glueflow reads and writes JSON, CSV and Parquet"
            + (
                "; table formats (Iceberg, Hudi, Delta) are not converted yet"
                if fmt in ("iceberg", "hudi", "delta")
                else ""
            ),
            fmt,
            script,
            step.line,
        )
        return
    if fmt == "json":
        draft.add(
            CONVERTED, f"{location} (format)", f"table {table.name} is JSON (GetTable)", "json", script, step.line
        )
    else:
        draft.set(f"{location}.format", fmt, CONVERTED, f"table {table.name} is {fmt} (GetTable)", script, step.line)
    harmless = _HARMLESS_CSV_SERDE if fmt == "csv" else _HARMLESS_SERDE
    for key, value in table.serde_parameters.items():
        if fmt == "csv" and key in _CSV_SERDE:
            option = _CSV_SERDE[key]
            draft.set(f"{location}.{option}", value, CONVERTED, f"SerDe parameter {key}", script, step.line)
        elif key in harmless:
            draft.add(DEFAULT, f"{location} (SerDe {key})", f"no effect on {fmt}", short(value), script, step.line)
        else:
            draft.add(
                UNSUPPORTED,
                f"{location} (SerDe {key})",
                f"SerDe parameter of table {table.name} not converted",
                short(value),
                script,
                step.line,
            )
    if table.header_lines is not None:
        _header_lines(draft, script, step, table, location, sink)


def _header_lines(draft: Draft, script: GlueScript, step: Step, table: CatalogTable, location: str, sink: bool) -> None:
    """`skip.header.line.count`: 1 on a CSV table read is Glue's `withHeader`; 0 is none; else reported."""
    count = table.header_lines
    if table.format == "csv" and count in ("0", "1") and not sink:
        draft.set(f"{location}.withHeader", count == "1", CONVERTED, "skip.header.line.count", script, step.line)
    elif table.format == "csv" and count in ("0", "1"):
        draft.add(DEFAULT, f"{location} (skip.header.line.count)", "a read option", count, script, step.line)
    else:
        draft.add(
            UNSUPPORTED,
            f"{location} (skip.header.line.count)",
            f"table {table.name}: only 0 or 1 header line of a CSV table is converted",
            count,
            script,
            step.line,
        )


def catalog_sink(draft: Draft, script: GlueScript, step: Step, location: str) -> str | None:
    """`write_dynamic_frame.from_catalog`: the table's location, format, compression and partition keys."""
    resolved = resolve_table(draft, script, step, location)
    if resolved is None:
        return None
    uri, table = resolved
    name = f"{plain(step.args.get('database'))}.{plain(step.args.get('table_name'))}"
    if table is not None and table.format == "iceberg":
        return _iceberg_sink(draft, script, step, location, name, table)
    how = "--catalog-location" if table is None else "Glue GetTable"
    draft.set(f"{location}.uri", uri, CONVERTED, f"location of catalog table {name} ({how})", script, step.line)
    if table is None:
        draft.unknown_format.add(f"{location} written")
        draft.add(
            NEEDS_USER,
            f"{location} (format)",
            f"table {name}'s format is not known (--catalog-location gives its location only): the flow writes "
            f"JSON lines, uncompressed; if the table is CSV or Parquet, set {location}.format (or use --from-aws)",
            script=script,
            line=step.line,
        )
        draft.set(f"{location}.compression", "none", DEFAULT, "the table's compression is not known", script, step.line)
    else:
        _table_format(draft, script, step, table, location, sink=True)
        _table_compression(draft, script, step, table, location)
    _sink_options(draft, script, step, location, table)
    _report_options(draft, script, step, location, ("redshift_tmp_dir", "catalog_id"))
    return uri


def _iceberg_sink(
    draft: Draft, script: GlueScript, step: Step, location: str, name: str, table: CatalogTable
) -> str | None:
    """An Iceberg catalog table (`table_type` ICEBERG) written with write_dynamic_frame.from_catalog."""
    warehouse = str(table.location).rstrip("/").rsplit("/", 1)[0]
    return iceberg_table_sink(draft, script, step, location, name, warehouse, "parent of the table's location")


def iceberg_table_sink(
    draft: Draft, script: GlueScript, step: Step, location: str, name: str, warehouse: str, how: str
) -> str | None:
    """The Output job's sink becomes `format: iceberg` in Glue's catalog, `table: <database>.<table>`, `uri` the
    warehouse; staging is files, so an Iceberg Input sink is refused. The table's options are reported."""
    if location != "output":
        draft.add(
            UNSUPPORTED,
            f"{location} (format)",
            f"table {name} is Iceberg: glueflow's staging is files (JSON, CSV, Parquet); only the Output job "
            "writes an Iceberg table",
            "iceberg",
            script,
            step.line,
        )
        return None
    draft.set(f"{location}.format", "iceberg", CONVERTED, f"table {name} is Iceberg", script, step.line)
    draft.set(f"{location}.table", name, CONVERTED, f"Iceberg table {name} in Glue's catalog", script, step.line)
    draft.set(f"{location}.catalog", {"type": "glue"}, CONVERTED, "the Glue Data Catalog", script, step.line)
    draft.set(f"{location}.uri", warehouse, CONVERTED, f"the warehouse: {how}", script, step.line)
    draft.add(
        NEEDS_USER,
        f"{location}.partition_keys",
        f"table {name}'s partition spec is the table's own: if it is partitioned, set {location}.partition_keys to "
        'its spec (e.g. ["day(ts)"]) so each data file holds one partition (else a run whose records span '
        "several partitions is refused); the table's location must be under the warehouse (checked on the first run)",
        None,
        script,
        step.line,
    )
    _report_options(draft, script, step, location, ("redshift_tmp_dir", "catalog_id"))
    options = step.args.get("additional_options") or {}
    if not isinstance(options, dict):
        draft.add(UNSUPPORTED, f"{location} (additional_options)", "not a literal dict", script=script, line=step.line)
        options = {}
    for key, value in options.items():
        why = "Iceberg write option not supported by glueflow (it appends each run's records as one snapshot)"
        draft.add(UNSUPPORTED, f"{location} ({key})", why, short(plain(value)), script, step.line)
    return warehouse


def _table_compression(draft: Draft, script: GlueScript, step: Step, table: CatalogTable, location: str) -> None:
    """The sink table's compressionType (parquet.compression): gzip/none for JSON and CSV, Parquet's codecs."""
    if table.format == "parquet":
        codec = _PARQUET_CODECS.get(table.compression or "snappy")
        allowed = "snappy, gzip, zstd or none"
    else:
        codec = table.compression or "none"
        codec, allowed = (codec if codec in ("gzip", "none") else None), "gzip or none"
    if codec is None:
        draft.add(
            UNSUPPORTED, f"{location}.compression", f"glueflow writes {allowed}", table.compression, script, step.line
        )
        return
    status = CONVERTED if table.compression else DEFAULT
    note = "the table's compressionType" if table.compression else f"Glue's default for {table.format}"
    draft.set(f"{location}.compression", codec, status, note, script, step.line)


def _sink_options(draft: Draft, script: GlueScript, step: Step, location: str, table: CatalogTable | None) -> None:
    """A catalog sink's `additional_options`: `partitionKeys` (the table's keys) is written as `partition_keys`;
    `enableUpdateCatalog`/`updateBehavior` need the user (glueflow writes S3, not the catalog); others reported."""
    options = step.args.get("additional_options") or {}
    if not isinstance(options, dict):
        draft.add(UNSUPPORTED, f"{location} (additional_options)", "not a literal dict", script=script, line=step.line)
        options = {}
    keys = options.get("partitionKeys")
    table_keys = table.partition_keys if table is not None else []
    name = f"{plain(step.args.get('database'))}.{plain(step.args.get('table_name'))}"
    if keys is not None and table is not None and plain(keys) != table_keys:
        why = f"partitionKeys {short(plain(keys))} are not table {name}'s partition keys {short(table_keys)}"
        draft.add(UNSUPPORTED, f"{location} (partitions)", why, plain(keys), script, step.line)
    elif keys is not None:
        partition_keys(draft, script, step, location, keys)
    elif table_keys:
        draft.add(
            UNSUPPORTED,
            f"{location} (partitions)",
            f"table {name} is partitioned by {', '.join(table_keys)} but the sink passes no partitionKeys "
            "(additional_options): Glue then writes no partition folders",
            table_keys,
            script,
            step.line,
        )
    for key, value in options.items():
        if key in ("enableUpdateCatalog", "updateBehavior"):
            why = "glueflow writes the S3 location, not the Data Catalog: add partitions with a crawler or Athena"
            draft.add(NEEDS_USER, f"{location} ({key})", why, plain(value), script, step.line)
        elif key != "partitionKeys":
            why = "from_catalog sink option not supported by glueflow"
            draft.add(UNSUPPORTED, f"{location} ({key})", why, short(plain(value)), script, step.line)


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

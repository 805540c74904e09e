"""The Output job's Iceberg writes of a Spark DataFrame, as `format: iceberg` (catalog glue, table, warehouse).

Two writes convert, when what the job runs with says all that glueflow needs:

- `df.writeTo("glue_catalog.db.table").append()` (`df = frame.toDF()`): `glue_catalog` must be an Iceberg
  catalog in Glue's Data Catalog in the job's Spark settings (`spark.sql.catalog.glue_catalog` =
  `org.apache.iceberg.spark.SparkCatalog`, `...catalog-impl` = `org.apache.iceberg.aws.glue.GlueCatalog` or
  `...type` = `glue`), and the warehouse is `spark.sql.catalog.glue_catalog.warehouse`, or the parent of the
  table's location (GetTable with `--from-aws`, or `--catalog-location DB.TABLE=s3://...`). A two-part name
  (`db.table`) is in `spark.sql.defaultCatalog` (Spark's `spark_catalog` unless set). Spark's older writer,
  `df.write.format("iceberg").mode("append").saveAsTable(...)`, is the same append (by column name).
- `glueContext.write_data_frame.from_catalog(frame=df, database=, table_name=)`: Glue's Data Catalog; the
  table is Iceberg when GetTable says so (`table_type` ICEBERG), or the job's `--datalake-formats` is
  `iceberg` (or, with none given, its settings configure an Iceberg Glue catalog); the warehouse as above.

The job's Spark settings are the script's own (`SparkConf().set`, `SparkSession.builder.config`,
`spark.conf.set`), over its `--conf` job parameter: read from the job with `--from-aws`, else given to the
importer as `--conf KEY=VALUE` (and `--datalake-formats iceberg`), Glue's own parameter names. What is
missing is reported at the write's line with the exact options to pass. Only `append()` converts: glueflow
appends each run's records as one snapshot; `overwrite`, `overwritePartitions`, `create`, `replace`,
`createOrReplace` and write options are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from glueflow_dagster.glue_import.catalog import given_location, iceberg_table_sink, resolve_table
from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.report import DEFAULT, UNSUPPORTED, short
from glueflow_dagster.glue_import.script import GlueScript, Step
from glueflow_dagster.glue_import.values import IDENTIFIER, Text, plain

ICEBERG_CATALOGS = ("org.apache.iceberg.spark.SparkCatalog", "org.apache.iceberg.spark.SparkSessionCatalog")
GLUE_CATALOG_IMPL = "org.apache.iceberg.aws.glue.GlueCatalog"
ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
# Properties of an Iceberg catalog that change how it is reached, not which table or what is written.
_CATALOG_PROPERTIES = (
    "warehouse",
    "catalog-impl",
    "io-impl",
    "type",
    "lock-impl",
    "lock.table",
    "glue.skip-name-validation",
    "glue.skip-archive",
    "cache-enabled",
)
# Spark settings that change how Spark runs (resources, parallelism, names), not the records read or written.
_HARMLESS_SETTINGS = ("spark.app.name", "spark.master", "spark.serializer", "spark.sql.shuffle.partitions")
_HARMLESS_PREFIXES = ("spark.executor.", "spark.driver.", "spark.sql.adaptive.", "spark.dynamicAllocation.")
_WAREHOUSE_EXAMPLE = "s3://bucket/prefix"


@dataclass(frozen=True)
class Setting:
    """One Spark setting of the Output job and where it came from (the script's line, a job parameter)."""

    value: Text
    source: str
    line: int | None = None


def parse_conf_parameter(value: str) -> dict[str, str]:
    """Glue's `--conf` job parameter, `k=v` or chained as `k=v --conf k2=v2` (how Glue jobs pass several)."""
    settings: dict[str, str] = {}
    for part in re.split(r"\s+--conf\s+", value.strip()):
        key, sep, setting = part.partition("=")
        if sep and key.strip():
            settings[key.strip()] = setting.strip()
    return settings


def output_settings(draft: Draft) -> dict[str, Setting]:
    """The Output job's Spark settings: its `--conf` parameter (AWS, then the command line), then the script's."""
    settings: dict[str, Setting] = {}
    if draft.aws is not None:
        job = draft.aws.output_job
        for key, value in parse_conf_parameter(str(job.default_arguments.get("--conf", ""))).items():
            settings[key] = Setting(Text(value), f"Glue job {job.name}")
    for key, value in parse_conf_parameter(draft.job_parameters.get("--conf", "")).items():
        settings[key] = Setting(Text(value), "--conf")
    for key, (value, line) in draft.out.spark_conf.items():
        settings[key] = Setting(value, draft.out.label, line)
    return settings


def _datalake_formats(draft: Draft) -> list[str] | None:
    value = draft.job_parameters.get("--datalake-formats")
    if value is None and draft.aws is not None:
        value = draft.aws.output_job.default_arguments.get("--datalake-formats")
    if value is None:
        return None
    return [name.strip().lower() for name in str(value).split(",") if name.strip()]


def report_spark_settings(draft: Draft) -> None:
    """Each Spark setting a script makes: catalog and resource settings are defaults; any other may change
    what Glue reads or writes (time parsing, case sensitivity, ...) and is reported at its line."""
    for script in (draft.inp, draft.out):
        for key, (value, line) in script.spark_conf.items():
            known = _known_setting(key, value)
            if known is not None:
                draft.add(DEFAULT, f"spark setting {key}", known, short(value.text), script, line)
            else:
                draft.add(UNSUPPORTED, f"spark setting {key}", _UNKNOWN_SETTING, short(value.text), script, line)
        for key, (value, line) in script.unused_conf.items():
            why = "set on a SparkConf the script never gives to SparkContext or the session builder: no effect"
            draft.add(DEFAULT, f"spark setting {key}", why, short(value.text), script, line)
    report_conf_parameter(draft, parse_conf_parameter(draft.job_parameters.get("--conf", "")), "--conf")


def report_conf_parameter(draft: Draft, settings: dict[str, str], source: str) -> None:
    """A job's `--conf` parameter (read with --from-aws, or given with --conf): each setting judged as a script's."""
    for key, value in settings.items():
        known = _known_setting(key, Text(value))
        status, why = (DEFAULT, known) if known is not None else (UNSUPPORTED, _UNKNOWN_SETTING)
        draft.add(status, f"spark setting {key}", f"{why} (--conf)", short(value), source=source)


_UNKNOWN_SETTING = "Spark setting not converted: it may change what Glue reads or writes (glueflow has none)"


def _known_setting(key: str, value: Text) -> str | None:
    if key.startswith("spark.sql.catalog."):
        parts = key.removeprefix("spark.sql.catalog.").split(".", 1)
        if len(parts) == 1 or parts[1] in _CATALOG_PROPERTIES:
            return "an Iceberg catalog setting (read for the Output job's Iceberg write)"
        return None
    if key == "spark.sql.extensions" and all(v.strip() == ICEBERG_EXTENSIONS for v in value.text.split(",")):
        return "Iceberg's SQL extensions (for SQL statements; a DataFrame write does not need them)"
    if key in _HARMLESS_SETTINGS or key.startswith(_HARMLESS_PREFIXES) or key == "spark.sql.defaultCatalog":
        return "how Spark runs, not what it reads or writes"
    return None


def dataframe_sink(draft: Draft, script: GlueScript, step: Step, location: str) -> str | None:
    """`df.writeTo(...).append()`, `df.write.mode("append").saveAsTable(...)` or `write_data_frame.from_catalog(...)`:
    the Output job's Iceberg table."""
    if location != "output":
        draft.add(
            UNSUPPORTED,
            f"{location} (format)",
            f"{step.name}: a table write by the Input job; glueflow's staging is files (JSON, CSV, Parquet)",
            script=script,
            line=step.line,
        )
        return None
    settings = output_settings(draft)
    if step.name in ("writeTo", "saveAsTable"):
        return _write_to(draft, script, step, settings)
    return _write_data_frame(draft, script, step, settings)


def _refuse(draft: Draft, script: GlueScript, step: Step, message: str, line: int | None = None) -> None:
    draft.add(UNSUPPORTED, "output.format", message, "iceberg", script, line or step.line)


def _write_to(draft: Draft, script: GlueScript, step: Step, settings: dict[str, Setting]) -> str | None:
    table = step.args.get("table")
    methods = step.args.get("methods") or []
    writer = "writeTo(...)" if step.name == "writeTo" else "write...saveAsTable(...)"
    lines = getattr(methods, "lines", [step.line] * len(methods))
    ok = True
    if not methods:
        _refuse(draft, script, step, "writeTo(...) without append(): Glue writes nothing")
        ok = False
    for index, ((method, arguments), line) in enumerate(zip(methods, lines, strict=True)):
        last = index == len(methods) - 1
        if last and method == "append":
            continue
        if method == "using" and [plain(a) for a in arguments] == ["iceberg"]:
            draft.add(DEFAULT, "output.format", f"{writer}: format iceberg, the table's", None, script, line)
        elif last and method.startswith("saveAsTable in mode"):
            why = (
                f"{method.removeprefix('saveAsTable in ')}: glueflow appends each run's records as one snapshot; only "
                "mode('append') converts (Spark's default, errorifexists, fails once the table exists)"
            )
            _refuse(draft, script, step, why, line)
            ok = False
        elif last:
            why = (
                f"{writer}.{method}(): glueflow appends each run's records as one snapshot (append()); "
                f"{method} creates, replaces or overwrites"
            )
            _refuse(draft, script, step, why, line)
            ok = False
        else:
            _refuse(draft, script, step, f"{writer}.{method}({short(plain(arguments))}): not converted", line)
            ok = False
    if not isinstance(table, Text) or table.variables:
        _refuse(draft, script, step, f"{writer} {short(plain(table))}: the table name must be a literal string")
        return None
    parts = [part.strip("`") for part in table.text.split(".")]
    if len(parts) == 2:
        default = settings.get("spark.sql.defaultCatalog")
        parts = [default.value.text if default is not None else "spark_catalog", *parts]
    if len(parts) != 3 or not all(IDENTIFIER.match(part) for part in parts):
        _refuse(draft, script, step, f"{writer} {table.text!r}: expected catalog.database.table of identifiers")
        return None
    catalog, database, name = parts
    step.args["database"], step.args["table_name"] = Text(database), Text(name)
    warehouse = _glue_catalog(draft, script, step, settings, catalog)
    if warehouse is None or not ok:
        return None
    return _table(draft, script, step, f"{database}.{name}", warehouse, f"spark.sql.catalog.{catalog}.warehouse")


def _glue_catalog(
    draft: Draft, script: GlueScript, step: Step, settings: dict[str, Setting], catalog: str
) -> Text | None:
    """The warehouse of `catalog` (Text(""): none set) when it is an Iceberg catalog in Glue's Data Catalog;
    None when it is not, reported at the write's line with the settings to pass."""
    prefix = f"spark.sql.catalog.{catalog}"
    wanted = {prefix: ICEBERG_CATALOGS[0], f"{prefix}.catalog-impl": GLUE_CATALOG_IMPL}
    kind = settings.get(prefix)
    impl = settings.get(f"{prefix}.catalog-impl")
    glue = (impl is not None and impl.value.text == GLUE_CATALOG_IMPL) or (
        impl is None and (settings.get(f"{prefix}.type") or Setting(Text(""), "")).value.text.lower() == "glue"
    )
    if kind is not None and kind.value.text not in ICEBERG_CATALOGS:
        _refuse(draft, script, step, f"{prefix} is {short(kind.value.text)}, not an Iceberg catalog")
        return None
    if kind is not None and (impl is not None or f"{prefix}.type" in settings) and not glue:
        shown = impl.value.text if impl is not None else settings[f"{prefix}.type"].value.text
        _refuse(draft, script, step, f"{prefix} is {short(shown)}: glueflow converts Iceberg tables in Glue's catalog")
        return None
    for key, setting in settings.items():
        if key.startswith(prefix + ".") and key.removeprefix(prefix + ".") not in _CATALOG_PROPERTIES:
            why = "catalog property not converted (glueflow's catalog is {type: glue})"
            draft.add(UNSUPPORTED, f"spark setting {key}", why, short(setting.value.text), script, step.line)
            return None
    missing = [f"{key}={value}" for key, value in wanted.items() if key not in settings]
    if kind is None or not glue:
        located = _located(draft, step)
        if not located:
            missing.append(f"{prefix}.warehouse={_WAREHOUSE_EXAMPLE}")
        _refuse(
            draft,
            script,
            step,
            f"catalog {catalog} is not an Iceberg catalog in Glue's Data Catalog in the Output job's Spark settings; "
            f"pass the job's --conf parameter: {' '.join('--conf ' + m for m in missing)}"
            + ("" if draft.aws is not None else " (or read the job with --from-aws)"),
        )
        return None
    warehouse = settings.get(f"{prefix}.warehouse")
    return warehouse.value if warehouse is not None else Text("")


def _located(draft: Draft, step: Step) -> bool:
    """The table's location comes from GetTable (--from-aws) or --catalog-location (no warehouse needed)."""
    name = f"{plain(step.args.get('database'))}.{plain(step.args.get('table_name'))}"
    return draft.aws is not None or given_location(draft, name) is not None


def _write_data_frame(draft: Draft, script: GlueScript, step: Step, settings: dict[str, Setting]) -> str | None:
    database, table = step.args.get("database"), step.args.get("table_name")
    if not all(isinstance(v, Text) and not v.variables and IDENTIFIER.match(v.text) for v in (database, table)):
        shown = f"{short(plain(database))}.{short(plain(table))}"
        _refuse(draft, script, step, f"{step.name}({shown}): database and table_name must be literal identifiers")
        return None
    name = f"{database.text}.{table.text}"  # type: ignore[union-attr]
    catalogs = [
        key.removeprefix("spark.sql.catalog.")
        for key, setting in settings.items()
        if re.fullmatch(r"spark\.sql\.catalog\.[A-Za-z_][A-Za-z0-9_]*", key) and setting.value.text in ICEBERG_CATALOGS
    ]
    glue = [c for c in catalogs if _is_glue(settings, c)]
    formats = _datalake_formats(draft)
    iceberg = formats == ["iceberg"] or (formats is None and bool(glue))
    if draft.aws is None and not iceberg:
        have = "" if formats is None else f" (--datalake-formats is {','.join(formats)})"
        _refuse(
            draft,
            script,
            step,
            f"{step.name}({name}): the table's format is not known{have}; pass the Output job's parameters "
            f"--datalake-formats iceberg --conf spark.sql.catalog.glue_catalog.warehouse={_WAREHOUSE_EXAMPLE} "
            "(or read the job and the table with --from-aws)",
        )
        return None
    if _located(draft, step):
        return _table(draft, script, step, name, Text(""), "")
    warehouses = [
        settings[f"spark.sql.catalog.{c}.warehouse"] for c in glue if f"spark.sql.catalog.{c}.warehouse" in settings
    ]
    if len(warehouses) != 1:
        _refuse(
            draft,
            script,
            step,
            f"{step.name}({name}): the warehouse is not known ({len(warehouses)} Iceberg Glue catalogs with a "
            f"warehouse in the Output job's Spark settings); pass the job's --conf parameter: "
            f"--conf spark.sql.catalog.glue_catalog={ICEBERG_CATALOGS[0]} "
            f"--conf spark.sql.catalog.glue_catalog.catalog-impl={GLUE_CATALOG_IMPL} "
            f"--conf spark.sql.catalog.glue_catalog.warehouse={_WAREHOUSE_EXAMPLE} (or read the table with --from-aws "
            f"or give --catalog-location {name}=s3://...)",
        )
        return None
    return _table(draft, script, step, name, warehouses[0].value, "the Iceberg Glue catalog's warehouse setting")


def _is_glue(settings: dict[str, Setting], catalog: str) -> bool:
    impl = settings.get(f"spark.sql.catalog.{catalog}.catalog-impl")
    kind = settings.get(f"spark.sql.catalog.{catalog}.type")
    return (impl is not None and impl.value.text == GLUE_CATALOG_IMPL) or (
        impl is None and kind is not None and kind.value.text.lower() == "glue"
    )


def _table(draft: Draft, script: GlueScript, step: Step, name: str, warehouse: Text, how: str) -> str | None:
    """The table's warehouse: from GetTable or --catalog-location (the parent of its location), else the setting."""
    if _located(draft, step):
        resolved = resolve_table(draft, script, step, "output")
        if resolved is None:
            return None
        location, found = resolved
        if found is not None and found.format != "iceberg":
            _refuse(draft, script, step, f"table {name} holds {found.format or 'an unknown format'}, not Iceberg")
            return None
        source = "GetTable" if found is not None else "--catalog-location"
        parent = location.rstrip("/").rsplit("/", 1)[0]
        return iceberg_table_sink(
            draft, script, step, "output", name, parent, f"parent of the table's location ({source})"
        )
    if not warehouse.text:
        _refuse(
            draft,
            script,
            step,
            f"table {name}: the warehouse is not known; pass the Output job's --conf parameter: "
            f"--conf {how}={_WAREHOUSE_EXAMPLE} (or read the table with --from-aws)",
        )
        return None
    uri = warehouse.text.rstrip("/")
    if not uri.startswith(("s3://", "${")):
        _refuse(draft, script, step, f"{how} {short(uri)!r} is not an s3:// warehouse")
        return None
    return iceberg_table_sink(draft, script, step, "output", name, uri, how)

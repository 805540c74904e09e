"""Spark as the oracle for glueflow's ApplyMapping: a generated corpus, Spark's answers, glueflow's answers.

Glue's ApplyMapping runs on Spark (Glue 5.0: Spark 3.5, ANSI off), so a Glue user expects Spark SQL's
``CAST`` results. The corpus holds two kinds of cases:

* **cast cases**: (value, source type, target type) over every Glue type; Spark evaluates
  ``CAST(value AS target)`` on a column of the source type, glueflow maps a polars column of that type;
* **structure cases**: JSON records and one mapping (nested paths, case-insensitive names, backticks,
  array elements, missing fields, JSON types); Spark reads the records with ``spark.read.json`` and
  selects ``CAST(path AS target)``; glueflow maps them through ``run_stage`` and through
  ``ApplyMapping.apply`` on a frame polars read from the same file.

Spark's answers are cached in ``data/spark_casts.json`` (a JVM per test run is slow). Regenerate with::

    python -m glueflow_dagster_tests.spark_oracle --write

(needs ``pip install 'pyspark>=3.5,<3.6'`` and a Java runtime). Every disagreement must be fixed or be
one of :data:`DIVERGENCES`, glueflow's deliberate choices, which README.md's table
"Where glueflow differs from Glue/Spark, and why" mirrors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from glueflow_dagster.core.mapping import ApplyMapping, parse_glue_type

CACHE = Path(__file__).parent / "data" / "spark_casts.json"
SPARK_CONF = {
    "spark.sql.ansi.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "1",
}

# ---------------------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------------------

TARGETS = [
    "string",
    "boolean",
    "byte",
    "short",
    "int",
    "long",
    "float",
    "double",
    "decimal(10,2)",
    "decimal(5,2)",
    "decimal(38,0)",
    "decimal(38,10)",
    "date",
    "timestamp",
    "struct",
    "array",
]
# Spark types for `struct` and `array` sources (Glue's names carry no field types).
_SPARK_NESTED = {"struct": "struct<a:int,b:string>", "array": "array<int>"}

NUMBER_TEXTS = [
    "0", "1", "-1", "+8", " 42 ", "3.5", "-3.9", ".5", "-.5", "7.", "1e3", "1E3", "-1.5e-3", "127", "128",
    "-129", "32768", "2147483648", "9223372036854775807", "9223372036854775808", "1.005", "0.125", "2.345",
    "-2.345", "999.995", "12345678901.5", "99999999999999999999999999999999999999.5", "0.0049", "0.005", "1e20",
    "1e-20", "inf", "-Infinity", "NaN", "Infinity", "abc", "", " ", "0.0", "-0", "1.0", "1e", "e3", ".", "+.e",
    "0x1A", "1,5", "٣",
]  # fmt: skip
BOOLEAN_TEXTS = ["t", "TRUE", "True", "yes", "Y", "N", "no", "f", "false", " true ", "tru", "on", "off"]
TIME_TEXTS = [
    "2024-01-05", "2024-1-5", "2024", "2024-03", "2024-02-30", "2024-01-05T10:11:12Z", " 2024-01-05 23:59:59 ",
    "2024-01-05 10:11:12.5", "2024-01-05T10:11:12.123456789", "2024-01-05T10:11:12+02:00",
    "2024-01-05T10:11:12-0130", "2024-01-05T10:11:12 UTC", "2024-1-5 1:2", "2024-01-05T25:00:00",
    "2024-01-05T10:11:12+19:00", "9999-12-31T23:00:00-02:00", "1704449472", "1e9", "20261123",
    "2026-11-23 23:59:60", "2026-11-23 23:60:00", "2026-11-23 12:00:00 Europe/Paris", "2026-11-23 12:00:00 PST",
    "2026-11-23 12:00:00 GMT+01:00", "2026-11-23T12", "2026-11-23 12", "2026-11-23 12:00:00.",
    "2026-11-23 12:00:00+01:00:30", "2026-11-23 12:00:00 CET", "2026-11-23T12:00:00 UTC+01",
    "2026-11-23 12:00:00 +1", "2026-11-23 12:00:00 EST", "2026-11-23 12:00:00Z", "2026-11-23 12:00:00 UT",
    "2026-11-23 12:00:00 Nowhere/Land", "2026-11-23 12:00:00.1234567", "2026-06-01 12:00:00 America/New_York",
    "12:00:00", "T12:00", "05/01/2024", "2024-01-05x", "0000-01-01 00:00:00", "0001-01-01 00:00:00",
    "9999-12-31 23:59:59.999999", "2024-01-05 10:11", "2024-01-05T10:11:12.000", "2024-12-31T23:59:59-01:00",
    "+2026-11-23", "+2026-11-23 12:00:00", "+2026-11-23T12:00:00Z", "-2026-11-23", "+02026-11-23", "+12026-11-23",
    "+0000-01-01", "0002026-11-23", "002026-11-23 01:02:03", "+2026-11-23 12:00:00 Europe/Paris", "++2026-11-23",
]  # fmt: skip
OTHER_TEXTS = ['{"a": 1}', "[1, 2]", "x", " padded ", "\u2603", "null"]

# (source type, values as JSON-able Python values; dates, timestamps and decimals as text)
TYPED_VALUES: list[tuple[str, list[Any]]] = [
    ("boolean", [True, False]),
    ("byte", [-128, 127, 0, 1, -1, 44]),
    ("short", [32767, -32768, 300, 0, 1]),
    ("int", [2147483647, -2147483648, 70000, 0, 1, 1704449472]),
    ("long", [9223372036854775807, -9223372036854775808, 1704449472, 10**15, 0, 1, -1, 253402300800]),
    (
        "float",
        [
            1.005,
            0.125,
            1e20,
            1e7,
            123456789.0,
            0.1,
            -0.0,
            1.5,
            3.4e38,
            1e-4,
            0.001,
            2.5,
            16777217.0,
            1e-45,
            "inf",
            "-inf",
            "nan",
        ],
    ),  # fmt: skip
    (
        "double",
        [
            1.005,
            0.125,
            1e20,
            1e7,
            123456789.0,
            0.1,
            -0.0,
            1.5,
            1e308,
            5e-324,
            1e-4,
            0.001,
            2.5,
            1704449472.5,
            -1.5,
            12345678.9,
            3.7,
            -3.7,
            1e30,
            9999999.0,
            0.0009999,
            100.0,
            1.2345678901234567e-7,
            2.675,
            -0.125,
            0.5,
            "inf",
            "-inf",
            "nan",
        ],
    ),  # fmt: skip
    ("decimal(10,2)", ["1.25", "-1.25", "99999999.99", "0.00", "0.05", "-0.05", "127.99", "12.50"]),
    ("decimal(38,10)", ["1.2345678901", "0E-10", "-99999999.5000000000", "1.0000000000", "12345678901234567.5"]),
    ("decimal(38,0)", ["99999999999999999999999999999999999999", "-1", "0", "1704449472"]),
    ("date", ["2024-01-05", "0001-01-01", "9999-12-31", "1970-01-01", "1969-12-31"]),
    (
        "timestamp",
        [
            "2024-01-05 10:11:12",
            "2024-01-05 10:11:12.5",
            "2026-01-01 12:34:56.123456",
            "1969-12-31 23:59:59.5",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.999999",
            "1970-01-01 00:00:00",
            "2024-01-05 00:00:00.000010",
        ],
    ),  # fmt: skip
    # Bytes as hex: UTF-8 text, and malformed sequences (each becomes U+FFFD in Spark's cast to string).
    ("binary", ["41", "c3a9", "f09f9880e282ac41", "", "ff41", "e28241", "c0af", "eda080", "f4908080", "e09f80"]),
    ("struct", [{"a": 1, "b": "x"}, {"a": -5, "b": "y z"}]),
    ("array", [[1, 2, 3], [], [7]]),
]


@dataclass(frozen=True)
class CastCase:
    id: str
    source_type: str
    value: Any  # JSON-able
    target_type: str


@dataclass(frozen=True)
class StructureCase:
    id: str
    records: list[Any]  # JSON values, one per line
    mapping: tuple[str, str, str, str]


def cast_cases() -> list[CastCase]:
    groups: list[tuple[str, list[Any]]] = [
        ("string", [*NUMBER_TEXTS, *BOOLEAN_TEXTS, *TIME_TEXTS, *OTHER_TEXTS]),
        *TYPED_VALUES,
    ]
    cases = []
    for source, values in groups:
        for value in values:
            for target in TARGETS:
                cases.append(CastCase(f"{source}|{json.dumps(value)}|{target}", source, value, target))
    return cases


def structure_cases() -> list[StructureCase]:
    def case(name: str, records: list[Any], *mapping: str) -> StructureCase:
        return StructureCase(name, records, mapping)  # type: ignore[arg-type]

    user = [{"id": 1, "user": {"name": "ann", "id": 7}}, {"id": 2, "user": {"name": "bob"}}, {"id": 3}]
    items = [{"items": [{"sku": "a1", "n": 2}, {"sku": "b2", "n": 1}]}, {"items": []}, {"items": [{"sku": "c"}]}]
    return [
        case("nested", user, "user.name", "string", "name", "string"),
        case("nested-number", user, "user.id", "long", "uid", "long"),
        case("nested-to-string", user, "user.id", "int", "uid", "string"),
        case("case-insensitive", user, "USER.Name", "string", "name", "string"),
        case("case-insensitive-top", [{"Id": 5}, {"Id": 6}], "id", "long", "id", "long"),
        case("backticks", [{"a.b": 1}, {"a.b": 2}], "`a.b`", "long", "ab", "long"),
        case("backticks-nested", [{"u": {"x.y": "v"}}], "u.`x.y`", "string", "xy", "string"),
        case("array-element", items, "items[0].sku", "string", "sku", "string"),
        case("array-element-2", items, "items[1].n", "int", "n", "long"),
        case("array-whole", items, "items", "array", "items", "array"),
        case("array-to-string", [{"tags": ["a", "b"]}, {"tags": []}], "tags", "array", "tags", "string"),
        case("struct-whole", user, "user", "struct", "user", "struct"),
        case("struct-to-string", [{"u": {"k": 1, "s": "x"}}], "u", "struct", "u", "string"),
        case("missing-field", user, "absent", "string", "absent", "string"),
        case("missing-nested", user, "user.absent", "string", "absent", "long"),
        case("json-true-to-int", [{"v": True}, {"v": False}], "v", "boolean", "v", "int"),
        case("json-number-to-boolean", [{"v": 2}, {"v": 0}, {"v": 1}], "v", "long", "v", "boolean"),
        case("json-float-to-string", [{"v": 1.0}, {"v": -0.0}, {"v": 1e20}, {"v": 2.5}], "v", "double", "v", "string"),
        case("json-int-to-string", [{"v": 1}, {"v": -7}], "v", "long", "v", "string"),
        case("json-mixed-int-float", [{"v": 1}, {"v": 2.5}], "v", "double", "v", "string"),
        case("json-number-to-timestamp", [{"v": 1704449472}, {"v": 0}], "v", "long", "v", "timestamp"),
        case("json-float-to-decimal", [{"v": 1.005}, {"v": 0.125}], "v", "double", "v", "decimal(10,2)"),
        case("json-text-number-to-timestamp", [{"v": "1704449472"}], "v", "string", "v", "timestamp"),
        case("json-number-or-object", [{"v": 1}, {"v": {"k": 1}}, {"v": 3}], "v", "long", "v", "long"),
        case("json-boolean-or-number", [{"v": True}, {"v": 2}], "v", "long", "v", "long"),
        case("json-string-or-number", [{"v": "7"}, {"v": 8}], "v", "string", "v", "long"),
    ]


# ---------------------------------------------------------------------------------------------------------
# Canonical results (both sides are compared in this form; JSON-able for the cache)
# ---------------------------------------------------------------------------------------------------------


def canon(value: Any) -> Any:
    """A JSON-able canonical form of one result value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return _timestamp_text(value)
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, pl.Series):
        return canon(value.to_list())
    raise TypeError(f"no canonical form for {value!r}")


def _timestamp_text(value: dt.datetime) -> str:
    return f"{value.year:04d}-{value:%m-%d %H:%M:%S}.{value.microsecond:06d}"


def _python_value(source: str, value: Any) -> Any:
    """A corpus value as the Python value of a polars column of the source type."""
    if source in ("float", "double") and isinstance(value, str):
        return float(value)
    if source.startswith("decimal"):
        return Decimal(value)
    if source == "date":
        return dt.date.fromisoformat(value)
    if source == "timestamp":
        return dt.datetime.fromisoformat(value)
    if source == "binary":
        return bytes.fromhex(value)
    return value


# ---------------------------------------------------------------------------------------------------------
# glueflow's answers
# ---------------------------------------------------------------------------------------------------------


def glueflow_casts(cases: list[CastCase]) -> dict[str, Any]:
    """Every cast case through ApplyMapping.apply on a polars column of the source type."""
    results: dict[str, Any] = {}
    by_source: dict[str, list[CastCase]] = {}
    for case in cases:
        by_source.setdefault(case.source_type, []).append(case)
    for source, group in by_source.items():
        values = list(dict.fromkeys(json.dumps(case.value) for case in group))
        python = [_python_value(source, json.loads(v)) for v in values]
        if source in ("struct", "array"):
            series = pl.Series("v", python)
        else:
            series = pl.Series("v", python, dtype=parse_glue_type(source))
        targets = list(dict.fromkeys(case.target_type for case in group))
        mappings = [("v", source, f"t{j}", target) for j, target in enumerate(targets)]
        out = ApplyMapping.apply(series.to_frame(), mappings).collect(engine="streaming")
        columns = {name: out[name].to_list() for name in out.columns}
        for case in group:
            row = values.index(json.dumps(case.value))
            results[case.id] = canon(columns[f"t{targets.index(case.target_type)}"][row])
    return results


def glueflow_structure_frame(case: StructureCase, folder: Path) -> list[Any]:
    """A structure case through ApplyMapping.apply on the frame polars reads from the JSON lines.

    A field whose JSON types polars cannot unify (a number here, an object there) makes polars' reader
    fail before any mapping runs; such a file is read the way the stage falls back to, every mapped field
    as text (``source_read_schema(typed=False)``).
    """
    from glueflow_dagster.core.mapping import source_read_schema

    path = folder / f"{case.id}.json"
    path.write_text("".join(json.dumps(record) + "\n" for record in case.records))
    try:
        frame = pl.read_ndjson(path)
    except (pl.exceptions.SchemaError, pl.exceptions.ComputeError):
        frame = pl.read_ndjson(path, schema=source_read_schema([case.mapping], typed=False))
    out = ApplyMapping.apply(frame, [case.mapping]).collect()
    return [canon(value) for value in out[out.columns[0]].to_list()]


def glueflow_structure_stage(case: StructureCase, folder: Path) -> list[Any]:
    """A structure case through ``run_stage`` on local folders, read back as typed values."""
    from glueflow_dagster.core.stage import run_stage
    from glueflow_dagster.core.storage import LocalStorage

    source = LocalStorage(folder / case.id / "in")
    target = LocalStorage(folder / case.id / "out")
    info = source.write_bytes("part-0.json", "".join(json.dumps(r) + "\n" for r in case.records).encode())
    run_stage(source, [info], [case.mapping], target, name_prefix="run", compression="none")
    rows = [
        json.loads(line)
        for obj in sorted(target.list(""), key=lambda o: o.key)
        for line in target.read_bytes(obj.key).decode().splitlines()
        if line.strip()
    ]
    dtype = parse_glue_type(case.mapping[3])
    name = case.mapping[2]
    values = [row.get(name) for row in rows]
    return [_typed_json_value(value, dtype) for value in values]


def _typed_json_value(value: Any, dtype: pl.DataType) -> Any:
    """A value the stage wrote as JSON, in canonical form for its target type."""
    if value is None:
        return None
    if isinstance(dtype, pl.Datetime):
        return _timestamp_text(dt.datetime.fromisoformat(value))
    if isinstance(dtype, pl.Decimal):
        return canon(Decimal(str(value)).quantize(Decimal(1).scaleb(-dtype.scale)))
    if dtype.is_float():
        return canon(float(value))
    return canon(value)


# ---------------------------------------------------------------------------------------------------------
# Spark's answers
# ---------------------------------------------------------------------------------------------------------


def start_spark() -> Any:
    """A local[1] SparkSession, ANSI off, session time zone UTC (Glue 5.0's defaults for ApplyMapping)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[1]").appName("glueflow-spark-oracle")
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _spark_type(name: str) -> str:
    return _SPARK_NESTED.get(name, name)


def _spark_source(source: str) -> str:
    """SQL building a column of the source type from the text column ``s``."""
    if source == "string":
        return "s"
    if source in _SPARK_NESTED:
        return f"from_json(s, '{_SPARK_NESTED[source]}')"
    if source == "binary":
        return "unhex(s)"
    return f"cast(s as {source})"


def _spark_result(target: str, column: str) -> str:
    """SQL turning a result column into the canonical form's raw material."""
    # Dates and timestamps as text, formatted by Spark in UTC: pyspark would convert them with the
    # driver's local zone, and years past 9999 do not fit Python's datetime.
    if target == "timestamp":
        return f"date_format({column}, 'yyyy-MM-dd HH:mm:ss.SSSSSS')"
    if target == "date":
        return f"date_format({column}, 'yyyy-MM-dd')"
    if target in _SPARK_NESTED:
        return f"to_json({column})"
    return column


def _source_text(source: str, value: Any) -> str | None:
    if value is None:
        return None
    if source in _SPARK_NESTED:
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _spark_canon(target: str, value: Any) -> Any:
    if value is None:
        return None
    if target in ("timestamp", "date"):
        return value  # already the canonical text
    if target in _SPARK_NESTED:
        return json.dumps(json.loads(value), separators=(",", ":"))
    return canon(value)


def nested_form(text: Any) -> Any:
    """JSON text of a struct/array with keys sorted and null fields dropped: Spark's JSON reader sorts an
    object's fields by name and its to_json leaves out null fields; glueflow keeps the data's order and
    writes nulls. Neither changes a value, so structure cases compare nested results in this form."""
    if not isinstance(text, str):
        return text

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: clean(item) for key, item in sorted(value.items()) if item is not None}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return json.dumps(clean(json.loads(text)), separators=(",", ":"))


def spark_casts(spark: Any, cases: list[CastCase]) -> dict[str, Any]:
    """Spark's result for every cast case: a canonical value, or {"error": ...} when Spark refuses the cast."""
    from pyspark.errors import AnalysisException

    results: dict[str, Any] = {}
    by_source: dict[str, list[CastCase]] = {}
    for case in cases:
        by_source.setdefault(case.source_type, []).append(case)
    for source, group in by_source.items():
        values = list(dict.fromkeys(json.dumps(case.value) for case in group))
        rows = [(i, _source_text(source, json.loads(v))) for i, v in enumerate(values)]
        frame = spark.createDataFrame(rows, "i int, s string").selectExpr("i", f"{_spark_source(source)} as v")
        targets = list(dict.fromkeys(case.target_type for case in group))
        columns: list[str] = []
        refused: dict[str, str] = {}
        for target in targets:
            expr = f"{_spark_result(target, f'cast(v as {_spark_type(target)})')} as `{target}`"
            try:
                _ = frame.selectExpr(expr).schema  # analysis only
            except AnalysisException as err:
                refused[target] = str(err).splitlines()[0][:120]
                continue
            columns.append(expr)
        collected = {row["i"]: row for row in frame.selectExpr("i", *columns).collect()}
        for case in group:
            if case.target_type in refused:
                results[case.id] = {"error": refused[case.target_type]}
                continue
            row = collected[values.index(json.dumps(case.value))]
            results[case.id] = _spark_canon(case.target_type, row[case.target_type])
    return results


def _spark_path(path: str) -> str:
    return path  # Glue's path syntax (dots, backticks, [n]) is Spark SQL's


def spark_structures(spark: Any, cases: list[StructureCase]) -> dict[str, Any]:
    """Spark's results for the structure cases: ``spark.read.json`` then ``CAST(path AS target)``."""
    from pyspark.errors import AnalysisException

    results: dict[str, Any] = {}
    for case in cases:
        lines = [json.dumps(record) for record in case.records]
        frame = spark.read.json(spark.sparkContext.parallelize(lines, 1))
        source, _, _, target = case.mapping
        # Glue's `struct` and `array` take a nested value as it is: no cast.
        value = _spark_path(source) if target in _SPARK_NESTED else f"cast({_spark_path(source)} as {target})"
        expr = _spark_result(target, value)
        try:
            rows = frame.selectExpr(f"{expr} as o").collect()
        except AnalysisException as err:
            results[case.id] = {"error": str(err).splitlines()[0][:120]}
            continue
        results[case.id] = [_spark_canon(target, row["o"]) for row in rows]
    return results


def spark_results(spark: Any) -> dict[str, Any]:
    # The oracle is Spark as Glue runs it: case-insensitive names (Spark's default). The test session is
    # shared, and a stage script run in-process sets spark.sql.caseSensitive=true on it.
    spark.conf.set("spark.sql.caseSensitive", "false")
    return {
        "spark_version": spark.version,
        "casts": spark_casts(spark, cast_cases()),
        "structures": spark_structures(spark, structure_cases()),
    }


# ---------------------------------------------------------------------------------------------------------
# Deliberate divergences (README.md: "Where glueflow differs from Glue/Spark, and why")
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Divergence:
    """One deliberate difference: which disagreements it explains, and what glueflow gives instead."""

    id: str
    spark: str  # what Spark does
    glueflow: str  # what glueflow does instead
    why: str
    # (source type, value, target type, spark result, glueflow result) -> whether this entry explains it
    explains: Callable[[str, Any, str, Any, Any], bool]


def _is_integer_type(name: str) -> bool:
    return name in ("byte", "short", "int", "long")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_INTEGER_RANGE = {"byte": 2**7, "short": 2**15, "int": 2**31, "long": 2**63}


def _epoch_seconds(source: str, value: Any) -> float | None:
    """The corpus value as a number of seconds (timestamps: epoch seconds, floored like Spark)."""
    if source == "timestamp":
        delta = dt.datetime.fromisoformat(value) - dt.datetime(1970, 1, 1)
        return float(math.floor(delta.total_seconds()))
    if source in ("string", "boolean", "date", "struct", "array", "binary"):
        return None
    return _number(value)


def _overflows(source: str, value: Any, target: str) -> bool:
    """Whether the value lies outside the target's range (integers) or years 1..9999 (timestamps)."""
    number = _epoch_seconds(source, value)
    if number is None:
        return False
    if target == "timestamp":
        return math.isinf(number) or not (-62_135_596_800 <= number <= 253_402_300_799)
    if not _is_integer_type(target):
        return False
    bound = _INTEGER_RANGE[target]
    return math.isinf(number) or not (-bound <= number < bound)


def _time_only(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"^T?[0-9]{1,2}:[0-9]", value.strip()) is not None


def _same_float(source: str, spark: Any, glue: Any) -> bool:
    """Whether two float texts read back as the same float (float32 for `float`)."""
    try:
        a, b = float(spark), float(glue)
    except (TypeError, ValueError):
        return False
    if source == "float":
        a, b = (struct.unpack("f", struct.pack("f", x))[0] for x in (a, b))
    return a == b


DIVERGENCES: list[Divergence] = [
    Divergence(
        "refused-cast",
        "refuses the cast when the query is analysed (date -> int, struct -> long, string -> array, ...)",
        "null for every value, counted as cast errors",
        "Glue's ApplyMapping never fails on data; the cast_errors figure shows what could not be mapped",
        lambda source, value, target, spark, glue: isinstance(spark, dict) and "error" in spark and glue is None,
    ),
    Divergence(
        "nan-to-number",
        "NaN -> byte/short/int/long is 0",
        "null, counted as a cast error",
        "NaN is no number; 0 would be indistinguishable from a real zero",
        lambda source, value, target, spark, glue: (
            glue is None and value == "nan" and source in ("float", "double") and _is_integer_type(target)
        ),
    ),
    Divergence(
        "integer-overflow",
        "wraps around (300 -> byte is 44, a timestamp's epoch seconds -> short) or saturates "
        "(1e20 -> long is 9223372036854775807; a huge decimal -> timestamp wraps into year 4512)",
        "null, counted as a cast error",
        "a wrapped number is a wrong number that looks right; null is visible in cast_errors",
        lambda source, value, target, spark, glue: glue is None and _overflows(source, value, target),
    ),
    Divergence(
        "timestamp-range",
        "dates and timestamps before year 1 or after 9999 (+32768-01-01, +10000-01-01 01:00:00)",
        "null, counted as a cast error",
        "such values cannot be written as ISO text nor read by Python, Athena or most JSON readers",
        lambda source, value, target, spark, glue: (
            glue is None and target in ("timestamp", "date") and isinstance(spark, str) and _out_of_years(spark)
        ),
    ),
    Divergence(
        "time-only-string",
        "a time without a date ('12:00:00', 'T12:00') -> timestamp is stamped with today's date",
        "null, counted as a cast error",
        "the result would depend on the day the job runs; a re-run would change the data",
        lambda source, value, target, spark, glue: glue is None and source == "string" and _time_only(value),
    ),
    Divergence(
        "nested-to-string",
        "a struct or array cast to string prints Spark's internal form ({1, x}, [a, b])",
        'compact JSON text ({"a":1,"b":"x"}, ["a","b"])',
        "JSON text can be parsed again by any reader; Spark's form loses field names and quoting",
        lambda source, value, target, spark, glue: (
            source in ("struct", "array") and target == "string" and glue == json.dumps(value, separators=(",", ":"))
        ),
    ),
    Divergence(
        "decimal-text",
        "a decimal -> string may use an exponent (0E-10)",
        "plain decimal text (0.0000000000)",
        "plain text is what people and other tools read as a number",
        lambda source, value, target, spark, glue: (
            target == "string"
            and source.startswith("decimal")
            and isinstance(spark, str)
            and "E" in spark
            and Decimal(spark) == Decimal(glue)
        ),
    ),
    Divergence(
        "java-float-digits",
        "Java 17's Double/Float.toString sometimes prints more or other digits than needed "
        "(123456789f -> 1.23456792E8, 5e-324 -> 4.9E-324)",
        "the shortest digits that read back as the same float (1.2345679E8, 5.0E-324), as Java 19+ prints",
        "both texts read back as the same number; the shortest one is what every other tool prints",
        lambda source, value, target, spark, glue: (
            target == "string" and source in ("float", "double") and _same_float(source, spark, glue)
        ),
    ),
    Divergence(
        "unicode-digits",
        "string -> decimal reads any Unicode digit (Arabic-Indic '٣' -> 3), though string -> int/double do not",
        "ASCII digits only: null, counted as a cast error",
        "one rule for every number type; such text is almost always a mistake",
        lambda source, value, target, spark, glue: (
            glue is None and source == "string" and target.startswith("decimal") and not str(value).isascii()
        ),
    ),
]
# Divergences of whole structure cases (JSON records read and mapped).
STRUCTURE_DIVERGENCES = {
    "missing-field": (
        "a path to a field that no record has fails the whole query (cannot resolve the column)",
        "null for every record (Glue's ApplyMapping: a missing source gives null)",
        "a field absent from one run's data must not fail the run",
    ),
}


def same_structure(case: StructureCase, spark: Any, glue: list[Any]) -> bool:
    if case.mapping[3] in _SPARK_NESTED and isinstance(spark, list):
        return [nested_form(v) for v in spark] == [nested_form(v) for v in glue]
    return bool(spark == glue)


def explain_structure(case: StructureCase, spark: Any, glue: list[Any]) -> str | None:
    """The divergence explaining a structure case's disagreement, or None (a bug)."""
    if isinstance(spark, dict):
        if all(value is None for value in glue):
            return "missing-field"
        return None
    if len(spark) != len(glue):
        return None
    for expected, actual in zip(spark, glue, strict=True):
        if expected == actual:
            continue
        kind = "struct" if isinstance(expected, str) and expected.startswith("{") else "array"
        value = json.loads(actual) if isinstance(actual, str) and actual[:1] in "[{" else None
        reason = explain(kind, value, case.mapping[3], expected, actual)
        if reason is None:
            return None
    return "nested-to-string"


def _out_of_years(text: str) -> bool:
    head = text.split("-")[0] if not text.startswith("-") else "-"
    return head == "-" or not head.isdigit() or len(head) != 4 or head == "0000"


def explain(source: str, value: Any, target: str, spark: Any, glue: Any) -> Divergence | None:
    """The divergence explaining a disagreement, or None (then it is a bug)."""
    return next((d for d in DIVERGENCES if d.explains(source, value, target, spark, glue)), None)


def disagreements(spark: dict[str, Any], glue: dict[str, Any]) -> Iterator[tuple[CastCase, Any, Any]]:
    """Every cast case where glueflow's result is not Spark's."""
    for case in cast_cases():
        expected = spark[case.id]
        actual = glue[case.id]
        if not _same(expected, actual):
            yield case, expected, actual


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        return expected == actual or (math.isclose(expected, actual, rel_tol=0, abs_tol=0))
    return expected == actual


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"run Spark over the corpus and write {CACHE.name}")
    parser.add_argument("--report", action="store_true", help="print every disagreement with glueflow")
    args = parser.parse_args()
    if args.write:
        spark = start_spark()
        try:
            results = spark_results(spark)
        finally:
            spark.stop()
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_text(json.dumps(results, indent=0, sort_keys=True, ensure_ascii=False) + "\n")
        print(f"wrote {CACHE} ({len(results['casts'])} cast cases, {len(results['structures'])} structure cases)")
    if args.report:
        cached = json.loads(CACHE.read_text())
        glue = glueflow_casts(cast_cases())
        for case, expected, actual in disagreements(cached["casts"], glue):
            reason = explain(case.source_type, case.value, case.target_type, expected, actual)
            print(f"{'ok:' + reason.id if reason else 'BUG'}\t{case.id}\tspark={expected!r}\tglueflow={actual!r}")
        with tempfile.TemporaryDirectory() as tmp:
            for case in structure_cases():
                expected = cached["structures"][case.id]
                for way, fn in (("frame", glueflow_structure_frame), ("stage", glueflow_structure_stage)):
                    actual = fn(case, Path(tmp))
                    if not same_structure(case, expected, actual):
                        reason = explain_structure(case, expected, actual)
                        label = f"ok:{reason}" if reason else "BUG"
                        print(f"{label}\tSTRUCT {way}\t{case.id}\tspark={expected!r}\tglueflow={actual!r}")


if __name__ == "__main__":
    main()

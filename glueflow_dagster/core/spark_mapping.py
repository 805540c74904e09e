"""Glue's ApplyMapping compiled to Spark SQL: the second compiler of the one parsed mapping.

Plain Python (no Dagster, no pyspark import): it turns the mappings that :func:`glueflow_dagster.core.mapping.
parse_mappings` parsed (one parser, one set of errors) into Spark SQL ``select`` expressions, so the stage
script (:mod:`glueflow_dagster.spark.stage_script`) and any Spark job can apply the same mapping as the
polars stage, with the same results. Casts are Spark's own ``CAST`` with ANSI off (what Glue runs), plus
glueflow's documented deliberate divergences, implemented in SQL:

- **integer overflow gives null, not wrap-around**: a number outside the target's range is null (range
  checks before the ``CAST``), where Spark would wrap a long into an int or saturate a double;
- **NaN gives null** for integer targets (Spark gives 0) and for timestamps;
- text becomes a timestamp only when it starts with a 4-digit year (Spark would also read a bare time of
  day as *today*); a number in text is no timestamp (null), a JSON number read as a number is epoch seconds;
- timestamps and dates are kept within years 1..9999 (null outside), as polars and Python cannot hold others.

Sources match case-insensitively (unless ``case_sensitive``): every spelling of a source path in the
schema is read and coalesced in schema order, as the polars compiler does, so the Spark session must run
with ``spark.sql.caseSensitive=true`` for the exact spellings (``ID`` and ``id``) to be distinct columns.
Dotted targets are built with ``named_struct``. A prefix of a source path that is text (an object read as
JSON text) is descended with ``get_json_object`` (keys match exactly there, as in polars).

Schemas are given as a *field tree*: ``{name: spark_type_name | field_tree | [element]}`` (a list for an
array; :func:`schema_tree` turns Spark's ``StructType.jsonValue()`` into one, :func:`polars_tree` a polars
read schema), so this module can be used and tested without a JVM. The Spark stage reads with the polars
stage's read schema (:func:`mapping.source_read_schema`, JSON types kept), translated by
:func:`spark_schema_json`. Array element paths (``items[0].sku``) and Glue Studio's ``struct``/``array``
types compile as in polars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import polars as pl

from glueflow_dagster.core.mapping import FieldMapping, Mappings, parse_mappings

__all__ = [
    "CompiledMapping",
    "FieldTree",
    "compile_mapping",
    "polars_tree",
    "quote",
    "schema_tree",
    "spark_schema_json",
    "spark_type",
]

#: A field's type in a field tree: a Spark type name, a nested tree for a struct, or a one-element list
#: ``[element type]`` for an array.
FieldType: TypeAlias = "str | Mapping[str, FieldType] | list[FieldType]"
#: ``{name: field type}`` in schema order.
FieldTree: TypeAlias = Mapping[str, FieldType]

_INTEGER_RANGES = {
    "tinyint": (-(2**7), 2**7 - 1),
    "smallint": (-(2**15), 2**15 - 1),
    "int": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
_INTEGRAL = frozenset(_INTEGER_RANGES)
# Spark's schema JSON names some types differently from its SQL.
_JSON_TYPE_NAMES = {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint"}
_FLOATING = frozenset({"float", "double"})
# Epoch seconds of 0001-01-01 00:00:00 and 9999-12-31 23:59:59 (UTC).
_MIN_EPOCH_SECONDS = -62_135_596_800
_MAX_EPOCH_SECONDS = 253_402_300_799
_YEAR_FIRST = r"^[0-9]{4}([^0-9]|$)"  # date forms glueflow parses start with a 4-digit year


def spark_type(dtype: pl.DataType) -> str:
    """The Spark SQL type name of a parsed Glue type (the polars dtype ``parse_glue_type`` returns)."""
    simple = {
        pl.String: "string",
        pl.Boolean: "boolean",
        pl.Int8: "tinyint",
        pl.Int16: "smallint",
        pl.Int32: "int",
        pl.Int64: "bigint",
        pl.Float32: "float",
        pl.Float64: "double",
        pl.Date: "date",
        pl.Datetime: "timestamp",
        pl.Binary: "binary",
        pl.Null: "void",
    }
    for klass, name in simple.items():
        if isinstance(dtype, klass):
            return name
    if isinstance(dtype, pl.Decimal):
        return f"decimal({dtype.precision},{dtype.scale})"
    # Glue Studio's `struct` / `array` (any struct, any array): no Spark type name of their own; a
    # value passes through with the type it was read with.
    if isinstance(dtype, pl.Struct):
        return "struct"
    if isinstance(dtype, pl.List | pl.Array):
        return "array"
    raise ValueError(f"no Spark type for {dtype}")


def quote(name: str) -> str:
    """A Spark SQL identifier in backticks (a backtick inside is doubled)."""
    return "`" + name.replace("`", "``") + "`"


def _string_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def schema_tree(struct_json: Mapping[str, Any]) -> dict[str, Any]:
    """Spark's ``StructType.jsonValue()`` as a field tree (structs stay trees, arrays ``[element]``)."""
    return {field["name"]: _json_field_type(field["type"]) for field in struct_json.get("fields", ())}


def _json_field_type(kind: Any) -> FieldType:
    if isinstance(kind, dict) and kind.get("type") == "struct":
        return schema_tree(kind)
    if isinstance(kind, dict) and kind.get("type") == "array":
        return [_json_field_type(kind["elementType"])]
    if isinstance(kind, dict):
        return kind.get("type", "string")  # map: read as a whole
    return _JSON_TYPE_NAMES.get(kind, kind)


def polars_tree(schema: Mapping[str, pl.DataType]) -> dict[str, Any]:
    """A polars schema (the stage's read schema, :func:`mapping.source_read_schema`) as a field tree."""
    return {name: _polars_field_type(dtype) for name, dtype in schema.items()}


def _polars_field_type(dtype: pl.DataType) -> FieldType:
    if isinstance(dtype, pl.Struct):
        return {field.name: _polars_field_type(field.dtype) for field in dtype.fields}
    if isinstance(dtype, pl.List | pl.Array):
        return [_polars_field_type(dtype.inner)]
    if isinstance(dtype, pl.Null):
        return "string"
    if isinstance(dtype, pl.UInt8 | pl.UInt16 | pl.UInt32):
        return "bigint"
    return spark_type(dtype)


def spark_schema_json(schema: Mapping[str, pl.DataType], corrupt_record: str | None = None) -> dict[str, Any]:
    """Spark's schema JSON (for ``StructType.fromJson``) reading what a polars read schema reads.

    The JSON types polars keeps (boolean, bigint, double, structs and arrays of them) are read as the
    same Spark types, text as text; ``corrupt_record`` adds PERMISSIVE mode's column of bad lines.
    """
    fields = [_json_field(name, _polars_field_type(dtype)) for name, dtype in schema.items()]
    if corrupt_record is not None:
        fields.append(_json_field(corrupt_record, "string"))
    return {"type": "struct", "fields": fields}


def _json_field(name: str, kind: FieldType) -> dict[str, Any]:
    return {"name": name, "type": _json_type(kind), "nullable": True, "metadata": {}}


def _json_type(kind: FieldType) -> Any:
    if isinstance(kind, Mapping):
        return {"type": "struct", "fields": [_json_field(n, k) for n, k in kind.items()]}
    if isinstance(kind, list):
        return {"type": "array", "elementType": _json_type(kind[0]), "containsNull": True}
    return {"bigint": "long", "int": "integer", "smallint": "short", "tinyint": "byte"}.get(kind, kind)


def _kind(node: FieldType) -> str:
    """The Spark type name of a field tree node ("struct" for a tree, "array" for a list)."""
    if isinstance(node, Mapping):
        return "struct"
    if isinstance(node, list):
        return "array"
    return node


# ---------------------------------------------------------------------------------------------------------
# Resolving source paths (case-insensitively) against a field tree
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    columns: tuple[str | int, ...]  # the real spelling, descending through structs (names) and arrays (ints)
    node: FieldType | None  # the field tree node at ``columns``; None: not in the schema
    rest: tuple[str | int, ...] = ()  # still to descend inside a text value (JSON)


def _resolve(
    tree: FieldTree,
    path: tuple[str | int, ...],
    case_sensitive: bool,
    *,
    fill_missing: bool,
    prefix: tuple[str | int, ...] = (),
) -> list[_Hit]:
    """Every spelling of ``path`` in ``tree``, in schema order (as :func:`mapping.resolve.resolve`)."""
    first = path[0]
    assert isinstance(first, str)  # a path starts with a name; indexes follow names (parse_path)
    wanted = first if case_sensitive else first.casefold()
    names = [n for n in tree if (n if case_sensitive else n.casefold()) == wanted]
    if not names:
        return [_Hit(prefix + path, None)] if fill_missing else []
    hits: list[_Hit] = []
    for name in names:
        hits += _descend(tree[name], prefix + (name,), path[1:], case_sensitive, fill_missing)
    return hits


def _descend(
    node: FieldType, columns: tuple[str | int, ...], rest: tuple[str | int, ...], case_sensitive: bool, fill: bool
) -> list[_Hit]:
    if not rest:
        return [_Hit(columns, node)]
    step = rest[0]
    if isinstance(step, int):
        if isinstance(node, list):
            return _descend(node[0], columns + (step,), rest[1:], case_sensitive, fill)
    elif isinstance(node, Mapping):
        return _resolve(node, rest, case_sensitive, fill_missing=fill, prefix=columns)
    return [_Hit(columns, node, rest)]


def _column_sql(columns: Sequence[str | int]) -> str:
    """``a``.``b``[0].``c``: an element beyond the array's end is null (ANSI off)."""
    sql = ""
    for step in columns:
        if isinstance(step, int):
            sql += f"[{step}]"
        else:
            sql += ("." if sql else "") + quote(step)
    return sql


def _read(hit: _Hit) -> tuple[str, str] | None:
    """SQL reading a hit and its Spark type, or None when the path cannot exist in this schema."""
    if hit.node is None:
        return None
    sql = _column_sql(hit.columns)
    if not hit.rest:
        return sql, _kind(hit.node)
    if hit.node == "string":  # an object read as text: descend into its JSON
        if any(isinstance(name, str) and ("'" in name or "]" in name) for name in hit.rest):
            return None  # get_json_object cannot quote these names; polars reads them, Spark gives null
        path = "$" + "".join(f"[{name}]" if isinstance(name, int) else f"['{name}']" for name in hit.rest)
        return f"get_json_object({sql}, {_string_literal(path)})", "string"
    return None  # a scalar has no fields, a struct no elements, an array no fields


# ---------------------------------------------------------------------------------------------------------
# Casts
# ---------------------------------------------------------------------------------------------------------


def _in_range(value: str, low: int, high: int, src: str) -> str:
    """A SQL condition: ``value`` (of Spark type ``src``) truncates to a whole number in [low, high]."""
    if src in _FLOATING:
        # Truncation toward zero: anything strictly between low-1 and high+1 fits; NaN fails both.
        return f"(NOT isnan({value}) AND {value} > {low - 1}D AND {value} < {high + 1}D)"
    if src.startswith("decimal"):
        return f"({value} > {low - 1}BD AND {value} < {high + 1}BD)"
    return f"({value} BETWEEN {low} AND {high})"


def _cast(value: str, src: str, dst: str) -> str:
    """SQL casting ``value`` of Spark type ``src`` to ``dst`` with Glue's (and glueflow's) semantics."""
    if dst == "void":
        return "NULL"
    if dst in ("struct", "array"):
        # Glue Studio's any-struct / any-array: a value of that kind passes through as it was read.
        return value if src == dst else "NULL"
    if src == "void":
        return f"CAST(NULL AS {dst})"
    if dst == "string":
        if src == "string":
            return value
        if src in ("struct", "array", "map"):
            return f"to_json({value})"
        return f"CAST({value} AS STRING)"
    if dst in _INTEGRAL:
        low, high = _INTEGER_RANGES[dst]
        if src == "string":
            # Spark's text parser gives null on overflow already. Spark's JSON reader renders a JSON float
            # read as text the way Java prints a double ("1.23456789125E8"), which CAST rejects: read that
            # form as the double it is, truncated like any double (glueflow-polars keeps the number's text).
            exponent = f"CAST(CASE WHEN {value} RLIKE '^-?[0-9]+[.][0-9]+E-?[0-9]+$' THEN {value} END AS DOUBLE)"
            checked = f"CASE WHEN {_in_range(exponent, low, high, 'double')} THEN CAST({exponent} AS {dst}) END"
            return f"coalesce(CAST({value} AS {dst}), {checked})"
        if src in _FLOATING or src in _INTEGRAL or src.startswith("decimal"):
            return f"CASE WHEN {_in_range(value, low, high, src)} THEN CAST({value} AS {dst}) END"
        if src == "timestamp":
            seconds = f"CAST({value} AS BIGINT)"  # floored epoch seconds
            return f"CASE WHEN {seconds} BETWEEN {low} AND {high} THEN CAST({seconds} AS {dst}) END"
        if src == "boolean":
            return f"CAST({value} AS {dst})"
        return f"CAST(NULL AS {dst})"
    if dst == "timestamp":
        return _to_timestamp(value, src)
    if dst == "date" and src == "string":
        parsed = f"CAST({value} AS DATE)"
        return f"CASE WHEN year({parsed}) BETWEEN 1 AND 9999 THEN {parsed} END"  # year 0 is null, as in glueflow
    if dst == "date" and src not in ("date", "timestamp"):
        return "CAST(NULL AS date)"  # a number or a boolean is no date (Spark cannot cast them at all)
    if src in ("struct", "array", "map"):
        return f"CAST(NULL AS {dst})"
    return f"CAST({value} AS {dst})"


def _epoch(seconds: str) -> str:
    """Epoch seconds (a double) as a timestamp, null outside years 1..9999 and for NaN."""
    return (
        f"CASE WHEN NOT isnan({seconds}) AND {seconds} BETWEEN {_MIN_EPOCH_SECONDS}D AND {_MAX_EPOCH_SECONDS}D "
        f"THEN CAST({seconds} AS TIMESTAMP) END"
    )


def _to_timestamp(value: str, src: str) -> str:
    if src == "timestamp":
        return value
    if src == "date":
        return f"CAST({value} AS TIMESTAMP)"
    if src == "string":
        # Spark's text forms; a number in text ("1700000000") is no timestamp (null, as in Spark and glueflow).
        text = f"trim({value})"
        parsed = f"CAST({text} AS TIMESTAMP)"
        year_first = f"{text} RLIKE {_string_literal(_YEAR_FIRST)}"
        return f"CASE WHEN {year_first} AND year({parsed}) BETWEEN 1 AND 9999 THEN {parsed} END"
    if src in _INTEGRAL or src in _FLOATING or src.startswith("decimal"):
        return _epoch(f"CAST({value} AS DOUBLE)")
    if src == "boolean":
        return f"timestamp_micros(CAST({value} AS BIGINT))"  # Spark: true is 1 microsecond
    return "CAST(NULL AS TIMESTAMP)"


def _json_text(value: str, dst: str) -> str:
    """A value as polars writes it into JSON lines: timestamps and decimals as text."""
    if dst == "timestamp":
        micros = f"unix_micros({value})"
        return (
            f"CASE WHEN {micros} % 1000000 = 0 THEN date_format({value}, 'yyyy-MM-dd HH:mm:ss') "
            f"WHEN {micros} % 1000 = 0 THEN date_format({value}, 'yyyy-MM-dd HH:mm:ss.SSS') "
            f"ELSE date_format({value}, 'yyyy-MM-dd HH:mm:ss.SSSSSS') END"
        )
    if dst in _FLOATING:
        # polars writes NaN and infinities into JSON as null (Spark would write the text "NaN").
        return f"CASE WHEN NOT isnan({value}) AND abs({value}) != double('inf') THEN {value} END"
    if dst.startswith("decimal"):
        # Plain digits at the target's scale, as polars writes them (Spark's text would say 0E-10).
        scale = dst.rstrip(")").split(",")[1]
        return f"regexp_replace(format_number({value}, {scale}), ',', '')"
    return value


# ---------------------------------------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledMapping:
    """Spark SQL for one mapping over one schema, as two projections applied one after the other.

    ``values`` (``expr AS `__glueflow_v<i>```, one per mapping) compute each mapped value once; apply them
    with ``frame.selectExpr("*", *values)``. ``columns`` then build the targets from those values
    (``expr AS `target```, one per top-level target, in the order of their first mapping). Two steps,
    because a value is referenced several times (in the JSON text of a timestamp, in ``cast_errors``) and
    Spark does not collapse a projection that would repeat an expensive expression. ``cast_errors``
    (valid after ``values``) counts, per row, the mapped values whose source was present but whose value is
    null (mappings to ``null`` are not counted), as :func:`mapping.cast_error_count` does.
    """

    values: tuple[str, ...]
    columns: tuple[str, ...]
    cast_errors: str

    def apply(self, frame: Any) -> Any:
        """``frame`` (a pyspark DataFrame) mapped: both projections."""
        return frame.selectExpr("*", *self.values).selectExpr(*self.columns)


def _value(tree: FieldTree, fm: FieldMapping, case_sensitive: bool) -> tuple[str, str | None]:
    dst = spark_type(fm.target_type)
    reads = [read for hit in _resolve(tree, fm.source, case_sensitive, fill_missing=False) if (read := _read(hit))]
    if not reads:
        return ("NULL" if dst in ("void", "struct", "array") else f"CAST(NULL AS {dst})"), None
    if dst in ("struct", "array"):
        # Spellings of different structures cannot be coalesced (Spark needs one type): the first that
        # has the wanted kind is passed through.
        reads = [next((read for read in reads if read[1] == dst), reads[0])]
    casts = [_cast(sql, kind, dst) for sql, kind in reads]
    value = casts[0] if len(casts) == 1 else f"coalesce({', '.join(casts)})"
    present = " OR ".join(f"{sql} IS NOT NULL" for sql, _ in reads)
    return value, f"({present})"


def compile_mapping(
    mappings: Mappings, schema: FieldTree, *, case_sensitive: bool = False, json_output: bool = False
) -> CompiledMapping:
    """Compile ``mappings`` (raw tuples or parsed) against ``schema`` to Spark SQL (see CompiledMapping).

    ``json_output`` renders timestamps and decimals as the text polars writes into JSON lines, so the
    Spark stage's parts hold the same lines as the polars stage's.
    """
    parsed = parse_mappings(mappings)
    computed: list[str] = []
    values: list[str] = []
    failures: list[str] = []
    for index, fm in enumerate(parsed):
        value, present = _value(schema, fm, case_sensitive)
        column = quote(f"__glueflow_v{index}")
        computed.append(f"{value} AS {column}")
        values.append(_json_text(column, spark_type(fm.target_type)) if json_output else column)
        if present is not None and not isinstance(fm.target_type, pl.Null):
            failures.append(f"CASE WHEN {present} AND {column} IS NULL THEN 1 ELSE 0 END")

    tree: dict[str, Any] = {}
    for index, fm in enumerate(parsed):
        node = tree
        for name in fm.target[:-1]:
            node = node.setdefault(name, {})
        node[fm.target[-1]] = index

    def build(node: Mapping[str, Any]) -> str:
        pairs = ", ".join(
            f"{_string_literal(name)}, {values[child] if isinstance(child, int) else build(child)}"
            for name, child in node.items()
        )
        return f"named_struct({pairs})"

    columns = tuple(
        f"{values[child] if isinstance(child, int) else build(child)} AS {quote(name)}" for name, child in tree.items()
    )
    return CompiledMapping(
        values=tuple(computed), columns=columns, cast_errors=" + ".join(failures) if failures else "0"
    )

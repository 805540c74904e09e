"""Glue's ApplyMapping for polars.

A mapping is ``(source_path, source_type, target_path, target_type)``. Only mapped fields survive, dotted
paths read and build nested structs (``items[0].sku`` reads an array element), source names match
case-insensitively by default, a missing source gives a typed null column and a value that cannot be cast
becomes null (Glue never raises on data). Casts follow Spark's non-ANSI rules, which is what Glue runs on
(checked against Spark 3.5 by glueflow_dagster_tests/core/test_spark_differential.py; the deliberate
differences are listed in README.md), expressed as lazy polars expressions so the result runs on the
streaming engine; only zone names in timestamps take a per-batch Python step.

This module deliberately imports nothing from dagster: it is plain data logic.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, TypeAlias

import polars as pl

__all__ = [
    "ApplyMapping",
    "FieldMapping",
    "MappingError",
    "PlainTimestamps",
    "cast_error_count",
    "parse_glue_type",
    "parse_mappings",
    "parse_path",
    "presence_mapping",
    "source_read_schema",
]


class MappingError(ValueError):
    """A malformed mapping; the message names the mapping index and the bad field."""


@dataclass(frozen=True)
class FieldMapping:
    """One parsed mapping: source path and declared type, target path and target type."""

    source: tuple[str | int, ...]  # an int is an array index (``items[0].sku``)
    source_type: pl.DataType
    target: tuple[str, ...]
    target_type: pl.DataType


Frame: TypeAlias = pl.LazyFrame | pl.DataFrame
#: ``ApplyMapping.apply(plain_timestamps=...)``: False, True (the speculative plain form) or "text" (the
#: plain form, written as its source text where it parsed).
PlainTimestamps: TypeAlias = bool | Literal["text"]
MappingLike: TypeAlias = Sequence[str] | FieldMapping
Mappings: TypeAlias = Iterable[MappingLike]

# ---------------------------------------------------------------------------------------------------------
# Type names
# ---------------------------------------------------------------------------------------------------------

_SIMPLE_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "boolean": pl.Boolean(),
    "byte": pl.Int8(),
    "tinyint": pl.Int8(),  # Spark / Glue catalog alias
    "short": pl.Int16(),
    "smallint": pl.Int16(),  # Spark / Glue catalog alias
    "int": pl.Int32(),
    "integer": pl.Int32(),
    "long": pl.Int64(),
    "bigint": pl.Int64(),
    "float": pl.Float32(),
    "double": pl.Float64(),
    "date": pl.Date(),
    "timestamp": pl.Datetime("us"),  # naive, meaning UTC
    "binary": pl.Binary(),
    "null": pl.Null(),
    # Glue Studio writes these for nested values: any struct / any array, passed through as they are
    # (or written as compact JSON text when mapped to string).
    "struct": pl.Struct({}),
    "array": pl.List(pl.Null()),
}
_DECIMAL_RE = re.compile(r"decimal\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?", re.IGNORECASE)
# Spark's default for a bare `decimal` is decimal(10,0); 38 is Spark's (and polars') maximum precision.
_DEFAULT_DECIMAL_PRECISION = 10
_MAX_DECIMAL_PRECISION = 38


def parse_glue_type(name: str) -> pl.DataType:
    """Translate a Glue type name (case-insensitive) to a polars dtype; unknown names raise MappingError."""
    if not isinstance(name, str):
        raise MappingError(f"type must be a string, got {name!r}")
    key = name.strip().lower()
    if key in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[key]
    match = _DECIMAL_RE.fullmatch(key)
    if match is None:
        raise MappingError(f"unknown type {name!r}")
    precision = int(match.group(1)) if match.group(1) else _DEFAULT_DECIMAL_PRECISION
    scale = int(match.group(2)) if match.group(2) else 0
    if not 1 <= precision <= _MAX_DECIMAL_PRECISION or scale > precision:
        raise MappingError(
            f"invalid decimal {name!r}: need 1 <= precision <= {_MAX_DECIMAL_PRECISION} and scale <= precision"
        )
    return pl.Decimal(precision, scale)


# ---------------------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------------------


_INDEXES_RE = re.compile(r"((?:\[[0-9]+\])*)$")


def _split_indexes(part: str) -> tuple[str, list[int]]:
    """``items[0][1]`` -> ("items", [0, 1]): Spark's array element syntax after a name."""
    suffix = _INDEXES_RE.search(part)
    tail = suffix.group(1) if suffix else ""
    if not tail:
        return part, []
    return part[: len(part) - len(tail)], [int(i) for i in re.findall(r"[0-9]+", tail)]


def parse_path(path: str) -> tuple[str | int, ...]:
    """Split a dotted path; backtick-quoted parts may contain dots (a doubled backtick is a literal one).

    ``[n]`` after a name reads element ``n`` of an array (``items[0].sku``); it appears in the result as
    the int ``n``.
    """
    if not isinstance(path, str):
        raise MappingError(f"path must be a string, got {path!r}")
    if not path:
        raise MappingError("empty path")
    parts: list[str | int] = []
    i, n = 0, len(path)
    while True:
        indexes: list[int] = []
        if path[i] == "`":
            chunks: list[str] = []
            j = i + 1
            while True:
                close = path.find("`", j)
                if close < 0:
                    raise MappingError(f"unbalanced backtick in path {path!r}")
                if close + 1 < n and path[close + 1] == "`":
                    chunks.append(path[j : close + 1])
                    j = close + 2
                    continue
                chunks.append(path[j:close])
                i = close + 1
                break
            part = "".join(chunks)
            dot = path.find(".", i)
            end = n if dot < 0 else dot
            rest, indexes = _split_indexes(path[i:end])
            if rest:
                raise MappingError(f"unexpected {rest[0]!r} after closing backtick in path {path!r}")
            i = end
        else:
            dot = path.find(".", i)
            end = n if dot < 0 else dot
            part, indexes = _split_indexes(path[i:end])
            if "`" in part:
                raise MappingError(f"unbalanced backtick in path {path!r}")
            i = end
        if not part:
            raise MappingError(f"empty name in path {path!r}")
        parts.append(part)
        parts.extend(indexes)
        if i >= n:
            return tuple(parts)
        i += 1  # skip the dot
        if i >= n:
            raise MappingError(f"empty name in path {path!r}")


def _format_path(path: Sequence[str | int]) -> str:
    """Render a path the way a user writes it (quoting names that contain dots, backticks or brackets)."""
    text = ""
    for name in path:
        if isinstance(name, int):
            text += f"[{name}]"
            continue
        quote = "." in name or "`" in name or _INDEXES_RE.search(name).group(1)  # type: ignore[union-attr]
        text += ("." if text else "") + ("`" + name.replace("`", "``") + "`" if quote else name)
    return text


# ---------------------------------------------------------------------------------------------------------
# Mappings
# ---------------------------------------------------------------------------------------------------------

_FIELDS = ("source", "source_type", "target", "target_type")


def _as_dtype(dtype: pl.DataType | type[pl.DataType]) -> pl.DataType:
    """Accept a dtype class (pl.Int64) as well as an instance, so dispatch can rely on instances."""
    return dtype() if isinstance(dtype, type) else dtype


def _parse_one(index: int, entry: object) -> FieldMapping:
    """Parse and validate a single mapping entry; errors name the index and the bad field."""
    if isinstance(entry, FieldMapping):
        prefix = f"mapping #{index} {entry!r}"
        for field in ("source", "target"):
            path = getattr(entry, field)
            # Array indexes (ints >= 0) only in a source, and only after a name.
            step_ok = (
                (lambda p: (isinstance(p, str) and bool(p)) or (type(p) is int and p >= 0))
                if field == "source"
                else (lambda p: isinstance(p, str) and bool(p))
            )
            if not (isinstance(path, tuple) and path and isinstance(path[0], str) and all(map(step_ok, path))):
                raise MappingError(f"{prefix}: {field} must be a non-empty tuple of non-empty names")
        dtypes = []
        for field in ("source_type", "target_type"):
            dtype = getattr(entry, field)
            is_class = isinstance(dtype, type) and issubclass(dtype, pl.DataType)
            if not (isinstance(dtype, pl.DataType) or is_class):
                raise MappingError(f"{prefix}: {field} must be a polars dtype, got {dtype!r}")
            dtypes.append(_as_dtype(dtype))
        return FieldMapping(entry.source, dtypes[0], entry.target, dtypes[1])

    # A str is a Sequence too: "abcd" must not pass as four one-letter fields.
    if isinstance(entry, str | bytes) or not isinstance(entry, Sequence):
        raise MappingError(
            f"mapping #{index} {entry!r}: expected a (source, source_type, target, target_type) sequence"
        )
    shown = tuple(entry)
    prefix = f"mapping #{index} {shown!r}"
    if len(shown) != 4:
        raise MappingError(f"{prefix}: expected 4 fields (source, source_type, target, target_type), got {len(shown)}")
    for field, value in zip(_FIELDS, shown, strict=True):
        if not isinstance(value, str):
            raise MappingError(f"{prefix}: {field} must be a string, got {value!r}")
    parsed: list[object] = []
    for field, value, parse in zip(
        _FIELDS, shown, (parse_path, parse_glue_type, parse_path, parse_glue_type), strict=True
    ):
        try:
            parsed.append(parse(value))
        except MappingError as err:
            raise MappingError(f"{prefix}: {err} ({field})") from None
    source, source_type, target, target_type = parsed
    if any(isinstance(step, int) for step in target):  # type: ignore[union-attr]
        raise MappingError(f"{prefix}: an array index cannot be a target (target)")
    return FieldMapping(source, source_type, target, target_type)  # type: ignore[arg-type]


def parse_mappings(mappings: Mappings) -> tuple[FieldMapping, ...]:
    """Validate all mappings up front (before any data is read) and return them parsed.

    Accepts 4-sequences of strings (lists or tuples) and already-parsed FieldMapping objects. Rejects unknown
    types, malformed paths, duplicate target paths and a target that is both a leaf and a struct prefix.
    """
    if isinstance(mappings, str | bytes | Mapping) or not isinstance(mappings, Iterable):
        raise MappingError(f"mappings must be a list of 4-sequences, got {mappings!r}")
    entries = tuple(mappings)  # may be a one-shot iterable; it is read twice below
    parsed = tuple(_parse_one(index, entry) for index, entry in enumerate(entries))
    if not parsed:
        # Selecting nothing would silently produce a frame without columns (and without rows).
        raise MappingError("no mappings given")

    leaves: dict[tuple[str, ...], int] = {}
    prefixes: dict[tuple[str, ...], int] = {}
    for index, fm in enumerate(parsed):
        target = fm.target
        prefix = f"mapping #{index} {_describe(entries[index], fm)}"
        if target in leaves:
            raise MappingError(f"{prefix}: duplicate target {_format_path(target)!r} (also mapping #{leaves[target]})")
        if target in prefixes:
            raise MappingError(
                f"{prefix}: target {_format_path(target)!r} is also a struct holding the target "
                f"of mapping #{prefixes[target]}"
            )
        for cut in range(1, len(target)):
            head = target[:cut]
            if head in leaves:
                raise MappingError(
                    f"{prefix}: target {_format_path(target)!r} needs {_format_path(head)!r} to be a struct, "
                    f"but mapping #{leaves[head]} maps a value to it"
                )
            prefixes.setdefault(head, index)
        leaves[target] = index
    return parsed


def _describe(entry: MappingLike, fm: FieldMapping) -> str:
    """The entry as the user wrote it (for error messages), or the parsed object."""
    return repr(fm) if isinstance(entry, FieldMapping) else repr(tuple(entry))


# ---------------------------------------------------------------------------------------------------------
# Resolving source paths against a schema (shared by apply, cast_error_count and source_read_schema)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    """One spelling of a source path found in a schema.

    ``columns`` is the real spelling, descending through struct fields (names) and array elements (ints).
    When a prefix of the path is not a struct or array (e.g. an object read as JSON text), ``rest`` is the
    part still to descend inside that value. ``dtype`` is the dtype at ``columns``; None when the path was
    filled in with the mapping's own spelling.
    """

    columns: tuple[str | int, ...]
    dtype: pl.DataType | None
    rest: tuple[str | int, ...] = ()


def _matching(names: Iterable[str], wanted: str, case_sensitive: bool) -> list[str]:
    """Names equal to ``wanted`` (ignoring case unless case_sensitive), in schema order."""
    if case_sensitive:
        return [name for name in names if name == wanted]
    key = wanted.casefold()
    return [name for name in names if name.casefold() == key]


def _resolve(
    fields: Mapping[str, pl.DataType],
    path: tuple[str | int, ...],
    case_sensitive: bool,
    *,
    fill_missing: bool = False,
    _prefix: tuple[str | int, ...] = (),
) -> list[_Hit]:
    """Every spelling of ``path`` in ``fields``, in schema order.

    With ``fill_missing`` a level without any match continues with the mapping's own spelling (used to
    build a read schema, where a field absent from the sample may still be in the data).
    """
    names = _matching(fields, path[0], case_sensitive)  # type: ignore[arg-type]
    if not names:
        return [_Hit(_prefix + path, None)] if fill_missing else []
    hits: list[_Hit] = []
    for name in names:
        hits.extend(_descend(fields[name], _prefix + (name,), path[1:], case_sensitive, fill_missing))
    return hits


def _descend(
    dtype: pl.DataType,
    columns: tuple[str | int, ...],
    rest: tuple[str | int, ...],
    case_sensitive: bool,
    fill_missing: bool,
) -> list[_Hit]:
    """Follow ``rest`` below a value of ``dtype`` found at ``columns``."""
    if not rest:
        return [_Hit(columns, dtype)]
    step = rest[0]
    if isinstance(step, int):
        if isinstance(dtype, pl.List | pl.Array):
            return _descend(dtype.inner, columns + (step,), rest[1:], case_sensitive, fill_missing)
    elif isinstance(dtype, pl.Struct):
        inner = {field.name: field.dtype for field in dtype.fields}
        return _resolve(inner, rest, case_sensitive, fill_missing=fill_missing, _prefix=columns)
    return [_Hit(columns, dtype, rest)]


def _json_path(names: Sequence[str | int]) -> str:
    """A JSONPath selecting nested keys and array elements, bracket-quoted so dots and spaces are safe."""
    steps = []
    for name in names:
        if isinstance(name, int):
            steps.append(f"[{name}]")
        else:
            steps.append("['" + name.replace("\\", "\\\\").replace("'", "\\'") + "']")
    return "$" + "".join(steps)


def _step(expr: pl.Expr, dtype: pl.DataType | None, step: str | int) -> pl.Expr:
    if isinstance(step, int):
        getter = expr.arr if isinstance(dtype, pl.Array) else expr.list
        return getter.get(step, null_on_oob=True)
    return expr.struct.field(step)


def _hit_expr(hit: _Hit, schema: Mapping[str, pl.DataType]) -> tuple[pl.Expr, pl.DataType] | None:
    """The expression reading a hit from a frame, or None if the path cannot exist in this schema."""
    if hit.dtype is None:  # only read schemas fill in unknown fields; a frame's schema is complete
        return None
    first = hit.columns[0]
    expr = pl.col(first)  # type: ignore[arg-type]
    dtype: pl.DataType | None = schema[first]  # type: ignore[index]
    for step in hit.columns[1:]:
        expr = _step(expr, dtype, step)
        dtype = _child_dtype(dtype, step)
    if not hit.rest:
        return expr, hit.dtype
    if isinstance(hit.dtype, pl.String):
        # The value is JSON text (an object read as String): descend with a JSON path. Keys match exactly.
        return expr.str.json_path_match(_json_path(hit.rest)), pl.String()
    return None  # a scalar (or an all-null column) has no fields


def _child_dtype(dtype: pl.DataType | None, step: str | int) -> pl.DataType | None:
    if isinstance(step, int):
        return dtype.inner if isinstance(dtype, pl.List | pl.Array) else None
    if isinstance(dtype, pl.Struct):
        return next((f.dtype for f in dtype.fields if f.name == step), None)
    return None


def _mapped_value(
    schema: Mapping[str, pl.DataType],
    fm: FieldMapping,
    case_sensitive: bool,
    plain_timestamps: PlainTimestamps = False,
) -> tuple[pl.Expr, pl.Expr | None]:
    """The target value of one mapping and an expression telling whether the source was non-null.

    Several spellings (e.g. ``ID`` and ``id``) are coalesced in schema order; a missing source gives a
    typed null and no presence expression.
    """
    hits = _resolve(schema, fm.source, case_sensitive)
    sources = [read for hit in hits if (read := _hit_expr(hit, schema))]
    if not sources:
        return pl.lit(None, fm.target_type), None
    if plain_timestamps == "text" and any(not isinstance(dtype, pl.String) for _, dtype in sources):
        plain_timestamps = True  # the text form only where every spelling is text: coalesced values agree
    casts = [_cast(expr, dtype, fm.target_type, plain_timestamps) for expr, dtype in sources]
    value = casts[0] if len(casts) == 1 else pl.coalesce(casts)
    present = pl.any_horizontal([expr.is_not_null() for expr, _ in sources])
    return value, present


def _schema_of(frame: Frame) -> pl.Schema:
    return frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema


# ---------------------------------------------------------------------------------------------------------
# Casts (Spark non-ANSI semantics; failures become null, nothing raises on data)
# ---------------------------------------------------------------------------------------------------------

_TRUE_STRINGS = ["t", "true", "y", "yes", "1"]  # Spark's StringUtils.isTrueString
_FALSE_STRINGS = ["f", "false", "n", "no", "0"]
# Spark accepts an integral string with a fraction and truncates it ("3.5" -> 3, ".5" -> 0, "." -> 0).
_INTEGRAL_RE = r"^([+-]?[0-9]+)(?:\.[0-9]*)?$"
_FRACTION_ONLY_RE = r"^[+-]?\.[0-9]*$"  # Spark reads "." as 0 too
# Spark's stringToDate: yyyy, yyyy-[m]m, yyyy-[m]m-[d]d, optionally followed by ' ' or 'T' and anything.
_DATE_RE = r"^(?P<y>[0-9]{4})(?:-(?P<m>[0-9]{1,2})(?:-(?P<d>[0-9]{1,2})(?:[T ].*)?)?)?$"
# Spark's stringToTimestamp (without time-only forms, whose date would depend on the clock):
# date[ |T]h[:m[:s[.fraction]]] with an optional zone: Z, an offset (+h, +hh, +hhmm, +hh:mm, +hh:mm:ss),
# UTC/GMT/UT with or without an offset, or a zone name (Europe/Paris, PST, CET).
_TIMESTAMP_RE = (
    r"^(?P<y>[0-9]{4})(?:-(?P<mo>[0-9]{1,2})(?:-(?P<d>[0-9]{1,2})"
    r"(?:[T ](?P<h>[0-9]{1,2})(?::(?P<mi>[0-9]{1,2})(?::(?P<s>[0-9]{1,2})(?:\.(?P<f>[0-9]{0,9}))?)?)?)?)?)?"
    r"\s*(?P<z>Z|[+-][0-9]{1,2}(?::?[0-9]{2}(?::?[0-9]{2})?)?|[A-Za-z][A-Za-z0-9/_+:-]*)?$"
)
# A zone that is an offset: Z, UTC/GMT/UT alone, or (optionally after one of those) a signed offset.
_OFFSET_ZONE_RE = (
    r"^(?:Z|UTC|GMT|UT)$"
    r"|^(?:UTC|GMT|UT)?(?P<sign>[+-])(?P<oh>[0-9]{1,2})(?::?(?P<om>[0-9]{2})(?::?(?P<os>[0-9]{2}))?)?$"
)
# Spark's (java.math.BigDecimal's) decimal text: sign, digits, fraction, exponent.
_DECIMAL_TEXT_RE = r"^(?P<sign>[+-]?)(?P<i>[0-9]*)(?:\.(?P<f>[0-9]*))?(?:[eE](?P<e>[+-]?[0-9]{1,9}))?$"
_ZEROS = "0" * 80  # sliced for zero padding (expression lengths; polars pads only to constant widths)
# polars' float text: shortest round-trip digits, plain or with an exponent ("1e+20", "1.5e-7").
_FLOAT_TEXT_RE = r"^(?P<sign>-?)(?P<i>[0-9]+)(?:\.(?P<f>[0-9]*))?(?:e(?P<e>[+-]?[0-9]+))?$"
# java.time's ZoneId.SHORT_IDS, which Spark resolves zone names with.
_SHORT_ZONE_IDS = {
    "ACT": "Australia/Darwin", "AET": "Australia/Sydney", "AGT": "America/Argentina/Buenos_Aires",
    "ART": "Africa/Cairo", "AST": "America/Anchorage", "BET": "America/Sao_Paulo", "BST": "Asia/Dhaka",
    "CAT": "Africa/Harare", "CNT": "America/St_Johns", "CST": "America/Chicago", "CTT": "Asia/Shanghai",
    "EAT": "Africa/Addis_Ababa", "ECT": "Europe/Paris", "IET": "America/Indiana/Indianapolis",
    "IST": "Asia/Kolkata", "JST": "Asia/Tokyo", "MIT": "Pacific/Apia", "NET": "Asia/Yerevan",
    "NST": "Pacific/Auckland", "PLT": "Asia/Karachi", "PNT": "America/Phoenix", "PRT": "America/Puerto_Rico",
    "PST": "America/Los_Angeles", "SST": "Pacific/Guadalcanal", "VST": "Asia/Ho_Chi_Minh",
}  # fmt: skip
_SHORT_ZONE_OFFSETS = {"EST": -5 * 3600, "MST": -7 * 3600, "HST": -10 * 3600}
# Second 60 is left to the general parser (chrono would read it as a leap second).
_PLAIN_TIMESTAMP_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-5][0-9]$"
_YEAR_ONE = datetime(1, 1, 1)
_PLAIN_TEXT_DTYPE = pl.Datetime("us")  # Glue's timestamp: the only target plain_timestamps="text" keeps as text
_MAX_OFFSET_SECONDS = 18 * 3600  # java.time.ZoneOffset's range
# Numbers read as epoch seconds are kept within years 1..9999 so every timestamp converts to Python.
_MIN_EPOCH_SECONDS = -62_135_596_800
_MAX_EPOCH_SECONDS = 253_402_300_799
_MICROS = 1_000_000


def _null(dtype: pl.DataType) -> pl.Expr:
    return pl.lit(None, dtype)


def _utc_naive(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    """A Datetime as naive UTC (Glue timestamps carry no zone)."""
    if isinstance(src, pl.Datetime) and src.time_zone is not None:
        return expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return expr


def _is_number(dtype: pl.DataType) -> bool:
    return dtype.is_integer() or dtype.is_float() or dtype.is_decimal()


def _cast(expr: pl.Expr, src: pl.DataType, dst: pl.DataType, plain_timestamps: PlainTimestamps = False) -> pl.Expr:
    """Cast ``expr`` of dtype ``src`` to ``dst``; a value that does not convert becomes null.

    ``plain_timestamps``: text becomes a timestamp only in the form ``yyyy-mm-dd hh:mm:ss`` (see
    :meth:`ApplyMapping.apply`).
    """
    if isinstance(dst, pl.Null):
        return _null(dst)
    if src == dst and isinstance(src, pl.Boolean | pl.Int64 | pl.Float64 | pl.String):
        return expr  # identity (the stage's presence columns)
    if isinstance(src, pl.Null):
        return expr.cast(dst)
    if isinstance(src, pl.Categorical | pl.Enum):
        expr, src = expr.cast(pl.String), pl.String()
    if isinstance(dst, pl.String):
        return _to_string(expr, src)
    if dst.is_integer():
        return _to_integer(expr, src, dst)
    if dst.is_float():
        return _to_float(expr, src, dst)
    if isinstance(dst, pl.Decimal):
        return _to_decimal(expr, src, dst)
    if isinstance(dst, pl.Boolean):
        return _to_boolean(expr, src)
    if isinstance(dst, pl.Date):
        return _to_date(expr, src)
    if isinstance(dst, pl.Datetime):
        return _to_timestamp(expr, src, dst, plain_timestamps)
    if isinstance(dst, pl.Binary):
        return _to_binary(expr, src)
    if isinstance(dst, pl.Struct):
        # Glue's `struct`: a struct passes through as it is (a struct type with fields only when equal).
        return expr if isinstance(src, pl.Struct) and (not dst.fields or src == dst) else _null(dst)
    if isinstance(dst, pl.List):
        # Glue's `array`: an array passes through as it is.
        if isinstance(src, pl.List | pl.Array) and (isinstance(dst.inner, pl.Null) or src.inner == dst.inner):
            return expr if isinstance(src, pl.List) else expr.cast(pl.List(src.inner))
        return _null(dst)
    return _null(dst)


def _to_string(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    if isinstance(src, pl.String):
        return expr
    if isinstance(src, pl.Struct):
        # json_encode turns a null struct into the text "null"; keep it null.
        return pl.when(expr.is_not_null()).then(expr.struct.json_encode())
    if isinstance(src, pl.List | pl.Array):
        # No generic json_encode: wrap the value in a one-field struct and strip the wrapper.
        wrapped = pl.struct(expr.alias("v")).struct.json_encode()
        return pl.when(expr.is_not_null()).then(wrapped.str.strip_prefix('{"v":').str.strip_suffix("}"))
    if isinstance(src, pl.Binary):
        # Bytes need not be UTF-8 (polars raises on invalid UTF-8 even non-strictly); base64 is how Spark
        # writes binary into JSON and never fails.
        return expr.bin.encode("base64")
    if isinstance(src, pl.Datetime):
        # Spark's layout; chrono's %.f drops a zero fraction and otherwise prints 3, 6 or 9 digits, of
        # which Spark keeps only the significant ones ("56.5", not "56.500").
        text = _utc_naive(expr, src).dt.to_string("%Y-%m-%d %H:%M:%S%.f")
        return text.str.replace(r"(\.[0-9]*?)0+$", "${1}").str.strip_suffix(".")
    if isinstance(src, pl.Duration):
        return expr.dt.to_string("iso")  # polars cannot cast a duration to String
    if src.is_float():
        return _java_float_text(expr, src)
    if _is_number(src) or isinstance(src, pl.Boolean | pl.Date | pl.Time):
        return expr.cast(pl.String, strict=False)
    return _null(pl.String())


def _java_float_text(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    """A float as Java's Double/Float.toString writes it (Spark's cast to string).

    Plain with at least one fraction digit for 1e-3 <= |x| < 1e7 ("0.001", "1.0", "123456.5"), otherwise
    one digit, a fraction and an exponent ("1.0E7", "1.0E-4", "1.23456789E8"); "Infinity", "NaN". The
    digits are polars' shortest round-trip digits (Float32 ones for a float). ``struct.with_fields``
    evaluates each step once.
    """
    f = pl.field
    text = expr.cast(pl.String)
    steps = text.str.extract_groups(_FLOAT_TEXT_RE).struct.with_fields(__text=text)
    steps = steps.struct.with_fields(
        __digits=pl.concat_str(f("i"), f("f").fill_null("")), __exp=f("e").cast(pl.Int64).fill_null(0)
    )
    steps = steps.struct.with_fields(__sig=f("__digits").str.strip_chars_start("0").str.strip_chars_end("0"))
    steps = steps.struct.with_fields(
        # decimal exponent of the first significant digit
        __x=f("i").str.len_chars().cast(pl.Int64)
        - 1
        - (f("__digits").str.len_chars() - f("__digits").str.strip_chars_start("0").str.len_chars()).cast(pl.Int64)
        + f("__exp"),
    )
    sig, x = f("__sig"), f("__x")
    whole = (sig + pl.lit(_ZEROS)).str.slice(0, x + 1)
    plain_big = pl.concat_str(whole, pl.lit("."), sig.str.slice(x + 1).replace("", "0"))
    plain_small = pl.concat_str(pl.lit("0."), pl.lit(_ZEROS).str.slice(0, -x - 1), sig)
    scientific = pl.concat_str(
        sig.str.slice(0, 1), pl.lit("."), sig.str.slice(1).replace("", "0"), pl.lit("E"), x.cast(pl.String)
    )
    body = (
        pl.when(sig == "")
        .then(pl.lit("0.0"))
        .when((x >= 0) & (x < 7))
        .then(plain_big)
        .when((x >= -3) & (x < 0))
        .then(plain_small)
        .otherwise(scientific)
    )
    steps = steps.struct.with_fields(
        __result=pl.when(f("sign").is_not_null())
        .then(pl.concat_str(f("sign"), body))
        .when(f("__text") == "inf")
        .then(pl.lit("Infinity"))
        .when(f("__text") == "-inf")
        .then(pl.lit("-Infinity"))
        .otherwise(f("__text"))  # NaN
    )
    return steps.struct.field("__result")


def _parse_integral(text: pl.Expr) -> pl.Expr:
    """Spark's UTF8String.toLong: trimmed, optional sign, fraction truncated; anything else null.

    Plain integers (optional sign, digits: nearly every value) take polars' own cast; the regexes only see
    what that cast leaves null, as kernels skip nulls. ``struct.with_fields`` evaluates each step once.
    """
    f = pl.field
    steps = pl.struct(text.alias("text"))
    steps = steps.struct.with_fields(plain=f("text").cast(pl.Int64, strict=False))
    steps = steps.struct.with_fields(rest=pl.when(f("plain").is_null()).then(f("text").str.strip_chars()))
    whole = f("rest").str.extract(_INTEGRAL_RE, 1).cast(pl.Int64, strict=False)  # beyond Int64 -> null
    general = pl.when(f("rest").str.contains(_FRACTION_ONLY_RE)).then(pl.lit(0, pl.Int64)).otherwise(whole)
    return steps.struct.with_fields(result=pl.coalesce(f("plain"), general)).struct.field("result")


def _to_integer(expr: pl.Expr, src: pl.DataType, dst: pl.DataType) -> pl.Expr:
    # Out-of-range values become null (strict=False), where Spark would wrap numeric overflow silently.
    if isinstance(src, pl.String):
        return _parse_integral(expr).cast(dst, strict=False)
    if _is_number(src) or isinstance(src, pl.Boolean):
        return expr.cast(dst, strict=False)  # floats and decimals truncate toward zero like Spark
    if isinstance(src, pl.Datetime):
        return _utc_naive(expr, src).dt.epoch("s").cast(dst, strict=False)  # floored epoch seconds
    return _null(dst)  # dates, binary, nested: Spark yields null too


def _epoch_seconds_float(expr: pl.Expr, src: pl.Datetime) -> pl.Expr:
    return _utc_naive(expr, src).dt.epoch("us") / _MICROS


def _to_float(expr: pl.Expr, src: pl.DataType, dst: pl.DataType) -> pl.Expr:
    if isinstance(src, pl.String):
        # polars also reads "inf", "-Infinity" and "NaN" like Spark does.
        return expr.str.strip_chars().cast(dst, strict=False)
    if _is_number(src) or isinstance(src, pl.Boolean):
        return expr.cast(dst, strict=False)
    if isinstance(src, pl.Datetime):
        return _epoch_seconds_float(expr, src).cast(dst)
    return _null(dst)


def _parse_decimal(text: pl.Expr, dst: pl.Decimal) -> pl.Expr:
    """Parse text as decimal(p, s) like Spark (java.math.BigDecimal, then HALF_UP); null when it does not fit.

    The digits are shifted by the exponent as text, truncated to one guard digit past the scale (so
    nothing is rounded twice), parsed exactly and rounded half away from zero by adding one unit of the
    last place. Works for every precision up to 38, exponents included.
    """
    f = pl.field
    p, s = dst.precision, dst.scale
    steps = text.str.strip_chars().str.extract_groups(_DECIMAL_TEXT_RE)
    steps = steps.struct.with_fields(
        __digits=pl.concat_str(f("i").fill_null(""), f("f").fill_null("")),
        __exp=f("e").cast(pl.Int64).fill_null(0),
    )
    steps = steps.struct.with_fields(__sig=f("__digits").str.strip_chars_start("0"))
    steps = steps.struct.with_fields(
        __valid=f("sign").is_not_null() & (f("__digits") != ""),
        # digits of the significant part before the decimal point (negative: zeros after the point)
        __point=f("i").fill_null("").str.len_chars().cast(pl.Int64)
        + f("__exp")
        - (f("__digits").str.len_chars() - f("__sig").str.len_chars()).cast(pl.Int64),
    )
    sig, point = f("__sig"), f("__point")
    whole = pl.when(point > 0).then((sig + pl.lit(_ZEROS)).str.slice(0, point.clip(0, 40))).otherwise(pl.lit("0"))
    fraction = (
        pl.when(point >= 0)
        .then(sig.str.slice(point.clip(0, None)))
        .otherwise(pl.lit(_ZEROS).str.slice(0, (-point).clip(0, s + 2)) + sig)
    )
    guarded = (fraction + pl.lit(_ZEROS)).str.slice(0, s + 1)
    kept = guarded.str.slice(0, s)
    truncated_text = pl.concat_str(f("sign"), whole, pl.lit("."), kept) if s else pl.concat_str(f("sign"), whole)
    steps = steps.struct.with_fields(
        __fits=(sig == "") | (point <= p - s),
        __up=guarded.str.slice(s, 1) >= "5",
        __negative=f("sign") == "-",
        __nines=pl.concat_str(whole, kept).str.contains(f"^9{{{_MAX_DECIMAL_PRECISION}}}$"),
        __truncated=truncated_text,
    )
    wide = pl.Decimal(_MAX_DECIMAL_PRECISION, s)
    unit = pl.lit(Decimal(1).scaleb(-s), wide)
    # Only values that fit (and whose carry cannot overflow 38 digits) are parsed; the rest stay null.
    truncated = pl.when(f("__valid") & f("__fits") & ~(f("__up") & f("__nines"))).then(f("__truncated"))
    truncated = truncated.cast(wide, strict=False)
    rounded = (
        pl.when(~f("__up")).then(truncated).when(f("__negative")).then(truncated - unit).otherwise(truncated + unit)
    )
    return steps.struct.with_fields(__result=rounded.cast(dst, strict=False)).struct.field("__result")


def _to_decimal(expr: pl.Expr, src: pl.DataType, dst: pl.Decimal) -> pl.Expr:
    if isinstance(src, pl.String):
        return _parse_decimal(expr, dst)
    if isinstance(src, pl.Decimal) and src.scale > dst.scale:
        if src.precision < _MAX_DECIMAL_PRECISION:
            # Spark rounds HALF_UP; round() widens the precision by one digit for the carry (0.999 -> 1.00).
            return expr.round(dst.scale, mode="half_away_from_zero").cast(dst, strict=False)
        return _parse_decimal(expr.cast(pl.String), dst)  # no room for the carry: round the text
    if src.is_float():
        return _float_to_decimal(expr, dst)
    if _is_number(src):
        return expr.cast(dst, strict=False)
    if isinstance(src, pl.Boolean):
        return expr.cast(pl.Int8).cast(dst, strict=False)  # polars has no Boolean -> Decimal cast
    if isinstance(src, pl.Datetime):
        return _float_to_decimal(_epoch_seconds_float(expr, src), dst)
    return _null(dst)


def _float_to_decimal(expr: pl.Expr, dst: pl.Decimal) -> pl.Expr:
    """Float -> decimal like Spark: the double's shortest decimal text (Java's Double.toString digits),
    rounded HALF_UP (1.005 -> 1.01, not the binary value's 1.00); infinities and NaN give null."""
    return _parse_decimal(expr.cast(pl.Float64).cast(pl.String), dst)


def _to_boolean(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    if isinstance(src, pl.Boolean):
        return expr
    if isinstance(src, pl.String):
        word = expr.str.strip_chars().str.to_lowercase()
        return (
            pl.when(word.is_in(_TRUE_STRINGS))
            .then(pl.lit(True))
            .when(word.is_in(_FALSE_STRINGS))
            .then(pl.lit(False))
            .otherwise(_null(pl.Boolean()))
        )
    if _is_number(src):
        return expr.cast(pl.Boolean, strict=False)  # non-zero is true
    if isinstance(src, pl.Datetime):
        return _utc_naive(expr, src).dt.epoch("us") != 0
    return _null(pl.Boolean())


def _to_date(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    if isinstance(src, pl.Date):
        return expr
    if isinstance(src, pl.Datetime):
        return _utc_naive(expr, src).dt.date()
    if isinstance(src, pl.String):
        parts = expr.str.strip_chars().str.extract_groups(_DATE_RE)
        text = pl.concat_str(
            parts.struct.field("y"),
            pl.lit("-"),
            parts.struct.field("m").fill_null("1"),
            pl.lit("-"),
            parts.struct.field("d").fill_null("1"),
        )
        # Impossible dates (02-30) -> null. No cache: it only pays off for repeated values.
        date = text.str.to_date("%Y-%m-%d", strict=False, cache=False)
        return pl.when(parts.struct.field("y") != "0000").then(date)  # years 1..9999, like timestamps
    return _null(pl.Date())


def _parse_timestamp(text: pl.Expr, dst: pl.Datetime) -> pl.Expr:
    """Parse Spark's timestamp forms; a zone offset is applied so the result is naive UTC.

    The regex runs once per value: later steps read its groups through ``struct.with_fields`` (reading
    ``parts.struct.field(...)`` repeatedly would evaluate the regex once per use; polars does not
    deduplicate it). Zone names (``Europe/Paris``, ``PST``) take a slow path, per batch and distinct name.
    """
    f = pl.field
    parts = text.str.strip_chars().str.extract_groups(_TIMESTAMP_RE)
    local = pl.concat_str(
        f("y"),
        pl.lit("-"),
        f("mo").fill_null("1"),
        pl.lit("-"),
        f("d").fill_null("1"),
        pl.lit(" "),
        f("h").fill_null("0"),
        pl.lit(":"),
        f("mi").fill_null("0"),
        pl.lit(":"),
        f("s").fill_null("0"),
        pl.lit("."),
        f("f").replace("", "0").fill_null("0"),
    ).str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False, cache=False)  # bad fields -> null
    step = parts.struct.with_fields(
        # chrono reads second 60 as a leap second (rolling into the next minute); Spark rejects it.
        __local=pl.when(f("s").cast(pl.Int64, strict=False).fill_null(0) < 60).then(local),
        __offset=f("z").str.extract_groups(_OFFSET_ZONE_RE),
    )
    o = f("__offset")
    step = step.struct.with_fields(
        __is_offset=f("z").is_null() | f("z").str.contains(_OFFSET_ZONE_RE),
        __seconds=(
            pl.when(o.struct.field("sign") == "-").then(pl.lit(-1)).otherwise(pl.lit(1))
            * (
                o.struct.field("oh").cast(pl.Int64) * 3600
                + o.struct.field("om").cast(pl.Int64).fill_null(0) * 60
                + o.struct.field("os").cast(pl.Int64).fill_null(0)
            )
        ).fill_null(0),  # no zone, Z, UTC: UTC
        __valid_offset=(o.struct.field("om").cast(pl.Int64).fill_null(0) < 60)
        & (o.struct.field("os").cast(pl.Int64).fill_null(0) < 60),
    )
    by_offset = pl.when(f("__is_offset") & f("__valid_offset") & (f("__seconds").abs() <= _MAX_OFFSET_SECONDS)).then(
        f("__local") - pl.duration(seconds=f("__seconds"))
    )
    # Zone names are rare: only values with one reach the per-name conversion.
    named = pl.when(~f("__is_offset") & f("__local").is_not_null()).then(
        pl.struct(f("__local").alias("local"), f("z").alias("zone"))
    )
    by_name = named.map_batches(_apply_zone_names, return_dtype=pl.Datetime("us"), is_elementwise=True)
    step = step.struct.with_fields(__utc=pl.coalesce(by_offset, by_name))
    # An offset can push 9999-12-31 past year 9999, which Python (and Spark) cannot represent.
    step = step.struct.with_fields(__result=pl.when(f("__utc").dt.year().is_between(1, 9999)).then(f("__utc")))
    return step.struct.field("__result").cast(dst)


def _zone_name(name: str) -> str | int | None:
    """A zone name as Spark resolves it: an IANA name for polars, a fixed offset in seconds, or None."""
    if name in _SHORT_ZONE_OFFSETS:
        return _SHORT_ZONE_OFFSETS[name]
    name = _SHORT_ZONE_IDS.get(name, name)
    return name if name in _available_zones() else None


_ZONES: set[str] = set()


def _available_zones() -> set[str]:
    if not _ZONES:
        import zoneinfo

        _ZONES.update(zoneinfo.available_timezones())
    return _ZONES


def _apply_zone_names(batch: pl.Series) -> pl.Series:
    """Local times with a zone name -> naive UTC, one vectorised conversion per distinct name in the batch.

    A local time in a daylight-saving overlap takes the earlier offset (as java.time does); one in a gap
    gives null (java.time would move it forward).
    """
    result = pl.Series(batch.name, [None] * len(batch), dtype=pl.Datetime("us"))
    if batch.null_count() == len(batch):
        return result
    # Only rows whose struct is present: a masked-out row may still hold field values underneath.
    frame = batch.struct.unnest().with_row_index("__row").filter(batch.is_not_null())
    for name in frame["zone"].drop_nulls().unique().to_list():
        zone = _zone_name(name)
        rows = frame.filter(pl.col("zone") == name)
        if zone is None:
            continue
        if isinstance(zone, int):
            utc = rows["local"] - dt.timedelta(seconds=zone)
        else:
            utc = (
                rows["local"]
                .dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
                .dt.convert_time_zone("UTC")
                .dt.replace_time_zone(None)
            )
        result = result.scatter(rows["__row"], utc)
    return result


def _epoch_to_timestamp(seconds: pl.Expr, dst: pl.Datetime, *, integral: bool) -> pl.Expr:
    """Epoch seconds as a timestamp; null outside years 1..9999 (and so never an overflow)."""
    in_range = seconds.is_between(_MIN_EPOCH_SECONDS, _MAX_EPOCH_SECONDS)
    if integral:
        micros = seconds.cast(pl.Int64) * _MICROS  # exact: the range check rules out overflow
    else:
        # Truncate to microseconds toward zero like Spark's (d * 1e6).toLong.
        micros = (seconds * _MICROS).cast(pl.Int64, strict=False)
    return pl.when(in_range).then(micros).cast(pl.Datetime("us")).cast(dst)


def _to_timestamp(expr: pl.Expr, src: pl.DataType, dst: pl.Datetime, plain_only: PlainTimestamps = False) -> pl.Expr:
    if isinstance(src, pl.Datetime):
        return _utc_naive(expr, src).cast(dst)
    if isinstance(src, pl.Date):
        return expr.cast(dst)  # midnight
    if isinstance(src, pl.String):
        # Fast path for the common "yyyy-mm-dd hh:mm:ss" form; the general parser (regexes) then only sees
        # the other values, as kernels skip nulls. struct.with_fields evaluates each step once (polars
        # does not deduplicate repeated subexpressions).
        f = pl.field
        steps = pl.struct(expr.alias("text"))
        # The plain form has no surrounding blanks, so it needs no strip; it has a 4-digit year, so only
        # year 0 is out of range, which a comparison of the physical value finds (cheaper than dt.year()).
        # No parse cache: it only pays off for repeated values, and event times rarely repeat.
        steps = steps.struct.with_fields(
            plain=pl.when(f("text").str.contains(_PLAIN_TIMESTAMP_RE)).then(
                f("text").str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", strict=False, cache=False)
            )
        )
        steps = steps.struct.with_fields(plain=pl.when(f("plain") >= _YEAR_ONE).then(f("plain")))
        if plain_only == "text" and dst == _PLAIN_TEXT_DTYPE:
            # A parsed plain text is the JSON text of its timestamp (polars writes a microsecond timestamp
            # with no fraction as yyyy-mm-dd hh:mm:ss): keep it, rather than format the value again.
            return steps.struct.with_fields(out=pl.when(f("plain").is_not_null()).then(f("text"))).struct.field("out")
        if plain_only:
            return steps.struct.field("plain").cast(dst)
        steps = steps.struct.with_fields(rest=pl.when(f("plain").is_null()).then(f("text").str.strip_chars()))
        # Text that is a number ("1700000000") is no timestamp, as in Spark (a JSON number is read as one
        # and casts from its number type).
        steps = steps.struct.with_fields(result=pl.coalesce(f("plain").cast(dst), _parse_timestamp(f("rest"), dst)))
        return steps.struct.field("result")
    if isinstance(src, pl.Boolean):
        return expr.cast(pl.Int64).cast(pl.Datetime("us")).cast(dst)  # Spark: true is 1 microsecond
    if src.is_integer():
        return _epoch_to_timestamp(expr.cast(pl.Int64, strict=False), dst, integral=True)
    if src.is_float() or src.is_decimal():
        return _epoch_to_timestamp(expr.cast(pl.Float64, strict=False), dst, integral=False)
    return _null(dst)


def _to_binary(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    if isinstance(src, pl.Binary):
        return expr
    # Spark casts a string to its UTF-8 bytes; other values go through their text form.
    return _to_string(expr, src).cast(pl.Binary)


# ---------------------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------------------


def source_read_schema(
    mappings: Mappings,
    observed: pl.Schema | None = None,
    case_sensitive: bool = False,
    *,
    typed: bool | Collection[int] = True,
) -> pl.Schema:
    """The schema for ``pl.scan_ndjson(schema=...)`` that materializes only the mapped source fields.

    JSON types matter to a cast (``true`` -> int is 1, the text ``"true"`` -> int is null; ``1.0`` -> string
    is ``"1.0"``), so a mapped leaf that ``observed`` (a schema inferred from the data) shows as a boolean,
    an integer or a float is read as Boolean, Int64 or Float64, and a struct or array mapped whole is
    read with its observed type: the stage then maps exactly what ``ApplyMapping.apply`` maps on a frame
    polars read from the same data. Everything else (strings, mixed types, fields not observed) is read
    as String, which polars fills with any JSON value's text, so it cannot fail; ``typed=False`` reads
    every leaf so (the fallback for data whose types differ from the observed ones), and a collection
    of mapping indexes reads only those mappings' sources with their types.

    Nested sources become structs with shared prefixes merged. With ``observed``, every spelling matching
    a mapped path (case-insensitively unless ``case_sensitive``) is read, fields follow the observed order,
    and a prefix that is observed as a non-struct is read as String (apply then descends into its JSON
    text). A path through an array element (``items[0].sku``) reads the whole array.
    """
    parsed = parse_mappings(mappings)
    tree: dict[str, object] = {}
    for index, fm in enumerate(parsed):
        with_types = typed if isinstance(typed, bool) else index in typed
        if observed is None:
            hits = [_Hit(fm.source, None)]
        else:
            hits = _resolve(observed, fm.source, case_sensitive, fill_missing=True)
        for hit in hits:
            cut = next((k for k, step in enumerate(hit.columns) if isinstance(step, int)), len(hit.columns))
            names: tuple[str, ...] = hit.columns[:cut]  # type: ignore[assignment]
            if cut < len(hit.columns):
                dtype = _dtype_at(observed, names)  # the array holding the element
            else:
                dtype = None if hit.rest else hit.dtype  # descending into JSON text needs the text
            _insert_leaf(tree, names, _read_dtype(dtype) if with_types else pl.String())
    return pl.Schema(_tree_fields(tree, observed))


def _dtype_at(observed: Mapping[str, pl.DataType] | None, names: Sequence[str]) -> pl.DataType | None:
    dtype: pl.DataType | None = (observed or {}).get(names[0])
    for name in names[1:]:
        dtype = _child_dtype(dtype, name)
    return dtype


def _read_dtype(observed: pl.DataType | None) -> pl.DataType:
    """How to read a mapped leaf observed as ``observed``: its JSON type where polars keeps it, else text."""
    if isinstance(observed, pl.Boolean | pl.Float64 | pl.Int64):
        return observed
    if isinstance(observed, pl.Float32):
        return pl.Float64()
    if isinstance(observed, pl.Int8 | pl.Int16 | pl.Int32 | pl.UInt8 | pl.UInt16 | pl.UInt32):
        return pl.Int64()
    if isinstance(observed, pl.Struct | pl.List | pl.Array) and not _has_null_leaf(observed):
        return observed
    return pl.String()  # strings, mixed types, integers beyond 64 bits, unknown


def _has_null_leaf(dtype: pl.DataType) -> bool:
    """A Null inside (an empty array, an all-null field): reading it typed would fail on a later value."""
    if isinstance(dtype, pl.Null):
        return True
    if isinstance(dtype, pl.Struct):
        return not dtype.fields or any(_has_null_leaf(field.dtype) for field in dtype.fields)
    if isinstance(dtype, pl.List | pl.Array):
        return _has_null_leaf(dtype.inner)
    return False


def _insert_leaf(tree: dict[str, object], columns: tuple[str, ...], dtype: pl.DataType) -> None:
    """Add a leaf read whole as ``dtype``; a field needed both whole and nested is read whole (a nested
    read descends into the whole struct, or uses JSON paths on text)."""
    node = tree
    for name in columns[:-1]:
        child = node.get(name)
        if isinstance(child, pl.DataType):
            return
        if child is None:
            child = node[name] = {}
        node = child  # type: ignore[assignment]
    if not isinstance(node.get(columns[-1]), pl.DataType):
        node[columns[-1]] = dtype


def _tree_fields(tree: dict[str, object], observed: Mapping[str, pl.DataType] | None) -> dict[str, pl.DataType]:
    """Turn the read tree into dtypes, ordering fields as observed (so coalescing follows the data)."""
    order = {name: position for position, name in enumerate(observed or {})}
    names = sorted(tree, key=lambda name: order.get(name, len(order)))  # stable: unknowns keep their order
    fields: dict[str, pl.DataType] = {}
    for name in names:
        child = tree[name]
        if isinstance(child, pl.DataType):
            fields[name] = child
        else:
            seen = (observed or {}).get(name)
            inner = {f.name: f.dtype for f in seen.fields} if isinstance(seen, pl.Struct) else None
            fields[name] = pl.Struct(_tree_fields(child, inner))  # type: ignore[arg-type]
    return fields


def presence_mapping(fm: FieldMapping, read_schema: Mapping[str, pl.DataType], target: str) -> FieldMapping:
    """A mapping of ``fm``'s source to ``target`` that is null exactly where the source is null, at no cost.

    The stage counts cast errors as present sources minus present targets; this carries the source along
    with an identity cast (its own read type) instead of a conversion to text.
    """
    dtypes = {hit.dtype for hit in _resolve(read_schema, fm.source, False) if hit.dtype is not None and not hit.rest}
    dtype = dtypes.pop() if len(dtypes) == 1 else pl.String()
    if isinstance(dtype, pl.Struct):
        dtype = _SIMPLE_TYPES["struct"]
    elif isinstance(dtype, pl.List | pl.Array):
        dtype = _SIMPLE_TYPES["array"]
    elif not isinstance(dtype, pl.Boolean | pl.Int64 | pl.Float64):
        dtype = pl.String()
    return FieldMapping(fm.source, dtype, (target,), dtype)


class ApplyMapping:
    """Glue's ApplyMapping transform on polars frames."""

    @staticmethod
    def apply(
        frame: Frame,
        mappings: Mappings,
        case_sensitive: bool = False,
        *,
        plain_timestamps: PlainTimestamps = False,
    ) -> pl.LazyFrame:
        """Keep only mapped fields, renamed, nested and cast as the mappings say (see module docstring).

        ``plain_timestamps`` is a speculative fast form: text becomes a timestamp only when it reads
        ``yyyy-mm-dd hh:mm:ss`` (by far the most common form), and any other text becomes null. Where
        no present source became null, the result equals the full mapping's; a caller that finds a
        null (a cast error) maps again without it. ``plain_timestamps="text"`` is the same form for a
        writer of JSON: a ``timestamp`` target (naive, microseconds) holds the source text where it parsed,
        a String that JSON output writes exactly as the timestamp (no value to format again).
        """
        parsed = parse_mappings(mappings)
        lazy = frame.lazy()
        schema = _schema_of(frame)
        values = [_mapped_value(schema, fm, case_sensitive, plain_timestamps)[0] for fm in parsed]

        # Group targets into a tree; dict order puts a struct where its first mapping is.
        tree: dict[str, object] = {}
        for index, fm in enumerate(parsed):
            node = tree
            for name in fm.target[:-1]:
                node = node.setdefault(name, {})  # type: ignore[assignment]
            node[fm.target[-1]] = index

        def build(node: dict[str, object]) -> list[pl.Expr]:
            return [
                values[child].alias(name) if isinstance(child, int) else pl.struct(build(child)).alias(name)  # type: ignore[arg-type]
                for name, child in node.items()
            ]

        columns = build(tree)
        # with_columns broadcasts literals (missing sources) to the frame's height, where a select made only
        # of literals would return a single row; temporary names avoid clashing with the input columns.
        temporary = [f"__glueflow_mapping_{i}" for i in range(len(columns))]
        return lazy.with_columns([expr.alias(tmp) for expr, tmp in zip(columns, temporary, strict=True)]).select(
            [pl.col(tmp).alias(name) for tmp, name in zip(temporary, tree, strict=True)]
        )


def cast_error_count(frame: Frame, mappings: Mappings, case_sensitive: bool = False) -> pl.Expr:
    """Per row of the original frame: how many mapped values were non-null but became null (UInt32).

    Mappings to the ``null`` type drop their value on purpose and are not counted.
    """
    parsed = parse_mappings(mappings)
    schema = _schema_of(frame)
    failures: list[pl.Expr] = []
    for fm in parsed:
        if isinstance(fm.target_type, pl.Null):
            continue
        value, present = _mapped_value(schema, fm, case_sensitive)
        if present is not None:
            failures.append((present & value.is_null()).cast(pl.UInt32))
    if not failures:
        return pl.repeat(pl.lit(0, pl.UInt32), pl.len()).alias("cast_errors")
    return pl.sum_horizontal(failures).cast(pl.UInt32).alias("cast_errors")

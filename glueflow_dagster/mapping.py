"""Glue's ApplyMapping for polars.

A mapping is ``(source_path, source_type, target_path, target_type)``. Only mapped fields survive, dotted
paths read and build nested structs, source names match case-insensitively by default, a missing source
gives a typed null column and a value that cannot be cast becomes null (Glue never raises on data). Casts
follow Spark's non-ANSI rules, which is what Glue runs on, expressed as pure lazy polars expressions so
the result runs on the streaming engine.

This module deliberately imports nothing from dagster: it is plain data logic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import polars as pl

__all__ = [
    "ApplyMapping",
    "FieldMapping",
    "MappingError",
    "cast_error_count",
    "parse_glue_type",
    "parse_mappings",
    "parse_path",
    "source_read_schema",
]


class MappingError(ValueError):
    """A malformed mapping; the message names the mapping index and the bad field."""


@dataclass(frozen=True)
class FieldMapping:
    """One parsed mapping: source path and declared type, target path and target type."""

    source: tuple[str, ...]
    source_type: pl.DataType
    target: tuple[str, ...]
    target_type: pl.DataType


Frame: TypeAlias = pl.LazyFrame | pl.DataFrame
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


def parse_path(path: str) -> tuple[str, ...]:
    """Split a dotted path; backtick-quoted parts may contain dots (a doubled backtick is a literal one)."""
    if not isinstance(path, str):
        raise MappingError(f"path must be a string, got {path!r}")
    if not path:
        raise MappingError("empty path")
    parts: list[str] = []
    i, n = 0, len(path)
    while True:
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
            if i < n and path[i] != ".":
                raise MappingError(f"unexpected {path[i]!r} after closing backtick in path {path!r}")
        else:
            dot = path.find(".", i)
            end = n if dot < 0 else dot
            part = path[i:end]
            if "`" in part:
                raise MappingError(f"unbalanced backtick in path {path!r}")
            i = end
        if not part:
            raise MappingError(f"empty name in path {path!r}")
        parts.append(part)
        if i >= n:
            return tuple(parts)
        i += 1  # skip the dot
        if i >= n:
            raise MappingError(f"empty name in path {path!r}")


def _format_path(path: Sequence[str]) -> str:
    """Render a path the way a user writes it (quoting names that contain dots or backticks)."""
    return ".".join("`" + name.replace("`", "``") + "`" if "." in name or "`" in name else name for name in path)


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
            if not (isinstance(path, tuple) and path and all(isinstance(p, str) and p for p in path)):
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

    ``columns`` is the real spelling, descending through struct fields. When a prefix of the path is not a
    struct (e.g. an object read as JSON text), ``rest`` is the part still to descend inside that value.
    ``dtype`` is the dtype at ``columns``; None when the path was filled in with the mapping's own spelling.
    """

    columns: tuple[str, ...]
    dtype: pl.DataType | None
    rest: tuple[str, ...] = ()


def _matching(names: Iterable[str], wanted: str, case_sensitive: bool) -> list[str]:
    """Names equal to ``wanted`` (ignoring case unless case_sensitive), in schema order."""
    if case_sensitive:
        return [name for name in names if name == wanted]
    key = wanted.casefold()
    return [name for name in names if name.casefold() == key]


def _resolve(
    fields: Mapping[str, pl.DataType],
    path: tuple[str, ...],
    case_sensitive: bool,
    *,
    fill_missing: bool = False,
    _prefix: tuple[str, ...] = (),
) -> list[_Hit]:
    """Every spelling of ``path`` in ``fields``, in schema order.

    With ``fill_missing`` a level without any match continues with the mapping's own spelling (used to
    build a read schema, where a field absent from the sample may still be in the data).
    """
    names = _matching(fields, path[0], case_sensitive)
    if not names:
        return [_Hit(_prefix + path, None)] if fill_missing else []
    hits: list[_Hit] = []
    for name in names:
        dtype = fields[name]
        columns = _prefix + (name,)
        if len(path) == 1:
            hits.append(_Hit(columns, dtype))
        elif isinstance(dtype, pl.Struct):
            inner = {field.name: field.dtype for field in dtype.fields}
            hits.extend(_resolve(inner, path[1:], case_sensitive, fill_missing=fill_missing, _prefix=columns))
        else:
            hits.append(_Hit(columns, dtype, path[1:]))
    return hits


def _json_path(names: Sequence[str]) -> str:
    """A JSONPath selecting nested keys, bracket-quoted so dots and spaces in names are safe."""
    quoted = (name.replace("\\", "\\\\").replace("'", "\\'") for name in names)
    return "$" + "".join(f"['{name}']" for name in quoted)


def _hit_expr(hit: _Hit) -> tuple[pl.Expr, pl.DataType] | None:
    """The expression reading a hit from a frame, or None if the path cannot exist in this schema."""
    if hit.dtype is None:  # only read schemas fill in unknown fields; a frame's schema is complete
        return None
    expr = pl.col(hit.columns[0])
    for name in hit.columns[1:]:
        expr = expr.struct.field(name)
    if not hit.rest:
        return expr, hit.dtype
    if isinstance(hit.dtype, pl.String):
        # The value is JSON text (an object read as String): descend with a JSON path. Keys match exactly.
        return expr.str.json_path_match(_json_path(hit.rest)), pl.String()
    return None  # a scalar (or an all-null column) has no fields


def _mapped_value(
    schema: Mapping[str, pl.DataType], fm: FieldMapping, case_sensitive: bool, plain_timestamps: bool = False
) -> tuple[pl.Expr, pl.Expr | None]:
    """The target value of one mapping and an expression telling whether the source was non-null.

    Several spellings (e.g. ``ID`` and ``id``) are coalesced in schema order; a missing source gives a
    typed null and no presence expression.
    """
    sources = [read for hit in _resolve(schema, fm.source, case_sensitive) if (read := _hit_expr(hit))]
    if not sources:
        return pl.lit(None, fm.target_type), None
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
# Spark accepts an integral string with a fraction and truncates it ("3.5" -> 3, ".5" -> 0).
_INTEGRAL_RE = r"^([+-]?[0-9]+)(?:\.[0-9]*)?$"
_FRACTION_ONLY_RE = r"^[+-]?\.[0-9]+$"
_PLAIN_DECIMAL_RE = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)$"
# Spark's stringToDate: yyyy, yyyy-[m]m, yyyy-[m]m-[d]d, optionally followed by ' ' or 'T' and anything.
_DATE_RE = r"^(?P<y>[0-9]{4})(?:-(?P<m>[0-9]{1,2})(?:-(?P<d>[0-9]{1,2})(?:[T ].*)?)?)?$"
# Spark's stringToTimestamp (without time-only forms, whose date would depend on the clock):
# date[ |T]h:m[:s[.fraction]] with an optional zone (Z, UTC, +hh, +hhmm, +hh:mm).
_TIMESTAMP_RE = (
    r"^(?P<y>[0-9]{4})(?:-(?P<mo>[0-9]{1,2})(?:-(?P<d>[0-9]{1,2})"
    r"(?:[T ](?P<h>[0-9]{1,2}):(?P<mi>[0-9]{1,2})(?::(?P<s>[0-9]{1,2})(?:\.(?P<f>[0-9]{1,9}))?)?)?)?)?"
    r"\s*(?P<z>Z|UTC|[+-][0-9]{1,2}(?::?[0-9]{2})?)?$"
)
_PLAIN_TIMESTAMP_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
_YEAR_ONE = datetime(1, 1, 1)
_MAX_OFFSET_HOURS = 18  # java.time.ZoneOffset's range
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


def _cast(expr: pl.Expr, src: pl.DataType, dst: pl.DataType, plain_timestamps: bool = False) -> pl.Expr:
    """Cast ``expr`` of dtype ``src`` to ``dst``; a value that does not convert becomes null.

    ``plain_timestamps``: text becomes a timestamp only in the form ``yyyy-mm-dd hh:mm:ss`` (see
    :meth:`ApplyMapping.apply`).
    """
    if isinstance(dst, pl.Null):
        return _null(dst)
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
        # Spark's layout; chrono's %.f drops a zero fraction and otherwise prints 3, 6 or 9 digits.
        return _utc_naive(expr, src).dt.to_string("%Y-%m-%d %H:%M:%S%.f")
    if isinstance(src, pl.Duration):
        return expr.dt.to_string("iso")  # polars cannot cast a duration to String
    if _is_number(src) or isinstance(src, pl.Boolean | pl.Date | pl.Time):
        return expr.cast(pl.String, strict=False)
    return _null(pl.String())


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
    """Parse text as decimal(p, s), rounding HALF_UP like Spark; null when it does not fit."""
    trimmed = text.str.strip_chars()
    scale = dst.scale
    direct = trimmed.cast(dst, strict=False)  # also handles exponents ("1e3"), rounding half-to-even
    if dst.precision + 2 > _MAX_DECIMAL_PRECISION:
        return direct  # no room for the guard digit and the carry below
    # polars rounds half-to-even; to round half-up, keep exactly one guard digit (truncating the rest, so
    # there is no double rounding), parse that exactly, then round half away from zero.
    sign = trimmed.str.extract(r"^([+-]?)", 1)
    digits = trimmed.str.extract(r"^[+-]?([0-9]*)", 1)
    fraction = trimmed.str.extract(r"\.([0-9]*)$", 1).fill_null("")
    guarded_text = pl.concat_str(
        sign,
        pl.when(digits == "").then(pl.lit("0")).otherwise(digits),
        pl.lit("."),
        fraction.str.slice(0, scale + 1).str.pad_end(scale + 1, "0"),
    )
    guarded = guarded_text.cast(pl.Decimal(dst.precision + 1, scale + 1), strict=False)
    rounded = guarded.round(scale, mode="half_away_from_zero").cast(dst, strict=False)
    return pl.when(trimmed.str.contains(_PLAIN_DECIMAL_RE)).then(rounded).otherwise(direct)


def _to_decimal(expr: pl.Expr, src: pl.DataType, dst: pl.Decimal) -> pl.Expr:
    if isinstance(src, pl.String):
        return _parse_decimal(expr, dst)
    if isinstance(src, pl.Decimal) and src.scale > dst.scale:
        if src.precision < _MAX_DECIMAL_PRECISION:
            # Spark rounds HALF_UP; round() widens the precision by one digit for the carry (0.999 -> 1.00).
            return expr.round(dst.scale, mode="half_away_from_zero").cast(dst, strict=False)
        return expr.cast(dst, strict=False)  # no room for the carry: polars rounds half-to-even
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
    """Float -> decimal without raising: polars raises (even non-strictly) when a float has too many digits.

    Values that surely fit 38 digits go through the widest decimal of the target scale; narrowing a decimal
    to the target precision then gives null on overflow instead of an error.
    """
    fits_widest = expr.is_finite() & (expr.abs() < 10.0 ** (_MAX_DECIMAL_PRECISION - 1 - dst.scale))
    widest = pl.when(fits_widest).then(expr).cast(pl.Decimal(_MAX_DECIMAL_PRECISION, dst.scale), strict=False)
    return widest.cast(dst, strict=False)


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
        return text.str.to_date("%Y-%m-%d", strict=False, cache=False)
    return _null(pl.Date())


def _parse_timestamp(text: pl.Expr, dst: pl.Datetime) -> pl.Expr:
    """Parse Spark's timestamp forms; a zone offset is applied so the result is naive UTC.

    The regex runs once per value: later steps read its groups through ``struct.with_fields`` (reading
    ``parts.struct.field(...)`` repeatedly would evaluate the regex once per use; polars does not
    deduplicate it).
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
        f("f").fill_null("0"),
    ).str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False, cache=False)  # bad fields -> null
    step = parts.struct.with_fields(
        __local=local,
        __hours=f("z").str.extract(r"^[+-]([0-9]{1,2})", 1).cast(pl.Int64),
        __minutes=f("z").str.extract(r"^[+-][0-9]{1,2}:?([0-9]{2})$", 1).cast(pl.Int64).fill_null(0),
        __sign=pl.when(f("z").str.starts_with("-")).then(pl.lit(-1)).otherwise(pl.lit(1)),
    )
    offset = (f("__sign") * (f("__hours") * 60 + f("__minutes"))).fill_null(0)  # Z, UTC, no zone: UTC
    step = step.struct.with_fields(
        __utc=f("__local") - pl.duration(minutes=offset),
        __valid_zone=f("__hours").is_null() | ((f("__hours") <= _MAX_OFFSET_HOURS) & (f("__minutes") < 60)),
    )
    # An offset can push 9999-12-31 past year 9999, which Python (and Spark) cannot represent.
    step = step.struct.with_fields(
        __result=pl.when(f("__valid_zone") & f("__utc").dt.year().is_between(1, 9999)).then(f("__utc"))
    )
    return step.struct.field("__result").cast(dst)


def _epoch_to_timestamp(seconds: pl.Expr, dst: pl.Datetime, *, integral: bool) -> pl.Expr:
    """Epoch seconds as a timestamp; null outside years 1..9999 (and so never an overflow)."""
    in_range = seconds.is_between(_MIN_EPOCH_SECONDS, _MAX_EPOCH_SECONDS)
    if integral:
        micros = seconds.cast(pl.Int64) * _MICROS  # exact: the range check rules out overflow
    else:
        # Truncate to microseconds toward zero like Spark's (d * 1e6).toLong.
        micros = (seconds * _MICROS).cast(pl.Int64, strict=False)
    return pl.when(in_range).then(micros).cast(pl.Datetime("us")).cast(dst)


def _to_timestamp(expr: pl.Expr, src: pl.DataType, dst: pl.Datetime, plain_only: bool = False) -> pl.Expr:
    if isinstance(src, pl.Datetime):
        return _utc_naive(expr, src).cast(dst)
    if isinstance(src, pl.Date):
        return expr.cast(dst)  # midnight
    if isinstance(src, pl.String):
        # JSON numbers arrive as text (source_read_schema reads every leaf as String), so a plain number
        # that is not a date form ("2024" is a year, as in Spark) is read as epoch seconds, like a number.
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
        if plain_only:
            return steps.struct.field("plain").cast(dst)
        steps = steps.struct.with_fields(rest=pl.when(f("plain").is_null()).then(f("text").str.strip_chars()))
        steps = steps.struct.with_fields(
            result=pl.coalesce(
                f("plain").cast(dst),
                _parse_timestamp(f("rest"), dst),
                # JSON numbers arrive as text (every leaf is read as String), so a plain number that is
                # not a date form ("2024" is a year, as in Spark) is read as epoch seconds.
                _epoch_to_timestamp(f("rest").cast(pl.Int64, strict=False), dst, integral=True),
                _epoch_to_timestamp(f("rest").cast(pl.Float64, strict=False), dst, integral=False),
            )
        )
        return steps.struct.field("result")
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
    mappings: Mappings, observed: pl.Schema | None = None, case_sensitive: bool = False
) -> pl.Schema:
    """The schema for ``pl.scan_ndjson(schema=...)`` that materializes only the mapped source fields.

    Every mapped leaf is read as String (polars renders any JSON scalar, object or array as text then), so
    casting is left to ApplyMapping.apply and cannot fail while reading. Nested sources become structs with
    shared prefixes merged. With ``observed`` (a schema inferred from the data), every spelling matching a
    mapped path (case-insensitively unless ``case_sensitive``) is read, fields follow the observed order, and
    a prefix that is observed as a non-struct is read as String (apply then descends into its JSON text).
    """
    parsed = parse_mappings(mappings)
    tree: dict[str, object] = {}
    for fm in parsed:
        if observed is None:
            hits = [_Hit(fm.source, None)]
        else:
            hits = _resolve(observed, fm.source, case_sensitive, fill_missing=True)
        for hit in hits:
            _insert_leaf(tree, hit.columns)
    return pl.Schema(_tree_fields(tree, observed))


_LEAF = object()  # a field read whole as String


def _insert_leaf(tree: dict[str, object], columns: tuple[str, ...]) -> None:
    """Add a String leaf; a field needed both whole and nested is read whole (nested reads use JSON)."""
    node = tree
    for name in columns[:-1]:
        child = node.get(name)
        if child is _LEAF:
            return
        if child is None:
            child = node[name] = {}
        node = child  # type: ignore[assignment]
    node[columns[-1]] = _LEAF


def _tree_fields(tree: dict[str, object], observed: Mapping[str, pl.DataType] | None) -> dict[str, pl.DataType]:
    """Turn the read tree into dtypes, ordering fields as observed (so coalescing follows the data)."""
    order = {name: position for position, name in enumerate(observed or {})}
    names = sorted(tree, key=lambda name: order.get(name, len(order)))  # stable: unknowns keep their order
    fields: dict[str, pl.DataType] = {}
    for name in names:
        child = tree[name]
        if child is _LEAF:
            fields[name] = pl.String()
        else:
            seen = (observed or {}).get(name)
            inner = {f.name: f.dtype for f in seen.fields} if isinstance(seen, pl.Struct) else None
            fields[name] = pl.Struct(_tree_fields(child, inner))  # type: ignore[arg-type]
    return fields


class ApplyMapping:
    """Glue's ApplyMapping transform on polars frames."""

    @staticmethod
    def apply(
        frame: Frame, mappings: Mappings, case_sensitive: bool = False, *, plain_timestamps: bool = False
    ) -> pl.LazyFrame:
        """Keep only mapped fields, renamed, nested and cast as the mappings say (see module docstring).

        ``plain_timestamps`` is a speculative fast form: text becomes a timestamp only when it reads
        ``yyyy-mm-dd hh:mm:ss`` (by far the most common form), and any other text becomes null. Where
        no present source became null, the result equals the full mapping's; a caller that finds a
        null (a cast error) maps again without it.
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

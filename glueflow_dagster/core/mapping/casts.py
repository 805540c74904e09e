"""Casts with Spark's non-ANSI semantics (what Glue runs on), as lazy polars expressions.

A value that cannot be cast becomes null: nothing raises on data. Checked against Spark 3.5 by
glueflow_dagster_tests/core/test_spark_differential.py; the deliberate differences are listed in README.md.
Text takes a fast path first where one exists (fast.py: the common forms, fixed formats); the general path
below only sees the values a fast path left null. No cast runs Python: everything stays on the streaming
engine (zone names too: zones.py).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import polars as pl

from glueflow_dagster.core.mapping.fast import (
    DATE_ONLY_RE,
    DECIDED_RE,
    ISO_RE,
    ZULU_RE,
    fast_boolean,
    fast_date,
    fast_decimal,
    fast_integral,
    fast_timestamp,
    fast_zulu,
    with_fallback,
)
from glueflow_dagster.core.mapping.parse import MAX_DECIMAL_PRECISION, PlainTimestamps
from glueflow_dagster.core.mapping.zones import named_zone_to_utc

_TRUE_STRINGS = ["t", "true", "y", "yes", "1"]  # Spark's StringUtils.isTrueString
_FALSE_STRINGS = ["f", "false", "n", "no", "0"]
# Spark accepts an integral string with a fraction and truncates it ("3.5" -> 3, ".5" -> 0, "." -> 0).
_INTEGRAL_RE = r"^([+-]?[0-9]+)(?:\.[0-9]*)?$"
_FRACTION_ONLY_RE = r"^[+-]?\.[0-9]*$"  # Spark reads "." as 0 too
# Spark's stringToDate: yyyy, yyyy-[m]m, yyyy-[m]m-[d]d, optionally followed by ' ' or 'T' and anything;
# the year may carry a sign and have 4 to 7 digits (+2026, 02026), 4 to 6 in a timestamp.
_DATE_RE = r"^(?P<y>[+-]?[0-9]{4,7})(?:-(?P<m>[0-9]{1,2})(?:-(?P<d>[0-9]{1,2})(?:[T ].*)?)?)?$"
# Spark's stringToTimestamp (without time-only forms, whose date would depend on the clock):
# date[ |T]h[:m[:s[.fraction]]] with an optional zone: Z, an offset (+h, +hh, +hhmm, +hh:mm, +hh:mm:ss),
# UTC/GMT/UT with or without an offset, or a zone name (Europe/Paris, PST, CET).
_TIMESTAMP_RE = (
    r"^(?P<y>[+-]?[0-9]{4,6})(?:-(?P<mo>[0-9]{1,2})(?:-(?P<d>[0-9]{1,2})"
    r"(?:[T ](?P<h>[0-9]{1,2})(?::(?P<mi>[0-9]{1,2})(?::(?P<s>[0-9]{1,2})(?:\.(?P<f>[0-9]*))?)?)?)?)?)?"
    r"\s*(?P<z>Z|[+-][0-9]{1,2}(?::?[0-9]{2}(?::?[0-9]{2})?)?|[A-Za-z][A-Za-z0-9/_+:-]*)?$"
)
# What the general parsers can read, before blanks are stripped (a value that matches neither never
# reaches them: see fast.with_fallback's ``possible``).
_UNSTRIPPED_DATE_RE = r"^\s*" + _DATE_RE[1:-1] + r"\s*$"
_UNSTRIPPED_TIMESTAMP_RE = r"^\s*" + _TIMESTAMP_RE[1:-1] + r"\s*$"
# A zone that is an offset: Z, UTC/GMT/UT alone, or (optionally after one of those) a signed offset.
_OFFSET_ZONE_RE = (
    r"^(?:Z|UTC|GMT|UT)$"
    r"|^(?:UTC|GMT|UT)?(?P<sign>[+-])(?P<oh>[0-9]{1,2})(?::?(?P<om>[0-9]{2})(?::?(?P<os>[0-9]{2}))?)?$"
)
# Spark's (java.math.BigDecimal's) decimal text: sign, digits, fraction, exponent.
_DECIMAL_TEXT_RE = r"^(?P<sign>[+-]?)(?P<i>[0-9]*)(?:\.(?P<f>[0-9]*))?(?:[eE](?P<e>[+-]?[0-9]{1,9}))?$"
# UTF-8 as lower-case hex: group 1 a valid sequence, group 2 a malformed one (java.nio's decoder: the
# longest prefix of a valid sequence, where ED takes any continuation byte, else one byte).
_CONT = "[89ab][0-9a-f]"
_UTF8_VALID = (
    f"[0-7][0-9a-f]|(?:c[2-9a-f]|d[0-9a-f]){_CONT}|e0[ab][0-9a-f]{_CONT}|(?:e[1-9a-c]|e[ef]){_CONT}{_CONT}"
    f"|ed[89][0-9a-f]{_CONT}|f0[9ab][0-9a-f]{_CONT}{_CONT}|f[1-3]{_CONT}{_CONT}{_CONT}|f48[0-9a-f]{_CONT}{_CONT}"
)
_UTF8_BROKEN = (
    f"f0[9ab][0-9a-f](?:{_CONT})?|f[1-3]{_CONT}(?:{_CONT})?|f48[0-9a-f](?:{_CONT})?|e0[ab][0-9a-f]"
    f"|(?:e[1-9a-cef]){_CONT}|ed{_CONT}(?:{_CONT})?|[0-9a-f]{{2}}"
)
_UTF8_HEX = f"({_UTF8_VALID})|({_UTF8_BROKEN})"
_ZEROS = "0" * 80  # sliced for zero padding (expression lengths; polars pads only to constant widths)
# polars' float text: shortest round-trip digits, plain or with an exponent ("1e+20", "1.5e-7").
_FLOAT_TEXT_RE = r"^(?P<sign>-?)(?P<i>[0-9]+)(?:\.(?P<f>[0-9]*))?(?:e(?P<e>[+-]?[0-9]+))?$"
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


def _zero_if_empty(text: pl.Expr) -> pl.Expr:
    """``"0"`` for empty text (``Expr.replace`` would take the query off the streaming engine in polars 2.1)."""
    return pl.when(text.str.len_bytes() == 0).then(pl.lit("0")).otherwise(text)


def _is_number(dtype: pl.DataType) -> bool:
    return dtype.is_integer() or dtype.is_float() or dtype.is_decimal()


def cast_value(expr: pl.Expr, src: pl.DataType, dst: pl.DataType, plain_timestamps: PlainTimestamps = False) -> pl.Expr:
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
    fast_only = plain_timestamps in ("fast", "zulu") and isinstance(src, pl.String)
    if fast_only and (fast := _fast_only(expr, dst, zulu=plain_timestamps == "zulu")) is not None:
        return fast
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


def _fast_only(text: pl.Expr, dst: pl.DataType, *, zulu: bool = False) -> pl.Expr | None:
    """Text cast by its fast path alone (null where that misses), or None for a cast without a general path.
    ``zulu``: timestamps by the ISO Z form without a fraction only (``fast_zulu``)."""
    if isinstance(dst, pl.Datetime):
        return (fast_zulu(text) if zulu else fast_timestamp(text)).cast(dst)
    if isinstance(dst, pl.Date):
        return fast_date(text)
    if isinstance(dst, pl.Decimal):
        return fast_decimal(text, dst)
    if isinstance(dst, pl.Boolean):
        return fast_boolean(text)
    if dst.is_integer():
        return fast_integral(text).cast(dst, strict=False)
    return None


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
        return _utf8_text(expr)
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


def _utf8_text(data: pl.Expr) -> pl.Expr:
    """Bytes as UTF-8 text, as Spark casts binary to string: each malformed sequence becomes U+FFFD.

    polars' cast raises on invalid UTF-8 (even non-strictly), so the bytes are checked as hex text: one
    regex pass marks each valid sequence and each malformed one (``_UTF8_HEX``; a malformed one is the
    longest prefix of a valid sequence, or one byte, as java.nio's decoder replaces them), the marks
    become U+FFFD's bytes (``efbfbd``) and the hex is decoded. Native kernels only.
    """
    marked = data.bin.encode("hex").str.replace_all(_UTF8_HEX, "${1}x${2}y")
    hex_text = marked.str.replace_all("xy", "", literal=True).str.replace_all("x[0-9a-f]+y", "efbfbd")
    return hex_text.str.decode("hex").cast(pl.String)


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
    whole = (sig + pl.lit(_ZEROS)).str.slice(0, (x + 1).clip(0, None))
    plain_big = pl.concat_str(whole, pl.lit("."), _zero_if_empty(sig.str.slice(x + 1)))
    plain_small = pl.concat_str(pl.lit("0."), pl.lit(_ZEROS).str.slice(0, (-x - 1).clip(0, None)), sig)
    scientific = pl.concat_str(
        sig.str.slice(0, 1), pl.lit("."), _zero_if_empty(sig.str.slice(1)), pl.lit("E"), x.cast(pl.String)
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
        __nines=pl.concat_str(whole, kept).str.contains(f"^9{{{MAX_DECIMAL_PRECISION}}}$"),
        __truncated=truncated_text,
    )
    wide = pl.Decimal(MAX_DECIMAL_PRECISION, s)
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
        return with_fallback(expr, lambda text: fast_decimal(text, dst), lambda rest: _parse_decimal(rest, dst))
    if isinstance(src, pl.Decimal) and src.scale > dst.scale:
        if src.precision < MAX_DECIMAL_PRECISION:
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
        return with_fallback(expr, fast_boolean, _parse_boolean)
    if _is_number(src):
        return expr.cast(pl.Boolean, strict=False)  # non-zero is true
    if isinstance(src, pl.Datetime):
        return _utc_naive(expr, src).dt.epoch("us") != 0
    return _null(pl.Boolean())


def _parse_boolean(text: pl.Expr) -> pl.Expr:
    """Spark's StringUtils.isTrueString/isFalseString, trimmed and in any case."""
    word = text.str.strip_chars().str.to_lowercase()
    return (
        pl.when(word.is_in(_TRUE_STRINGS))
        .then(pl.lit(True))
        .when(word.is_in(_FALSE_STRINGS))
        .then(pl.lit(False))
        .otherwise(_null(pl.Boolean()))
    )


def _to_date(expr: pl.Expr, src: pl.DataType) -> pl.Expr:
    if isinstance(src, pl.Date):
        return expr
    if isinstance(src, pl.Datetime):
        return _utc_naive(expr, src).dt.date()
    if isinstance(src, pl.String):
        return with_fallback(expr, fast_date, _parse_date, decided=DATE_ONLY_RE, possible=_UNSTRIPPED_DATE_RE)
    return _null(pl.Date())


def _parse_date(text: pl.Expr) -> pl.Expr:
    """Spark's stringToDate (see _DATE_RE)."""
    parts = text.str.strip_chars().str.extract_groups(_DATE_RE)
    year = _year(parts.struct.field("y"))
    joined = pl.concat_str(
        year,
        pl.lit("-"),
        parts.struct.field("m").fill_null("1"),
        pl.lit("-"),
        parts.struct.field("d").fill_null("1"),
    )
    # Impossible dates (02-30) -> null. No cache: it only pays off for repeated values.
    return joined.str.to_date("%Y-%m-%d", strict=False, cache=False)


def _year(digits: pl.Expr) -> pl.Expr:
    """A year group (``2026``, ``+2026``, ``02026``) as 4 digits, null outside 1..9999 (so is the value)."""
    year = digits.cast(pl.Int64, strict=False)  # reads a sign and leading zeros
    return pl.when(year.is_between(1, 9999)).then(year.cast(pl.String).str.zfill(4))


def _parse_timestamp(text: pl.Expr, dst: pl.Datetime, zone_names: bool = True) -> pl.Expr:
    """Parse Spark's timestamp forms; a zone offset is applied so the result is naive UTC.

    The regex runs once per value: later steps read its groups through ``struct.with_fields`` (reading
    ``parts.struct.field(...)`` repeatedly would evaluate the regex once per use; polars does not
    deduplicate it). Zone names (``Europe/Paris``, ``PST``) are converted in zones.py (without
    ``zone_names``, a value with one is null: the zone branches cost a pass each over every value). More than 9 fraction
    digits are truncated, as Spark does (it keeps microseconds).
    """
    f = pl.field
    parts = text.str.strip_chars().str.extract_groups(_TIMESTAMP_RE)
    local = pl.concat_str(
        _year(f("y")),
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
        _zero_if_empty(f("f").str.slice(0, 9)).fill_null("0"),
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
    by_name = pl.lit(None, pl.Datetime("us"))
    if zone_names:
        named = pl.when(~f("__is_offset")).then(f("__local"))
        by_name = named_zone_to_utc(named, pl.when(~f("__is_offset")).then(f("z")))
    step = step.struct.with_fields(__utc=pl.coalesce(by_offset, by_name))
    # An offset can push 9999-12-31 past year 9999, which Python (and Spark) cannot represent.
    step = step.struct.with_fields(__result=pl.when(f("__utc").dt.year().is_between(1, 9999)).then(f("__utc")))
    return step.struct.field("__result").cast(dst)


def may_need_general(text: pl.Expr, dst: pl.DataType, *, zulu: bool = False) -> pl.Expr:
    """Whether text the fast path alone left null may read otherwise on the general path (a superset).

    For timestamps and dates: text that is neither in the fixed forms (``DECIDED_RE``: invalid for the
    general path too, ``2026-13-45T99:99:99Z``) nor impossible for the general parser (``not a time``);
    for the other casts with a general path, any text. The stage speculates on the fast paths while no
    value needs the general path (see ``stage.plan.query``), malformed values included. ``zulu``: after
    ``fast_zulu``, also text in the other fixed forms (``ISO_RE`` but not ``ZULU_RE``: ``fast_timestamp``'s).
    """
    if isinstance(dst, pl.Datetime):
        general = ~text.str.contains(DECIDED_RE) & text.str.contains(_UNSTRIPPED_TIMESTAMP_RE)
        return general | (text.str.contains(ISO_RE) & ~text.str.contains(ZULU_RE)) if zulu else general
    if isinstance(dst, pl.Date):
        return ~text.str.contains(DATE_ONLY_RE) & text.str.contains(_UNSTRIPPED_DATE_RE)
    return text.is_not_null()


def zone_named(text: pl.Expr) -> pl.Expr:
    """Whether a text is a timestamp with a zone name (``... Europe/Paris``): where mapping with
    ``plain_timestamps="nozones"`` may differ from the full mapping (a superset: valid or not)."""
    zone = text.str.strip_chars().str.extract(_TIMESTAMP_RE, 8)  # the group named z
    return zone.is_not_null() & ~zone.str.contains(_OFFSET_ZONE_RE)


def _epoch_to_timestamp(seconds: pl.Expr, dst: pl.Datetime, *, integral: bool) -> pl.Expr:
    """Epoch seconds as a timestamp; null outside years 1..9999 (and so never an overflow)."""
    in_range = seconds.is_between(_MIN_EPOCH_SECONDS, _MAX_EPOCH_SECONDS)
    if integral:
        micros = seconds.cast(pl.Int64) * _MICROS  # exact: the range check rules out overflow
    else:
        # Truncate to microseconds toward zero like Spark's (d * 1e6).toLong.
        micros = (seconds * _MICROS).cast(pl.Int64, strict=False)
    return pl.when(in_range).then(micros).cast(pl.Datetime("us")).cast(dst)


def _plain_timestamp(expr: pl.Expr, dst: pl.Datetime, plain_only: PlainTimestamps) -> pl.Expr:
    """Only the plain ``yyyy-mm-dd hh:mm:ss`` form (ApplyMapping's speculative ``plain_timestamps``)."""
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
    return steps.struct.field("plain").cast(dst)


def _to_timestamp(expr: pl.Expr, src: pl.DataType, dst: pl.Datetime, plain_only: PlainTimestamps = False) -> pl.Expr:
    if isinstance(src, pl.Datetime):
        return _utc_naive(expr, src).cast(dst)
    if isinstance(src, pl.Date):
        return expr.cast(dst)  # midnight
    if isinstance(src, pl.String):
        if plain_only in (True, "text"):
            return _plain_timestamp(expr, dst, plain_only)
        names = plain_only != "nozones"
        # Text that is a number ("1700000000") is no timestamp, as in Spark (a JSON number is read as one
        # and casts from its number type).
        return with_fallback(
            expr,
            lambda text: fast_timestamp(text).cast(dst),
            lambda rest: _parse_timestamp(rest, dst, names),
            decided=DECIDED_RE,
            possible=_UNSTRIPPED_TIMESTAMP_RE,
        )
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

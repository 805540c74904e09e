"""Fast paths for casts from text: the common forms, parsed by native polars kernels with fixed formats.

Each function returns the value for the text forms it knows and null for everything else; the caller
(casts.py) coalesces it with the general, Spark-compatible path, which only sees the values a fast path
left null (``pl.when(fast.is_null()).then(text)``: kernels skip nulls). A fast path is exact: it accepts
only text that the general path reads the same way, so every answer equals the general path's
(glueflow_dagster_tests/core/test_fast_casts.py checks that on generated values). Each form is guarded
by an anchored regex, because chrono's parser is more lenient than Spark (``+2026``, ``2026-2-3``,
second 60, year 0): what a guard rejects falls to the general path.

The forms:

* timestamps: ``yyyy-mm-ddThh:mm:ss`` or with a space for ``T``, 0-9 fraction digits (more are
  truncated, as Spark does), and ``Z``, ``+hh:mm``, ``+hhmm`` or no zone; a date alone (midnight);
* dates: ``yyyy-mm-dd``;
* integral numbers: optional sign and digits (polars' cast), nothing else;
* decimals: optional sign, digits and a fraction no longer than the scale;
* booleans: ``true``/``false`` in lower case.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import polars as pl

_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_CLOCK = r"[0-9]{2}:[0-9]{2}:[0-5][0-9](?:\.[0-9]+)?"  # second 60 is the general path's (chrono: leap)
# Offsets within java.time's +-18:00, minutes below 60.
_OFFSET = r"[+-](?:(?:0[0-9]|1[0-7]):?[0-5][0-9]|18:?00)"
# The guard of every timestamp form: 2-digit fields, T or a space, an optional fraction and zone.
ISO_RE = f"^{_DATE}(?:[T ]{_CLOCK}(?:Z|{_OFFSET})?)?$"
DATE_ONLY_RE = f"^{_DATE}$"
# The most common form alone (``2026-11-02T01:28:55Z``): what the stage's "zulu" speculation reads.
ZULU_RE = f"^{_DATE}T[0-9]{{2}}:[0-9]{{2}}:[0-5][0-9]Z$"
# Text in the fixed forms with any two digits per field and any two-digit offset: what the fast path
# leaves null here is invalid for the general path too (month 13, second 60-99, offset past 18:00), so
# it never reaches that path (with_fallback's ``decided``).
DECIDED_RE = f"^{_DATE}(?:[T ][0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(?:\\.[0-9]+)?(?:Z|[+-][0-9]{{2}}:?[0-9]{{2}})?)?$"
_FIRST = datetime(1, 1, 1)
_LAST = datetime(9999, 12, 31, 23, 59, 59, 999999)
_FIRST_DATE = date(1, 1, 1)
Parse = Callable[[pl.Expr], pl.Expr]
# The fixed format of each form, by its features: T (not a space), a fraction, Z, an offset.
_T, _FRACTION, _ZULU, _OFFSET_BIT, _DAY = 1, 2, 4, 8, 16
_TIMESTAMP_FORMATS = {
    _T | _ZULU: "%Y-%m-%dT%H:%M:%SZ",  # without a fraction, polars parses without chrono: several times faster
    _T | _FRACTION | _ZULU: "%Y-%m-%dT%H:%M:%S%.fZ",
    _T | _OFFSET_BIT: "%Y-%m-%dT%H:%M:%S%z",  # %z reads +hh:mm and +hhmm
    _T | _FRACTION | _OFFSET_BIT: "%Y-%m-%dT%H:%M:%S%.f%z",
    _T: "%Y-%m-%dT%H:%M:%S",
    _T | _FRACTION: "%Y-%m-%dT%H:%M:%S%.f",
    _ZULU: "%Y-%m-%d %H:%M:%SZ",
    _FRACTION | _ZULU: "%Y-%m-%d %H:%M:%S%.fZ",
    _OFFSET_BIT: "%Y-%m-%d %H:%M:%S%z",
    _FRACTION | _OFFSET_BIT: "%Y-%m-%d %H:%M:%S%.f%z",
    0: "%Y-%m-%d %H:%M:%S",
    _FRACTION: "%Y-%m-%d %H:%M:%S%.f",
}


def _parse(text: pl.Expr, fmt: str, offset: bool) -> pl.Expr:
    """``text`` with fixed format ``fmt`` as naive UTC microseconds; null where it does not parse."""
    if offset:
        parsed = text.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False, cache=False)
        return parsed.dt.replace_time_zone(None)
    return text.str.to_datetime(fmt, time_unit="us", strict=False, cache=False)


def _parse_fraction(text: pl.Expr, form: int) -> pl.Expr:
    """A guarded text of a form with a fraction and no offset (``...:55.123Z``, what JavaScript writes), as
    naive microseconds: the first 19 bytes by the fixed format polars parses without chrono, plus the
    fraction's first six digits (more are truncated, as chrono's ``%.f`` and Spark do). chrono's ``%.f``
    took 2.4x as long; the answers are the same (test_fast_casts)."""
    clock = "%Y-%m-%dT%H:%M:%S" if form & _T else "%Y-%m-%d %H:%M:%S"
    seconds = len("yyyy-mm-ddThh:mm:ss")
    base = text.str.slice(0, seconds).str.to_datetime(clock, time_unit="us", strict=False, cache=False)
    digits = text.str.len_bytes() - (seconds + 1) - (1 if form & _ZULU else 0)
    fraction = text.str.slice(seconds + 1, digits.cast(pl.UInt64)).str.slice(0, 6).str.pad_end(6, "0")
    return base + pl.duration(microseconds=fraction.cast(pl.Int64, strict=False))


def _form(text: pl.Expr) -> pl.Expr:
    """The features of a guarded text (every field has two digits, so they sit at fixed places), as bits."""
    tail = text.str.slice(len("yyyy-mm-ddThh:mm:ss"))

    def bit(flag: pl.Expr, value: int) -> pl.Expr:
        return flag.cast(pl.UInt8) * value

    return (
        bit(text.str.contains("T", literal=True), _T)
        + bit(tail.str.starts_with("."), _FRACTION)
        + bit(tail.str.ends_with("Z"), _ZULU)
        + bit(tail.str.contains_any(["+", "-"]), _OFFSET_BIT)
        + bit(text.str.len_bytes() == len("yyyy-mm-dd"), _DAY)
    )


def fast_timestamp(text: pl.Expr) -> pl.Expr:
    """Naive UTC microseconds for the common ISO 8601 forms, else null (see the module docstring).

    One regex guards every form; a value's features (T or a space, a fraction, Z or an offset) pick the one
    fixed format it is parsed with (the other parses see it as null, which costs a kernel nothing, and no
    parse fails on a form it was not meant for). Years outside 1..9999 (after the offset) are null, as in
    the general path.

    The most common form (``2026-11-02T01:28:55Z``: 20 bytes ending in ``Z``) is parsed first, on its
    own: where every value has it, the features and the other parses see a batch that is null throughout
    (a kernel's cheapest case). Only that form matches its format exactly, so the answers are the same.
    """
    f = pl.field
    steps = pl.struct(text.alias("text"))
    steps = steps.struct.with_fields(rest=pl.when(f("text").str.contains(ISO_RE)).then(f("text")))
    zulu = pl.when((f("rest").str.len_bytes() == len("yyyy-mm-ddThh:mm:ssZ")) & f("rest").str.ends_with("Z"))
    steps = steps.struct.with_fields(zulu=_parse(zulu.then(f("rest")), _TIMESTAMP_FORMATS[_T | _ZULU], False))
    steps = steps.struct.with_fields(rest=pl.when(f("zulu").is_null()).then(f("rest")))
    steps = steps.struct.with_fields(form=_form(f("rest")))
    parses = [f("zulu")] + [
        _parse_fraction(pl.when(f("form") == form).then(f("rest")), form)
        if form & _FRACTION and not form & _OFFSET_BIT
        else _parse(pl.when(f("form") == form).then(f("rest")), fmt, bool(form & _OFFSET_BIT))
        for form, fmt in _TIMESTAMP_FORMATS.items()
    ]
    day = pl.when(f("form") == _DAY).then(f("rest")).str.to_date("%Y-%m-%d", strict=False, cache=False)
    steps = steps.struct.with_fields(parsed=pl.coalesce([*parses, day.cast(pl.Datetime("us"))]))
    steps = steps.struct.with_fields(out=pl.when(f("parsed").is_between(_FIRST, _LAST)).then(f("parsed")))
    return steps.struct.field("out")


def fast_zulu(text: pl.Expr) -> pl.Expr:
    """``fast_timestamp`` for the ISO ``Z`` form without a fraction alone (``ZULU_RE``), else null: the
    same answer for that form in a handful of expressions (the stage's speculation when its sample holds
    no other form; a streaming batch pays per expression, and ``wide`` records give batches of ~240 rows)."""
    parsed = _parse(pl.when(text.str.contains(ZULU_RE)).then(text), _TIMESTAMP_FORMATS[_T | _ZULU], False)
    return pl.when(parsed.is_between(_FIRST, _LAST)).then(parsed)


def fast_date(text: pl.Expr) -> pl.Expr:
    """``yyyy-mm-dd`` as a date (years 1..9999), else null."""
    parsed = pl.when(text.str.contains(DATE_ONLY_RE)).then(text).str.to_date("%Y-%m-%d", strict=False, cache=False)
    return pl.when(parsed >= _FIRST_DATE).then(parsed)


def fast_integral(text: pl.Expr) -> pl.Expr:
    """Optional sign and digits (Int64 range), else null: polars' own cast (which accepts nothing else)."""
    return text.cast(pl.Int64, strict=False)


def fast_decimal(text: pl.Expr, dst: pl.Decimal) -> pl.Expr:
    """Optional sign, at most ``precision - scale`` digits and at most ``scale`` fraction digits: exact,
    so nothing needs rounding and polars' own cast reads it; else null."""
    p, s = dst.precision, dst.scale
    whole = f"[0-9]{{1,{p - s}}}" if p > s else "0?"
    fraction = rf"(?:\.[0-9]{{1,{s}}})?" if s else ""
    guard = f"^[+-]?{whole}{fraction}$"
    return pl.when(text.str.contains(guard)).then(text).cast(dst, strict=False)


def fast_boolean(text: pl.Expr) -> pl.Expr:
    """``true``/``false`` exactly (what JSON producers write), else null."""
    return pl.when(text == "true").then(pl.lit(True)).when(text == "false").then(pl.lit(False))


def with_fallback(
    text: pl.Expr, fast: Parse, general: Parse, decided: str | None = None, possible: str | None = None
) -> pl.Expr:
    """The fast value, else the general path's value for the text the fast path left null.

    ``general`` is a function of a text expression; it sees only the values the fast path did not take
    (the others are null for it, which kernels skip). ``decided``: a regex of text whose fast answer is
    final, null included (its guard: such text is invalid for the general path too, ``2026-13-45``);
    ``possible``: a regex every text the general path reads matches. Text the fast path left null goes
    to the general path only if it is undecided and possible, so malformed values mostly leave the
    general path's input all null (a kernel's cheapest case). A batch that is not null throughout is
    read slot by slot, null slots too (they keep their text), so the ``decided`` and ``possible`` regexes
    and the general path read ``""`` in every slot but their own values (cheap for every regex) and
    their answer there is masked: on 405,325 ISO timestamps with 20% malformed, the full cast 151 -> 81
    ms. ``struct.with_fields`` evaluates each step once.
    """
    f = pl.field
    steps = pl.struct(text.alias("text"))
    steps = steps.struct.with_fields(fast=fast(f("text")))
    steps = steps.struct.with_fields(rest=pl.when(f("fast").is_null()).then(f("text")))
    # A null slot keeps its text, and a kernel reads every slot of a batch that is not null throughout: the
    # regexes and the general path read "" in the slots they have nothing to do with (masked: null there).
    if decided is not None:
        steps = steps.struct.with_fields(rest=pl.when(~f("rest").fill_null("").str.contains(decided)).then(f("rest")))
    if possible is not None:
        steps = steps.struct.with_fields(rest=pl.when(f("rest").fill_null("").str.contains(possible)).then(f("rest")))
    general_value = pl.when(f("rest").is_not_null()).then(general(f("rest").fill_null("")))
    result = pl.coalesce(f("fast"), general_value)
    return steps.struct.with_fields(result=result).struct.field("result")

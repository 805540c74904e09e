"""Parsing mappings: Glue type names, dotted source and target paths, and the validated mapping list.

Everything here runs before any data is read: a malformed mapping is refused with a one-line message
naming its index and the bad field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import polars as pl


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
# False: every cast in full; True/"text": timestamps from text in the plain form only (see ApplyMapping.apply);
# "fast": every cast from text by its fast path only (mapping/fast.py), null where it has none;
# "nozones": every cast in full except zone names in timestamps (null; see casts.zone_named).
# "zulu": as "fast", but text -> timestamp by the ISO Z form without a fraction only (fast.fast_zulu).
PlainTimestamps: TypeAlias = bool | Literal["text", "fast", "zulu", "nozones"]
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
MAX_DECIMAL_PRECISION = 38


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
    if not 1 <= precision <= MAX_DECIMAL_PRECISION or scale > precision:
        raise MappingError(
            f"invalid decimal {name!r}: need 1 <= precision <= {MAX_DECIMAL_PRECISION} and scale <= precision"
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

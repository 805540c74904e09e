"""Resolving a mapping's source path against a schema, and the read schema that materializes it.

Shared by ``ApplyMapping.apply``, ``cast_error_count`` and ``source_read_schema``: a source path may match
several spellings (case-insensitively), descend through structs and array elements, or continue inside a
value read as JSON text.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from glueflow_dagster.core.mapping.parse import Mappings, parse_mappings

# ---------------------------------------------------------------------------------------------------------
# Resolving source paths against a schema (shared by apply, cast_error_count and source_read_schema)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
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


def resolve(
    fields: Mapping[str, pl.DataType],
    path: tuple[str | int, ...],
    case_sensitive: bool,
    *,
    fill_missing: bool = False,
    _prefix: tuple[str | int, ...] = (),
) -> list[Hit]:
    """Every spelling of ``path`` in ``fields``, in schema order.

    With ``fill_missing`` a level without any match continues with the mapping's own spelling (used to
    build a read schema, where a field absent from the sample may still be in the data).
    """
    names = _matching(fields, path[0], case_sensitive)  # type: ignore[arg-type]
    if not names:
        return [Hit(_prefix + path, None)] if fill_missing else []
    hits: list[Hit] = []
    for name in names:
        hits.extend(_descend(fields[name], _prefix + (name,), path[1:], case_sensitive, fill_missing))
    return hits


def _descend(
    dtype: pl.DataType,
    columns: tuple[str | int, ...],
    rest: tuple[str | int, ...],
    case_sensitive: bool,
    fill_missing: bool,
) -> list[Hit]:
    """Follow ``rest`` below a value of ``dtype`` found at ``columns``."""
    if not rest:
        return [Hit(columns, dtype)]
    step = rest[0]
    if isinstance(step, int):
        if isinstance(dtype, pl.List | pl.Array):
            return _descend(dtype.inner, columns + (step,), rest[1:], case_sensitive, fill_missing)
    elif isinstance(dtype, pl.Struct):
        inner = {field.name: field.dtype for field in dtype.fields}
        return resolve(inner, rest, case_sensitive, fill_missing=fill_missing, _prefix=columns)
    return [Hit(columns, dtype, rest)]


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


def hit_expr(hit: Hit, schema: Mapping[str, pl.DataType]) -> tuple[pl.Expr, pl.DataType] | None:
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


# ---------------------------------------------------------------------------------------------------------
# The read schema: only the mapped source fields, with the types a cast needs
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
    a mapped path (case-insensitively unless ``case_sensitive``) is read, fields in code-point order
    (``ID`` before ``id``: the spelling a record's value is taken from when it holds both), and a prefix
    that is observed as a non-struct is read as String (apply then descends into its JSON text).
    A path through an array element (``items[0].sku``) reads the whole array.
    """
    parsed = parse_mappings(mappings)
    tree: dict[str, object] = {}
    for index, fm in enumerate(parsed):
        with_types = typed if isinstance(typed, bool) else index in typed
        if observed is None:
            hits = [Hit(fm.source, None)]
        else:
            hits = resolve(observed, fm.source, case_sensitive, fill_missing=True)
        for hit in hits:
            cut = next((k for k, step in enumerate(hit.columns) if isinstance(step, int)), len(hit.columns))
            names: tuple[str, ...] = hit.columns[:cut]  # type: ignore[assignment]
            if cut < len(hit.columns):
                dtype = _dtype_at(observed, names)  # the array holding the element
            else:
                dtype = None if hit.rest else hit.dtype  # descending into JSON text needs the text
            _insert_leaf(tree, names, _read_dtype(dtype) if with_types else pl.String())
    return pl.Schema(_tree_fields(tree))


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


def _tree_fields(tree: dict[str, object]) -> dict[str, pl.DataType]:
    """Turn the read tree into dtypes, fields in code-point order.

    The order decides which spelling wins where a record holds several (``ID`` and ``id`` are coalesced
    in read-schema order, so ``ID`` wins). It must not come from the sample: polars' NDJSON inference
    orders the fields of records with differing keys differently from one process to the next, and the
    same record would then map to different values on different runs and engines.
    """
    fields: dict[str, pl.DataType] = {}
    for name in sorted(tree):
        child = tree[name]
        if isinstance(child, pl.DataType):
            fields[name] = child
        else:
            fields[name] = pl.Struct(_tree_fields(child))  # type: ignore[arg-type]
    return fields

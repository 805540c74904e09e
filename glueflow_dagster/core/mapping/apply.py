"""Applying mappings to a frame: ``ApplyMapping.apply``, the cast error count and the presence mapping."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from glueflow_dagster.core.mapping.casts import cast_value
from glueflow_dagster.core.mapping.parse import (
    FieldMapping,
    Frame,
    Mappings,
    PlainTimestamps,
    parse_glue_type,
    parse_mappings,
)
from glueflow_dagster.core.mapping.resolve import hit_expr, resolve


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
    hits = resolve(schema, fm.source, case_sensitive)
    sources = [read for hit in hits if (read := hit_expr(hit, schema))]
    if not sources:
        return pl.lit(None, fm.target_type), None
    if plain_timestamps == "text" and any(not isinstance(dtype, pl.String) for _, dtype in sources):
        plain_timestamps = True  # the text form only where every spelling is text: coalesced values agree
    casts = [cast_value(expr, dtype, fm.target_type, plain_timestamps) for expr, dtype in sources]
    value = casts[0] if len(casts) == 1 else pl.coalesce(casts)
    present = pl.any_horizontal([expr.is_not_null() for expr, _ in sources])
    return value, present


def schema_of(frame: Frame) -> pl.Schema:
    return frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema


def presence_mapping(fm: FieldMapping, read_schema: Mapping[str, pl.DataType], target: str) -> FieldMapping:
    """A mapping of ``fm``'s source to ``target`` that is null exactly where the source is null, at no cost.

    The stage counts cast errors as present sources minus present targets; this carries the source along
    with an identity cast (its own read type) instead of a conversion to text.
    """
    dtypes = {hit.dtype for hit in resolve(read_schema, fm.source, False) if hit.dtype is not None and not hit.rest}
    dtype = dtypes.pop() if len(dtypes) == 1 else pl.String()
    if isinstance(dtype, pl.Struct):
        dtype = parse_glue_type("struct")
    elif isinstance(dtype, pl.List | pl.Array):
        dtype = parse_glue_type("array")
    elif not isinstance(dtype, pl.Boolean | pl.Int64 | pl.Float64 | pl.Datetime):  # Datetime: typed Parquet
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
        schema = schema_of(frame)
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


def cast_error_count(
    frame: Frame, mappings: Mappings, case_sensitive: bool = False, *, plain_timestamps: PlainTimestamps = False
) -> pl.Expr:
    """Per row of the original frame: how many mapped values were non-null but became null (UInt32).

    Mappings to the ``null`` type drop their value on purpose and are not counted. ``plain_timestamps``
    counts the errors of a speculative form (see :meth:`ApplyMapping.apply`).
    """
    parsed = parse_mappings(mappings)
    schema = schema_of(frame)
    failures: list[pl.Expr] = []
    for fm in parsed:
        if isinstance(fm.target_type, pl.Null):
            continue
        value, present = _mapped_value(schema, fm, case_sensitive, plain_timestamps)
        if present is not None:
            failures.append((present & value.is_null()).cast(pl.UInt32))
    if not failures:
        return pl.repeat(pl.lit(0, pl.UInt32), pl.len()).alias("cast_errors")
    return pl.sum_horizontal(failures).cast(pl.UInt32).alias("cast_errors")

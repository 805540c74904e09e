"""Glue's ApplyMapping for polars.

A mapping is ``(source_path, source_type, target_path, target_type)``. Only mapped fields survive, dotted
paths read and build nested structs (``items[0].sku`` reads an array element), source names match
case-insensitively by default, a missing source gives a typed null column and a value that cannot be cast
becomes null (Glue never raises on data). Casts follow Spark's non-ANSI rules, which is what Glue runs on
(checked against Spark 3.5 by glueflow_dagster_tests/core/test_spark_differential.py; the deliberate
differences are listed in README.md), expressed as lazy polars expressions so the result runs on the
streaming engine, with no Python callback (zone names included).

This package deliberately imports nothing from dagster: it is plain data logic.

The package, by concept: ``parse`` (type names, paths, the validated mapping list), ``resolve`` (source
paths against a schema; the read schema), ``casts`` (Spark's casts as polars expressions), ``fast`` (the
casts' fast paths: common text forms with fixed formats), ``zones`` (zone names, natively) and ``apply``
(ApplyMapping, the cast error count). Every public name is importable from here.
"""

from glueflow_dagster.core.mapping.apply import (
    ApplyMapping,
    cast_error_count,
    presence_mapping,
)
from glueflow_dagster.core.mapping.parse import (
    FieldMapping,
    Frame,
    MappingError,
    MappingLike,
    Mappings,
    PlainTimestamps,
    parse_glue_type,
    parse_mappings,
    parse_path,
)
from glueflow_dagster.core.mapping.resolve import source_read_schema

__all__ = [
    "ApplyMapping",
    "FieldMapping",
    "Frame",
    "MappingError",
    "MappingLike",
    "Mappings",
    "PlainTimestamps",
    "cast_error_count",
    "parse_glue_type",
    "parse_mappings",
    "parse_path",
    "presence_mapping",
    "source_read_schema",
]

"""The output mapping's columns as an Iceberg schema, converted from polars' types without pyarrow.

The table's schema is the mapped frame's schema as the data files hold it (timestamps as UTC
microseconds: Iceberg's ``timestamptz``). pyiceberg converts an Arrow schema (``pyarrow_to_schema``), but
importing pyarrow before the stage costs the Output run's process about 50 MB resident through the stage
(see ``core.iceberg_io``). :func:`iceberg_schema` maps polars' types straight to Iceberg's, as the Arrow
path does (every field optional, as polars' fields are nullable), and takes the Arrow path for any type it
does not know, so the result is always the one pyiceberg would have made
(``glueflow_dagster_tests/core/test_iceberg_schema.py`` compares the two).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import polars as pl
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
    TimestampType,
    TimestamptzType,
)

__all__ = ["iceberg_schema"]

_SIMPLE: dict[type[pl.DataType], IcebergType] = {
    pl.Boolean: BooleanType(),
    pl.Int8: IntegerType(),
    pl.Int16: IntegerType(),
    pl.Int32: IntegerType(),
    pl.UInt8: IntegerType(),
    pl.UInt16: IntegerType(),
    pl.Int64: LongType(),
    pl.UInt32: IntegerType(),  # as pyiceberg maps uint32
    pl.Float32: FloatType(),
    pl.Float64: DoubleType(),
    pl.String: StringType(),
    pl.Binary: BinaryType(),
    pl.Date: DateType(),
}


class _Unknown(Exception):
    """A polars type this module does not map: the Arrow path converts the schema."""


def _convert(dtype: pl.DataType, ids: Iterator[int]) -> IcebergType:
    simple = _SIMPLE.get(type(dtype))
    if simple is not None:
        return simple
    if isinstance(dtype, pl.Datetime) and dtype.time_unit in ("us", "ms"):
        return TimestamptzType() if dtype.time_zone is not None else TimestampType()
    if isinstance(dtype, pl.Decimal) and dtype.precision is not None:
        return DecimalType(dtype.precision, dtype.scale)
    if isinstance(dtype, pl.List):
        element_id = next(ids)
        return ListType(element_id, _convert(dtype.inner, ids), element_required=False)
    if isinstance(dtype, pl.Struct):
        fields = [(next(ids), field) for field in dtype.fields]
        return StructType(
            *(NestedField(i, field.name, _convert(field.dtype, ids), required=False) for i, field in fields)
        )
    raise _Unknown(str(dtype))


def iceberg_schema(schema: pl.Schema) -> Schema:
    """``schema`` in Iceberg's types (field ids numbered from 1; a table assigns its own on create)."""
    ids = itertools.count(1)
    try:
        top = [(next(ids), name, dtype) for name, dtype in schema.items()]
        return Schema(*(NestedField(i, name, _convert(dtype, ids), required=False) for i, name, dtype in top))
    except _Unknown:
        from pyiceberg.catalog import Catalog

        return Catalog._convert_schema_if_needed(schema.to_arrow())

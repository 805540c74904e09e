"""Parquet in and out: one reader (:class:`ParquetSource` behind the converter) and one writer.

Read: polars' ``scan_parquet``, types kept (the JSON lines the query scans carry them as JSON values or
their text form, which the mapping's casts read back: timestamps, dates, decimals). An object polars
cannot read (not Parquet, truncated, corrupt) goes to the quarantine whole: Parquet has no lines to
salvage.

Write: polars' ``sink_parquet``, ``snappy`` (Glue's default), ``gzip``, ``zstd`` or uncompressed; the
mapping's types become Parquet's (see docs/formats.md): timestamps as INT64 microseconds adjusted to UTC
(a timestamp without a zone is taken as UTC, as Glue's are), ``decimal(p,s)`` as DECIMAL, date as DATE,
struct and array as Parquet's nested groups and lists.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import polars as pl

from glueflow_dagster.core.formats.convert import unreadable
from glueflow_dagster.core.formats.partitions import parts_target
from glueflow_dagster.core.quarantine import ObjectReport

__all__ = ["ParquetSource", "ParquetWriter", "parquet_object_key"]

# Part name infixes, as Spark names them (part-...-c000.snappy.parquet).
_INFIX = {"snappy": ".snappy", "gzip": ".gz", "zstd": ".zstd", "none": ""}
_CODEC = {"snappy": "snappy", "gzip": "gzip", "zstd": "zstd", "none": "uncompressed"}


@dataclass(frozen=True)
class ParquetSource:
    """polars' ``scan_parquet``; an object it cannot read is unreadable as a whole."""

    def frame(self, path: Path, workdir: Path, stack: ExitStack) -> pl.LazyFrame:
        return pl.scan_parquet(path, glob=False, hive_partitioning=False)

    def inspect(
        self, path: Path, uri: str, workdir: Path, stack: ExitStack, error: BaseException
    ) -> tuple[pl.LazyFrame | None, ObjectReport]:
        return None, unreadable(uri, error)


def parquet_object_key(name_prefix: str, part: int, compression: str) -> str:
    return f"{name_prefix}-part-r-{part:05d}{_INFIX[compression]}.parquet"


def utc_timestamps(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Top-level timestamps as microseconds in UTC (Parquet's INT64 TIMESTAMP(MICROS, isAdjustedToUTC))."""
    columns = []
    for name, dtype in frame.collect_schema().items():
        if isinstance(dtype, pl.Datetime):
            column = pl.col(name).dt.cast_time_unit("us")
            zoned = column.dt.convert_time_zone("UTC") if dtype.time_zone else column.dt.replace_time_zone("UTC")
            columns.append(zoned)
    return frame.with_columns(columns) if columns else frame


@dataclass(frozen=True)
class ParquetWriter:
    """Parquet parts, Hive-partitioned when ``partition_keys``."""

    compression: str = "snappy"
    partition_keys: tuple[str, ...] = ()
    single_part: bool = False  # the query writes at most records_per_part records (stage.write.single_part)
    # Timestamps are written typed (stage.plan maps the plain form to timestamps, not to its source text).
    typed_timestamps: ClassVar[bool] = True

    @property
    def plain_sink_applies(self) -> bool:
        """Whether ``single_part`` makes the sink one plain file (not for Hive folders)."""
        return not self.partition_keys

    def object_key(self, name_prefix: str, part: int) -> str:
        return parquet_object_key(name_prefix, part, self.compression)

    def sink(
        self, frame: pl.LazyFrame, out_dir: Path, first_part: int, records_per_part: int, files: ExitStack
    ) -> pl.LazyFrame:
        def part_name(index: int) -> str:
            return f"part-{first_part + index:05d}.parquet"

        target = parts_target(out_dir, self.partition_keys, part_name, records_per_part, single_part=self.single_part)
        return utc_timestamps(frame).sink_parquet(target, compression=_CODEC[self.compression], lazy=True)

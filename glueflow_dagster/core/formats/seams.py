"""The reader and the writer of a stage request: its source's format and its target's, at the stage's seams.

JSON keeps its readers (``stage.read.reader_for``: JSON lines, or Glue's multiline / jsonPath forms) and its
writer (``stage.write.JsonLinesWriter``), byte for byte; CSV and Parquet read through the converter
(``formats.convert``) and write with their own writers. A partitioned location's reader gives the partition
columns back from the objects' ``column=value/`` folders.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from glueflow_dagster.core.compression import DEFAULT_GZIP_LEVEL
from glueflow_dagster.core.formats.convert import ConvertingReader
from glueflow_dagster.core.formats.csv import CsvSource, CsvWriter
from glueflow_dagster.core.formats.iceberg import IcebergDataWriter
from glueflow_dagster.core.formats.options import DataFormat, compressions_of
from glueflow_dagster.core.formats.parquet import ParquetSource, ParquetWriter
from glueflow_dagster.core.formats.partitions import partition_values, with_partition_columns
from glueflow_dagster.core.json_reader import JsonFormat
from glueflow_dagster.core.mapping import FieldMapping
from glueflow_dagster.core.quarantine import ObjectReport
from glueflow_dagster.core.stage.read import Reader, reader_for
from glueflow_dagster.core.stage.write import JsonLinesWriter, Writer

__all__ = ["PartitionedJsonReader", "reader_of", "writer_of"]


@dataclass(frozen=True)
class PartitionedJsonReader:
    """JSON read object by object (no group files: each object has its own partition values), each record
    given its object's partition columns."""

    inner: Reader
    partition_keys: tuple[str, ...]
    groups_small_objects: bool = False

    def as_json_lines(
        self, paths: Sequence[Path], uris: Sequence[str], workdir: Path, stack: ExitStack
    ) -> tuple[list[Path], list[str], list[ObjectReport]]:
        kept, kept_uris, reports = self.inner.as_json_lines(paths, uris, workdir, stack)
        extended = []
        for path, uri in zip(kept, kept_uris, strict=True):
            out = workdir / f"partitioned-{uuid.uuid4().hex}.json"
            stack.callback(out.unlink, missing_ok=True)
            with_partition_columns(path, partition_values(uri, self.partition_keys), out)
            extended.append(out)
        return extended, kept_uris, reports


def reader_of(data_format: DataFormat, json_format: JsonFormat | None, mappings: Sequence[FieldMapping] = ()) -> Reader:
    """The reader of a source location: its format, its options, its partition columns; CSV and Parquet
    convert only the columns ``mappings`` read (all of them without mappings)."""
    keys = data_format.partition_keys
    columns = frozenset(str(fm.source[0]).lower() for fm in mappings)
    if data_format.name == "csv":
        return ConvertingReader(CsvSource(data_format.csv), keys, columns)
    if data_format.name == "parquet":
        return ConvertingReader(ParquetSource(), keys, columns)
    reader = reader_for(json_format)
    return PartitionedJsonReader(reader, keys) if keys else reader


def writer_of(data_format: DataFormat, compression: str, level: int | None) -> Writer:
    """The writer of a target location; ValueError (one line) for a compression its format does not take."""
    allowed = compressions_of(data_format.name)
    if compression not in allowed:
        raise ValueError(f"compression must be one of {', '.join(allowed)} for {data_format.name}, got {compression!r}")
    gzip_level = (level or DEFAULT_GZIP_LEVEL) if compression == "gzip" else None
    keys = data_format.partition_keys
    if data_format.name == "csv":
        return CsvWriter(data_format.csv, compression, gzip_level, keys)
    if data_format.name == "parquet":
        return ParquetWriter(compression, keys)
    if data_format.name == "iceberg":
        return IcebergDataWriter(compression, keys)
    return JsonLinesWriter(compression, gzip_level, keys)

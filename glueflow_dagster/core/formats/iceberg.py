"""``output.format: iceberg``: the flow file's Iceberg keys, checked at load (no pyiceberg import here).

The Output may be an Apache Iceberg table instead of a prefix of parts (``core.iceberg_table`` opens it,
``core.iceberg_commit`` commits a run to it). The keys, on the ``output`` location only:

* ``table: <namespace>.<name>``: the table in its catalog (two identifiers: letters, digits, ``_``);
* ``catalog: {type: sql | glue | rest, ...}``: pyiceberg's catalog properties (``uri`` for ``sql`` and
  ``rest``, ``warehouse`` taken from ``uri`` below); without it a SQLite SQL catalog beside the flow file
  (``.glueflow/catalog.db``);
* ``uri``: the warehouse, where the table's metadata and data files live (a local folder or ``s3://``);
* ``partition_keys``: the partition spec: a column (identity) or a transform ``year(ts)``,
  ``month(ts)``, ``day(ts)``, ``hour(ts)``.

The table's data files are Parquet (:class:`IcebergDataWriter`), one partition per file: Iceberg gives
each data file one partition, which pyiceberg reads from the file's column statistics.

Every refusal is one line naming the key (the caller prefixes the file, the flow and the location).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from glueflow_dagster.core.formats.parquet import parquet_object_key, utc_timestamps
from glueflow_dagster.core.formats.partitions import parts_target

__all__ = [
    "CATALOG_TYPES",
    "DEFAULT_CATALOG_FILE",
    "ICEBERG",
    "ICEBERG_OPTIONS",
    "IcebergDataWriter",
    "PARTITION_TRANSFORMS",
    "catalog_options",
    "partition_column",
    "partition_problem",
    "table_name",
    "table_options",
]

ICEBERG = "iceberg"
ICEBERG_OPTIONS = ("table", "catalog")  # keys of the output location with format: iceberg only
CATALOG_TYPES = ("sql", "glue", "rest")
PARTITION_TRANSFORMS = ("year", "month", "day", "hour")
# Without `catalog:`: a SQLite SQL catalog here, relative to the flow file's folder (the project's root for
# a component instance: where local `uri`s resolve).
DEFAULT_CATALOG_FILE = ".glueflow/catalog.db"
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
_TABLE = re.compile(rf"(?P<namespace>{_IDENTIFIER})\.(?P<name>{_IDENTIFIER})")
_TRANSFORM_KEY = re.compile(r"(?P<transform>[a-z]+)\((?P<column>[^()]+)\)")
_PROPERTY = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def table_name(value: Any) -> str:
    """``namespace.name``; ValueError "table: problem" for anything else."""
    if not isinstance(value, str) or _TABLE.fullmatch(value) is None:
        expected = "expected <namespace>.<name> (letters, digits, _; each starting with a letter or _)"
        raise ValueError(f"table: {expected}, got {_short(value)}")
    return value


def catalog_options(value: Any) -> dict[str, str]:
    """pyiceberg's catalog properties: ``type`` one of :data:`CATALOG_TYPES`, every value a string, number or
    boolean (as text); ValueError "catalog[.key]: problem". ``warehouse`` is the location's ``uri``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"catalog: expected a mapping like {{type: sql, uri: ...}}, got {_short(value)}")
    kind = value.get("type")
    if kind not in CATALOG_TYPES:
        raise ValueError(f"catalog.type: expected one of {', '.join(CATALOG_TYPES)}, got {_short(kind)}")
    options: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or _PROPERTY.fullmatch(key) is None:
            raise ValueError(f"catalog: property {_short(key)} is not a name (letters, digits, _ . -)")
        if key == "warehouse":
            raise ValueError("catalog.warehouse: the warehouse is the location's uri (set output.uri)")
        if isinstance(item, bool):
            item = "true" if item else "false"
        if not isinstance(item, str | int | float) or (isinstance(item, str) and not item.strip()):
            raise ValueError(f"catalog.{key}: expected a non-empty string, number or boolean")
        options[key] = str(item)
    if kind in ("rest",) and "uri" not in options:
        raise ValueError("catalog.uri: required with type: rest (the REST catalog's URL)")
    return options


def partition_column(key: str) -> tuple[str, str]:
    """A ``partition_keys`` entry as (source column, transform): ``ts`` is identity, ``day(ts)`` a transform;
    ValueError for a transform Iceberg has but glueflow does not take (or that Iceberg has not)."""
    matched = _TRANSFORM_KEY.fullmatch(key.strip())
    if matched is None:
        return key.strip(), "identity"
    transform = matched["transform"]
    if transform not in PARTITION_TRANSFORMS:
        allowed = ", ".join(f"{t}(column)" for t in PARTITION_TRANSFORMS)
        raise ValueError(f"partition key {_short(key)}: unknown transform (allowed: column, {allowed})")
    return matched["column"].strip(), transform


def table_options(body: Mapping[str, Any], base_dir: Path) -> tuple[str, dict[str, str]]:
    """The output location's ``table`` (required) and ``catalog`` (default: a SQLite SQL catalog at
    ``<base_dir>/.glueflow/catalog.db``, so the demo needs no set-up); ValueError "key: problem"."""
    table = table_name(body.get("table"))
    if "catalog" not in body:
        database = (base_dir / DEFAULT_CATALOG_FILE).resolve()
        return table, {"type": "sql", "uri": f"sqlite:///{database}"}
    return table, catalog_options(body["catalog"])


def partition_problem(keys: Sequence[str], columns: Sequence[str]) -> str | None:
    """What is wrong with an Iceberg partition spec over the mapped top-level ``columns``, or None."""
    for key in keys:
        try:
            column = partition_column(key)[0]
        except ValueError as err:
            return str(err)
        if column not in columns:
            return f"partition key {_short(key)}: {_short(column)} is not a column the output mapping maps to"
    return None


# polars' truncation of a timestamp or date to the start of its transform's period (UTC: the writer's zone).
_TRUNCATE = {"hour": "1h", "day": "1d", "month": "1mo", "year": "1y"}
_CODEC = {"snappy": "snappy", "gzip": "gzip", "zstd": "zstd", "none": "uncompressed"}


def partition_expression(key: str, index: int) -> pl.Expr:
    """The value that decides a record's data file: the column (identity) or its period's start."""
    column, transform = partition_column(key)
    value = pl.col(column) if transform == "identity" else pl.col(column).dt.truncate(_TRUNCATE[transform])
    return value.alias(f"__glueflow_partition_{index}")


@dataclass(frozen=True)
class IcebergDataWriter:
    """An Iceberg table's data files: Parquet parts (as :class:`~glueflow_dagster.core.formats.parquet.
    ParquetWriter` writes them: timestamps as UTC microseconds, Iceberg's ``timestamptz``), flat in one
    folder, each file holding one partition of the spec (``partition_keys``) and every column."""

    compression: str = "snappy"
    partition_keys: tuple[str, ...] = ()
    single_part: bool = False  # the query writes at most records_per_part records (stage.write.single_part)
    typed_timestamps: ClassVar[bool] = True

    @property
    def plain_sink_applies(self) -> bool:
        """Whether ``single_part`` makes the sink one plain file (not for a partitioned table)."""
        return not self.partition_keys

    def object_key(self, name_prefix: str, part: int) -> str:
        return parquet_object_key(name_prefix, part, self.compression)

    def sink(
        self, frame: pl.LazyFrame, out_dir: Path, first_part: int, records_per_part: int, files: ExitStack
    ) -> pl.LazyFrame:
        frame = utc_timestamps(frame)
        codec = _CODEC[self.compression]
        if not self.partition_keys:
            target = parts_target(
                out_dir,
                (),
                lambda index: f"part-{first_part + index:05d}.parquet",
                records_per_part,
                single_part=self.single_part,
            )
            return frame.sink_parquet(target, compression=codec, lazy=True)
        numbers = itertools.count(first_part)  # one number per file, across partitions: names stay flat
        by_partition = pl.PartitionBy(
            str(out_dir),
            key=[partition_expression(key, index) for index, key in enumerate(self.partition_keys)],
            include_key=False,  # the keys are computed columns: the data columns all stay in the files
            file_path_provider=lambda _args: f"part-{next(numbers):05d}.parquet",
            max_rows_per_file=records_per_part,
            approximate_bytes_per_file=None,
        )
        return frame.sink_parquet(by_partition, compression=codec, lazy=True)

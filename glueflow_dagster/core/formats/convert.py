"""The reader side of CSV and Parquet: objects converted to the JSON lines the stage's query scans.

The stage's data path is one query over JSON lines (``stage.plan``): its read schema, its case-insensitive
names, its tolerant read of mixed types and its quarantine all work on them. A CSV or Parquet reader plugs
into the reader seam (``stage.read.Reader``) by turning its objects into JSON lines first: one polars
streaming query per batch of objects (``scan_csv`` / ``scan_parquet`` -> ``sink_ndjson``, no per-record
Python), the partition columns of partitioned locations added as literal columns. Many small objects go
through one query (Glue's groupFiles: a query pays per file it opens, not per record); when a batch does
not read, its objects are converted one by one and the ones that still do not read are inspected by the
format (:meth:`FrameSource.inspect`: a CSV's malformed rows with their line numbers, a Parquet object whole).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl

from glueflow_dagster.core.formats.partitions import literal_columns, partition_values
from glueflow_dagster.core.quarantine import READ_ERRORS, ObjectReport, first_line

__all__ = ["ConvertingReader", "FrameSource", "batches", "json_ready", "unreadable"]

_BATCH_BYTES = 64 * 1024**2  # stored bytes of the objects one conversion query reads
_BATCH_OBJECTS = 256  # and at most this many objects (a query plans one scan per object)


class FrameSource(Protocol):
    """One format's scan of one local object, and its careful reading when the scan fails."""

    def frame(self, path: Path, workdir: Path, stack: ExitStack) -> pl.LazyFrame:
        """The object's records (no partition columns: the converter adds them); files made here are
        removed when ``stack`` closes."""
        ...

    def inspect(
        self, path: Path, uri: str, workdir: Path, stack: ExitStack, error: BaseException
    ) -> tuple[pl.LazyFrame | None, ObjectReport]:
        """An object the scan failed on (with ``error``): its readable records (or None) and the report of
        what was not."""
        ...


def json_ready(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Columns the JSON writer cannot write as text it can: binary as base64 (as Spark's to_json writes it)."""
    schema = frame.collect_schema()
    binary = [name for name, dtype in schema.items() if isinstance(dtype, pl.Binary)]
    return frame.with_columns(pl.col(name).bin.encode("base64") for name in binary) if binary else frame


@dataclass(frozen=True)
class ConvertingReader:
    """A :class:`stage.read.Reader` for a format polars scans: objects -> JSON lines, in batches."""

    source: FrameSource
    partition_keys: tuple[str, ...] = ()
    # The mapped top-level source names, lower case: only these columns are converted (the query reads no
    # other; names match case-insensitively, as the mapping's do). Empty: every column.
    columns: frozenset[str] = frozenset()
    groups_small_objects: bool = False  # objects are batched here, by the query, not concatenated as bytes

    def as_json_lines(
        self, paths: Sequence[Path], uris: Sequence[str], workdir: Path, stack: ExitStack
    ) -> tuple[list[Path], list[str], list[ObjectReport]]:
        kept: list[Path] = []
        kept_uris: list[str] = []
        reports: list[ObjectReport] = []
        for batch in batches(list(zip(paths, uris, strict=True))):
            if len(batch) > 1:
                frames = [self.frame_of(path, uri, workdir, stack) for path, uri in batch]
                converted = _converted(frames, workdir, stack)
                if isinstance(converted, Path):
                    kept.append(converted)
                    kept_uris.append(f"{batch[0][1]} and {len(batch) - 1} more")
                    continue
            for path, uri in batch:  # one object, or a batch that did not read: object by object
                one = _converted([self.frame_of(path, uri, workdir, stack)], workdir, stack)
                if not isinstance(one, Path):
                    frame, report = self.source.inspect(path, uri, workdir, stack, one)
                    one = None if frame is None else _converted([self.with_partitions(frame, uri)], workdir, stack)
                    if isinstance(one, BaseException):  # what inspection kept does not read either
                        report = unreadable(uri, one)
                    reports.append(report)
                if isinstance(one, Path):
                    kept.append(one)
                    kept_uris.append(uri)
        return kept, kept_uris, reports

    def frame_of(self, path: Path, uri: str, workdir: Path, stack: ExitStack) -> pl.LazyFrame:
        return self.with_partitions(self._projected(self.source.frame(path, workdir, stack)), uri)

    def _projected(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """Only the mapped columns (at least one column, so a record that maps nothing is still a record)."""
        if not self.columns:
            return frame
        try:
            names = frame.collect_schema().names()
        except READ_ERRORS:
            return frame  # the conversion fails on it too, and the object is inspected
        kept = [name for name in names if name.lower() in self.columns] or names[:1]
        return frame.select(kept) if len(kept) < len(names) else frame

    def with_partitions(self, frame: pl.LazyFrame, uri: str) -> pl.LazyFrame:
        if not self.partition_keys:
            return frame
        return frame.with_columns(literal_columns(partition_values(uri, self.partition_keys)))


def _converted(frames: list[pl.LazyFrame], workdir: Path, stack: ExitStack) -> Path | BaseException:
    """The frames as one JSON-lines file (removed when ``stack`` closes), or the error they do not read with."""
    out = workdir / f"converted-{uuid.uuid4().hex}.json"
    stack.callback(out.unlink, missing_ok=True)
    try:
        frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
        json_ready(frame).sink_ndjson(out, engine="streaming")
    except READ_ERRORS as err:
        out.unlink(missing_ok=True)
        return err
    return out


def batches(objects: list[tuple[Path, str]]) -> Iterator[list[tuple[Path, str]]]:
    batch: list[tuple[Path, str]] = []
    size = 0
    for path, uri in objects:
        stored = path.stat().st_size
        if batch and (size + stored > _BATCH_BYTES or len(batch) >= _BATCH_OBJECTS):
            yield batch
            batch, size = [], 0
        batch.append((path, uri))
        size += stored
    if batch:
        yield batch


def unreadable(uri: str, err: BaseException) -> ObjectReport:
    """The report of an object no reader reads: quarantined whole."""
    cause = first_line(err)
    return ObjectReport(uri, 0, 0, f"{uri}: {cause}", None, None, cause)

"""CSV and Parquet scanned natively by the stage's query: no JSON lines written and parsed again.

The stage's query maps a frame whose columns are the read schema's (``stage.plan``: the mapped source
fields, with the JSON types the sample shows). For CSV and Parquet that frame is built straight from the
format's scan (``scan_csv`` / ``scan_parquet``, :class:`convert.FrameSource`): each object's columns are
matched to the read schema case-insensitively, given the type and the text its JSON lines would hold
(:func:`json_expr`: a timestamp as the JSON writer writes it, an Int32 as an Int64, binary as base64, ...)
and the objects of a group are concatenated into one streaming query. The mapping therefore sees exactly
the values the converting path (``formats.convert``: objects -> JSON lines -> the JSON query) gives it,
and the output is the same, record for record.

The native path is the clean case's. A group goes the converting path instead, whole, when the native
scan cannot promise the same result: a column whose JSON form has no exact native equivalent (a
duration, a 64-bit unsigned integer, nested values with non-JSON leaves, another type than the plan's),
two columns of an object spelling the same mapped name, or when the native query fails to read (a
malformed CSV row, an unreadable Parquet object): the converting path then finds the bad rows with their
line numbers, or the unreadable object, and quarantines them as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import polars as pl

from glueflow_dagster.core.formats.convert import ConvertingReader, batches, json_ready
from glueflow_dagster.core.formats.csv import CsvSource
from glueflow_dagster.core.mapping import FieldMapping
from glueflow_dagster.core.quarantine import READ_ERRORS

__all__ = [
    "compressed",
    "concatenated",
    "json_dtype",
    "json_expr",
    "lines_bound",
    "native_frames",
    "records_bound",
    "sample_json_lines",
    "timestamp_sources",
    "unreadable_natively",
]

_SAMPLE_ROWS = 1000  # rows of a group's first objects written as JSON lines to plan the run from
_PROBE_OBJECTS = 3  # objects tried one by one when the first batch's sample does not read
_INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)
_JSON_LEAVES = (pl.Int64, pl.Float64, pl.Boolean, pl.String)
# gzip, zstd and zlib streams (polars inflates them to read, hence to count): no cheap count.
_COUNTED_OBJECTS = 64  # objects of a group counted at most (records_bound)
_COUNTED_MEAN_BYTES = 1024**2  # and only when they hold this many stored bytes on average
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")
# Text forms of the JSON writer (chrono's %.f: no fraction, or 3, 6 or 9 digits as needed).
_NAIVE_TIMESTAMP = "%Y-%m-%d %H:%M:%S%.f"
_ZONED_TIMESTAMP = "%Y-%m-%dT%H:%M:%S%.f%:z"


def json_dtype(dtype: pl.DataType) -> pl.DataType | None:
    """The type polars reads back from the JSON lines polars writes for ``dtype``; None where the native
    value cannot be given the same value without the JSON detour."""
    if isinstance(dtype, _INTEGERS):
        return pl.Int64()
    if isinstance(dtype, pl.Float64 | pl.Float32):
        return pl.Float64()
    if isinstance(dtype, pl.Boolean | pl.Null):
        return dtype
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum | pl.Date | pl.Datetime | pl.Decimal | pl.Binary):
        return pl.String()
    if isinstance(dtype, pl.Struct | pl.List) and _json_leaves_only(dtype):
        return dtype
    return None  # Time, Duration, UInt64, Int128, nested with other leaves, Object, ...


def _json_leaves_only(dtype: pl.DataType) -> bool:
    if isinstance(dtype, pl.Struct):
        return bool(dtype.fields) and all(_json_leaves_only(f.dtype) for f in dtype.fields)
    if isinstance(dtype, pl.List):
        return _json_leaves_only(dtype.inner)
    return isinstance(dtype, _JSON_LEAVES)


def json_expr(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """``column`` (of ``dtype``) as the value polars reads back from its JSON lines (see :func:`json_dtype`)."""
    if isinstance(dtype, pl.Datetime):
        zoned = dtype.time_zone is not None
        return column.dt.to_string(_ZONED_TIMESTAMP if zoned else _NAIVE_TIMESTAMP)
    if isinstance(dtype, pl.Binary):
        return column.bin.encode("base64")
    if isinstance(dtype, pl.Float32):
        return column.cast(pl.String).cast(pl.Float64)  # 0.1f is written "0.1" and read back as 0.1
    target = json_dtype(dtype)
    return column if target is None or target == dtype else column.cast(target)


def _read_as(column: pl.Expr, have: pl.DataType, want: pl.DataType) -> pl.Expr | None:
    """A JSON-typed value read as the read schema's type, as ``scan_ndjson(schema=...)`` reads it; None
    where that read is not a plain cast (it would fail, or give the text of nested JSON)."""
    if have == want:
        return column
    if isinstance(have, pl.Null):
        return column.cast(want)
    if isinstance(want, pl.String) and isinstance(have, pl.Int64 | pl.Boolean):
        return column.cast(pl.String)  # 5 -> "5", true -> "true": the JSON text
    if isinstance(want, pl.Float64) and isinstance(have, pl.Int64):
        return column.cast(pl.Float64)
    return None


def _object_frame(
    reader: ConvertingReader,
    path: Path,
    uri: str,
    read_schema: pl.Schema,
    timestamps: frozenset[str],
    workdir: Path,
    stack: ExitStack,
) -> pl.LazyFrame | None | bool:
    """One object's records with the read schema's columns (False: the object holds no column, hence no
    record; None: not natively readable with the same result). A timestamp column named in ``timestamps``
    stays a timestamp (the mapping casts it to the same timestamp its text would parse to)."""
    frame = reader.with_partitions(reader.source.frame(path, workdir, stack), uri)
    try:
        schema = frame.collect_schema()
    except READ_ERRORS:
        return None
    if not len(schema):
        return False
    by_name: dict[str, list[str]] = {}
    for name in schema.names():
        by_name.setdefault(name.lower(), []).append(name)
    spellings: dict[str, int] = {}
    for name in read_schema.names():
        spellings[name.lower()] = spellings.get(name.lower(), 0) + 1
    columns: list[pl.Expr] = []
    missing: list[pl.Expr] = []
    for name, want in read_schema.items():
        found = by_name.get(name.lower(), [])
        if len(found) > 1:
            return None  # two spellings in one object: the JSON path reads them as two fields
        if found and found[0] != name and spellings[name.lower()] > 1:
            # The plan reads several spellings (the sample held them): each object's column is read
            # under its own spelling, as the JSON query reads its key, and the others are null.
            if found[0] not in read_schema:
                return None  # a spelling the plan does not read yet: the JSON path learns it
            found = []
        if not found:
            missing.append(pl.lit(None, want).alias(name))
            columns.append(pl.col(name))
            continue
        if isinstance(schema[found[0]], pl.Datetime) and name.lower() in timestamps and want == pl.String():
            columns.append(pl.col(found[0]).alias(name))
            continue
        have = json_dtype(schema[found[0]])
        expr = None if have is None else _read_as(json_expr(pl.col(found[0]), schema[found[0]]), have, want)
        if expr is None:
            return None
        columns.append(expr.alias(name))
    return (frame.with_columns(missing) if missing else frame).select(columns)


def native_frames(
    reader: ConvertingReader,
    paths: Sequence[Path],
    uris: Sequence[str],
    read_schema: pl.Schema,
    workdir: Path,
    stack: ExitStack,
    timestamps: frozenset[str] = frozenset(),
) -> list[pl.LazyFrame | None] | None:
    """Each object's records as a frame of the read schema's columns (None for an object with no column,
    hence no record), or None when the group must take the converting path (see the module docstring).
    ``timestamps``: the lower-case names of top-level columns mapped to timestamps only (see
    :func:`timestamp_sources`), kept typed where they are."""
    frames: list[pl.LazyFrame | None] = []
    for path, uri in zip(paths, uris, strict=True):
        frame = _object_frame(reader, path, uri, read_schema, timestamps, workdir, stack)
        if frame is None:
            return None
        frames.append(None if frame is False else frame)  # type: ignore[arg-type]
    return frames


def concatenated(frames: Sequence[pl.LazyFrame | None], read_schema: pl.Schema) -> pl.LazyFrame:
    """The objects' frames as one (a streaming query reads them one after the other)."""
    kept = [frame for frame in frames if frame is not None]
    if not kept:
        return pl.LazyFrame(schema=read_schema)
    return kept[0] if len(kept) == 1 else pl.concat(kept, how="vertical", parallel=False)


def compressed(path: Path) -> bool:
    """Whether the object is a gzip, zstd or zlib stream (sniffed from its first bytes, as polars does)."""
    with open(path, "rb") as probe:
        return probe.read(4).startswith(_COMPRESSED_MAGIC)


def lines_bound(paths: Sequence[Path], at_most: int) -> int | None:
    """The lines of JSON-lines files, a bound on their records (a record is one line; blank lines count
    too), where counting pays: up to _COUNTED_OBJECTS uncompressed files of _COUNTED_MEAN_BYTES on average
    (polars' CSV line count with quoting off: about 6 ms per 50 MB); None otherwise or when it exceeds
    ``at_most`` (nothing more to learn)."""
    if not paths or len(paths) > _COUNTED_OBJECTS or any(map(compressed, paths)):
        return None
    if sum(path.stat().st_size for path in paths) < _COUNTED_MEAN_BYTES * len(paths):
        return None
    total = 0
    try:
        for path in paths:
            scan = pl.scan_csv(path, has_header=False, separator="\x1f", quote_char=None, infer_schema=False)
            total += int(scan.select(pl.len()).collect().item())
            if total > at_most:
                return None
    except READ_ERRORS:
        return None
    return total


def records_bound(
    reader: ConvertingReader, frames: Sequence[pl.LazyFrame | None], paths: Sequence[Path], at_most: int
) -> int | None:
    """A number of records the objects' frames hold at most, where it is known cheaply, else None.

    Uncompressed CSV objects of at most ``at_most`` bytes in all hold at most that many records (a record
    takes a byte at least): nothing is read. Otherwise the records are counted (a Parquet footer's row
    counts, polars' fast CSV count: about 5 ms per 50 MB), but only for up to _COUNTED_OBJECTS objects of
    _COUNTED_MEAN_BYTES on average: a count costs about 0.3-0.4 ms per object, what a tiny object's whole
    read costs, while the plain sink saves about 0.3 ms per MB. None too for a compressed object (counting
    it would inflate it) and for a count that fails (the query then finds out why).
    """
    kept = [path for frame, path in zip(frames, paths, strict=True) if frame is not None]
    if len(kept) > _COUNTED_OBJECTS or any(map(compressed, kept)):
        return None
    stored = sum(path.stat().st_size for path in kept)
    if isinstance(reader.source, CsvSource) and stored <= at_most:
        return stored
    if not kept or stored < _COUNTED_MEAN_BYTES * len(kept):
        return None
    try:
        return sum(int(frame.select(pl.len()).collect().item()) for frame in frames if frame is not None)
    except READ_ERRORS:
        return None


def unreadable_natively(frames: Sequence[pl.LazyFrame | None]) -> set[int]:
    """Indices of the frames that do not read (every column parsed, nothing written): the objects of a
    group whose native query failed that the converting path must read (bad rows, unreadable objects)."""
    bad: set[int] = set()
    for index, frame in enumerate(frames):
        if frame is None:
            continue
        try:
            frame.select(pl.all().null_count()).collect(engine="streaming")
        except READ_ERRORS:
            bad.add(index)
    return bad


def timestamp_sources(mappings: Sequence[FieldMapping]) -> frozenset[str]:
    """Lower-case names of the top-level sources every mapping of which targets a timestamp: a typed
    timestamp there is mapped as such, not formatted as text and parsed back."""
    timestamps: set[str] = set()
    others: set[str] = set()
    for fm in mappings:
        name = str(fm.source[0]).lower()
        whole = len(fm.source) == 1 and isinstance(fm.target_type, pl.Datetime)
        (timestamps if whole else others).add(name)
    return frozenset(timestamps - others)


def sample_json_lines(
    reader: ConvertingReader, paths: Sequence[Path], uris: Sequence[str], workdir: Path, stack: ExitStack
) -> Path | None:
    """The first rows of the group's first objects as the JSON lines the converting path writes first (the
    stage plans its query from them, so both paths plan alike): the first batch's, or where that does not
    read, the first object's that does (as the converter then converts object by object); None if none reads."""
    heads = next(batches(list(zip(paths, uris, strict=True))))  # the objects the converter's first query reads
    out = workdir / "native-sample.json"
    stack.callback(out.unlink, missing_ok=True)
    for chosen in (heads, *([one] for one in heads[: _PROBE_OBJECTS if len(heads) > 1 else 0])):
        try:
            frames = [reader.frame_of(path, uri, workdir, stack) for path, uri in chosen]
            frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
            json_ready(frame.head(_SAMPLE_ROWS)).sink_ndjson(out, engine="streaming")
        except READ_ERRORS:
            continue
        return out
    out.unlink(missing_ok=True)
    return None

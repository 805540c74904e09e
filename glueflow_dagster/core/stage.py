"""One job stage: read JSON-lines objects, apply the mapping, write JSON lines to the target location.

Plain Python/polars (no Dagster import). The data path of a stage is one lazy polars query on the streaming
engine, from scan to sink: the read schema comes from the mappings (unmapped fields are never
materialized), the output is split into parts of about ``target_file_bytes`` of JSON each, and the record
and cast-error counts come from the same query. S3 objects pass through local temporary files, downloaded
in bounded groups, so neither memory nor local disk grows with the size of a run. Many small objects
(Glue's groupFiles) are concatenated into local group files first, a byte copy each, because a query pays
per file it opens; small S3 objects arrive through parallel GetObject requests.

Bad input never crashes a run and never vanishes: when the fast query cannot read an object, the objects
it could not read are inspected line by line (vectorised, see :mod:`glueflow_dagster.core.quarantine`), their
bad records go to the quarantine under the target location and their good records are read as usual.
``records_read == records_written + error_records`` holds for every successful run; objects that cannot
be read at all are counted in ``error_files``. More than ``max_error_records`` bad records (error records
plus unreadable objects) fail the run with a one-line :class:`StageError`; such a run leaves no output
objects, only its quarantine.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from glueflow_dagster.core.commits import abort
from glueflow_dagster.core.compression import DEFAULT_GZIP_LEVEL, GZIP_LEVELS, IgzipParts, written_by_isal
from glueflow_dagster.core.json_reader import JsonFormat, convert_object
from glueflow_dagster.core.mapping import (
    ApplyMapping,
    FieldMapping,
    PlainTimestamps,
    parse_mappings,
    presence_mapping,
    source_read_schema,
)
from glueflow_dagster.core.quarantine import (
    QUARANTINE_DIR,
    READ_ERRORS,
    ObjectReport,
    first_line,
    inspect_object,
    list_stage_inputs,
    object_entry,
    quarantine_key,
    readable_problem,
)
from glueflow_dagster.core.storage import LocalStorage, ObjectInfo, PendingObject, Storage, StorageError

__all__ = [
    "DEFAULT_TARGET_FILE_BYTES",
    "QUARANTINE_DIR",
    "StageError",
    "StageResult",
    "list_stage_inputs",
    "output_object_key",
    "run_stage",
    "sample_schema",
    "spelling_regex",
]

#: Default size of one output object, in bytes of uncompressed JSON.
DEFAULT_TARGET_FILE_BYTES = 128 * 1024 * 1024

# Schema inference for case-insensitive name matching reads only this many lines per stage.
_SCHEMA_SAMPLE_LINES = 100
# Lines mapped up front to estimate the JSON size of one output record (for splitting into parts).
_SIZE_SAMPLE_LINES = 1000
_DEFAULT_RECORD_BYTES = 256
_SAMPLE_BLOCK = 1024**2  # the size sample reads the head of an object in blocks of this size
_SAMPLE_MAX_BYTES = 16 * 1024**2  # and at most this much of it (fewer lines where lines are longer)
_PROBE_FILES = 3  # objects tried for the schema sample before giving up on it
# Remote objects are downloaded in groups of at most this many stored bytes (and one object at least).
_STAGING_BYTES = 1024**3
_DOWNLOAD_THREADS = 4
# Glue's groupFiles/groupSize, always on: objects of at most _SMALL_OBJECT_BYTES holding uncompressed JSON
# lines are read as concatenations ("group files") of about _GROUP_BYTES each, one plain byte copy per
# object. polars pays about 0.2 ms per file it opens, a copy of a 1-4 KB object about 15 us (measured on
# 10,000 local objects); past 1 MiB an object is worth its own read. Group files stay below
# _SPLIT_ABOVE_BYTES, so they are never split again.
_SMALL_OBJECT_BYTES = 1024**2
_GROUP_BYTES = 64 * 1024**2
# Parallel GetObject requests for small S3 objects. A request mostly waits for its round trip, so the
# rate grows with the requests in flight until the server or the client's CPU is the limit: against the
# moto server on the 2-core test machine (load ~13), 1 -> 4 threads gave 63 -> 117 objects/s and 16 gave
# 121-148; real S3 round trips are longer, so more requests in flight pay off there. Capped by the client's
# connection pool (botocore's max_pool_connections, default 10): more threads than pooled connections
# would open a new connection per request.
_SMALL_GET_THREADS = 16
_SMALL_GET_WINDOW = 2  # objects fetched ahead per thread: memory stays below threads x window x 1 MiB
_MISSING = ": object does not exist"  # StorageError cause for a missing object, on both backends
_CHECK_ONE_BY_ONE = 16  # objects checked one query each when the fast query fails
# polars memory-maps the object it reads, so an object's size would show in the resident set: an
# uncompressed object larger than _SPLIT_ABOVE_BYTES (the size glueflow writes) is read as line-aligned
# pieces of about _PIECE_BYTES, copied in the kernel. Compressed objects map only their compressed bytes.
_SPLIT_ABOVE_BYTES = DEFAULT_TARGET_FILE_BYTES
_PIECE_BYTES = 64 * 1024**2
_BOUNDARY_WINDOW = 1024**2  # read to find the end of the line a piece boundary falls in
_COPY_CHUNK = 8 * 1024**2  # chunk of the portable copy, where copy_file_range is missing
_BOM = b"\xef\xbb\xbf"
_GLOB_CHARS = frozenset("*?[]{}")


class StageError(RuntimeError):
    """A stage failed on its data (too many bad records); the message is one line.

    ``result`` holds the figures of the failed run (nothing written; ``records_discarded`` good records
    were not written) so the shell can still record them.
    """

    def __init__(self, message: str, *, result: StageResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class StageResult:
    """What one stage read and wrote: the figures a materialization records.

    ``records_read == records_written + error_records + records_discarded``; ``records_discarded`` is 0
    unless the run failed. Objects that could not be read at all count in ``error_files`` and hold no
    countable records.
    """

    read: tuple[ObjectInfo, ...]
    written: tuple[ObjectInfo, ...]
    records_read: int
    records_written: int
    error_records: int
    cast_errors: int
    duration_s: float
    target_uri: str
    extra: dict[str, object] = field(default_factory=dict)
    error_files: int = 0
    records_discarded: int = 0
    quarantined: tuple[ObjectInfo, ...] = ()
    quarantine_uri: str | None = None
    first_error: str | None = None
    skipped: tuple[ObjectInfo, ...] = ()
    # Written but not yet visible (run_stage with defer_commit): publish or abort them.
    pending: tuple[PendingObject, ...] = ()
    # Planned objects deleted before they could be read: not read, not counted in bytes_read.
    vanished: tuple[ObjectInfo, ...] = ()

    @property
    def bytes_read(self) -> int:
        return sum(obj.size for obj in self.read)

    @property
    def bytes_written(self) -> int:
        return sum(obj.size for obj in self.written)

    @property
    def files_read(self) -> int:
        return len(self.read)

    @property
    def files_written(self) -> int:
        return len(self.written)


def output_object_key(name_prefix: str, part: int, compression: str) -> str:
    """Glue-style part names (`<name_prefix>-part-r-00000`); the prefix names the writing attempt."""
    suffix = ".json.gz" if compression == "gzip" else ".json"
    return f"{name_prefix}-part-r-{part:05d}{suffix}"


# --------------------------------------------------------------------------------------------------
# The query


@dataclass(frozen=True)
class _Plan:
    """What every query of one run shares."""

    mappings: tuple[FieldMapping, ...]
    read_schema: pl.Schema
    records_per_part: int
    compression: str
    compression_level: int | None  # gzip only
    # Map text to timestamps in the plain form only (ApplyMapping's speculative fast form): chosen when
    # the sample holds no other form; a group where it leaves a value null is mapped again in full.
    plain_timestamps: bool = False
    # The sample's schema, and every mapped leaf read as String: read_schema keeps the JSON types the
    # sample shows; where later data holds another type (a number here, an object there), the mapped
    # fields that differ are read as text (see _query_tolerant). text_schema is None when read_schema
    # is all text already.
    observed: pl.Schema | None = None
    text_schema: pl.Schema | None = None
    # Every spelling of a mapped name known so far (see _respelled): source names match
    # case-insensitively over the whole run, not just the sample.
    spellings: frozenset[str] = frozenset()


def _target_expr(path: tuple[str, ...]) -> pl.Expr:
    expr = pl.col(path[0])
    for name in path[1:]:
        expr = expr.struct.field(name)
    return expr


def _mapped_with_cast_errors(
    scan: pl.LazyFrame, plan: _Plan, plain_timestamps: PlainTimestamps
) -> tuple[pl.LazyFrame, list[str], pl.Expr, pl.Expr]:
    """ApplyMapping plus, in the same projection, each cast-failing mapping's source.

    A cast error is a source that is present but whose mapped value is null (as ``cast_error_count``
    counts it). A mapped value is never present without its source, so per mapping the errors are the
    present sources minus the present targets: two validity counts, no per-row work. Carrying the source
    through the mapping (``presence_mapping``: an identity cast of its read type, free) lets the count
    read it beside the mapped values. Every JSON value (text, number, boolean, object, array) has a text
    form, so a mapping to String never fails and needs no check. The last expression counts the cast
    errors of timestamp mappings: with ``plain_timestamps`` any of them means the speculation missed.
    """
    extra: list[FieldMapping] = []
    errors: list[pl.Expr] = []
    timestamp_errors: list[pl.Expr] = []
    for index, fm in enumerate(plan.mappings):
        if isinstance(fm.target_type, pl.Null | pl.String):
            continue
        name = f"__glueflow_source_{index}"
        extra.append(presence_mapping(fm, plan.read_schema, name))  # the source, identity-cast
        error = pl.col(name).count().cast(pl.Int64) - _target_expr(fm.target).count()
        errors.append(error)
        if isinstance(fm.target_type, pl.Datetime):
            timestamp_errors.append(error)
    mapped = ApplyMapping.apply(scan, [*plan.mappings, *extra], plain_timestamps=plain_timestamps)
    columns = list(dict.fromkeys(fm.target[0] for fm in plan.mappings))
    return mapped, columns, _total(errors), _total(timestamp_errors)


def _total(terms: list[pl.Expr]) -> pl.Expr:
    return pl.sum_horizontal(terms) if terms else pl.lit(0, pl.Int64)


def _query(
    paths: Sequence[Path], plan: _Plan, out_dir: Path | None, first_part: int, *, ignore_errors: bool
) -> tuple[int, int, bool]:
    """Scan -> map -> sink parts into ``out_dir`` (None: count only).

    Returns (records, cast errors, whether the plain-timestamp speculation missed, null mapped values). With
    ``plan.plain_timestamps`` a query whose timestamp mappings leave a present value null is run again
    with the full timestamp parser, so the result is always the full mapping's.
    """
    if plan.plain_timestamps:
        records, casts, missed, missing = _query_once(
            paths, plan, out_dir, first_part, ignore_errors, plain_timestamps=True
        )
        if not missed:
            return records, casts, False, missing
        if out_dir is not None:
            _clear(out_dir)
    records, casts, _, missing = _query_once(paths, plan, out_dir, first_part, ignore_errors, plain_timestamps=False)
    return records, casts, plan.plain_timestamps, missing


def _query_once(
    paths: Sequence[Path],
    plan: _Plan,
    out_dir: Path | None,
    first_part: int,
    ignore_errors: bool,
    *,
    plain_timestamps: bool,
) -> tuple[int, int, int, int]:
    """One query; returns (records, cast errors, cast errors of timestamp mappings, null mapped values)."""
    scan = pl.scan_ndjson([str(p) for p in paths], schema=plan.read_schema, ignore_errors=ignore_errors)
    # The plain form's timestamps go out as their source text: the JSON writer would write the same bytes.
    plain: PlainTimestamps = "text" if plain_timestamps else False
    mapped, columns, cast_errors, timestamp_errors = _mapped_with_cast_errors(scan, plan, plain)
    missing = _total([_target_expr(fm.target).null_count().cast(pl.Int64) for fm in plan.mappings])
    figures = [
        pl.len().alias("records"),
        cast_errors.alias("casts"),
        timestamp_errors.alias("timestamp_casts"),
        missing.alias("missing"),
    ]
    if out_dir is None:
        # Nothing to write: still parse every line (a bare len() only counts lines) to find bad ones.
        parse_all = [pl.col(name).null_count().alias(f"__glueflow_nulls_{i}") for i, name in enumerate(columns)]
        totals = mapped.select(*figures, *parse_all).collect(engine="streaming")
    else:
        suffix = ".json.gz" if plan.compression == "gzip" else ".json"

        def part_name(index: int) -> str:
            return f"part-{first_part + index:05d}{suffix}"

        def part_path(args: Any) -> str:
            return part_name(args.index_in_partition)

        with ExitStack() as parts:
            provider: Callable[[Any], Any] = part_path
            options: dict[str, Any] = {
                "compression": "gzip" if plan.compression == "gzip" else "uncompressed",
                "compression_level": plan.compression_level,
            }
            if plan.compression == "gzip" and written_by_isal(plan.compression_level):
                # polars writes the JSON, ISA-L deflates it (see core.compression)
                provider = parts.enter_context(IgzipParts(out_dir, part_name, plan.compression_level or 0))
                options = {}
            sink = mapped.select(columns).sink_ndjson(
                pl.PartitionBy(
                    str(out_dir),
                    file_path_provider=provider,
                    max_rows_per_file=plan.records_per_part,
                    approximate_bytes_per_file=None,
                ),
                lazy=True,
                **options,
            )
            _, totals = pl.collect_all([sink, mapped.select(figures)], engine="streaming")
    return (
        int(totals["records"][0]),
        int(totals["casts"][0] or 0),
        int(totals["timestamp_casts"][0] or 0),
        int(totals["missing"][0] or 0),
    )


def _plan(
    paths: Sequence[Path],
    mappings: tuple[FieldMapping, ...],
    target_file_bytes: int,
    compression: str,
    compression_level: int | None,
) -> _Plan:
    """Read schema (spellings observed in a sample of the first readable object) and records per part."""
    observed = sample_schema(paths)
    read_schema = source_read_schema(mappings, observed)
    text_schema = source_read_schema(mappings, observed, typed=False)
    record_bytes = float(_DEFAULT_RECORD_BYTES)
    speculate = any(isinstance(fm.target_type, pl.Datetime) for fm in mappings)
    plain_sample = False
    for path in paths[:_PROBE_FILES]:
        try:
            rows = pl.scan_ndjson(_sample_source(path), schema=read_schema, n_rows=_SIZE_SAMPLE_LINES)
            frames = [ApplyMapping.apply(rows, mappings)]
            if speculate:
                frames.append(ApplyMapping.apply(rows, mappings, plain_timestamps=True))
            sample, *rest = pl.collect_all(frames)  # one read of the sample for both
            plain = rest[0] if rest else None
        except READ_ERRORS:
            continue
        if sample.height:
            record_bytes = max(1.0, len(sample.write_ndjson().encode()) / sample.height)
            plain_sample = plain is not None and plain.equals(sample)
            break
    records_per_part = max(1, int(target_file_bytes // record_bytes))
    return _Plan(
        mappings,
        read_schema,
        records_per_part,
        compression,
        compression_level,
        plain_timestamps=plain_sample,
        observed=observed,
        text_schema=None if text_schema == read_schema else text_schema,
        spellings=frozenset(_field_names(observed or {})),
    )


def sample_schema(paths: Sequence[Path]) -> pl.Schema | None:
    """The schema polars infers from the first lines of the first readable of the first few objects.

    The sample the stage's read schema comes from (:func:`mapping.source_read_schema`): the spellings of
    field names and the JSON types kept. The Spark stage script samples with this function too, so both
    engines read the same fields with the same types.
    """
    for path in paths[:_PROBE_FILES]:
        try:
            schema = pl.scan_ndjson(str(path), infer_schema_length=_SCHEMA_SAMPLE_LINES).collect_schema()
        except READ_ERRORS:
            continue  # a bad object: it will be inspected (and quarantined) later
        if len(schema):
            return schema
    return None


def _sample_source(path: Path) -> str | bytes:
    """What the size sample reads: the bytes of about the first _SIZE_SAMPLE_LINES lines of an uncompressed
    JSON-lines object, else the object itself (compressed, another format). A scan of a whole object
    sets up its reading over the whole file, tens of milliseconds before the first record; these run
    before the stage's query and on one core. Blank lines are no records, so where the head holds some
    the sample is a little shorter (it only estimates a record's output size)."""
    with open(path, "rb") as src:
        head = src.read(_SAMPLE_BLOCK)
        if not head.lstrip(b" \t\r\n").startswith(b"{"):
            return str(path)
        blocks = [head]
        newlines = head.count(b"\n")
        while newlines <= _SIZE_SAMPLE_LINES and len(blocks) * _SAMPLE_BLOCK < _SAMPLE_MAX_BYTES:
            block = src.read(_SAMPLE_BLOCK)
            if not block:
                return b"".join(blocks)  # the whole object: fewer lines than the sample
            blocks.append(block)
            newlines += block.count(b"\n")
    head = b"".join(blocks)
    end = head.rfind(b"\n")
    return head[: end + 1] if end >= 0 else str(path)


def _field_names(schema: Mapping[str, pl.DataType]) -> Iterator[str]:
    """Every field name of a schema, at every level."""
    for name, dtype in schema.items():
        yield name
        if isinstance(dtype, pl.Struct):
            yield from _field_names({f.name: f.dtype for f in dtype.fields})


def _merged(a: Mapping[str, pl.DataType], b: Mapping[str, pl.DataType]) -> dict[str, pl.DataType]:
    """Union of two inferred schemas, struct fields merged level by level (``a``'s types win)."""
    fields = dict(a)
    for name, dtype in b.items():
        mine = fields.get(name)
        if mine is None:
            fields[name] = dtype
        elif isinstance(mine, pl.Struct) and isinstance(dtype, pl.Struct):
            inner = _merged({f.name: f.dtype for f in mine.fields}, {f.name: f.dtype for f in dtype.fields})
            fields[name] = pl.Struct(inner)
    return fields


def spelling_regex(mappings: Sequence[FieldMapping]) -> str | None:
    """A regex matching a JSON key that spells a mapped source name in any case (``"Id":``), or None.

    Field names only: array element indices (items[0]) have no spelling. The Spark stage script scans
    with the same regex (Java's, with Unicode case folding).
    """
    wanted = sorted({name.lower() for fm in mappings for name in fm.source if isinstance(name, str)})
    if not wanted:
        return None
    keys = "|".join(re.escape(name) for name in wanted)
    return f'(?i)"(?:{keys})"\\s*:'


def _respelled(paths: Sequence[Path], plan: _Plan, workdir: Path) -> _Plan | None:
    """A plan that also reads spellings of mapped names first seen in these objects, or None if there are none.

    Glue matches source names case-insensitively over every record; the read schema comes from a sample,
    so a spelling that first appears later (``ID`` after ``id``) would be read as missing. Called only for
    a group whose mapped values came out null somewhere (the only place such a spelling can hide): one
    regex pass over the group's lines finds the keys that spell a mapped name; lines holding new ones
    extend the observed schema.
    """
    regex = spelling_regex(plan.mappings)
    if regex is None:
        return None
    lines = pl.scan_lines([str(p) for p in paths])
    found = (
        lines.select(pl.col("line").str.extract_all(regex).explode().drop_nulls().unique())
        .collect(engine="streaming")
        .to_series()
        .to_list()
    )
    new = {key.split('"')[1] for key in found} - plan.spellings
    if not new:
        return None
    pattern = "|".join(re.escape(f'"{name}"') for name in sorted(new))
    sample = workdir / f"spellings-{uuid.uuid4().hex}.json"
    lines.filter(pl.col("line").str.contains(pattern)).head(_SIZE_SAMPLE_LINES).collect().write_csv(
        sample, include_header=False, quote_style="never"
    )
    try:
        extra = pl.scan_ndjson(str(sample), infer_schema_length=None).collect_schema()
    except READ_ERRORS:
        extra = pl.Schema()
    finally:
        sample.unlink(missing_ok=True)
    observed = pl.Schema(_merged(plan.observed or {}, extra))
    read_schema = source_read_schema(plan.mappings, observed)
    text_schema = source_read_schema(plan.mappings, observed, typed=False)
    return replace(
        plan,
        read_schema=read_schema,
        text_schema=None if text_schema == read_schema else text_schema,
        observed=observed,
        spellings=plan.spellings | new,
    )


@dataclass
class _GroupOutcome:
    records: int
    cast_errors: int
    reports: list[ObjectReport]
    speculation_missed: bool = False
    read_schema: pl.Schema | None = None  # set when some mapped fields had to be read as text
    missing: int = 0  # mapped values that came out null: where a spelling unseen so far may hide


def _run_group(
    paths: Sequence[Path],
    pieces: Sequence[Sequence[Path]],
    uris: Sequence[str],
    plan: _Plan,
    workdir: Path,
    out_dir: Path | None,
    first_part: int,
    log: Callable[[str], None],
    members: Mapping[int, Sequence[_Member]] | None = None,
) -> _GroupOutcome:
    """One streaming query over the group; objects it cannot read are inspected and read carefully.

    Queries read each object's ``pieces``; inspection reads the object itself, so quarantined records
    carry the object's own line numbers. ``members`` maps the index of a group file (small objects
    concatenated) to its objects: a group file that cannot be read is taken apart again, and only its
    objects that do not read on their own are inspected, each under its own URI and line numbers.
    """
    members = members or {}
    try:
        every_piece = [piece for object_pieces in pieces for piece in object_pieces]
        records, casts, missed, missing, used = _query_tolerant(every_piece, plan, out_dir, first_part, log)
        return _GroupOutcome(records, casts, [], missed, read_schema=_changed(used, plan), missing=missing)
    except READ_ERRORS as err:
        fast_error: BaseException = err
    if out_dir is not None:
        _clear(out_dir)
    # Bad records are found against text, so a value of another JSON type is no bad record.
    typed_plan = plan
    plan = replace(plan, read_schema=plan.text_schema or plan.read_schema, text_schema=None)
    log(f"reading failed ({first_line(fast_error)}): inspecting the {len(paths)} objects one by one")
    bad = _unreadable_indices(paths, plan.read_schema, known_bad=True)
    readable: list[Path] = []
    reports: list[ObjectReport] = []
    rests: list[Path] = []  # group files without their bad objects: removed after the query
    for index, (path, uri) in enumerate(zip(paths, uris, strict=True)):
        if index not in bad:
            readable.extend(pieces[index])
            continue
        if index in members:
            rest, member_reports = _inspect_members(path, members[index], workdir, plan.read_schema, log)
            reports += member_reports
            readable += [r.clean_path for r in member_reports if r.clean_path is not None]
            if rest is not None:
                readable.append(rest)
                if rest != path:
                    rests.append(rest)
            continue
        report = inspect_object(path, uri, workdir, plan.read_schema)
        reports.append(report)
        if report.clean_path is not None:
            readable.append(report.clean_path)
    try:
        return _read_inspected(readable, reports, typed_plan, plan, out_dir, first_part, log, fast_error)
    finally:
        for rest in rests:
            rest.unlink(missing_ok=True)


def _read_inspected(
    readable: list[Path],
    reports: list[ObjectReport],
    typed_plan: _Plan,
    plan: _Plan,
    out_dir: Path | None,
    first_part: int,
    log: Callable[[str], None],
    fast_error: BaseException,
) -> _GroupOutcome:
    """The query over what reads after inspection (readable objects, clean copies of inspected ones)."""
    if not reports:
        # Every object reads on its own: the failure was not the data's (e.g. a full disk).
        raise StageError(f"stage query failed: {first_line(fast_error)}") from fast_error
    records = casts = 0
    missed, missing = False, 0
    used = typed_plan
    if readable:
        try:
            try:
                records, casts, missed, missing, used = _query_tolerant(readable, typed_plan, out_dir, first_part, log)
            except READ_ERRORS:
                if out_dir is not None:
                    _clear(out_dir)
                # Inspected objects hold only JSON objects now; ignore_errors only turns a scalar where a
                # struct is expected (e.g. "user": 5 for user.id) into a missing value instead of failing.
                records, casts, missed, missing = _query(readable, plan, out_dir, first_part, ignore_errors=True)
        except READ_ERRORS as err:
            raise StageError(f"stage query failed: {first_line(err)}") from err
    return _GroupOutcome(records, casts, reports, missed, read_schema=_changed(used, typed_plan), missing=missing)


def _changed(used: _Plan, plan: _Plan) -> pl.Schema | None:
    return used.read_schema if used.read_schema != plan.read_schema else None


def _query_tolerant(
    paths: Sequence[Path], plan: _Plan, out_dir: Path | None, first_part: int, log: Callable[[str], None]
) -> tuple[int, int, bool, int, _Plan]:
    """``_query`` with the JSON types the sample showed; where the data holds other types for some mapped
    fields (a number here, an object there), those fields are read as text, as Spark's JSON reader reads
    a field of mixed types. Raises READ_ERRORS when even text does not read (bad records).

    Returns the query's figures (as ``_query``) and the plan it used (the caller keeps it for later groups).
    """
    try:
        return (*_query(paths, plan, out_dir, first_part, ignore_errors=False), plan)
    except READ_ERRORS as err:
        if plan.text_schema is None:
            raise
        failure: BaseException = err
    if out_dir is not None:
        _clear(out_dir)
    if not _reads(paths, plan.text_schema):
        raise failure
    # One counting query per mapping read with its types: this path is rare (types that differ from
    # the sample's), and it keeps the types of every field that does not differ.
    keep: set[int] = set()
    text: list[str] = []
    for index, fm in enumerate(plan.mappings):
        alone = source_read_schema(plan.mappings, plan.observed, typed={index})
        if alone == plan.text_schema:
            continue
        if _reads(paths, alone):
            keep.add(index)
        else:
            text.append(".".join(map(str, fm.source)))
    schema = source_read_schema(plan.mappings, plan.observed, typed=keep)
    log(f"JSON types differ from the sample's ({first_line(failure)}): {', '.join(text[:5])} read as text")
    narrowed = replace(plan, read_schema=schema, text_schema=None if schema == plan.text_schema else plan.text_schema)
    return (*_query(paths, narrowed, out_dir, first_part, ignore_errors=False), narrowed)


def _reads(paths: Sequence[Path], schema: pl.Schema) -> bool:
    """Whether every line of ``paths`` reads with ``schema`` (every column parsed, nothing written)."""
    try:
        pl.scan_ndjson([str(p) for p in paths], schema=schema).select(pl.all().null_count()).collect(engine="streaming")
    except READ_ERRORS:
        return False
    return True


def _as_json_lines(
    paths: Sequence[Path], uris: Sequence[str], workdir: Path, fmt: JsonFormat, stack: ExitStack
) -> tuple[list[Path], list[str], list[ObjectReport]]:
    """Objects in Glue's ``multiline`` / ``jsonPath`` form as JSON-lines copies (see json_reader).

    Returns the copies and their URIs, and reports of the objects with bad records or none readable.
    """
    kept: list[Path] = []
    kept_uris: list[str] = []
    reports: list[ObjectReport] = []
    for path, uri in zip(paths, uris, strict=True):
        report = convert_object(path, uri, workdir, fmt)
        if report.clean_path is not None:
            stack.callback(report.clean_path.unlink, missing_ok=True)
            kept.append(report.clean_path)
            kept_uris.append(uri)
        if report.unreadable or report.error_records:
            reports.append(replace(report, clean_path=None))
    return kept, kept_uris, reports


def _unreadable_indices(paths: Sequence[Path], read_schema: pl.Schema, *, known_bad: bool = False) -> set[int]:
    """Indices of the objects the fast reader fails on: one query per object for small groups, else
    halving (a few bad objects among thousands cost a few queries, not thousands)."""
    if not paths:
        return set()
    if not known_bad and readable_problem(paths, read_schema) is None:
        return set()
    if len(paths) == 1:
        return {0}
    if len(paths) <= _CHECK_ONE_BY_ONE:
        return {i for i, path in enumerate(paths) if readable_problem([path], read_schema) is not None}
    half = len(paths) // 2
    return _unreadable_indices(paths[:half], read_schema) | {
        half + i for i in _unreadable_indices(paths[half:], read_schema)
    }


def _clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------------------------------
# Objects in and out


def _groups(source: Storage, objects: Sequence[ObjectInfo]) -> Iterator[list[ObjectInfo]]:
    """Groups of objects, each read by one query, with bounded local copies: a remote group holds at most
    _STAGING_BYTES of stored bytes (and one object at least); local objects are read in place, so a local
    group is bounded only by the bytes of its small objects (copied into group files)."""
    local = isinstance(source, LocalStorage)
    group: list[ObjectInfo] = []
    size = 0
    for obj in objects:
        staged = obj.size if not local or obj.size <= _SMALL_OBJECT_BYTES else 0
        if group and size + staged > _STAGING_BYTES:
            yield group
            group, size = [], 0
        group.append(obj)
        size += staged
    if group:
        yield group


def _vanished(err: BaseException) -> bool:
    return isinstance(err, StorageError) and _MISSING in str(err)


@dataclass(frozen=True)
class _Member:
    """One small object inside a group file: its URI and where its bytes are."""

    uri: str
    offset: int
    size: int  # the object's own bytes
    span: int  # its bytes in the group file: size, plus the newline added when it lacked a final one


@dataclass
class _Copies:
    """A group's objects as local files: one path per object, or one per group file of small objects."""

    objects: list[ObjectInfo] = field(default_factory=list)  # read (present when the run got to them)
    paths: list[Path] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)  # per path; a group file's names its first object
    members: dict[int, tuple[_Member, ...]] = field(default_factory=dict)  # path index -> its objects
    vanished: list[ObjectInfo] = field(default_factory=list)

    def add(self, obj: ObjectInfo, path: Path, uri: str) -> None:
        self.objects.append(obj)
        self.paths.append(path)
        self.uris.append(uri)


class _GroupFiles:
    """Writes small JSON-lines objects into group files of about _GROUP_BYTES (Glue's groupFiles): a plain
    byte copy per object, a newline added where an object lacks its last one, no per-record work."""

    def __init__(self, copies: _Copies, workdir: Path, stack: ExitStack) -> None:
        self._copies = copies
        self._workdir = workdir
        self._stack = stack
        self._file: BinaryIO | None = None
        self._members: list[_Member] = []
        self._offset = 0
        self._index = 0  # of the open group file in the paths

    @staticmethod
    def takes(data: bytes) -> bool:
        """Uncompressed JSON lines (the first non-blank byte opens an object) or blank; anything else (gzip,
        a BOM, another format, a JSON array) is read on its own, as before, and inspected if it does not
        read. Blank lines are no records, so a concatenation holds the same records."""
        return data[:1] == b"{" or data.lstrip(b" \t\r\n")[:1] in (b"{", b"")

    def add(self, obj: ObjectInfo, uri: str, data: bytes) -> None:
        if self._file is None or self._offset >= _GROUP_BYTES:
            self._close()
            path = self._workdir / f"group-{uuid.uuid4().hex}.json"
            self._stack.callback(path.unlink, missing_ok=True)
            self._file = self._stack.enter_context(open(path, "wb"))  # noqa: SIM115 - closed by _close or the stack
            self._index = len(self._copies.paths)
            self._copies.add(obj, path, f"{uri} and the small objects after it")
            self._members = []
            self._offset = 0
        else:
            self._copies.objects.append(obj)
        self._file.write(data)
        span = len(data)
        if data and not data.endswith(b"\n"):
            self._file.write(b"\n")
            span += 1
        self._members.append(_Member(uri, self._offset, len(data), span))
        self._offset += span

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._copies.members[self._index] = tuple(self._members)
            self._file = None

    def close(self) -> None:
        self._close()


def _local_copies(
    source: Storage, group: Sequence[ObjectInfo], stack: ExitStack, workdir: Path, *, concatenate: bool
) -> _Copies:
    """The group's objects as local files, removed when ``stack`` closes; objects deleted since the run
    was planned are left out and returned as vanished.

    Small objects (at most _SMALL_OBJECT_BYTES) holding JSON lines go into group files when
    ``concatenate`` (JSON lines are read); local ones are read in place otherwise. Remote small objects
    are fetched with parallel GetObject requests, larger ones downloaded as streams.
    """
    copies = _Copies()
    grouped = _GroupFiles(copies, workdir, stack)
    try:
        if isinstance(source, LocalStorage):
            _local_objects(source, group, copies, grouped if concatenate else None)
        else:
            small = [obj for obj in group if obj.size <= _SMALL_OBJECT_BYTES]
            large = [obj for obj in group if obj.size > _SMALL_OBJECT_BYTES]
            _downloads(source, large, copies, stack)
            _small_remote_objects(source, small, copies, grouped if concatenate else None, workdir, stack)
    finally:
        grouped.close()
    return copies


def _local_objects(
    source: LocalStorage, group: Sequence[ObjectInfo], copies: _Copies, grouped: _GroupFiles | None
) -> None:
    checked = source.readable_paths([obj.key for obj in group])
    for obj, found in zip(group, checked, strict=True):
        if isinstance(found, StorageError):
            if not _vanished(found):
                raise found
            copies.vanished.append(obj)
            continue
        if grouped is None or obj.size > _SMALL_OBJECT_BYTES:
            copies.add(obj, Path(found), found)
            continue
        try:
            data = _read_small(found, obj.size)
        except FileNotFoundError:
            copies.vanished.append(obj)  # deleted between the check and the read
            continue
        except OSError as err:
            raise StorageError(f"{found}: {err.strerror or err} ({type(err).__name__})", uri=found) from err
        if grouped.takes(data):
            grouped.add(obj, found, data)
        else:
            copies.add(obj, Path(found), found)


def _read_small(path: str, size: int) -> bytes:
    """A small file's bytes: plain os calls (no buffered file object: this runs per object)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(fd, size + 1)]
        while len(chunks[-1]) > 0 and sum(map(len, chunks)) > size:  # grown since it was listed
            chunks.append(os.read(fd, _COPY_CHUNK))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _downloads(source: Storage, objects: Sequence[ObjectInfo], copies: _Copies, stack: ExitStack) -> None:
    """Download ``objects`` as streams, in parallel (the transfer manager: for objects past a MiB)."""
    if len(objects) == 1:
        managers = [source.local_copy(objects[0].key)]
        futures = []
        try:
            futures.append(_done(managers[0].__enter__()))
        except BaseException as err:  # noqa: BLE001 - handled like the pool's below
            futures.append(_failed(err))
    else:
        managers = [source.local_copy(obj.key) for obj in objects]
        with ThreadPoolExecutor(_DOWNLOAD_THREADS, thread_name_prefix="glueflow-download") as pool:
            futures = [pool.submit(manager.__enter__) for manager in managers]
    failure: BaseException | None = None
    for obj, manager, future in zip(objects, managers, futures, strict=True):
        try:
            path = future.result()
        except BaseException as err:  # noqa: BLE001 - re-raised below, after the others are registered
            if _vanished(err):
                copies.vanished.append(obj)
            else:
                failure = failure or err
            continue
        copies.add(obj, path, source.uri_for(obj.key))
        stack.push(manager.__exit__)
    if failure is not None:
        raise failure


def _done(value: Path) -> Future[Path]:
    future: Future[Path] = Future()
    future.set_result(value)
    return future


def _failed(err: BaseException) -> Future[Path]:
    future: Future[Path] = Future()
    future.set_exception(err)
    return future


def _small_remote_objects(
    source: Storage,
    objects: Sequence[ObjectInfo],
    copies: _Copies,
    grouped: _GroupFiles | None,
    workdir: Path,
    stack: ExitStack,
) -> None:
    """Fetch small objects with parallel GetObject requests into group files (or files of their own)."""
    # closing(): on an error, the requests still queued are cancelled now, not when the traceback goes.
    with closing(_fetch_small(source, objects)) as fetches:
        for obj, fetched in fetches:
            uri = source.uri_for(obj.key)
            if isinstance(fetched, BaseException):
                if not _vanished(fetched):
                    raise fetched
                copies.vanished.append(obj)
            elif grouped is not None and grouped.takes(fetched):
                grouped.add(obj, uri, fetched)
            else:
                # Readers sniff compression from the bytes; the suffix is kept for anyone reading names.
                path = workdir / f"object-{uuid.uuid4().hex}{''.join(Path(obj.key).suffixes[-2:])}"
                stack.callback(path.unlink, missing_ok=True)
                path.write_bytes(fetched)
                copies.add(obj, path, uri)


def _fetch_small(source: Storage, objects: Sequence[ObjectInfo]) -> Iterator[tuple[ObjectInfo, bytes | StorageError]]:
    """(object, bytes or its StorageError) in the objects' order, fetched _SMALL_GET_THREADS at a time
    with at most _SMALL_GET_WINDOW objects per thread held in memory."""
    if not objects:
        return
    config = getattr(getattr(getattr(source, "client", None), "meta", None), "config", None)  # botocore's
    threads = min(_SMALL_GET_THREADS, getattr(config, "max_pool_connections", None) or _SMALL_GET_THREADS)

    def fetch(key: str) -> bytes | StorageError:
        try:
            return source.read_bytes(key)
        except StorageError as err:
            return err

    ahead = iter(objects)
    with ThreadPoolExecutor(threads, thread_name_prefix="glueflow-get") as pool:
        window: deque[tuple[ObjectInfo, Future[bytes | StorageError]]] = deque(
            (obj, pool.submit(fetch, obj.key)) for obj in islice(ahead, threads * _SMALL_GET_WINDOW)
        )
        try:
            while window:
                obj, future = window.popleft()
                following = next(ahead, None)
                if following is not None:
                    window.append((following, pool.submit(fetch, following.key)))
                yield obj, future.result()
        finally:
            for _, pending_future in window:
                pending_future.cancel()


def _inspect_members(
    path: Path, members: Sequence[_Member], workdir: Path, schema: pl.Schema, log: Callable[[str], None]
) -> tuple[Path | None, list[ObjectReport]]:
    """A group file the fast reader failed on, taken apart: its objects that do not read on their own are
    inspected from their own bytes (their URI, their line numbers); the others are returned as one file
    (``path`` itself when all of them read, None when none does)."""
    bad = _bad_members(path, members, schema, workdir, 0, len(members), known_bad=True)
    log(f"{len(bad)} of the {len(members):,} small objects of a group file do not read: inspecting them")
    reports: list[ObjectReport] = []
    for index in sorted(bad):
        own = _extract(path, members[index : index + 1], workdir, whole=False)
        try:
            reports.append(inspect_object(own, members[index].uri, workdir, schema))
        finally:
            own.unlink(missing_ok=True)
    if not bad:
        return path, reports
    good = [member for index, member in enumerate(members) if index not in bad]
    return (_extract(path, good, workdir) if good else None), reports


def _bad_members(
    path: Path, members: Sequence[_Member], schema: pl.Schema, workdir: Path, lo: int, hi: int, *, known_bad: bool
) -> set[int]:
    """Indices of the members in ``lo:hi`` that the fast reader fails on, found as _unreadable_indices
    finds objects (halving), on byte ranges of the group file: one file per check, not one per object."""
    if not known_bad and _range_reads(path, members[lo:hi], schema, workdir):
        return set()
    if hi - lo == 1:
        return {lo}
    if hi - lo <= _CHECK_ONE_BY_ONE:
        return {i for i in range(lo, hi) if not _range_reads(path, members[i : i + 1], schema, workdir)}
    mid = (lo + hi) // 2
    return _bad_members(path, members, schema, workdir, lo, mid, known_bad=False) | _bad_members(
        path, members, schema, workdir, mid, hi, known_bad=False
    )


def _range_reads(path: Path, members: Sequence[_Member], schema: pl.Schema, workdir: Path) -> bool:
    part = _extract(path, members, workdir)
    try:
        return readable_problem([part], schema) is None
    finally:
        part.unlink(missing_ok=True)


def _extract(path: Path, members: Sequence[_Member], workdir: Path, *, whole: bool = True) -> Path:
    """A new file of ``members``' bytes from the group file at ``path``: as in the group file (``whole``),
    or the one member's own bytes exactly, as stored (for inspection)."""
    out = workdir / f"members-{uuid.uuid4().hex}.json"
    with open(path, "rb") as src, open(out, "wb") as dst:
        for member in members:
            _copy_range(src, dst, member.offset, member.span if whole else member.size)
    return out


def _unglobbed(path: Path, workdir: Path, stack: ExitStack) -> Path:
    """A path polars reads as itself: polars expands ``*?[]{}`` in paths as globs (``a[1].json`` would
    read ``a1.json``), so such a path is read through a plainly named symlink."""
    if not any(char in str(path) for char in _GLOB_CHARS):
        return path
    link = workdir / f"link-{uuid.uuid4().hex}"  # readers sniff compression from the bytes, not names
    link.symlink_to(path.absolute())
    stack.callback(link.unlink, missing_ok=True)
    return link


def _pieces(path: Path, uri: str, workdir: Path, stack: ExitStack, log: Callable[[str], None]) -> list[Path]:
    """The files a query reads for one object: the object itself, or line-aligned pieces of it when it
    is uncompressed JSON lines larger than _SPLIT_ABOVE_BYTES (removed when ``stack`` closes)."""
    size = path.stat().st_size
    if size <= _SPLIT_ABOVE_BYTES or not _starts_with_an_object(path):
        return [path]
    pieces: list[Path] = []
    with open(path, "rb") as src:
        start = 0
        while start < size:
            end = _line_end_after(src, start + _PIECE_BYTES, size)
            piece = workdir / f"piece-{uuid.uuid4().hex}.json"
            stack.callback(piece.unlink, missing_ok=True)
            with open(piece, "wb") as dst:
                _copy_range(src, dst, start, end - start)
            pieces.append(piece)
            start = end
    log(f"reading {uri} ({size:,} bytes) as {len(pieces)} line-aligned pieces, so memory stays bounded")
    return pieces


def _starts_with_an_object(path: Path) -> bool:
    """Whether the object's first non-blank byte opens a JSON object: text to split, not a compressed
    stream or another format (those are read whole, or fail and are inspected)."""
    with open(path, "rb") as src:
        head = src.read(4096).removeprefix(_BOM).lstrip()
    return head.startswith(b"{")


def _line_end_after(src: BinaryIO, offset: int, size: int) -> int:
    """The offset just past the first newline at or after ``offset``; ``size`` if there is none."""
    if offset >= size:
        return size
    src.seek(offset)
    position = offset
    while window := src.read(_BOUNDARY_WINDOW):
        found = window.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(window)
    return size


def _copy_range(src: BinaryIO, dst: BinaryIO, offset: int, count: int) -> None:
    """Copy ``count`` bytes of ``src`` from ``offset`` to the end of ``dst``, in the kernel where it can."""
    try:
        while count > 0:
            copied = os.copy_file_range(src.fileno(), dst.fileno(), count, offset_src=offset)
            if copied == 0:
                raise OSError(f"copy_file_range copied nothing at offset {offset}")
            offset, count = offset + copied, count - copied
        return
    except (AttributeError, OSError):
        pass  # no copy_file_range here (not Linux, or a file system without it): copy through Python
    src.seek(offset)
    while count > 0:
        chunk = src.read(min(count, _COPY_CHUNK))
        if not chunk:
            raise OSError(f"unexpected end of file at offset {offset}")
        dst.write(chunk)
        offset, count = offset + len(chunk), count - len(chunk)


def _begin_parts(out_dir: Path, target: Storage, name_prefix: str, compression: str) -> list[PendingObject]:
    """Upload the parts in ``out_dir`` as pending objects: written, but no reader sees them yet."""
    pending = []
    for local in sorted(out_dir.iterdir()):
        part = int(local.name.split(".")[0].removeprefix("part-"))
        pending.append(target.begin_upload(local, output_object_key(name_prefix, part, compression)))
        local.unlink()
    return pending


# --------------------------------------------------------------------------------------------------
# The stage


def run_stage(
    source: Storage,
    objects: Sequence[ObjectInfo],
    mappings: Sequence[FieldMapping] | Sequence[Sequence[str]],
    target: Storage,
    *,
    name_prefix: str,
    compression: str,
    log: Callable[[str], None] = lambda _msg: None,
    max_error_records: int = 0,
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
    quarantine_prefix: str | None = None,
    compression_level: int | None = None,
    defer_commit: bool = False,
    refused: Sequence[tuple[str, str]] = (),
    json_format: JsonFormat | None = None,
) -> StageResult:
    """Map ``objects`` of ``source`` into parts ``<name_prefix>-part-r-NNNNN`` under ``target``.

    Parts are written as pending objects (see :mod:`glueflow_dagster.core.commits`): with ``defer_commit`` they
    stay invisible and come back in ``StageResult.pending`` for the caller to publish or abort; without
    it the stage completes them itself at the end, each appearing whole. ``name_prefix`` must belong to
    this attempt alone (:func:`glueflow_dagster.core.commits.part_prefix`): nothing is ever deleted by name.

    Bad records and unreadable objects go to ``quarantine_prefix`` under ``target`` (default
    ``_errors/<name_prefix>``). More than ``max_error_records`` of them (error records plus unreadable
    objects) raise :class:`StageError` after aborting this run's pending parts. Objects deleted since the
    run was planned are skipped and returned in ``vanished``. ``refused`` are (uri, cause) of objects the
    listing would not read (a local symlink pointing outside the location): quarantined as unreadable.
    Parts hold about ``target_file_bytes`` of uncompressed JSON each. ``compression_level`` (gzip only,
    1-9) defaults to :data:`DEFAULT_GZIP_LEVEL`. ``json_format`` (Glue's ``multiline`` / ``jsonPath``)
    converts each object to JSON lines first (streaming; bad records quarantined with their line and
    record number).
    """
    started = time.monotonic()
    parsed = parse_mappings(mappings)  # a malformed mapping fails before any data is read
    if compression not in ("gzip", "none"):
        raise ValueError(f"compression must be 'gzip' or 'none', got {compression!r}")
    if max_error_records < 0:
        raise ValueError(f"max_error_records must be >= 0, got {max_error_records}")
    if target_file_bytes < 1:
        raise ValueError(f"target_file_bytes must be >= 1, got {target_file_bytes}")
    if compression_level is not None and (compression != "gzip" or compression_level not in GZIP_LEVELS):
        levels = f"{GZIP_LEVELS[0]}-{GZIP_LEVELS[-1]}"
        raise ValueError(f"compression_level must be {levels} with gzip compression, got {compression_level}")
    level = (compression_level or DEFAULT_GZIP_LEVEL) if compression == "gzip" else None
    qprefix = (quarantine_prefix or f"{QUARANTINE_DIR}/{name_prefix}").strip("/")
    objects = tuple(objects)
    readable = tuple(obj for obj in objects if not obj.key.endswith("/"))
    skipped = tuple(obj for obj in objects if obj.key.endswith("/"))
    for obj in skipped:
        log(f"skipping folder marker {obj.key!r}")

    target.delete_prefix(qprefix)  # a retried attempt of this run replaces its quarantine
    pending: list[PendingObject] = []
    quarantined: list[ObjectInfo] = []
    read: list[ObjectInfo] = []
    vanished: list[ObjectInfo] = []
    records = casts = error_records = error_files = 0
    first_error: str | None = None
    for uri, cause in refused:
        error_files += 1
        quarantined.append(target.write_bytes(quarantine_key(qprefix, len(quarantined)), object_entry(uri, cause)))
        first_error = first_error or f"{uri}: {cause}"
    exceeded = error_files > max_error_records
    if readable:
        log(f"reading {len(readable)} objects ({sum(o.size for o in readable):,} bytes) from {source.uri}")
    try:
        with tempfile.TemporaryDirectory(prefix="glueflow-stage-") as tmp:
            workdir = Path(tmp)
            out_dir = workdir / "parts"
            out_dir.mkdir()
            plan: _Plan | None = None
            concatenate = json_format is None or json_format.is_lines
            for planned in _groups(source, readable):
                with ExitStack() as stack:
                    copies = _local_copies(source, planned, stack, workdir, concatenate=concatenate)
                    group, gone, members = copies.objects, copies.vanished, copies.members
                    vanished += gone
                    for obj in gone:
                        log(f"{source.uri_for(obj.key)}: deleted since the run was planned; skipped and counted")
                    if not group:
                        continue
                    read += group
                    paths = [_unglobbed(path, workdir, stack) for path in copies.paths]
                    uris = copies.uris
                    if members:
                        grouped = sum(len(m) for m in members.values())
                        log(f"read {grouped:,} small objects as {len(members)} group files (Glue's groupFiles)")
                    converted: list[ObjectReport] = []
                    if json_format is not None and not json_format.is_lines:
                        paths, uris, converted = _as_json_lines(paths, uris, workdir, json_format, stack)
                    if plan is None and paths:
                        plan = _plan(paths, parsed, target_file_bytes, compression, level)
                    pieces = [_pieces(path, uri, workdir, stack, log) for path, uri in zip(paths, uris, strict=True)]
                    if plan is None or not paths:
                        outcome = _GroupOutcome(0, 0, [])
                    else:
                        # The group with a plan; again with every spelling if mapped values came out null.
                        map_group = functools.partial(
                            _run_group,
                            paths,
                            pieces,
                            uris,
                            workdir=workdir,
                            out_dir=None if exceeded else out_dir,
                            first_part=len(pending),
                            log=log,
                            members=members,
                        )
                        outcome = map_group(plan=plan)
                        respelled = _respelled(paths, plan, workdir) if outcome.missing else None
                        if respelled is not None:
                            log(
                                "field names spelled differently past the sample ("
                                + ", ".join(sorted(respelled.spellings - plan.spellings))[:80]
                                + "): mapped again with every spelling"
                            )
                            plan = respelled
                            if not exceeded:
                                _clear(out_dir)
                            outcome = map_group(plan=plan)
                    outcome.reports[:0] = converted
                    if outcome.read_schema is not None and plan is not None:
                        plan = replace(plan, read_schema=outcome.read_schema)
                    if outcome.speculation_missed and plan is not None:
                        log("timestamps in other forms than 'yyyy-mm-dd hh:mm:ss': mapped again with the full parser")
                        plan = replace(plan, plain_timestamps=False)
                    for report in outcome.reports:
                        key = quarantine_key(qprefix, len(quarantined))
                        if report.unreadable:
                            error_files += 1
                            entry = object_entry(report.source_uri, report.error or "")
                            quarantined.append(target.write_bytes(key, entry))
                        elif report.entries_path is not None:
                            error_records += report.error_records
                            quarantined.append(target.upload_file(report.entries_path, key))
                        first_error = first_error or report.first_error
                        for leftover in (report.clean_path, report.entries_path):
                            if leftover is not None:
                                leftover.unlink(missing_ok=True)
                records += outcome.records
                casts += outcome.cast_errors
                if not exceeded and error_records + error_files > max_error_records:
                    exceeded = True
                    _clear(out_dir)
                if not exceeded:
                    pending += _begin_parts(out_dir, target, name_prefix, compression)
        if exceeded:
            raise _Exceeded()
        written = (
            tuple(ObjectInfo(obj.key, obj.size, 0, "") for obj in pending)
            if defer_commit
            else tuple(target.complete_upload(obj) for obj in pending)
        )
    except BaseException as err:
        aborted = abort(target, pending, log)
        if aborted:
            log(f"aborted {aborted} pending parts of this attempt")
        if not isinstance(err, _Exceeded):
            raise
        written = ()

    quarantine_uri = target.uri_for(qprefix) if quarantined else None
    if quarantined:
        log(f"quarantined {error_records:,} error records and {error_files:,} unreadable objects to {quarantine_uri}")
    result = StageResult(
        read=tuple(read),
        written=written,
        records_read=records + error_records,
        records_written=0 if exceeded else records,
        error_records=error_records,
        cast_errors=casts,
        duration_s=time.monotonic() - started,
        target_uri=target.uri,
        error_files=error_files,
        records_discarded=records if exceeded else 0,
        quarantined=tuple(quarantined),
        quarantine_uri=quarantine_uri,
        first_error=first_error,
        skipped=skipped,
        pending=tuple(pending) if defer_commit and not exceeded else (),
        vanished=tuple(vanished),
    )
    if exceeded:
        raise StageError(_threshold_message(error_records, error_files, max_error_records, first_error), result=result)
    if readable:
        log(
            f"wrote {records:,} records in {len(written)} objects ({result.bytes_written:,} bytes) "
            f"to {target.uri} in {result.duration_s:.1f} s"
            + (" (pending until the commit)" if defer_commit and written else "")
        )
    else:
        log("nothing to read: no new objects")
    return result


class _Exceeded(Exception):
    """Internal: the error threshold was exceeded (the pending parts are aborted, then StageError)."""


def _threshold_message(error_records: int, error_files: int, limit: int, first: str | None) -> str:
    what = f"{error_records} error record{'' if error_records == 1 else 's'}"
    if error_files:
        what += f" and {error_files} unreadable object{'' if error_files == 1 else 's'}"
    return f"{what} exceed max_error_records={limit}; first: {first}"

"""The stage's run: read -> map -> write, returning pending parts only.

:func:`stage_pending` takes one :class:`~glueflow_dagster.core.stage.request.StageRequest` and ties the three
rooms together group by group: the reader (``read.py``: fetch, group files, pieces, the tolerant read), the
query planned from the first objects (``plan.py``) and the writer (``write.py``: parts uploaded as pending
objects). Nothing it writes is visible: the parts come back in ``StageResult.pending`` and the commit
(``core.commits``: ``publish`` after the fences, or ``abort``) decides what becomes data. A failure
inside the stage discards its own pending parts (``commits.aborted_on_failure``).

Bad input never crashes a run and never vanishes: bad records go to the quarantine under the target
location, unreadable objects are counted in ``error_files``, and
``records_read == records_written + error_records`` holds for every successful run. More than
``max_error_records`` bad records (error records plus unreadable objects) fail the run with a one-line
:class:`StageError`; such a run leaves no output objects, only its quarantine.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from glueflow_dagster.core.commits import abort, aborted_on_failure, complete
from glueflow_dagster.core.compression import GZIP_LEVELS
from glueflow_dagster.core.formats.convert import ConvertingReader
from glueflow_dagster.core.formats.native import (
    concatenated,
    native_frames,
    records_bound,
    sample_json_lines,
    timestamp_sources,
    unreadable_natively,
)
from glueflow_dagster.core.formats.options import DataFormat
from glueflow_dagster.core.formats.seams import reader_of, writer_of
from glueflow_dagster.core.json_reader import JsonFormat
from glueflow_dagster.core.mapping import FieldMapping, parse_mappings
from glueflow_dagster.core.quarantine import (
    QUARANTINE_DIR,
    READ_ERRORS,
    ObjectReport,
    first_line,
    object_entry,
    quarantine_key,
)
from glueflow_dagster.core.scratch import scratch_folder
from glueflow_dagster.core.stage.plan import QueryPlan, after_miss, make_plan, polars_settings, query, respelled
from glueflow_dagster.core.stage.read import (
    GroupOutcome,
    Member,
    Reader,
    groups,
    line_aligned_pieces,
    local_copies,
    map_group,
    unglobbed,
)
from glueflow_dagster.core.stage.request import (
    DEFAULT_TARGET_FILE_BYTES,
    StageError,
    StageRequest,
    StageResult,
    threshold_message,
)
from glueflow_dagster.core.stage.write import Writer, begin_parts, clear, single_part
from glueflow_dagster.core.storage import ObjectInfo, PendingObject, Storage

__all__ = ["run_stage", "stage_pending"]

Log = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class _Settings:
    """A request checked before any data is read: its mappings parsed, its reader and writer picked."""

    mappings: tuple[FieldMapping, ...]
    reader: Reader
    writer: Writer
    quarantine_prefix: str


def _checked(request: StageRequest) -> _Settings:
    parsed = parse_mappings(request.mappings)  # a malformed mapping fails before any data is read
    compression, level = request.compression, request.compression_level
    if request.write_format.is_json and compression not in ("gzip", "none"):
        raise ValueError(f"compression must be 'gzip' or 'none', got {compression!r}")
    if request.max_error_records < 0:
        raise ValueError(f"max_error_records must be >= 0, got {request.max_error_records}")
    if request.target_file_bytes < 1:
        raise ValueError(f"target_file_bytes must be >= 1, got {request.target_file_bytes}")
    if level is not None and (compression != "gzip" or level not in GZIP_LEVELS):
        levels = f"{GZIP_LEVELS[0]}-{GZIP_LEVELS[-1]}"
        raise ValueError(f"compression_level must be {levels} with gzip compression, got {level}")
    writer = writer_of(request.write_format, compression, level)
    reader = reader_of(request.read_format, request.json_format, parsed)
    qprefix = (request.quarantine_prefix or f"{QUARANTINE_DIR}/{request.name_prefix}").strip("/")
    return _Settings(parsed, reader, writer, qprefix)


@dataclass
class _Tally:
    """What one run has read, written, quarantined and counted so far, and the plan its groups share."""

    target: Storage
    quarantine_prefix: str
    max_error_records: int
    pending: list[PendingObject] = field(default_factory=list)
    quarantined: list[ObjectInfo] = field(default_factory=list)
    read: list[ObjectInfo] = field(default_factory=list)
    vanished: list[ObjectInfo] = field(default_factory=list)
    records: int = 0
    casts: int = 0
    error_records: int = 0
    error_files: int = 0
    first_error: str | None = None
    exceeded: bool = False  # past max_error_records: nothing more is written, what was is aborted
    plan: QueryPlan | None = None  # made from the first group with data

    def _next_key(self) -> str:
        return quarantine_key(self.quarantine_prefix, len(self.quarantined))

    def unreadable(self, uri: str, cause: str) -> None:
        """An object no reader reads: one quarantine entry naming it."""
        self.error_files += 1
        self.quarantined.append(self.target.write_bytes(self._next_key(), object_entry(uri, cause)))
        self.first_error = self.first_error or f"{uri}: {cause}"

    def quarantine(self, reports: Sequence[ObjectReport]) -> None:
        """The bad records (or the whole object, when none reads) of each report, into the quarantine."""
        for report in reports:
            if report.unreadable:
                self.error_files += 1
                entry = object_entry(report.source_uri, report.error or "")
                self.quarantined.append(self.target.write_bytes(self._next_key(), entry))
            elif report.entries_path is not None:
                self.error_records += report.error_records
                self.quarantined.append(self.target.upload_file(report.entries_path, self._next_key()))
            self.first_error = self.first_error or report.first_error
            for leftover in (report.clean_path, report.entries_path):
                if leftover is not None:
                    leftover.unlink(missing_ok=True)

    def over_threshold(self) -> bool:
        return self.error_records + self.error_files > self.max_error_records


def stage_pending(request: StageRequest, *, log: Log = _quiet) -> StageResult:
    """Map the request's objects into pending parts; returns them in ``StageResult.pending``, none visible.

    Objects deleted since the run was planned are skipped and returned in ``vanished``; folder markers
    (keys ending in ``/``) in ``skipped``. Past ``max_error_records`` the parts written so far are aborted
    and :class:`StageError` is raised with the run's figures. Any other failure aborts them too.
    """
    started = time.monotonic()
    settings = _checked(request)
    target = request.target
    readable = tuple(obj for obj in request.objects if not obj.key.endswith("/"))
    skipped = tuple(obj for obj in request.objects if obj.key.endswith("/"))
    for obj in skipped:
        log(f"skipping folder marker {obj.key!r}")

    target.delete_prefix(settings.quarantine_prefix)  # a retried attempt of this run replaces its quarantine
    tally = _Tally(target, settings.quarantine_prefix, request.max_error_records)
    for uri, cause in request.refused:
        tally.unreadable(uri, cause)
    tally.exceeded = tally.error_files > request.max_error_records
    if readable:
        log(f"reading {len(readable)} objects ({sum(o.size for o in readable):,} bytes) from {request.source.uri}")
    with (
        aborted_on_failure(target, tally.pending, log),
        scratch_folder("stage", log) as workdir,
        polars_settings(settings.writer),  # bounded memory: CSV chunks, sink morsels (plan.py)
    ):
        out_dir = workdir / "parts"
        out_dir.mkdir()
        for planned in groups(request.source, readable):
            _stage_group(request, settings, planned, tally, workdir, out_dir, log)
    if tally.exceeded:
        aborted = abort(target, tally.pending, log)
        if aborted:
            log(f"aborted {aborted} pending parts of this attempt")
    return _result(request, tally, skipped, time.monotonic() - started, log)


def _stage_group(
    request: StageRequest,
    settings: _Settings,
    planned: Sequence[ObjectInfo],
    tally: _Tally,
    workdir: Path,
    out_dir: Path,
    log: Log,
) -> None:
    """One group of objects: read (local copies, the reader's JSON lines), map, quarantine, write pending."""
    source = request.source
    with ExitStack() as stack:
        copies = local_copies(source, planned, stack, workdir, concatenate=settings.reader.groups_small_objects)
        tally.vanished += copies.vanished
        for obj in copies.vanished:
            log(f"{source.uri_for(obj.key)}: deleted since the run was planned; skipped and counted")
        if not copies.objects:
            return
        tally.read += copies.objects
        paths = [unglobbed(path, workdir, stack) for path in copies.paths]
        if copies.members:
            grouped = sum(len(m) for m in copies.members.values())
            log(f"read {grouped:,} small objects as {len(copies.members)} group files (Glue's groupFiles)")
        native = _map_natively(request, settings, tally, paths, copies.uris, workdir, out_dir, stack, log)
        outcome, rest = native or (None, list(range(len(paths))))
        if rest:  # JSON, or CSV / Parquet objects the native scan does not read as the JSON path reads them
            if outcome is not None and not tally.exceeded:  # the native parts first: the rest numbers after them
                tally.pending += begin_parts(out_dir, request.target, request.name_prefix, settings.writer)
            members = copies.members if native is None else {}
            chosen, chosen_uris = [paths[i] for i in rest], [copies.uris[i] for i in rest]
            json_paths, uris, converted = settings.reader.as_json_lines(chosen, chosen_uris, workdir, stack)
            mapped = _map(request, settings, tally, json_paths, uris, members, workdir, out_dir, stack, log)
            mapped.reports[:0] = converted
            outcome = mapped if outcome is None else _merged(outcome, mapped)
        tally.quarantine(outcome.reports)
    tally.records += outcome.records
    tally.casts += outcome.cast_errors
    if not tally.exceeded and tally.over_threshold():
        tally.exceeded = True
        clear(out_dir)
    if not tally.exceeded:
        tally.pending += begin_parts(out_dir, request.target, request.name_prefix, settings.writer)


def _map_natively(
    request: StageRequest,
    settings: _Settings,
    tally: _Tally,
    paths: list[Path],
    uris: list[str],
    workdir: Path,
    out_dir: Path,
    stack: ExitStack,
    log: Log,
) -> tuple[GroupOutcome, list[int]] | None:
    """A CSV or Parquet group scanned natively into the stage's query (``formats.native``): its outcome and
    the indices of the objects left to the converting path (JSON lines), which finds their bad rows or
    quarantines them whole; None: the whole group takes the converting path."""
    reader = settings.reader
    if not isinstance(reader, ConvertingReader) or not paths:
        return None
    if tally.plan is None:
        sample = sample_json_lines(reader, paths, uris, workdir, stack)
        if sample is None:
            return None
        tally.plan = make_plan([sample], settings.mappings, request.target_file_bytes, settings.writer)
        sample.unlink(missing_ok=True)
    plan = tally.plan
    frames = native_frames(reader, paths, uris, plan.read_schema, workdir, stack, timestamp_sources(plan.mappings))
    if frames is None:
        log(f"{uris[0]}: columns without a native equivalent of their JSON form: read through JSON lines")
        return None
    rest: list[int] = []
    for attempt in range(2):
        outcome = _native_query(request, tally, plan, frames, paths, out_dir, log, reader)
        if isinstance(outcome, GroupOutcome):
            return outcome, rest
        bad = unreadable_natively(frames) if attempt == 0 and len(paths) > 1 else set()
        if not bad or len(bad) == len(paths):
            break
        log(f"{len(bad)} of {len(paths)} objects do not read natively ({first_line(outcome)}): read through JSON lines")
        rest = sorted(bad)
        frames = [None if index in bad else frame for index, frame in enumerate(frames)]
    log(f"reading failed ({first_line(outcome)}): reading the {len(paths)} objects through JSON lines")
    return None


def _native_query(
    request: StageRequest,
    tally: _Tally,
    plan: QueryPlan,
    frames: list[pl.LazyFrame | None],
    paths: list[Path],
    out_dir: Path,
    log: Log,
    reader: ConvertingReader,
) -> GroupOutcome | BaseException:
    """The stage's query over the natively scanned objects, or the error it failed with (its parts cleared)."""
    frame = concatenated(frames, plan.read_schema)
    out = None if tally.exceeded else out_dir
    typed = replace(plan, read_schema=frame.collect_schema())  # typed timestamps kept typed (presence counts)
    single = single_part(plan.writer)
    counted = out is not None and single is not plan.writer  # a count that changes no sink is waste
    bound = records_bound(reader, frames, paths, plan.records_per_part) if counted else None
    if bound is not None and bound <= plan.records_per_part:
        typed = replace(typed, writer=single)  # one plain file, not polars' splitting sink
    try:
        records, casts, missed, _ = query(paths, typed, out, len(tally.pending), ignore_errors=False, frame=frame)
    except READ_ERRORS as err:
        if out is not None:
            clear(out)
        return err
    if missed:
        log("values in other forms than the casts' fast paths read: mapped again with the full parsers")
        tally.plan = after_miss(plan)
    return GroupOutcome(records, casts, [], missed)


def _merged(native: GroupOutcome, converted: GroupOutcome) -> GroupOutcome:
    """A group's natively read objects and the rest, read through JSON lines, as one outcome."""
    records, casts = native.records + converted.records, native.cast_errors + converted.cast_errors
    return replace(converted, records=records, cast_errors=casts)


def _map(
    request: StageRequest,
    settings: _Settings,
    tally: _Tally,
    paths: list[Path],
    uris: list[str],
    members: Mapping[int, Sequence[Member]],
    workdir: Path,
    out_dir: Path,
    stack: ExitStack,
    log: Log,
) -> GroupOutcome:
    """The group mapped with the run's plan (made from this group if it is the first with data); again with
    every spelling if mapped values came out null. The plan learns what the group showed."""
    if tally.plan is None and paths:
        tally.plan = make_plan(paths, settings.mappings, request.target_file_bytes, settings.writer)
    pieces = [line_aligned_pieces(path, uri, workdir, stack, log) for path, uri in zip(paths, uris, strict=True)]
    plan = tally.plan
    if plan is None or not paths:
        return GroupOutcome(0, 0, [])
    map_with = functools.partial(
        map_group,
        paths,
        pieces,
        uris,
        workdir=workdir,
        out_dir=None if tally.exceeded else out_dir,
        first_part=len(tally.pending),
        log=log,
        members=members,
    )
    outcome = map_with(plan=plan)
    extended = respelled(paths, plan, workdir) if outcome.missing else None
    if extended is not None:
        log(
            "field names spelled differently past the sample ("
            + ", ".join(sorted(extended.spellings - plan.spellings))[:80]
            + "): mapped again with every spelling"
        )
        plan = extended
        if not tally.exceeded:
            clear(out_dir)
        outcome = map_with(plan=plan)
    if outcome.read_schema is not None:
        plan = replace(plan, read_schema=outcome.read_schema)
    if outcome.speculation_missed:
        log("values in other forms than the casts' fast paths read: mapped again with the full parsers")
        plan = after_miss(plan)
    tally.plan = plan
    return outcome


def _result(
    request: StageRequest, tally: _Tally, skipped: tuple[ObjectInfo, ...], duration_s: float, log: Log
) -> StageResult:
    """The run's figures; past the threshold raised as :class:`StageError` (nothing written)."""
    target, exceeded = request.target, tally.exceeded
    written = () if exceeded else tuple(ObjectInfo(obj.key, obj.size, 0, "") for obj in tally.pending)
    quarantine_uri = target.uri_for(tally.quarantine_prefix) if tally.quarantined else None
    if tally.quarantined:
        log(
            f"quarantined {tally.error_records:,} error records and {tally.error_files:,} unreadable objects "
            f"to {quarantine_uri}"
        )
    result = StageResult(
        read=tuple(tally.read),
        written=written,
        records_read=tally.records + tally.error_records,
        records_written=0 if exceeded else tally.records,
        error_records=tally.error_records,
        cast_errors=tally.casts,
        duration_s=duration_s,
        target_uri=target.uri,
        error_files=tally.error_files,
        records_discarded=tally.records if exceeded else 0,
        quarantined=tuple(tally.quarantined),
        quarantine_uri=quarantine_uri,
        first_error=tally.first_error,
        skipped=skipped,
        pending=() if exceeded else tuple(tally.pending),
        vanished=tuple(tally.vanished),
    )
    if exceeded:
        figures = (tally.error_records, tally.error_files, request.max_error_records, tally.first_error)
        raise StageError(threshold_message(*figures), result=result)
    if any(not obj.key.endswith("/") for obj in request.objects):
        log(
            f"wrote {tally.records:,} records in {len(written)} objects ({result.bytes_written:,} bytes) "
            f"to {target.uri} in {duration_s:.1f} s" + (" (pending until the commit)" if written else "")
        )
    else:
        log("nothing to read: no new objects")
    return result


def run_stage(
    source: Storage,
    objects: Sequence[ObjectInfo],
    mappings: Sequence[FieldMapping] | Sequence[Sequence[str]],
    target: Storage,
    *,
    name_prefix: str,
    compression: str,
    log: Log = _quiet,
    max_error_records: int = 0,
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
    quarantine_prefix: str | None = None,
    compression_level: int | None = None,
    refused: Sequence[tuple[str, str]] = (),
    json_format: JsonFormat | None = None,
    read_format: DataFormat | None = None,
    write_format: DataFormat | None = None,
) -> StageResult:
    """The stage outside the commit protocol, in one call: :func:`stage_pending`, then ``commits.complete``.

    For tests, benchmarks and scripts that want the parts visible at once and record no commit; the
    jobs stage with :func:`stage_pending` and publish through ``core.commits``. The arguments are the
    fields of :class:`StageRequest`. The parts appear each whole; if completing fails, the rest are aborted.
    """
    request = StageRequest(
        source=source,
        objects=tuple(objects),
        target=target,
        name_prefix=name_prefix,
        mappings=tuple(mappings),  # type: ignore[arg-type]
        compression=compression,
        compression_level=compression_level,
        max_error_records=max_error_records,
        target_file_bytes=target_file_bytes,
        quarantine_prefix=quarantine_prefix,
        refused=tuple(refused),
        json_format=json_format,
        read_format=read_format or DataFormat(),
        write_format=write_format or DataFormat(),
    )
    result = stage_pending(request, log=log)
    with aborted_on_failure(target, result.pending, log):
        written = complete(target, result.pending)
    return replace(result, written=written, pending=())

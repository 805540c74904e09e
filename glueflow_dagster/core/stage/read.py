"""Reading a stage's input: fetch, group files, line-aligned pieces, the tolerant read; the reader seam.

S3 objects pass through local temporary files, downloaded in bounded groups (:func:`groups`), so
neither memory nor local disk grows with the size of a run. Many small objects (Glue's groupFiles) are
concatenated into local group files first, a byte copy each, because a query pays per file it opens;
small S3 objects arrive through parallel GetObject requests (:func:`local_copies`). An uncompressed
object larger than the parts glueflow writes is read as line-aligned pieces
(:func:`line_aligned_pieces`), so memory stays bounded.

Bad input never crashes a run and never vanishes (:func:`map_group`): when the fast query cannot read an
object, the objects it could not read are inspected line by line (vectorised, see
:mod:`glueflow_dagster.core.quarantine`); their bad records are reported for the quarantine and their good
records are read as usual. Where the data holds other JSON types than the sample's, the fields that
differ are read as text (:func:`query_tolerant`), as Spark's JSON reader reads a field of mixed types.

The reader seam: a :class:`Reader` turns a group's local copies into the JSON lines the query scans.
JSON lines are read as they are (:class:`JsonLinesReader`); Glue's ``multiline`` / ``jsonPath`` forms are
converted first (:class:`JsonDocumentsReader`). Another input format is one more reader.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import BinaryIO, Protocol

import polars as pl

from glueflow_dagster.core.formats.native import lines_bound
from glueflow_dagster.core.json_reader import JsonFormat, convert_object
from glueflow_dagster.core.mapping import source_read_schema
from glueflow_dagster.core.quarantine import READ_ERRORS, ObjectReport, first_line, inspect_object, readable_problem
from glueflow_dagster.core.stage.plan import QueryPlan, query
from glueflow_dagster.core.stage.request import DEFAULT_TARGET_FILE_BYTES, StageError
from glueflow_dagster.core.stage.write import clear, single_part
from glueflow_dagster.core.storage import LocalStorage, ObjectInfo, Storage, StorageError

__all__ = [
    "Copies",
    "GroupOutcome",
    "JsonDocumentsReader",
    "JsonLinesReader",
    "Reader",
    "groups",
    "line_aligned_pieces",
    "local_copies",
    "map_group",
    "query_tolerant",
    "reader_for",
    "unglobbed",
]

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


# --------------------------------------------------------------------------------------------------
# Readers: one per input format


class Reader(Protocol):
    """One input format: how a group's local copies become the JSON lines the query scans."""

    @property
    def groups_small_objects(self) -> bool:
        """Whether small objects may be concatenated into group files (records never span objects)."""
        ...

    def as_json_lines(
        self, paths: Sequence[Path], uris: Sequence[str], workdir: Path, stack: ExitStack
    ) -> tuple[list[Path], list[str], list[ObjectReport]]:
        """The files to scan and their URIs, and reports of objects with bad records or none readable
        (their good records are in the files to scan); files made here are removed when ``stack`` closes."""
        ...


@dataclass(frozen=True)
class JsonLinesReader:
    """JSON lines (plain or gzip), scanned as they are."""

    groups_small_objects: bool = True

    def as_json_lines(
        self, paths: Sequence[Path], uris: Sequence[str], workdir: Path, stack: ExitStack
    ) -> tuple[list[Path], list[str], list[ObjectReport]]:
        return list(paths), list(uris), []


@dataclass(frozen=True)
class JsonDocumentsReader:
    """Glue's ``multiline`` / ``jsonPath`` JSON: each object converted to JSON lines first (streaming, see
    json_reader), bad records reported with their line and record number."""

    json_format: JsonFormat
    groups_small_objects: bool = False

    def as_json_lines(
        self, paths: Sequence[Path], uris: Sequence[str], workdir: Path, stack: ExitStack
    ) -> tuple[list[Path], list[str], list[ObjectReport]]:
        kept: list[Path] = []
        kept_uris: list[str] = []
        reports: list[ObjectReport] = []
        for path, uri in zip(paths, uris, strict=True):
            report = convert_object(path, uri, workdir, self.json_format)
            if report.clean_path is not None:
                stack.callback(report.clean_path.unlink, missing_ok=True)
                kept.append(report.clean_path)
                kept_uris.append(uri)
            if report.unreadable or report.error_records:
                reports.append(replace(report, clean_path=None))
        return kept, kept_uris, reports


def reader_for(json_format: JsonFormat | None) -> Reader:
    """The reader of a location's JSON form (Glue's reader options; None: JSON lines)."""
    if json_format is None or json_format.is_lines:
        return JsonLinesReader()
    return JsonDocumentsReader(json_format)


# --------------------------------------------------------------------------------------------------
# The tolerant read


@dataclass
class GroupOutcome:
    """What mapping one group gave: its figures, the reports of its bad objects, and what the next group's
    plan must learn from it."""

    records: int
    cast_errors: int
    reports: list[ObjectReport]
    speculation_missed: bool = False
    read_schema: pl.Schema | None = None  # set when some mapped fields had to be read as text
    missing: int = 0  # mapped values that came out null: where a spelling unseen so far may hide


def map_group(
    paths: Sequence[Path],
    pieces: Sequence[Sequence[Path]],
    uris: Sequence[str],
    plan: QueryPlan,
    workdir: Path,
    out_dir: Path | None,
    first_part: int,
    log: Callable[[str], None],
    members: Mapping[int, Sequence[Member]] | None = None,
) -> GroupOutcome:
    """One streaming query over the group; objects it cannot read are inspected and read carefully.

    Queries read each object's ``pieces``; inspection reads the object itself, so quarantined records
    carry the object's own line numbers. ``members`` maps the index of a group file (small objects
    concatenated) to its objects: a group file that cannot be read is taken apart again, and only its
    objects that do not read on their own are inspected, each under its own URI and line numbers.
    """
    members = members or {}
    every_piece = [piece for object_pieces in pieces for piece in object_pieces]
    single = single_part(plan.writer)
    counted = out_dir is not None and single is not plan.writer  # a count that changes no sink is waste
    if counted and lines_bound(every_piece, plan.records_per_part) is not None:
        plan = replace(plan, writer=single)  # every record fits one part: a plain sink writes it
    try:
        records, casts, missed, missing, used = query_tolerant(every_piece, plan, out_dir, first_part, log)
        return GroupOutcome(records, casts, [], missed, read_schema=_changed(used, plan), missing=missing)
    except READ_ERRORS as err:
        fast_error: BaseException = err
    if out_dir is not None:
        clear(out_dir)
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
    typed_plan: QueryPlan,
    plan: QueryPlan,
    out_dir: Path | None,
    first_part: int,
    log: Callable[[str], None],
    fast_error: BaseException,
) -> GroupOutcome:
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
                records, casts, missed, missing, used = query_tolerant(readable, typed_plan, out_dir, first_part, log)
            except READ_ERRORS:
                if out_dir is not None:
                    clear(out_dir)
                # Inspected objects hold only JSON objects now; ignore_errors only turns a scalar where a
                # struct is expected (e.g. "user": 5 for user.id) into a missing value instead of failing.
                records, casts, missed, missing = query(readable, plan, out_dir, first_part, ignore_errors=True)
        except READ_ERRORS as err:
            raise StageError(f"stage query failed: {first_line(err)}") from err
    return GroupOutcome(records, casts, reports, missed, read_schema=_changed(used, typed_plan), missing=missing)


def _changed(used: QueryPlan, plan: QueryPlan) -> pl.Schema | None:
    return used.read_schema if used.read_schema != plan.read_schema else None


def query_tolerant(
    paths: Sequence[Path], plan: QueryPlan, out_dir: Path | None, first_part: int, log: Callable[[str], None]
) -> tuple[int, int, bool, int, QueryPlan]:
    """``_query`` with the JSON types the sample showed; where the data holds other types for some mapped
    fields (a number here, an object there), those fields are read as text, as Spark's JSON reader reads
    a field of mixed types. Raises READ_ERRORS when even text does not read (bad records).

    Returns the query's figures (as ``_query``) and the plan it used (the caller keeps it for later groups).
    """
    try:
        return (*query(paths, plan, out_dir, first_part, ignore_errors=False), plan)
    except READ_ERRORS as err:
        if plan.text_schema is None:
            raise
        failure: BaseException = err
    if out_dir is not None:
        clear(out_dir)
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
    return (*query(paths, narrowed, out_dir, first_part, ignore_errors=False), narrowed)


def _reads(paths: Sequence[Path], schema: pl.Schema) -> bool:
    """Whether every line of ``paths`` reads with ``schema`` (every column parsed, nothing written)."""
    try:
        pl.scan_ndjson([str(p) for p in paths], schema=schema).select(pl.all().null_count()).collect(engine="streaming")
    except READ_ERRORS:
        return False
    return True


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


# --------------------------------------------------------------------------------------------------
# Objects in: fetch, group files, line-aligned pieces


def groups(source: Storage, objects: Sequence[ObjectInfo]) -> Iterator[list[ObjectInfo]]:
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
class Member:
    """One small object inside a group file: its URI and where its bytes are."""

    uri: str
    offset: int
    size: int  # the object's own bytes
    span: int  # its bytes in the group file: size, plus the newline added when it lacked a final one


@dataclass
class Copies:
    """A group's objects as local files: one path per object, or one per group file of small objects."""

    objects: list[ObjectInfo] = field(default_factory=list)  # read (present when the run got to them)
    paths: list[Path] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)  # per path; a group file's names its first object
    members: dict[int, tuple[Member, ...]] = field(default_factory=dict)  # path index -> its objects
    vanished: list[ObjectInfo] = field(default_factory=list)

    def add(self, obj: ObjectInfo, path: Path, uri: str) -> None:
        self.objects.append(obj)
        self.paths.append(path)
        self.uris.append(uri)


class _GroupFiles:
    """Writes small JSON-lines objects into group files of about _GROUP_BYTES (Glue's groupFiles): a plain
    byte copy per object, a newline added where an object lacks its last one, no per-record work."""

    def __init__(self, copies: Copies, workdir: Path, stack: ExitStack) -> None:
        self._copies = copies
        self._workdir = workdir
        self._stack = stack
        self._file: BinaryIO | None = None
        self._members: list[Member] = []
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
        self._members.append(Member(uri, self._offset, len(data), span))
        self._offset += span

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._copies.members[self._index] = tuple(self._members)
            self._file = None

    def close(self) -> None:
        self._close()


def local_copies(
    source: Storage, group: Sequence[ObjectInfo], stack: ExitStack, workdir: Path, *, concatenate: bool
) -> Copies:
    """The group's objects as local files, removed when ``stack`` closes; objects deleted since the run
    was planned are left out and returned as vanished.

    Small objects (at most _SMALL_OBJECT_BYTES) holding JSON lines go into group files when
    ``concatenate`` (JSON lines are read); local ones are read in place otherwise. Remote small objects
    are fetched with parallel GetObject requests, larger ones downloaded as streams.
    """
    copies = Copies()
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
    source: LocalStorage, group: Sequence[ObjectInfo], copies: Copies, grouped: _GroupFiles | None
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


def _downloads(source: Storage, objects: Sequence[ObjectInfo], copies: Copies, stack: ExitStack) -> None:
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
    copies: Copies,
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
    path: Path, members: Sequence[Member], workdir: Path, schema: pl.Schema, log: Callable[[str], None]
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
    path: Path, members: Sequence[Member], schema: pl.Schema, workdir: Path, lo: int, hi: int, *, known_bad: bool
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


def _range_reads(path: Path, members: Sequence[Member], schema: pl.Schema, workdir: Path) -> bool:
    part = _extract(path, members, workdir)
    try:
        return readable_problem([part], schema) is None
    finally:
        part.unlink(missing_ok=True)


def _extract(path: Path, members: Sequence[Member], workdir: Path, *, whole: bool = True) -> Path:
    """A new file of ``members``' bytes from the group file at ``path``: as in the group file (``whole``),
    or the one member's own bytes exactly, as stored (for inspection)."""
    out = workdir / f"members-{uuid.uuid4().hex}.json"
    with open(path, "rb") as src, open(out, "wb") as dst:
        for member in members:
            _copy_range(src, dst, member.offset, member.span if whole else member.size)
    return out


def unglobbed(path: Path, workdir: Path, stack: ExitStack) -> Path:
    """A path polars reads as itself: polars expands ``*?[]{}`` in paths as globs (``a[1].json`` would
    read ``a1.json``), so such a path is read through a plainly named symlink."""
    if not any(char in str(path) for char in _GLOB_CHARS):
        return path
    link = workdir / f"link-{uuid.uuid4().hex}"  # readers sniff compression from the bytes, not names
    link.symlink_to(path.absolute())
    stack.callback(link.unlink, missing_ok=True)
    return link


def line_aligned_pieces(
    path: Path, uri: str, workdir: Path, stack: ExitStack, log: Callable[[str], None]
) -> list[Path]:
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

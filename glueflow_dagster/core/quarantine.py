"""Where bad input goes: the quarantine of a stage, and the careful reader of objects that hold bad records.

Plain Python/polars (no Dagster import). A stage first reads all its objects with one fast streaming query;
only an object that this query cannot read is inspected here, line by line but vectorised (polars
``scan_lines`` + ``str.json_path_match``), so the hot path never pays for validation.

Quarantine format
-----------------

Every run writes what it could not read under ``<target uri>/_errors/<run name>/`` (``QUARANTINE_DIR``; the
run name is the stage's ``name_prefix``, e.g. ``run-<root run id>``), as JSON-lines objects
``errors-00000.json``, ``errors-00001.json``, ... (plain text, one object per source object that had
errors, in the order the objects were read). A re-executed run replaces its quarantine. Listings made
with :func:`list_stage_inputs` never return these objects, so the next job never reads them as data.

One line per bad record, with the 1-based physical line number in the (decompressed) source object::

    {"source": "s3://bucket/raw/x.json", "line": 17, "error": "not a JSON object (array)",
     "raw": "[1, 2]", "raw_encoding": "utf-8"}

``raw`` is the line as stored, without its line terminator; a line that is not valid UTF-8 is kept as
base64 of its bytes with ``"raw_encoding": "base64"``. Reasons (``error``) are one line: ``malformed
JSON``, ``not a JSON object (array|string|number|boolean|null)``, ``not valid UTF-8``.

One line for a source object that cannot be read at all (its records cannot be counted, and it counts
once in ``error_files``, not in ``error_records``)::

    {"source": "s3://bucket/raw/y.json.gz", "line": null, "error": "truncated gzip stream",
     "raw": null, "raw_encoding": null}

Object-level reasons: ``truncated gzip stream``, ``corrupt gzip stream (...)``, ``not JSON lines (a
Parquet file)`` (and Avro, ORC, zip, ...), ``not JSON lines: none of its N non-blank lines is a JSON
object (line 1: malformed JSON)``, ``unreadable: <reader message>``. Blank lines are not records; an
empty or zero-byte object holds 0 records and is not an error.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl

from glueflow_dagster.core.storage import RESERVED_DIR, ObjectInfo, Storage, StorageError

__all__ = [
    "QUARANTINE_DIR",
    "READ_ERRORS",
    "ObjectReport",
    "inspect_object",
    "is_quarantine_key",
    "list_stage_inputs",
    "object_entry",
    "quarantine_key",
]

#: Top-level folder of every location's quarantine: ``<uri>/_errors/<run name>/``.
QUARANTINE_DIR = "_errors"

#: What polars (or the OS) raises when an object cannot be read; a panic is not an Exception.
READ_ERRORS: tuple[type[BaseException], ...] = (
    pl.exceptions.PolarsError,
    pl.exceptions.PanicException,
    OSError,
)

_CHUNK = 4 * 1024 * 1024
# The careful reader holds one line in memory; longer lines make the object unreadable.
MAX_LINE_BYTES = 64 * 1024 * 1024
_UTF8_BOM = b"\xef\xbb\xbf"
_JSON_WHITESPACE = " \t\r\n"
# First bytes of formats that are surely not JSON lines (checked only for objects the fast path rejected).
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PAR1", "not JSON lines (a Parquet file)"),
    (b"Obj\x01", "not JSON lines (an Avro file)"),
    (b"ORC", "not JSON lines (an ORC file)"),
    (b"PK\x03\x04", "not JSON lines (a zip archive)"),
    (b"BZh", "not JSON lines (a bzip2 stream)"),
    (b"\xfd7zXZ\x00", "not JSON lines (an xz stream)"),
    (b"SEQ\x06", "not JSON lines (a Hadoop sequence file)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed object with bad records: cannot be inspected line by line"),
)


def is_quarantine_key(key: str) -> bool:
    """True for keys inside a quarantine folder (any path segment named ``_errors``)."""
    return QUARANTINE_DIR in key.split("/")


def list_stage_inputs(
    storage: Storage, *, recurse: bool, exclusions: Sequence[str], must_exist: bool = True
) -> Iterator[ObjectInfo]:
    """The objects a stage should read at ``storage``: never quarantined records, never folder markers.

    With ``must_exist`` a missing location (a local folder that does not exist, an S3 bucket that does
    not exist) raises a one-line :class:`StorageError` naming the URI instead of listing nothing; an S3
    prefix cannot be told apart from an empty one (S3 has no folders) and lists nothing.
    """
    if must_exist and not storage.exists():
        s3 = storage.uri.startswith("s3://")
        cause = "bucket does not exist (NoSuchBucket)" if s3 else "location does not exist (no such folder)"
        raise StorageError(f"{storage.uri}: {cause}", uri=storage.uri)
    for info in storage.list(recurse=recurse, exclusions=exclusions):
        if info.key.endswith("/") or is_quarantine_key(info.key) or RESERVED_DIR in info.key.split("/"):
            continue  # quarantine and glueflow's own bookkeeping (pending writes, commits) are never data
        yield info


def quarantine_key(prefix: str, index: int) -> str:
    """Key of the ``index``-th quarantine object under ``prefix``."""
    return f"{prefix.strip('/')}/errors-{index:05d}.json"


def object_entry(source_uri: str, error: str) -> bytes:
    """The quarantine line of an object that cannot be read at all."""
    entry = {"source": source_uri, "line": None, "error": error, "raw": None, "raw_encoding": None}
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


@dataclass(frozen=True)
class ObjectReport:
    """What the careful reader found in one object the fast path could not read.

    ``clean_path`` holds the object's readable records (JSON objects, one per line) when there are any;
    ``entries_path`` its quarantine lines. ``error`` is set when the object cannot be read at all.
    """

    source_uri: str
    good_records: int
    error_records: int
    first_error: str | None
    clean_path: Path | None
    entries_path: Path | None
    error: str | None = None

    @property
    def unreadable(self) -> bool:
        return self.error is not None


def _unreadable(source_uri: str, error: str) -> ObjectReport:
    return ObjectReport(source_uri, 0, 0, f"{source_uri}: {error}", None, None, error)


def _sniff(head: bytes) -> str | None:
    for magic, message in _MAGIC:
        if head.startswith(magic):
            return message
    return None


def _open_decompressed(path: Path) -> BinaryIO:
    """The object's bytes, gunzipped when it is gzip (sniffed by magic bytes, as polars does)."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it


def _gzip_cause(err: BaseException) -> str:
    if isinstance(err, EOFError):
        return "truncated gzip stream"
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"corrupt gzip stream ({detail})"


def gzip_problem(path: Path) -> str | None:
    """Why a gzip object does not decompress to its end (the cause quarantine entries give), or None when
    it does or is not gzip. The Spark stage script asks this of objects that failed Spark's read."""
    try:
        with _open_decompressed(path) as stream:
            while stream.read(_CHUNK):
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        return _gzip_cause(err)
    return None


class _LineSplitter:
    """Copies a byte stream line for line into a UTF-8 file, marking lines that are not valid UTF-8.

    Every physical line of the source becomes exactly one line of the copy (so line numbers carry over); a
    line that is not UTF-8 becomes ``<marker><base64 of its bytes>``. A leading UTF-8 BOM is dropped.
    Valid chunks are copied whole; only a chunk holding bad bytes is split into lines in Python.
    """

    def __init__(self, out: BinaryIO, marker: bytes) -> None:
        self.out = out
        self.marker = marker
        self.started = False

    def block(self, data: bytes) -> None:
        """Copy complete lines (``data`` ends with a newline, or is the final unterminated line)."""
        if not self.started:
            self.started = True
            if data.startswith(_UTF8_BOM):
                data = data[len(_UTF8_BOM) :]
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            self._lines(data)
        else:
            self.out.write(data)

    def _lines(self, data: bytes) -> None:
        lines = data.split(b"\n")
        last = lines.pop()  # b"" when data ends with a newline
        for line in lines:
            self._line(line)
            self.out.write(b"\n")
        if last:
            self._line(last)

    def _line(self, line: bytes) -> None:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            self.out.write(self.marker + base64.b64encode(line.removesuffix(b"\r")))
        else:
            self.out.write(line)


def _copy_as_utf8(src: Path, dst: Path, marker: bytes) -> str | None:
    """Decompress (gzip) and copy ``src`` to ``dst`` line for line; returns an object-level error or None."""
    stream = _open_decompressed(src)
    try:
        with stream, open(dst, "wb") as out:
            splitter = _LineSplitter(out, marker)
            carry = b""
            first = True
            while True:
                chunk = stream.read(_CHUNK)
                if first:
                    first = False
                    sniffed = _sniff(chunk)
                    if sniffed:
                        return sniffed
                if not chunk:
                    break
                data = carry + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data  # one long line so far
                    if len(carry) > MAX_LINE_BYTES:
                        return f"unreadable: a line longer than {MAX_LINE_BYTES // 1024**2} MiB"
                    continue
                splitter.block(data[: cut + 1])
                carry = data[cut + 1 :]
            if carry:
                splitter.block(carry)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        return _gzip_cause(err)
    return None


def _error_expr(marker: str) -> tuple[pl.Expr, pl.Expr]:
    """(error or null, is_blank) of each line of a UTF-8 copy made by :func:`_copy_as_utf8`."""
    raw = pl.col("raw")
    trimmed = raw.str.strip_chars(_JSON_WHITESPACE)
    first = trimmed.str.slice(0, 1)
    blank = trimmed == ""
    error = (
        pl.when(blank)
        .then(pl.lit(None, pl.String))
        .when(raw.str.starts_with(marker))
        .then(pl.lit("not valid UTF-8"))
        .when(raw.str.json_path_match("$").is_null())  # null for anything that is not valid JSON (and null)
        .then(pl.when(trimmed == "null").then(pl.lit("not a JSON object (null)")).otherwise(pl.lit("malformed JSON")))
        .when(first == "{")
        .then(pl.lit(None, pl.String))
        .when(first == "[")
        .then(pl.lit("not a JSON object (array)"))
        .when(first == '"')
        .then(pl.lit("not a JSON object (string)"))
        .when(first.is_in(["t", "f"]))
        .then(pl.lit("not a JSON object (boolean)"))
        .otherwise(pl.lit("not a JSON object (number)"))
    )
    return error, blank


def _classify(utf8: Path, source_uri: str, marker: str, entries: Path, clean: Path) -> dict[str, object]:
    """One streaming pass over the UTF-8 copy: quarantine lines to ``entries``, records to ``clean``."""
    lines = pl.scan_lines(utf8, name="raw", row_index_name="line", row_index_offset=1)
    error_expr, blank = _error_expr(marker)
    classified = lines.with_columns(error_expr.alias("error"), blank.alias("blank"))
    bad = pl.col("error").is_not_null()
    good = pl.col("error").is_null() & ~pl.col("blank")
    is_marked = pl.col("raw").str.starts_with(marker)
    entries_sink = (
        classified.filter(bad)
        .select(
            pl.lit(source_uri).alias("source"),
            pl.col("line").cast(pl.Int64),
            pl.col("error"),
            pl.when(is_marked).then(pl.col("raw").str.strip_prefix(marker)).otherwise(pl.col("raw")).alias("raw"),
            pl.when(is_marked).then(pl.lit("base64")).otherwise(pl.lit("utf-8")).alias("raw_encoding"),
        )
        .sink_ndjson(entries, lazy=True)
    )
    clean_sink = (
        classified.filter(good).select("raw").sink_csv(clean, include_header=False, quote_style="never", lazy=True)
    )
    counts = classified.select(
        good.sum().alias("good"),
        bad.sum().alias("bad"),
        pl.col("line").filter(bad).first().alias("first_line"),
        pl.col("error").filter(bad).first().alias("first_error"),
    )
    _, _, totals = pl.collect_all([entries_sink, clean_sink, counts], engine="streaming")
    row = totals.row(0, named=True)
    return row


def inspect_object(path: Path, source_uri: str, workdir: Path, read_schema: pl.Schema) -> ObjectReport:
    """Read one object carefully: split its lines into records and quarantine entries (vectorised).

    Writes ``workdir/<n>.clean.json`` (the JSON-object lines, as they are) and ``workdir/<n>.errors.json``
    (quarantine lines). The clean copy is then checked with the stage's reader; if that reader still
    cannot read it, the whole object is reported unreadable rather than crashing the run.
    """
    stem = uuid.uuid4().hex
    utf8 = workdir / f"{stem}.utf8.txt"
    clean = workdir / f"{stem}.clean.json"
    entries = workdir / f"{stem}.errors.json"
    marker = f"\x00glueflow-{stem}:"
    try:
        try:
            error = _copy_as_utf8(path, utf8, marker.encode())
        except OSError as err:
            raise StorageError(f"{source_uri}: cannot read local copy ({err})", uri=source_uri) from err
        if error is not None:
            return _unreadable(source_uri, error)

        try:
            row = _classify(utf8, source_uri, marker, entries, clean)
        except READ_ERRORS as err:
            return _unreadable(source_uri, f"unreadable: {first_line(err)}")
        good_records, error_records = int(row["good"] or 0), int(row["bad"] or 0)
        first = f"{source_uri} line {row['first_line']}: {row['first_error']}" if error_records else None
        if good_records == 0 and error_records > 0:
            noun = "line is" if error_records == 1 else "lines is"
            return _unreadable(
                source_uri,
                f"not JSON lines: none of its {error_records} non-blank {noun} a JSON object "
                f"(line {row['first_line']}: {row['first_error']})",
            )
        if good_records:
            problem = readable_problem([clean], read_schema, ignore_errors=True)
            if problem is not None:
                return _unreadable(source_uri, f"unreadable: {problem}")
        return ObjectReport(
            source_uri,
            good_records,
            error_records,
            first,
            clean if good_records else None,
            entries if error_records else None,
        )
    finally:
        utf8.unlink(missing_ok=True)


def readable_problem(paths: Sequence[Path], read_schema: pl.Schema, *, ignore_errors: bool = False) -> str | None:
    """None when the stage's reader parses every line of ``paths``; else its one-line message.

    Every column is projected so each line is really parsed (a bare ``len()`` only counts lines).
    """
    columns = [pl.col(name).null_count() for name in read_schema] or [pl.len()]
    scan = pl.scan_ndjson([str(p) for p in paths], schema=read_schema, ignore_errors=ignore_errors)
    try:
        scan.select(columns).collect(engine="streaming")
    except READ_ERRORS as err:
        return first_line(err)
    return None


def first_line(err: BaseException) -> str:
    """A reader error as one line (polars appends plans and context stacks on later lines)."""
    text = str(err).strip()
    return (text.splitlines()[0].strip() if text else "") or type(err).__name__

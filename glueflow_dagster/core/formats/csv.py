"""CSV in and out, with Glue's options: one reader (:class:`CsvSource` behind the converter) and one writer.

Read: polars' ``scan_csv`` with every column as text (CSV values are text; the mapping's casts type them),
quoted separators, doubled quotes and quoted line breaks read as Glue reads them, a UTF-8 byte order mark
skipped. Without ``withHeader`` (Glue's default) the columns are ``col0``, ``col1``, ... as in Glue;
``skipFirst`` skips the first data line. An ``escaper`` other than the quote (``\\"`` inside quotes) is
turned into doubled quotes by a byte replacement before the scan, since polars' reader knows only doubled
quotes. A row with more fields than the header (or the first row) is malformed: the object is then read
carefully with Python's ``csv`` module (only objects the scan failed on), its malformed rows go to the
quarantine with their line numbers and the rest is read as usual.

Write: polars' ``sink_csv`` (``separator``, ``quoteChar``, ``writeHeader``), gzip by polars' writer;
a quote inside a value is written doubled (the escaper is not used for writing).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from glueflow_dagster.core.formats.convert import unreadable
from glueflow_dagster.core.formats.options import CsvOptions
from glueflow_dagster.core.formats.partitions import parts_target, plain_stream
from glueflow_dagster.core.quarantine import ObjectReport

__all__ = ["CsvSource", "CsvWriter", "csv_object_key"]

_CHUNK = 8 * 1024**2
_SENTINEL = b"\xff\x00glueflow-escaped-escaper\x00\xff"  # 0xff never occurs in UTF-8 text


def _column_names(count: int) -> list[str]:
    return [f"col{index}" for index in range(count)]


@dataclass(frozen=True)
class CsvSource:
    """Glue's CSV reader options applied to polars' ``scan_csv``; malformed rows found with Python's csv."""

    options: CsvOptions

    def frame(self, path: Path, workdir: Path, stack: ExitStack) -> pl.LazyFrame:
        o = self.options
        if o.escaper is not None:
            path = _unescaped(path, o.escaper, o.quote_char or '"', workdir, stack)
        return pl.scan_csv(
            path,
            has_header=o.with_header,
            separator=o.separator,
            quote_char=o.quote_char,
            infer_schema=False,
            skip_rows=1 if o.skip_first and not o.with_header else 0,
            skip_rows_after_header=1 if o.skip_first and o.with_header else 0,
            with_column_names=None if o.with_header else lambda names: _column_names(len(names)),
            raise_if_empty=False,
            truncate_ragged_lines=False,
            glob=False,
        )

    def inspect(
        self, path: Path, uri: str, workdir: Path, stack: ExitStack, error: BaseException
    ) -> tuple[pl.LazyFrame | None, ObjectReport]:
        stem = uuid.uuid4().hex
        clean, entries = workdir / f"{stem}.clean.csv", workdir / f"{stem}.errors.json"
        stack.callback(clean.unlink, missing_ok=True)
        try:
            good, bad, first = _split_rows(path, uri, self.options, clean, entries)
        except (UnicodeDecodeError, csv.Error, OSError) as err:
            entries.unlink(missing_ok=True)
            return None, unreadable(uri, err)
        if not bad:  # Python's reader found no malformed row: polars' failure was the object's as a whole
            entries.unlink(missing_ok=True)
            return None, unreadable(uri, error)
        frame = pl.scan_csv(clean, infer_schema=False, raise_if_empty=False, glob=False) if good else None
        return frame, ObjectReport(uri, good, bad, first, None, entries)


def _split_rows(path: Path, uri: str, o: CsvOptions, clean: Path, entries: Path) -> tuple[int, int, str | None]:
    """Rows of the object with at most as many fields as the header (or the first row) to ``clean`` (a
    plain CSV with a header), the others to ``entries`` (quarantine lines with their line numbers)."""
    good = bad = 0
    first: str | None = None
    with ExitStack() as files:
        raw = files.enter_context(plain_stream(path))
        text = files.enter_context(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
        lines = _RecordingLines(text)
        rows = csv.reader(
            lines,
            delimiter=o.separator,
            quotechar=o.quote_char or '"',
            quoting=csv.QUOTE_NONE if o.quote_char is None else csv.QUOTE_MINIMAL,
            escapechar=o.escaper,
            doublequote=True,
            strict=False,
        )
        out = csv.writer(files.enter_context(open(clean, "w", newline="", encoding="utf-8")), lineterminator="\n")
        errors = files.enter_context(open(entries, "w", encoding="utf-8"))
        header: list[str] | None = None
        skip = o.skip_first
        for row in rows:
            line, raw_text = lines.taken()
            if not row:
                continue  # a blank line holds no record
            if header is None:
                header = row if o.with_header else _column_names(len(row))
                out.writerow(header)
                if o.with_header:
                    continue
            if skip:
                skip = False
                continue
            if len(row) > len(header):
                bad += 1
                problem = f"malformed CSV row: {len(row)} fields, the header has {len(header)}"
                first = first or f"{uri} line {line}: {problem}"
                entry = {"source": uri, "line": line, "error": problem, "raw": raw_text, "raw_encoding": "utf-8"}
                errors.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
                continue
            good += 1
            out.writerow(row)
    return good, bad, first


class _RecordingLines:
    """The lines Python's csv reader takes, kept until the row they make is taken: its first line's number
    and its raw text (a quoted line break makes a row of several lines)."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._lines: Iterator[str] = iter(text)
        self._taken: list[str] = []
        self._next_line = 1

    def __iter__(self) -> _RecordingLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._taken.append(line)
        return line

    def taken(self) -> tuple[int, str]:
        line, raw = self._next_line, "".join(self._taken)
        self._next_line += len(self._taken)
        self._taken = []
        return line, raw.rstrip("\r\n")


def _unescaped(path: Path, escaper: str, quote: str, workdir: Path, stack: ExitStack) -> Path:
    """A copy with the escaper's sequences as polars reads them: escaper+quote as a doubled quote,
    escaper+escaper as the escaper (byte replacements in blocks; no per-record work)."""
    e, q = escaper.encode(), quote.encode()
    out = workdir / f"unescaped-{uuid.uuid4().hex}.csv"
    stack.callback(out.unlink, missing_ok=True)
    with plain_stream(path) as src, open(out, "wb") as dst:
        carry = b""
        while block := src.read(_CHUNK):
            data = carry + block
            cut = len(data.rstrip(e))  # a run of escapers at the end may pair with the next block
            dst.write(_replaced(data[:cut], e, q))
            carry = data[cut:]
        dst.write(_replaced(carry, e, q))
    return out


def _replaced(data: bytes, e: bytes, q: bytes) -> bytes:
    return data.replace(e + e, _SENTINEL).replace(e + q, q + q).replace(_SENTINEL, e)


def csv_object_key(name_prefix: str, part: int, compression: str) -> str:
    return f"{name_prefix}-part-r-{part:05d}{'.csv.gz' if compression == 'gzip' else '.csv'}"


@dataclass(frozen=True)
class CsvWriter:
    """CSV parts with Glue's writer options, uncompressed or gzip, Hive-partitioned when ``partition_keys``."""

    options: CsvOptions
    compression: str = "none"
    compression_level: int | None = None
    partition_keys: tuple[str, ...] = ()
    single_part: bool = False  # the query writes at most records_per_part records (stage.write.single_part)
    # Timestamps are written typed (stage.plan maps the plain form to timestamps, not to its source text).
    typed_timestamps: ClassVar[bool] = True

    @property
    def plain_sink_applies(self) -> bool:
        """Whether ``single_part`` makes the sink one plain file (not for Hive folders)."""
        return not self.partition_keys

    def object_key(self, name_prefix: str, part: int) -> str:
        return csv_object_key(name_prefix, part, self.compression)

    def sink(
        self, frame: pl.LazyFrame, out_dir: Path, first_part: int, records_per_part: int, files: ExitStack
    ) -> pl.LazyFrame:
        suffix = ".csv.gz" if self.compression == "gzip" else ".csv"

        def part_name(index: int) -> str:
            return f"part-{first_part + index:05d}{suffix}"

        o = self.options
        options: dict[str, Any] = {
            "separator": o.separator,
            "quote_char": o.quote_char or '"',
            "quote_style": "never" if o.quote_char is None else "necessary",
            "include_header": o.write_header,
            "check_extension": False,
        }
        if self.compression == "gzip":
            options.update(compression="gzip", compression_level=self.compression_level)
        target = parts_target(out_dir, self.partition_keys, part_name, records_per_part, single_part=self.single_part)
        return frame.sink_csv(target, lazy=True, **options)

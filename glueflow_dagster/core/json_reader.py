"""Glue's JSON reader options: ``multiline`` and ``jsonPath``, turned into JSON lines before a stage reads.

Plain Python (no Dagster import). JSON lines stays the stage's fast default; an object of a location with
``multiline: true`` (a record may span lines; a file may hold one JSON document, an object or an array
of objects, or several documents one after another) or ``jsonPath`` (records found at a path in each
document: ``$.records[*]``, ``$[*]`` for a file that is one JSON array) is first converted, streaming, into
a local JSON-lines file that the stage then reads as usual.

Memory stays bounded by the largest single record (plus a read chunk), never the object: the document is
walked with an incremental decoder, and each record's own text is copied (with its line breaks, which JSON
allows only as whitespace, turned into blanks), not re-serialized. A value that is not a JSON object
where a record is expected goes to the quarantine with the object's URI, the 1-based line where it
starts and its 1-based ``record`` number; malformed JSON ends the object's records there (a decoder
cannot find the next record after a syntax error) and is quarantined the same way.
"""

from __future__ import annotations

import codecs
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from glueflow_dagster.core.quarantine import MAX_LINE_BYTES, ObjectReport, _open_decompressed, _sniff

__all__ = ["JsonFormat", "JsonPathError", "convert_object", "parse_json_path"]

_CHUNK = 4 * 1024 * 1024
_RAW_LIMIT = 1000  # characters of a bad record kept in its quarantine entry
_WHITESPACE = " \t\r\n"
_SPACE = re.compile(r"[ \t\r\n]*")
_NUMBER_TAIL = re.compile(r"[0-9.eE+-]+")
_NEXT_ELEMENT = re.compile(r"[ \t\r\n]*([,\]])")
_NAME_STEP = re.compile(r"\.([A-Za-z_$][A-Za-z0-9_$-]*)|\['((?:[^'\\]|\\.)*)'\]|\[\"((?:[^\"\\]|\\.)*)\"\]")
_DECODER = json.JSONDecoder()


class JsonPathError(ValueError):
    """A ``jsonPath`` glueflow cannot follow; the message quotes it."""


@dataclass(frozen=True)
class JsonFormat:
    """How a location's objects hold their records (Glue's ``format_options``)."""

    multiline: bool = False
    json_path: str | None = None

    @property
    def is_lines(self) -> bool:
        """Plain JSON lines: the stage reads the objects as they are."""
        return not self.multiline and self.json_path is None


def parse_json_path(path: str) -> tuple[tuple[str, ...], bool]:
    """``$.a.b[*]`` -> (("a", "b"), True): the names to descend and whether the path ends in ``[*]``.

    Supported: ``$``, then ``.name``, ``['name']`` or ``["name"]`` steps, and an optional final ``[*]``.
    Without ``[*]``, the selected value is one record (an object) or its elements are (an array).
    """
    if not isinstance(path, str) or not path.startswith("$"):
        raise JsonPathError(f"jsonPath {path!r} must start with '$'")
    rest = path[1:]
    each = rest.endswith("[*]")
    if each:
        rest = rest[: -len("[*]")]
    names: list[str] = []
    position = 0
    while position < len(rest):
        match = _NAME_STEP.match(rest, position)
        if match is None:
            raise JsonPathError(
                f"jsonPath {path!r}: expected .name, ['name'] or a final [*] at {rest[position:][:20]!r}"
            )
        quoted = match.group(2) if match.group(2) is not None else match.group(3)
        names.append(match.group(1) if quoted is None else re.sub(r"\\(.)", r"\1", quoted))
        position = match.end()
    return tuple(names), each


class _BadRecord(Exception):
    """Malformed JSON: the records of the object end here."""


class _Unreadable(Exception):
    """The object as a whole cannot be read (not UTF-8, a binary format, a record too large)."""


class _Text:
    """An incremental view of a decompressed UTF-8 stream: a buffer of text; lines are counted on demand."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buffer = ""
        self.pos = 0
        self.dropped_lines = 0  # line breaks in the text already dropped from the buffer
        self.eof = False
        self.first = True

    def line_of(self, pos: int) -> int:
        """The 1-based line of a buffer position (only for quarantine entries: it counts the buffer)."""
        return 1 + self.dropped_lines + self.buffer.count("\n", 0, pos)

    @property
    def line(self) -> int:
        return self.line_of(self.pos)

    def more(self) -> bool:
        """Read another chunk; False at the end of the stream."""
        if self.eof:
            return False
        chunk = self.stream.read(_CHUNK)
        if self.first:
            self.first = False
            sniffed = _sniff(chunk)
            if sniffed:
                raise _Unreadable(sniffed.replace("JSON lines", "JSON"))
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        try:
            text = self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as err:
            raise _Unreadable(f"not valid UTF-8 (near line {self.line})") from err
        if not chunk:
            self.eof = True
        # Drop what has been consumed, so the buffer holds at most one record and a chunk.
        self.dropped_lines += self.buffer.count("\n", 0, self.pos)
        self.buffer = self.buffer[self.pos :] + text
        self.pos = 0
        if len(self.buffer) > MAX_LINE_BYTES + _CHUNK:
            raise _Unreadable(f"unreadable: a record longer than {MAX_LINE_BYTES // 1024**2} MiB")
        return True

    def skip(self) -> str:
        """Skip whitespace; the next character, or "" at the end."""
        while True:
            self.pos = _SPACE.match(self.buffer, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self.more():
                return ""

    def take(self, expected: str) -> None:
        if self.skip() != expected:
            raise _BadRecord(f"malformed JSON (expected {expected!r})")
        self.pos += 1

    def value(self) -> tuple[object, str, int]:
        """Decode the next JSON value: (value, its text, its buffer position, valid until the next call)."""
        self.skip()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as err:
                if _truncated(self.buffer, err) and self.more():
                    continue  # the value goes on in the next chunk
                raise _BadRecord(f"malformed JSON ({err.msg})") from None
            cut = isinstance(value, int | float) and not self.eof
            if cut and (end == len(self.buffer) or _NUMBER_TAIL.fullmatch(self.buffer, end)) and self.more():
                continue  # a number cut by the chunk boundary ("1" of "1e5")
            start = self.pos
            self.pos = end
            return value, self.buffer[start:end], start


_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")


def _truncated(buffer: str, err: json.JSONDecodeError) -> bool:
    """Whether a decode error may only mean that the buffer ends inside the value."""
    tail = buffer[err.pos :]
    if not tail.strip(_WHITESPACE):
        return True
    if len(tail) < 10 and any(word.startswith(tail) for word in _LITERALS):
        return True
    if len(tail) < 32 and _NUMBER_TAIL.fullmatch(tail):
        return True  # a number cut after its digits ("1." or "1e")
    # A JSON string holds no raw line break: an unterminated one followed by a line break is malformed.
    return err.msg.startswith(("Unterminated string", "Invalid \\uXXXX")) and "\n" not in tail


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _records(text: _Text, names: tuple[str, ...]) -> Iterator[tuple[object, str, int]]:
    """Every record of the stream (value, text, line), in documents one after another."""
    while text.skip():
        yield from _descend(text, names) if names else _selected(text)


def _descend(text: _Text, names: tuple[str, ...]) -> Iterator[tuple[object, str, int]]:
    """Walk one object to ``names``, skipping other keys' values (one value in memory at a time)."""
    if text.skip() != "{":
        text.value()  # not an object: nothing at the path in this document
        return
    text.pos += 1
    if text.skip() == "}":
        text.pos += 1
        return
    while True:
        key, _, _ = text.value()
        if not isinstance(key, str):
            raise _BadRecord("malformed JSON (an object key must be a string)")
        text.take(":")
        if key == names[0]:
            yield from _selected(text) if len(names) == 1 else _descend(text, names[1:])
        else:
            text.value()
        if text.skip() == "}":
            text.pos += 1
            return
        text.take(",")


def _selected(text: _Text) -> Iterator[tuple[object, str, int]]:
    """The value at the path: its elements when it is an array, else the value itself."""
    if text.skip() != "[":
        yield text.value()
        return
    text.pos += 1
    if text.skip() == "]":
        text.pos += 1
        return
    while True:
        yield text.value()
        # Fast path: the separator is in the buffer (a regex, not a Python loop per character).
        match = _NEXT_ELEMENT.match(text.buffer, text.pos)
        if match is None:
            if text.skip() == "]":
                text.pos += 1
                return
            text.take(",")
            continue
        text.pos = match.end()
        if match.group(1) == "]":
            return


def _entry(source_uri: str, line: int, record: int, error: str, raw: str | None) -> str:
    entry = {
        "source": source_uri,
        "line": line,
        "record": record,
        "error": error,
        "raw": None if raw is None else raw[:_RAW_LIMIT],
        "raw_encoding": None if raw is None else "utf-8",
    }
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"


def convert_object(path: Path, source_uri: str, workdir: Path, fmt: JsonFormat) -> ObjectReport:
    """Convert one object to JSON lines (``clean_path``), its bad records to quarantine lines (``entries_path``).

    ``good_records`` counts the records written; an object that cannot be read at all is reported with
    ``error`` (and no records), like the careful reader's.
    """
    names, _ = parse_json_path(fmt.json_path) if fmt.json_path is not None else ((), True)
    stem = uuid.uuid4().hex
    clean = workdir / f"{stem}.lines.json"
    entries = workdir / f"{stem}.errors.json"
    good = bad = 0
    first: str | None = None
    record = 0
    try:
        with (
            _open_decompressed(path) as stream,
            open(clean, "w", encoding="utf-8") as out,
            open(entries, "w", encoding="utf-8") as errors,
        ):
            text = _Text(stream)
            records = _records(text, names)
            while True:
                try:
                    value, raw, start = next(records)
                except StopIteration:
                    break
                except _BadRecord as err:
                    record += 1
                    bad += 1
                    where = text.line
                    first = first or f"{source_uri} line {where} (record {record}): {err}"
                    errors.write(_entry(source_uri, where, record, str(err), text.buffer[text.pos :][:_RAW_LIMIT]))
                    break
                record += 1
                if isinstance(value, dict):
                    # JSON allows a line break only as whitespace: a blank keeps the record on one line.
                    out.write(raw.replace("\r", " ").replace("\n", " ") if "\n" in raw or "\r" in raw else raw)
                    out.write("\n")
                    good += 1
                else:
                    bad += 1
                    line = text.line_of(start)
                    error = f"not a JSON object ({_kind(value)})"
                    first = first or f"{source_uri} line {line} (record {record}): {error}"
                    errors.write(_entry(source_uri, line, record, error, raw))
    except _Unreadable as err:
        clean.unlink(missing_ok=True)
        entries.unlink(missing_ok=True)
        return ObjectReport(source_uri, 0, 0, f"{source_uri}: {err}", None, None, str(err))
    except (EOFError, OSError) as err:
        clean.unlink(missing_ok=True)
        entries.unlink(missing_ok=True)
        error = "truncated gzip stream" if isinstance(err, EOFError) else f"unreadable: {err}"
        return ObjectReport(source_uri, 0, 0, f"{source_uri}: {error}", None, None, error)
    if not bad:
        entries.unlink(missing_ok=True)
    return ObjectReport(source_uri, good, bad, first, clean, entries if bad else None)

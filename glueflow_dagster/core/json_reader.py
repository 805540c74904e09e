"""Glue's JSON reader options: ``multiline`` and ``jsonPath``, turned into JSON lines before a stage reads.

Plain Python (no Dagster import). JSON lines stays the stage's fast default; an object of a location with
``multiline: true`` (a record may span lines; a file may hold one JSON document, an object or an array
of objects, or several documents one after another) or ``jsonPath`` (records found at a path in each
document: ``$.records[*]``, ``$[*]`` for a file that is one JSON array) is first converted, streaming, into
a local JSON-lines file that the stage then reads as usual.

Memory stays bounded by the largest single record (plus a read chunk), never the object: the document is
walked incrementally, and each record's own text is copied (with its line breaks, which JSON allows only
as whitespace, turned into blanks), not re-serialized. Nothing is kept as Python values: a record's
syntax is checked by a decoder that drops every object, number and constant as soon as it is parsed
(decoding a 20 MB record into Python objects took 25 times its size), and values beside the path are
skipped by a scanner that follows only strings and brackets and lets go of what it has passed, so a
skipped value of any size costs a read chunk. A value that is not a JSON object where a record is
expected goes to the quarantine with the object's URI, the 1-based line where it starts and its 1-based
``record`` number; so does a record nested deeper than the stage's reader reads (1,024 levels);
malformed JSON ends the object's records there (a decoder cannot find the next record after a syntax
error) and is quarantined the same way.

One object never stops a run: an object that cannot be read at all (a corrupt or truncated gzip stream,
not UTF-8, another format, a record over the size limit) is reported unreadable, and so is an object in
which ``jsonPath`` leads nowhere (``no records at path ...``): its data is not dropped in silence, and the
stage quarantines it whole and reads the other objects.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from glueflow_dagster.core.quarantine import MAX_LINE_BYTES, ObjectReport, _gzip_cause, _open_decompressed, _sniff

__all__ = ["MAX_DEPTH", "JsonFormat", "JsonPathError", "convert_object", "parse_json_path"]

#: Records nested deeper than this are bad records: the stage's reader (polars) reads no deeper.
MAX_DEPTH = 1024

_CHUNK = 4 * 1024 * 1024
_WRITE_PIECE = 1024 * 1024  # a large record is written in pieces: no second copy of it at once
_RAW_LIMIT = 1000  # characters of a bad record kept in its quarantine entry
_PATH_SHOWN = 60  # characters of a jsonPath quoted in a message
_MAX_PATH_STEPS = 100
_WHITESPACE = " \t\r\n"
_SPACE = re.compile(r"[ \t\r\n]*")
_NUMBER_TAIL = re.compile(r"[0-9.eE+-]+")
_NUMBER_START = frozenset("-0123456789")
_NEXT_ELEMENT = re.compile(r"[ \t\r\n]*([,\]])")
_NAME_STEP = re.compile(r"\.([A-Za-z_$][A-Za-z0-9_$-]*)|\['((?:[^'\\]|\\.)*)'\]|\[\"((?:[^\"\\]|\\.)*)\"\]")
# Text outside strings that is no bracket, and whole strings (possessive: no backtracking, linear).
_PLAIN = re.compile(r'(?:[^"\[\]{}]++|"(?:[^"\\]++|\\.)*+")*+', re.DOTALL)
# The rest of a string whose opening quote lies behind.
_STRING_REST = re.compile(r'(?:[^"\\]++|\\.)*+', re.DOTALL)
_KINDS = {"{": "object", "[": "array", '"': "string", "t": "boolean", "f": "boolean", "n": "null"}
_DECODER = json.JSONDecoder()


def _discard(*_args: object) -> None:
    return None


# Checks a value's syntax and finds its end keeping nothing: every object, number and constant becomes
# None as soon as it is parsed (what remains, strings and arrays of Nones, is about the text's size).
_CHECKER = json.JSONDecoder(
    object_pairs_hook=_discard, parse_float=_discard, parse_int=_discard, parse_constant=_discard
)


class JsonPathError(ValueError):
    """A ``jsonPath`` glueflow cannot follow; the message quotes it (cut when long)."""


@dataclass(frozen=True)
class JsonFormat:
    """How a location's objects hold their records (Glue's ``format_options``)."""

    multiline: bool = False
    json_path: str | None = None

    @property
    def is_lines(self) -> bool:
        """Plain JSON lines: the stage reads the objects as they are."""
        return not self.multiline and self.json_path is None


def _cut(text: str) -> str:
    """A user's text as shown in a message: its head and its length when it is long."""
    return text if len(text) <= _PATH_SHOWN else f"{text[:_PATH_SHOWN]}... ({len(text):,} characters)"


def _quoted(path: object) -> str:
    shown = repr(path) if not isinstance(path, str) else path
    return repr(shown) if len(shown) <= _PATH_SHOWN else f"{shown[:_PATH_SHOWN]!r}... ({len(shown):,} characters)"


def parse_json_path(path: str) -> tuple[tuple[str, ...], bool]:
    """``$.a.b[*]`` -> (("a", "b"), True): the names to descend and whether the path ends in ``[*]``.

    Supported: ``$``, then ``.name``, ``['name']`` or ``["name"]`` steps (at most 100), and an optional
    final ``[*]``. Without ``[*]``, the selected value is one record (an object) or its elements are (an array).
    """
    if not isinstance(path, str) or not path.startswith("$"):
        raise JsonPathError(f"jsonPath {_quoted(path)} must start with '$'")
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
                f"jsonPath {_quoted(path)}: expected .name, ['name'] or a final [*] "
                f"at {rest[position : position + 20]!r}"
            )
        if len(names) == _MAX_PATH_STEPS:
            raise JsonPathError(f"jsonPath {_quoted(path)}: at most {_MAX_PATH_STEPS} steps")
        quoted = match.group(2) if match.group(2) is not None else match.group(3)
        names.append(match.group(1) if quoted is None else re.sub(r"\\(.)", r"\1", quoted))
        position = match.end()
    return tuple(names), each


class _BadRecord(Exception):
    """Malformed JSON: the records of the object end here."""


class _Unreadable(Exception):
    """The object as a whole cannot be read (not UTF-8, a binary format, a record too large)."""


@dataclass(frozen=True)
class _Value:
    """A value where a record is expected: its text is ``buffer[start:end]`` until the next read.

    A record too deep to read has left the buffer: ``line`` and ``head`` (its first characters) say where
    it was and what it held, and ``error`` why it is bad.
    """

    kind: str
    start: int
    end: int
    line: int | None = None
    head: str | None = None
    error: str | None = None


class _Text:
    """An incremental view of a decompressed UTF-8 stream: a buffer of text; lines are counted on demand."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buffer = ""
        self.pos = 0
        self.dropped_lines = 0  # line breaks in the text already dropped from the buffer
        self.counted_pos = 0  # the line breaks of the buffer before this position are counted:
        self.counted_lines = 0  # this many
        self.eof = False
        self.first = True
        self.documents = 0
        self.paths_found = 0  # values found at the jsonPath (or documents, without one)

    def line_of(self, pos: int) -> int:
        """The 1-based line of a buffer position.

        Counted on from the last position asked for (positions asked for move forward: a record's start,
        then the next one's), so every line break is counted once: counting from the buffer's start each
        time made the time grow with the square of the bad values' count.
        """
        if pos >= self.counted_pos:
            self.counted_lines += self.buffer.count("\n", self.counted_pos, pos)
        else:
            self.counted_lines -= self.buffer.count("\n", pos, self.counted_pos)
        self.counted_pos = pos
        return 1 + self.dropped_lines + self.counted_lines

    @property
    def line(self) -> int:
        return self.line_of(self.pos)

    def more(self, at_least: int = 1) -> bool:
        """Read on until ``at_least`` more characters are buffered or the stream ends; False at its end."""
        if self.eof:
            return False
        texts: list[str] = []
        got = 0
        while got < at_least and not self.eof:
            chunk = self.stream.read(_CHUNK)
            if self.first:
                self.first = False
                sniffed = _sniff(chunk)
                if sniffed:
                    raise _Unreadable(sniffed.replace("JSON lines", "JSON"))
                if chunk.startswith(b"\xef\xbb\xbf"):
                    chunk = chunk[3:]
            try:
                texts.append(self.decoder.decode(chunk, final=not chunk))
            except UnicodeDecodeError as err:
                raise _Unreadable(f"not valid UTF-8 (near line {self.line})") from err
            got += len(texts[-1])
            self.eof = not chunk
        # Drop what has been consumed, so the buffer holds at most one record and what was read after it.
        self.dropped_lines = self.line_of(self.pos) - 1
        self.counted_pos = self.counted_lines = 0
        self.buffer = "".join([self.buffer[self.pos :], *texts])
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

    def _decode(self, decoder: json.JSONDecoder) -> tuple[object, int]:
        """Decode the value at ``pos`` (read on while it goes on past the buffer): (value, its end).

        ``pos`` stays at the value's start. Reading on asks for half again what is buffered, so a large
        value is decoded a few times, not once per chunk.
        """
        first = self.skip()
        while True:
            try:
                value, end = decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as err:
                if _truncated(self.buffer, err) and self.more(max(1, (len(self.buffer) - self.pos) // 2)):
                    continue  # the value goes on in the next chunk
                raise _BadRecord(f"malformed JSON ({err.msg})") from None
            cut = first in _NUMBER_START and not self.eof
            if cut and (end == len(self.buffer) or _NUMBER_TAIL.fullmatch(self.buffer, end)) and self.more():
                continue  # a number cut by the chunk boundary ("1" of "1e5")
            return value, end

    def key(self) -> str:
        """An object's key (a string), consumed."""
        if self.skip() != '"':
            raise _BadRecord("malformed JSON (an object key must be a string)")
        key, self.pos = self._decode(_DECODER)
        return str(key)

    def record(self) -> _Value:
        """The next value where a record is expected, checked but not kept; consumed."""
        kind = _KINDS.get(self.skip(), "number")
        try:
            _, end = self._decode(_CHECKER)
        except RecursionError:
            # Deeper than Python's decoder goes (about 1,000 levels): the scanner follows any depth.
            end, too_deep = self._scan(keep=True, limit=MAX_DEPTH)
            if too_deep is not None:
                self.pos = end
                line, head = too_deep
                return _Value(kind, end, end, line, head, f"nested deeper than {MAX_DEPTH} levels")
        start, self.pos = self.pos, end
        return _Value(kind, start, end)

    def pass_value(self) -> None:
        """Move past the next value without holding it (a value beside the path)."""
        self.pos, _ = self._scan(keep=False, limit=None)

    def _scan(self, *, keep: bool, limit: int | None) -> tuple[int, tuple[int, str] | None]:
        """Find the end of the value at ``pos`` following only its strings and brackets (no values made).

        With ``keep`` the value's text stays in the buffer from ``pos`` (a record to copy), else what is
        passed is let go at every read. With ``limit``, a value nested deeper is let go from there on and
        reported by its line and first characters. Returns (its end, (line, head) when too deep).
        """
        first = self.skip()
        if first not in '[{"':
            return self._decode(_CHECKER)[1], None  # a number or a constant: a few characters
        # A string is followed from its opening quote: the scanner for text between brackets passes strings.
        at, in_string = (self.pos + 1, True) if first == '"' else (self.pos, False)
        depth: int = 0
        too_deep: tuple[int, str] | None = None
        while True:
            buffer = self.buffer
            if in_string:
                at = _STRING_REST.match(buffer, at).end()  # type: ignore[union-attr]
                if at < len(buffer) and buffer[at] == '"':
                    at, in_string = at + 1, False
                    if depth == 0:
                        return at, too_deep
                    continue
            else:
                at = _PLAIN.match(buffer, at).end()  # type: ignore[union-attr]
                if at < len(buffer):
                    char = buffer[at]
                    at += 1
                    if char == '"':
                        in_string = True
                        continue
                    depth += 1 if char in "[{" else -1
                    if depth <= 0:
                        return at, too_deep
                    if limit is not None and depth > limit and too_deep is None:
                        too_deep = (self.line, buffer[self.pos : self.pos + _RAW_LIMIT])
                        keep = False
                    continue
            # The value goes on past the buffer (or a string's escape is cut): read on.
            offset = at - self.pos
            if not keep:
                self.pos, offset = at, 0
            if not self.more():
                raise _BadRecord("malformed JSON (the object ends inside a value)")
            at = self.pos + offset


_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")


def _truncated(buffer: str, err: json.JSONDecodeError) -> bool:
    """Whether a decode error may only mean that the buffer ends inside the value."""
    tail = buffer[err.pos : err.pos + 64]
    if err.pos + 64 >= len(buffer) and not tail.strip(_WHITESPACE):
        return True
    if len(tail) < 10 and any(word.startswith(tail) for word in _LITERALS):
        return True
    if len(tail) < 32 and _NUMBER_TAIL.fullmatch(tail):
        return True  # a number cut after its digits ("1." or "1e")
    # A JSON string holds no raw line break: an unterminated one followed by a line break is malformed.
    return err.msg.startswith(("Unterminated string", "Invalid \\uXXXX")) and buffer.find("\n", err.pos) < 0


def _records(text: _Text, names: tuple[str, ...]) -> Iterator[_Value]:
    """Every record of the stream, in documents one after another."""
    while text.skip():
        text.documents += 1
        yield from _descend(text, names) if names else _selected(text)


def _descend(text: _Text, names: tuple[str, ...]) -> Iterator[_Value]:
    """Walk one object to ``names``, passing over other keys' values (none of them held)."""
    if text.skip() != "{":
        text.pass_value()  # not an object: nothing at the path in this document
        return
    text.pos += 1
    if text.skip() == "}":
        text.pos += 1
        return
    while True:
        key = text.key()
        text.take(":")
        if key == names[0]:
            yield from _selected(text) if len(names) == 1 else _descend(text, names[1:])
        else:
            text.pass_value()
        if text.skip() == "}":
            text.pos += 1
            return
        text.take(",")


def _selected(text: _Text) -> Iterator[_Value]:
    """The value at the path: its elements when it is an array, else the value itself."""
    text.paths_found += 1
    if text.skip() != "[":
        yield text.record()
        return
    text.pos += 1
    if text.skip() == "]":
        text.pos += 1
        return
    while True:
        yield text.record()
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


def _write_record(out: TextIO, buffer: str, start: int, end: int) -> None:
    """One record on one line: JSON allows a line break only as whitespace, so a blank replaces it."""
    for at in range(start, end, _WRITE_PIECE):
        piece = buffer[at : min(end, at + _WRITE_PIECE)]
        out.write(piece.replace("\r", " ").replace("\n", " ") if "\n" in piece or "\r" in piece else piece)
    out.write("\n")


@dataclass
class _Counts:
    good: int = 0
    bad: int = 0
    first: str | None = None


def _convert(text: _Text, names: tuple[str, ...], source_uri: str, out: TextIO, errors: TextIO) -> _Counts:
    """Records to ``out``, quarantine lines to ``errors``."""
    counts = _Counts()
    record = 0
    values = _records(text, names)
    while True:
        try:
            value = next(values)
        except StopIteration:
            break
        except _BadRecord as err:
            record += 1
            counts.bad += 1
            where = text.line
            counts.first = counts.first or f"{source_uri} line {where} (record {record}): {err}"
            errors.write(_entry(source_uri, where, record, str(err), text.buffer[text.pos : text.pos + _RAW_LIMIT]))
            break
        record += 1
        if value.kind == "object" and value.error is None:
            _write_record(out, text.buffer, value.start, value.end)
            counts.good += 1
            continue
        counts.bad += 1
        line = value.line if value.line is not None else text.line_of(value.start)
        raw = (
            value.head
            if value.head is not None
            else text.buffer[value.start : min(value.end, value.start + _RAW_LIMIT)]
        )
        error = value.error or f"not a JSON object ({value.kind})"
        counts.first = counts.first or f"{source_uri} line {line} (record {record}): {error}"
        errors.write(_entry(source_uri, line, record, error, raw))
    return counts


def convert_object(path: Path, source_uri: str, workdir: Path, fmt: JsonFormat) -> ObjectReport:
    """Convert one object to JSON lines (``clean_path``), its bad records to quarantine lines (``entries_path``).

    ``good_records`` counts the records written. An object that cannot be read at all is reported with
    ``error`` (and no records), like the careful reader's; so is an object with documents in none of which
    ``jsonPath`` leads anywhere (``no records at path ...``). This never raises for what the object holds.
    """
    names, _ = parse_json_path(fmt.json_path) if fmt.json_path is not None else ((), True)
    stem = uuid.uuid4().hex
    clean = workdir / f"{stem}.lines.json"
    entries = workdir / f"{stem}.errors.json"
    error: str | None = None
    try:
        with (
            _open_decompressed(path) as stream,
            open(clean, "w", encoding="utf-8") as out,
            open(entries, "w", encoding="utf-8") as errors,
        ):
            text = _Text(stream)
            counts = _convert(text, names, source_uri, out, errors)
        if names and text.documents and not text.paths_found and not counts.bad:
            error = f"no records at path {_cut(fmt.json_path or '')}"
    except _Unreadable as err:
        error = str(err)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        error = _gzip_cause(err)
    except OSError as err:
        error = f"unreadable: {err}"
    except (RecursionError, MemoryError) as err:  # a safety net: one object never stops the run
        error = f"unreadable: {type(err).__name__}"
    if error is not None:
        clean.unlink(missing_ok=True)
        entries.unlink(missing_ok=True)
        return ObjectReport(source_uri, 0, 0, f"{source_uri}: {error}", None, None, error)
    if not counts.bad:
        entries.unlink(missing_ok=True)
    return ObjectReport(source_uri, counts.good, counts.bad, counts.first, clean, entries if counts.bad else None)

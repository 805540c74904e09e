"""Glue's JSON reader options: ``multiline`` and ``jsonPath``, turned into JSON lines before a stage reads.

Plain Python (no Dagster import). JSON lines stays the stage's fast default; an object of a location with
``multiline: true`` (a record may span lines; a file may hold one JSON document, an object or an array
of objects, or several documents one after another) or ``jsonPath`` (records found at a path in each
document: ``$.records[*]``, ``$[*]`` for a file that is one JSON array) is first converted, streaming, into
a local JSON-lines file that the stage then reads as usual.

Memory is a few read chunks, whatever the size of a record or of the object: nothing is decoded into
Python values. The object's bytes are checked against JSON's grammar by byte patterns (``re``, in C): a
pattern checks whole runs of values nested up to ``_NESTING`` levels at once (an array of records, the
members of an object), and a small walker with a stack of brackets takes over only where a value goes
deeper or is cut by the end of a read chunk. What is checked is written out at once (a record's text is
copied, its line breaks, which JSON allows only as whitespace, turned into blanks: not re-serialized) and
let go, so a record is never held whole; a record that turns out bad is cut off the output again. The
type of a record is its first byte. Values beside the path are checked the same way and not written.

A value that is not a JSON object where a record is expected goes to the quarantine with the object's URI,
the 1-based line where it starts and its 1-based ``record`` number; so does a record nested deeper than
the stage's reader reads (1,024 levels); malformed JSON ends the object's records there (the next record
cannot be found after a syntax error) and is quarantined the same way.

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
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from glueflow_dagster.core.quarantine import MAX_LINE_BYTES, ObjectReport, _gzip_cause, _open_decompressed, _sniff

__all__ = ["MAX_DEPTH", "JsonFormat", "JsonPathError", "convert_object", "parse_json_path"]

#: Records nested deeper than this are bad records: the stage's reader (polars) reads no deeper.
MAX_DEPTH = 1024
#: Deeper than this, any value ends the object's records (the bracket stack takes a byte a level).
MAX_NESTING = 1 << 20

_CHUNK = 4 * 1024 * 1024
_WRITE_PIECE = 1024 * 1024  # a large record is written in pieces: no second copy of it at once
_BATCH = 256 * 1024  # records checked and written by one pattern call: the copies made stay this small
_RAW_LIMIT = 1000  # bytes of a bad record kept in its quarantine entry
_PATH_SHOWN = 60  # characters of a jsonPath quoted in a message
_MAX_PATH_STEPS = 100
_MAX_TOKEN = _CHUNK  # a number or a literal longer than this is refused (it would grow the buffer)
_NESTING = 4  # levels of nesting one pattern call checks

# JSON's grammar as byte patterns; every repetition is possessive and every alternative starts with a
# different byte, so a pattern never backtracks: linear time.
_WS = rb"[ \t\r\n]*+"
_STRING_BODY = rb'(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+'
_STRING = rb'"' + _STRING_BODY + rb'"'
_NUMBER = rb"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+"
_LITERAL = rb"true|false|null|NaN|Infinity|-Infinity"  # the constants Python's json module reads too
_SCALAR_TOKEN = rb"(?:" + _NUMBER + rb"|" + _LITERAL + rb")"
_SCALAR = rb"(?:" + _STRING + rb"|" + _SCALAR_TOKEN + rb")"


def _object_pattern(value: bytes) -> bytes:
    """An object whose member values match ``value`` (a comma must be followed by a member)."""
    member = _STRING + _WS + rb":" + _WS + value + _WS
    return rb"\{" + _WS + rb"(?:" + member + rb"(?:," + _WS + rb'(?=")|(?=\})))*+\}'


def _array_pattern(value: bytes) -> bytes:
    """An array whose elements match ``value`` (a comma must be followed by an element)."""
    return rb"\[" + _WS + rb"(?:" + value + _WS + rb"(?:," + _WS + rb"(?!\])|(?=\])))*+\]"


def _value_pattern(depth: int) -> bytes:
    """Any JSON value nested at most ``depth`` levels."""
    if depth == 0:
        return _SCALAR
    inner = _value_pattern(depth - 1)
    return rb"(?:" + _SCALAR + rb"|" + _object_pattern(inner) + rb"|" + _array_pattern(inner) + rb")"


_VALUE = _value_pattern(_NESTING)
_MEMBER = _STRING + _WS + rb":" + _WS + _VALUE + _WS
_RECORD = _object_pattern(_value_pattern(_NESTING - 1))
# The walker's patterns. Group 1 is the run of complete items, each followed by a comma (or by the closing
# bracket: the last one). A match ends with the bracket it opens or closes, or before what the walker must
# take token by token (a value nested deeper, cut by the chunk's end, or malformed). A value is scanned once.
_OBJECT_RUN = rb"((?:" + _WS + _MEMBER + rb"(?:,|(?=\})))*+)" + _WS
_ARRAY_RUN = rb"((?:" + _WS + _VALUE + _WS + rb"(?:,|(?=\])))*+)" + _WS
_OBJECT_TAIL = rb"(?:\}|" + _STRING + _WS + rb":" + _WS + rb"[\[{])?"
_ARRAY_TAIL = rb"[\]\[{]?"
_OBJECT_BODY = re.compile(_OBJECT_RUN + _OBJECT_TAIL)
_ARRAY_BODY = re.compile(_ARRAY_RUN + _ARRAY_TAIL)
_OBJECT_AFTER = re.compile(_WS + rb"(?:\}|," + _OBJECT_RUN + _OBJECT_TAIL + rb")?")
_ARRAY_AFTER = re.compile(_WS + rb"(?:\]|," + _ARRAY_RUN + _ARRAY_TAIL + rb")?")
# Records checked and split by pattern calls: elements of an array (each followed by a comma), documents.
_RECORD_RUN = re.compile(rb"(?:" + _WS + _RECORD + _WS + rb",)*+")
_RECORD_ITEM = re.compile(_WS + rb"(" + _RECORD + rb")" + _WS + rb",")
_DOCUMENT_RUN = re.compile(rb"(?:" + _WS + _RECORD + rb")*+")
_DOCUMENT_ITEM = re.compile(_WS + rb"(" + _RECORD + rb")")
_NAME_STEP = re.compile(r"\.([A-Za-z_$][A-Za-z0-9_$-]*)|\['((?:[^'\\]|\\.)*)'\]|\[\"((?:[^\"\\]|\\.)*)\"\]")
_SPACE = re.compile(_WS)
_STRING_REST = re.compile(_STRING_BODY)
_STRING_WHOLE = re.compile(_STRING)
_TOKEN = re.compile(_SCALAR_TOKEN)
_NUMBER_GOES_ON = re.compile(rb"[0-9.eE+-]*+")  # what is left of the buffer may go on in the next chunk
_NEXT_ELEMENT = re.compile(_WS + rb"([,\]])")
_BLANKS = bytes.maketrans(b"\r\n", b"  ")
_KINDS = {ord("{"): "object", ord("["): "array", ord('"'): "string", ord("t"): "boolean", ord("f"): "boolean"}
_KINDS[ord("n")] = "null"

# What the walker expects next. Objects: a key (after a comma), a key or "}" (after "{"). Arrays: a value
# (after a comma), a value or "]" (after "["). Then: "," or the closing bracket; ":"; any value.
_KEY, _KEY_OR_END, _ITEM, _ITEM_OR_END, _AFTER, _COLON, _ANY = range(7)
_OPEN_OBJECT, _OPEN_ARRAY, _CLOSE_OBJECT, _CLOSE_ARRAY = b"{[}]"
_QUOTE, _BACKSLASH, _COMMA, _COLON_BYTE = b'"\\,:'


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


class _Record:
    """The record being checked: where it starts in the buffer, and what is kept of it once its start has
    left the buffer (its line and first bytes, for a quarantine entry; where its text begins in the output,
    to cut it off when it turns out bad)."""

    __slots__ = ("head", "length", "line", "offset", "start", "write")

    def __init__(self, start: int, write: bool) -> None:
        self.start = start
        self.write = write
        self.line: int | None = None
        self.head: bytes | None = None
        self.offset: int | None = None
        self.length = 0


@dataclass(frozen=True)
class _Bad:
    """A bad record: the line where it starts, its 1-based number, why, and its first bytes."""

    line: int
    record: int
    error: str
    raw: bytes


class _Reader:
    """Reads one decompressed object: a buffer of its bytes, checked and let go as the walk moves on."""

    def __init__(self, stream: BinaryIO, out: BinaryIO) -> None:
        self.stream = stream
        self.out = out
        self.buf = bytearray()
        self.pos = 0
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.dropped_lines = 0  # line breaks in the text already dropped from the buffer
        self.counted_pos = 0  # the line breaks of the buffer before this position are counted:
        self.counted_lines = 0  # this many
        self.eof = False
        self.first = True
        self.rec: _Record | None = None
        self.documents = 0
        self.paths_found = 0  # values found at the jsonPath (or documents, without one)
        self.records = 0  # values where a record is expected
        self.good = 0
        self.bad: list[_Bad] = []

    # -------------------------------------------------------------------------------------------- buffer

    def line_of(self, pos: int) -> int:
        """The 1-based line of a buffer position.

        Counted on from the last position asked for (positions asked for mostly move forward), so every
        line break is counted about once: counting from the buffer's start each time made the time grow
        with the square of the bad values' count.
        """
        if pos >= self.counted_pos:
            self.counted_lines += self.buf.count(b"\n", self.counted_pos, pos)
        else:
            self.counted_lines -= self.buf.count(b"\n", pos, self.counted_pos)
        self.counted_pos = pos
        return 1 + self.dropped_lines + self.counted_lines

    def more(self) -> bool:
        """Let go of what is checked and read a chunk on; False at the stream's end."""
        if self.eof:
            return False
        self._release()
        chunk = self.stream.read(_CHUNK)
        self.eof = not chunk
        if self.first:
            self.first = False
            sniffed = _sniff(chunk)
            if sniffed:
                raise _Unreadable(sniffed.replace("JSON lines", "JSON"))
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        self._check_utf8(chunk)
        self.buf += chunk
        return not self.eof

    def _check_utf8(self, chunk: bytes) -> None:
        """Raise when the bytes are not UTF-8 (decoded a piece at a time, the text thrown away)."""
        if chunk and chunk.isascii() and not self.utf8.getstate()[0]:
            return
        at = 0
        try:
            for at in range(0, max(len(chunk), 1), _WRITE_PIECE):
                self.utf8.decode(chunk[at : at + _WRITE_PIECE], final=not chunk)
        except UnicodeDecodeError as err:
            near = self.line_of(len(self.buf)) + chunk.count(b"\n", 0, at + max(err.start, 0))
            raise _Unreadable(f"not valid UTF-8 (near line {near})") from err

    def _release(self) -> None:
        """Drop the buffer before ``pos``; what of the current record it holds is written out first."""
        pos = self.pos
        if not pos:
            return
        rec = self.rec
        if rec is not None:
            start = rec.start
            if rec.line is None:
                rec.line = self.line_of(start)
                rec.head = bytes(self.buf[start : start + _RAW_LIMIT])
            if rec.write:
                rec.length += pos - start
                if rec.length > MAX_LINE_BYTES:
                    raise _Unreadable(f"unreadable: a record longer than {MAX_LINE_BYTES // 1024**2} MiB")
                if rec.offset is None:
                    rec.offset = self.out.tell()
                self._write(start, pos)
            rec.start = 0
        self.dropped_lines = self.line_of(pos) - 1
        self.counted_pos = self.counted_lines = 0
        del self.buf[:pos]
        self.pos = 0

    def _write(self, start: int, end: int) -> None:
        """Checked text to the output: JSON allows a line break only as whitespace, so a blank replaces it."""
        for at in range(start, end, _WRITE_PIECE):
            self.out.write(self.buf[at : min(end, at + _WRITE_PIECE)].translate(_BLANKS))

    def skip(self) -> int:
        """Skip whitespace; the next byte, or -1 at the end."""
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return -1

    def expect(self, byte: int, what: str) -> None:
        if self.skip() != byte:
            raise _BadRecord(f"malformed JSON (Expecting {what})")
        self.pos += 1

    # -------------------------------------------------------------------------------------------- values

    def walk(self, limit: int | None) -> bool:
        """Check the value at ``pos`` and move past it; True when it is nested deeper than ``limit``.

        Patterns check as much as they can at once; the walker keeps the stack of open brackets and takes
        a token by hand only where a pattern stops (a value nested deeper, the chunk's end, bad JSON).
        """
        stack = bytearray()
        state = _ANY
        deep = False
        while True:
            if state >= _COLON:
                state = self._token(state, stack)
            elif state == _AFTER and not stack:
                return deep
            else:
                state = self._run(state, stack)
            if limit is not None and len(stack) > limit and not deep:
                deep = True
                if self.rec is not None:
                    self.rec.write = False
            if len(stack) > MAX_NESTING:
                raise _BadRecord(f"malformed JSON (nested deeper than {MAX_NESTING:,} levels)")

    def _run(self, state: int, stack: bytearray) -> int:
        """One pattern call: the items up to the next bracket; the state after it."""
        if state == _AFTER:
            pattern = _OBJECT_AFTER if stack[-1] == _OPEN_OBJECT else _ARRAY_AFTER
        else:
            pattern = _OBJECT_BODY if state <= _KEY_OR_END else _ARRAY_BODY
        buf, pos = self.buf, self.pos
        match = pattern.match(buf, pos)
        assert match is not None  # every part of the patterns is optional
        end = self.pos = match.end()
        byte = buf[end - 1] if end > pos else 0
        start, stop = match.span(1)
        if stop > start:  # items: a comma after the last one waits for the next
            pending = buf[stop - 1] == _COMMA
        else:  # no items: after "," (or after a value, when the pattern took the comma)
            pending = start >= 0 if state == _AFTER else state in (_KEY, _ITEM)
        if byte in (_OPEN_OBJECT, _OPEN_ARRAY):
            stack.append(byte)
            return _KEY_OR_END if byte == _OPEN_OBJECT else _ITEM_OR_END
        if byte in (_CLOSE_OBJECT, _CLOSE_ARRAY):
            if pending:
                raise _BadRecord(_after_comma(byte))
            stack.pop()
            return _AFTER
        if pending:
            state = _KEY if stack[-1] == _OPEN_OBJECT else _ITEM
        return self._token(state, stack)

    def _token(self, state: int, stack: bytearray) -> int:
        """Take one token by hand (reading on when it is cut); the state after it."""
        byte = self.skip()
        if byte < 0:
            raise _BadRecord("malformed JSON (the object ends inside a value)")
        if state == _AFTER:
            if byte == _COMMA:
                self.pos += 1
                return _KEY if stack[-1] == _OPEN_OBJECT else _ITEM
            if byte == stack[-1] + 2:  # "}" follows "{" by two, "]" "[" too
                self.pos += 1
                stack.pop()
                return _AFTER
            raise _BadRecord("malformed JSON (Expecting ',' delimiter)")
        if state == _COLON:
            self.expect(_COLON_BYTE, "':' delimiter")
            return _ANY
        if state in (_KEY, _KEY_OR_END):
            if byte == _CLOSE_OBJECT and state == _KEY_OR_END:
                self.pos += 1
                stack.pop()
                return _AFTER
            if byte != _QUOTE:
                raise _BadRecord(_after_comma(_CLOSE_OBJECT))
            self._string()
            return _COLON
        if byte == _CLOSE_ARRAY and state == _ITEM_OR_END:
            self.pos += 1
            stack.pop()
            return _AFTER
        if byte in (_OPEN_OBJECT, _OPEN_ARRAY):
            self.pos += 1
            stack.append(byte)
            return _KEY_OR_END if byte == _OPEN_OBJECT else _ITEM_OR_END
        if byte == _QUOTE:
            self._string()
        else:
            self._scalar()
        return _AFTER

    def _string(self) -> None:
        """Move past the string at ``pos``; what is checked of a long one is let go at every read."""
        at = self.pos + 1
        while True:
            buf = self.buf
            at = _STRING_REST.match(buf, at).end()  # type: ignore[union-attr]
            if at < len(buf):
                byte = buf[at]
                if byte == _QUOTE:
                    self.pos = at + 1
                    return
                if byte != _BACKSLASH or len(buf) - at >= 6 or self.eof:
                    cause = "Invalid control character" if byte < 0x20 else "Invalid \\escape"
                    raise _BadRecord(f"malformed JSON ({cause})")
            self.pos = at  # an escape cut by the chunk's end stays in the buffer
            if not self.more():
                raise _BadRecord("malformed JSON (Unterminated string)")
            at = self.pos

    def _scalar(self) -> None:
        """Move past the number or constant at ``pos`` (reading on while it may go on past the buffer: "1"
        of "1.5" followed by nothing but "." in the buffer)."""
        while True:
            buf, pos = self.buf, self.pos
            match = _TOKEN.match(buf, pos)
            if self.eof or (match is not None and _NUMBER_GOES_ON.fullmatch(buf, match.end()) is None):
                if match is None:
                    raise _BadRecord("malformed JSON (Expecting value)")
                self.pos = match.end()
                return
            if (match is None and len(buf) - pos >= 16) or len(buf) - pos > _MAX_TOKEN:
                raise _BadRecord("malformed JSON (Expecting value)")
            self.more()

    # ------------------------------------------------------------------------------------------- records

    def record(self) -> None:
        """The value where a record is expected: written out when it is an object, else quarantined."""
        kind = _KINDS.get(self.skip(), "number")
        rec = self.rec = _Record(self.pos, kind == "object")
        deep = self.walk(MAX_DEPTH)
        self.records += 1
        if rec.write:
            self._write(rec.start, self.pos)
            self.out.write(b"\n")
            self.good += 1
        else:
            self.cut(rec)
            line = rec.line if rec.line is not None else self.line_of(rec.start)
            raw = rec.head if rec.head is not None else bytes(self.buf[rec.start : self.pos][:_RAW_LIMIT])
            error = f"nested deeper than {MAX_DEPTH} levels" if deep else f"not a JSON object ({kind})"
            self.bad.append(_Bad(line, self.records, error, raw))
        self.rec = None

    def cut(self, rec: _Record) -> None:
        """Take a record's text written so far off the output again."""
        if rec.offset is not None:
            self.out.seek(rec.offset)
            self.out.truncate()
            rec.offset = None

    def malformed(self, error: str) -> None:
        """Malformed JSON where a record (or the path to it) was read: the object's records end here."""
        self.records += 1
        rec, self.rec = self.rec, None
        if rec is not None:
            self.cut(rec)
            line = rec.line if rec.line is not None else self.line_of(rec.start)
            raw = rec.head if rec.head is not None else bytes(self.buf[rec.start : rec.start + _RAW_LIMIT])
        else:
            line, raw = self.line_of(self.pos), bytes(self.buf[self.pos : self.pos + _RAW_LIMIT])
        self.bad.append(_Bad(line, self.records, error, raw))

    def batch(self, run: re.Pattern[bytes], item: re.Pattern[bytes]) -> int:
        """Records (objects nested a few levels) checked, split and written by pattern calls, a window of
        the buffer at a time; how many."""
        count = 0
        while True:
            buf, pos = self.buf, self.pos
            end = run.match(buf, pos, pos + _BATCH).end()  # type: ignore[union-attr]
            if end == pos:
                return count
            records = item.findall(buf[pos:end].translate(_BLANKS))  # line breaks only between tokens
            self.out.write(b"\n".join(records))
            self.out.write(b"\n")
            count += len(records)
            self.good += len(records)
            self.records += len(records)
            self.pos = end
            if end < pos + _BATCH // 2:
                return count

    # ----------------------------------------------------------------------------------------- the path

    def read_documents(self, names: tuple[str, ...]) -> None:
        """Every record of the stream, in documents one after another."""
        while True:
            if not names:
                found = self.batch(_DOCUMENT_RUN, _DOCUMENT_ITEM)
                self.documents += found
                self.paths_found += found
            if self.skip() < 0:
                return
            self.documents += 1
            if names:
                self.descend(names)
            else:
                self.selected()

    def descend(self, names: tuple[str, ...]) -> None:
        """Walk one object to ``names``, passing over other keys' values (checked, none of them held)."""
        if self.skip() != _OPEN_OBJECT:
            self.walk(None)  # not an object: nothing at the path in this document
            return
        self.pos += 1
        if self.skip() == _CLOSE_OBJECT:
            self.pos += 1
            return
        while True:
            if self.skip() != _QUOTE:
                raise _BadRecord(_after_comma(_CLOSE_OBJECT))
            found = self.key_is(names[0])
            self.expect(_COLON_BYTE, "':' delimiter")
            if not found:
                self.walk(None)
            elif len(names) == 1:
                self.selected()
            else:
                self.descend(names[1:])
            if self.skip() == _CLOSE_OBJECT:
                self.pos += 1
                return
            self.expect(_COMMA, "',' delimiter")

    def key_is(self, name: str) -> bool:
        """Move past the key at ``pos``; whether it is ``name`` (a key too long to be it is not decoded)."""
        wanted = name.encode()
        room = 6 * len(wanted) + 16  # "\\uXXXX" is the longest spelling of a character
        while True:
            buf, pos = self.buf, self.pos
            match = _STRING_WHOLE.match(buf, pos)
            if match is not None or len(buf) - pos > room or not self.more():
                break
        if match is None:
            self._string()
            return False
        self.pos = match.end()
        raw = bytes(buf[pos + 1 : match.end() - 1])
        return raw == wanted if b"\\" not in raw else bool(json.loads(buf[pos : match.end()]) == name)

    def selected(self) -> None:
        """The value at the path: its elements when it is an array, else the value itself."""
        self.paths_found += 1
        if self.skip() != _OPEN_ARRAY:
            self.record()
            return
        self.pos += 1
        if self.skip() == _CLOSE_ARRAY:
            self.pos += 1
            return
        while True:
            self.batch(_RECORD_RUN, _RECORD_ITEM)
            if self.skip() < 0:
                raise _BadRecord("malformed JSON (the object ends inside a value)")
            self.record()
            match = _NEXT_ELEMENT.match(self.buf, self.pos)  # the separator is mostly in the buffer
            if match is None:
                if self.skip() == _CLOSE_ARRAY:
                    self.pos += 1
                    return
                self.expect(_COMMA, "',' delimiter")
                continue
            self.pos = match.end()
            if match.group(1) == b"]":
                return


def _after_comma(close: int) -> str:
    """The error where a key or a value must follow (a trailing comma before ``close``, or another byte)."""
    if close == _CLOSE_OBJECT:
        return "malformed JSON (Expecting property name enclosed in double quotes)"
    return "malformed JSON (Expecting value)"


def _entry(source_uri: str, bad: _Bad) -> str:
    entry = {
        "source": source_uri,
        "line": bad.line,
        "record": bad.record,
        "error": bad.error,
        "raw": bad.raw[:_RAW_LIMIT].decode("utf-8", "ignore"),  # checked UTF-8: only a cut character goes
        "raw_encoding": "utf-8",
    }
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"


def _convert(reader: _Reader, names: tuple[str, ...], source_uri: str, errors: TextIO) -> str | None:
    """Records to the reader's output, quarantine lines to ``errors``; the first error's message."""
    try:
        reader.read_documents(names)
    except _BadRecord as err:
        reader.malformed(str(err))
    for bad in reader.bad:
        errors.write(_entry(source_uri, bad))
    first = reader.bad[0] if reader.bad else None
    return None if first is None else f"{source_uri} line {first.line} (record {first.record}): {first.error}"


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
            open(clean, "wb") as out,
            open(entries, "w", encoding="utf-8") as errors,
        ):
            reader = _Reader(stream, out)
            first = _convert(reader, names, source_uri, errors)
        if names and reader.documents and not reader.paths_found and not reader.bad:
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
    bad = len(reader.bad)
    if not bad:
        entries.unlink(missing_ok=True)
    return ObjectReport(source_uri, reader.good, bad, first, clean, entries if bad else None)

"""One storage interface over a local folder and an S3 prefix.

Plain module on purpose (no Dagster import): the Dagster shell builds the boto3 client, with the retry
policy it wants, and hands it over. Every error surfaces as a one-line :class:`StorageError` naming the
URI and the cause; botocore exceptions are chained, never the headline.

Keys are always relative to the location root, ``'/'``-separated, and are refused when they could escape
the root (absolute, ``..``, backslashes, empty segments) so the same key behaves the same on both backends.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import reprlib
import shutil
import stat as stat_mod
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

__all__ = [
    "DANGLING_LINK",
    "OUTSIDE_LINK",
    "PENDING_DIR",
    "RESERVED_DIR",
    "TMP_PREFIX",
    "LocalStorage",
    "ObjectInfo",
    "PendingObject",
    "PendingUpload",
    "RefusedObject",
    "S3Storage",
    "Storage",
    "StorageError",
    "glob_match",
    "open_storage",
]

#: Name prefix of the temp files of in-progress local atomic writes; hidden from listings.
TMP_PREFIX = ".glueflow-tmp-"
#: Cause of a local symlink whose target resolves outside the location root: never listed nor read.
OUTSIDE_LINK = "symlink points outside the location"
DANGLING_LINK = "symlink target does not exist"

_log = logging.getLogger(__name__)

#: Folder of glueflow's own bookkeeping in every location (pending writes, commit manifests); never data.
RESERVED_DIR = "_glueflow"
#: Where a local location keeps written-but-uncommitted objects (S3 keeps them as open multipart uploads).
PENDING_DIR = f"{RESERVED_DIR}/pending"
#: S3 multipart part size for pending writes (S3 requires >= 5 MiB for every part but the last).
_MULTIPART_PART_BYTES = 64 * 1024 * 1024

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COPY_CHUNK = 1024 * 1024
_DELETE_BATCH = 1000  # DeleteObjects accepts at most 1000 keys per call


# --------------------------------------------------------------------------------------------------
# Error-message helpers: every message is one line, bounded, and never shows a credential.

#: Characters of a quoted value kept in an error message (then "...").
SHOWN_CHARS = 40
_USERINFO_STOPS = frozenset("/?#@'\"")


def redact(text: str) -> str:
    """``text`` with every URL userinfo replaced by ``***``: ``s3://key:secret@b`` -> ``s3://***@b``,
    ``http://key@host`` -> ``http://***@host``, and any ``user:password@`` even without a scheme, so an
    endpoint URL or a URI with credentials never reaches a message or a log.

    A scan back from each ``@`` (not a regex: linear on any input, however long).
    """
    if "@" not in text:
        return text
    out: list[str] = []
    done = 0  # text[:done] is in out already
    at = text.find("@")
    while at >= 0:
        start = at
        while start > done and text[start - 1] not in _USERINFO_STOPS and not text[start - 1].isspace():
            start -= 1
        userinfo = text[start:at]
        if userinfo and (":" in userinfo or text.endswith("://", 0, start)):
            out += (text[done:start], "***")
            done = at
        at = text.find("@", at + 1)
    out.append(text[done:])
    return "".join(out)


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """At most ``limit`` characters of ``text`` plus ``...`` (a message never embeds an unbounded value)."""
    return text if len(text) <= limit else text[:limit] + "..."


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value for an error message: redacted, ``repr``'d (so it stays on one line), cut to ``limit``.

    Containers go through a bounded ``reprlib`` first: a huge value (a YAML alias bomb expands to a
    billion elements) costs a few hundred characters to show, not its size.
    """
    if isinstance(value, str):
        text = redact(value)
        return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."
    return shorten(redact(_BOUNDED_REPR.repr(value)), limit)


_BOUNDED_REPR = reprlib.Repr()
_BOUNDED_REPR.maxlevel = 3
_BOUNDED_REPR.maxstring = _BOUNDED_REPR.maxother = 2 * SHOWN_CHARS
_BOUNDED_REPR.maxlist = _BOUNDED_REPR.maxtuple = _BOUNDED_REPR.maxdict = _BOUNDED_REPR.maxset = 4


class StorageError(RuntimeError):
    """A storage operation failed; the message is one line: ``"<uri or key>: <cause>"``.

    URL credentials are redacted here, whatever built the message.
    """

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(redact(message))
        self.uri = redact(uri) if uri is not None else None


@dataclass(frozen=True)
class RefusedObject:
    """An entry a local listing did not yield as an object, and why (``OUTSIDE_LINK``, ``DANGLING_LINK``)."""

    key: str
    cause: str


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object. ``key`` is relative to the location root."""

    key: str
    size: int
    last_modified_ms: int
    etag: str


@dataclass(frozen=True)
class PendingObject:
    """An object written but not yet visible: it becomes ``key`` only when completed (the commit).

    ``token`` is the pending file's key under :data:`PENDING_DIR` (local) or the multipart upload id (S3);
    ``parts`` are the uploaded S3 parts as (part number, etag).
    """

    key: str
    size: int
    token: str
    parts: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class PendingUpload:
    """A pending write found in a location (for garbage collection): target key, token, start time."""

    key: str
    token: str
    started_ms: int


# --------------------------------------------------------------------------------------------------
# Globs


@functools.lru_cache(maxsize=1024)
def _compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate a Glue exclusion glob into a regex matched against a whole key.

    ``*``/``?``/``[...]`` never cross a ``/``; ``**`` does. ``**/`` also matches *zero* folders (so
    ``**/_SUCCESS`` excludes a top-level ``_SUCCESS`` too, which is what people writing it mean).
    """
    out: list[str] = []
    in_group = False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            negate = j < n and pattern[j] in "!^"
            if negate:
                j += 1
            start = j
            if j < n and pattern[j] == "]":  # a leading ']' is a literal member
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                raise ValueError(f"invalid glob {pattern!r}: unclosed '['")
            members = "".join(ch if ch == "-" else re.escape(ch) for ch in pattern[start:j])
            # A class never matches '/', just like '*' and '?'.
            out.append(f"[^/{members}]" if negate else f"(?!/)[{members}]")
            i = j
        elif c == "{":
            if in_group:
                raise ValueError(f"invalid glob {pattern!r}: nested '{{' is not supported")
            in_group = True
            out.append("(?:")
        elif c == "}" and in_group:
            in_group = False
            out.append(")")
        elif c == "," and in_group:
            out.append("|")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    if in_group:
        raise ValueError(f"invalid glob {pattern!r}: unclosed '{{'")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as err:  # e.g. a reversed range "[z-a]"
        raise ValueError(f"invalid glob {pattern!r}: {err}") from err


def glob_match(pattern: str, key: str) -> bool:
    """True when the Glue exclusion glob ``pattern`` matches the whole ``key``.

    ``*`` matches within one path level, ``**`` across levels (``**.tmp`` matches ``c.tmp`` and
    ``a/b/c.tmp``), ``?`` one character other than ``/``, ``[...]``/``[!...]`` a character class,
    ``{a,b}`` alternatives (not nested), ``\\`` escapes. Raises ``ValueError`` for a malformed pattern.
    """
    return _compile_glob(pattern).fullmatch(key) is not None


def _compile_exclusions(exclusions: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    # A bare string would silently be iterated character by character: refuse it loudly.
    if isinstance(exclusions, str):
        raise TypeError("exclusions must be a sequence of glob patterns, not a single string")
    return tuple(_compile_glob(p) for p in exclusions)


def _excluded(key: str, matchers: tuple[re.Pattern[str], ...]) -> bool:
    return any(m.fullmatch(key) is not None for m in matchers)


# --------------------------------------------------------------------------------------------------
# Keys


_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f]")  # one regex search: keys are checked by the 100,000


def _check_key(key: str, where: str, *, prefix: bool = False) -> str:
    """Validate an object key (or, with ``prefix=True``, a folder prefix) and return it normalised.

    Prefixes may be empty and may end with '/', which is dropped. Anything that could resolve outside
    the root, or that two backends would read differently, is refused rather than normalised.
    """
    if not isinstance(key, str):
        raise StorageError(f"{key!r}: key must be a string (storage {where})", uri=where)
    if prefix and key.endswith("/"):
        stripped = key.rstrip("/")
        if not stripped:
            raise StorageError(f"{key}: key escapes the storage root (absolute path; storage {where})", uri=where)
        key = stripped
    if not key:
        if prefix:
            return ""
        raise StorageError(f"'': empty key (storage {where})", uri=where)

    # One line (repr of unprintable keys) and bounded: a key refused here may be anything a caller passed.
    shown = shorten(key if key.isprintable() else repr(key), 2 * SHOWN_CHARS)

    def refuse(cause: str, detail: str) -> StorageError:
        return StorageError(f"{shown}: {cause} ({detail}; storage {where})", uri=where)

    if key.startswith("/"):
        raise refuse("key escapes the storage root", "absolute path")
    if "\\" in key:
        raise refuse("key escapes the storage root", "backslash not allowed in keys")
    if _CONTROL_CHARS.search(key):
        # NUL breaks file names; newlines would break one-line messages and line-based manifests.
        raise refuse("invalid key", "control characters not allowed in keys")
    segments = key.split("/")
    if ".." in segments:
        raise refuse("key escapes the storage root", "'..' segment")
    if "" in segments:
        raise refuse("invalid key", "empty path segment: '//' or trailing '/'")
    if "." in segments:
        raise refuse("invalid key", "'.' segment")
    if any(s.startswith(TMP_PREFIX) for s in segments):
        raise refuse("invalid key", f"names starting with {TMP_PREFIX!r} are reserved for in-progress writes")
    return key


def _is_marker(key: str) -> bool:
    """S3 'folder/' marker keys (and anything ending in '/', which no file can mirror)."""
    return key.endswith("/")


# --------------------------------------------------------------------------------------------------
# Protocol


@runtime_checkable
class Storage(Protocol):
    """What every backend offers. All keys are relative to ``uri``."""

    uri: str

    def uri_for(self, key: str) -> str: ...

    def list(
        self, prefix: str = "", *, recurse: bool = True, exclusions: Sequence[str] = ()
    ) -> Iterator[ObjectInfo]: ...

    def exists(self) -> bool: ...

    def stat(self, key: str) -> ObjectInfo: ...

    def read_bytes(self, key: str) -> bytes: ...

    def open_read(self, key: str) -> BinaryIO: ...

    def local_copy(self, key: str) -> AbstractContextManager[Path]: ...

    def write_bytes(self, key: str, data: bytes) -> ObjectInfo: ...

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if no object has that name, atomically (put-if-absent); False if one has."""
        ...

    def upload_file(self, local_path: Path, key: str) -> ObjectInfo: ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def begin_upload(self, local_path: Path, key: str) -> PendingObject: ...

    def complete_upload(self, pending: PendingObject) -> ObjectInfo: ...

    def abort_upload(self, pending: PendingObject) -> None: ...

    def pending_uploads(self) -> Iterator[PendingUpload]: ...


# --------------------------------------------------------------------------------------------------
# Local folder


def _os_cause(err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return "object does not exist (FileNotFoundError)"
    if isinstance(err, IsADirectoryError):
        return "is a folder, not an object (IsADirectoryError)"
    if isinstance(err, NotADirectoryError | FileExistsError):
        # FileExistsError comes from mkdir(exist_ok=True) meeting a file where a folder should be.
        return f"a parent of the path is a file, not a folder ({type(err).__name__})"
    if isinstance(err, PermissionError):
        return "permission denied (PermissionError)"
    return f"{err.strerror or err} ({type(err).__name__})"


class LocalStorage:
    """A folder on the local file system. Nothing is created until the first write."""

    def __init__(self, root: Path | str) -> None:
        # normpath, not resolve(): keep the path the user gave (symlinked roots stay as named).
        self.root = Path(os.path.normpath(Path(root).expanduser().absolute()))
        self.uri = str(self.root)
        #: Symlinks the latest listing refused (outside the root, or dangling): reported, never read.
        self.refused: list[RefusedObject] = []

    def __repr__(self) -> str:
        return f"LocalStorage({self.uri!r})"

    def _path(self, key: str, *, prefix: bool = False) -> Path:
        key = _check_key(key, self.uri, prefix=prefix)
        return self.root.joinpath(*key.split("/")) if key else self.root

    def _err(self, key: str, err: OSError) -> StorageError:
        uri = self.uri_for(key) if key else self.uri
        return StorageError(f"{uri}: {_os_cause(err)}", uri=uri)

    @staticmethod
    def _info(key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=st.st_size,
            last_modified_ms=st.st_mtime_ns // 1_000_000,
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
        )

    def uri_for(self, key: str) -> str:
        """Absolute path of ``key`` as a string."""
        return str(self._path(key))

    def exists(self) -> bool:
        """True when the root folder exists."""
        return self.root.is_dir()

    def list(self, prefix: str = "", *, recurse: bool = True, exclusions: Sequence[str] = ()) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` (a folder), in key order, lazily, one folder in memory at a time."""
        prefix = _check_key(prefix, self.uri, prefix=True)
        start = self._path(prefix, prefix=True)
        matchers = _compile_exclusions(exclusions)
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"{self.uri}: storage root is not a folder", uri=self.uri)
        return self._listing(start, prefix, recurse, matchers)

    def _listing(
        self, start: Path, prefix: str, recurse: bool, matchers: tuple[re.Pattern[str], ...]
    ) -> Iterator[ObjectInfo]:
        self.refused = []
        yield from self._walk(start, prefix, recurse, matchers, self._real_root())

    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    @staticmethod
    def _inside(real_path: str, real_root: str) -> bool:
        return real_path == real_root or real_path.startswith(real_root.rstrip(os.sep) + os.sep)

    def _refuse(self, key: str, cause: str) -> None:
        """Report a symlink that is not an object of this location: kept in ``refused`` and logged."""
        self.refused.append(RefusedObject(key, cause))
        _log.warning("%s: %s; not read", self.uri_for(key), cause)

    def _walk(
        self, folder: Path, rel: str, recurse: bool, matchers: tuple[re.Pattern[str], ...], real_root: str
    ) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return  # a missing folder (or a file where the prefix folder would be) holds no objects
        except OSError as err:
            raise self._err(rel, err) from err
        # Sorting folders as "name/" yields keys in plain lexicographic order, the order S3 lists in
        # (e.g. "a-b" < "a/x" because '-' < '/').
        sortable: list[tuple[str, os.DirEntry[str], bool]] = []
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX):
                continue  # an in-progress atomic write, not an object yet
            try:
                # Symlinked folders are not followed: avoids cycles and walking outside the root.
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            sortable.append((entry.name + "/" if is_dir else entry.name, entry, is_dir))
        sortable.sort(key=lambda t: t[0])
        for _, entry, is_dir in sortable:
            key = f"{rel}/{entry.name}" if rel else entry.name
            if is_dir:
                if recurse:
                    yield from self._walk(Path(entry.path), key, recurse, matchers, real_root)
                continue
            if _excluded(key, matchers):
                continue
            # A symlink is read only when its target resolves inside the root (realpath: the link's
            # own path, nothing of the data). One leading out (a file or a folder) is refused and
            # reported, never read; a symlinked folder inside the root is listed where it really is.
            if entry.is_symlink() and not self._inside(os.path.realpath(entry.path), real_root):
                self._refuse(key, OUTSIDE_LINK)
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                if entry.is_symlink():
                    self._refuse(key, DANGLING_LINK)
                continue  # deleted since the scandir: it is no longer an object
            except OSError as err:
                raise self._err(key, err) from err
            if stat_mod.S_ISREG(st.st_mode):
                yield self._info(key, st)

    def _readable_path(self, key: str) -> Path:
        """The path of ``key``, refused when it resolves outside the root (through a symlink)."""
        path = self._path(key)
        if not self._inside(os.path.realpath(path), self._real_root()):
            uri = self.uri_for(key)
            raise StorageError(f"{uri}: {OUTSIDE_LINK}", uri=uri)
        return path

    def stat(self, key: str) -> ObjectInfo:
        """Size, mtime and etag of one file."""
        path = self._readable_path(key)
        try:
            st = path.stat()
        except OSError as err:
            raise self._err(key, err) from err
        if stat_mod.S_ISDIR(st.st_mode):
            raise self._err(key, IsADirectoryError(str(path)))
        return self._info(key, st)

    def read_bytes(self, key: str) -> bytes:
        """Whole content of one file."""
        path = self._readable_path(key)
        try:
            return path.read_bytes()
        except OSError as err:
            raise self._err(key, err) from err

    def open_read(self, key: str) -> BinaryIO:
        """An open binary file; the caller closes it."""
        path = self._readable_path(key)
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller owns the handle
        except OSError as err:
            raise self._err(key, err) from err

    def readable_paths(self, keys: Sequence[str]) -> list[str | StorageError]:
        """What :meth:`local_copy` checks, for many keys at once: each key's path, or the one-line
        StorageError reading it would meet (a key refused, a symlink out of the root, or ``object does
        not exist``: gone, or no longer a regular file).

        One realpath per folder and one lstat per key, where ``local_copy`` resolves every key's path
        component by component: a run of 100,000 small objects spends seconds in that otherwise.
        """
        real_root = self._real_root()
        folders: dict[str, bool] = {}  # folder path -> whether it resolves inside the root
        found: list[str | StorageError] = []
        for key in keys:
            try:
                path = os.path.join(self.uri, _check_key(key, self.uri))  # a checked key joins as it reads
            except StorageError as err:
                found.append(err)
                continue
            folder = os.path.dirname(path)
            inside = folders.get(folder)
            if inside is None:
                inside = folders[folder] = self._inside(os.path.realpath(folder), real_root)
            try:
                st = os.lstat(path)
                if stat_mod.S_ISLNK(st.st_mode):
                    inside = inside and self._inside(os.path.realpath(path), real_root)
                    st = os.stat(path) if inside else st
            except OSError as err:
                found.append(self._err(key, err))
                continue
            if not inside:
                found.append(StorageError(f"{path}: {OUTSIDE_LINK}", uri=path))
            elif not stat_mod.S_ISREG(st.st_mode):
                found.append(StorageError(f"{path}: object does not exist (no longer a regular file)", uri=path))
            else:
                found.append(path)
        return found

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """The file itself: it already is local, so no copy is made."""
        self.stat(key)  # fail here, naming the key, rather than in the caller's reader
        yield self._path(key)

    def write_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Atomically replace ``key`` with ``data``."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"write_bytes expects bytes, got {type(data).__name__}")
        return self._atomic_write(key, lambda f: f.write(data))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Put-if-absent: the complete object is written to a temp file, then hard-linked to ``key``
        (``link`` fails if the name exists, atomically, on every POSIX file system)."""
        path = self._path(key)
        tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with self._open_tmp(tmp) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        except OSError as err:
            raise self._err(key, err) from err
        finally:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
        self._fsync_dir(path.parent)
        return True

    def upload_file(self, local_path: Path, key: str) -> ObjectInfo:
        """Atomically replace ``key`` with a copy of ``local_path``."""
        self._path(key)  # refuse a bad key before looking at the source
        src = Path(local_path)
        self._check_source(src)

        def copy(dst: BinaryIO) -> None:
            with open(src, "rb") as f:
                shutil.copyfileobj(f, dst, _COPY_CHUNK)

        return self._atomic_write(key, copy)

    @staticmethod
    def _check_source(src: Path) -> None:
        if not src.is_file():
            raise StorageError(f"{src}: local file to upload does not exist or is not a file", uri=str(src))

    def _atomic_write(self, key: str, fill: Callable[[BinaryIO], Any]) -> ObjectInfo:
        """Write into a temp file next to the target, fsync, then ``os.replace`` it into place.

        Readers see either the old object or the complete new one. Any failure removes the temp file.
        """
        path = self._path(key)
        tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with self._open_tmp(tmp) as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            self._bump_mtime(tmp, path)
            os.replace(tmp, path)
        except BaseException as err:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise self._err(key, err) from err
            raise
        self._fsync_dir(path.parent)
        return self.stat(key)

    @staticmethod
    def _open_tmp(tmp: Path) -> BinaryIO:
        # Twice: a concurrent delete_prefix may prune the freshly made (still empty) folder in between.
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            return open(tmp, "xb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            return open(tmp, "xb")  # noqa: SIM115

    @staticmethod
    def _bump_mtime(tmp: Path, target: Path) -> None:
        """Make a rewrite's mtime (in ms) strictly newer than the object it replaces.

        Otherwise two writes within the file system's timestamp granularity would keep the same
        ``last_modified_ms`` (and, for equal sizes, the same etag), and incremental readers selecting by
        modification time would miss the rewrite.
        """
        try:
            old = os.stat(target).st_mtime_ns // 1_000_000
        except OSError:
            return
        st = os.stat(tmp)
        if st.st_mtime_ns // 1_000_000 <= old:
            os.utime(tmp, ns=(st.st_atime_ns, (old + 1) * 1_000_000))

    @staticmethod
    def _fsync_dir(folder: Path) -> None:
        # Makes the rename itself durable; best effort (not every platform/file system allows it).
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            with suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, key: str) -> None:
        """Remove one file; a missing file is fine."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            if path.is_dir():
                err = IsADirectoryError(err.errno, err.strerror, str(path))
            raise self._err(key, err) from err

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix`` (a folder; ``""`` is the whole root); returns the count.

        Folders left empty are removed too (S3 has no empty folders either); the root itself is kept.
        """
        folder = self._path(prefix, prefix=True)
        count = 0
        for info in self.list(prefix):
            self.delete(info.key)
            count += 1
        if folder.is_dir():
            for dirpath, _dirnames, _files in os.walk(folder, topdown=False):
                if Path(dirpath) == self.root:
                    continue
                with suppress(OSError):  # not empty (e.g. a write in progress): leave it
                    os.rmdir(dirpath)
        return count


    # Pending writes: the data goes to a hidden pending file first; completing renames it into place.

    def begin_upload(self, local_path: Path, key: str) -> PendingObject:
        """Copy ``local_path`` to a pending file under ``_glueflow/pending/``; ``key`` stays untouched."""
        self._path(key)  # refuse a bad key before copying anything
        token = f"{PENDING_DIR}/{uuid.uuid4().hex}/{key}"
        info = self.upload_file(local_path, token)
        return PendingObject(key=key, size=info.size, token=token)

    def complete_upload(self, pending: PendingObject) -> ObjectInfo:
        """Rename the pending file into place (atomic); its mtime becomes the commit time."""
        src, dst = self._path(pending.token), self._path(pending.key)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.utime(src)  # visible from now on: last-modified is the commit, as for an S3 completion
            self._bump_mtime(src, dst)
            os.replace(src, dst)
        except OSError as err:
            raise self._err(pending.key, err) from err
        self._fsync_dir(dst.parent)
        with suppress(OSError):
            src.parent.rmdir()  # the attempt's pending folder, once empty
        return self.stat(pending.key)

    def abort_upload(self, pending: PendingObject) -> None:
        """Discard a pending file; the target key is never touched."""
        self.delete(pending.token)
        path = self._path(pending.token)
        for folder in path.parents:
            if folder == self._path(PENDING_DIR, prefix=True):
                break
            with suppress(OSError):
                folder.rmdir()

    def pending_uploads(self) -> Iterator[PendingUpload]:
        """Pending files left in this location (by any attempt), with their write times."""
        for info in self.list(PENDING_DIR):
            rest = info.key[len(PENDING_DIR) + 1 :]
            _attempt, _, key = rest.partition("/")
            yield PendingUpload(key=key, token=info.key, started_ms=info.last_modified_ms)


# --------------------------------------------------------------------------------------------------
# S3


def _client_error_cause(err: ClientError) -> tuple[str, str]:
    """(code, readable cause) of a botocore ClientError."""
    error = err.response.get("Error", {}) or {}
    code = str(error.get("Code") or err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
    message = _one_line(str(error.get("Message") or ""))  # the server's text: bounded, one line
    if code == "NoSuchBucket":
        return code, "bucket does not exist (NoSuchBucket)"
    if code in ("NoSuchKey", "404", "NotFound"):
        return code, f"object does not exist ({code})"
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return code, f"access denied ({code})"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
        return code, f"credentials rejected ({code})"
    if code in ("SlowDown", "ServiceUnavailable", "InternalError", "500", "503", "RequestTimeout"):
        return code, f"service unavailable after retries ({code})"
    return code, f"{message or 'request failed'} ({code})"


class _S3Reader(io.RawIOBase):
    """Raw stream over a GetObject body, mapping botocore errors to StorageError.

    Wrapped in ``io.BufferedReader`` so callers get a regular binary file (readline, iteration, gzip).
    """

    def __init__(self, body: Any, uri: str, endpoint: str) -> None:
        super().__init__()
        self._body = body
        self._uri = uri
        self._endpoint = endpoint

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            chunk = self._body.read(len(buffer))
        except (BotoCoreError, ClientError) as err:
            raise _boto_error(self._uri, err, self._endpoint) from err
        n = len(chunk)
        buffer[:n] = chunk
        return n

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _redact_chain(err: BaseException | None) -> None:
    """Redact URL credentials in the messages of ``err`` and the exceptions it chains, in place.

    The StorageError chains the botocore error (``raise ... from err``) and Dagster shows the whole
    chain; botocore's own text holds the endpoint URL (``http://key:secret@host/bucket?...``).
    """
    seen = 0
    while err is not None and seen < 8:
        if any(isinstance(arg, str) and "@" in arg for arg in err.args):
            err.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in err.args)
            kwargs = getattr(err, "kwargs", None)  # botocore keeps the format values here too
            if isinstance(kwargs, dict):
                err.kwargs = {k: redact(v) if isinstance(v, str) else v for k, v in kwargs.items()}  # type: ignore[attr-defined]
        err = err.__cause__ or err.__context__
        seen += 1


def _boto_error(uri: str, err: BaseException, endpoint: str) -> StorageError:
    """One-line StorageError for any botocore / boto3 transfer failure (credentials redacted, also in
    the chained botocore errors)."""
    _redact_chain(err)
    # boto3's managed transfers re-raise ClientError as S3UploadFailedError with the original as context.
    inner = err.__cause__ or err.__context__
    if not isinstance(err, ClientError | BotoCoreError) and isinstance(inner, ClientError | BotoCoreError):
        err = inner
    if isinstance(err, ClientError):
        cause = _client_error_cause(err)[1]
    elif isinstance(err, EndpointConnectionError | ConnectionClosedError):
        cause = f"endpoint unreachable ({endpoint})"
    elif isinstance(err, ConnectTimeoutError):
        cause = f"endpoint unreachable, connect timed out ({endpoint})"
    elif isinstance(err, ReadTimeoutError):
        cause = f"endpoint timed out while reading ({endpoint})"
    elif isinstance(err, NoCredentialsError):
        cause = "no AWS credentials found (NoCredentialsError)"
    elif isinstance(err, PartialCredentialsError):
        cause = f"incomplete AWS credentials (PartialCredentialsError: {_one_line(str(err))})"
    else:
        cause = f"{_one_line(str(err))} ({type(err).__name__})"
    return StorageError(f"{uri}: {cause}", uri=uri)


def _one_line(text: str) -> str:
    """A library's or a server's message as one bounded line, credentials redacted."""
    return shorten(" ".join(redact(text).split()), 3 * SHOWN_CHARS)


def _boto_errors() -> tuple[type[BaseException], ...]:
    """botocore's errors and boto3's transfer error (its transfer manager wraps upload errors in it).

    Imported when an S3 location is opened, not with this module: importing boto3 costs a process about
    11 MB that a stage between local folders does not need."""
    from boto3.exceptions import S3UploadFailedError

    return (BotoCoreError, ClientError, S3UploadFailedError)


class S3Storage:
    """Objects under ``s3://bucket/prefix``, through a ready boto3 S3 client (retries configured there)."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        if not bucket or "/" in bucket:
            raise StorageError(f"s3://{bucket}: invalid bucket name", uri=f"s3://{bucket}")
        self.bucket = bucket
        self.prefix = _check_key(prefix.strip("/"), f"s3://{bucket}", prefix=True) if prefix else ""
        self.client = client
        self._errors = _boto_errors()
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        # Prefix of every full key; listing strips it to get root-relative keys.
        self._base = f"{self.prefix}/" if self.prefix else ""

    def __repr__(self) -> str:
        return f"S3Storage({self.uri!r})"

    @property
    def _endpoint(self) -> str:
        # Shown in messages: an endpoint URL may carry "key:secret@" (redacted) and is bounded.
        return shorten(redact(str(getattr(getattr(self.client, "meta", None), "endpoint_url", "?"))), 2 * SHOWN_CHARS)

    def _full(self, key: str) -> str:
        return self._base + _check_key(key, self.uri)

    def _error(self, uri: str, err: BaseException, *, object_op: bool = False) -> StorageError:
        # HEAD answers carry no body, so a missing bucket and a missing key both arrive as a bare 404:
        # ask the bucket to tell which one it is.
        if (
            object_op
            and isinstance(err, ClientError)
            and _client_error_cause(err)[0] in ("404", "NotFound", "NoSuchKey")
            and not self._bucket_exists_quietly()
        ):
            return StorageError(f"{uri}: bucket does not exist (NoSuchBucket)", uri=uri)
        return _boto_error(uri, err, self._endpoint)

    def _bucket_exists_quietly(self) -> bool:
        try:
            return self.exists()
        except StorageError:
            return True  # cannot tell: keep the original error

    def uri_for(self, key: str) -> str:
        """``s3://bucket/prefix/key``."""
        return f"s3://{self.bucket}/{self._full(key)}"

    def exists(self) -> bool:
        """True when the bucket exists (and is reachable with these credentials)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as err:
            if _client_error_cause(err)[0] in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise self._error(f"s3://{self.bucket}", err) from err
        except BotoCoreError as err:
            raise self._error(f"s3://{self.bucket}", err) from err
        return True

    @staticmethod
    def _ms(value: datetime) -> int:
        return (value - _EPOCH) // timedelta(milliseconds=1)

    def list(self, prefix: str = "", *, recurse: bool = True, exclusions: Sequence[str] = ()) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` (a folder), in key order, one ListObjectsV2 page in memory at a time.

        Keys S3 allows but this module refuses (e.g. ``a//b``) are still listed, so they never vanish
        silently; reading them raises, and an exclusion glob can skip them.
        """
        prefix = _check_key(prefix, self.uri, prefix=True)
        matchers = _compile_exclusions(exclusions)
        list_prefix = self._base + (f"{prefix}/" if prefix else "")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": list_prefix}
        if not recurse:
            kwargs["Delimiter"] = "/"
        uri = f"s3://{self.bucket}/{list_prefix}".rstrip("/")
        return self._iter_list(kwargs, uri, matchers)

    def _pages(self, kwargs: dict[str, Any], uri: str) -> Iterator[dict[str, Any]]:
        pages = iter(self.client.get_paginator("list_objects_v2").paginate(**kwargs))
        while True:
            # Only the fetch is guarded: the consumer's own exceptions must not be rewritten.
            try:
                page = next(pages)
            except StopIteration:
                return
            except self._errors as err:
                raise self._error(uri, err) from err
            yield page

    def _iter_list(
        self, kwargs: dict[str, Any], uri: str, matchers: tuple[re.Pattern[str], ...]
    ) -> Iterator[ObjectInfo]:
        base_len = len(self._base)
        for page in self._pages(kwargs, uri):
            for obj in page.get("Contents", ()):
                full: str = obj["Key"]
                if _is_marker(full) or not full.startswith(self._base):
                    continue
                key = full[base_len:]
                if _excluded(key, matchers):
                    continue
                yield ObjectInfo(
                    key=key,
                    size=int(obj["Size"]),
                    last_modified_ms=self._ms(obj["LastModified"]),
                    etag=str(obj.get("ETag", "")).strip('"'),
                )

    def stat(self, key: str) -> ObjectInfo:
        """HEAD one object."""
        full = self._full(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=full)
        except self._errors as err:
            raise self._error(self.uri_for(key), err, object_op=True) from err
        return ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            last_modified_ms=self._ms(head["LastModified"]),
            etag=str(head.get("ETag", "")).strip('"'),
        )

    def _get_body(self, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
        except self._errors as err:
            raise self._error(self.uri_for(key), err, object_op=True) from err

    def read_bytes(self, key: str) -> bytes:
        """Whole content of one object: one GetObject, its body read at once (no transfer manager, no
        read buffer: for the small objects a stage fetches by the thousand, see stage._fetch_small)."""
        body = self._get_body(key)
        try:
            return bytes(body.read())
        except self._errors as err:
            raise self._error(self.uri_for(key), err) from err
        finally:
            body.close()

    def open_read(self, key: str) -> BinaryIO:
        """A streaming, buffered binary reader over GetObject; the caller closes it."""
        body = self._get_body(key)
        raw = _S3Reader(body, self.uri_for(key), self._endpoint)
        return io.BufferedReader(raw, buffer_size=_COPY_CHUNK)  # type: ignore[return-value]

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """Download into a temp file (streamed, bounded memory); the file is deleted on exit."""
        full = self._full(key)
        suffix = "".join(Path(key).suffixes[-2:])  # keep ".json.gz" so readers can sniff compression
        tmp = tempfile.NamedTemporaryFile(prefix="glueflow-", suffix=suffix, delete=False)  # noqa: SIM115
        path = Path(tmp.name)
        try:
            try:
                with tmp:
                    self.client.download_fileobj(self.bucket, full, tmp)
            except self._errors as err:
                raise self._error(self.uri_for(key), err, object_op=True) from err
            yield path
        finally:
            path.unlink(missing_ok=True)

    def write_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """PUT one object (S3 PUTs are atomic)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"write_bytes expects bytes, got {type(data).__name__}")
        full = self._full(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=bytes(data))
        except self._errors as err:
            raise self._error(self.uri_for(key), err) from err
        return self.stat(key)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Put-if-absent: a PUT with ``If-None-Match: *`` (S3's conditional write); 412 means the name
        exists. A 409 (another conditional write of the name in flight) is retried until one of them wins."""
        full = self._full(key)
        for wait_s in (0.1, 0.2, 0.4, 0.8, 1.6, 0.0):
            try:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=bytes(data), IfNoneMatch="*")
                return True
            except self._errors as err:
                code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
                if code in ("PreconditionFailed", "412"):
                    return False
                if code not in ("ConditionalRequestConflict", "409") or not wait_s:
                    raise self._error(self.uri_for(key), err) from err
                time.sleep(wait_s)
        raise AssertionError("unreachable")

    def upload_file(self, local_path: Path, key: str) -> ObjectInfo:
        """Upload through the transfer manager (multipart for big files; the object appears whole)."""
        full = self._full(key)
        src = Path(local_path)
        LocalStorage._check_source(src)
        try:
            self.client.upload_file(str(src), self.bucket, full)
        except self._errors as err:
            raise self._error(self.uri_for(key), err) from err
        return self.stat(key)

    def delete(self, key: str) -> None:
        """DELETE one object; a missing object is fine."""
        full = self._full(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full)
        except self._errors as err:
            raise self._error(self.uri_for(key), err) from err

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (a folder; ``""`` is the whole root), markers included.

        Returns the number of objects deleted (markers are not counted, as ``list`` does not show them).
        """
        prefix = _check_key(prefix, self.uri, prefix=True)
        list_prefix = self._base + (f"{prefix}/" if prefix else "")
        uri = f"s3://{self.bucket}/{list_prefix}".rstrip("/")
        count = 0
        batch: list[str] = []
        for page in self._pages({"Bucket": self.bucket, "Prefix": list_prefix}, uri):
            for obj in page.get("Contents", ()):
                batch.append(obj["Key"])
                count += not _is_marker(obj["Key"])
                if len(batch) == _DELETE_BATCH:
                    self._delete_batch(batch, uri)
                    batch = []
        if batch:
            self._delete_batch(batch, uri)
        return count

    def _delete_batch(self, keys: list[str], uri: str) -> None:
        try:
            resp = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        except self._errors as err:
            raise self._error(uri, err) from err
        errors = resp.get("Errors") or []
        if errors:
            first = errors[0]
            raise StorageError(
                f"s3://{self.bucket}/{first.get('Key')}: delete failed ({_one_line(str(first.get('Code')))}: "
                f"{_one_line(str(first.get('Message')))}; {len(errors)} of {len(keys)} keys in the batch failed)",
                uri=uri,
            )

    # Pending writes: an open multipart upload, invisible to every reader until it is completed.

    def begin_upload(self, local_path: Path, key: str) -> PendingObject:
        """Upload ``local_path`` as the parts of a multipart upload that is left open (S3A's magic committer)."""
        full = self._full(key)
        src = Path(local_path)
        LocalStorage._check_source(src)
        uri = self.uri_for(key)
        try:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]
        except self._errors as err:
            raise self._error(uri, err) from err
        pending = PendingObject(key=key, size=src.stat().st_size, token=upload_id)
        parts: list[tuple[int, str]] = []
        try:
            with open(src, "rb") as f:
                number = 1
                while True:
                    chunk = f.read(_MULTIPART_PART_BYTES)
                    if not chunk and parts:
                        break
                    answer = self.client.upload_part(
                        Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=chunk
                    )
                    parts.append((number, str(answer["ETag"])))
                    number += 1
                    if len(chunk) < _MULTIPART_PART_BYTES:
                        break
        except BaseException as err:
            with suppress(StorageError):
                self.abort_upload(pending)
            if isinstance(err, self._errors):
                raise self._error(uri, err) from err
            raise
        return PendingObject(key=key, size=pending.size, token=upload_id, parts=tuple(parts))

    def complete_upload(self, pending: PendingObject) -> ObjectInfo:
        """Complete the multipart upload: the object appears at once, whole."""
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._full(pending.key),
                UploadId=pending.token,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in pending.parts]},
            )
        except self._errors as err:
            raise self._error(self.uri_for(pending.key), err) from err
        return self.stat(pending.key)

    def abort_upload(self, pending: PendingObject) -> None:
        """Abort the multipart upload; an upload already gone is fine."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._full(pending.key), UploadId=pending.token)
        except ClientError as err:
            if _client_error_cause(err)[0] in ("NoSuchUpload", "404"):
                return
            raise self._error(self.uri_for(pending.key), err) from err
        except BotoCoreError as err:
            raise self._error(self.uri_for(pending.key), err) from err

    def pending_uploads(self) -> Iterator[PendingUpload]:
        """Multipart uploads left open under this location (ListMultipartUploads), with their start times."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._base}
        uri = self.uri
        while True:
            try:
                page = self.client.list_multipart_uploads(**kwargs)
            except self._errors as err:
                raise self._error(uri, err) from err
            for upload in page.get("Uploads", ()):
                full: str = upload["Key"]
                if full.startswith(self._base):
                    yield PendingUpload(
                        key=full[len(self._base) :], token=upload["UploadId"], started_ms=self._ms(upload["Initiated"])
                    )
            if not page.get("IsTruncated"):
                return
            kwargs["KeyMarker"] = page.get("NextKeyMarker", "")
            kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker", "")


# --------------------------------------------------------------------------------------------------
# Factory


def open_storage(
    uri: str,
    *,
    s3_client_factory: Callable[[], Any] | None = None,
    base_dir: Path | None = None,
) -> Storage:
    """Storage for ``uri``: ``s3://bucket/prefix``, ``file:///abs/path`` or a local path.

    A relative local path is resolved against ``base_dir`` (default: the current directory). Without a
    factory the S3 client is ``boto3.client("s3")``, which honours ``AWS_ENDPOINT_URL``. Other
    ``scheme://`` URIs are refused rather than taken as oddly named local folders.
    """
    text = str(uri).strip()
    if not text:
        raise StorageError("'': empty storage URI")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "s3":
        rest = text[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StorageError(f"{text}: missing bucket name", uri=text)
        if s3_client_factory is not None:
            client = s3_client_factory()
        else:
            import boto3  # deferred: only S3 locations need it

            client = boto3.client("s3")
        return S3Storage(bucket, prefix, client)
    if scheme == "file":
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"{text}: file:// URIs must be absolute (file:///path)", uri=text)
        return LocalStorage(Path(unquote(parsed.path)))
    if scheme:
        cause = f"unsupported storage scheme {shown(scheme)} (use s3:// or a local path)"
        raise StorageError(f"{shorten(text, 2 * SHOWN_CHARS)}: {cause}", uri=text)
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else Path.cwd()).expanduser().absolute() / path
    return LocalStorage(path)


def location_uri(uri: str) -> str:
    """A location as a URI: `s3://...` as it is, a local path as `file:///...`."""
    return uri if "://" in uri else Path(uri).resolve().as_uri()

"""A local folder as a location: atomic writes (temp file, fsync, rename), symlinks kept inside the root,
and pending writes as hidden files that completing renames into place.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import stat as stat_mod
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from glueflow_dagster.core.storage.errors import StorageError
from glueflow_dagster.core.storage.keys import check_key, compile_exclusions, excluded
from glueflow_dagster.core.storage.objects import (
    DANGLING_LINK,
    OUTSIDE_LINK,
    PENDING_DIR,
    PROBE_PREFIX,
    TMP_PREFIX,
    ObjectInfo,
    PendingObject,
    PendingUpload,
    RefusedObject,
)

# The package's name: one logger for the storage, whichever module of it logs.
_log = logging.getLogger(__package__)

COPY_CHUNK = 1024 * 1024

# Whether a folder's file system makes hard links (the put-if-absent of claims): probed once per folder and
# process. These errors mean it cannot (FAT/exFAT, some FUSE, SMB and object-store mounts); any other fails.
_HARD_LINKS: dict[str, bool] = {}
_NO_HARD_LINKS = frozenset(
    code
    for code in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS)
    if code is not None
)


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


def check_upload_source(src: Path) -> None:
    """Refuse an upload whose local source is not a file (both backends check it before any request)."""
    if not src.is_file():
        raise StorageError(f"{src}: local file to upload does not exist or is not a file", uri=str(src))


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
        key = check_key(key, self.uri, prefix=prefix)
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
        prefix = check_key(prefix, self.uri, prefix=True)
        start = self._path(prefix, prefix=True)
        matchers = compile_exclusions(exclusions)
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
            if excluded(key, matchers):
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
                path = os.path.join(self.uri, check_key(key, self.uri))  # a checked key joins as it reads
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

    def honours_conditional_writes(self) -> bool:
        """Whether put-if-absent (:meth:`create_exclusive`, a hard link) works in this folder: probed once per
        folder and process by hard-linking a temp file under ``_glueflow/probe/`` (both deleted at once). A
        file system that refuses hard links does not honour it: the commit claims then go to the Dagster
        instance (``core.claims``), as for an S3 store without conditional writes."""
        if self.uri not in _HARD_LINKS:
            _HARD_LINKS[self.uri] = self._probe_hard_link()
        return _HARD_LINKS[self.uri]

    def _probe_hard_link(self) -> bool:
        name = uuid.uuid4().hex
        key = f"{PROBE_PREFIX}/hard-link-{name}.json"
        path = self._path(key)
        tmp = path.parent / f"{TMP_PREFIX}{name}"
        try:
            with self._open_tmp(tmp) as f:
                f.write(b"{}")
            os.link(tmp, path)
            return True
        except OSError as err:
            if err.errno in _NO_HARD_LINKS:
                return False
            raise self._err(key, err) from err
        finally:
            for leftover in (path, tmp):
                with suppress(OSError):
                    leftover.unlink(missing_ok=True)
            with suppress(OSError):
                path.parent.rmdir()  # the probe folder, when empty

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
        check_upload_source(src)

        def copy(dst: BinaryIO) -> None:
            with open(src, "rb") as f:
                shutil.copyfileobj(f, dst, COPY_CHUNK)

        return self._atomic_write(key, copy)

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

    def begin_upload(self, local_path: Path, key: str, *, move: bool = False) -> PendingObject:
        """Copy ``local_path`` to a pending file under ``_glueflow/pending/``; ``key`` stays untouched.

        ``move``: the caller gives the file up (the stage's part files): it is renamed into the pending
        folder where it shares this location's file system, no byte copied, and copied then removed where
        it does not. Either way ``local_path`` is gone afterwards. A caller that writes the same local path
        again (the Spark tasks' part file) keeps the default copy.
        """
        self._path(key)  # refuse a bad key before copying anything
        token = f"{PENDING_DIR}/{uuid.uuid4().hex}/{key}"
        info = self._moved(Path(local_path), token) if move else None
        if info is None:
            info = self.upload_file(local_path, token)
            if move:
                Path(local_path).unlink(missing_ok=True)
        return PendingObject(key=key, size=info.size, token=token)

    def _moved(self, src: Path, token: str) -> ObjectInfo | None:
        """``src`` renamed to the (attempt-unique, hence new) pending name ``token``, made durable; None where
        the rename cannot be made (another file system, or one that refuses it): the caller copies."""
        check_upload_source(src)
        path = self._path(token)
        try:
            fd = os.open(src, os.O_RDONLY)
            try:
                os.fsync(fd)  # the bytes are on disk before the name is (as the copy's fsync)
            finally:
                os.close(fd)
            # The pending file's time is the upload's (abandoned uploads are collected by it), from its first
            # moment under the pending name.
            os.utime(src)
            # Twice, as _open_tmp: a concurrent delete_prefix may prune the freshly made (empty) folder.
            for attempt in (1, 2):
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, path)  # never replaces: fails if the name exists
                    break
                except FileNotFoundError:
                    if attempt == 2 or not src.exists():
                        raise
        except OSError as err:
            if err.errno in _NO_HARD_LINKS:
                return None
            raise self._err(token, err) from err
        src.unlink(missing_ok=True)  # the caller gave it up: the pending name is the file's only one now
        self._fsync_dir(path.parent)
        return self.stat(token)

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

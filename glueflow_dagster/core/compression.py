"""gzip for the parts a stage writes: ISA-L's igzip at levels 1-3, zlib (polars' own writer) at 4-9.

Compression was about a fifth of the stage's CPU time at zlib level 4. ISA-L (Intel's storage
acceleration library, through python-isal) deflates JSON lines several times faster than zlib at its
low levels, for output a few percent larger, and writes plain gzip that every reader (Spark's and
Hadoop's codecs, DuckDB, polars, ``gzip -d``) reads. The levels keep zlib's scale, 1 (fastest) to 9
(smallest); the low ones go to ISA-L, as xopen does for the same reason.

polars writes each part through :class:`IgzipParts`: its ``PartitionBy`` sink asks the provider for a
file per part and writes the part's JSON into it in blocks of a few MB; each block is deflated as it
arrives (python-isal releases the GIL while it deflates), so nothing uncompressed is ever stored.

polars may still call the provider, or write a part, from its threads *after* ``collect_all`` raised for
a failed query (its streaming engine does not join every task before it returns the error); the stage
then empties the work folder and runs the query again under the same part names. A late writer must not
share a part file with the rerun's writer (that interleaves two gzip streams in one file: a corrupt
part), so :class:`IgzipParts` opens no part once it is closed, never opens an existing file, and a part
takes no write once closed (a lock makes a write and the close exclusive).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from isal import igzip

__all__ = ["DEFAULT_GZIP_LEVEL", "GZIP_LEVELS", "IgzipPart", "IgzipParts", "written_by_isal"]

#: gzip levels on zlib's scale: 1 fastest, 9 smallest.
GZIP_LEVELS = range(1, 10)
#: Levels ISA-L writes (its levels 1-3; its level 0 has no zlib counterpart).
ISAL_LEVELS = range(1, 4)
#: Default gzip level of the parts a stage writes. Measured on the stage benchmark's JSON lines (one 100
#: MB object, CPU seconds of deflate alone): ISA-L level 2 deflates at about 730 MB/s and writes 8.61 MB
#: where zlib level 4 (polars' zlib-rs, about 200 MB/s) writes 7.87 MB.
DEFAULT_GZIP_LEVEL = 2


def written_by_isal(level: int | None) -> bool:
    """Whether parts of this gzip level are deflated by ISA-L (else polars' zlib writer)."""
    return level is not None and level in ISAL_LEVELS


class IgzipPart:
    """One part as polars writes it: an igzip stream over its file. A write (or flush) and the close hold
    the part's lock in turn, so a polars thread still writing when the parts are closed cannot interleave
    with the trailer; a write after the close raises ``ValueError``."""

    def __init__(self, file: IO[bytes], level: int) -> None:
        self._lock = threading.Lock()
        self._file = file
        # No name and no time in the header, as polars' own writer: the same records give the same bytes.
        self.stream = igzip.IGzipFile(filename="", mode="wb", compresslevel=level, fileobj=file, mtime=0)

    @property
    def closed(self) -> bool:
        return self.stream.closed

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        with self._lock:
            return self.stream.write(data)

    def flush(self) -> None:
        with self._lock:
            self.stream.flush()

    def close(self) -> None:
        """Finish the stream (its gzip trailer), then close the file; the file is closed even if that fails."""
        with self._lock:
            try:
                self.stream.close()
            finally:
                self._file.close()


class IgzipParts:
    """polars ``PartitionBy`` file provider: part ``index`` goes to ``folder / name(index)`` through igzip.

    polars does not close a file object it was given: :meth:`close` finishes every part (the gzip
    trailer) once the sink is done, and closes them on failure too. Use it as a context manager. Once
    closed it opens no part (a late call from a failed query's thread raises), and it never opens a file
    that exists: two writers never share a part file (see the module's note).
    """

    def __init__(self, folder: Path, name: Callable[[int], str], level: int) -> None:
        if not written_by_isal(level):
            raise ValueError(f"ISA-L writes gzip levels {ISAL_LEVELS[0]}-{ISAL_LEVELS[-1]}, got {level}")
        self._folder = folder
        self._name = name
        self._level = level
        self._lock = threading.Lock()
        self._closed = False
        self._open: list[IgzipPart] = []

    def __call__(self, args: Any) -> IgzipPart:
        path = self._folder / self._name(args.index_in_partition)
        with self._lock:  # an open and the close are exclusive: no part is opened that close() misses
            if self._closed:
                raise ValueError(f"{path.name}: the query's parts are closed (a late call of a failed query)")
            file = open(path, "xb")  # noqa: SIM115 (closed by close()); "x": never a second writer on a part
            try:
                part = IgzipPart(file, self._level)
            except BaseException:
                file.close()
                raise
            self._open.append(part)
        return part

    def close(self) -> None:
        """Finish every part (its gzip trailer), then close its file; the first error is raised at the end.
        No part is opened afterwards."""
        errors: list[BaseException] = []
        with self._lock:
            self._closed = True
            parts, self._open = self._open, []
        for part in parts:
            try:
                part.close()
            except OSError as err:  # a full disk: every file is still closed
                errors.append(err)
        if errors:
            raise errors[0]

    def __enter__(self) -> IgzipParts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

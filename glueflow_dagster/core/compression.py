"""gzip for the parts a stage writes: ISA-L's igzip at levels 1-3, zlib (polars' own writer) at 4-9.

Compression was about a fifth of the stage's CPU time at zlib level 4. ISA-L (Intel's storage
acceleration library, through python-isal) deflates JSON lines several times faster than zlib at its
low levels, for output a few percent larger, and writes plain gzip that every reader (Spark's and
Hadoop's codecs, DuckDB, polars, ``gzip -d``) reads. The levels keep zlib's scale, 1 (fastest) to 9
(smallest); the low ones go to ISA-L, as xopen does for the same reason.

polars writes each part through :class:`IgzipParts`: its ``PartitionBy`` sink asks the provider for a
file per part and writes the part's JSON into it in blocks of a few MB; each block is deflated as it
arrives (python-isal releases the GIL while it deflates), so nothing uncompressed is ever stored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from isal import igzip

__all__ = ["DEFAULT_GZIP_LEVEL", "GZIP_LEVELS", "IgzipParts", "written_by_isal"]

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


class IgzipParts:
    """polars ``PartitionBy`` file provider: part ``index`` goes to ``folder / name(index)`` through igzip.

    polars does not close a file object it was given: :meth:`close` finishes every part (the gzip
    trailer) once the sink is done, and closes them on failure too. Use it as a context manager.
    """

    def __init__(self, folder: Path, name: Callable[[int], str], level: int) -> None:
        if not written_by_isal(level):
            raise ValueError(f"ISA-L writes gzip levels {ISAL_LEVELS[0]}-{ISAL_LEVELS[-1]}, got {level}")
        self._folder = folder
        self._name = name
        self._level = level
        self._open: list[IO[bytes]] = []

    def __call__(self, args: Any) -> IO[bytes]:
        file = open(self._folder / self._name(args.index_in_partition), "wb")  # noqa: SIM115 (closed by close())
        self._open.append(file)
        # No name and no time in the header, as polars' own writer: the same records give the same bytes.
        part = igzip.IGzipFile(filename="", mode="wb", compresslevel=self._level, fileobj=file, mtime=0)
        self._open.append(part)
        return part

    def close(self) -> None:
        """Finish every part (its gzip trailer), then close its file; the first error is raised at the end."""
        errors: list[BaseException] = []
        while self._open:  # each part before its file: the part's close writes the trailer
            try:
                self._open.pop().close()
            except OSError as err:  # a full disk: every file is still closed
                errors.append(err)
        if errors:
            raise errors[0]

    def __enter__(self) -> IgzipParts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Writing a stage's output: the writer seam.

A writer turns the mapped frame into local part files (one streaming sink, about ``records_per_part``
records each) and names them; :func:`begin_parts` then uploads every part as a *pending* object
(``Storage.begin_upload``): written, but no reader sees it until the commit completes it
(``core.commits``). Nothing here makes data visible or removes it.

JSON lines (plain or gzip) are written by :class:`JsonLinesWriter`; CSV and Parquet by the writers of
``core.formats`` (``formats.seams.writer_for`` picks one per request). A writer with partition columns
writes its parts into Hive folders (``column=value/part-NNNNN...``); :func:`begin_parts` keeps the folders
in the object keys.

Each query writes into a folder of its own (:func:`attempt_folder`), moved into the parts folder only
when the query succeeded: polars' streaming engine may still open and write part files from its threads
after ``collect_all`` raised for a failed query, and a rerun under the same part names must not share a
file (or a folder) with those late writers.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

import polars as pl

from glueflow_dagster.core.compression import IgzipParts, written_by_isal
from glueflow_dagster.core.formats.partitions import parts_target
from glueflow_dagster.core.storage import LocalStorage, PendingObject, Storage

__all__ = ["JsonLinesWriter", "Writer", "attempt_folder", "begin_parts", "clear", "output_object_key", "single_part"]


def output_object_key(name_prefix: str, part: int, compression: str) -> str:
    """Glue-style part names (`<name_prefix>-part-r-00000`); the prefix names the writing attempt."""
    suffix = ".json.gz" if compression == "gzip" else ".json"
    return f"{name_prefix}-part-r-{part:05d}{suffix}"


class Writer(Protocol):
    """One output format: how the mapped frame becomes local part files, and what the parts are called."""

    def sink(
        self, frame: pl.LazyFrame, out_dir: Path, first_part: int, records_per_part: int, files: ExitStack
    ) -> pl.LazyFrame:
        """A lazy sink writing ``frame`` as ``part-NNNNN`` files into ``out_dir``, numbered from ``first_part``;
        ``files`` closes whatever the sink leaves open once it ran."""
        ...

    def object_key(self, name_prefix: str, part: int) -> str:
        """The part's object name in the target location."""
        ...


@dataclass(frozen=True)
class JsonLinesWriter:
    """JSON lines, uncompressed or gzip (``compression_level`` 1-9; ISA-L deflates where it writes that level)."""

    compression: str
    compression_level: int | None = None  # gzip only
    partition_keys: tuple[str, ...] = ()  # Hive folders (gzip then by polars' own writer)
    single_part: bool = False  # the query writes at most records_per_part records (see single_part())
    # Rows per morsel of the sink (polars' default: 25,600; plan.polars_settings sets it for the stage's
    # queries): each morsel is written as one JSON buffer of about this many records, and fewer rows cut
    # the stage's peak RSS by 15-20 MB on 100 MB of gzip JSON lines (docs/performance.md, "Memory") for the
    # same records. Parquet writers keep polars' default: their row groups follow the morsels.
    sink_morsel_rows: ClassVar[int] = 5000

    @property
    def plain_sink_applies(self) -> bool:
        """Whether ``single_part`` makes the sink one plain file: not for Hive folders, and not for gzip,
        whose parts ISA-L or polars' own gzip writer splits either way (counting the input would be waste)."""
        return not self.partition_keys and self.compression != "gzip"

    @property
    def suffix(self) -> str:
        return ".json.gz" if self.compression == "gzip" else ".json"

    def object_key(self, name_prefix: str, part: int) -> str:
        return output_object_key(name_prefix, part, self.compression)

    def sink(
        self, frame: pl.LazyFrame, out_dir: Path, first_part: int, records_per_part: int, files: ExitStack
    ) -> pl.LazyFrame:
        suffix = self.suffix

        def part_name(index: int) -> str:
            return f"part-{first_part + index:05d}{suffix}"

        def part_path(args: Any) -> str:
            return part_name(args.index_in_partition)

        if self.partition_keys:
            gzip = {"compression": "gzip", "compression_level": self.compression_level}
            return frame.sink_ndjson(
                parts_target(out_dir, self.partition_keys, part_name, records_per_part),
                lazy=True,
                **(gzip if self.compression == "gzip" else {}),
            )

        if self.single_part and self.compression != "gzip":
            return frame.sink_ndjson(out_dir / part_name(0), lazy=True)

        provider: Callable[[Any], Any] = part_path
        options: dict[str, Any] = {
            "compression": "gzip" if self.compression == "gzip" else "uncompressed",
            "compression_level": self.compression_level,
        }
        if self.compression == "gzip" and written_by_isal(self.compression_level):
            # polars writes the JSON, ISA-L deflates it (see core.compression)
            provider = files.enter_context(IgzipParts(out_dir, part_name, self.compression_level or 0))
            options = {}
        return frame.sink_ndjson(
            pl.PartitionBy(
                str(out_dir),
                file_path_provider=provider,
                max_rows_per_file=records_per_part,
                approximate_bytes_per_file=None,
            ),
            lazy=True,
            **options,
        )


def single_part(writer: Writer) -> Writer:
    """``writer`` told that the query writes at most ``records_per_part`` records (the caller counted the
    input's records): an unpartitioned sink then writes one plain file instead of polars' splitting sink,
    which costs 10-15% more CPU for the same file. Writers without the option, or whose sink it would not
    change (``plain_sink_applies``), are returned as they are: callers count the input only when the
    result is another writer."""
    if not is_dataclass(writer) or "single_part" not in {f.name for f in fields(writer)}:
        return writer
    if not getattr(writer, "plain_sink_applies", True):
        return writer
    return replace(writer, single_part=True)  # type: ignore[type-var]


def begin_parts(out_dir: Path, target: Storage, name_prefix: str, writer: Writer) -> list[PendingObject]:
    """Upload the parts in ``out_dir`` (and its Hive folders) as pending objects: written, but no reader
    sees them yet. A part in ``column=value/`` keeps that folder in its key."""
    pending = []
    for local in sorted(path for path in out_dir.rglob("*") if path.is_file()):
        part = int(local.name.split(".")[0].removeprefix("part-"))
        folder = local.parent.relative_to(out_dir).as_posix()
        key = writer.object_key(name_prefix, part)
        full_key = key if folder == "." else f"{folder}/{key}"
        if isinstance(target, LocalStorage):  # the part is renamed into place where it can be, not copied
            pending.append(target.begin_upload(local, full_key, move=True))
        else:
            pending.append(target.begin_upload(local, full_key))
            local.unlink()
    return pending


@contextmanager
def attempt_folder(out_dir: Path) -> Iterator[Path]:
    """A new folder beside ``out_dir`` for one query's parts; when the block succeeds its parts (and Hive
    folders) are moved into ``out_dir``, when it raises they are removed and never uploaded.

    polars can open and write part files from its threads after ``collect_all`` raised (a failed query's
    sink is not joined): those late writers only ever reach the failed query's own folder, so the rerun's
    parts are written by one writer each."""
    folder = Path(tempfile.mkdtemp(prefix=f"{out_dir.name}-query-", dir=out_dir.parent))
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a late writer may leave a file: never read, never uploaded
        raise
    for entry in sorted(folder.iterdir()):
        entry.rename(out_dir / entry.name)  # out_dir holds no part of this group (cleared before each query)
    folder.rmdir()


def clear(folder: Path) -> None:
    """Empty a local folder of part files (a query that is run again writes its parts anew)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)

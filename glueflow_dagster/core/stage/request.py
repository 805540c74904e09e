"""What one stage is asked to do (:class:`StageRequest`) and what it did (:class:`StageResult`).

The values every engine shares: the job runs build one request per run (``core.job_run.stage_request``),
the polars stage (:func:`glueflow_dagster.core.stage.run.stage_pending`) and the Spark stage
(``components.spark_stage``) both take it and both answer with a result whose parts are *pending*: the
commit (``core.commits``) makes them visible or discards them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from glueflow_dagster.core.formats.options import DataFormat
from glueflow_dagster.core.json_reader import JsonFormat
from glueflow_dagster.core.mapping import FieldMapping
from glueflow_dagster.core.storage import ObjectInfo, PendingObject, Storage

#: Default size of one output object, in bytes of uncompressed JSON.
DEFAULT_TARGET_FILE_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class StageRequest:
    """Map ``objects`` of ``source`` into pending parts ``<name_prefix>-part-r-NNNNN`` under ``target``.

    ``name_prefix`` must belong to this attempt alone (:func:`glueflow_dagster.core.commits.part_prefix`):
    nothing is ever deleted by name. ``mappings`` are Glue ApplyMapping 4-sequences (what the Spark
    stage script receives) or parsed :class:`FieldMapping` values (polars only).

    Bad records and unreadable objects go to ``quarantine_prefix`` under ``target`` (default
    ``_errors/<name_prefix>``). More than ``max_error_records`` of them (error records plus unreadable
    objects) fail the stage. ``refused`` are (uri, cause) of objects the listing would not read (a local
    symlink pointing outside the location): quarantined as unreadable. Parts hold about
    ``target_file_bytes`` of uncompressed JSON each. ``compression`` is ``gzip`` or ``none``;
    ``compression_level`` (gzip only, 1-9) defaults to ``core.compression.DEFAULT_GZIP_LEVEL``.
    ``json_format`` (Glue's ``multiline`` / ``jsonPath``) picks the reader (see ``stage.read.reader_for``).
    ``read_format`` / ``write_format`` are the source's and the target's data formats (json, csv, parquet;
    CSV options; Hive partition columns, see ``core.formats``); ``compression`` is then the target format's.
    """

    source: Storage
    objects: tuple[ObjectInfo, ...]
    target: Storage
    name_prefix: str
    mappings: tuple[FieldMapping, ...] | tuple[Sequence[str], ...]
    compression: str = "none"
    compression_level: int | None = None
    max_error_records: int = 0
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES
    quarantine_prefix: str | None = None
    refused: tuple[tuple[str, str], ...] = ()
    json_format: JsonFormat | None = None
    read_format: DataFormat = DataFormat()
    write_format: DataFormat = DataFormat()


class StageError(RuntimeError):
    """A stage failed on its data (too many bad records); the message is one line.

    ``result`` holds the figures of the failed run (nothing written; ``records_discarded`` good records
    were not written) so the shell can still record them.
    """

    def __init__(self, message: str, *, result: StageResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class StageResult:
    """What one stage read and wrote: the figures a materialization records.

    ``records_read == records_written + error_records + records_discarded``; ``records_discarded`` is 0
    unless the run failed. Objects that could not be read at all count in ``error_files`` and hold no
    countable records.
    """

    read: tuple[ObjectInfo, ...]
    written: tuple[ObjectInfo, ...]
    records_read: int
    records_written: int
    error_records: int
    cast_errors: int
    duration_s: float
    target_uri: str
    extra: dict[str, object] = field(default_factory=dict)
    error_files: int = 0
    records_discarded: int = 0
    quarantined: tuple[ObjectInfo, ...] = ()
    quarantine_uri: str | None = None
    first_error: str | None = None
    skipped: tuple[ObjectInfo, ...] = ()
    # Written but not yet visible: the commit publishes them (core.commits.publish) or aborts them.
    pending: tuple[PendingObject, ...] = ()
    # Planned objects deleted before they could be read: not read, not counted in bytes_read.
    vanished: tuple[ObjectInfo, ...] = ()

    @property
    def bytes_read(self) -> int:
        return sum(obj.size for obj in self.read)

    @property
    def bytes_written(self) -> int:
        return sum(obj.size for obj in self.written)

    @property
    def files_read(self) -> int:
        return len(self.read)

    @property
    def files_written(self) -> int:
        return len(self.written)


def threshold_message(error_records: int, error_files: int, limit: int, first: str | None) -> str:
    """The one line a stage fails with past its error threshold (the same on every engine)."""
    what = f"{error_records} error record{'' if error_records == 1 else 's'}"
    if error_files:
        what += f" and {error_files} unreadable object{'' if error_files == 1 else 's'}"
    return f"{what} exceed max_error_records={limit}; first: {first}"

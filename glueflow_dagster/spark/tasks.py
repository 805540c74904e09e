"""The Spark stage's executor tasks: each reads its own objects and writes its own pending parts.

The driver only coordinates. The frozen manifest is split into tasks by size (:func:`plan_tasks`, Glue's
``groupSize``); one Spark task per group runs :func:`read_objects` inside a ``mapInArrow``: it reads its
objects itself (boto3 in the executor for ``s3://``, the file for a local path), gunzips them and hands
their lines to the JVM as Arrow batches with the source object and the line number of each. The JVM
parses them with the mapping's schema (``from_json``, one typed pass) and maps them; a second
``mapInArrow`` in the same task, :func:`write_parts`, writes the mapped lines as *pending* objects (an
S3 multipart upload left open, a hidden pending file locally) named after the attempt and the Spark task
attempt, and returns one small descriptor per task: the pending parts (key, upload id, part etags, size,
records), the task's counts, its quarantine entries (source object and line number) and the objects that
vanished or did not decompress. No data goes through the driver.

A task that fails (a lost executor) leaves its pending parts under its own task attempt's names; only the
successful attempt's descriptor reaches the driver, which aborts the others
(:func:`abort_stray_uploads`); what it cannot abort, garbage collection does (the names match the
protocol's ``run-<id>-attempt-<n>-part-r-<digits>``).

These functions run in Python workers on the executors: they import ``glueflow_dagster`` there, so the
package must be installed (or on ``spark.executorEnv.PYTHONPATH``) where the executors run.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

#: Bytes of input per task (Glue's ``groupSize``) unless the driver asks for more tasks to use every core.
DEFAULT_GROUP_BYTES = 64 * 1024 * 1024
#: Lines per Arrow batch handed from the reader to the JVM.
BATCH_LINES = 65_536
#: Bytes of an object read for the schema sample (whole lines within it; the whole object when smaller).
SAMPLE_HEAD_BYTES = 4 * 1024 * 1024
SAMPLE_LINES = 100
#: Objects tried for the schema sample, as the polars stage tries (``stage.sample_schema``).
SAMPLE_OBJECTS = 3

# Columns of the reader's rows (prefixed: a record's own fields may be called "source" or "line").
KIND, SOURCE, LINE, VALUE = "__glueflow_kind", "__glueflow_source", "__glueflow_line", "__glueflow_value"
READ_SCHEMA = f"{KIND} tinyint, {SOURCE} string, {LINE} long, {VALUE} string"
DATA, VANISHED, UNREADABLE = 0, 1, 2  # kinds: a line of data; an object gone since listing; one that does not read
# Columns the writer gets.
OUT, BAD, MISMATCH, CASTS, MISSING, ENTRY = (
    "__glueflow_out",
    "__glueflow_bad",
    "__glueflow_mismatch",
    "__glueflow_casts",
    "__glueflow_missing",
    "__glueflow_entry",
)
DESCRIPTOR_SCHEMA = "descriptor string"


def plan_tasks(manifest: Sequence[Mapping[str, Any]], group_bytes: int, parallelism: int) -> list[list[dict]]:
    """The manifest in groups of about ``group_bytes`` (in manifest order), one Spark task each.

    At least one group per core (``parallelism``) where there are objects enough; an object is never
    split. Contiguous groups of about equal bytes: an object goes to the group its middle byte falls in.
    """
    objects = [dict(obj) for obj in manifest]
    sizes = [max(1, int(obj.get("size") or 0)) for obj in objects]
    total = sum(sizes)
    count = max(-(-total // max(1, group_bytes)), min(max(1, parallelism), len(objects)))
    groups: list[list[dict]] = [[] for _ in range(count)]
    start = 0
    for obj, size in zip(objects, sizes, strict=True):
        groups[min(count - 1, (2 * start + size) * count // (2 * total))].append(obj)
        start += size
    return [group for group in groups if group]


def _storage(uri: str) -> Any:
    from glueflow_dagster.core.storage import open_storage

    return open_storage(uri)


def _fetch(source: Any, key: str, limit: int | None = None) -> bytes | None:
    """The object's bytes (its first ``limit`` bytes), or None when it no longer exists."""
    from glueflow_dagster.core.storage import StorageError

    try:
        with source.open_read(key) as body:
            return body.read() if limit is None else body.read(limit)
    except StorageError as err:
        if "does not exist" in str(err):
            return None
        raise


def _gunzip(data: bytes) -> tuple[bytes, str | None]:
    """(decompressed bytes, None), or (b"", cause) for gzip that does not decompress to its end (the causes
    the polars stage gives, :func:`quarantine.gzip_problem`)."""
    import gzip
    import zlib

    from isal import igzip, igzip_lib

    try:
        return igzip.decompress(data), None
    except (EOFError, gzip.BadGzipFile, zlib.error, igzip_lib.IsalError, OSError, ValueError):
        from glueflow_dagster.core.quarantine import gzip_problem

        with tempfile.NamedTemporaryFile(suffix=".gz") as tmp:
            tmp.write(data)
            tmp.flush()
            cause = gzip_problem(Path(tmp.name))
        return b"", cause or "corrupt gzip stream"


def _object_batches(source: Any, obj: Mapping[str, Any]) -> Iterator[Any]:
    """One object's non-blank lines as Arrow batches (kind, source uri, 1-based line number, text)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    uri = source.uri_for(obj["key"])
    data = _fetch(source, obj["key"])
    if data is None:
        yield _marker(VANISHED, uri, "")
        return
    if data[:2] == b"\x1f\x8b":
        data, cause = _gunzip(data)
        if cause is not None:
            yield _marker(UNREADABLE, uri, cause)
            return
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    del data
    lines = pc.list_flatten(pc.split_pattern(pa.array([text], pa.large_string()), "\n"))
    del text
    numbers = pa.array(np.arange(1, len(lines) + 1, dtype=np.int64))
    keep = pc.not_equal(pc.utf8_trim_whitespace(lines), "")
    lines, numbers = pc.filter(lines, keep), pc.filter(numbers, keep)
    sources = pa.array([uri], pa.string())
    for start in range(0, len(lines), BATCH_LINES):
        chunk = lines.slice(start, BATCH_LINES).cast(pa.string())
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(np.zeros(len(chunk), dtype=np.int8)),
                pc.take(sources, pa.array(np.zeros(len(chunk), dtype=np.int32))),
                numbers.slice(start, BATCH_LINES),
                chunk,
            ],
            names=[KIND, SOURCE, LINE, VALUE],
        )


def _marker(kind: int, uri: str, cause: str) -> Any:
    import pyarrow as pa

    return pa.RecordBatch.from_arrays(
        [pa.array([kind], pa.int8()), pa.array([uri]), pa.array([None], pa.int64()), pa.array([cause])],
        names=[KIND, SOURCE, LINE, VALUE],
    )


def read_objects(source_uri: str) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The ``mapInArrow`` function reading each task's objects (a JSON list per row of ``objects``)."""

    def read(batches: Iterator[Any]) -> Iterator[Any]:
        source = _storage(source_uri)
        for batch in batches:
            for group in batch.column("objects").to_pylist():
                for obj in json.loads(group):
                    yield from _object_batches(source, obj)

    return read


def sample_object(source_uri: str, obj: Mapping[str, Any]) -> list[tuple[str, Any]] | None:
    """The polars stage's schema sample (:func:`stage.sample_schema`) of an object's first lines, in the
    executor: its first ``SAMPLE_HEAD_BYTES`` (gunzipped as far as they go), whole lines only."""
    import zlib

    from glueflow_dagster.core.stage import sample_schema

    source = _storage(source_uri)
    head = _fetch(source, obj["key"], SAMPLE_HEAD_BYTES)
    if not head:
        return None
    whole = len(head) < SAMPLE_HEAD_BYTES
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(wbits=31).decompress(head, SAMPLE_HEAD_BYTES * 8)
        except zlib.error:
            return None
        whole = False
    if not whole:
        lines = head.split(b"\n", SAMPLE_LINES)
        head = b"\n".join(lines[:SAMPLE_LINES]) + b"\n" if len(lines) > SAMPLE_LINES else head[: head.rfind(b"\n") + 1]
    with tempfile.TemporaryDirectory(prefix="glueflow-sample-") as tmp:
        path = Path(tmp) / "head.json"
        path.write_bytes(head)
        schema = sample_schema([path])
    return None if schema is None else list(schema.items())


def part_key(part_prefix: str, partition: int, task_attempt: int, number: int, compression: str) -> str:
    """A part written by one Spark task attempt: ``<prefix>-part-r-<partition><task attempt><number>``.

    All digits, so the protocol's part names (and garbage collection) know it; the task attempt id is
    unique in the Spark application, so a retried task never reuses a name.
    """
    suffix = ".json.gz" if compression == "gzip" else ".json"
    return f"{part_prefix}-part-r-{partition:05d}{task_attempt % 10**6:06d}{number:04d}{suffix}"


class _Parts:
    """The pending parts one task attempt writes, rolled at ``target_file_bytes`` of JSON lines."""

    def __init__(self, target: Any, key: Callable[[int], str], compression: str, target_file_bytes: int) -> None:
        from glueflow_dagster.core.scratch import new_scratch_folder

        self.target = target
        self.key = key
        self.compression = compression
        self.target_file_bytes = max(1, target_file_bytes)
        self.folder = new_scratch_folder("parts")  # a killed task's folder goes with the host's next one
        self.pending: list[Any] = []
        self.records: list[int] = []
        self.file: Any = None
        self.path = Path(self.folder) / "part"
        self.bytes = 0
        self.count = 0

    def lines(self, lines: Any) -> None:
        """Write an Arrow array of lines (each ending with a newline), a new part at every
        ``target_file_bytes``: one slice per part, never a loop over records."""
        import numpy as np
        import pyarrow.compute as pc

        ends = np.cumsum(pc.binary_length(lines).to_numpy(zero_copy_only=False))
        start = 0
        while start < len(lines):
            base = ends[start - 1] if start else 0
            # The records that reach the part's target (all that are left when they do not).
            stop = int(np.searchsorted(ends, base + self.target_file_bytes - self.bytes, side="left")) + 1
            stop = min(max(stop, start + 1), len(lines))
            self.write(_joined(lines.slice(start, stop - start)), stop - start)
            start = stop

    def write(self, data: Any, records: int) -> None:
        if self.file is None:
            if self.compression == "gzip":
                from isal import igzip

                from glueflow_dagster.core.compression import DEFAULT_GZIP_LEVEL

                raw = open(self.path, "wb")  # noqa: SIM115 (closed in finish)
                self.file = igzip.IGzipFile(
                    filename="", mode="wb", compresslevel=DEFAULT_GZIP_LEVEL, mtime=0, fileobj=raw
                )
            else:
                self.file = open(self.path, "wb")  # noqa: SIM115 (closed in finish)
        self.file.write(data)
        self.bytes += len(data)
        self.count += records
        if self.bytes >= self.target_file_bytes:
            self.finish()

    def finish(self) -> None:
        if self.file is None:
            return
        inner = getattr(self.file, "fileobj", None)
        self.file.close()
        if inner is not None:
            inner.close()
        self.file = None
        self.pending.append(self.target.begin_upload(self.path, self.key(len(self.pending))))
        self.records.append(self.count)
        self.bytes = self.count = 0

    def abort(self) -> None:
        from glueflow_dagster.core.commits import abort

        if self.file is not None:
            self.file.close()
        abort(self.target, self.pending)

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def _joined(column: Any) -> Any:
    """A string column's values, concatenated (each already ends with a newline): the slice of the
    column's data buffer they span, without a copy (null values, which have no bytes, are dropped first)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(column) == 0:
        return b""
    if column.null_count:
        column = pc.drop_null(column)
    width = np.dtype(np.int64 if pa.types.is_large_string(column.type) else np.int32)
    _validity, offsets, data = column.buffers()
    ends = np.frombuffer(offsets, width, count=len(column) + 1, offset=column.offset * width.itemsize)
    return data.slice(int(ends[0]), int(ends[-1] - ends[0]))


def write_parts(
    target_uri: str, part_prefix: str, compression: str, target_file_bytes: int
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The ``mapInArrow`` function writing a task's mapped lines as pending parts; yields its descriptor."""

    def write(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        import pyarrow.compute as pc
        from pyspark import TaskContext

        context = TaskContext.get()
        partition, attempt = context.partitionId(), context.taskAttemptId()
        target = _storage(target_uri)
        parts = _Parts(
            target,
            lambda n: part_key(part_prefix, partition, attempt, n, compression),
            compression,
            target_file_bytes,
        )
        counts = dict.fromkeys(("records", "bad", "mismatched", "casts", "missing"), 0)
        entries: list[str] = []
        objects: list[list[Any]] = []
        try:
            for batch in batches:
                kinds = batch.column(KIND)
                data = pc.equal(kinds, DATA)
                if not pc.all(data).as_py():
                    marked = pc.invert(data)
                    objects += zip(
                        pc.filter(kinds, marked).to_pylist(),
                        pc.filter(batch.column(SOURCE), marked).to_pylist(),
                        pc.filter(batch.column(VALUE), marked).to_pylist(),
                        strict=True,
                    )
                counts["records"] += pc.sum(data.cast(pa.int64())).as_py() or 0
                bad = batch.column(BAD)
                counts["bad"] += pc.sum(bad.cast(pa.int64())).as_py() or 0
                counts["mismatched"] += pc.sum(batch.column(MISMATCH).cast(pa.int64())).as_py() or 0
                counts["casts"] += pc.sum(batch.column(CASTS)).as_py() or 0
                counts["missing"] += pc.sum(batch.column(MISSING).cast(pa.int64())).as_py() or 0
                if counts["bad"]:
                    entries += pc.drop_null(batch.column(ENTRY)).to_pylist()
                parts.lines(pc.drop_null(batch.column(OUT)))
            parts.finish()
        except BaseException:
            parts.abort()
            raise
        finally:
            parts.close()
        descriptor = {
            "partition": partition,
            "task_attempt": attempt,
            "pending": [
                {"key": p.key, "size": p.size, "token": p.token, "parts": [list(x) for x in p.parts], "records": n}
                for p, n in zip(parts.pending, parts.records, strict=True)
            ],
            "counts": counts,
            "entries": entries,
            "objects": objects,  # [kind, source uri, cause] of objects that vanished or did not read
        }
        yield pa.RecordBatch.from_pylist([{"descriptor": json.dumps(descriptor)}])

    return write


def abort_stray_uploads(target: Any, part_prefix: str, kept: set[str], log: Callable[[str], None]) -> int:
    """Abort this attempt's pending parts that no reported descriptor lists (tasks that failed or were
    retried); garbage collection removes any that cannot be aborted now."""
    from glueflow_dagster.core.commits import abort

    name = part_prefix.rsplit("/", 1)[-1] + "-part-r-"
    stray = [
        upload
        for upload in target.pending_uploads()
        if upload.key.rsplit("/", 1)[-1].startswith(name) and upload.token not in kept
    ]
    if not stray:
        return 0
    from glueflow_dagster.core.storage import PendingObject

    log(f"aborting {len(stray)} pending parts of failed or retried Spark tasks")
    return abort(target, [PendingObject(key=u.key, size=0, token=u.token) for u in stray], log)


def executor_env() -> dict[str, str]:
    """What a standalone cluster's executors need from the driver's environment: the package's folder on
    their PYTHONPATH and the S3 endpoint (credentials are the workers' own)."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path}
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def map_in_arrow(frame: Any, func: Callable[[Iterator[Any]], Iterator[Any]], schema: str) -> Any:
    """``frame.mapInArrow(func, schema)``; where pandas is not installed, the same plan built without
    PySpark's pandas check (Arrow batches only: the function never sees pandas)."""
    try:
        return frame.mapInArrow(func, schema)
    except ImportError:
        from pyspark.rdd import PythonEvalType
        from pyspark.sql import DataFrame
        from pyspark.sql.udf import UserDefinedFunction

        udf = UserDefinedFunction(func, returnType=schema, evalType=PythonEvalType.SQL_MAP_ARROW_ITER_UDF)
        column = udf(*[frame[name] for name in frame.columns])
        return DataFrame(frame._jdf.pythonMapInArrow(column._jc.expr(), False), frame.sparkSession)

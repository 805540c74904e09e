"""One job stage: read JSON-lines objects, apply the mapping, write JSON lines to the target location.

Plain Python/polars (no Dagster import). The whole stage is one lazy polars query on the streaming
engine, from scan to sink; S3 objects pass through local temporary files so memory stays bounded.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from glueflow_dagster.mapping import ApplyMapping, FieldMapping, cast_error_count, source_read_schema
from glueflow_dagster.storage import ObjectInfo, Storage

# Schema inference for case-insensitive name matching reads only this many lines per stage.
_SCHEMA_SAMPLE_LINES = 100


@dataclass(frozen=True)
class StageResult:
    """What one stage read and wrote: the figures a materialization records."""

    read: tuple[ObjectInfo, ...]
    written: tuple[ObjectInfo, ...]
    records_read: int
    records_written: int
    error_records: int
    cast_errors: int
    duration_s: float
    target_uri: str
    extra: dict[str, object] = field(default_factory=dict)

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


def output_object_key(name_prefix: str, part: int, compression: str) -> str:
    """Glue-style part names (`run-<id>-part-r-00000`), deterministic so a re-executed run overwrites."""
    suffix = ".json.gz" if compression == "gzip" else ".json"
    return f"{name_prefix}-part-r-{part:05d}{suffix}"


def run_stage(
    source: Storage,
    objects: Sequence[ObjectInfo],
    mappings: Sequence[FieldMapping],
    target: Storage,
    *,
    name_prefix: str,
    compression: str,
    log: Callable[[str], None] = lambda _msg: None,
) -> StageResult:
    """Map `objects` of `source` into one object under `target`; returns the figures of the stage."""
    started = time.monotonic()
    if not objects:
        log("nothing to read: no new objects")
        return StageResult((), (), 0, 0, 0, 0, time.monotonic() - started, target.uri)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="glueflow-stage-")))
        local_paths = [str(stack.enter_context(source.local_copy(obj.key))) for obj in objects]
        log(f"reading {len(objects)} objects ({sum(o.size for o in objects):,} bytes) from {source.uri}")
        observed = pl.scan_ndjson(local_paths[0], infer_schema_length=_SCHEMA_SAMPLE_LINES).collect_schema()
        scan = pl.scan_ndjson(local_paths, schema=source_read_schema(mappings, observed))
        mapped = ApplyMapping.apply(scan, mappings)
        key = output_object_key(name_prefix, 0, compression)
        local_out = workdir / Path(key).name
        sink = mapped.sink_ndjson(
            local_out, compression="gzip" if compression == "gzip" else "uncompressed", lazy=True
        )
        counts = scan.select(pl.len().alias("records"), cast_error_count(scan, mappings).sum().alias("casts"))
        _, totals = pl.collect_all([sink, counts], engine="streaming")
        records = int(totals["records"][0])
        written = target.upload_file(local_out, key)
        log(f"wrote {records:,} records ({written.size:,} bytes) to {target.uri_for(key)}")
        return StageResult(
            read=tuple(objects),
            written=(written,),
            records_read=records,
            records_written=records,
            error_records=0,
            cast_errors=int(totals["casts"][0] or 0),
            duration_s=time.monotonic() - started,
            target_uri=target.uri,
        )

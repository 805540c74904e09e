"""The stage benchmark's events: nested JSON-lines records, the mapping every engine runs, its DuckDB form.

The records are ``glueflow_dagster.core.sample_data.events_frame``'s; ``MAPPINGS`` is the Input job's
ApplyMapping over them (renames, nested fields, string -> double, string -> timestamp) and ``SELECT`` the
same casts in DuckDB's SQL. ``benchmarks.stage``, ``benchmarks.small_files`` and ``benchmarks.spark_scaling``
share them.
"""

from __future__ import annotations

import math
from pathlib import Path

MB = 1_000_000
OBJECT_MB = 128  # default size of one generated input object
MAPPINGS = [
    ["id", "long", "event_id", "long"],  # rename
    ["type", "string", "event_type", "string"],  # rename
    ["ts", "string", "event_time", "timestamp"],  # string -> timestamp
    ["user.id", "long", "user_id", "long"],  # nested source
    ["user.country", "string", "user.country", "string"],  # nested source -> nested target
    ["amount", "string", "amount", "double"],  # string -> double
    ["device.os", "string", "device_os", "string"],  # nested source, renamed
]
SELECT = """
    TRY_CAST(id AS BIGINT) AS event_id,
    CAST(type AS VARCHAR) AS event_type,
    TRY_CAST(ts AS TIMESTAMP) AS event_time,
    TRY_CAST("user".id AS BIGINT) AS user_id,
    {'country': CAST("user".country AS VARCHAR)} AS "user",
    TRY_CAST(amount AS DOUBLE) AS amount,
    CAST(device.os AS VARCHAR) AS device_os
"""
DUCKDB_COLUMNS = (
    "{id: 'VARCHAR', type: 'VARCHAR', ts: 'VARCHAR', \"user\": 'STRUCT(id VARCHAR, country VARCHAR)', "
    "device: 'STRUCT(os VARCHAR)', amount: 'VARCHAR'}"
)


def generate(folder: Path, size_mb: int, object_mb: int = OBJECT_MB) -> tuple[int, int, int]:
    """JSON-lines objects of about ``object_mb`` MB each, totalling at least ``size_mb`` MB; (bytes, files, rows)."""
    from glueflow_dagster.core.sample_data import events_frame, write_events_file

    sample = events_frame(20_000).collect().write_ndjson().encode()
    per_event = len(sample) / 20_000
    total_events = math.ceil(size_mb * MB / per_event * 1.005)
    files = max(1, math.ceil(size_mb / object_mb))
    per_file = math.ceil(total_events / files)
    for index in range(files):
        write_events_file(folder / f"events-{index:04d}.json", per_file, first_id=index * per_file, seed=index)
    size = sum(p.stat().st_size for p in folder.glob("*.json"))
    return size, files, per_file * files

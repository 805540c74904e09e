"""How many passes the Spark stage makes over its input (issue #25, item 3: one pass wherever the sample
allows it), and the writer's joining of mapped lines.

Every action of the stage script is a Spark job, counted in the figures it reports (``spark_jobs``): on
input whose types and spellings the sample shows, a stage is the executors' sample and one pass that
reads, maps and writes; a type that changes past the sample or a spelling first seen past it costs the
extra jobs that find it and a second pass, as in the polars stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from glueflow_dagster.core.storage import LocalStorage
from glueflow_dagster.spark.tasks import _joined

MAPPINGS = [
    ["id", "long", "event_id", "long"],
    ["user.name", "string", "user_name", "string"],
    ["ts", "string", "event_time", "timestamp"],
]


def _stage(spark: Any, folder: Path, objects: dict[str, list[str]]) -> dict[str, Any]:
    from glueflow_dagster.spark.stage_script import run

    source = folder / "in"
    source.mkdir(parents=True)
    for name, lines in objects.items():
        (source / name).write_text("".join(line + "\n" for line in lines))
    manifest = [
        {"key": o.key, "size": o.size, "last_modified_ms": o.last_modified_ms}
        for o in LocalStorage(source).list(recurse=True)
    ]
    extras = {
        "manifest": manifest,
        "mappings": MAPPINGS,
        "source": str(source),
        "target": str(folder / "out"),
        "compression": "none",
        "part_prefix": "run-j-attempt-1",
        "quarantine_prefix": "_errors/j",
        "max_error_records": 100,
        "target_file_bytes": 128 * 1024 * 1024,
        "master": "local[1]",
    }
    return run(extras, lambda _message: None)


def _records(first: int, count: int, name: str = "name", ts: str = "2026-11-23 00:00:00") -> list[str]:
    return [json.dumps({"id": i, "user": {name: f"u{i}"}, "ts": ts, "other": [i]}) for i in range(first, first + count)]


@pytest.mark.spark
def test_input_the_sample_describes_is_read_mapped_and_written_in_one_pass(spark_session: Any, tmp_path: Path) -> None:
    figures = _stage(spark_session, tmp_path, {"a.json": _records(0, 150), "b.json": _records(150, 150)})
    assert figures["records_written"] == 300 and figures["error_records"] == 0
    assert figures["spark_jobs"] == 2  # the executors' sample, then the one pass (read, map, write)


@pytest.mark.spark
def test_cast_errors_alone_cost_no_spelling_scan(spark_session: Any, tmp_path: Path) -> None:
    """A value that does not cast comes out null, but its source is there: no spelling can hide behind it
    (the polars stage scans for spellings only for the other nulls). It scanned every line again."""
    objects = {"a.json": _records(0, 150), "b.json": _records(150, 20, ts="not a time")}
    figures = _stage(spark_session, tmp_path, objects)
    assert figures["records_written"] == 170 and figures["cast_errors"] == 20
    assert figures["spark_jobs"] == 2


@pytest.mark.spark
def test_a_type_or_a_spelling_past_the_sample_costs_a_second_pass(spark_session: Any, tmp_path: Path) -> None:
    late_type = _records(0, 150) + [json.dumps({"id": "not a number", "user": {"name": "late"}, "ts": "2026-11-23"})]
    figures = _stage(spark_session, tmp_path / "type", {"a.json": late_type})
    assert figures["records_written"] == 151
    # The sample, the pass, the check of which fields differ (an aggregate: two jobs), the second pass.
    assert figures["spark_jobs"] == 5

    late_spelling = _records(0, 150) + _records(150, 10, name="NAME")
    figures = _stage(spark_session, tmp_path / "spelling", {"a.json": late_spelling})
    assert figures["records_written"] == 160
    assert figures["spark_jobs"] >= 4  # sample, pass, the spelling scan (and its sample), the second pass


@pytest.mark.parametrize("large", [False, True])
def test_the_writer_joins_mapped_lines_from_the_column_buffer(large: bool) -> None:
    kind = pa.large_string() if large else pa.string()
    column = pa.array(["a\n", None, "bcd\n", "", "éf\n", None], kind)
    assert bytes(_joined(column)) == "a\nbcd\néf\n".encode()
    assert bytes(_joined(column.slice(2, 3))) == "bcd\néf\n".encode()  # an offset into the buffers
    assert bytes(_joined(column.slice(1, 1))) == b"" and bytes(_joined(column.slice(0, 0))) == b""

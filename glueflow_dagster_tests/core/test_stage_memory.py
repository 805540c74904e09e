"""The stage's peak memory does not grow with its input (issue 23 item 6): polars' settings for its queries.

``stage.plan.polars_settings`` puts two polars settings in the environment while a stage runs: the CSV
reader's chunk (512 KiB, not 32 MiB: a parsed chunk's text columns keep the whole chunk alive, and with
32 MiB chunks the peak grew by about 37 MB per CSV object of a group) and, for JSON-lines writers, the
sink's morsel rows. These tests keep both: the peak of a real CSV stage in a child process, and what each
query of a stage runs with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from glueflow_dagster.core.formats.options import CsvOptions, DataFormat
from glueflow_dagster.core.stage import plan as plan_module
from glueflow_dagster.core.stage import run_stage
from glueflow_dagster.core.stage.plan import CSV_CHUNK_BYTES, polars_settings
from glueflow_dagster.core.stage.write import JsonLinesWriter
from glueflow_dagster.core.storage import LocalStorage

CHUNK, ROWS = "POLARS_CSV_CHUNK_SIZE", "POLARS_IDEAL_SINK_MORSEL_SIZE_ROWS"
MAPPINGS = [
    ["id", "string", "id", "long"],
    ["name", "string", "name", "string"],
    ["ts", "string", "ts", "timestamp"],
    ["amount", "string", "amount", "double"],
]

# The stage in a child process, its peak measured by VmHWM (ru_maxrss is carried over fork and exec on
# Linux: a child of a large pytest worker would report the worker's peak).
_CHILD = """
import json, sys
from pathlib import Path
from glueflow_dagster.core.formats.options import CsvOptions, DataFormat
from glueflow_dagster.core.stage import run_stage
from glueflow_dagster.core.storage import LocalStorage

def hwm():
    status = Path("/proc/self/status").read_text()
    return int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]) * 1024

source, target = LocalStorage(Path(sys.argv[1])), LocalStorage(Path(sys.argv[2]))
baseline = hwm()
result = run_stage(
    source, list(source.list()), json.loads(sys.argv[3]), target, name_prefix="run", compression="none",
    read_format=DataFormat("csv", CsvOptions(with_header=True)),
)
print(hwm() - baseline, result.records_written)
"""


def _csv_objects(folder: Path, count: int, rows: int) -> None:
    """``count`` CSV objects of ``rows`` rows each (about 92 bytes a row), ids running on."""
    folder.mkdir(parents=True)
    frame = pl.select(id=pl.int_range(rows)).with_columns(
        name=pl.format("name-{}-{}", pl.col("id") % 977, pl.col("id")),
        ts=(pl.datetime(2026, 1, 1) + pl.duration(seconds=pl.col("id"))).dt.strftime("%Y-%m-%d %H:%M:%S"),
        amount=(pl.col("id") % 10_000 / 100).cast(pl.String),
        note=pl.format("some other text {} that is not mapped", pl.col("id") * 7),
    )
    for index in range(count):
        frame.with_columns(pl.col("id") + index * rows).write_csv(folder / f"part-{index}.csv")


def _peak(source: Path, out: Path) -> tuple[int, int]:
    out.mkdir()
    args = [str(source), str(out), json.dumps(MAPPINGS)]
    child = [sys.executable, "-c", _CHILD, *args]
    done = subprocess.run(child, capture_output=True, text=True, timeout=300, check=True)
    peak, records = done.stdout.split()
    return int(peak), int(records)


def test_a_csv_groups_peak_memory_does_not_grow_with_its_objects(tmp_path: Path) -> None:
    # Before (32 MiB chunks): 1 object of 23 MB +123 MB over the baseline, 2 objects +159, 4 objects +235;
    # after: +80, +84, +100.
    rows = 250_000
    _csv_objects(tmp_path / "one", 1, rows)
    _csv_objects(tmp_path / "four", 4, rows)
    one, one_records = _peak(tmp_path / "one", tmp_path / "out-one")
    four, four_records = _peak(tmp_path / "four", tmp_path / "out-four")
    assert (one_records, four_records) == (rows, 4 * rows)
    assert four - one < 50_000_000, f"4 objects peaked {(four - one) / 1e6:.0f} MB over 1 object's {one / 1e6:.0f} MB"


def _recorded_settings(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str | None]]:
    """What each query of a stage sees in the environment (plan._query_once wrapped)."""
    seen: list[dict[str, str | None]] = []
    inner = plan_module._query_once

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append({name: os.environ.get(name) for name in (CHUNK, ROWS)})
        return inner(*args, **kwargs)

    monkeypatch.setattr(plan_module, "_query_once", recording)
    return seen


@pytest.mark.parametrize(("out", "rows"), [("json", str(JsonLinesWriter.sink_morsel_rows)), ("parquet", None)])
def test_each_query_of_a_stage_runs_with_the_memory_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str, rows: str | None
) -> None:
    """The CSV chunk for every stage; the sink's morsel rows only for text writers: a Parquet writer's row
    groups follow the morsels, so its output would change. Nothing is left in the environment after."""
    monkeypatch.delenv(CHUNK, raising=False)
    monkeypatch.delenv(ROWS, raising=False)
    seen = _recorded_settings(monkeypatch)
    _csv_objects(tmp_path / "in", 2, 1_000)
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    result = run_stage(
        source, list(source.list()), MAPPINGS, target, name_prefix="run", compression="none",
        read_format=DataFormat("csv", CsvOptions(with_header=True)), write_format=DataFormat(out),
    )  # fmt: skip
    assert result.records_written == 2_000
    assert seen and all(s == {CHUNK: str(CSV_CHUNK_BYTES), ROWS: rows} for s in seen), seen
    assert CHUNK not in os.environ and ROWS not in os.environ


def test_a_setting_the_process_made_wins_and_stages_share_theirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHUNK, "4096")
    monkeypatch.delenv(ROWS, raising=False)
    writer = JsonLinesWriter("gzip", 2)
    with polars_settings(writer):
        assert (os.environ[CHUNK], os.environ[ROWS]) == ("4096", str(writer.sink_morsel_rows))
        with polars_settings(writer):  # a second stage of the process (another thread)
            pass
        assert os.environ[ROWS] == str(writer.sink_morsel_rows)  # still running: the first keeps it
    assert os.environ[CHUNK] == "4096" and ROWS not in os.environ

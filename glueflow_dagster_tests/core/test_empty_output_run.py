"""An Output run that reads nothing (a UI "Materialize" after the sensor's run) leaves the bookmark as it was.

Issue 18: with bookmarks enabled such a run recorded a new bookmark version although it read nothing,
so the version moved with every click. It still commits its (empty) output; it records no bookmark.
"""

from __future__ import annotations

from glueflow_dagster.core.bookmarks import ACTION_KEY, VERSION_KEY
from glueflow_dagster.core.config import FlowConfig
from glueflow_dagster_tests.conftest import raw_records
from glueflow_dagster_tests.core.test_job_runs import (  # the in-memory commit log and the runs over it
    MemoryCommitLog,
    OutputLog,
    _input,
    _output,
    _stores,
    flow,  # noqa: F401 (the fixture)
)


def _version(log: MemoryCommitLog) -> tuple[int, str | None]:
    committed = OutputLog(log).committed_bookmark("bookmark_ctx")
    return committed.bookmark.version, committed.run_id


def test_an_output_run_that_reads_nothing_does_not_move_the_bookmark(flow: FlowConfig) -> None:  # noqa: F811
    raw, _, _ = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 20))
    _input(flow, log, "in-1")
    first = _output(flow, log, "out-1")
    assert first["records_read"] == 20 and first[VERSION_KEY] == 1
    assert _version(log) == (1, "out-1")

    for run_id in ("ui-1", "ui-2"):  # clicked twice: nothing new in staging
        empty = _output(flow, log, run_id)
        assert empty["records_read"] == 0 and empty["bytes_read"] == 0
        assert ACTION_KEY not in empty and VERSION_KEY not in empty  # no bookmark recorded
        assert _version(log) == (1, "out-1")

    raw.write_bytes("b.json", raw_records(20, 10))
    _input(flow, log, "in-2")
    second = _output(flow, log, "out-2")
    assert second["records_read"] == 10  # the bookmark still skips a.json's parts
    assert second[VERSION_KEY] == 2 and _version(log) == (2, "out-2")

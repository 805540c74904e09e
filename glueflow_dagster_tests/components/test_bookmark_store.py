"""Bookmarks through the real definitions: frozen manifests, commit on success, retries, conflicts, pause."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, Definitions, build_sensor_context

from glueflow_dagster.components.bookmark_store import committed_bookmark
from glueflow_dagster.components.jobs import INPUT_RUN_TAG, MANIFEST_TAG, output_key
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.components.sensors import SensorCursor
from glueflow_dagster.core.plan import frozen_manifest
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.conftest import raw_records, write_flow_file

OP = "events__output"


class Flow:
    """One flow with `bookmark: enable` and the moves a test makes on it."""

    def __init__(self, root: Path, instance: DagsterInstance, **options: Any) -> None:
        self.root, self.instance = root, instance
        self.path = write_flow_file(root, bookmark=options.pop("bookmark", "enable"))
        self.defs: Definitions = load_definitions(self.path)
        self.raw = StorageResource().open(str(root / "data" / "input"))
        self.cursor: str | None = None
        self.batches = 0

    def input_run(self, records: int = 10) -> str:
        self.raw.write_bytes(f"batch={self.batches}/a.json", raw_records(self.batches * 1000, records))
        self.batches += 1
        result = self.defs.resolve_job_def("events_input_job").execute_in_process(instance=self.instance)
        assert result.success
        return result.run_id

    def tick(self):
        with build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=self.defs, resources=self.defs.resources
        ) as context:
            result = self.defs.resolve_sensor_def("events_output_sensor").evaluate_tick(context)
        self.cursor = result.cursor or self.cursor
        return result

    def output_run(self, request=None, run_config: dict | None = None, tags: dict | None = None):
        config = request.run_config if request is not None else (run_config or {})
        run_tags = request.tags if request is not None else (tags or {})
        return self.defs.resolve_job_def("events_output_job").execute_in_process(
            instance=self.instance, run_config=config, tags=run_tags, raise_on_error=False
        )

    def output_metadata(self, run_id: str) -> dict[str, Any]:
        return run_materialization_metadata(self.instance, run_id, output_key("events"))

    def output_objects(self) -> list[str]:
        output = StorageResource().open(str(self.root / "data" / "output"))
        return sorted(o.key for o in output.list() if not o.key.startswith("_glueflow/"))

    def break_output(self) -> Path:
        """Put a file where the output folder goes, so the next Output run fails while writing."""
        folder = self.root / "data" / "output"
        if folder.exists():
            folder.rename(folder.with_name("output.moved"))
        folder.write_text("not a folder")
        return folder

    def mend_output(self) -> None:
        folder = self.root / "data" / "output"
        folder.unlink()
        if folder.with_name("output.moved").exists():
            folder.with_name("output.moved").rename(folder)


@pytest.fixture
def flow(tmp_path: Path, instance: DagsterInstance) -> Flow:
    return Flow(tmp_path / "project", instance)


def test_each_output_run_reads_a_frozen_manifest_of_new_objects_and_commits_on_success(flow: Flow) -> None:
    ratios = []
    for _ in range(3):
        input_run = flow.input_run()
        [request] = flow.tick().run_requests
        manifest = frozen_manifest(request.run_config["ops"][OP]["config"])
        assert [m.key for m in manifest] == [f"run-{input_run}-attempt-1-part-r-00000.json.gz"]
        assert request.tags[MANIFEST_TAG] == request.run_config["ops"][OP]["config"]["manifest_id"]
        result = flow.output_run(request)
        assert result.success
        metadata = flow.output_metadata(result.run_id)
        assert metadata["files_read"] == 1 and metadata["new_files"] == 1
        assert metadata["manifest"] == [[m.key, m.size, m.last_modified_ms, m.etag] for m in manifest]
        ratios.append(metadata["flow_ratio"])
    assert ratios == [pytest.approx(1.0)] * 3
    committed = committed_bookmark(flow.instance, "events", "bookmark_ctx")
    assert (committed.bookmark.version, committed.bookmark.run_number) == (3, 3)
    # The sensor's cursor carries the committed bookmark it planned from.
    flow.tick()
    assert SensorCursor.from_json(flow.cursor).bookmark.bookmark.version == 3


def test_a_failed_runs_manifest_is_requested_again_and_nothing_is_lost_or_duplicated(flow: Flow) -> None:
    flow.input_run(records=25)
    [request] = flow.tick().run_requests
    flow.break_output()
    failed = flow.output_run(request)
    assert not failed.success
    assert committed_bookmark(flow.instance, "events", "bookmark_ctx").bookmark.version == 0
    flow.mend_output()

    [retry] = flow.tick().run_requests
    assert retry.run_config == request.run_config  # the same frozen manifest
    assert retry.tags[MANIFEST_TAG] == request.tags[MANIFEST_TAG] and retry.run_key != request.run_key
    retried = flow.output_run(retry)
    assert retried.success
    assert flow.tick().run_requests == []  # committed: nothing left to follow
    [key] = flow.output_objects()
    assert key.startswith(f"run-{retried.run_id}-attempt-1-part-r-")  # the retry's own names
    text = (flow.root / "data" / "output" / key).read_text()
    assert len(text.splitlines()) == 25


def test_run_launched_by_hand_plans_from_the_committed_bookmark_and_commits(flow: Flow) -> None:
    flow.input_run()
    first = flow.output_run()
    assert first.success and flow.output_metadata(first.run_id)["files_read"] == 1
    second = flow.output_run()
    assert flow.output_metadata(second.run_id)["files_read"] == 0  # already read by the first
    # A run that read nothing leaves the bookmark where the first left it (issue 18): version 1, the first's.
    committed = committed_bookmark(flow.instance, "events", "bookmark_ctx")
    assert (committed.bookmark.version, committed.run_id) == (1, first.run_id)
    # The sensor plans from the same committed state: the staging object is not read a second time.
    input_run = flow.input_run()
    [request] = flow.tick().run_requests
    keys = [m.key for m in frozen_manifest(request.run_config["ops"][OP]["config"])]
    assert keys == [f"run-{input_run}-attempt-1-part-r-00000.json.gz"]


def test_a_stale_manifest_fails_clearly_and_commits_nothing(flow: Flow) -> None:
    flow.input_run()
    [request] = flow.tick().run_requests
    assert flow.output_run().success  # a hand-launched run commits first: version 1
    loser = flow.output_run(request)  # planned from version 0
    assert not loser.success
    failure = loser.get_run_failure_event().event_specific_data.error.message
    assert "bookmark conflict for context 'bookmark_ctx'" in failure and "version 0" in failure
    assert committed_bookmark(flow.instance, "events", "bookmark_ctx").bookmark.version == 1
    assert len(flow.output_objects()) == 1


def test_renamed_transformation_ctx_starts_fresh_and_says_so(flow: Flow) -> None:
    flow.input_run()
    assert flow.output_run().success
    config = {"ops": {OP: {"config": {"transformation_ctx": "renamed_ctx"}}}}
    renamed = flow.output_run(run_config=config)
    metadata = flow.output_metadata(renamed.run_id)
    assert metadata["bookmark_started_fresh"] is True
    assert metadata["files_read"] == 1  # the new context has read nothing yet
    assert committed_bookmark(flow.instance, "events", "renamed_ctx").bookmark.version == 1
    assert committed_bookmark(flow.instance, "events", "bookmark_ctx").bookmark.version == 1


def test_pause_reads_what_is_new_and_does_not_advance(flow: Flow) -> None:
    flow.input_run()
    pause = {"ops": {OP: {"config": {"bookmark": "pause"}}}}
    reads = [flow.output_metadata(flow.output_run(run_config=pause).run_id)["files_read"] for _ in range(2)]
    assert reads == [1, 1]
    assert committed_bookmark(flow.instance, "events", "bookmark_ctx").bookmark.version == 0


def test_pause_with_from_and_to_reads_exactly_the_range(flow: Flow) -> None:
    runs = []
    for _ in range(3):
        flow.input_run()
        result = flow.output_run()
        runs.append(result.run_id)
    config = {"ops": {OP: {"config": {"bookmark": "pause", "from_run": runs[0], "to_run": runs[2]}}}}
    ranged = flow.output_run(run_config=config)
    assert ranged.success
    assert flow.output_metadata(ranged.run_id)["files_read"] == 2  # what runs 2 and 3 read
    bad = flow.output_run(run_config={"ops": {OP: {"config": {"bookmark": "pause", "from_run": runs[0]}}}})
    assert not bad.success
    assert "needs both from_run and to_run" in bad.get_run_failure_event().event_specific_data.error.message


def test_disable_in_run_config_rereads_everything_without_committing(flow: Flow) -> None:
    flow.input_run()
    assert flow.output_run().success
    flow.input_run()
    disabled = flow.output_run(run_config={"ops": {OP: {"config": {"bookmark": "disable"}}}})
    assert flow.output_metadata(disabled.run_id)["files_read"] == 2
    assert committed_bookmark(flow.instance, "events", "bookmark_ctx").bookmark.version == 1


def test_bad_bookmark_option_in_run_config_fails_with_one_line(flow: Flow) -> None:
    result = flow.output_run(run_config={"ops": {OP: {"config": {"bookmark": "sometimes"}}}})
    assert not result.success
    message = result.get_run_failure_event().event_specific_data.error.message
    assert "expected one of enable, disable, pause, got 'sometimes'" in message


def test_input_run_tag_is_kept_for_the_flow_ratio(flow: Flow) -> None:
    input_run = flow.input_run()
    [request] = flow.tick().run_requests
    assert request.tags[INPUT_RUN_TAG] == input_run
    result = flow.output_run(request)
    assert flow.output_metadata(result.run_id)["input_run_id"] == input_run


KILLABLE_OUTPUT_RUN = """
import sys
from dagster import DagsterInstance
from glueflow_dagster.definitions import load_definitions
defs = load_definitions(sys.argv[1])
with DagsterInstance.get() as instance:
    defs.resolve_job_def("events_output_job").execute_in_process(
        instance=instance, tags={"glueflow/input_run_id": sys.argv[2]}
    )
"""


def test_sigkill_mid_write_then_retry_loses_and_duplicates_nothing(flow: Flow) -> None:
    import os
    import signal
    import time

    from dagster import DagsterRunStatus, RunsFilter

    records = 600_000  # enough that the Output stage's scan -> map -> sink takes a second or more
    input_run = flow.input_run(records=records)
    before = {r.dagster_run.run_id for r in flow.instance.get_run_records()}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_OUTPUT_RUN, str(flow.path), input_run],
        env={**os.environ, "DAGSTER_HOME": flow.instance.root_directory},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run_id is None:
            for record in flow.instance.get_run_records(RunsFilter(job_name="events_output_job")):
                if record.dagster_run.run_id not in before:
                    # The stage logs "reading ..." right before its streaming scan -> map -> sink query.
                    logs = flow.instance.all_logs(record.dagster_run.run_id)
                    inside = any("reading 1 objects" in (entry.user_message or "") for entry in logs)
                    run_id = record.dagster_run.run_id if inside else None
            time.sleep(0.01)
        assert run_id is not None, "the Output run never reached its stage"
        time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    killed = flow.instance.get_run_by_id(run_id)
    assert killed.status == DagsterRunStatus.STARTED  # the process died without a word
    assert committed_bookmark(flow.instance, "events", "bookmark_ctx").bookmark.version == 0
    # What Dagster's run monitoring (or an operator) does with a run whose worker is gone: mark it failed
    # and (run_monitoring's free_slots_after_run_end_seconds) free the pool slot its step still held.
    assert flow.instance.event_log_storage.get_concurrency_info("glueflow/events_output_job").claimed_slots
    flow.instance.report_run_failed(killed)
    flow.instance.event_log_storage.free_concurrency_slots_for_run(killed.run_id)

    retry = flow.output_run(tags={INPUT_RUN_TAG: input_run})
    assert retry.success
    metadata = flow.output_metadata(retry.run_id)
    assert metadata["records_read"] == metadata["records_written"] == records
    rows = []
    for key in flow.output_objects():
        rows += (flow.root / "data" / "output" / key).read_text().splitlines()
    event_ids = sorted(int(line.split('"event_id":')[1].split(",")[0]) for line in rows)
    assert event_ids == list(range(records))  # each record exactly once

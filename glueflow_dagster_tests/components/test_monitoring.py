"""Per-run flow figures and the asset checks on `F/output`, each tripped by a run built to trip it."""

from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, FloatMetadataValue, IntMetadataValue

from glueflow_dagster.components.bookmark_admin import run_admin_action
from glueflow_dagster.components.bookmark_store import committed_bookmark
from glueflow_dagster.components.jobs import output_key, staging_key
from glueflow_dagster.components.monitoring import FLOW_RATIO_NOTE_KEY, run_materialization_metadata
from glueflow_dagster.components.report import build_flow_report
from glueflow_dagster.core.config import load_config
from glueflow_dagster.core.storage import LocalStorage
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.components.test_bookmark_store import Flow


def checks_of(result) -> dict[str, tuple[bool, str]]:
    return {e.check_name: (e.passed, e.severity.value) for e in result.get_asset_check_evaluations()}


def with_output_options(flow: Flow, **options) -> None:
    document = yaml.safe_load(flow.path.read_text())
    document["flows"]["events"]["output_job"].update(options)
    flow.path.write_text(yaml.safe_dump(document))
    flow.defs = load_definitions(flow.path)


@pytest.fixture
def flow(tmp_path: Path, instance: DagsterInstance) -> Flow:
    return Flow(tmp_path / "project", instance)


def test_output_metadata_carries_the_guides_figures_as_plottable_numbers(flow: Flow) -> None:
    first_input = flow.input_run()
    [request] = flow.tick().run_requests
    result = flow.output_run(request)
    [materialization] = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "output"]
    metadata = materialization.materialization.metadata
    for key in ("new_bytes", "reprocessed_bytes", "backlog_bytes", "backlog_files", "bytes_read"):
        assert isinstance(metadata[key], IntMetadataValue), key
    for key in ("flow_ratio", "oldest_unprocessed_age_s", "lag_s"):
        assert isinstance(metadata[key], FloatMetadataValue), key
    assert metadata["new_bytes"].value == metadata["bytes_read"].value > 0
    assert metadata["reprocessed_bytes"].value == 0
    assert metadata["backlog_bytes"].value == metadata["backlog_files"].value == 0
    assert metadata["lag_s"].value >= 0
    assert metadata["bytes_read_by_input_run"].value == {first_input: metadata["bytes_read"].value}
    assert all(passed for passed, _ in checks_of(result).values())
    assert checks_of(result)["no_records_lost"] == (True, "ERROR")


def test_flow_ratio_check_trips_when_staging_is_reread(flow: Flow) -> None:
    with_output_options(flow, bookmark="disable")
    verdicts = []
    for _ in range(3):
        flow.input_run()
        [request] = flow.tick().run_requests
        verdicts.append(checks_of(flow.output_run(request))["flow_ratio_in_band"])
    assert verdicts == [(True, "WARN"), (True, "WARN"), (False, "WARN")]  # ratios 1, 2, 3 vs [0.5, 2.0]


def test_reprocessing_check_trips_after_a_reset_with_bookmarks_enabled(flow: Flow) -> None:
    flow.input_run()
    assert checks_of(flow.output_run())["no_reprocessing"] == (True, "WARN")
    config = load_config(flow.path).flows["events"]
    run_admin_action(flow.instance, config, LocalStorage(flow.root / "data" / "staging"), "reset")
    reread = flow.output_run()
    assert flow.output_metadata(reread.run_id)["reprocessed_bytes"] > 0
    assert checks_of(reread)["no_reprocessing"] == (False, "WARN")


def test_backlog_check_trips_when_the_output_job_falls_behind(flow: Flow) -> None:
    with_output_options(flow, max_files_per_run=1)
    backlogs, verdicts = [], []
    for _ in range(3):
        flow.input_run()
        flow.input_run()  # two Input runs per Output run: one object a run cannot keep up
        result = flow.output_run()
        backlogs.append(flow.output_metadata(result.run_id)["backlog_files"])
        verdicts.append(checks_of(result)["backlog_not_growing"])
    assert backlogs == [1, 2, 3]
    assert verdicts[-1] == (False, "WARN") and verdicts[0][0]
    metadata = flow.output_metadata(result.run_id)
    assert metadata["skipped_files"] == 3 and metadata["oldest_unprocessed_age_s"] > 0


def test_a_ui_materialize_reading_nothing_in_an_empty_window_shows_n_a_and_leaves_the_bookmark(flow: Flow) -> None:
    """Issue 18: an empty scheduled Input run, then a UI "Materialize" of F/output with bookmarks enabled that
    reads nothing. Nothing written and nothing read: no ratio (n/a, not 1.00) in the run's metadata, the
    report's table and its JSON; and the bookmark's version does not move."""
    flow.input_run()
    [request] = flow.tick().run_requests
    sensed = flow.output_run(request)
    assert flow.output_metadata(sensed.run_id)["flow_ratio"] == pytest.approx(1.0)
    before = committed_bookmark(flow.instance, "events", "bookmark_ctx")
    assert before.run_id == sensed.run_id

    empty_input = flow.defs.resolve_job_def("events_input_job").execute_in_process(instance=flow.instance)
    assert run_materialization_metadata(flow.instance, empty_input.run_id, staging_key("events"))["bytes_written"] == 0
    ui_run = flow.defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=flow.instance, asset_selection=[output_key("events")]
    )
    assert ui_run.success
    metadata = flow.output_metadata(ui_run.run_id)
    assert metadata["bytes_read"] == 0 and metadata["input_run_id"] == empty_input.run_id
    assert "flow_ratio" not in metadata  # no point on the flow_ratio plot
    note = "n/a: in this Input window 0 bytes were written and 0 read, nothing to compare"
    assert metadata[FLOW_RATIO_NOTE_KEY] == note
    assert checks_of(ui_run)["flow_ratio_in_band"] == (True, "WARN")

    after = committed_bookmark(flow.instance, "events", "bookmark_ctx")
    assert (after.bookmark.version, after.run_id) == (before.bookmark.version, sensed.run_id)

    report = build_flow_report(flow.instance, "events", None)
    assert report.markdown.splitlines()[-2].endswith("| 0 | 0 | n/a |")  # the empty window, above the totals
    assert [window["ratio"] for window in report.json["windows"]] == [pytest.approx(1.0), None]

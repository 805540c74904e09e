"""Per-run flow figures and the asset checks on `F/output`, each tripped by a run built to trip it."""

from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, FloatMetadataValue, IntMetadataValue

from glueflow_dagster.components.bookmark_admin import run_admin_action
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

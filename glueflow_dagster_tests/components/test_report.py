"""F/flow_report and `glueflow report` over the history read from a real instance."""

import io
import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, MarkdownMetadataValue, PathMetadataValue
from matplotlib import image as mpimg

from glueflow_dagster.cli.report import report_command
from glueflow_dagster.components.jobs import INPUT_RUN_TAG, flow_report_key, output_key, staging_key
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.components.report import (
    build_flow_report,
    default_png_path,
    history_from_instance,
    report_metadata,
)
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core.chart import flow_table_json, flow_table_markdown
from glueflow_dagster.core.flow_accounting import flow_slots, windows
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.conftest import raw_records

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _cycle(defs: Definitions, instance: DagsterInstance, raw, cycle: int, records: int) -> tuple[str, str]:
    raw.write_bytes(f"batch={cycle}/a.json", raw_records(cycle * 1000, records))
    input_run = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance)
    assert input_run.success
    output_run = defs.resolve_job_def("events_output_job").execute_in_process(
        instance=instance, tags={INPUT_RUN_TAG: input_run.run_id}
    )
    assert output_run.success
    return input_run.run_id, output_run.run_id


def test_history_from_instance_reads_the_successful_runs_and_their_bytes(
    flow_file: Path, instance: DagsterInstance, tmp_path: Path
) -> None:
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    runs = [_cycle(defs, instance, raw, cycle, records) for cycle, records in enumerate((40, 60))]

    input_runs, output_runs = history_from_instance(instance, "events")
    assert [r.run_id for r in input_runs] == [input_id for input_id, _ in runs]
    assert [r.run_id for r in output_runs] == [output_id for _, output_id in runs]
    for (input_id, output_id), input_run, output_run in zip(runs, input_runs, output_runs, strict=True):
        staging = run_materialization_metadata(instance, input_id, staging_key("events"))
        output = run_materialization_metadata(instance, output_id, output_key("events"))
        assert input_run.bytes_written == staging["bytes_written"] > 0
        assert output_run.bytes_read == output["bytes_read"] > 0
        assert 0 < input_run.start_s <= input_run.end_s <= output_run.start_s <= output_run.end_s
    assert input_runs[0].end_s <= input_runs[1].start_s
    # Each Output run lists the bytes it read per producing Input run (staging object names).
    first, second = (r.run_id for r in input_runs)
    assert output_runs[0].bytes_read_by_input_run == {first: input_runs[0].bytes_written}
    assert output_runs[1].bytes_read_by_input_run == {
        first: input_runs[0].bytes_written,
        second: input_runs[1].bytes_written,
    }

    # bookmark: disable -> the second Output run rereads the first Input run's objects too.
    window_list = windows(input_runs, output_runs, period_s=None)
    assert [w.input_run_id for w in window_list] == [r.run_id for r in input_runs]
    assert window_list[0].ratio == pytest.approx(1.0)
    assert window_list[1].output_bytes_read == input_runs[0].bytes_written + input_runs[1].bytes_written
    assert window_list[1].ratio > 1.5

    report = build_flow_report(instance, "events", tmp_path / "report.png")
    assert report.windows == window_list
    assert report.png_path == tmp_path / "report.png" and mpimg.imread(report.png_path).shape[:2] == (
        770,
        1210,
    )
    metadata = report_metadata(report)
    assert isinstance(metadata["png_path"], PathMetadataValue)
    assert metadata["png_path"].value == str(tmp_path / "report.png")
    assert isinstance(metadata["windows"], MarkdownMetadataValue)
    assert metadata["windows"].value == flow_table_markdown(
        flow_slots(input_runs, output_runs, period_s=None), ratio_second=True
    )
    assert metadata["window_count"] == 2
    assert metadata["total_bytes_read"] == sum(r.bytes_read for r in output_runs)
    assert metadata["latest_flow_ratio"] == pytest.approx(window_list[1].ratio, abs=1e-4)
    assert default_png_path(instance, "events") == Path(instance.root_directory) / "glueflow_reports" / (
        "events_flow_chart.png"
    )

    stdout, stderr = io.StringIO(), io.StringIO()
    assert report_command(instance, "events", True, tmp_path / "cli.png", stdout=stdout, stderr=stderr) == 0
    assert json.loads(stdout.getvalue()) == flow_table_json(report.slots)
    assert (tmp_path / "cli.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "cli.png" in stderr.getvalue()

    stdout = io.StringIO()
    assert report_command(instance, "events", False, None, stdout=stdout, stderr=io.StringIO()) == 0
    assert stdout.getvalue() == flow_table_markdown(report.slots) + "\n"


def test_history_ignores_failed_runs_and_other_flows(flow_file: Path, instance: DagsterInstance) -> None:
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    input_id, _ = _cycle(defs, instance, raw, 0, 10)
    staging_dir = flow_file.parent / "data" / "staging"
    moved = staging_dir.rename(staging_dir.with_name("staging.bak"))
    staging_dir.write_text("a file where the staging folder should be")  # so the Input run fails
    raw.write_bytes("batch=1/a.json", raw_records(1000, 10))
    failed = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    staging_dir.unlink()
    moved.rename(staging_dir)

    input_runs, output_runs = history_from_instance(instance, "events")
    assert [r.run_id for r in input_runs] == [input_id]
    assert len(output_runs) == 1
    assert history_from_instance(instance, "other") == ([], [])


def test_history_limit_keeps_the_latest_input_runs(flow_file: Path, instance: DagsterInstance) -> None:
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    runs = [_cycle(defs, instance, raw, cycle, 10) for cycle in range(3)]
    input_runs, output_runs = history_from_instance(instance, "events", limit=2)
    assert [r.run_id for r in input_runs] == [input_id for input_id, _ in runs[1:]]
    assert [r.run_id for r in output_runs] == [output_id for _, output_id in runs[1:]]


def test_report_command_without_runs(instance: DagsterInstance, tmp_path: Path) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    assert report_command(instance, "events", True, tmp_path / "empty.png", stdout=stdout, stderr=stderr) == 0
    assert json.loads(stdout.getvalue()) == {
        "windows": [],
        "outside_windows": [],
        "total_bytes_written": 0,
        "total_bytes_read": 0,
    }
    assert "no successful events_input_job run" in stderr.getvalue()
    assert (tmp_path / "empty.png").read_bytes()[:8] == PNG_SIGNATURE


def test_report_command_reports_an_unwritable_png(instance: DagsterInstance, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    stderr = io.StringIO()
    code = report_command(instance, "events", False, blocker / "chart.png", stdout=io.StringIO(), stderr=stderr)
    assert code == 2
    assert stderr.getvalue().startswith(f"glueflow: {blocker / 'chart.png'}: cannot write the chart")


def test_a_report_asset_in_the_output_run_counts_that_run(
    flow_file: Path, instance: DagsterInstance, tmp_path: Path
) -> None:
    """The F/flow_report use: materialized after F/output in the same, still running, run."""
    from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset, define_asset_job

    report_key = AssetKey(["events", "flow_report_probe"])

    @asset(key=report_key, deps=[output_key("events")], group_name="events")
    def flow_report_probe(context: AssetExecutionContext) -> MaterializeResult:
        report = build_flow_report(
            context.instance, "events", tmp_path / "in_run.png", current_run_id=context.run.run_id
        )
        return MaterializeResult(metadata=report_metadata(report))

    job = define_asset_job("events_output_and_report_job", selection=[output_key("events"), report_key])
    defs = Definitions.merge(load_definitions(flow_file), Definitions(assets=[flow_report_probe], jobs=[job]))
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    raw.write_bytes("batch=0/a.json", raw_records(0, 30))
    input_run = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance)
    result = defs.resolve_job_def("events_output_and_report_job").execute_in_process(
        instance=instance, tags={INPUT_RUN_TAG: input_run.run_id}
    )
    assert result.success
    written = run_materialization_metadata(instance, input_run.run_id, staging_key("events"))["bytes_written"]
    read = run_materialization_metadata(instance, result.run_id, output_key("events"))["bytes_read"]
    metadata = run_materialization_metadata(instance, result.run_id, report_key)
    assert (metadata["window_count"], metadata["total_bytes_written"], metadata["total_bytes_read"]) == (
        1,
        written,
        read,
    )
    assert metadata["latest_flow_ratio"] == pytest.approx(1.0)
    assert metadata["png_path"] == str(tmp_path / "in_run.png")
    assert (tmp_path / "in_run.png").read_bytes()[:8] == PNG_SIGNATURE


def _report_windows(instance: DagsterInstance) -> dict[str, float | None]:
    """`glueflow report --json`'s ratio per window, by the window's Input run."""
    stdout = io.StringIO()
    assert report_command(instance, "events", True, None, stdout=stdout, stderr=io.StringIO()) == 0
    document = json.loads(stdout.getvalue())
    report = build_flow_report(instance, "events", None)
    assert [w["ratio"] for w in document["windows"]] == [w.ratio for w in report.windows]
    return {w.input_run_id: w.ratio for w in report.windows}


def test_a_ui_materialize_of_output_gets_the_figures_the_report_shows(
    flow_file: Path, instance: DagsterInstance
) -> None:
    """F/output materialized the UI way (the implicit `__ASSET_JOB`, no run config, no glueflow tags), twice in
    one window, and a sensor-style run that follows an older Input run after a newer one started: every run's
    `flow_ratio` is what `glueflow report` shows for its window once it is the window's latest run."""
    defs = load_definitions(flow_file)  # bookmark: disable, so every Output run rereads all of staging
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    asset_job = defs.resolve_implicit_global_asset_job_def()
    input_job = defs.resolve_job_def("events_input_job")

    def ui_materialize_output() -> str:
        result = asset_job.execute_in_process(instance=instance, asset_selection=[output_key("events")])
        assert result.success and result.dagster_run.job_name == "__ASSET_JOB"
        assert INPUT_RUN_TAG not in result.dagster_run.tags
        return result.run_id

    def check(run_id: str, window_input: str) -> float:
        output = run_materialization_metadata(instance, run_id, output_key("events"))
        assert output["input_run_id"] == window_input
        assert _report_windows(instance)[window_input] == pytest.approx(output["flow_ratio"], abs=1e-4)
        return output["flow_ratio"]

    raw.write_bytes("batch=0/a.json", raw_records(0, 40))
    first = input_job.execute_in_process(instance=instance).run_id
    sensor_run = defs.resolve_job_def("events_output_job").execute_in_process(
        instance=instance, tags={INPUT_RUN_TAG: first}
    )
    assert check(sensor_run.run_id, first) == pytest.approx(1.0)

    raw.write_bytes("batch=1/a.json", raw_records(100, 40))
    second = input_job.execute_in_process(instance=instance).run_id
    ratios = [check(ui_materialize_output(), second), check(ui_materialize_output(), second)]
    # Each UI run rereads both batches: the window's ratio grows with every run counted in it.
    assert 1.8 < ratios[0] < 2.2 and 3.6 < ratios[1] < 4.4

    # A run that follows the second Input run (its tag) but starts after the third started: the third's window.
    raw.write_bytes("batch=2/a.json", raw_records(200, 40))
    third = input_job.execute_in_process(instance=instance).run_id
    late = defs.resolve_job_def("events_output_job").execute_in_process(instance=instance, tags={INPUT_RUN_TAG: second})
    check(late.run_id, third)
    # Every window still agrees with the latest run counted in it (nothing moved between windows).
    windows_now = _report_windows(instance)
    assert windows_now[first] == pytest.approx(1.0)
    assert windows_now[second] == pytest.approx(ratios[1], abs=1e-4)

    # F/flow_report materialized the UI way afterwards shows the same latest ratio.
    report_run = asset_job.execute_in_process(instance=instance, asset_selection=[flow_report_key("events")])
    report = run_materialization_metadata(instance, report_run.run_id, flow_report_key("events"))
    assert report["latest_flow_ratio"] == pytest.approx(windows_now[third], abs=1e-4)
    assert report["window_count"] == 3


def test_materialize_all_in_one_ui_run_counts_as_its_own_window(flow_file: Path, instance: DagsterInstance) -> None:
    """ "Materialize all" from the UI: F/staging, F/output and F/flow_report in one `__ASSET_JOB` run."""
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    asset_job = defs.resolve_implicit_global_asset_job_def()
    selection = [staging_key("events"), output_key("events"), flow_report_key("events")]
    for cycle in range(2):
        raw.write_bytes(f"batch={cycle}/a.json", raw_records(cycle * 100, 30))
        result = asset_job.execute_in_process(instance=instance, asset_selection=selection)
        assert result.success
        output = run_materialization_metadata(instance, result.run_id, output_key("events"))
        report = run_materialization_metadata(instance, result.run_id, flow_report_key("events"))
        assert output["input_run_id"] == result.run_id  # the run's own Input step opened its window
        assert report["window_count"] == cycle + 1
        assert report["latest_flow_ratio"] == pytest.approx(output["flow_ratio"], abs=1e-4)
        assert _report_windows(instance)[result.run_id] == pytest.approx(output["flow_ratio"], abs=1e-4)
    assert output["flow_ratio"] > 1.8  # bookmark: disable, the second run rereads the first batch

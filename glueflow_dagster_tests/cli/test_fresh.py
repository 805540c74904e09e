"""`glueflow demo --fresh` in process: one flow's history and data go, other flows' stay, figures repeat."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, RunsFilter
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, SensorInstigatorData
from dagster._core.test_utils import create_run_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from glueflow_dagster.cli.demo import run_demo
from glueflow_dagster.cli.fresh import start_fresh
from glueflow_dagster.components.bookmark_store import committed_bookmark
from glueflow_dagster.components.jobs import FLOW_TAG
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core.config import ConfigError, load_config
from glueflow_dagster.definitions import build_definitions
from glueflow_dagster_tests.conftest import write_flow_file


def _sensor_state(instance: DagsterInstance, name: str, cursor: str) -> InstigatorState:
    """A stored sensor state as the daemon keeps it (cursor included)."""
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__))
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name)
    data = SensorInstigatorData(cursor=cursor)
    state = InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.RUNNING, data)
    instance.add_instigator_state(state)
    return state


def test_fresh_removes_one_flows_history_and_data_and_the_demo_repeats_its_figures(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    config = load_config(write_flow_file(tmp_path / "project", bookmark="enable"))
    flow = config.flows["events"]
    defs = build_definitions(config)
    first = run_demo(defs, instance, flow, 2)
    assert committed_bookmark(instance, "events", "bookmark_ctx").bookmark.version == 2
    other = create_run_for_test(instance, job_name="orders_input_job", tags={FLOW_TAG: "orders"})
    ours = _sensor_state(instance, "events_output_sensor", '{"follow": "old"}')
    theirs = _sensor_state(instance, "orders_output_sensor", '{"follow": "kept"}')

    lines: list[str] = []
    report = start_fresh(instance, flow, progress=lines.append)
    assert report.runs_deleted == 4 and report.sensor_cursors_cleared == 1
    assert report.objects_deleted[flow.input.uri] == 8  # 2 batches of 4 sample objects
    assert report.objects_deleted[flow.staging.uri] >= 2 and report.objects_deleted[flow.output.uri] >= 2
    assert any("deleting 4 runs" in line for line in lines)
    for location in (flow.input, flow.staging, flow.output):
        assert list(StorageResource().open(location.uri).list()) == []
    assert instance.get_run_ids(RunsFilter(tags={FLOW_TAG: "events"})) == []
    assert instance.get_run_ids() == [other.run_id]  # another flow's run stays
    assert committed_bookmark(instance, "events", "bookmark_ctx").bookmark.version == 0
    assert instance.get_instigator_state(ours.instigator_origin_id, ours.selector_id).instigator_data.cursor is None
    kept = instance.get_instigator_state(theirs.instigator_origin_id, theirs.selector_id)
    assert kept.instigator_data.cursor == '{"follow": "kept"}'

    again = run_demo(defs, instance, flow, 2)
    figures = [(row.cycle, row.input_bytes_written, row.output_bytes_read) for row in again]
    assert figures == [(row.cycle, row.input_bytes_written, row.output_bytes_read) for row in first]


# --fresh deletes only what glueflow wrote (issue 22 item 4).


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_fresh_deletes_only_objects_glueflow_wrote_and_honours_exclusions(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    import yaml

    path = write_flow_file(tmp_path / "project", bookmark="enable")
    document = yaml.safe_load(path.read_text())
    document["flows"]["events"]["staging"]["exclusions"] = ["keep/**"]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    config = load_config(path)
    flow = config.flows["events"]
    run_demo(build_definitions(config), instance, flow, 1)
    data = tmp_path / "project" / "data"
    theirs = {
        data / "input" / "notes" / "thesis.docx": b"a document",
        data / "input" / "events-2025.json": b'{"id": 1}\n',  # data, but not a batch the demo wrote
        data / "staging" / "README.txt": b"hands off",
        data / "staging" / "keep" / "run-x-attempt-1-part-r-00000.json": b"{}\n",  # excluded: stays
        data / "output" / "report.csv": b"a,b\n",
    }
    for file, content in theirs.items():
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(content)

    report = start_fresh(instance, flow)
    assert report.objects_deleted[flow.input.uri] == 4  # the demo's one batch of 4 sample objects
    for file, content in theirs.items():
        assert file.read_bytes() == content, file
    assert _files(data) == {str(file.relative_to(data)) for file in theirs}


def test_fresh_refuses_a_location_outside_the_project_unless_confirmed(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    documents = tmp_path / "documents"
    config = load_config(write_flow_file(tmp_path / "project", input_uri=str(documents)))
    flow = config.flows["events"]
    run_demo(build_definitions(config), instance, flow, 1)
    (documents / "taxes-2025.pdf").write_bytes(b"%PDF")
    runs = instance.get_run_ids()
    with pytest.raises(ConfigError) as refused:
        start_fresh(instance, flow)
    message = str(refused.value)
    assert "\n" not in message and str(documents) in message and "--fresh-outside-project" in message
    assert instance.get_run_ids() == runs and (documents / "taxes-2025.pdf").exists()  # nothing deleted
    assert len(_files(documents)) == 5

    report = start_fresh(instance, flow, outside_project=True)  # confirmed: still only what glueflow wrote
    assert report.objects_deleted[flow.input.uri] == 4
    assert _files(documents) == {"taxes-2025.pdf"}


def test_fresh_never_deletes_the_flow_file_or_dagster_home(tmp_path: Path) -> None:
    from dagster import instance_for_test

    project = tmp_path / "project"
    elsewhere = tmp_path / "elsewhere"
    path = write_flow_file(
        project, input_uri=".", staging_uri=str(elsewhere / "staging"), output_uri=str(elsewhere / "output")
    )
    home = project / ".glueflow" / "dagster_home"
    home.mkdir(parents=True)
    lookalike = home / "run-x-attempt-1-part-r-00000.json"  # named like a part, but in DAGSTER_HOME
    lookalike.write_text("{}\n")
    flow = load_config(path).flows["events"]
    with instance_for_test(temp_dir=str(home)) as home_instance:
        with pytest.raises(ConfigError, match="--fresh-outside-project"):
            start_fresh(home_instance, flow)  # the project folder itself is no location of the demo's own
        start_fresh(home_instance, flow, outside_project=True)
    assert path.exists() and lookalike.exists()


def test_fresh_refuses_an_iceberg_output_before_deleting_anything(tmp_path: Path, instance: DagsterInstance) -> None:
    import dataclasses

    config = load_config(write_flow_file(tmp_path / "project"))
    flow = config.flows["events"]
    run_demo(build_definitions(config), instance, flow, 1)
    runs = instance.get_run_ids()
    iceberg = dataclasses.replace(flow, output=dataclasses.replace(flow.output, format="iceberg"))
    with pytest.raises(ConfigError, match="Iceberg table") as refused:
        start_fresh(instance, iceberg)
    assert "\n" not in str(refused.value) and instance.get_run_ids() == runs  # nothing deleted

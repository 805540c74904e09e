"""F/output's metadata in the order that tells the story: the flow ratio first, six headline plots."""

from pathlib import Path

import pytest
from dagster import DagsterInstance, FloatMetadataValue, IntMetadataValue

from glueflow_dagster.components.jobs import INPUT_RUN_TAG, output_key
from glueflow_dagster.components.output_metadata import HEADLINES, OUTPUT_KEY_ORDER, ordered_output_metadata
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.conftest import raw_records

HEADLINE_LABELS = [
    "1. flow ratio (bytes read / bytes written)",
    "2. bytes read by this Output run (bytes)",
    "3. bytes written by the window's Input run (bytes)",
    "4. records written (records)",
    "5. staging backlog not yet read (bytes)",
    "6. records quarantined (records)",
]


def test_the_flow_ratio_comes_first_every_key_stays_and_the_headlines_sort_in_order() -> None:
    core = {"summary": "md", "files_read": 2, "bytes_written": 9, "flow_ratio": 1.5, "bytes_read": 6}
    core |= {"input_bytes_written": 4, "records_written": 3, "backlog_bytes": 0, "error_records": 1, "lag_s": 0.5}
    ordered = ordered_output_metadata(core)
    keys = list(ordered)
    assert keys[:3] == ["flow_ratio", "bytes_read", "input_bytes_written"]
    assert {k: ordered[k] for k in core} == core  # every key kept, values untouched
    # Then the other keys in the core's order, then the six headlines, which Dagster's Plots view (sorted
    # by label) shows first, in this order.
    assert keys[len(core) - 3 : len(core)] == ["summary", "files_read", "lag_s"]
    assert keys[len(core) :] == HEADLINE_LABELS
    assert sorted(HEADLINE_LABELS) == HEADLINE_LABELS and all(h < k for h in HEADLINE_LABELS for k in core)
    assert [ordered[label] for label in HEADLINE_LABELS] == [1.5, 6, 4, 3, 0, 1]
    assert all("(" in label and label.endswith(")") for label in HEADLINE_LABELS)  # the unit in the label
    assert [label for _, label in HEADLINES] == HEADLINE_LABELS
    assert OUTPUT_KEY_ORDER[0] == "flow_ratio"


def test_a_window_with_nothing_to_compare_has_no_ratio_headline() -> None:
    ordered = ordered_output_metadata({"bytes_read": 0, "flow_ratio_note": "n/a: nothing read", "records_written": 0})
    assert list(ordered)[:2] == ["flow_ratio_note", "bytes_read"]
    assert HEADLINE_LABELS[0] not in ordered and ordered[HEADLINE_LABELS[1]] == 0


def test_an_output_run_records_the_ratio_first_and_the_headlines(flow_file: Path, instance: DagsterInstance) -> None:
    defs = load_definitions(flow_file)
    StorageResource().open(str(flow_file.parent / "data" / "input")).write_bytes("batch=0/a.json", raw_records(0, 30))
    input_run = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance)
    output_run = defs.resolve_job_def("events_output_job").execute_in_process(
        instance=instance, tags={INPUT_RUN_TAG: input_run.run_id}
    )
    [materialization] = [
        m for m in output_run.asset_materializations_for_node("events__output") if m.asset_key == output_key("events")
    ]
    metadata = materialization.metadata
    assert list(metadata)[0] == "flow_ratio"
    assert list(metadata)[-len(HEADLINE_LABELS) :] == HEADLINE_LABELS
    assert isinstance(metadata[HEADLINE_LABELS[0]], FloatMetadataValue)
    assert metadata[HEADLINE_LABELS[0]].value == metadata["flow_ratio"].value == pytest.approx(1.0)
    for label, key in zip(HEADLINE_LABELS[1:4], ("bytes_read", "input_bytes_written", "records_written"), strict=True):
        assert isinstance(metadata[label], IntMetadataValue) and metadata[label] == metadata[key], label
    assert metadata[HEADLINE_LABELS[3]].value == 30
    for key in ("bytes_read", "records_read", "commit", "summary", "dagster/row_count", "dagster/uri"):
        assert key in metadata, key  # the contract's keys stay

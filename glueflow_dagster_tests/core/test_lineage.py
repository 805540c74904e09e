"""Column schemas and column lineage from the mappings (core: no Dagster), and owners/tags in the flow file."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from glueflow_dagster.core.config import ConfigError, load_config
from glueflow_dagster.core.lineage import (
    RAW_INPUT,
    STAGING,
    Column,
    ColumnDep,
    flow_columns,
    flow_line,
    glue_type_name,
    job_lineage,
    source_schema,
    target_schema,
)
from glueflow_dagster_tests.conftest import write_flow_file

REPO = Path(__file__).parents[2]


def _demo_flow():
    return load_config(REPO / "glueflow.yaml").flows["events"]


def test_the_demo_flows_staging_schema_shows_glue_types_and_nested_targets_as_nested_columns() -> None:
    staging = {c.name: c.type for c in target_schema(_demo_flow().input_job)}
    assert staging == {
        "event_id": "long",
        "event_type": "string",
        "event_time": "timestamp",
        "user_id": "long",
        "user": "struct<country:string,premium:boolean>",
        "user.country": "string",
        "user.premium": "boolean",
        "amount": "double",
        "device_os": "string",
    }
    # A struct comes first, then its fields, in mapping order.
    names = [c.name for c in target_schema(_demo_flow().input_job)]
    assert names.index("user") + 1 == names.index("user.country")


def test_raw_input_schema_lists_the_json_paths_read_with_their_source_types() -> None:
    raw = {c.name: c.type for c in source_schema(_demo_flow().input_job)}
    assert raw["id"] == "long" and raw["ts"] == "string" and raw["user.id"] == "int"
    assert raw["user"] == "struct<id:int,country:string,premium:boolean>"
    assert raw["device"] == "struct<os:string>"


def test_lineage_runs_from_each_output_column_through_staging_to_the_raw_json_path() -> None:
    flow = _demo_flow()
    columns = flow_columns(flow.input_job, flow.output_job)
    output = dict(columns.output_lineage)
    staging = dict(columns.staging_lineage)
    # output.country <- staging user.country <- raw user.country
    assert output["country"] == (ColumnDep(STAGING, "user.country"),)
    assert staging["user.country"] == (ColumnDep(RAW_INPUT, "user.country"),)
    # output.user_id <- staging user_id <- raw user.id
    assert output["user_id"] == (ColumnDep(STAGING, "user_id"),)
    assert staging["user_id"] == (ColumnDep(RAW_INPUT, "user.id"),)
    # A struct depends on all of its fields' sources.
    assert staging["user"] == (ColumnDep(RAW_INPUT, "user.country"), ColumnDep(RAW_INPUT, "user.premium"))
    # Every dependency names a column that the upstream schema has.
    staging_names = {c.name for c in columns.staging}
    raw_names = {c.name for c in columns.raw_input}
    assert all(dep.column in staging_names for deps in output.values() for dep in deps)
    assert all(dep.column in raw_names for deps in staging.values() for dep in deps)


def _job(tmp_path: Path, mappings: list[list[str]]):
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["flows"]["events"]["output_job"]["mappings"] = mappings
    path.write_text(yaml.safe_dump(document))
    return load_config(path).flows["events"].output_job


def test_lineage_matches_case_insensitively_and_handles_json_text_missing_fields_and_whole_structs(
    tmp_path: Path,
) -> None:
    upstream = (
        Column("event_id", "long", ""),
        Column("payload", "string", ""),
        Column("user", "struct<country:string>", ""),
        Column("user.country", "string", ""),
    )
    job = _job(
        tmp_path,
        [
            ["EVENT_ID", "long", "id", "long"],  # Glue matches names case-insensitively
            ["payload.kind", "string", "kind", "string"],  # read from inside a JSON text column
            ["user.missing", "string", "missing", "string"],  # not in the struct: a column of nulls
            ["nowhere", "string", "nothing", "string"],  # not upstream at all
            ["user", "string", "user_json", "string"],  # the whole struct
            ["`a.b`", "Decimal(10, 2)", "`x.y`", "DECIMAL(10, 2)"],
        ],
    )
    lineage = dict(job_lineage(job, upstream, STAGING))
    assert lineage["id"] == (ColumnDep(STAGING, "event_id"),)
    assert lineage["kind"] == (ColumnDep(STAGING, "payload"),)
    assert lineage["missing"] == () and lineage["nothing"] == ()
    assert lineage["user_json"] == (ColumnDep(STAGING, "user"),)
    # Names holding dots stay quoted, and Glue type names are shown normalized.
    assert {c.name: c.type for c in target_schema(job)}["`x.y`"] == "decimal(10,2)"
    assert glue_type_name(" Decimal( 10 , 2 ) ") == "decimal(10,2)"


def test_flow_line_finds_the_flow_in_its_file() -> None:
    text = (REPO / "glueflow.yaml").read_text().splitlines()
    line = flow_line(REPO / "glueflow.yaml", "events")
    assert line is not None and text[line - 1].strip() == "events:"
    assert flow_line(REPO / "glueflow.yaml", "nope") is None
    assert flow_line(REPO / "missing.yaml", "events") is None


def test_importing_the_lineage_core_does_not_import_dagster() -> None:
    code = "import sys, glueflow_dagster.core.lineage; print('dagster' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.stdout.strip() == "False", done.stderr


# --- owners and tags in the flow file -------------------------------------------------------------


def _with(tmp_path: Path, **flow_keys) -> Path:
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["flows"]["events"].update(flow_keys)
    path.write_text(yaml.safe_dump(document))
    return path


def test_owners_and_tags_are_optional_flow_keys(tmp_path: Path) -> None:
    flow = load_config(_with(tmp_path, owners=["team:data", "ana@example.com"], tags={"domain": "sales"})).flows[
        "events"
    ]
    assert flow.owners == ("team:data", "ana@example.com")
    assert dict(flow.tags) == {"domain": "sales"}
    assert flow.config_path == (tmp_path / "glueflow.yaml").resolve()
    plain = load_config(write_flow_file(tmp_path / "plain")).flows["events"]
    assert plain.owners == () and dict(plain.tags) == {}


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"owners": "team:data"}, "flow 'events'.owners: expected a list"),
        ({"owners": ["data"]}, "flow 'events'.owners: 'data' is not an e-mail address or team:<name>"),
        ({"owners": ["team:"]}, "is not an e-mail address or team:<name>"),
        ({"tags": ["a"]}, "flow 'events'.tags: expected a mapping"),
        ({"tags": {"bad key!": "x"}}, "flow 'events'.tags: key 'bad key!'"),
        ({"tags": {"domain": "has space"}}, "flow 'events'.tags.domain: expected up to 63"),
        ({"tags": {"domain": 3}}, "flow 'events'.tags.domain: expected up to 63"),
        ({"tags": {"domain": "x" * 500}}, "flow 'events'.tags.domain"),
    ],
)
def test_bad_owners_and_tags_are_one_line_errors(tmp_path: Path, keys: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_with(tmp_path, **keys))
    text = str(caught.value)
    assert message in text and "\n" not in text and len(text) < 400
    assert str(tmp_path / "glueflow.yaml") in text

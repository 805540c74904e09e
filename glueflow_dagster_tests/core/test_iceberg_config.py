"""`output.format: iceberg` in the flow file: its keys accepted, and every misuse refused in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from glueflow_dagster.core.config import ConfigError, load_config
from glueflow_dagster_tests.conftest import flow_document

MAPPINGS = [
    ["event_id", "long", "event_id", "long"],
    ["user_id", "long", "user_id", "long"],
    ["ts", "string", "ts", "timestamp"],
]


def flow_file(tmp_path: Path, output: dict[str, Any], staging: dict[str, Any] | None = None) -> Path:
    document = flow_document()
    body = document["flows"]["events"]
    body["output"] = {"uri": "warehouse", **output}
    body["output_job"]["mappings"] = MAPPINGS
    if staging is not None:
        body["staging"].update(staging)
    path = tmp_path / "glueflow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def refusal(tmp_path: Path, output: dict[str, Any], staging: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(flow_file(tmp_path, output, staging))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'glueflow.yaml'}: flow 'events'.")
    return message


def test_an_iceberg_output_without_a_catalog_gets_sqlite_beside_the_flow_file(tmp_path: Path) -> None:
    output = {"format": "iceberg", "table": "analytics.events", "partition_keys": ["day(ts)", "user_id"]}
    flow = load_config(flow_file(tmp_path, output)).flows["events"]
    assert (flow.output.format, flow.output.table) == ("iceberg", "analytics.events")
    assert flow.output.catalog == {"type": "sql", "uri": f"sqlite:///{tmp_path / '.glueflow' / 'catalog.db'}"}
    assert flow.output.uri == str(tmp_path / "warehouse")  # the warehouse
    assert flow.output.partition_keys == ("day(ts)", "user_id")
    assert flow.output.compression == "snappy"  # the data files are Parquet


def test_a_catalog_takes_pyicebergs_properties_with_env_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_PASSWORD", "s3cret")
    catalog = {"type": "sql", "uri": "postgresql+psycopg2://etl:${CATALOG_PASSWORD}@db/iceberg", "pool_size": 2}
    flow = load_config(flow_file(tmp_path, {"format": "iceberg", "table": "a.b", "catalog": catalog})).flows["events"]
    assert flow.output.catalog == {
        "type": "sql",
        "uri": "postgresql+psycopg2://etl:s3cret@db/iceberg",
        "pool_size": "2",
    }
    glue = load_config(flow_file(tmp_path, {"format": "iceberg", "table": "a.b", "catalog": {"type": "glue"}}))
    assert glue.flows["events"].output.catalog == {"type": "glue"}


@pytest.mark.parametrize(
    ("output", "staging", "expected"),
    [
        ({}, {"format": "iceberg"}, "staging.format: iceberg is an output format only"),
        ({"format": "iceberg"}, None, "output.table: expected <namespace>.<name>"),
        ({"format": "iceberg", "table": "events"}, None, "output.table: expected <namespace>.<name>"),
        ({"format": "iceberg", "table": "a.b.c"}, None, "output.table: expected <namespace>.<name>"),
        ({"format": "iceberg", "table": "a.b", "catalog": {"type": "hive"}}, None, "output.catalog.type: expected one"),
        ({"format": "iceberg", "table": "a.b", "catalog": {"uri": "x"}}, None, "output.catalog.type: expected one"),
        ({"format": "iceberg", "table": "a.b", "catalog": {"type": "rest"}}, None, "output.catalog.uri: required"),
        ({"format": "iceberg", "table": "a.b", "catalog": "sql"}, None, "output.catalog: expected a mapping"),
        (
            {"format": "iceberg", "table": "a.b", "catalog": {"type": "sql", "warehouse": "/x"}},
            None,
            "output.catalog.warehouse: the warehouse is the location's uri",
        ),
        ({"table": "a.b"}, None, "output.table: table is an iceberg option, but the location's format is json"),
        (
            {"format": "parquet", "catalog": {"type": "sql"}},
            None,
            "output.catalog: catalog is an iceberg option, but the location's format is parquet",
        ),
        ({"format": "iceberg", "table": "a.b", "compression_level": 3}, None, "not iceberg"),
        (
            {"format": "iceberg", "table": "a.b", "partition_keys": ["week(ts)"]},
            None,
            "output.partition_keys: partition key 'week(ts)': unknown transform",
        ),
        (
            {"format": "iceberg", "table": "a.b", "partition_keys": ["day(when)"]},
            None,
            "output.partition_keys: partition key 'day(when)': 'when' is not a column",
        ),
    ],
)
def test_misuse_is_refused_in_one_line_naming_the_key(
    tmp_path: Path, output: dict[str, Any], staging: dict[str, Any] | None, expected: str
) -> None:
    assert expected in refusal(tmp_path, output, staging)


def test_table_is_refused_on_staging(tmp_path: Path) -> None:
    assert "staging: unknown field 'table'" in refusal(tmp_path, {}, {"table": "a.b"})


def test_spark_writes_no_iceberg_yet(tmp_path: Path) -> None:
    path = flow_file(tmp_path, {"format": "iceberg", "table": "a.b"})
    document = yaml.safe_load(path.read_text())
    document["flows"]["events"]["output_job"]["engine"] = "spark"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="spark reads and writes JSON lines only: not output.format: iceberg"):
        load_config(path)

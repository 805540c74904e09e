"""`glueflow demo` with the Output as an Iceberg table: the flow file's documented one-line switch
(glueflow.yaml's commented `output:` line) is all it takes (issue 24, "Done when")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glueflow_dagster.cli.demo import run_demo
from glueflow_dagster.components.jobs import output_key
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.core.config import load_config
from glueflow_dagster.core.iceberg_table import RUN_ID_PROPERTY, IcebergTarget, open_catalog
from glueflow_dagster.definitions import build_definitions

REPO_FLOW_FILE = Path(__file__).parents[2] / "glueflow.yaml"
SWITCH = '    # output:  {uri: "${GLUEFLOW_DATA:-.glueflow/data}/warehouse", format: iceberg, table: demo.events}\n'


def iceberg_demo_flow_file(folder: Path) -> Path:
    """The repository's glueflow.yaml with its `output:` line replaced by the commented Iceberg one."""
    lines = REPO_FLOW_FILE.read_text().splitlines(keepends=True)
    assert SWITCH in lines, "glueflow.yaml no longer carries the documented Iceberg switch"
    switched = [line for line in lines if not line.startswith("    output:")]
    switched = [line.replace("    # output:", "    output:") if line == SWITCH else line for line in switched]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "glueflow.yaml"
    path.write_text("".join(switched))
    return path


def test_the_demo_writes_an_iceberg_table_with_the_flow_files_one_line_switch(tmp_path: Path, instance: Any) -> None:
    config = load_config(iceberg_demo_flow_file(tmp_path / "project"))
    flow = config.flows["events"]
    assert (flow.output.format, flow.output.table) == ("iceberg", "demo.events")

    rows = run_demo(build_definitions(config), instance, flow, 2)

    catalog = {"type": "sql", "uri": f"sqlite:///{tmp_path / 'project' / '.glueflow' / 'catalog.db'}"}
    target = IcebergTarget("demo.events", (tmp_path / "project" / ".glueflow" / "data" / "warehouse").as_uri(), catalog)
    table = open_catalog(target).load_table(target.identifier)
    output_runs = [run for row in rows for run in row.output_run_ids]
    assert [s.summary[RUN_ID_PROPERTY] for s in table.snapshots()] == output_runs
    ids = table.scan(selected_fields=("event_id",)).to_arrow().column("event_id").to_pylist()
    written = sum(
        run_materialization_metadata(instance, run, output_key("events"))["records_written"] for run in output_runs
    )
    assert len(ids) == len(set(ids)) == written > 0

"""The code location loads: names per flow, lineage, and `dagster definitions validate`."""

import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, Definitions

from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.conftest import write_flow_file

REPO = Path(__file__).parents[2]


def test_every_flow_gets_its_assets_jobs_schedule_and_sensor(tmp_path: Path) -> None:
    path = write_flow_file(tmp_path)
    text = path.read_text()
    # Each flow its own locations: two flows sharing one are refused (config: separate locations).
    orders = text.replace("flows:\n", "").replace("  events:", "  orders:").replace("data/", "data/orders_")
    path.write_text(text + orders)
    defs = load_definitions(path)
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    for flow in ("events", "orders"):
        staging, output = AssetKey([flow, "staging"]), AssetKey([flow, "output"])
        assert graph.get(staging).parent_keys == {AssetKey([flow, "raw_input"])}
        assert graph.get(output).parent_keys == {staging}
        assert graph.get(output).group_name == flow
        defs.resolve_job_def(f"{flow}_input_job")
        defs.resolve_job_def(f"{flow}_output_job")
        assert defs.resolve_schedule_def(f"{flow}_input_schedule").job_name == f"{flow}_input_job"
        assert defs.resolve_sensor_def(f"{flow}_output_sensor").job_name == f"{flow}_output_job"


def test_dagster_definitions_validate_loads_the_workspace_without_warnings_from_our_code() -> None:
    env = {**os.environ, "GLUEFLOW_CONFIG": str(REPO / "glueflow.yaml")}
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Validation successful" in output
    assert "glueflow_dagster/" not in output  # no warning points into our package

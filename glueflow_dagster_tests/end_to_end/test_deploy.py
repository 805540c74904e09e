"""Dagster+ deploy files: the code location loads exactly as dagster_cloud.yaml and `dg plus deploy` name it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from glueflow_dagster.components.flow_source import load_flows

REPO = Path(__file__).parents[2]
LOCATION = "glueflow_dagster"


def validate(location: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`dagster definitions validate` with the location's code_source, as a Dagster+ code server loads it."""
    source = location["code_source"]
    flags = {"module_name": "--module-name", "package_name": "--package-name", "python_file": "--python-file"}
    [(key, value)] = [(k, v) for k, v in source.items() if k in flags]
    working_directory = location.get("working_directory") or location.get("build", {}).get("directory") or "."
    args = [flags[key], value, "--working-directory", str((REPO / working_directory).resolve())]
    env = {k: v for k, v in os.environ.items() if k not in ("GLUEFLOW_CONFIG", "DAGSTER_HOME")}
    return subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_file_that_names_the_code_location_names_the_same_one() -> None:
    """Each tool reads its own file (`dagster dev -w`: workspace.yaml; `dagster dev` bare: [tool.dagster];
    `dg`: [tool.dg.project]; legacy Dagster+ CI: dagster_cloud.yaml), so the name is written four times;
    this keeps the four in step."""
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    [workspace] = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    [cloud] = yaml.safe_load((REPO / "dagster_cloud.yaml").read_text())["locations"]
    dagster_table, dg_project = pyproject["tool"]["dagster"], pyproject["tool"]["dg"]["project"]
    named = {
        "workspace.yaml": (workspace["python_module"]["location_name"], workspace["python_module"]["module_name"]),
        "[tool.dagster]": (dagster_table["code_location_name"], dagster_table["module_name"]),
        "[tool.dg.project]": (dg_project["code_location_name"], dg_project["code_location_target_module"]),
        "dagster_cloud.yaml": (cloud["location_name"], cloud["code_source"]["module_name"]),
    }
    assert set(named.values()) == {(LOCATION, "glueflow_dagster.definitions")}, named


def test_dagster_cloud_yaml_names_a_location_that_loads() -> None:
    [location] = yaml.safe_load((REPO / "dagster_cloud.yaml").read_text())["locations"]
    assert location["location_name"] == LOCATION
    done = validate(location)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


def test_dg_plus_deploy_builds_the_same_location_from_build_yaml_and_pyproject() -> None:
    dg_core = pytest.importorskip("dagster_dg_core.context", reason="dagster-dg-cli is not installed")
    from dagster_dg_cli.cli.utils import create_temp_dagster_cloud_yaml_file

    # The very function `dg plus deploy` uses to turn build.yaml + [tool.dg.project] into the
    # location document it sends to Dagster+.
    context = dg_core.DgContext.for_project_environment(REPO, {})
    with tempfile.TemporaryDirectory() as statedir:
        document = yaml.safe_load(Path(create_temp_dagster_cloud_yaml_file(context, statedir)).read_text())
    [location] = document["locations"]
    assert location["location_name"] == LOCATION
    assert location["code_source"] == {"module_name": "glueflow_dagster.definitions"}
    assert Path(location["build"]["directory"]) == REPO.resolve()
    legacy = yaml.safe_load((REPO / "dagster_cloud.yaml").read_text())["locations"][0]
    assert location["code_source"] == legacy["code_source"]  # the two files agree
    done = validate(location)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


def test_glueflow_data_points_the_shipped_flow_at_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the README's Dagster+ steps rely on: one env var moves the demo flow onto S3."""
    monkeypatch.setenv("GLUEFLOW_DATA", "s3://my-bucket/glueflow")
    flow = load_flows(REPO / "glueflow_dagster" / "defs" / "events" / "defs.yaml").flows["events"]
    assert (flow.input.uri, flow.staging.uri, flow.output.uri) == (
        "s3://my-bucket/glueflow/input",
        "s3://my-bucket/glueflow/staging",
        "s3://my-bucket/glueflow/output",
    )


@pytest.mark.xdist_group("wheel")
def test_a_wheel_install_loads_the_demo_flow_from_the_project_folder(tmp_path: Path) -> None:
    """Dagster+ Serverless and `pip install .` put the package in site-packages, away from the project's
    glueflow.yaml that the packaged demo instance names (`../../../glueflow.yaml`): the code location
    still loads it, from the working directory (the project), and names that path when it is missing."""
    wheels, site, project = tmp_path / "wheels", tmp_path / "site", tmp_path / "project"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."]
    subprocess.run(build, cwd=REPO, check=True, capture_output=True, timeout=300)
    [wheel] = wheels.glob("glueflow_dagster-*.whl")
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    assert (site / "glueflow_dagster" / "defs" / "events" / "defs.yaml").is_file()
    assert not (site / "glueflow.yaml").exists()  # the flow file is the project's, not the wheel's
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("GLUEFLOW_CONFIG", "DAGSTER_HOME")}
    env["PYTHONPATH"] = str(site)
    show = (
        "import glueflow_dagster, glueflow_dagster.definitions as d; "
        "print(glueflow_dagster.__file__); "
        "graph = d.load_project_definitions().resolve_asset_graph(); "
        "print(sorted(k.to_user_string() for k in graph.get_all_asset_keys()))"
    )

    def load() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", show], cwd=project, env=env, capture_output=True, text=True, timeout=300
        )

    missing = load()
    assert missing.returncode != 0
    assert str(project / "glueflow.yaml") in missing.stderr  # the path to create, not one in site-packages

    (project / "glueflow.yaml").write_text((REPO / "glueflow.yaml").read_text())
    loaded = load()
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    package_file, keys = loaded.stdout.strip().splitlines()[-2:]
    assert package_file.startswith(str(site))  # the wheel's package, not the source tree's
    assert "events/output" in keys and "events/staging" in keys

"""Dagster+ deploy files: the code location loads exactly as dagster_cloud.yaml and `dg plus deploy` name it."""

from __future__ import annotations

import json
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
    """The name and module are written once in pyproject.toml ([tool.dg.project]), which `dg` and a bare
    `dagster dev` both read (no [tool.dagster] table to disagree with it); workspace.yaml (`dagster dev -w`)
    and dagster_cloud.yaml (legacy Dagster+ CI) cannot refer to it and repeat them: this keeps all in step,
    reading each as its tool does."""
    import tomllib

    from dagster._core.workspace.load_target import get_target_from_toml_data

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "dagster" not in pyproject["tool"]  # else a bare `dagster dev` would read that table instead
    bare = get_target_from_toml_data(pyproject)  # what `dagster dev` without -w/-m loads
    [workspace] = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    [cloud] = yaml.safe_load((REPO / "dagster_cloud.yaml").read_text())["locations"]
    dg_project = pyproject["tool"]["dg"]["project"]
    named = {
        "[tool.dg.project]": (dg_project["code_location_name"], dg_project["code_location_target_module"]),
        "dagster dev (bare)": (bare.location_name, bare.module_name),
        "workspace.yaml": (workspace["python_module"]["location_name"], workspace["python_module"]["module_name"]),
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


# What the wheel test runs with the venv's python, in a project folder: the code location's definitions
# (GLUEFLOW_CONFIG unset, as Dagster+ loads them) and where the demo flow's data goes.
_SHOW = """
import json, glueflow_dagster, glueflow_dagster.definitions as d
defs = d.load_project_definitions()
keys = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
flows = d.load_flows(d.DEFS_FOLDER / "events" / "defs.yaml").flows
print(json.dumps({"package": glueflow_dagster.__file__, "keys": keys,
                  "input": {name: flow.input.uri for name, flow in flows.items()}}))
"""


@pytest.mark.slow  # a wheel build, a venv and four interpreters loading Dagster: 1-4 minutes
@pytest.mark.xdist_group("wheel")
def test_a_wheel_in_a_fresh_venv_loads_the_demo_flow_without_the_source_tree(tmp_path: Path) -> None:
    """Dagster+ Serverless and `pip install .` put the package in site-packages, away from the project's
    glueflow.yaml that the packaged demo instance names (`../../../glueflow.yaml`). The wheel ships a copy
    beside the instance: in an empty folder the demo loads from it (its data under the working directory,
    never site-packages); a project's own glueflow.yaml wins over the copy; GLUEFLOW_CONFIG and
    `glueflow_dagster.definitions` (dagster's `--module-name`) work as documented."""
    wheels, venv, project = tmp_path / "wheels", tmp_path / "venv", tmp_path / "project"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."]
    subprocess.run(build, cwd=REPO, check=True, capture_output=True, timeout=300)
    [wheel] = wheels.glob("glueflow_dagster-*.whl")
    # The venv sees the suite's dependencies (and the editable source install, which the wheel shadows).
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("GLUEFLOW_CONFIG", "DAGSTER_HOME", "GLUEFLOW_DATA")}
    env.pop("PYTHONPATH", None)  # the wheel's package, not this source tree's
    # --ignore-installed: the editable install seen through --system-site-packages has the same version.
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--ignore-installed", "-q"]
    subprocess.run([*install, str(wheel)], env=env, check=True, capture_output=True, timeout=300)
    project.mkdir()

    def show(**extra: str) -> dict[str, Any]:
        done = subprocess.run(
            [python, "-c", _SHOW], cwd=project, env={**env, **extra}, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        # As quiet as the source tree's door (load_from_defs_folder): no Dagster preview/beta notices.
        assert "Warning" not in done.stderr, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    alone = show()  # an empty folder: the wheel's own copy of the demo flow
    assert alone["package"].startswith(str(venv))
    assert {"events/raw_input", "events/staging", "events/output", "events/flow_report"} <= set(alone["keys"])
    assert alone["input"] == {"events": str(project / ".glueflow" / "data" / "input")}

    # The project's own flow file wins over the wheel's copy (the same relative place as in the source tree).
    own = (REPO / "glueflow.yaml").read_text().replace("${GLUEFLOW_DATA:-.glueflow/data}", "${GLUEFLOW_DATA:-mine}")
    (project / "glueflow.yaml").write_text(own)
    assert show()["input"] == {"events": str(project / "mine" / "input")}

    # GLUEFLOW_CONFIG names the flow file the code location loads instead of the defs folder.
    other = project / "other.yaml"
    other.write_text((REPO / "glueflow.yaml").read_text().replace("  events:", "  clicks:", 1))
    assert {"clicks/output", "clicks/staging"} <= set(show(GLUEFLOW_CONFIG=str(other))["keys"])

    # The documented target, as a Dagster code server loads it: `glueflow_dagster.definitions:defs`.
    (project / "glueflow.yaml").unlink()
    validate = [python, "-m", "dagster", "definitions", "validate", "--module-name", "glueflow_dagster.definitions"]
    done = subprocess.run(validate, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr

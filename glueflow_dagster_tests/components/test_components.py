"""The GlueFlows component: `dg check defs`, `dg list defs`, `dg scaffold defs`, and one parser for both doors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from glueflow_dagster.components.flow_source import load_flows
from glueflow_dagster.core.checks import CHECK_NAMES
from glueflow_dagster.core.config import ConfigError, load_config
from glueflow_dagster_tests.conftest import write_flow_file

REPO = Path(__file__).parents[2]
DG = shutil.which("dg")
pytestmark = pytest.mark.skipif(DG is None, reason="dg (dagster-dg-cli) is not installed: pip install -e '.[dev]'")


def dg(*args: str, cwd: Path, pythonpath: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`dg` as a user runs it; PYTHONPATH puts this checkout first, so dg imports the code under test."""
    env = {k: v for k, v in os.environ.items() if k not in ("GLUEFLOW_CONFIG", "DAGSTER_HOME")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (*pythonpath, REPO))
    env["DAGSTER_DISABLE_TELEMETRY"] = "1"
    return subprocess.run([str(DG), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def list_defs(cwd: Path, pythonpath: tuple[Path, ...] = ()) -> dict[str, Any]:
    done = dg("list", "defs", "--json", cwd=cwd, pythonpath=pythonpath)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_dg_check_and_list_defs_from_the_repo_root_show_the_demo_flow() -> None:
    check = dg("check", "defs", cwd=REPO)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "All definitions loaded successfully" in check.stdout + check.stderr

    listed = list_defs(REPO)
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert set(assets) == {"events/raw_input", "events/staging", "events/output", "events/flow_report"}
    assert assets["events/staging"]["dependency_keys"] == ["events/raw_input"]
    assert assets["events/output"]["dependency_keys"] == ["events/staging"]
    assert assets["events/flow_report"]["dependency_keys"] == ["events/output"]
    assert not assets["events/raw_input"]["is_executable"]
    # Every definition points at the demo flow's one declaration: the flow file the instance names.
    assert {a["source"].split(":")[0] for a in listed["assets"]} == {"glueflow.yaml"}
    assert {j["name"] for j in listed["jobs"]} == {"events_input_job", "events_output_job", "events_bookmark_admin_job"}
    assert [(s["name"], s["cron_schedule"]) for s in listed["schedules"]] == [("events_input_schedule", "*/30 * * * *")]
    # F/flow_report's eager automation condition brings Dagster's automation sensor (stopped by default).
    sensors = sorted(s["name"] for s in listed["sensors"])
    assert sensors == ["events_flow_report_sensor", "events_output_sensor"]
    assert {c["key"] for c in listed["asset_checks"]} == {f"events/output:{name}" for name in CHECK_NAMES}


def test_the_demo_flow_is_declared_once_in_the_flow_file_the_instance_names() -> None:
    instance = REPO / "glueflow_dagster" / "defs" / "events" / "defs.yaml"
    assert yaml.safe_load(instance.read_text())["attributes"] == {"flow_file": "../../../glueflow.yaml"}
    from_file = load_config(REPO / "glueflow.yaml")
    from_component = load_flows(instance)
    assert from_component == from_file  # the same file, the same rules: local uris against the repo root
    assert from_component.project_dir == REPO


def test_dg_shows_and_checks_the_attributes_schema(tmp_path: Path) -> None:
    done = dg("utils", "inspect-component", "glueflow_dagster.GlueFlows", "--defs-yaml-json-schema", cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    attributes = json.loads(done.stdout)["properties"]["attributes"]
    assert set(attributes["properties"]) == {"flows", "flow_file"}
    assert {"Flow", "InputLocation", "StagingLocation", "OutputLocation", "InputJob", "OutputJob", "Spark"} <= set(
        name.removesuffix("Model") for name in attributes["$defs"]
    )
    # `dg check yaml` refuses an unknown key against that schema, naming the file and line.
    project = _tmp_project(tmp_path / "project")
    folder = project / "userproj" / "defs" / "typo"
    folder.mkdir()
    text = scaffold(project, "typo").replace("recurse: true", "recurse: true, recurce: false")
    (folder / "defs.yaml").write_text(text, encoding="utf-8")
    check = dg("check", "yaml", cwd=project, pythonpath=(project,))
    assert check.returncode != 0
    assert f"{folder / 'defs.yaml'}:" in check.stdout + check.stderr


def test_the_schema_has_every_key_of_the_flow_parser() -> None:
    from glueflow_dagster.components.glue_flows import SECTIONS
    from glueflow_dagster.core import config

    expected = {
        "flow": config.FLOW_KEYS,
        "input": (*config.LOCATION_KEYS, *config.READ_LOCATION_KEYS),
        "staging": (*config.LOCATION_KEYS, *config.READ_LOCATION_KEYS, *config.WRITTEN_LOCATION_KEYS),
        "output": (*config.LOCATION_KEYS, *config.WRITTEN_LOCATION_KEYS, *config.OUTPUT_LOCATION_KEYS),
        "input_job": config.INPUT_JOB_KEYS,
        "output_job": config.OUTPUT_JOB_KEYS,
        "spark": (*config.SPARK_LOCAL_KEYS, *(k for r, o in config.SPARK_REMOTE_KEYS.values() for k in (*r, *o))),
    }
    assert {name: set(model.model_fields) for name, model in SECTIONS.items()} == {
        name: set(keys) for name, keys in expected.items()
    }


def scaffold(project: Path, name: str) -> str:
    from glueflow_dagster.components.flow_source import demo_flow_file
    from glueflow_dagster.components.glue_flows import scaffold_flow_name, scaffold_text

    return scaffold_text("glueflow_dagster.GlueFlows", scaffold_flow_name(name), demo_flow_file())


def test_the_scaffold_template_is_made_from_the_demo_flow(tmp_path: Path) -> None:
    document = yaml.safe_load(scaffold(tmp_path, "click-stream"))
    [(name, flow)] = document["attributes"]["flows"].items()
    demo = yaml.safe_load((REPO / "glueflow.yaml").read_text())["flows"]["events"]
    assert name == "click_stream"
    for role in ("input", "staging", "output"):
        assert flow[role].pop("uri") == demo[role].pop("uri").replace("data}/", "data}/click_stream/")
    assert flow == demo


def test_glueflow_config_replaces_the_defs_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import AssetKey

    from glueflow_dagster.definitions import load_project_definitions

    monkeypatch.delenv("GLUEFLOW_CONFIG", raising=False)
    keys = load_project_definitions().resolve_asset_graph().get_all_asset_keys()
    assert AssetKey(["events", "output"]) in keys

    monkeypatch.setenv("GLUEFLOW_CONFIG", str(write_flow_file(tmp_path, flow="orders")))
    keys = load_project_definitions().resolve_asset_graph().get_all_asset_keys()
    assert AssetKey(["orders", "output"]) in keys
    assert AssetKey(["events", "output"]) not in keys


def _tmp_project(root: Path) -> Path:
    """A minimal dg project that uses GlueFlows from this package (as a user's project would)."""
    (root / "userproj" / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "userproj"\n'
        'code_location_target_module = "userproj.definitions"\nregistry_modules = ["glueflow_dagster"]\n',
        encoding="utf-8",
    )
    (root / "userproj" / "__init__.py").write_text("", encoding="utf-8")
    (root / "userproj" / "defs" / "__init__.py").write_text("", encoding="utf-8")
    (root / "userproj" / "definitions.py").write_text(
        "from pathlib import Path\n\nimport dagster as dg\n\n\n@dg.definitions\ndef defs() -> dg.Definitions:\n"
        "    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)\n",
        encoding="utf-8",
    )
    return root


def test_dg_scaffold_defs_writes_a_working_instance(tmp_path: Path, instance: Any) -> None:
    from glueflow_dagster.cli.demo import run_demo
    from glueflow_dagster.definitions import build_definitions

    project = _tmp_project(tmp_path / "project")
    done = dg("scaffold", "defs", "glueflow_dagster.GlueFlows", "click-stream", cwd=project, pythonpath=(project,))
    assert done.returncode == 0, done.stdout + done.stderr
    defs_yaml = project / "userproj" / "defs" / "click-stream" / "defs.yaml"
    assert yaml.safe_load(defs_yaml.read_text())["type"] == "glueflow_dagster.GlueFlows"

    check = dg("check", "defs", cwd=project, pythonpath=(project,))
    assert check.returncode == 0, check.stdout + check.stderr
    listed = list_defs(project, pythonpath=(project,))
    assert {a["asset_key"] for a in listed["assets"]} == {
        f"click_stream/{name}" for name in ("raw_input", "staging", "output", "flow_report")
    }
    sensors = sorted(s["name"] for s in listed["sensors"])
    assert sensors == ["click_stream_flow_report_sensor", "click_stream_output_sensor"]

    # The scaffolded flow runs: sample data -> Input run -> sensor tick -> Output run, locally under
    # the project root (the CLI reads the same defs.yaml with --config).
    config = load_flows(defs_yaml)
    flow = config.flows["click_stream"]
    assert flow.input.uri == str(project / ".glueflow" / "data" / "click_stream" / "input")
    rows = run_demo(build_definitions(config), instance, flow, 2)
    assert [row.ratio for row in rows] == [1.0, 1.0]
    assert all(row.input_bytes_written > 0 for row in rows)


def test_a_bad_instance_fails_dg_check_with_the_flow_files_one_line_error(tmp_path: Path) -> None:
    project = _tmp_project(tmp_path / "project")
    folder = project / "userproj" / "defs" / "bad"
    folder.mkdir()
    flow_file = write_flow_file(tmp_path / "flowfile", schedule="*/30 * * * *")
    flows = yaml.safe_load(flow_file.read_text())
    flows["flows"]["events"]["staging"]["compression"] = "zip"
    flow_file.write_text(yaml.safe_dump(flows), encoding="utf-8")
    (folder / "defs.yaml").write_text(
        yaml.safe_dump({"type": "glueflow_dagster.GlueFlows", "attributes": flows}), encoding="utf-8"
    )
    message = "flow 'events'.staging.compression: expected one of gzip, none, got 'zip'"
    # The flow file door and the component door (CLI) give the same one line, naming their file.
    for path in (flow_file, folder / "defs.yaml"):
        with pytest.raises(ConfigError) as err:
            load_flows(path)
        assert str(err.value) == f"{path}: {message}"
    check = dg("check", "defs", cwd=project, pythonpath=(project,))
    assert check.returncode != 0
    assert f"ConfigError: {folder / 'defs.yaml'}: {message}" in check.stdout + check.stderr


def test_installed_without_its_source_tree_the_packaged_defs_folder_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel in site-packages has no pyproject.toml above it: the defs folder loads directly and
    local uris resolve against the working directory."""
    from dagster import AssetKey

    import glueflow_dagster.definitions as definitions

    monkeypatch.setattr(definitions, "PROJECT_ROOT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GLUEFLOW_DATA", raising=False)
    defs = definitions.load_component_definitions()
    assert AssetKey(["events", "staging"]) in defs.resolve_asset_graph().get_all_asset_keys()


def test_dagster_definitions_validate_loads_the_defs_folder_without_warnings_from_our_code() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GLUEFLOW_CONFIG"}
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
    assert "glueflow_dagster/" not in output


def test_the_lazy_export_keeps_the_core_free_of_dagster() -> None:
    """`glueflow_dagster.GlueFlows` is exported lazily: importing the package and its flow parser
    does not import Dagster, and dg's registry scan (dir + getattr) still finds the component type."""
    code = (
        "import sys, glueflow_dagster, glueflow_dagster.core.config\n"
        "assert 'dagster' not in sys.modules, 'dagster imported'\n"
        "assert 'GlueFlows' in dir(glueflow_dagster)\n"
        "from dagster.components.core.package_entry import get_package_objects_in_module\n"
        "print(sorted(name for name, _ in get_package_objects_in_module(glueflow_dagster)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['GlueFlows']"


def test_two_instances_whose_flows_share_a_location_fail_dg_check_with_one_line(tmp_path: Path) -> None:
    """Issue 22 item 1: the overlap refusal covers every flow of the code location, whatever file declares it."""
    project = _tmp_project(tmp_path / "project")
    for name in ("orders", "refunds"):
        folder = project / "userproj" / "defs" / name
        folder.mkdir()
        text = scaffold(project, name)
        if name == "refunds":
            text = text.replace("data}/refunds/staging", "data}/orders/staging")  # shares orders' staging
        (folder / "defs.yaml").write_text(text, encoding="utf-8")
    check = dg("check", "defs", cwd=project, pythonpath=(project,))
    assert check.returncode != 0
    [line] = [line for line in (check.stdout + check.stderr).splitlines() if "ConfigError:" in line]
    defs = project / "userproj" / "defs"
    assert f"{defs / 'orders' / 'defs.yaml'}: flow 'orders'.staging.uri" in line
    assert f"{defs / 'refunds' / 'defs.yaml'}: flow 'refunds'.staging.uri" in line
    assert "are the same location" in line


DEFS_YAML_BOMB = """\
type: glueflow_dagster.GlueFlows
attributes:
  flows:
    events:
      tags:
        a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
        b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
        c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
        d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
        e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
        f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
        g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
        h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
        i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_the_code_location_refuses_a_defs_yaml_alias_bomb_before_dagster_expands_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22 item 9: Dagster's component loader expands aliases (minutes for this file), so the code
    location scans its defs folder first. (`dg check yaml`, dg's own first step, is Dagster's: not covered.)"""
    import time

    import glueflow_dagster.definitions as definitions

    bomb = tmp_path / "defs" / "bomb" / "defs.yaml"
    bomb.parent.mkdir(parents=True)
    bomb.write_text(DEFS_YAML_BOMB, encoding="utf-8")
    assert len(DEFS_YAML_BOMB) < 800
    monkeypatch.setattr(definitions, "DEFS_FOLDER", tmp_path / "defs")
    monkeypatch.delenv("GLUEFLOW_CONFIG", raising=False)
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        definitions.load_project_definitions()
    assert time.monotonic() - started < 5
    assert str(raised.value) == (
        f"{bomb}: line 7: YAML aliases (*a) are not allowed in a component instance (write the value out)"
    )

"""End to end, as a user sees it: `dg dev` / `dagster dev` (webserver and daemon) runs the flow by itself.

Two variants, the two doors of a flow, on the two instances:
- sqlite: `dg dev` in a dg project whose `defs/events/defs.yaml` is a `glueflow_dagster.GlueFlows`
  component instance (what `dg scaffold defs` writes), on the demo's SQLite DAGSTER_HOME;
- postgres: `dagster dev -w workspace.yaml` with the flow file (`GLUEFLOW_CONFIG`), on the production
  PostgreSQL instance.

The Input schedule (cron overridden to every minute, stopped once it has fired) fires, the Output sensor
launches the Output run, GraphQL returns the plottable metadata, the component tree and the definition
metadata (owners, column schema, column lineage), and headless Chromium (Debian's, driven by Playwright)
shows: where the location comes from, F/output's columns with their Glue types and column lineage,
owners, the lineage raw_input -> staging -> output, F/output's six headline plots first (the flow ratio's
drawn), F/raw_input's observations and, at 1,366x768, F/flow_report's chart without a click and its windows
table's ratio column not cut off (ui_story.py). In the sqlite variant the browser also clicks "Materialize"
on F/output and the test checks that F/flow_report is redrawn after that run and that `glueflow report`
agrees with every Output run's flow_ratio.

Screenshots go to the test's tmp_path; with GLUEFLOW_UPDATE_DOCS=1 the sqlite variant's also refresh
docs/ui_*.png (the pictures the README shows), so an ordinary test run leaves the work tree untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import glueflow_dagster
from glueflow_dagster_tests.conftest import (
    SMALL_FLOW_MAPPINGS,
    flow_document,
    postgres_home,
    raw_records,
    write_flow_file,
)
from glueflow_dagster_tests.end_to_end.ui_story import check_flow_report, check_output_plots, dismiss_community_dialog
from glueflow_dagster_tests.support.processes import command_line, descendants, describe, marked

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
RECORDS = 200
# Startup, the next minute boundary, the Input run, a 30 s sensor interval and the Output run.
RUNS_TIMEOUT_S = 240
STOP_TIMEOUT_S = 20
# The environment variable every process `dagster dev` starts inherits: how the test finds them all.
MARK = "GLUEFLOW_UI_TEST_MARK"
# The UI's "Materialize" run, then a 30 s automation sensor interval and the run redrawing F/flow_report.
MATERIALIZE_TIMEOUT_S = 180
OWNERS = ["team:data"]
# The sqlite variant's dg project (its code location) and the postgres variant's workspace.yaml location.
COMPONENT_PROJECT, FLOW_FILE_LOCATION = "glueflow_ui", "glueflow_dagster"
# The variant whose screenshots GLUEFLOW_UPDATE_DOCS=1 copies to docs/: the component, as the README runs it.
DOCS_VARIANT = "sqlite"
REPORT_SENSOR = "events_flow_report_sensor"  # glueflow's, running by default
IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)",
)

RUNS_QUERY = """
query Runs {
  runsOrError(limit: 50) {
    __typename
    ... on Runs { results { runId jobName status startTime endTime tags { key value } assetSelection { path } } }
    ... on PythonError { message }
  }
}
"""

MATERIALIZATIONS_QUERY = """
query Materializations($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 20) {
        runId
        metadataEntries {
          label
          __typename
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
          ... on TextMetadataEntry { text }
          ... on PathMetadataEntry { path }
          ... on MarkdownMetadataEntry { mdStr }
        }
      }
    }
  }
}
"""


ASSET_DEFINITION_QUERY = """
query AssetDefinition($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) {
    owners { __typename ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    metadataEntries {
      label
      __typename
      ... on TableSchemaMetadataEntry { schema { columns { name type description } } }
      ... on TableColumnLineageMetadataEntry {
        lineage { columnName columnDeps { assetKey { path } columnName } }
      }
    }
  }
}
"""

COMPONENTS_QUERY = """
query Components($location: String!) {
  componentsForLocationOrError(locationName: $location) {
    __typename
    ... on Components { components { componentId componentType } }
    ... on PythonError { message }
  }
}
"""

SCHEDULE_QUERY = """
query Schedule($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) { __typename ... on Schedule { id } }
}
"""

STOP_SCHEDULE_MUTATION = """
mutation StopSchedule($id: String) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}
"""


@dataclass
class DagsterDev:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    marker: str
    variant: str = "sqlite"
    location: str = FLOW_FILE_LOCATION
    # The file declaring the flow: the component instance's defs.yaml, or the flow file.
    config_path: Path = Path("glueflow.yaml")
    from_component: bool = False
    project: Path = Path(".")  # the folder holding data/input, data/staging, data/output
    # DAGSTER_HOME and the instance's variables: what `glueflow report` needs to read the same runs.
    instance_env: dict[str, str] = field(default_factory=dict)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            document = json.load(response)
        assert "errors" not in document, document["errors"]
        return document["data"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _marked_pids(marker: str) -> list[int]:
    """Processes whose environment carries the marker: everything `dagster dev` started, even escapees."""
    return marked(MARK, marker)


def _stop(dev: DagsterDev) -> None:
    """SIGTERM the process group, wait, SIGKILL what is left; then no process of ours may remain."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(dev.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and _marked_pids(dev.marker):
        time.sleep(0.5)
    left = _marked_pids(dev.marker)
    if left:
        print(f"still running {STOP_TIMEOUT_S} s after SIGTERM, killed: {describe(left)}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dev.process.pid, signal.SIGKILL)
        for pid in left:  # any that left the group (all carry the marker)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        dev.process.wait(timeout=10)
    assert dev.process.poll() is not None, "dagster dev did not exit"
    assert not _marked_pids(dev.marker), f"processes left behind: {_marked_pids(dev.marker)}"


def _dg() -> str | None:
    """The `dg` of this interpreter (dagster-dg-cli), else the one on PATH."""
    beside = Path(sys.executable).with_name("dg")
    return str(beside) if beside.is_file() else shutil.which("dg")


def _component_project(root: Path) -> Path:
    """A dg project as `dg scaffold project` and `dg scaffold defs glueflow_dagster.GlueFlows events` leave
    it, with the test's flow as the instance's attributes; returns the instance's defs.yaml."""
    import yaml

    package = root / COMPONENT_PROJECT
    instance = package / "defs" / "events"
    instance.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\n'
        f'root_module = "{COMPONENT_PROJECT}"\ncode_location_name = "{COMPONENT_PROJECT}"\n'
        f'code_location_target_module = "{COMPONENT_PROJECT}.definitions"\n'
        'registry_modules = ["glueflow_dagster"]\n',
        encoding="utf-8",
    )
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "definitions.py").write_text(
        "from pathlib import Path\n\nimport dagster as dg\n\n\n@dg.definitions\ndef defs() -> dg.Definitions:\n"
        "    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)\n",
        encoding="utf-8",
    )
    document = {
        "type": "glueflow_dagster.GlueFlows",
        "attributes": flow_document(schedule="* * * * *", owners=OWNERS),
    }
    defs_yaml = instance / "defs.yaml"
    defs_yaml.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return defs_yaml


@pytest.fixture(params=["sqlite", "postgres"])
def dagster_dev(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DagsterDev]:
    """`dg dev` serving the flow as a GlueFlows component instance on the demo's SQLite DAGSTER_HOME, and
    `dagster dev` serving it from the flow file (GLUEFLOW_CONFIG) on the production PostgreSQL one."""
    project = tmp_path / "project"
    home = tmp_path / "dagster_home"
    instance_env: dict[str, str] = {}
    port = _free_port()
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != "GLUEFLOW_CONFIG"}
    if request.param == "postgres":
        instance_env = postgres_home(request.getfixturevalue("postgres_instance_url"), home)
        config_path = write_flow_file(project, schedule="* * * * *", owners=OWNERS)
        env["GLUEFLOW_CONFIG"] = str(config_path)
        command = [sys.executable, "-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml")]
        cwd, location, label = REPO, FLOW_FILE_LOCATION, "dagster dev"
    else:
        dg = _dg()
        if dg is None:
            pytest.skip("dg (dagster-dg-cli) is not installed: pip install -e '.[dev]'")
        home.mkdir()
        shutil.copyfile(Path(glueflow_dagster.__file__).with_name("dagster.yaml"), home / "dagster.yaml")
        config_path = _component_project(project)
        # As a user runs it from the project folder; PYTHONPATH: the project's module, then this checkout.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(project), env.get("PYTHONPATH", "")) if p)
        command = [dg, "dev", "--use-active-venv"]
        cwd, location, label = project, COMPONENT_PROJECT, "dg dev"
    raw = project / "data" / "input" / "batch=0"
    raw.mkdir(parents=True)
    (raw / "a.json").write_bytes(raw_records(0, RECORDS // 2))
    (raw / "b.json").write_bytes(raw_records(RECORDS // 2, RECORDS // 2))
    instance_env["DAGSTER_HOME"] = str(home)
    env.update(
        {
            **instance_env,
            MARK: marker,
            "PYTHONUNBUFFERED": "1",
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
    )
    log_path = tmp_path / "dagster_dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "-h", "127.0.0.1", "-p", str(port)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dev = DagsterDev(
        f"http://127.0.0.1:{port}",
        process,
        log_path,
        marker,
        variant=request.param,
        location=location,
        config_path=config_path,
        from_component=request.param == "sqlite",
        project=project,
        instance_env=instance_env,
    )
    started = time.monotonic()
    try:
        _wait_for_server(dev)
        print(f"{label} answered /server_info after {time.monotonic() - started:.0f} s")
        yield dev
    finally:
        stopping = time.monotonic()
        _stop(dev)
        print(f"{label} stopped in {time.monotonic() - stopping:.1f} s")


def _wait_for_server(dev: DagsterDev, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if dev.process.poll() is not None:
            pytest.fail(f"dagster dev exited with {dev.process.returncode}:\n{dev.log_tail()}")
        try:
            with urllib.request.urlopen(f"{dev.url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    pytest.fail(f"dagster dev did not answer /server_info within {timeout_s} s:\n{dev.log_tail()}")


def _tags(run: dict[str, Any]) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["tags"]}


def _wait_for_scheduled_input_and_sensed_output(dev: DagsterDev) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first Input run the schedule launched, and the Output run the sensor launched for it."""
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    runs: list[dict[str, Any]] = []
    schedule_stopped = False
    while time.monotonic() < deadline:
        if dev.process.poll() is not None:
            pytest.fail(f"dagster dev exited with {dev.process.returncode}:\n{dev.log_tail()}")
        result = dev.graphql(RUNS_QUERY)["runsOrError"]
        assert result["__typename"] == "Runs", result
        runs = sorted(result["results"], key=lambda run: run["startTime"] or float("inf"))
        scheduled = [
            run
            for run in runs
            if run["jobName"] == "events_input_job"
            and _tags(run).get("dagster/schedule_name") == "events_input_schedule"
        ]
        if scheduled and not schedule_stopped:
            # It has fired: stopped before the next minute, so the flow has one Input window (and the
            # 2-core machine is not running an Input run a minute while Chromium renders).
            _stop_schedule(dev, "events_input_schedule")
            schedule_stopped = True
        for run in runs:
            if run["status"] in ("FAILURE", "CANCELED"):
                pytest.fail(f"run {run['runId']} ({run['jobName']}) {run['status']}:\n{dev.log_tail()}")
        if scheduled and scheduled[0]["status"] == "SUCCESS":
            input_run = scheduled[0]
            followers = [
                run
                for run in runs
                if run["jobName"] == "events_output_job"
                and _tags(run).get("glueflow/input_run_id") == input_run["runId"]
            ]
            if followers and followers[0]["status"] == "SUCCESS":
                assert _tags(followers[0]).get("dagster/sensor_name") == "events_output_sensor"
                return input_run, followers[0]
        time.sleep(3)
    statuses = "\n".join(f"  {run['jobName']} {run['runId']} {run['status']} {_tags(run)}" for run in runs)
    pytest.fail(
        f"no scheduled Input run followed by a successful sensor Output run within {RUNS_TIMEOUT_S} s;\n"
        f"runs:\n{statuses or '  (none)'}\nlast log lines:\n{dev.log_tail()}"
    )


def _selector(dev: DagsterDev) -> dict[str, str]:
    return {"repositoryLocationName": dev.location, "repositoryName": "__repository__"}


def _stop_schedule(dev: DagsterDev, name: str) -> None:
    schedule = dev.graphql(SCHEDULE_QUERY, {"selector": {**_selector(dev), "scheduleName": name}})["scheduleOrError"]
    assert schedule["__typename"] == "Schedule", schedule
    stopped = dev.graphql(STOP_SCHEDULE_MUTATION, {"id": schedule["id"]})["stopRunningSchedule"]
    assert stopped["__typename"] == "ScheduleStateResult", stopped
    assert stopped["scheduleState"]["status"] == "STOPPED", stopped


def _runs(dev: DagsterDev) -> list[dict[str, Any]]:
    result = dev.graphql(RUNS_QUERY)["runsOrError"]
    assert result["__typename"] == "Runs", result
    return sorted(result["results"], key=lambda run: run["startTime"] or float("inf"))


def _wait_until(what: str, dev: DagsterDev, timeout_s: float, probe: Any) -> Any:
    """Poll `probe()` until it returns something truthy; fail with the runs and the log otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if dev.process.poll() is not None:
            pytest.fail(f"dagster dev exited with {dev.process.returncode}:\n{dev.log_tail()}")
        found = probe()
        if found:
            return found
        time.sleep(2)
    statuses = "\n".join(f"  {run['jobName']} {run['runId']} {run['status']} {_tags(run)}" for run in _runs(dev))
    pytest.fail(f"{what}: not within {timeout_s} s;\nruns:\n{statuses}\nlast log lines:\n{dev.log_tail()}")


def _finished(dev: DagsterDev, run_id: str) -> dict[str, Any] | None:
    [run] = [run for run in _runs(dev) if run["runId"] == run_id]
    if run["status"] in ("FAILURE", "CANCELED"):
        pytest.fail(f"run {run_id} ({run['jobName']}) {run['status']}:\n{dev.log_tail()}")
    return run if run["status"] == "SUCCESS" else None


def _iso(timestamp_s: float) -> str:
    """A window's start as the report prints it (UTC, to the second)."""
    return datetime.fromtimestamp(timestamp_s, tz=UTC).isoformat(timespec="seconds")


def _materializations(dev: DagsterDev, path: list[str]) -> list[dict[str, Any]]:
    asset = dev.graphql(MATERIALIZATIONS_QUERY, {"path": path})["assetOrError"]
    assert asset["__typename"] == "Asset", asset
    return asset["assetMaterializations"]


def _check_location(dev: DagsterDev) -> None:
    """The component tree GraphQL serves: the GlueFlows instance when the location is a dg project's defs
    folder; none when the flow file (GLUEFLOW_CONFIG) defines the location."""
    result = dev.graphql(COMPONENTS_QUERY, {"location": dev.location})["componentsForLocationOrError"]
    assert result["__typename"] == "Components", result
    glueflows = [c["componentId"] for c in result["components"] if c["componentType"] == "glueflow_dagster.GlueFlows"]
    if dev.from_component:
        assert glueflows == ["events[0]"], result  # defs/events/defs.yaml, its first (only) document
    else:
        assert glueflows == [], result


def _check_definition_metadata(dev: DagsterDev) -> None:
    """F/output's definition as the webserver serves it: owners, the Glue column schema from the output
    mappings, and the column lineage output column <- staging column."""
    [node] = dev.graphql(ASSET_DEFINITION_QUERY, {"path": ["events", "output"]})["assetNodes"]
    assert node["owners"] == [{"__typename": "TeamAssetOwner", "team": "data"}], node["owners"]
    entries = {entry["label"]: entry for entry in node["metadataEntries"]}
    columns = entries["dagster/column_schema"]["schema"]["columns"]
    mappings = SMALL_FLOW_MAPPINGS["output"]
    assert [(c["name"], c["type"]) for c in columns] == [(target, kind) for _, _, target, kind in mappings]
    lineage = {
        item["columnName"]: [(dep["assetKey"]["path"], dep["columnName"]) for dep in item["columnDeps"]]
        for item in entries["dagster/column_lineage"]["lineage"]
    }
    assert lineage == {target: [(["events", "staging"], source)] for source, _, target, _ in mappings}


def _metadata(dev: DagsterDev, path: list[str], run_id: str) -> dict[str, dict[str, Any]]:
    asset = dev.graphql(MATERIALIZATIONS_QUERY, {"path": path})["assetOrError"]
    assert asset["__typename"] == "Asset", asset
    [materialization] = [m for m in asset["assetMaterializations"] if m["runId"] == run_id]
    return {entry["label"]: entry for entry in materialization["metadataEntries"]}


def _int(entries: dict[str, dict[str, Any]], label: str) -> int:
    entry = entries[label]
    assert entry["__typename"] == "IntMetadataEntry", entry
    return int(entry["intValue"])


def _save(page: Any, name: str, tmp_path: Path, dev: DagsterDev) -> Path:
    (shot := tmp_path / "screenshots" / name).parent.mkdir(exist_ok=True)
    page.screenshot(path=str(shot))
    if os.environ.get("GLUEFLOW_UPDATE_DOCS") == "1" and dev.variant == DOCS_VARIANT:
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / name)
    return shot


def _check_output_overview(page: Any, dev: DagsterDev, tmp_path: Path) -> None:
    """F/output's overview: the columns with their Glue types and column lineage, the owners, and where the
    definitions come from (the code location, the declaring file, the component)."""
    from playwright.sync_api import expect

    page.goto(f"{dev.url}/assets/events/output", wait_until="networkidle")
    dismiss_community_dialog(page)
    columns = page.get_by_text("Columns", exact=True).locator("visible=true").first
    expect(columns).to_be_visible()
    for source, _, target, kind in SMALL_FLOW_MAPPINGS["output"]:
        row = page.locator("tr", has=page.get_by_text(target, exact=True)).first
        cells = row.locator("td")
        expect(cells.nth(0)).to_have_text(target)
        expect(cells.nth(1)).to_have_text(kind)  # the Glue type name, as the mapping writes it
        # dagster/column_lineage is not drawn by Dagster's open-source UI: the description names it.
        expect(cells.nth(2)).to_contain_text(f"column lineage: events/staging.{source}")
    owners = page.get_by_text("Owners", exact=True).locator("visible=true").first.locator("xpath=..")
    expect(owners).to_contain_text("data")
    expect(owners.locator('[aria-label="people"]')).to_have_count(1)  # a team owner (team:data)
    location = page.get_by_text("Code location", exact=True).locator("visible=true").first.locator("xpath=..")
    expect(location).to_contain_text(dev.location)
    source = page.get_by_text("Source code", exact=True).locator("visible=true").first.locator("xpath=..")
    expect(source).to_contain_text(f"flow events in {dev.config_path.name}")
    origin = page.locator("tr", has=page.get_by_text("dagster/component_origin", exact=True))
    if dev.from_component:
        expect(origin.first).to_contain_text("GlueFlows")  # load_from_defs_folder marks what it built
    else:
        expect(origin).to_have_count(0)
    columns.evaluate("element => element.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    _save(page, "ui_output_columns.png", tmp_path, dev)


def _click_materialize(page: Any, dev: DagsterDev) -> dict[str, Any]:
    """Click "Materialize" on F/output's page (already open) once no run is in progress; returns the new run.
    `F_flow_report_sensor` compares the latest materializations, so nothing has to tick before the click."""
    from playwright.sync_api import expect

    _wait_until("no run in progress", dev, 120, lambda: all(r["status"] not in IN_PROGRESS for r in _runs(dev)))
    known = {run["runId"] for run in _runs(dev)}
    button = page.get_by_role("button").filter(has_text=re.compile(r"^\s*Materialize\s*$")).first
    expect(button).to_be_enabled()
    button.click()
    launched = _wait_until(
        "the run launched by the UI's Materialize", dev, 60, lambda: [r for r in _runs(dev) if r["runId"] not in known]
    )
    assert len(launched) == 1, launched
    return launched[0]


def _check_raw_input_observations(page: Any, dev: DagsterDev, tmp_path: Path) -> None:
    """F/raw_input's events: the Input runs' observations of the source, with what they listed."""
    from playwright.sync_api import expect

    input_runs = [r["runId"] for r in _runs(dev) if r["jobName"] == "events_input_job"]
    raw = dev.project / "data" / "input"
    listed = {
        "objects_listed": str(len(list(raw.rglob("*.json")))),
        "bytes_listed": str(sum(path.stat().st_size for path in raw.rglob("*.json"))),
        "dagster/uri": raw.resolve().as_uri(),
    }
    page.goto(f"{dev.url}/assets/events/raw_input?view=events", wait_until="networkidle")
    dismiss_community_dialog(page)
    observed = page.get_by_text("Observed in run").locator("visible=true").first
    expect(observed).to_be_visible()
    expect(observed.locator("a").first).to_have_text(re.compile("|".join(run_id[:8] for run_id in input_runs)))
    for label, value in listed.items():
        row = page.locator("tr", has=page.get_by_text(label, exact=True)).locator("visible=true").first
        expect(row).to_contain_text(value)
    page.wait_for_timeout(300)
    _save(page, "ui_raw_input_observations.png", tmp_path, dev)


def _glueflow_report(dev: DagsterDev) -> dict[str, Any]:
    """`glueflow report --json` on the instance the UI serves, with the file that declares the flow."""
    done = subprocess.run(
        [sys.executable, "-m", "glueflow_dagster.cli", "report", "--json", "--config", str(dev.config_path)],
        env={**{k: v for k, v in os.environ.items() if k != "GLUEFLOW_CONFIG"}, **dev.instance_env},
        cwd=dev.project,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _check_materialized_run_and_report(dev: DagsterDev, launched: dict[str, Any], reports_before: set[str]) -> None:
    """The UI's "Materialize" of F/output: a run of F/output alone that succeeds, F/flow_report redrawn after
    it (`F_flow_report_sensor` runs its eager condition), and one set of figures: the redrawn table and
    `glueflow report` give each window the flow_ratio of the latest Output run counted in it."""
    run_id = launched["runId"]
    ui_run = _wait_until("the UI's Materialize run", dev, MATERIALIZE_TIMEOUT_S, lambda: _finished(dev, run_id))
    assert ui_run["jobName"] == "__ASSET_JOB", ui_run
    assert [a["path"] for a in ui_run["assetSelection"]] == [["events", "output"]], ui_run
    assert "glueflow/input_run_id" not in _tags(ui_run)  # not the sensor's: no run config, no tag
    output = _metadata(dev, ["events", "output"], run_id)
    # bookmark: disable, so it reads all of staging again.
    assert _int(output, "records_read") == _int(output, "records_written") == RECORDS
    assert output["flow_ratio"]["__typename"] == "FloatMetadataEntry", output["flow_ratio"]
    ratio = output["flow_ratio"]["floatValue"]
    window_run = output["input_run_id"]["text"]
    if len(_materializations(dev, ["events", "staging"])) == 1:
        # One Input window read twice (the sensed run, then this one): the "14.00 measured".
        assert ratio == pytest.approx(2.0, abs=0.01)

    def redrawn() -> dict[str, Any] | None:
        new = [m for m in _materializations(dev, ["events", "flow_report"]) if m["runId"] not in reports_before]
        return new[0] if new and _finished(dev, new[0]["runId"]) else None

    report = _wait_until("F/flow_report redrawn after the UI's run", dev, MATERIALIZE_TIMEOUT_S, redrawn)
    runs = {run["runId"]: run for run in _runs(dev)}
    redraw_run = runs[report["runId"]]
    print(f"F/flow_report redrawn by run {redraw_run['runId']} ({redraw_run['jobName']}, {_tags(redraw_run)})")
    assert [a["path"] for a in redraw_run["assetSelection"]] == [["events", "flow_report"]], redraw_run
    assert _tags(redraw_run).get("dagster/sensor_name") == REPORT_SENSOR, redraw_run
    assert redraw_run["startTime"] >= ui_run["endTime"], (redraw_run, ui_run)
    window_start = _iso(runs[window_run]["startTime"])
    table = {entry["label"]: entry for entry in report["metadataEntries"]}["windows"]["mdStr"]
    rows = [line for line in table.splitlines() if line.startswith(f"| {window_start} |")]
    assert len(rows) == 1 and rows[0].startswith(f"| {window_start} | {ratio:.2f} |"), (window_start, ratio, table)

    # Each window's ratio is the flow_ratio of the latest Output run counted in it (its own record).
    expected: dict[str, float] = {}
    outputs = sorted(_materializations(dev, ["events", "output"]), key=lambda m: runs[m["runId"]]["startTime"])
    for materialization in outputs:
        entries = {entry["label"]: entry for entry in materialization["metadataEntries"]}
        if "flow_ratio" in entries and "input_run_id" in entries:
            expected[_iso(runs[entries["input_run_id"]["text"]]["startTime"])] = entries["flow_ratio"]["floatValue"]
    printed = {window["start"]: window["ratio"] for window in _glueflow_report(dev)["windows"]}
    assert expected[window_start] == pytest.approx(ratio)
    assert set(expected) <= set(printed), (expected, printed)
    for start, flow_ratio in expected.items():
        assert printed[start] == pytest.approx(flow_ratio, abs=1e-3), (start, printed, expected)


def _check_ui(dev: DagsterDev, tmp_path: Path, *, materialize: bool) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a loaded 2-core CI machine renders slowly
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(30_000)
            # Marks the community dialog as seen; dismiss_community_dialog covers a renamed key.
            context.add_init_script("window.localStorage.setItem('communityNux', '1')")
            page = context.new_page()

            def save(name: str) -> Path:
                return _save(page, name, tmp_path, dev)

            # F/output's overview: columns, column lineage, owners, the location's origin.
            _check_output_overview(page, dev, tmp_path)
            launched = None
            if materialize:  # from the page just checked; the run goes on while the other pages are checked
                reports_before = {m["runId"] for m in _materializations(dev, ["events", "flow_report"])}
                launched = _click_materialize(page, dev)
                print(f"the UI's Materialize launched run {launched['runId']}")

            # The Staging asset's page: upstream raw_input, downstream output.
            page.goto(f"{dev.url}/assets/events/staging", wait_until="networkidle")
            dismiss_community_dialog(page)
            upstream = page.get_by_text("Upstream assets", exact=True)
            downstream = page.get_by_text("Downstream assets", exact=True)
            expect(upstream).to_be_visible()
            expect(downstream).to_be_visible()
            lineage = upstream.locator("xpath=ancestor::div[.//*[text()='Downstream assets']][1]")
            expect(lineage.locator('a[href^="/assets/events/raw_input"]').first).to_be_visible()
            expect(lineage.locator('a[href^="/assets/events/output"]').first).to_be_visible()
            upstream_box = upstream.bounding_box()
            downstream_box = downstream.bounding_box()
            raw_box = lineage.locator('a[href^="/assets/events/raw_input"]').first.bounding_box()
            out_box = lineage.locator('a[href^="/assets/events/output"]').first.bounding_box()
            assert upstream_box and downstream_box and raw_box and out_box
            # raw_input sits in the Upstream column, output in the Downstream one.
            assert abs(raw_box["x"] - upstream_box["x"]) < abs(raw_box["x"] - downstream_box["x"])
            assert abs(out_box["x"] - downstream_box["x"]) < abs(out_box["x"] - upstream_box["x"])
            upstream.evaluate("element => element.scrollIntoView({block: 'center'})")
            page.wait_for_timeout(300)
            _save(page, "ui_staging_lineage.png", tmp_path, dev)

            # The asset graph: four nodes, laid out left to right in dependency order.
            page.goto(f"{dev.url}/asset-groups", wait_until="networkidle")
            dismiss_community_dialog(page)
            names = ("raw_input", "staging", "output", "flow_report")
            xs: dict[str, float] = {}
            deadline = time.monotonic() + 30
            while len(xs) < len(names) and time.monotonic() < deadline:
                xs = {}
                for node in page.locator("foreignObject").all():
                    text = node.text_content() or ""
                    for name in names:
                        if text.startswith(name):
                            xs[name] = float(node.get_attribute("x") or "nan")
                page.wait_for_timeout(500)
            assert set(xs) == set(names), f"asset graph nodes: {xs}"
            assert xs["raw_input"] < xs["staging"] < xs["output"] < xs["flow_report"], xs
            page.wait_for_timeout(1000)  # the graph zooms to fit after layout
            _save(page, "ui_lineage.png", tmp_path, dev)
            # F/raw_input: the source observed by each Input run.
            _check_raw_input_observations(page, dev, tmp_path)

            if launched is not None:
                started = time.monotonic()
                _check_materialized_run_and_report(dev, launched, reports_before)
                print(f"the UI's Materialize run and the redrawn report checked in {time.monotonic() - started:.0f} s")

            # The Output asset's page: its metadata plots, the six headline plots first (in the sqlite variant, of
            # the sensed run and the UI's run).
            check_output_plots(page, dev.url, save)

            # F/flow_report at 1,366x768: the chart and the ratio column (after the UI's run, the redrawn one).
            check_flow_report(page, dev.url, save)
        finally:
            browser.close()


def _chromium_children() -> list[int]:
    """Chromium processes that descend from this test process."""
    return [pid for pid in descendants(os.getpid()) if "chrom" in command_line(pid)]


def test_dagster_dev_runs_the_flow_and_the_ui_shows_lineage_and_plots(dagster_dev: DagsterDev, tmp_path: Path) -> None:
    started = time.monotonic()
    input_run, output_run = _wait_for_scheduled_input_and_sensed_output(dagster_dev)
    print(f"scheduled Input run and sensed Output run succeeded after {time.monotonic() - started:.0f} s")
    assert input_run["endTime"] <= output_run["startTime"]
    # The UI's "Materialize" (sqlite variant only: a minute more); F/flow_report's automation sensor runs
    # by default, so nothing is turned on by hand.
    materialize = dagster_dev.variant == "sqlite"

    staging = _metadata(dagster_dev, ["events", "staging"], input_run["runId"])
    for label in ("bytes_read", "bytes_written", "records_read", "records_written"):
        assert _int(staging, label) > 0, label
    assert _int(staging, "records_read") == _int(staging, "records_written") == RECORDS

    output = _metadata(dagster_dev, ["events", "output"], output_run["runId"])
    assert _int(output, "bytes_read") == _int(staging, "bytes_written")
    assert _int(output, "records_read") == _int(output, "records_written") == RECORDS
    assert _int(output, "bytes_written") > 0
    ratio = output["flow_ratio"]
    assert ratio["__typename"] == "FloatMetadataEntry", ratio
    # One Input run so far, read once: the guide's healthy ratio.
    assert ratio["floatValue"] == pytest.approx(1.0, abs=0.01)

    # The Output run also redraws the guide's chart: F/flow_report carries the PNG's path and the table.
    report = _metadata(dagster_dev, ["events", "flow_report"], output_run["runId"])
    assert report["png_path"]["__typename"] == "PathMetadataEntry", report["png_path"]
    png = Path(report["png_path"]["path"])
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert report["windows"]["__typename"] == "MarkdownMetadataEntry", report["windows"]
    assert report["windows"]["mdStr"].startswith("| window start (UTC) |")
    first_window = f"| 1.00 | {_int(staging, 'bytes_written'):,} | {_int(output, 'bytes_read'):,} |"  # ratio second
    assert first_window in report["windows"]["mdStr"], report["windows"]["mdStr"]
    (tmp_path / "screenshots").mkdir(exist_ok=True)
    shutil.copyfile(png, tmp_path / "screenshots" / "flow_report.png")

    _check_location(dagster_dev)
    _check_definition_metadata(dagster_dev)

    started = time.monotonic()
    _check_ui(dagster_dev, tmp_path, materialize=materialize)
    print(f"UI checked in {time.monotonic() - started:.0f} s")
    assert not _chromium_children(), "Chromium processes left running"

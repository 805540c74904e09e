"""End to end, as a user sees it: `dagster dev` (webserver and daemon) runs the flow by itself.

The Input schedule (cron overridden to every minute) fires, the Output sensor launches the Output run,
GraphQL returns the plottable metadata, and headless Chromium (Debian's, driven by Playwright) shows
the lineage raw_input -> staging -> output and draws the flow_ratio plot.

Screenshots go to the test's tmp_path; with GLUEFLOW_UPDATE_DOCS=1 they also refresh docs/ui_*.png
(the pictures the README shows), so an ordinary test run leaves the work tree untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import glueflow_dagster
from glueflow_dagster_tests.conftest import postgres_home, raw_records, write_flow_file

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

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)",
)

RUNS_QUERY = """
query Runs {
  runsOrError(limit: 50) {
    __typename
    ... on Runs { results { runId jobName status startTime endTime tags { key value } } }
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


@dataclass
class DagsterDev:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    marker: str

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
    pids = []
    needle = f"GLUEFLOW_UI_TEST_MARK={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone, or not ours to read
        if needle in environ.split(b"\0") and state != "Z":
            pids.append(int(entry.name))
    return pids


def _describe(pids: list[int]) -> str:
    commands = []
    for pid in pids:
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            commands.append(f"{pid} {command[:100]}")
    return "; ".join(commands)


def _stop(dev: DagsterDev) -> None:
    """SIGTERM the process group, wait, SIGKILL what is left; then no process of ours may remain."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(dev.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and _marked_pids(dev.marker):
        time.sleep(0.5)
    left = _marked_pids(dev.marker)
    if left:
        print(f"still running {STOP_TIMEOUT_S} s after SIGTERM, killed: {_describe(left)}")
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


@pytest.fixture(params=["sqlite", "postgres"])
def dagster_dev(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DagsterDev]:
    """`dagster dev` on the demo's SQLite DAGSTER_HOME, and on the production PostgreSQL one."""
    flow_file = write_flow_file(tmp_path / "project", schedule="* * * * *")
    raw = flow_file.parent / "data" / "input" / "batch=0"
    raw.mkdir(parents=True)
    (raw / "a.json").write_bytes(raw_records(0, RECORDS // 2))
    (raw / "b.json").write_bytes(raw_records(RECORDS // 2, RECORDS // 2))
    home = tmp_path / "dagster_home"
    instance_env: dict[str, str] = {}
    if request.param == "postgres":
        instance_env = postgres_home(request.getfixturevalue("postgres_instance_url"), home)
    else:
        home.mkdir()
        shutil.copyfile(Path(glueflow_dagster.__file__).with_name("dagster.yaml"), home / "dagster.yaml")
    port = _free_port()
    marker = uuid.uuid4().hex
    env = {
        **os.environ,
        **instance_env,
        "DAGSTER_HOME": str(home),
        "GLUEFLOW_CONFIG": str(flow_file),
        "GLUEFLOW_UI_TEST_MARK": marker,
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "dagster_dev.log"
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml")]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dev = DagsterDev(f"http://127.0.0.1:{port}", process, log_path, marker)
    started = time.monotonic()
    try:
        _wait_for_server(dev)
        print(f"dagster dev answered /server_info after {time.monotonic() - started:.0f} s")
        yield dev
    finally:
        stopping = time.monotonic()
        _stop(dev)
        print(f"dagster dev stopped in {time.monotonic() - stopping:.1f} s")


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


def _metadata(dev: DagsterDev, path: list[str], run_id: str) -> dict[str, dict[str, Any]]:
    asset = dev.graphql(MATERIALIZATIONS_QUERY, {"path": path})["assetOrError"]
    assert asset["__typename"] == "Asset", asset
    [materialization] = [m for m in asset["assetMaterializations"] if m["runId"] == run_id]
    return {entry["label"]: entry for entry in materialization["metadataEntries"]}


def _int(entries: dict[str, dict[str, Any]], label: str) -> int:
    entry = entries[label]
    assert entry["__typename"] == "IntMetadataEntry", entry
    return int(entry["intValue"])


def _save(page: Any, name: str, tmp_path: Path, **options: Any) -> Path:
    shot = tmp_path / "screenshots" / name
    shot.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(shot), **options)
    if os.environ.get("GLUEFLOW_UPDATE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / name)
    return shot


def _dismiss_community_dialog(page: Any) -> None:
    """Dagster's first-visit "Join the Dagster community" dialog covers the page: skip it if shown."""
    skip = page.get_by_role("button", name="Skip", exact=True)
    if skip.count() and skip.first.is_visible():
        skip.first.click()


def _canvas_ink(canvas: Any) -> int:
    """Pixels the chart has painted on the canvas (not fully transparent)."""
    return canvas.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) n++; } return n; }"""
    )


def _check_ui(dev: DagsterDev, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a loaded 2-core CI machine renders slowly
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(30_000)
            # Marks the community dialog as seen; _dismiss_community_dialog covers a renamed key.
            context.add_init_script("window.localStorage.setItem('communityNux', '1')")
            page = context.new_page()

            # 1. The Output asset's page: its metadata plots, flow_ratio among them.
            page.goto(f"{dev.url}/assets/events/output", wait_until="networkidle")
            _dismiss_community_dialog(page)
            page.get_by_role("button").filter(has_text="Plots").first.click()
            title = page.get_by_text("flow_ratio", exact=True).locator("visible=true").first
            expect(title).to_be_visible()
            canvas = title.locator("xpath=ancestor::div[.//canvas][1]//canvas").first
            expect(canvas).to_be_visible()
            deadline = time.monotonic() + 15
            while _canvas_ink(canvas) < 500 and time.monotonic() < deadline:
                page.wait_for_timeout(250)
            assert _canvas_ink(canvas) >= 500, "the flow_ratio plot's canvas is blank"
            for name in ("bytes_read", "records_read"):  # the other Int entries are plotted too
                expect(page.get_by_text(name, exact=True).locator("visible=true").first).to_be_visible()
            canvas.evaluate("element => element.scrollIntoView({block: 'center'})")
            page.wait_for_timeout(500)  # let the chart finish its entry animation
            _save(page, "ui_output_plots.png", tmp_path)

            # 2. The Staging asset's page: upstream raw_input, downstream output.
            page.goto(f"{dev.url}/assets/events/staging", wait_until="networkidle")
            _dismiss_community_dialog(page)
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
            _save(page, "ui_staging_lineage.png", tmp_path)

            # 3. The asset graph: three nodes, laid out left to right in dependency order.
            page.goto(f"{dev.url}/asset-groups", wait_until="networkidle")
            _dismiss_community_dialog(page)
            names = ("raw_input", "staging", "output")
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
            assert xs["raw_input"] < xs["staging"] < xs["output"], xs
            page.wait_for_timeout(1000)  # the graph zooms to fit after layout
            _save(page, "ui_lineage.png", tmp_path)
        finally:
            browser.close()


def _chromium_children() -> list[int]:
    """Chromium processes that descend from this test process."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat[0] != "Z":
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, stack = [], list(children.get(os.getpid(), []))
    while stack:
        pid = stack.pop()
        if "chrom" in commands.get(pid, ""):
            found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def test_dagster_dev_runs_the_flow_and_the_ui_shows_lineage_and_plots(dagster_dev: DagsterDev, tmp_path: Path) -> None:
    started = time.monotonic()
    input_run, output_run = _wait_for_scheduled_input_and_sensed_output(dagster_dev)
    print(f"scheduled Input run and sensed Output run succeeded after {time.monotonic() - started:.0f} s")
    assert input_run["endTime"] <= output_run["startTime"]

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
    first_window = f"| {_int(staging, 'bytes_written'):,} | {_int(output, 'bytes_read'):,} | 1.00 |"
    assert first_window in report["windows"]["mdStr"], report["windows"]["mdStr"]
    (tmp_path / "screenshots").mkdir(exist_ok=True)
    shutil.copyfile(png, tmp_path / "screenshots" / "flow_report.png")

    started = time.monotonic()
    _check_ui(dagster_dev, tmp_path)
    print(f"UI checked in {time.monotonic() - started:.0f} s")
    assert not _chromium_children(), "Chromium processes left running"

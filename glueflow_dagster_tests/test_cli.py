"""`glueflow demo` as a user runs it: a subprocess, a fresh DAGSTER_HOME, a printed table."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from glueflow_dagster_tests.conftest import write_flow_file


def glueflow(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "GLUEFLOW_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "glueflow_dagster.cli", *args],
        cwd=cwd,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_prints_a_growing_ratio_without_bookmarks_and_fills_the_project_home(tmp_path: Path) -> None:
    flow_file = write_flow_file(tmp_path / "project")
    done = glueflow("demo", "--cycles", "3", "--config", str(flow_file), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^\s+(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)$", done.stdout, re.M)
    assert [int(r[0]) for r in rows] == [0, 1, 2]
    ratios = [float(r[3]) for r in rows]
    assert ratios[0] == 1.0 and ratios[0] < ratios[1] < ratios[2]
    home = tmp_path / "project" / ".glueflow" / "dagster_home"
    limits = yaml.safe_load((home / "dagster.yaml").read_text())["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limits == [{"key": "glueflow/max_concurrency", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    # A second demo continues with new batches instead of overwriting the raw objects.
    again = glueflow("demo", "--cycles", "1", "--config", str(flow_file), cwd=tmp_path)
    assert re.search(r"^\s+3\s", again.stdout, re.M), again.stdout


def test_bad_flow_file_gives_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "glueflow.yaml"
    bad.write_text("flows:\n  events:\n    input: {uri: x}\n")
    done = glueflow("demo", "--config", str(bad), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith(f"glueflow: {bad}: flow 'events'.staging: missing")

"""`glueflow demo` as a user runs it: a subprocess, a fresh DAGSTER_HOME, a printed table."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from glueflow_dagster_tests.conftest import write_flow_file


def glueflow(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "GLUEFLOW_CONFIG")}
    # This checkout first, so the subprocess runs the code under test whatever is installed.
    paths = [str(Path(__file__).parents[2]), environ.get("PYTHONPATH", "")]
    environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
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
    # Every demo run says it is the demo's (the UI's "Launched by" shows the `user` tag), cycle by cycle.
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = instance.get_runs()
    assert len(runs) == 6 and {run.tags.get("user") for run in runs} == {"glueflow demo"}
    by_cycle = sorted((run.tags["glueflow/demo_cycle"], run.job_name) for run in runs)
    assert by_cycle == [(str(c), f"events_{job}_job") for c in range(3) for job in ("input", "output")]
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


def test_every_subcommand_and_option_has_help() -> None:
    import argparse

    from glueflow_dagster.cli.main import _parser

    parser = _parser()
    [subparsers] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    summaries = {choice.dest: choice.help for choice in subparsers._choices_actions}
    assert set(summaries) == {"demo", "bookmark", "report", "simulate", "import-glue", "maintain"}
    for name, sub in subparsers.choices.items():
        assert summaries[name] and sub.description, name
        for action in sub._actions:
            assert action.help, f"glueflow {name} {action.option_strings or action.dest}: no help text"
    done = glueflow("demo", "--help", cwd=Path.cwd())
    assert done.returncode == 0 and "--fresh" in done.stdout and "start the flow over" in done.stdout


def test_demo_fresh_starts_over_and_prints_the_same_figures_again(tmp_path: Path) -> None:
    flow_file = write_flow_file(tmp_path / "project")
    args = ("demo", "--cycles", "2", "--bookmarks", "disable", "--config", str(flow_file))
    row = re.compile(r"^\s+(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)$", re.M)
    first = glueflow(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # Without --fresh the demo continues the history (cycles 2 and 3, rereading all of staging).
    more = glueflow(*args, cwd=tmp_path)
    assert [(r[0], r[3]) for r in row.findall(more.stdout)] == [("2", "3.00"), ("3", "4.00")]
    fresh = glueflow(*args, "--fresh", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert row.findall(fresh.stdout) == row.findall(first.stdout)
    assert [(r[0], r[3]) for r in row.findall(fresh.stdout)] == [("0", "1.00"), ("1", "2.00")]
    # What it removed, and progress on stderr (stdout keeps only the table).
    assert "fresh start: deleted 8 runs" in fresh.stderr  # an Input and an Output run per cycle, 4 cycles
    assert "cycle 1: running events_input_job" in fresh.stderr
    assert "running events_input_job" not in fresh.stdout


def test_an_invalid_cron_fails_when_the_flow_file_loads_with_one_line(tmp_path: Path) -> None:
    flow_file = write_flow_file(tmp_path, schedule="61 * * * *")
    done = glueflow("demo", "--config", str(flow_file), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        f"glueflow: {flow_file}: flow 'events'.input_job.schedule: '61 * * * *' is not a valid cron expression: "
        "minute '61' is not 0-59\n"
    )

"""`glueflow import-glue` on the guide's scripts: a flow that runs end to end, written as the user asked.

The guide's Input and Output scripts are converted through the real command, loaded through the real
definitions and run for an Input -> sensor -> Output cycle.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from glueflow_dagster.cli.demo import run_cycle
from glueflow_dagster.components.flow_source import load_flows
from glueflow_dagster.core.config import load_config
from glueflow_dagster_tests.glue_import.glue_scripts import (
    GUIDE_INPUT,
    INPUT_MAPPINGS,
    OUTPUT_MAPPINGS,
    guide_output,
    import_glue,
    line_of,
    write,
)

# --- the guide, converted and run ------------------------------------------------------------------


def test_guide_scripts_convert_to_the_flow_schema_with_a_report(tmp_path: Path, capsys) -> None:
    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=False))
    flow_file = tmp_path / "glueflow.yaml"
    code, stdout, stderr = import_glue(
        capsys, "--input-script", str(inp), "--output-script", str(out), "--flow", "events", "--out", str(flow_file)
    )
    assert code == 0, stdout + stderr
    entry = yaml.safe_load(flow_file.read_text())["flows"]["events"]
    assert entry == {
        "input": {"uri": "${input_path}", "recurse": True},
        "staging": {"uri": "${staging_path}", "recurse": True, "compression": "gzip"},
        "output": {"uri": "${output_path}", "compression": "none"},
        "input_job": {"schedule": "*/30 * * * *", "mappings": INPUT_MAPPINGS},
        # The guide before its fix: no transformation_ctx, so every Output run rereads staging.
        "output_job": {"bookmark": "disable", "mappings": OUTPUT_MAPPINGS},
    }
    # The report: the converted pieces with their lines, the defaults, and what the user must set.
    source_line = line_of(GUIDE_INPUT, "create_dynamic_frame.from_options")
    assert f"/{inp.name}:{source_line}" in stdout and "input.uri" in stdout
    for heading in ("Converted (", "Set from defaults (", "Needs the user ("):
        assert heading in stdout
    assert "Not converted" not in stdout and "complete: every step" in stdout
    for variable in ("input_path", "staging_path", "output_path"):
        assert f"argument {variable}" in stdout
    assert "s3:PutObject" in stdout  # IAM is named as the user's job
    assert f"flow 'events' written to {flow_file}" in stdout


def test_guide_fix_enables_the_bookmark_and_the_flow_runs_end_to_end(
    tmp_path: Path, capsys, instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = tmp_path / ("a-folder-name-long-enough-that-the-report-must-cut-the-path" * 2) / "glue"
    inp = write(scripts, "input.py", GUIDE_INPUT)
    out = write(scripts, "output.py", guide_output(fixed=True))
    flow_file = tmp_path / "project" / "glueflow.yaml"
    code, stdout, _ = import_glue(
        capsys, "--input-script", str(inp), "--output-script", str(out), "--flow", "events", "--out", str(flow_file)
    )
    assert code == 0, stdout
    entry = yaml.safe_load(flow_file.read_text())["flows"]["events"]
    assert entry["output_job"] == {
        "bookmark": "enable",
        "transformation_ctx": "bookmark_ctx",
        "mappings": OUTPUT_MAPPINGS,
    }
    fixed_line = line_of(guide_output(fixed=True), "transformation_ctx")
    # A long path is cut at its start: the row still names the script and the line.
    [row] = [line for line in stdout.splitlines() if "transformation_ctx + job.init/job.commit" in line]
    assert row.split()[0] == "..." + f"{out}:{fixed_line}"[-77:]

    # The job arguments become environment variables: point them at local folders and run a cycle.
    data = tmp_path / "data"
    for name in ("input", "staging", "output"):
        monkeypatch.setenv(f"{name}_path", str(data / name))
    from glueflow_dagster.definitions import build_definitions

    config = load_config(flow_file)
    flow = config.flows["events"]
    assert flow.input.uri == str(data / "input") and flow.output_job.bookmark == "enable"
    defs = build_definitions(config)
    figures, cursor = run_cycle(defs, instance, flow, 0, None, files=2, events_per_file=300)
    assert len(figures.output_run_ids) == 1 and figures.ratio == pytest.approx(1.0)
    rows = pl.read_ndjson(sorted((data / "output").glob("run-*.json")))
    assert rows.height == 600
    assert rows.columns == ["event_id", "event_type", "event_time", "user_id", "country", "amount"]
    assert sorted(rows["event_id"].to_list()) == list(range(600))
    # A second cycle reads only the new staging object: the bookmark the script's transformation_ctx asked for.
    again, _ = run_cycle(defs, instance, flow, 1, cursor, files=2, events_per_file=300)
    assert again.ratio == pytest.approx(1.0)


def test_component_output_holds_the_flow_under_attributes(tmp_path: Path, capsys) -> None:
    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=True))
    component = tmp_path / "defs" / "events_flow"
    code, stdout, _ = import_glue(
        capsys,
        "--input-script",
        str(inp),
        "--output-script",
        str(out),
        "--flow",
        "events",
        "--component",
        str(component),
    )
    assert code == 0, stdout
    document = yaml.safe_load((component / "defs.yaml").read_text())
    assert document["type"] == "glueflow_dagster.GlueFlows"
    assert list(document["attributes"]["flows"]) == ["events"]
    assert document["attributes"]["flows"]["events"]["input_job"]["mappings"] == INPUT_MAPPINGS
    # The same entry is a valid flow-file entry.
    flow_file = write(tmp_path, "flows.yaml", yaml.safe_dump({"flows": document["attributes"]["flows"]}))
    with pytest.MonkeyPatch.context() as patch:
        for name in ("input", "staging", "output"):
            patch.setenv(f"{name}_path", f"s3://bucket/{name}")
        assert load_config(flow_file).flows["events"].staging.uri == "s3://bucket/staging"
        # And the component instance itself loads through the GlueFlows door (the one parser of both).
        assert load_flows(component / "defs.yaml").flows["events"].output.uri == "s3://bucket/output"


def test_out_merges_into_an_existing_flow_file_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    flow_file = write(
        tmp_path,
        "glueflow.yaml",
        yaml.safe_dump(
            {
                "flows": {
                    "clicks": {
                        "input": {"uri": "in"},
                        "staging": {"uri": "st"},
                        "output": {"uri": "out"},
                        "input_job": {"mappings": [["a", "long", "a", "long"]]},
                        "output_job": {"mappings": [["a", "long", "a", "long"]]},
                    }
                }
            }
        ),
    )
    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=True))
    args = ("--input-script", str(inp), "--output-script", str(out), "--flow", "events", "--out", str(flow_file))
    assert import_glue(capsys, *args)[0] == 0
    assert list(yaml.safe_load(flow_file.read_text())["flows"]) == ["clicks", "events"]
    code, _, stderr = import_glue(capsys, *args)
    assert (
        code == 2
        and stderr.strip() == f"glueflow: {flow_file}: flow 'events' already exists; remove it or choose another --flow"
    )


def test_without_a_destination_the_flow_file_goes_to_stdout_and_the_report_to_stderr(tmp_path: Path, capsys) -> None:
    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=True))
    code, stdout, stderr = import_glue(capsys, "--input-script", str(inp), "--output-script", str(out), "--flow", "ev")
    assert code == 0
    assert yaml.safe_load(stdout)["flows"]["ev"]["output_job"]["bookmark"] == "enable"
    assert "Converted (" in stderr


def test_json_report_fields(tmp_path: Path, capsys) -> None:
    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=True))
    code, stdout, _ = import_glue(
        capsys, "--input-script", str(inp), "--output-script", str(out), "--flow", "events", "--json"
    )
    assert code == 0
    report = json.loads(stdout)
    assert set(report) == {
        "flow",
        "complete",
        "sources",
        "converted",
        "defaults",
        "needs_user",
        "unsupported",
        "variables",
        "flow_entry",
        "written",
    }
    assert report["complete"] is True and report["unsupported"] == [] and report["written"] is None
    assert report["variables"] == [
        {"name": "input_path", "default": None},
        {"name": "staging_path", "default": None},
        {"name": "output_path", "default": None},
    ]
    [uri] = [i for i in report["converted"] if i["field"] == "input.uri"]
    assert uri == {
        "status": "converted",
        "field": "input.uri",
        "value": "${input_path}",
        "source": str(inp),
        "line": line_of(GUIDE_INPUT, "create_dynamic_frame"),
        "message": "connection_options paths",
    }
    assert report["flow_entry"]["output_job"]["mappings"] == OUTPUT_MAPPINGS


def test_the_glueflow_command_as_a_user_runs_it(tmp_path: Path) -> None:
    """A subprocess with this checkout first on the path (the installed package may be another checkout)."""
    import os
    import subprocess
    import sys

    import glueflow_dagster

    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=False))
    root = str(Path(glueflow_dagster.__file__).resolve().parent.parent)
    environ = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "GLUEFLOW_CONFIG")}
    done = subprocess.run(
        [sys.executable, "-m", "glueflow_dagster.cli", "import-glue", "--input-script", "input.py"]
        + ["--output-script", "output.py", "--flow", "events", "--out", "flows/glueflow.yaml"],
        cwd=tmp_path,
        env={**environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "flow 'events' written to flows/glueflow.yaml" in done.stdout
    assert f"{inp.name}:{line_of(GUIDE_INPUT, 'create_dynamic_frame')}" in done.stdout
    assert yaml.safe_load((tmp_path / "flows" / "glueflow.yaml").read_text())["flows"]["events"]["output_job"] == {
        "bookmark": "disable",
        "mappings": OUTPUT_MAPPINGS,
    }
    assert out.exists()

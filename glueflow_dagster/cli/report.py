"""`glueflow report`: the flow's windows as a table or JSON, and the chart if asked."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from dagster import DagsterInstance

from glueflow_dagster.components.report import build_flow_report


def report_command(
    instance: DagsterInstance,
    flow_name: str,
    json_out: bool,
    png: Path | None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """`glueflow report [--flow F] [--json] [--png FILE]`: the table (or JSON) on stdout, the PNG if asked."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        report = build_flow_report(instance, flow_name, png)
    except OSError as err:
        print(f"glueflow: {png}: cannot write the chart ({err.strerror or err})", file=stderr)
        return 2
    if json_out:
        print(json.dumps(report.json, indent=2), file=stdout)
    else:
        print(report.markdown, file=stdout)
    if not report.windows:
        print(f"glueflow: no successful {flow_name}_input_job run in {instance.root_directory}", file=stderr)
    if report.png_path is not None:
        print(f"chart written to {report.png_path}", file=stderr)
    return 0

"""`glueflow_dagster.GlueFlows`: the flow file as a Dagster Component (`defs/<name>/defs.yaml`).

Why a component: Dagster 1.13 projects declare their pipelines as component instances that
`dg scaffold defs` writes, `dg check defs` validates and `dg list defs` lists. The attributes are
exactly the flow file's schema (`flows: {name: {...}}`) and go through the same parser
(`config.parse_config`), so a `defs.yaml` and a `glueflow.yaml` give the same flows and the same
one-line errors. Local `uri`s resolve against the dg project root (where pyproject.toml is).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from glueflow_dagster.core.config import COMPONENT_TYPE, ConfigError, parse_config

# What `dg scaffold defs glueflow_dagster.GlueFlows <name>` writes: one working flow named after the
# folder, on local folders under the project's data folder (set GLUEFLOW_DATA, or point the uris at
# s3://bucket/prefix), with mappings of the demo's sample events so `glueflow demo --config` runs it.
_SCAFFOLD_TEMPLATE = """\
# glueflow flows as a Dagster component (`dg check defs` validates it). The attributes are the flow
# file's schema (README: "Flows"); local uris resolve against the project root, and ${{VAR}} and
# ${{VAR:-default}} are expanded. Try it: glueflow demo --config <this file>
type: {type_name}

attributes:
  flows:
    {flow}:
      input:   {{uri: "${{GLUEFLOW_DATA:-.glueflow/data}}/{flow}/input", recurse: true, exclusions: ["**.tmp"]}}
      staging: {{uri: "${{GLUEFLOW_DATA:-.glueflow/data}}/{flow}/staging", compression: gzip}}
      output:  {{uri: "${{GLUEFLOW_DATA:-.glueflow/data}}/{flow}/output", compression: none}}
      input_job:
        schedule: "*/30 * * * *"   # UTC
        mappings:                  # Glue ApplyMapping: [source, source type, target, target type]
          - [id, long, event_id, long]
          - [type, string, event_type, string]
          - [ts, string, event_time, timestamp]
          - [user.id, int, user_id, long]
          - [amount, string, amount, double]
      output_job:
        bookmark: enable           # enable | disable | pause (Glue: --job-bookmark-option)
        transformation_ctx: bookmark_ctx
        mappings:
          - [event_id, long, event_id, long]
          - [event_type, string, event_type, string]
          - [event_time, timestamp, event_time, timestamp]
          - [user_id, long, user_id, long]
          - [amount, double, amount, double]
"""


def scaffold_flow_name(folder_name: str) -> str:
    """A flow name (an identifier) from the scaffolded folder's name: `my-flow` -> `my_flow`."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", folder_name) or "flow"
    return f"_{name}" if name[0].isdigit() else name


class GlueFlowsScaffolder(dg.Scaffolder):
    """Writes `defs.yaml` with one working flow named after the target folder."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        if request.scaffold_format != "yaml":
            raise ConfigError(f"{request.target_path}: GlueFlows is scaffolded as defs.yaml only (--format yaml)")
        flow = scaffold_flow_name(request.target_path.name)
        request.target_path.mkdir(parents=True, exist_ok=True)
        text = _SCAFFOLD_TEMPLATE.format(type_name=request.type_name, flow=flow)
        (request.target_path / "defs.yaml").write_text(text, encoding="utf-8")


def _instance_file(folder: Path) -> Path:
    """The file that declared this instance (named in errors): defs.yaml or defs.yml, else the folder."""
    for name in ("defs.yaml", "defs.yml"):
        if (folder / name).is_file():
            return folder / name
    return folder


@dg.scaffold_with(GlueFlowsScaffolder)
class GlueFlows(dg.Component, dg.Model, dg.Resolvable):
    """Chained, incremental Glue-style flows: per flow F the assets F/raw_input -> F/staging ->
    F/output -> F/flow_report, the F_input_job schedule, the F_output_sensor, bookmarks and checks.

    The attributes are the flow file's schema: `flows: {name: {input, staging, output, input_job,
    output_job}}` (see the README's table of keys).
    """

    # Typed loosely on purpose: the flow parser validates the whole document, so a bad field gives
    # the same one-line error as in a flow file instead of a multi-line pydantic report.
    flows: Any = Field(
        default=None,
        description="Flows by name: {name: {input, staging, output, input_job, output_job}}, the flow file's schema.",
        json_schema_extra={"type": "object"},
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from glueflow_dagster.components.flow_definitions import build_definitions

        config = parse_config({"flows": self.flows}, _instance_file(context.path), base_dir=context.project_root)
        return build_definitions(config)


__all__ = ["COMPONENT_TYPE", "GlueFlows", "GlueFlowsScaffolder"]

"""The code location: the GlueFlows component instances in `glueflow_dagster/defs/`, or one flow file.

Two doors, one parser (`config.parse_config`):
- `GLUEFLOW_CONFIG` set: the code location loads that flow file only (existing users, and the CLI's
  `--config`), and ignores `defs/`, so one flow is never defined twice.
- otherwise: `dg.load_from_defs_folder` loads every component instance under `glueflow_dagster/defs/`
  (the demo flow `events` ships as `defs/events/defs.yaml`; `dg scaffold defs` adds more).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster import Definitions, definitions

from glueflow_dagster.components.assets import build_flow_assets
from glueflow_dagster.components.bookmark_admin import build_bookmark_admin_job
from glueflow_dagster.components.jobs import build_flow_jobs
from glueflow_dagster.components.report_sensor import build_flow_report_sensor
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.components.schedules import build_input_schedule
from glueflow_dagster.components.sensors import build_output_sensor
from glueflow_dagster.core.config import CONFIG_ENV_VAR, GlueflowConfig, load_config

# The dg project root (pyproject.toml with [tool.dg]) when the package runs from its source tree.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# One instance shared by every component instance: Definitions.merge refuses two different objects
# under the same resource key, so several GlueFlows instances in defs/ must hand over the same one.
STORAGE = StorageResource()


def build_definitions(config: GlueflowConfig) -> Definitions:
    assets, jobs, schedules, sensors = [], [], [], []
    for flow in config.flows.values():
        input_job, output_job = build_flow_jobs(flow.name)
        assets += build_flow_assets(flow)
        jobs += [input_job, output_job, build_bookmark_admin_job(flow)]
        schedules.append(build_input_schedule(flow, input_job))
        sensors += [build_output_sensor(flow, output_job), build_flow_report_sensor(flow)]
    return Definitions(
        assets=assets,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={"storage": STORAGE},
    )


def load_definitions(config_path: Path | str | None = None) -> Definitions:
    return build_definitions(load_config(config_path))


def load_component_definitions() -> Definitions:
    """Every component instance of the package's defs folder."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return dg.load_from_defs_folder(path_within_project=PROJECT_ROOT)
    # Installed without its source tree (a wheel in site-packages): no pyproject.toml to name the
    # defs module, so load the packaged defs folder directly; local uris resolve against the cwd.
    import glueflow_dagster.defs

    return dg.ComponentTree(defs_module=glueflow_dagster.defs, project_root=Path.cwd()).build_defs()


def load_project_definitions() -> Definitions:
    """The code location's definitions: the flow file when GLUEFLOW_CONFIG is set, else the defs folder."""
    if os.environ.get(CONFIG_ENV_VAR):
        return load_definitions()
    return load_component_definitions()


@definitions
def defs() -> Definitions:
    return load_project_definitions()

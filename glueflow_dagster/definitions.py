"""The code location: every flow of the flow file (`$GLUEFLOW_CONFIG`, default `glueflow.yaml`)."""

from __future__ import annotations

from pathlib import Path

from dagster import Definitions, definitions

from glueflow_dagster.assets import build_flow_assets
from glueflow_dagster.bookmark_admin import build_bookmark_admin_job
from glueflow_dagster.config import GlueflowConfig, load_config
from glueflow_dagster.jobs import build_flow_jobs
from glueflow_dagster.resources import StorageResource
from glueflow_dagster.schedules import build_input_schedule
from glueflow_dagster.sensors import build_output_sensor


def build_definitions(config: GlueflowConfig) -> Definitions:
    assets, jobs, schedules, sensors = [], [], [], []
    for flow in config.flows.values():
        input_job, output_job = build_flow_jobs(flow.name)
        assets += build_flow_assets(flow)
        jobs += [input_job, output_job, build_bookmark_admin_job(flow)]
        schedules.append(build_input_schedule(flow, input_job))
        sensors.append(build_output_sensor(flow, output_job))
    return Definitions(
        assets=assets,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={"storage": StorageResource()},
    )


def load_definitions(config_path: Path | str | None = None) -> Definitions:
    return build_definitions(load_config(config_path))


@definitions
def defs() -> Definitions:
    return load_definitions()

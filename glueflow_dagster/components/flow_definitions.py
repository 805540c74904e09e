"""A flow configuration's Dagster definitions: per flow its assets, jobs, schedule and sensors, and the
storage resource they share.

Here, in the shell, so that the component type (`glue_flows.py`) builds its definitions without importing
the code location (`definitions.py`, a layer above it), which loads the component.
"""

from __future__ import annotations

from dagster import Definitions

from glueflow_dagster.components.assets import build_flow_assets
from glueflow_dagster.components.bookmark_admin import build_bookmark_admin_job
from glueflow_dagster.components.jobs import build_flow_jobs
from glueflow_dagster.components.report_sensor import build_flow_report_sensor
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.components.schedules import build_input_schedule
from glueflow_dagster.components.sensors import build_output_sensor
from glueflow_dagster.core.config import GlueflowConfig

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

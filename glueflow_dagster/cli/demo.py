"""`glueflow demo`: producer batches -> Input run -> sensor tick -> Output run, cycle after cycle.

Everything goes through the real definitions and the DAGSTER_HOME instance, so `dagster dev`
afterwards shows the same runs, lineage and metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dagster import DagsterInstance, Definitions, build_sensor_context

from glueflow_dagster.components.jobs import input_job_name, output_key, output_sensor_name, staging_key
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core.config import FlowConfig
from glueflow_dagster.core.flow_ratio import flow_ratio
from glueflow_dagster.core.sample_data import write_batch

# The demo prints its own table; Dagster's per-event console logs would bury it (they stay in the instance).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Demo runs say so in the UI: Dagster's "Launched by" column shows the `user` tag (else "Manually
# launched", like any run started by hand); `glueflow/demo_cycle` filters one cycle's runs.
DEMO_LAUNCHER = "glueflow demo"
DEMO_CYCLE_TAG = "glueflow/demo_cycle"


def demo_tags(cycle: int) -> dict[str, str]:
    return {"user": DEMO_LAUNCHER, DEMO_CYCLE_TAG: str(cycle)}


class DemoError(RuntimeError):
    """A demo cycle that did not complete (a failed run, or a sensor that requested nothing)."""


@dataclass(frozen=True)
class CycleFigures:
    cycle: int
    input_run_id: str
    output_run_ids: tuple[str, ...]
    input_bytes_written: int
    output_bytes_read: int

    @property
    def ratio(self) -> float | None:
        return flow_ratio(self.output_bytes_read, self.input_bytes_written)


def run_cycle(
    defs: Definitions,
    instance: DagsterInstance,
    flow: FlowConfig,
    cycle: int,
    cursor: str | None,
    *,
    files: int = 4,
    events_per_file: int = 5_000,
    progress: Callable[[str], None] = lambda _line: None,
) -> tuple[CycleFigures, str | None]:
    """One Glue trigger period: a producer batch, one Input run, one sensor tick and its Output run."""
    progress(f"cycle {cycle}: writing {files} sample objects of {events_per_file:,} events to {flow.input.uri}")
    write_batch(StorageResource().open(flow.input.uri), cycle, files=files, events_per_file=events_per_file)
    progress(f"cycle {cycle}: running {input_job_name(flow.name)}")
    input_result = defs.resolve_job_def(input_job_name(flow.name)).execute_in_process(
        instance=instance, run_config=QUIET_RUN_CONFIG, tags=demo_tags(cycle), raise_on_error=False
    )
    if not input_result.success:
        raise DemoError(f"{input_job_name(flow.name)} run {input_result.run_id} failed (see `dagster dev`)")
    sensor = defs.resolve_sensor_def(output_sensor_name(flow.name))
    with build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources) as context:
        tick = sensor.evaluate_tick(context)
    output_run_ids, bytes_read = [], 0
    progress(f"cycle {cycle}: {output_sensor_name(flow.name)} requested {len(tick.run_requests)} Output run(s)")
    for request in tick.run_requests:
        result = defs.resolve_job_def(request.job_name or sensor.job_name).execute_in_process(
            instance=instance,
            tags={**request.tags, **demo_tags(cycle)},
            run_config={**QUIET_RUN_CONFIG, **(request.run_config or {})},
            raise_on_error=False,
        )
        if not result.success:
            raise DemoError(f"Output run {result.run_id} failed (see `dagster dev`)")
        output_run_ids.append(result.run_id)
        bytes_read += int(run_materialization_metadata(instance, result.run_id, output_key(flow.name))["bytes_read"])
    written = run_materialization_metadata(instance, input_result.run_id, staging_key(flow.name))["bytes_written"]
    figures = CycleFigures(cycle, input_result.run_id, tuple(output_run_ids), int(written), bytes_read)
    return figures, tick.cursor


def run_demo(
    defs: Definitions,
    instance: DagsterInstance,
    flow: FlowConfig,
    cycles: int,
    *,
    report: Callable[[CycleFigures], None] = lambda _row: None,
    first_cycle: int = 0,
    progress: Callable[[str], None] = lambda _line: None,
) -> list[CycleFigures]:
    rows, cursor = [], None
    for cycle in range(first_cycle, first_cycle + cycles):
        figures, cursor = run_cycle(defs, instance, flow, cycle, cursor, progress=progress)
        report(figures)
        rows.append(figures)
    return rows

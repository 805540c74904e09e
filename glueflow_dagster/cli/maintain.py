"""`glueflow maintain --flow F [--older-than DAYS] [--dry-run]`: an Iceberg output's table maintenance.

Expires the table's snapshots older than DAYS (always keeping the current one, and every snapshot whose
run's data no materialization has committed yet: the next Output run adopts it), then removes the data
files no snapshot references that no live attempt may still append and the metadata files the table no
longer references (``core.iceberg_maintain``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from glueflow_dagster.core.config import ConfigError, FlowConfig
from glueflow_dagster.core.iceberg_maintain import (
    DEFAULT_OLDER_THAN_DAYS,
    MaintenanceLog,
    MaintenancePlan,
    MaintenanceResult,
    apply_maintenance,
    plan_maintenance,
)

if TYPE_CHECKING:
    from dagster import DagsterInstance

_PAGE = 1000


def add_maintain(command: Callable[[str, str, str], argparse.ArgumentParser], config_help: str) -> None:
    maintain = command(
        "maintain",
        "expire an Iceberg output's old snapshots and remove the files no snapshot references",
        "For a flow with output.format: iceberg: expires the table's snapshots older than --older-than days "
        "(never the current one, nor one whose run's data is not committed yet: the next Output run adopts "
        "it), then removes the table's data files that no snapshot references, no glueflow commit lists and "
        "no live run may still append (older than output.orphan_grace_s), the manifests only expired "
        "snapshots used, and the metadata files the table no longer references (older than orphan_grace_s "
        "and an hour). Progress goes to stderr, the report to stdout.",
    )
    maintain.add_argument("--flow", default=None, help="flow whose output table to maintain (default: the first)")
    maintain.add_argument(
        "--older-than",
        type=float,
        default=DEFAULT_OLDER_THAN_DAYS,
        metavar="DAYS",
        help=f"expire snapshots older than DAYS days (default {DEFAULT_OLDER_THAN_DAYS:g}, as Iceberg's own)",
    )
    maintain.add_argument(
        "--dry-run", action="store_true", help="list what would be expired and removed; change nothing"
    )
    maintain.add_argument("--config", type=Path, default=None, metavar="FILE", help=config_help)


def committed_snapshots(instance: DagsterInstance, flow_name: str) -> frozenset[int]:
    """The snapshot id every materialization of `F/output` recorded (its own append, or the one it adopted)."""
    from glueflow_dagster.components.jobs import output_key
    from glueflow_dagster.core.iceberg_commit import SNAPSHOT_KEY

    found: set[int] = set()
    cursor = None
    while True:
        page = instance.fetch_materializations(output_key(flow_name), limit=_PAGE, cursor=cursor)
        for record in page.records:
            materialization = record.asset_materialization
            entry = materialization.metadata.get(SNAPSHOT_KEY) if materialization is not None else None
            if entry is not None and str(entry.value).strip().lstrip("-").isdigit():
                found.add(int(str(entry.value)))
        if not page.has_more:
            return frozenset(found)
        cursor = page.cursor


def maintenance_log(instance: DagsterInstance, flow_name: str) -> MaintenanceLog:
    from glueflow_dagster.components.commit_log import committed_parts
    from glueflow_dagster.components.jobs import output_key

    def run_ended(run_id: str) -> bool:
        record = instance.get_run_record_by_id(run_id)
        return record is None or record.dagster_run.is_finished

    return MaintenanceLog(
        committed_snapshots(instance, flow_name), committed_parts(instance, output_key(flow_name)), run_ended
    )


def run_maintain(
    instance: DagsterInstance,
    flow: FlowConfig,
    *,
    older_than_days: float = DEFAULT_OLDER_THAN_DAYS,
    dry_run: bool = False,
    progress: Callable[[str], None] = lambda _line: None,
    now_ms: int | None = None,
) -> tuple[MaintenancePlan, MaintenanceResult | None]:
    """Plan the flow's table maintenance and (unless ``dry_run``) do it; a refusal is one line."""
    from glueflow_dagster.components.resources import StorageResource
    from glueflow_dagster.core.iceberg_commit import open_existing_output, table_failures

    if older_than_days < 0:
        raise ConfigError(f"--older-than: expected a number of days >= 0, got {older_than_days:g}")
    if flow.output.format != "iceberg":
        raise ConfigError(
            f"flow {flow.name}: maintain works on an Iceberg output; output.format is {flow.output.format}"
        )
    storage = StorageResource().open(flow.output.uri)
    progress(f"maintain: flow {flow.name}, opening table {flow.output.table} ...")
    output = open_existing_output(flow, storage)
    progress("maintain: reading the flow's commits from the Dagster instance ...")
    log = maintenance_log(instance, flow.name)
    with table_failures(output.target.table):
        progress(f"maintain: reading the snapshots of {output.target.table} and listing {output.location}/data ...")
        plan = plan_maintenance(
            output,
            storage,
            log,
            now_ms=now_ms if now_ms is not None else int(time.time() * 1000),
            older_than_days=older_than_days,
            grace_s=flow.output.orphan_grace_s,
        )
        if dry_run:
            return plan, None
        return plan, apply_maintenance(output, storage, plan, progress)


def maintain_command(
    instance: DagsterInstance, flow: FlowConfig, older_than_days: float, dry_run: bool, progress: Callable[[str], None]
) -> int:
    """`glueflow maintain`: the plan (what was or would be done), then the result; exit 2 on a refusal."""
    from glueflow_dagster.core.job_run import RunRefused

    try:
        plan, result = run_maintain(instance, flow, older_than_days=older_than_days, dry_run=dry_run, progress=progress)
    except RunRefused as err:
        raise ConfigError(str(err)) from None
    print("\n".join(plan.lines(dry_run=dry_run)))
    print("dry run: nothing changed" if result is None else "\n".join(result.lines()))
    return 0

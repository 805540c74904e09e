"""Dagster's event log as glueflow's commit log (the shell side of :mod:`glueflow_dagster.core.commits`).

A job's commit is its successful materialization of the location's asset (`F/staging` for the Input
job, `F/output` for the Output job) with a `commit` metadata entry listing the parts it published.
This module answers, from the instance, "which attempt of run R committed, and which parts?", and
gives every reader of staging the committed view of it.
"""

from collections.abc import Iterator
from typing import Any

from dagster import AssetKey, DagsterEventType, DagsterInstance, MetadataValue

from glueflow_dagster.components.jobs import staging_key
from glueflow_dagster.core.commits import COMMIT_KEY, CommitRecord, CommittedParts
from glueflow_dagster.core.config import FlowConfig
from glueflow_dagster.core.plan import list_location
from glueflow_dagster.core.storage import ObjectInfo, Storage


def run_commit(instance: DagsterInstance, run_id: str, key: AssetKey) -> CommitRecord | None:
    """The commit that run `run_id` recorded on `key`, or None (it never committed there)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is not None and materialization.asset_key == key and COMMIT_KEY in materialization.metadata:
            return CommitRecord.from_dict(materialization.metadata[COMMIT_KEY].value)
    return None


def run_commits(instance: DagsterInstance, run_id: str) -> list[CommitRecord]:
    """Every commit that run `run_id` recorded, on any asset (of any flow of this instance)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    commits = []
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is not None and COMMIT_KEY in materialization.metadata:
            commit = CommitRecord.from_dict(materialization.metadata[COMMIT_KEY].value)
            if commit is not None:
                commits.append(commit)
    return commits


def committed_parts(instance: DagsterInstance, key: AssetKey) -> CommittedParts:
    """Which parts of `key`'s location some commit lists (one event-log lookup per producing run); for
    garbage collection also what any commit of the run lists, whatever asset it committed."""
    return CommittedParts(
        lambda run_id: run_commit(instance, run_id, key),
        known_run=lambda run_id: instance.get_run_record_by_id(run_id) is not None,
        anywhere=lambda run_id: run_commits(instance, run_id),
    )


def latest_commit(instance: DagsterInstance, key: AssetKey) -> tuple[int | None, dict[str, Any]]:
    """The newest materialization of `key` in one read: its storage id (the version a commit fence
    compares) and its metadata as plain values ((None, {}) if never materialized)."""
    records = instance.fetch_materializations(key, limit=1).records
    if not records or records[0].asset_materialization is None:
        return None, {}
    metadata = records[0].asset_materialization.metadata
    return records[0].storage_id, {name: entry.value for name, entry in metadata.items()}


def latest_commit_id(instance: DagsterInstance, key: AssetKey) -> int | None:
    """Storage id of the newest materialization of `key`: the version a commit fence compares."""
    return latest_commit(instance, key)[0]


def committed_staging(
    instance: DagsterInstance,
    flow: FlowConfig,
    staging: Storage,
    orphans: list[ObjectInfo] | None = None,
    parts: CommittedParts | None = None,
) -> Iterator[ObjectInfo]:
    """Staging as every reader must see it: only objects some Input commit lists (plus objects glueflow
    did not name); parts of attempts that never committed go to `orphans` when given."""
    parts = parts if parts is not None else committed_parts(instance, staging_key(flow.name))
    return parts.visible(list_location(staging, flow.staging, must_exist=False), orphans)


def commit_metadata(record: CommitRecord) -> dict[str, Any]:
    return {COMMIT_KEY: MetadataValue.json(record.to_dict())}

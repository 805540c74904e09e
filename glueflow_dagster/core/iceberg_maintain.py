"""Maintenance of an Output's Iceberg table (``glueflow maintain``): expire old snapshots, remove the files
no snapshot references.

What stays, always (docs/formats.md, "Maintenance"):

* the table's current snapshot, and the heads of its branches and tags;
* every snapshot newer than the cutoff (``--older-than DAYS``, Iceberg's 5 days by default);
* every snapshot of a glueflow run this Dagster instance knows whose data no materialization of ``F/output``
  has committed yet: the run died between its snapshot and its materialization (or is committing now), and
  the next Output run adopts it by finding its bookmark version in the snapshot's summary. Expiring it
  would make that run append the same records again.

A data file under the table's ``data/`` folder is removed only when no remaining snapshot references it,
its name is one a glueflow attempt made, no glueflow commit lists it, its run is one this instance knows
and has ended (no live attempt is still about to append it), and it is older than ``orphan_grace_s``.
The manifest lists and manifests of the expired snapshots that no remaining snapshot uses go too.

A file under the table's ``metadata/`` folder goes when the table's current metadata no longer references
it, and it is older than ``orphan_grace_s`` and than :data:`METADATA_GRACE_S` (an hour), whichever is
longer: a ``*.metadata.json`` the metadata log has dropped (pyiceberg keeps the newest
``write.metadata.previous-versions-max`` entries, 100 by default: a table property) or that no commit
ever made current (a commit that lost the catalog's swap or failed before it), and the manifest lists and
manifests no remaining snapshot uses (a failed append's). The floor protects a commit in flight: it
writes its metadata files seconds before the catalog's swap makes them current. Referenced: the current
metadata file, every file its metadata log lists, the remaining snapshots' manifest lists and manifests,
the statistics files. Nothing else is touched: files other engines wrote elsewhere, adoption records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from glueflow_dagster.core.commits import CommittedParts, attempt_of
from glueflow_dagster.core.storage import ObjectInfo, Storage

__all__ = [
    "DEFAULT_OLDER_THAN_DAYS",
    "METADATA_GRACE_S",
    "FileChoice",
    "MaintenanceLog",
    "MaintenancePlan",
    "MaintenanceResult",
    "SnapshotChoice",
    "apply_maintenance",
    "plan_maintenance",
]

#: Iceberg's own default age of a snapshot to expire (``history.expire.max-snapshot-age-ms``: 5 days).
DEFAULT_OLDER_THAN_DAYS = 5.0
#: The least age of a metadata file the table does not reference before maintenance removes it: a commit
#: writes its metadata files before the catalog's swap makes them part of the table.
METADATA_GRACE_S = 3600.0
METADATA_SUFFIXES = (".metadata.json", ".metadata.json.gz", ".gz.metadata.json", ".avro", ".puffin", ".stats")
DAY_MS = 86_400_000
# iceberg_table.RUN_ID_PROPERTY (that module imports pyiceberg; this one is imported by the CLI's parser).
RUN_ID_PROPERTY = "glueflow.run_id"

EXPIRE = "expire"
REMOVE = "remove"
# Why a snapshot stays.
CURRENT = "current snapshot"
REFERENCE = "head of a branch or tag"
RECENT = "newer than the cutoff"
AWAITING = "its run's data is not committed yet (the next Output run adopts it)"
# Why a data file stays.
IN_SNAPSHOT = "in a snapshot"
NOT_OURS = "not named by a glueflow attempt"
LISTED = "listed by a glueflow commit"
UNKNOWN_RUN = "written by a run this Dagster instance does not know"
LIVE = "its run has not ended"
YOUNG = "younger than orphan_grace_s"
# Why a metadata file stays.
IN_METADATA = "referenced by the table's current metadata"
NOT_METADATA = "not an Iceberg metadata file name"
YOUNG_METADATA = "younger than the metadata grace (orphan_grace_s, at least an hour)"


@dataclass(frozen=True)
class MaintenanceLog:
    """What the Dagster instance knows, as maintenance asks it (the shell builds it from the event log)."""

    committed_snapshots: frozenset[int]  # the `iceberg_snapshot_id` of every materialization of F/output
    parts: CommittedParts  # glueflow's commits of the output location
    run_ended: Callable[[str], bool]  # whether a run (by id) has ended


@dataclass(frozen=True)
class SnapshotChoice:
    snapshot_id: int
    timestamp_ms: int
    action: str  # EXPIRE, or why it stays
    run_id: str = ""


@dataclass(frozen=True)
class FileChoice:
    key: str  # under the warehouse (the output location's storage)
    size: int
    action: str  # REMOVE, or why it stays


@dataclass
class MaintenancePlan:
    """What maintenance would do to one table (all of it, with ``--dry-run``)."""

    table: str
    location: str
    cutoff_ms: int
    snapshots: list[SnapshotChoice]
    files: list[FileChoice]
    metadata_files: list[FileChoice] = field(default_factory=list)

    @property
    def expired(self) -> list[int]:
        return [s.snapshot_id for s in self.snapshots if s.action == EXPIRE]

    @property
    def removed(self) -> list[FileChoice]:
        return [f for f in self.files if f.action == REMOVE]

    @property
    def removed_metadata(self) -> list[FileChoice]:
        return [f for f in self.metadata_files if f.action == REMOVE]

    def kept_files(self, files: list[FileChoice] | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for choice in self.files if files is None else files:
            if choice.action != REMOVE:
                counts[choice.action] = counts.get(choice.action, 0) + 1
        return counts

    def lines(self, *, dry_run: bool) -> list[str]:
        counts = f"{len(self.snapshots)} snapshots, {len(self.files)} data files"
        lines = [f"table {self.table} at {self.location}: {counts}"]
        verb = "would expire" if dry_run else "expire"
        recent = [s for s in self.snapshots if s.action == RECENT]
        for snapshot in self.snapshots:
            if snapshot.action != RECENT:
                action = verb if snapshot.action == EXPIRE else f"keep ({snapshot.action})"
                run = f", run {snapshot.run_id}" if snapshot.run_id else ""
                lines.append(f"  snapshot {snapshot.snapshot_id}{run}: {action}")
        if recent:
            lines.append(f"  keep {len(recent)} snapshots {RECENT}")
        removed = self.removed
        verb = "would remove" if dry_run else "remove"
        lines.append(f"  {verb} {len(removed)} data files in no snapshot ({sum(f.size for f in removed):,} bytes)")
        lines.extend(f"    {choice.key}" for choice in removed)
        for reason, count in sorted(self.kept_files().items()):
            lines.append(f"  keep {count} data files: {reason}")
        gone = self.removed_metadata
        size = sum(f.size for f in gone)
        lines.append(f"  {verb} {len(gone)} metadata files the table no longer references ({size:,} bytes)")
        lines.extend(f"    {choice.key}" for choice in gone)
        for reason, count in sorted(self.kept_files(self.metadata_files).items()):
            lines.append(f"  keep {count} metadata files: {reason}")
        return lines


@dataclass
class MaintenanceResult:
    expired: list[int] = field(default_factory=list)
    removed_files: int = 0
    removed_bytes: int = 0
    removed_metadata_files: int = 0

    def lines(self) -> list[str]:
        return [
            f"expired {len(self.expired)} snapshots; removed {self.removed_files} data files "
            f"({self.removed_bytes:,} bytes) and {self.removed_metadata_files} metadata files the table no longer "
            "references"
        ]


def _snapshot_choice(snapshot: Any, protected: set[int], cutoff_ms: int, log: MaintenanceLog) -> SnapshotChoice:
    run_id = (snapshot.summary or {}).get(RUN_ID_PROPERTY) or ""
    if snapshot.snapshot_id in protected:
        action = REFERENCE
    elif snapshot.timestamp_ms >= cutoff_ms:
        action = RECENT
    elif run_id and log.parts.known_run(run_id) and snapshot.snapshot_id not in log.committed_snapshots:
        action = AWAITING
    else:
        action = EXPIRE
    return SnapshotChoice(snapshot.snapshot_id, snapshot.timestamp_ms, action, run_id)


def choose_snapshots(table: Any, cutoff_ms: int, log: MaintenanceLog) -> list[SnapshotChoice]:
    """Each snapshot of the table, expired or kept (and why)."""
    current = table.current_snapshot()
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
    choices = []
    for snapshot in table.snapshots():
        if current is not None and snapshot.snapshot_id == current.snapshot_id:
            choices.append(SnapshotChoice(snapshot.snapshot_id, snapshot.timestamp_ms, CURRENT, _run(snapshot)))
        else:
            choices.append(_snapshot_choice(snapshot, protected, cutoff_ms, log))
    return choices


def _run(snapshot: Any) -> str:
    return (snapshot.summary or {}).get(RUN_ID_PROPERTY) or ""


def _manifests(table: Any, snapshots: Iterable[Any]) -> dict[str, Any]:
    """The manifests of ``snapshots`` by path (each read once)."""
    found: dict[str, Any] = {}
    for snapshot in snapshots:
        for manifest in snapshot.manifests(table.io):
            found.setdefault(manifest.manifest_path, manifest)
    return found


def referenced_files(table: Any, snapshots: Iterable[Any]) -> set[str]:
    """Every data or delete file some of ``snapshots`` references (live entries of their manifests)."""
    files: set[str] = set()
    for manifest in _manifests(table, snapshots).values():
        files.update(entry.data_file.file_path for entry in manifest.fetch_manifest_entry(table.io))
    return files


def _file_choice(obj: ObjectInfo, referenced: set[str], log: MaintenanceLog, horizon_ms: int) -> str:
    attempt = attempt_of(obj.key)
    if obj.key in referenced:
        return IN_SNAPSHOT
    if attempt is None:
        return NOT_OURS
    if log.parts.is_committed(obj) or log.parts.listed_anywhere(obj.key):
        return LISTED
    if not log.parts.known_run(attempt.run_id):
        return UNKNOWN_RUN
    if not log.run_ended(attempt.run_id):
        return LIVE
    if obj.last_modified_ms > horizon_ms:
        return YOUNG
    return REMOVE


def referenced_metadata(table: Any, snapshots: Sequence[Any]) -> set[str]:
    """The metadata files the table's current metadata references, with ``snapshots`` its snapshots."""
    metadata = table.metadata
    paths = {table.metadata_location, *(entry.metadata_file for entry in metadata.metadata_log)}
    paths |= {stats.statistics_path for stats in (*metadata.statistics, *metadata.partition_statistics)}
    return paths | _metadata_paths(table, snapshots)


def _metadata_choice(obj: ObjectInfo, referenced: set[str], horizon_ms: int) -> str:
    if obj.key in referenced:
        return IN_METADATA
    if not obj.key.endswith(METADATA_SUFFIXES):
        return NOT_METADATA
    if obj.last_modified_ms > horizon_ms:
        return YOUNG_METADATA
    return REMOVE


def _keys(paths: Iterable[str], warehouse: str) -> set[str]:
    base = warehouse.rstrip("/") + "/"
    return {path.removeprefix(base) for path in paths if path.startswith(base)}


def plan_maintenance(
    output: Any,
    storage: Storage,
    log: MaintenanceLog,
    *,
    now_ms: int,
    older_than_days: float,
    grace_s: float,
) -> MaintenancePlan:
    """What maintenance does to the Output's table (``output``: an opened ``IcebergOutput``); changes nothing."""
    table = output.catalog.load_table(output.target.identifier)
    cutoff_ms = now_ms - int(older_than_days * DAY_MS)
    snapshots = choose_snapshots(table, cutoff_ms, log)
    kept = [table.snapshot_by_id(s.snapshot_id) for s in snapshots if s.action != EXPIRE]
    referenced = _keys(referenced_files(table, kept), output.target.warehouse)
    horizon_ms = now_ms - int(grace_s * 1000)
    files = [
        FileChoice(obj.key, obj.size, _file_choice(obj, referenced, log, horizon_ms))
        for obj in storage.list(output.data_prefix)
    ]
    in_metadata = _keys(referenced_metadata(table, kept), output.target.warehouse)
    metadata_horizon_ms = now_ms - int(max(grace_s, METADATA_GRACE_S) * 1000)
    metadata_files = [
        FileChoice(obj.key, obj.size, _metadata_choice(obj, in_metadata, metadata_horizon_ms))
        for obj in storage.list(metadata_prefix(output))
    ]
    return MaintenancePlan(output.target.table, output.location, cutoff_ms, snapshots, files, metadata_files)


def metadata_prefix(output: Any) -> str:
    """The table's metadata/ folder as a key prefix of the output location (beside its data/ folder)."""
    return output.data_prefix.removesuffix("data/") + "metadata/"


def apply_maintenance(
    output: Any, storage: Storage, plan: MaintenancePlan, progress: Callable[[str], None] = lambda _line: None
) -> MaintenanceResult:
    """Do what ``plan`` says: expire its snapshots in one commit, then remove the data files still in no
    snapshot (looked up again after the expiry: a run may have appended meanwhile), then the manifest
    lists and manifests only the expired snapshots used."""
    result = MaintenanceResult()
    table = output.catalog.load_table(output.target.identifier)
    before = list(table.snapshots())
    expired = [s for s in plan.expired if table.snapshot_by_id(s) is not None]
    if expired:
        progress(f"expiring {len(expired)} snapshots of {plan.table} ...")
        table.maintenance.expire_snapshots().by_ids(expired).commit()
        result.expired = expired
    table = output.catalog.load_table(output.target.identifier)
    remaining = list(table.snapshots())
    referenced = _keys(referenced_files(table, remaining), output.target.warehouse)
    removable = [choice for choice in plan.removed if choice.key not in referenced]
    if removable:
        progress(f"removing {len(removable)} data files in no snapshot ...")
    for choice in removable:
        storage.delete(choice.key)  # a file already gone is no error
        result.removed_files += 1
        result.removed_bytes += choice.size
    removed = _remove_expired_manifests(output, storage, table, before, remaining)
    # The rest the plan found unreferenced, unless the table references it now (a commit since the plan).
    in_metadata = _keys(referenced_metadata(table, remaining), output.target.warehouse)
    unreferenced = {choice.key for choice in plan.removed_metadata if choice.key not in in_metadata} - removed
    if unreferenced:
        progress(f"removing {len(unreferenced)} metadata files the table no longer references ...")
    for key in sorted(unreferenced):
        storage.delete(key)
    result.removed_metadata_files = len(removed) + len(unreferenced)
    return result


def _metadata_paths(table: Any, snapshots: Sequence[Any]) -> set[str]:
    return {s.manifest_list for s in snapshots} | set(_manifests(table, snapshots))


def _remove_expired_manifests(
    output: Any, storage: Storage, table: Any, before: Sequence[Any], remaining: Sequence[Any]
) -> set[str]:
    """The manifest lists and manifests only the expired snapshots used: removed now (no grace: no commit
    in flight can be about to reference what a snapshot that is gone wrote); their keys."""
    kept_ids = {s.snapshot_id for s in remaining}
    gone = [s for s in before if s.snapshot_id not in kept_ids]
    if not gone:
        return set()
    unused = _metadata_paths(table, gone) - _metadata_paths(table, remaining)
    keys = _keys(unused, output.target.warehouse)
    for key in sorted(keys):
        storage.delete(key)
    return keys

"""The Output as an Apache Iceberg table: the run's Parquet parts become data by one Iceberg append.

The order of the two commits (see docs/protocol.md, "Iceberg tables"):

1. the stage writes the run's data files (Parquet, attempt-unique names under the table's ``data/``
   folder); they are in no snapshot, so no reader of the table sees them;
2. :func:`commit_files` appends them in **one snapshot** whose summary carries ``glueflow.run_id``,
   ``glueflow.attempt`` and ``glueflow.bookmark_version`` (the bookmark version the run consumed);
3. the Dagster materialization records the snapshot id and commits the bookmark.

A crash between 1 and 2 leaves files in no snapshot: :func:`unreferenced_files` finds them and
maintenance removes them after a grace period. A crash between 2 and 3 leaves a snapshot whose bookmark
version the next attempt finds (:func:`snapshot_of_version`): it does not append again, it adopts that
snapshot. A zombie or a raced re-execution that consumed the same version does the same. The catalog's
compare-and-swap of the metadata pointer makes concurrent appends serial; the loser looks again.

Catalogs are pyiceberg's (``load_catalog``): ``sql`` (SQLite beside the flow file by default, PostgreSQL
through ``uri``), ``glue`` (the Glue Data Catalog) and ``rest``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.table import Table, TableProperties, Transaction
from pyiceberg.types import DecimalType, DoubleType, FloatType, IcebergType, IntegerType, LongType

from glueflow_dagster.core.formats.iceberg import DEFAULT_CATALOG_FILE, partition_column
from glueflow_dagster.core.iceberg_io import STORAGE_FILE_IO

if TYPE_CHECKING:  # pyarrow is imported by the append (after the stage), not before: core.iceberg_io
    import pyarrow as pa

# The snapshot summary's properties that tie a snapshot to the glueflow run that appended it.
RUN_ID_PROPERTY = "glueflow.run_id"
ATTEMPT_PROPERTY = "glueflow.attempt"
BOOKMARK_VERSION_PROPERTY = "glueflow.bookmark_version"
# The selection the appended data was made from: a run that adopts a snapshot must commit the bookmark of
# this manifest, not of its own plan (which may hold more objects, arrived since), or records would be lost.
MANIFEST_ID_PROPERTY = "glueflow.manifest_id"
CATALOG_NAME = "glueflow"
# Attempts at an append that lost the catalog's compare-and-swap to a concurrent commit.
_COMMIT_ATTEMPTS = 5
# Attempts at opening a SQL catalog whose tables another process is creating at the same moment.
_CREATE_ATTEMPTS = 3


class IcebergTableError(ValueError):
    """A table that cannot take the run's data: one line naming the table and the column."""


@dataclass(frozen=True)
class IcebergTarget:
    """Where an Output's table lives: `table` is `namespace.name`, `warehouse` the data's root uri, and
    `catalog` pyiceberg's catalog properties (`type` and, for example, `uri`)."""

    table: str
    warehouse: str
    catalog: Mapping[str, str] = field(default_factory=dict)

    @property
    def identifier(self) -> tuple[str, str]:
        namespace, _, name = self.table.rpartition(".")
        return namespace, name


def default_catalog(flow_dir: Path) -> dict[str, str]:
    """The catalog of a flow file without `catalog:`: SQLite beside it, so the demo needs no set-up."""
    return {"type": "sql", "uri": f"sqlite:///{(flow_dir / DEFAULT_CATALOG_FILE).resolve()}"}


def open_catalog(target: IcebergTarget, *, metadata_only: bool = False) -> Catalog:
    """The target's catalog; a SQLite catalog's folder is made on first use. ``metadata_only``: its tables
    read and write their files through the output location's storage (:mod:`core.iceberg_io`), not
    pyiceberg's Arrow IO: for the steps before the stage, which touch metadata files only. Not for a REST
    catalog: its server may set the table's IO and the warehouse (a name there, not a location)."""
    properties = {"warehouse": target.warehouse, **target.catalog}
    if metadata_only and properties.get("type") in ("sql", "glue"):
        properties["py-io-impl"] = STORAGE_FILE_IO
    uri = properties.get("uri", "")
    if properties.get("type") == "sql" and uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_CREATE_ATTEMPTS):
        try:
            return load_catalog(CATALOG_NAME, **properties)
        except Exception as err:  # noqa: BLE001 - sqlalchemy's error: its module is the sql extra's
            # Two first runs at once both create the SQL catalog's tables: the loser finds them made.
            if "already exists" not in str(err):
                raise
    return load_catalog(CATALOG_NAME, **properties)


def open_table(
    catalog: Catalog,
    target: IcebergTarget,
    schema: Schema | pa.Schema,
    partition_keys: Sequence[str] = (),
    location: str | None = None,
) -> Table:
    """The target's table, created on first use from the output mapping's `schema` with `partition_keys`
    as its spec (at `location`, else where the catalog puts it); an existing table gains the schema's new
    columns (refused: a type Iceberg cannot promote)."""
    namespace, name = target.identifier
    try:
        table = catalog.load_table((namespace, name))
    except NoSuchTableError:
        table = _created(catalog, target, schema, partition_keys, location)
    evolve_schema(table, target.table, schema)
    return table


def _created(
    catalog: Catalog,
    target: IcebergTarget,
    schema: Schema | pa.Schema,
    partition_keys: Sequence[str],
    location: str | None,
) -> Table:
    """The table, created with its spec in one commit (no reader ever sees it unpartitioned). Two first
    runs at once both try: the loser takes the winner's table (the SQL catalog may report the race as its
    database's integrity error rather than as "already exists": the table is looked up either way)."""
    namespace, name = target.identifier
    try:
        catalog.create_namespace(namespace)
    except Exception:
        if not catalog.namespace_exists(namespace):
            raise
    try:
        with catalog.create_table_transaction((namespace, name), schema=schema, location=location) as create:
            columns = [f.name for f in _as_iceberg(schema).fields]
            _set_partition_spec(create, target.table, columns, partition_keys)
    except IcebergTableError:
        raise
    except Exception:
        if not catalog.table_exists((namespace, name)):
            raise
    return catalog.load_table((namespace, name))


def partition_field(key: str) -> tuple[str, str]:
    """A `partition_keys` entry as (source column, transform): `ts` is identity, `day(ts)` a transform."""
    try:
        return partition_column(key)
    except ValueError as err:
        raise IcebergTableError(str(err)) from None


def _set_partition_spec(
    table: Table | Transaction, name: str, columns: Sequence[str], partition_keys: Sequence[str]
) -> None:
    if not partition_keys:
        return
    with table.update_spec() as spec:
        for key in partition_keys:
            column, transform = partition_field(key)
            if column not in columns:
                raise IcebergTableError(f"{name}: partition key {key[:80]!r}: no column {column[:80]!r} in the output")
            spec.add_field(column, transform, column if transform == "identity" else f"{column}_{transform}")


def _promotable(old: IcebergType, new: IcebergType) -> bool:
    """Iceberg's allowed promotions: int -> long, float -> double, decimal precision widened."""
    if old == new:
        return True
    if isinstance(old, IntegerType) and isinstance(new, LongType):
        return True
    if isinstance(old, FloatType) and isinstance(new, DoubleType):
        return True
    if isinstance(old, DecimalType) and isinstance(new, DecimalType):
        return new.scale == old.scale and new.precision >= old.precision
    return False


def _as_iceberg(schema: Schema | pa.Schema) -> Schema:
    """An arrow schema in Iceberg's types (ids unassigned), as pyiceberg converts it on create; an Iceberg
    schema as it is."""
    return Catalog._convert_schema_if_needed(schema)


def evolve_schema(table: Table, name: str, schema: Schema | pa.Schema) -> None:
    """Add the output's new columns to the table; refuse, before anything is written, a column whose type
    changed in a way Iceberg cannot promote (one line naming it)."""
    current = {f.name: f.field_type for f in table.schema().fields}
    wanted = _as_iceberg(schema)
    for wanted_field in wanted.fields:
        old = current.get(wanted_field.name)
        if old is not None and not _promotable(old, wanted_field.field_type):
            raise IcebergTableError(
                f"{name}: column {wanted_field.name[:80]!r} is {old} in the table and {wanted_field.field_type} in "
                "the output mapping: Iceberg promotes only int -> long, float -> double and a decimal's precision"
            )
    if any(f.name not in current for f in wanted.fields) or any(
        current[f.name] != f.field_type for f in wanted.fields if f.name in current
    ):
        with table.update_schema() as update:
            update.union_by_name(schema)


def snapshot_of_version(
    table: Table, bookmark_version: str, adoptable: Callable[[str], bool] = lambda _run_id: True
) -> int | None:
    """The newest snapshot that already holds a run's data for this bookmark version (zombie, retry), if
    any, of an ``adoptable`` run: a snapshot of a run another Dagster instance made (a wiped instance whose
    bookmark starts again at version 0) is no run of this bookmark's history, and adopting it would skip
    this history's data."""
    for snapshot in reversed(table.snapshots()):
        summary = snapshot.summary
        if (
            summary is not None
            and summary.get(BOOKMARK_VERSION_PROPERTY) == bookmark_version
            and adoptable(summary.get(RUN_ID_PROPERTY) or "")
        ):
            return snapshot.snapshot_id
    return None


@dataclass(frozen=True)
class IcebergCommit:
    """What the materialization records of the run's append."""

    snapshot_id: int | None
    appended: bool  # False: the version was already in a snapshot (adopted), or there was nothing to add
    manifest_id: str | None  # the selection the snapshot's data was made from (the adopted one's, if adopted)
    added_records: int
    added_files_bytes: int
    total_records: int


def commit_files(
    catalog: Catalog,
    target: IcebergTarget,
    paths: Sequence[str],
    *,
    run_id: str,
    attempt: int,
    bookmark_version: str,
    manifest_id: str,
    adoptable: Callable[[str], bool] = lambda _run_id: True,
) -> IcebergCommit:
    """Append the run's data files as one snapshot, unless a snapshot already holds this bookmark version.

    A commit lost to a concurrent one (the catalog's compare-and-swap) reloads the table and looks again:
    if the winner consumed the same version, this run adopts its snapshot and appends nothing."""
    properties = {
        RUN_ID_PROPERTY: run_id,
        ATTEMPT_PROPERTY: str(attempt),
        BOOKMARK_VERSION_PROPERTY: bookmark_version,
        MANIFEST_ID_PROPERTY: manifest_id,
    }
    for _ in range(_COMMIT_ATTEMPTS):
        table = catalog.load_table(target.identifier)
        existing = snapshot_of_version(table, bookmark_version, adoptable)
        if existing is not None:
            return _described(table, existing, appended=False)
        if not paths:
            current = table.current_snapshot()
            return _described(table, current.snapshot_id if current else None, appended=False)
        try:
            # Attempt-unique names: no file can be listed twice, so the duplicate scan of every manifest
            # (pyiceberg's default, a cost that grows with the table) is not needed.
            _without_retries(table).add_files(list(paths), snapshot_properties=properties, check_duplicate_files=False)
        except CommitFailedException:
            continue
        table = catalog.load_table(target.identifier)
        snapshot_id = snapshot_of_version(table, bookmark_version, lambda run: run == run_id)
        return _described(table, snapshot_id, appended=True)
    raise IcebergTableError(f"{target.table}: the append lost {_COMMIT_ATTEMPTS} commits in a row to other writers")


def _without_retries(table: Table) -> Table:
    """The table as one commit sees it, with pyiceberg's own retries off for that commit only.

    pyiceberg retries an append that lost the catalog's compare-and-swap by re-applying it on the new
    metadata, which would append a version another writer has just committed. The commit's base snapshot
    must be the one :func:`commit_files` checked: on a conflict it fails, and commit_files looks again.
    The table's stored properties are unchanged (other engines keep their retries)."""
    properties = {**table.metadata.properties, TableProperties.COMMIT_NUM_RETRIES: "0"}
    metadata = table.metadata.model_copy(update={"properties": properties})
    return Table(table.name(), metadata, table.metadata_location, table.io, table.catalog)


def _described(table: Table, snapshot_id: int | None, *, appended: bool) -> IcebergCommit:
    snapshot = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else None
    summary = snapshot.summary if snapshot is not None and snapshot.summary is not None else None

    def figure(key: str) -> int:
        return int(summary.get(key) or 0) if summary is not None else 0

    return IcebergCommit(
        snapshot_id=snapshot_id,
        appended=appended,
        manifest_id=summary.get(MANIFEST_ID_PROPERTY) if summary is not None else None,
        added_records=figure("added-records") if appended else 0,
        added_files_bytes=figure("added-files-size") if appended else 0,
        total_records=figure("total-records"),
    )


def referenced_files(table: Table) -> set[str]:
    """Every data file some snapshot of the table references (what maintenance must keep): the live
    entries of every manifest of every snapshot, each manifest read once (pyiceberg's
    ``inspect.all_files``, without building an Arrow table: no pyarrow before the stage)."""
    manifests = {manifest.manifest_path: manifest for s in table.snapshots() for manifest in s.manifests(table.io)}
    return {
        entry.data_file.file_path
        for manifest in manifests.values()
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
    }


def unreferenced_files(table: Table, listed: Iterable[str]) -> list[str]:
    """Of the data files `listed` under the table's location, those no snapshot references: a run that
    died between writing its files and appending them, or files of expired snapshots."""
    kept = referenced_files(table)
    return sorted(path for path in listed if path not in kept)


def expire_snapshots(table: Table, older_than: datetime) -> list[int]:
    """Expire the snapshots older than `older_than`, always keeping the current one; returns their ids."""
    current = table.current_snapshot()
    cutoff_ms = int(older_than.astimezone(UTC).timestamp() * 1000)
    expired = [
        s.snapshot_id
        for s in table.snapshots()
        if s.timestamp_ms < cutoff_ms and (current is None or s.snapshot_id != current.snapshot_id)
    ]
    if expired:
        table.maintenance.expire_snapshots().by_ids(expired).commit()
    return expired


__all__ = [
    "ATTEMPT_PROPERTY",
    "BOOKMARK_VERSION_PROPERTY",
    "DEFAULT_CATALOG_FILE",
    "MANIFEST_ID_PROPERTY",
    "RUN_ID_PROPERTY",
    "IcebergCommit",
    "IcebergTableError",
    "IcebergTarget",
    "commit_files",
    "default_catalog",
    "evolve_schema",
    "expire_snapshots",
    "open_catalog",
    "open_table",
    "partition_field",
    "referenced_files",
    "snapshot_of_version",
    "unreferenced_files",
]

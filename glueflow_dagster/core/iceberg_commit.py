"""The Output run's commit when the output is an Iceberg table (``output.format: iceberg``).

``core.output_run`` takes one branch here; the rest of the run (plan, stage, claim, fence, figures) is the
same as for a prefix of parts. The two commits, in this order (docs/protocol.md, "Iceberg tables"):

1. **Files.** The stage writes the run's Parquet data files, attempt-unique names under the table's
   ``data/`` folder (:meth:`IcebergOutput.staged`); :func:`commit` writes the run's *adoption record*
   (``_glueflow/iceberg/<run id>.<attempt>.json``: the bookmark this run commits and the manifest it
   read), then completes the files and writes glueflow's commit manifest (``commits.publish``). The
   files are in no snapshot: no reader of the table sees them.
2. **The Iceberg snapshot.** One append (``iceberg_table.commit_files``) whose summary carries
   ``glueflow.run_id``, ``glueflow.attempt``, ``glueflow.bookmark_version`` and ``glueflow.manifest_id``.
3. **glueflow's commit.** The materialization the caller records (the bookmark, the commit record, the
   snapshot id under ``iceberg_snapshot_id``).

A run whose bookmark version is already in a snapshot summary (its predecessor died between 2 and 3, or a
zombie got there first) appends nothing: it *adopts* that snapshot, committing the bookmark and the
manifest of the adoption record the snapshot names, not its own plan, and discards its own files.
Garbage collection never removes a file some snapshot references (:meth:`IcebergOutput.guarded`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import polars as pl
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.schema import Schema

from glueflow_dagster.core.bookmarks import ACTION_KEY, CTX_KEY, MANIFEST_ID_KEY, MANIFEST_KEY, STATE_KEY, VERSION_KEY
from glueflow_dagster.core.commits import (
    Attempt,
    CommitRecord,
    CommittedParts,
    abort,
    commit_manifest_key,
    publish,
)
from glueflow_dagster.core.config import FlowConfig, JobConfig
from glueflow_dagster.core.formats.parquet import utc_timestamps
from glueflow_dagster.core.iceberg_schema import iceberg_schema
from glueflow_dagster.core.iceberg_table import (
    ATTEMPT_PROPERTY,
    MANIFEST_ID_PROPERTY,
    RUN_ID_PROPERTY,
    IcebergCommit,
    IcebergTableError,
    IcebergTarget,
    commit_files,
    open_catalog,
    open_table,
    referenced_files,
    snapshot_of_version,
)
from glueflow_dagster.core.job_run import ROW_COUNT_KEY, URI_KEY, RunRefused
from glueflow_dagster.core.mapping import ApplyMapping
from glueflow_dagster.core.stage import StageRequest, StageResult
from glueflow_dagster.core.storage import (
    RESERVED_DIR,
    SHOWN_CHARS,
    ObjectInfo,
    Storage,
    StorageError,
    location_uri,
    redact,
    shorten,
)

__all__ = [
    "ADOPTED_KEY",
    "ADOPTION_DIR",
    "SNAPSHOT_KEY",
    "IcebergOutput",
    "adoption_key",
    "open_existing_output",
    "open_output",
    "output_schema",
    "table_target",
]

#: Metadata key of the snapshot id that holds the run's data (its own append, or the one it adopted).
SNAPSHOT_KEY = "iceberg_snapshot_id"
#: Metadata key naming the run whose snapshot this run adopted (absent when it appended its own).
ADOPTED_KEY = "iceberg_adopted_run_id"
TABLE_NAME_KEY = "dagster/table_name"
ADOPTION_DIR = f"{RESERVED_DIR}/iceberg"
# What an adopter commits in place of its own plan: the bookmark and the manifest of the snapshot's run.
_ADOPTED_KEYS = (CTX_KEY, ACTION_KEY, VERSION_KEY, "bookmark_run_number", STATE_KEY, MANIFEST_ID_KEY, MANIFEST_KEY)


def adoption_key(run_id: str, attempt: int) -> str:
    return f"{ADOPTION_DIR}/{run_id}.{attempt}.json"


def output_schema(job: JobConfig) -> Schema:
    """The table's schema: the output mapping's columns and types as the data files hold them."""
    return iceberg_schema(utc_timestamps(ApplyMapping.apply(pl.LazyFrame(), job.mappings)).collect_schema())


def _file_io(catalog: dict[str, str], warehouse: str) -> dict[str, str]:
    """The catalog's properties, with the S3 endpoint and region boto3 reads from the environment
    (`AWS_ENDPOINT_URL[_S3]`, `AWS_REGION` / `AWS_DEFAULT_REGION`) unless `s3.endpoint` / `s3.region` are
    set: the table's files go where the run's storage goes, and pyiceberg does not ask AWS for the bucket's
    region (a request to AWS itself, whatever the endpoint)."""
    if not warehouse.startswith("s3://"):
        return catalog
    found = {
        "s3.endpoint": os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        "s3.region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    }
    return {**{key: value for key, value in found.items() if value}, **catalog}


@dataclass
class IcebergOutput:
    """An Output run's table: opened (created, evolved) before the stage writes anything.

    Two catalogs, one table: ``catalog``'s tables read and write metadata files through the output
    location's storage (``core.iceberg_io``), for the steps before the stage; the commit's
    (:attr:`commit_catalog`, pyiceberg's Arrow IO, opened after the stage) reads the data files' Parquet
    footers. pyarrow is thus imported after the stage's peak of memory, not held through it."""

    target: IcebergTarget
    catalog: Any  # pyiceberg's Catalog (metadata files only)
    location: str  # the table's location (its metadata/ and data/ folders)
    data_prefix: str  # the table's data/ folder as a key prefix of the output location's storage
    # Whether a run is one this Dagster instance knows (the commit log's, taken by `guarded`): only such a
    # run's snapshot is adopted; a snapshot of another instance's history is not this bookmark's.
    known_run: Callable[[str], bool] = lambda _run_id: True
    _commit_catalog: Any = None

    @property
    def commit_catalog(self) -> Any:
        """The catalog the commit appends through (pyiceberg's Arrow IO: it reads the files' footers)."""
        if self._commit_catalog is None:
            self._commit_catalog = open_catalog(self.target)
        return self._commit_catalog

    def staged(self, request: StageRequest) -> StageRequest:
        """The stage writes the table's data files: attempt-unique names in its data/ folder."""
        return replace(request, name_prefix=f"{self.data_prefix}{request.name_prefix}")

    def referenced_keys(self) -> frozenset[str]:
        """The keys (under the warehouse) of every data file some snapshot of the table references."""
        table = self.catalog.load_table(self.target.identifier)
        base = self.target.warehouse.rstrip("/") + "/"
        return frozenset(path.removeprefix(base) for path in referenced_files(table) if path.startswith(base))

    def guarded(self, parts: CommittedParts) -> CommittedParts:
        """``parts`` as garbage collection sees them: a data file some snapshot references is committed,
        whatever glueflow's commit log says (a run adopted after its predecessor died before its event)."""
        with table_failures(self.target.table):
            referenced = self.referenced_keys()
        self.known_run = parts.known_run
        return _TableParts(lookup=parts.lookup, known_run=parts.known_run, anywhere=parts.anywhere, table=referenced)

    def commit(self, *args: Any, **kwargs: Any) -> tuple[CommitRecord, dict[str, Any]]:
        """See :meth:`commit_run`; a failure of the catalog or of the table is one line."""
        with table_failures(self.target.table):
            return self.commit_run(*args, **kwargs)

    def commit_run(
        self,
        storage: Storage,
        attempt: Attempt,
        job_name: str,
        result: StageResult,
        metadata: dict[str, Any],
        bookmark_version: str,
    ) -> tuple[CommitRecord, dict[str, Any]]:
        """The run's two commits' first steps (files, snapshot); returns the commit record and the metadata
        the materialization records on top of ``metadata`` (an adopter's: the adopted bookmark and manifest)."""
        table = self.commit_catalog.load_table(self.target.identifier)
        adopted = _adopted(storage, self.target.table, table, bookmark_version, self.known_run)
        if adopted is not None:
            abort(storage, result.pending)
            return _empty_record(attempt, job_name), adopted
        record_body = {key: metadata[key] for key in _ADOPTED_KEYS if key in metadata}
        storage.write_bytes(adoption_key(attempt.run_id, attempt.number), json.dumps(record_body).encode())
        record = publish(storage, attempt, job_name, result.pending, result.records_written)
        done = commit_files(
            self.commit_catalog,
            self.target,
            [location_uri(storage.uri_for(part.key)) for part in record.parts],
            run_id=attempt.run_id,
            attempt=attempt.number,
            bookmark_version=bookmark_version,
            manifest_id=str(metadata.get(MANIFEST_ID_KEY, "")),
            adoptable=self.known_run,
        )
        if record.parts and not done.appended:
            # Another writer appended this bookmark version first (a zombie): adopt it; this run's files are
            # in no snapshot, and no commit lists them (its manifest is rewritten empty): GC removes them.
            empty = _empty_record(attempt, job_name)
            storage.write_bytes(commit_manifest_key(attempt.run_id), json.dumps(empty.to_dict(), indent=1).encode())
            table = self.commit_catalog.load_table(self.target.identifier)
            adopted = _adopted(storage, self.target.table, table, bookmark_version, self.known_run)
            if adopted is None:  # committing this run's bookmark with no snapshot of its data would lose it
                raise IcebergTableError(f"{self.target.table}: the append of {bookmark_version} found no snapshot")
            return empty, adopted
        return record, _figures(self.target.table, done)

    def location_figures(self) -> dict[str, Any]:
        """`dagster/uri`: the table's location (readers read through its metadata, not a listing)."""
        return {URI_KEY: self.location}


def _figures(name: str, done: IcebergCommit, adopted_from: str | None = None) -> dict[str, Any]:
    """What the materialization records of the table: its name, the snapshot, the rows it added."""
    figures = {
        SNAPSHOT_KEY: str(done.snapshot_id) if done.snapshot_id is not None else "",
        TABLE_NAME_KEY: name,
        ROW_COUNT_KEY: done.added_records,
        "iceberg_added_records": done.added_records,
        "iceberg_added_files_bytes": done.added_files_bytes,
        "iceberg_total_records": done.total_records,
    }
    return {**figures, ADOPTED_KEY: adopted_from} if adopted_from is not None else figures


@dataclass
class _TableParts(CommittedParts):
    table: frozenset[str] = frozenset()

    def is_committed(self, obj: ObjectInfo) -> bool:
        return obj.key in self.table or super().is_committed(obj)

    def listed_anywhere(self, key: str) -> bool:
        return key in self.table or super().listed_anywhere(key)


def _empty_record(attempt: Attempt, job_name: str) -> CommitRecord:
    return CommitRecord(attempt.run_id, attempt.number, job_name, (), 0, 0)


def _adopted(
    storage: Storage, name: str, table: Any, bookmark_version: str, known_run: Callable[[str], bool]
) -> dict[str, Any] | None:
    """The metadata of adopting the snapshot that already holds ``bookmark_version``, or None if none does:
    the bookmark and manifest its run recorded in its adoption record, and the snapshot's figures."""
    snapshot_id = snapshot_of_version(table, bookmark_version, known_run)
    if snapshot_id is None:
        return None
    summary = table.snapshot_by_id(snapshot_id).summary
    run_id, attempt = summary.get(RUN_ID_PROPERTY, ""), int(summary.get(ATTEMPT_PROPERTY) or 1)
    key = adoption_key(run_id, attempt)
    try:
        adopted = json.loads(storage.read_bytes(key))
    except (StorageError, ValueError) as err:
        raise IcebergTableError(
            f"{name}: snapshot {snapshot_id} holds bookmark version {bookmark_version} but its run's record "
            f"{storage.uri_for(key)} is unreadable ({type(err).__name__}); nothing was committed"
        ) from None

    def figure(key: str) -> int:
        return int(summary.get(key) or 0)

    done = IcebergCommit(
        snapshot_id,
        appended=False,
        manifest_id=summary.get(MANIFEST_ID_PROPERTY),
        added_records=figure("added-records"),
        added_files_bytes=figure("added-files-size"),
        total_records=figure("total-records"),
    )
    return {**adopted, **_figures(name, done, adopted_from=run_id)}


@contextmanager
def table_failures(name: str) -> Iterator[None]:
    """A refusal of the table (a type Iceberg cannot promote, an unreadable adoption record, commits lost)
    or a failure of the catalog or its store fails the run with one bounded line, credentials redacted (a
    catalog's `uri` may carry a password); glueflow's own refusals and storage errors go on as they are."""
    try:
        yield
    except (RunRefused, StorageError):
        raise
    except IcebergTableError as err:
        raise RunRefused(str(err)) from err
    except Exception as err:  # noqa: BLE001 - pyiceberg's, sqlalchemy's, botocore's and Arrow's errors
        cause = shorten(" ".join(redact(str(err)).split()), 6 * SHOWN_CHARS)
        raise RunRefused(f"iceberg table {name}: {type(err).__name__}: {cause}") from err


def table_target(flow: FlowConfig, storage: Storage) -> IcebergTarget:
    """The flow's table, its warehouse (the output location's uri) and its catalog's properties, with the
    S3 endpoint and region of the run's storage (:func:`_file_io`)."""
    if flow.output.table is None:
        raise IcebergTableError(f"flow {flow.name}: output.format is iceberg but output.table is not set")
    warehouse = location_uri(storage.uri).rstrip("/")
    return IcebergTarget(flow.output.table, warehouse, _file_io(dict(flow.output.catalog), warehouse))


def open_output(flow: FlowConfig, storage: Storage) -> IcebergOutput:
    """See :func:`open_table_output`; a failure of the catalog or of the table is one line."""
    with table_failures(flow.output.table or flow.name):
        return open_table_output(flow, storage)


def open_table_output(flow: FlowConfig, storage: Storage) -> IcebergOutput:
    """The flow's table, created on the first run from the output mapping (``partition_keys`` its spec) at
    ``<output.uri>/<namespace>.<name>``; an existing table gains new mapped columns (a type Iceberg cannot
    promote is refused in one line). Nothing is written before this succeeds."""
    location = flow.output
    target = table_target(flow, storage)
    warehouse = target.warehouse
    catalog = open_catalog(target, metadata_only=True)
    wanted = f"{warehouse}/{location.table}"
    table = open_table(catalog, target, output_schema(flow.output_job), location.partition_keys, location=wanted)
    table_location = table.location().rstrip("/")
    if not table_location.startswith(warehouse + "/"):
        raise IcebergTableError(
            f"{location.table}: the table's location {table_location[:120]} is outside output.uri {warehouse[:120]} "
            "(glueflow writes a table's data files under output.uri only)"
        )
    data_prefix = f"{table_location.removeprefix(warehouse + '/')}/data/"
    return IcebergOutput(target, catalog, table_location, data_prefix)


def open_existing_output(flow: FlowConfig, storage: Storage) -> IcebergOutput:
    """The flow's table as it is, for maintenance: neither created nor evolved (one line if it is missing)."""
    location = flow.output
    with table_failures(location.table or flow.name):
        target = table_target(flow, storage)
        warehouse = target.warehouse
        catalog = open_catalog(target)
        try:
            table = catalog.load_table(target.identifier)
        except NoSuchTableError:
            raise IcebergTableError(
                f"{location.table}: no such table in the catalog yet (the first Output run creates it)"
            ) from None
        table_location = table.location().rstrip("/")
        if not table_location.startswith(warehouse + "/"):
            raise IcebergTableError(
                f"{location.table}: the table's location {table_location[:120]} is outside output.uri {warehouse[:120]}"
            )
        return IcebergOutput(target, catalog, table_location, f"{table_location.removeprefix(warehouse + '/')}/data/")

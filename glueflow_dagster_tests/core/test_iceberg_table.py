"""The Output as an Iceberg table, in the core: files first, then one snapshot per bookmark version.

Real parts: pyiceberg's SQL catalog on SQLite, Parquet files written by polars, read back through the table
by pyiceberg and polars, and by DuckDB from the files the table's scan plans (a manifest reader).
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from glueflow_dagster.core.iceberg_table import (
    BOOKMARK_VERSION_PROPERTY,
    RUN_ID_PROPERTY,
    IcebergTableError,
    IcebergTarget,
    commit_files,
    default_catalog,
    expire_snapshots,
    open_catalog,
    open_table,
    partition_field,
    unreferenced_files,
)

SCHEMA = pl.Schema({"id": pl.Int64, "user": pl.String, "ts": pl.Datetime("us", "UTC")})


def target(tmp_path: Path, table: str = "glueflow.events") -> IcebergTarget:
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir(exist_ok=True)
    return IcebergTarget(table=table, warehouse=warehouse.as_uri(), catalog=default_catalog(tmp_path))


def write_part(folder: Path, ids: range, day: int = 1) -> str:
    """One attempt-unique Parquet part of the output mapping's schema, every row on one day."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{uuid.uuid4().hex}.parquet"
    frame = pl.DataFrame(
        {
            "id": list(ids),
            "user": [f"u{i}" for i in ids],
            "ts": [datetime(2026, 12, day, 0, 0, tzinfo=UTC) + timedelta(seconds=i) for i in ids],
        },
        schema=SCHEMA,
    )
    frame.write_parquet(path)
    return str(path)


def test_first_run_creates_the_table_and_one_snapshot_holds_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")  # polars_iceberg is not a dependency
    where = target(tmp_path)
    catalog = open_catalog(where)
    table = open_table(catalog, where, SCHEMA.to_arrow(), partition_keys=["day(ts)"])
    assert [f.name for f in table.schema().fields] == ["id", "user", "ts"]
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [("ts_day", "day")]
    data = Path(table.location().removeprefix("file://")) / "data"
    parts = [write_part(data, range(0, 50), day=1), write_part(data, range(50, 80), day=2)]
    assert table.current_snapshot() is None  # written, in no snapshot: no reader sees them

    done = commit_files(catalog, where, parts, run_id="run-1", attempt=1, bookmark_version="v1", manifest_id="m-v1")

    table = catalog.load_table(where.identifier)
    assert done.appended and done.snapshot_id == table.current_snapshot().snapshot_id
    assert (done.added_records, done.total_records) == (80, 80)
    summary = table.current_snapshot().summary
    assert (summary.get(RUN_ID_PROPERTY), summary.get(BOOKMARK_VERSION_PROPERTY)) == ("run-1", "v1")
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(80))
    assert pl.scan_iceberg(table).select(pl.len()).collect().item() == 80
    planned = [task.file.file_path.removeprefix("file://") for task in table.scan().plan_files()]
    assert duckdb.sql(f"select count(distinct id) from read_parquet({planned!r})").fetchall() == [(80,)]
    assert {p["ts_day"] for p in table.inspect.partitions().column("partition").to_pylist()} == {
        datetime(2026, 12, 1).date(),
        datetime(2026, 12, 2).date(),
    }


def test_a_second_commit_of_the_same_bookmark_version_adopts_the_snapshot(tmp_path: Path) -> None:
    """A zombie, or a retry after a crash between the append and the materialization: no second append."""
    where = target(tmp_path)
    catalog = open_catalog(where)
    table = open_table(catalog, where, SCHEMA.to_arrow())
    data = Path(table.location().removeprefix("file://")) / "data"
    first = commit_files(
        catalog,
        where,
        [write_part(data, range(10))],
        run_id="r",
        attempt=1,
        bookmark_version="v7",
        manifest_id="m-v7",
    )
    again = commit_files(
        catalog,
        where,
        [write_part(data, range(10))],
        run_id="r",
        attempt=2,
        bookmark_version="v7",
        manifest_id="m-v7",
    )
    assert (again.appended, again.snapshot_id) == (False, first.snapshot_id)
    # The adopter learns which selection the snapshot holds: it commits that bookmark, not its own plan's.
    assert again.manifest_id == first.manifest_id == "m-v7"
    table = catalog.load_table(where.identifier)
    assert table.scan().to_arrow().num_rows == 10
    assert len(table.snapshots()) == 1
    # The retry's own file is in no snapshot: maintenance's to remove.
    listed = [str(p) for p in data.glob("*.parquet")]
    assert len(unreferenced_files(table, [f"file://{p}" for p in listed] + listed)) == 3  # its own, in two spellings


def test_two_runs_racing_on_one_version_append_once(tmp_path: Path) -> None:
    """Two writers (two catalogs, as two processes) commit the same bookmark version at once: the catalog's
    compare-and-swap lets one in; the other finds the version in a snapshot and appends nothing."""
    where = target(tmp_path)
    table = open_table(open_catalog(where), where, SCHEMA.to_arrow())
    data = Path(table.location().removeprefix("file://")) / "data"
    start, outcomes = threading.Barrier(2), []

    def run(attempt: int) -> None:
        part = write_part(data, range(100))
        catalog = open_catalog(where)
        start.wait()
        outcomes.append(
            commit_files(catalog, where, [part], run_id="r", attempt=attempt, bookmark_version="v1", manifest_id="m-v1")
        )

    threads = [threading.Thread(target=run, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.appended for o in outcomes) == [False, True]
    assert len({o.snapshot_id for o in outcomes}) == 1
    table = open_catalog(where).load_table(where.identifier)
    assert table.scan().to_arrow().num_rows == 100
    assert "commit.retry.num-retries" not in table.properties  # other writers keep their retries


def test_different_versions_append_in_turn(tmp_path: Path) -> None:
    where = target(tmp_path)
    catalog = open_catalog(where)
    table = open_table(catalog, where, SCHEMA.to_arrow())
    data = Path(table.location().removeprefix("file://")) / "data"
    for n in range(3):
        commit_files(
            catalog,
            where,
            [write_part(data, range(n * 10, n * 10 + 10))],
            run_id=f"r{n}",
            attempt=1,
            bookmark_version=f"v{n}",
            manifest_id=f"m-v{n}",
        )
    table = catalog.load_table(where.identifier)
    assert [s.summary.get(BOOKMARK_VERSION_PROPERTY) for s in table.snapshots()] == ["v0", "v1", "v2"]
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(30))
    # An empty run (nothing read) appends nothing and names the current snapshot.
    empty = commit_files(catalog, where, [], run_id="r3", attempt=1, bookmark_version="v3", manifest_id="m-v3")
    assert (empty.appended, empty.snapshot_id) == (False, table.current_snapshot().snapshot_id)


def test_a_new_mapped_column_evolves_the_table_and_a_type_change_is_refused_first(tmp_path: Path) -> None:
    where = target(tmp_path)
    catalog = open_catalog(where)
    open_table(catalog, where, pl.Schema({"id": pl.Int32, "user": pl.String}).to_arrow())
    wider = pl.Schema({"id": pl.Int64, "user": pl.String, "country": pl.String}).to_arrow()
    table = open_table(catalog, where, wider)  # int -> long promoted, country added
    assert [(f.name, str(f.field_type)) for f in table.schema().fields] == [
        ("id", "long"),
        ("user", "string"),
        ("country", "string"),
    ]
    with pytest.raises(IcebergTableError, match=r"glueflow.events: column 'user' is string in the table and long"):
        open_table(catalog, where, pl.Schema({"id": pl.Int64, "user": pl.Int64}).to_arrow())
    assert [str(f.field_type) for f in catalog.load_table(where.identifier).schema().fields] == [
        "long",
        "string",
        "string",
    ]


def test_partition_keys_parse_as_identity_or_a_time_transform() -> None:
    assert partition_field("country") == ("country", "identity")
    assert partition_field("hour(ts)") == ("ts", "hour")
    with pytest.raises(IcebergTableError, match=r"partition key 'bucket\(16, id\)': unknown transform"):
        partition_field("bucket(16, id)")


def test_expiring_keeps_the_current_snapshot(tmp_path: Path) -> None:
    where = target(tmp_path)
    catalog = open_catalog(where)
    table = open_table(catalog, where, SCHEMA.to_arrow())
    data = Path(table.location().removeprefix("file://")) / "data"
    for n in range(3):
        commit_files(
            catalog,
            where,
            [write_part(data, range(n, n + 1))],
            run_id="r",
            attempt=1,
            bookmark_version=f"{n}",
            manifest_id=f"m-{n}",
        )
    table = catalog.load_table(where.identifier)
    expired = expire_snapshots(table, datetime.now(UTC) + timedelta(days=1))
    table = catalog.load_table(where.identifier)
    assert len(expired) == 2 and [s.snapshot_id for s in table.snapshots()] == [table.current_snapshot().snapshot_id]
    assert table.scan().to_arrow().num_rows == 3  # appends: the current snapshot still holds every file

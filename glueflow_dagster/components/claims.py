"""Commit claims in the Dagster instance, for stores that do not honour conditional writes (`core.claims`).

A claim is one row inserted into the instance's key-value table (``kvs``, the run storage's table with a
unique index on ``key``, which Dagster's own cursors use): the INSERT either adds the row or fails on the
unique index, atomically, in one transaction on PostgreSQL and under SQLite's write lock (every SQLite
write takes the database's single write lock). The row's key is ``glueflow/claims/<location uri>/<claim
key>``, its value the claimant's ``{"run_id": ..., "attempt": n}``: the same names and bodies as the
claim objects a location that honours ``If-None-Match`` holds. A run whose fence passed removes the rows
of older versions of its series (``core.claims.prune_superseded_claims``): the table holds the current
versions' claims, not one row per commit forever.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from dagster import DagsterInstance

# An instance whose run storage is not SQL (an in-memory test instance) lives in one process: a lock there.
_PROCESS_LOCK = threading.Lock()


def _sql_run_storage(instance: DagsterInstance) -> Any | None:
    """The instance's SQL run storage (SQLite or PostgreSQL; unwrapped from a `storage:` block), or None."""
    storage: Any = instance.run_storage
    for _ in range(3):
        if hasattr(storage, "connect") and hasattr(storage, "_instance"):
            return storage
        inner = getattr(storage, "_storage", None)
        storage = getattr(inner, "run_storage", None)
        if storage is None:
            return None
    return None


class InstanceClaims:
    """`core.claims.ClaimTable` over a Dagster instance's key-value table."""

    def __init__(self, instance: DagsterInstance) -> None:
        self.instance = instance

    def insert_unique(self, name: str, body: str) -> str | None:
        from dagster._core.storage.runs.schema import KeyValueStoreTable
        from sqlalchemy import exc, select

        storage = _sql_run_storage(self.instance)
        if storage is None:
            return self._insert_in_process(name, body)
        try:
            with storage.connect() as conn:
                conn.execute(KeyValueStoreTable.insert().values(key=name, value=body))
            return None
        except exc.IntegrityError:
            pass  # the unique index refused it: read the holder
        with storage.connect() as conn:
            row = conn.execute(select(KeyValueStoreTable.c.value).where(KeyValueStoreTable.c.key == name)).fetchone()
        return "" if row is None or row[0] is None else str(row[0])

    def names_under(self, prefix: str) -> list[str]:
        """The claim rows whose name starts with ``prefix`` (a LIKE on the key, ``_`` and ``%`` escaped)."""
        from dagster._core.storage.runs.schema import KeyValueStoreTable
        from sqlalchemy import select

        storage = _sql_run_storage(self.instance)
        if storage is None:
            return []  # an in-memory instance lives and dies with its process: nothing piles up
        query = select(KeyValueStoreTable.c.key).where(KeyValueStoreTable.c.key.startswith(prefix, autoescape=True))
        with storage.connect() as conn:
            return [str(row[0]) for row in conn.execute(query).fetchall()]

    def delete_rows(self, names: Sequence[str]) -> int:
        """Delete the rows ``names`` in one statement; returns how many went."""
        from dagster._core.storage.runs.schema import KeyValueStoreTable

        storage = _sql_run_storage(self.instance)
        if storage is None or not names:
            return 0
        with storage.connect() as conn:
            result = conn.execute(KeyValueStoreTable.delete().where(KeyValueStoreTable.c.key.in_(list(names))))
        return int(result.rowcount or 0)

    def _insert_in_process(self, name: str, body: str) -> str | None:
        run_storage = self.instance.run_storage
        with _PROCESS_LOCK:
            found = run_storage.get_cursor_values({name}).get(name)
            if found is not None:
                return found
            run_storage.set_cursor_values({name: body})
        return None


__all__ = ["InstanceClaims"]

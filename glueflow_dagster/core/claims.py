"""Where the one right to commit after a version (the commit claim, `commits.claim_commit`) is taken.

Plain Python (no Dagster import). A location whose store honours put-if-absent (S3 and moto: ``PutObject``
with ``If-None-Match: *``; a local folder: a hard link) holds its own claims, as before. A store that does
not (s3rver, older MinIO releases, Ceph's gateway before conditional writes: they refuse the header with
``NotImplemented`` or ignore it) cannot: there the claim is a unique row inserted in a :class:`ClaimTable`,
which the Dagster shell backs with the instance's database (`components/claims.py`: one INSERT into a
uniquely indexed table, one transaction on PostgreSQL, under SQLite's write lock). Whether a store honours
it is probed once per location and process (``Storage.honours_conditional_writes``); a local folder whose
file system refuses hard links does not honour it either, and takes its claims in the table too. A run past
its fence removes the table's rows of older versions (:func:`prune_superseded_claims`): the rows stay bounded.

No store makes a run fail because of the claim: without a table (a caller outside Dagster) a store that
does not honour put-if-absent still takes its claims in the location, and says so in the log; the pool
and the fence then keep runs apart (docs/protocol.md, Commit claims).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol

from glueflow_dagster.core.commits import CLAIMS_DIR, Attempt, ClaimTaker, claim_commit, location_taker
from glueflow_dagster.core.storage import Storage

#: Prefix of the claim rows in a :class:`ClaimTable`: ``glueflow/claims/<location uri>/<claim key>``.
ROW_PREFIX = "glueflow/claims"


class ClaimTable(Protocol):
    """A place outside the location that inserts a uniquely named row atomically (the Dagster instance)."""

    def insert_unique(self, name: str, body: str) -> str | None:
        """Insert the row ``name`` holding ``body`` unless a row of that name exists: None when this call
        inserted it, else the existing row's body."""
        ...

    def names_under(self, prefix: str) -> list[str]:
        """The names of the rows that start with ``prefix`` (none when the table cannot list)."""
        ...

    def delete_rows(self, names: Sequence[str]) -> int:
        """Delete the rows ``names`` (a missing one is fine); returns how many were deleted."""
        ...


def row_name(location_uri: str, key: str) -> str:
    """The row of the claim ``key`` (``_glueflow/commits/claims/<fence>.<generation>.json``) of a location."""
    return f"{ROW_PREFIX}/{location_uri}/{key}"


def table_taker(table: ClaimTable, location_uri: str) -> ClaimTaker:
    """Claims as unique rows of ``table``, one namespace per location."""

    def take(key: str, body: bytes) -> bytes | None:
        found = table.insert_unique(row_name(location_uri, key), body.decode())
        return None if found is None else found.encode()

    return take


def honours_conditional_writes(storage: Storage) -> bool:
    """Whether the location's store honours put-if-absent (a backend without the probe is taken to)."""
    probe = getattr(storage, "honours_conditional_writes", None)
    return bool(probe()) if callable(probe) else True


def claim_place(storage: Storage, table: ClaimTable | None, log: Callable[[str], None]) -> ClaimTaker:
    """Where the claims of ``storage`` are taken: in the location when its store honours put-if-absent,
    else in ``table`` (the Dagster instance); without a table, in the location all the same (logged)."""
    if honours_conditional_writes(storage):
        return location_taker(storage)
    if table is not None:
        return table_taker(table, storage.uri)
    log(
        f"{storage.uri}: the store does not honour conditional writes (If-None-Match) and no claim table was "
        "given; the commit claim is taken in the location, where every claimant wins: only the pool and the "
        "fence keep runs apart"
    )
    return location_taker(storage)


def take_claim(
    storage: Storage,
    fence: str,
    attempt: Attempt,
    *,
    settled: Callable[[Attempt], bool],
    table: ClaimTable | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> str:
    """`commits.claim_commit` in the place :func:`claim_place` picks; returns the claim's key."""
    return claim_commit(storage, fence, attempt, settled=settled, take=claim_place(storage, table, log))


#: A fence token: a series and the version number it ends with (``input-after-<storage id>``,
#: ``output-<ctx token>-v<bookmark version>``).
_FENCE = re.compile(r"^(?P<series>.*?)(?P<number>\d+)$")
#: What follows the series in a claim row: ``<number>.<generation>.json``.
_ROW_TAIL = re.compile(r"^(?P<number>\d+)\.\d{4,}\.json$")


def prune_superseded_claims(
    storage: Storage, fence: str, table: ClaimTable | None, log: Callable[[str], None] = lambda _m: None
) -> int:
    """Remove the claim rows of ``storage``'s location for versions older than ``fence`` (same series: the
    Input job's ``input-after-``, or one ``transformation_ctx``'s ``output-<token>-v``); returns how many.

    Called by a run **after its fence passed**: ``fence`` is then the committed version, and the run holds
    its claim, so no one commits after another version until this run has committed. Every holder of an
    older version's claim planned from a version that is no longer the newest, and its fence refuses it
    whether or not its row exists: the rows are dead weight. This keeps the instance's claim rows to the
    current version's (one per series, plus the generations of its stale holders) instead of one per
    commit forever. Only rows in ``table``, and only where the location's claims are taken there (a store
    that does not honour conditional writes); claim objects in a location are removed by garbage
    collection after the grace period (``commits.collect_garbage``).
    """
    if table is None or honours_conditional_writes(storage):
        return 0
    match = _FENCE.match(fence)
    if match is None:
        return 0
    current = int(match["number"])
    prefix = row_name(storage.uri, f"{CLAIMS_DIR}/{match['series']}")
    try:
        older = []
        for name in table.names_under(prefix):
            tail = _ROW_TAIL.match(name[len(prefix) :])
            if tail is not None and int(tail["number"]) < current:
                older.append(name)
        removed = table.delete_rows(older) if older else 0
    except Exception as err:  # noqa: BLE001 - housekeeping: never fails the run; the next run tries again
        log(f"could not remove old commit claims of {storage.uri} from the instance ({type(err).__name__}); "
            "the next run tries again")  # fmt: skip
        return 0
    if removed:
        log(f"removed {removed} commit claims of versions before {fence} of {storage.uri} from the instance")
    return removed


__all__ = [
    "ROW_PREFIX",
    "ClaimTable",
    "claim_place",
    "honours_conditional_writes",
    "prune_superseded_claims",
    "row_name",
    "take_claim",
]

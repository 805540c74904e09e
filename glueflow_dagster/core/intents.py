"""Commit intents: a publish cut short is repaired by the next writer, not an hour later.

Plain Python (no Dagster import). Before completing its first part, `commits.publish` writes the attempt's
intent ``_glueflow/intents/<run id>.<attempt>.json``: every pending part it is about to complete. A publish
that dies part-way (the S3 endpoint lost, the worker killed) leaves completed parts that no commit lists:
Dagster's readers and manifest readers skip them, but a reader that lists the prefix (Athena, Spark, Glue
crawlers) reads them, and their records twice once another run redoes the work.

:func:`repair_intents` runs in the location's writer, first thing in each run (before garbage
collection), and settles every intent whose attempt has ended:

- its run **committed** (a materialization lists this attempt): the publish finished; the intent goes;
- its run **ended without committing** (failed, canceled, killed and marked failed; or an earlier attempt
  of the run now writing): rolled back at once. Its commit manifest goes first (if the run committed
  nowhere), then its completed parts (never one a commit of its run lists), then its pending uploads are
  aborted, then the intent;
- its run is **still running**, or unknown to this instance: left alone (the grace period of garbage
  collection still covers objects whose writer's state is unknown).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from glueflow_dagster.core.commits import (
    INTENTS_DIR,
    Attempt,
    CommittedParts,
    commit_manifest_key,
)
from glueflow_dagster.core.storage import ObjectInfo, PendingObject, Storage, StorageError


@dataclass(frozen=True)
class Intent:
    """What one attempt was about to publish."""

    key: str
    attempt: Attempt
    parts: tuple[PendingObject, ...]


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair_intents` did: intents of committed runs removed, intents rolled back, and the
    completed parts deleted and pending uploads aborted by those rollbacks."""

    finished: int = 0
    rolled_back: int = 0
    parts_removed: int = 0
    uploads_aborted: int = 0

    def metadata(self) -> dict[str, int]:
        """The entries the repairing run records in its materialization (docs/metadata.md)."""
        return {
            "intents_finished": self.finished,
            "intents_rolled_back": self.rolled_back,
            "intent_parts_removed": self.parts_removed,
            "intent_uploads_aborted": self.uploads_aborted,
        }


def read_intent(storage: Storage, key: str) -> Intent | None:
    """The intent at ``key``, or None when it cannot be read as one."""
    try:
        data = json.loads(storage.read_bytes(key))
        attempt = Attempt(str(data["run_id"]), int(data["attempt"]))
        parts = tuple(
            PendingObject(key=str(k), size=int(size), token=str(token), parts=tuple((int(n), str(e)) for n, e in up))
            for k, size, token, up in data["parts"]
        )
    except (StorageError, ValueError, KeyError, TypeError):
        return None
    return Intent(key, attempt, parts)


def repair_intents(
    storage: Storage,
    committed: CommittedParts,
    settled: Callable[[Attempt], bool],
    *,
    current: Attempt | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> RepairReport:
    """Finish or roll back every intent of the location whose attempt has ended (module docstring).

    ``current`` is the attempt running this repair: an earlier attempt of its own run has ended. Never
    deletes an object a commit lists (`CommittedParts.is_committed` and `listed_anywhere` are checked for
    every part it removes).
    """
    finished = rolled_back = removed = aborted = 0
    existing: set[str] | None = None  # the location's keys, listed once, at the first rollback
    for obj in list(storage.list(INTENTS_DIR)):
        intent = read_intent(storage, obj.key)
        if intent is None:
            continue
        attempt = intent.attempt
        record = committed.record(attempt.run_id)
        if record is not None and record.attempt == attempt.number:
            storage.delete(intent.key)
            finished += 1
            log(
                f"commit intent of run {attempt.run_id} (attempt {attempt.number}) finished: its materialization "
                f"commits its {len(intent.parts)} parts; intent removed from {storage.uri}"
            )
            continue
        if not committed.known_run(attempt.run_id):
            continue  # another instance's history: not ours to judge
        earlier_own = current is not None and current.run_id == attempt.run_id and attempt.number < current.number
        if not (earlier_own or settled(attempt)):
            continue  # still publishing, or about to
        if record is None and not committed.anywhere(attempt.run_id):
            storage.delete(commit_manifest_key(attempt.run_id))  # first: no manifest lists a deleted part
        if existing is None:
            existing = {o.key for o in storage.list()}
        parts_removed, uploads_aborted = _roll_back_parts(storage, intent, committed, existing)
        storage.delete(intent.key)
        rolled_back += 1
        removed += parts_removed
        aborted += uploads_aborted
        log(
            f"rolled back the commit intent of run {attempt.run_id} (attempt {attempt.number}), which ended "
            f"without committing: {parts_removed} completed parts removed and {uploads_aborted} pending uploads "
            f"aborted at once in {storage.uri}"
        )
    return RepairReport(finished, rolled_back, removed, aborted)


def _roll_back_parts(
    storage: Storage, intent: Intent, committed: CommittedParts, existing: set[str]
) -> tuple[int, int]:
    """Delete the intent's completed parts and abort its pending ones, never a part a commit lists;
    returns (parts removed, uploads aborted)."""
    removed = aborted = 0
    for part in intent.parts:
        if committed.is_committed(ObjectInfo(part.key, part.size, 0, "")) or committed.listed_anywhere(part.key):
            continue
        if part.key in existing:  # completed before the publish was cut short
            storage.delete(part.key)
            removed += 1
        else:  # still pending: invisible; aborted now rather than after the grace period
            with suppress(StorageError):
                storage.abort_upload(part)
                aborted += 1
    return removed, aborted


__all__ = ["Intent", "RepairReport", "read_intent", "repair_intents"]

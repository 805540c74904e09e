"""The commit protocol: what a job writes becomes data only when its run commits.

Plain Python (no Dagster import). The protocol is specified once, in ``docs/protocol.md`` (objects and
names, pending writes per store, claims, fences, manifests, the event log as the commit log, garbage
collection, what readers and writers must do); this module is its only implementation: the one place
that completes pending parts (:func:`complete`, :func:`publish`), discards them (:func:`abort`,
:func:`aborted_on_failure`), takes claims (:func:`claim_commit`) and removes orphans
(:func:`collect_garbage`), which never deletes an object that a commit lists.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from glueflow_dagster.core.storage import (
    PENDING_DIR,
    RESERVED_DIR,
    ObjectInfo,
    PendingObject,
    Storage,
    StorageError,
)

#: Where each commit's manifest lies in its location, for readers outside Dagster.
COMMITS_DIR = f"{RESERVED_DIR}/commits"
#: Metadata key of the commit record on the committing materialization.
COMMIT_KEY = "commit"
#: Default grace period before orphans are removed: longer than any attempt's write-to-commit time.
DEFAULT_ORPHAN_GRACE_S = 3600

# Non-greedy run id: it ends at the first "-attempt-<digits>-part-r-" (run ids never contain "attempt").
_PART_NAME = re.compile(r"run-(?P<run_id>.+?)-attempt-(?P<attempt>\d+)-part-r-\d+(?:\.[^/]*)?")


class CommitConflict(RuntimeError):
    """Another run committed to the same location since this attempt planned: it must not commit."""


@dataclass(frozen=True)
class Attempt:
    """One attempt of one run: the unit that owns object names."""

    run_id: str
    number: int = 1

    @property
    def part_prefix(self) -> str:
        return part_prefix(self.run_id, self.number)


def part_prefix(run_id: str, attempt: int) -> str:
    """Name prefix of every object the attempt writes: never a name another attempt may commit."""
    return f"run-{run_id}-attempt-{attempt}"


def attempt_of(key: str) -> Attempt | None:
    """The attempt that wrote a part (from its name), or None for objects glueflow's commits did not name."""
    match = _PART_NAME.fullmatch(key.rsplit("/", 1)[-1])
    return Attempt(match.group("run_id"), int(match.group("attempt"))) if match else None


def commit_manifest_key(run_id: str) -> str:
    return f"{COMMITS_DIR}/{run_id}.json"


#: Where each attempt records, before completing its first part, the parts it is about to complete.
INTENTS_DIR = f"{RESERVED_DIR}/intents"


def intent_key(attempt: Attempt) -> str:
    """``_glueflow/intents/<run id>.<attempt>.json``."""
    return f"{INTENTS_DIR}/{attempt.run_id}.{attempt.number}.json"


def record_intent(storage: Storage, attempt: Attempt, pending: Sequence[PendingObject]) -> str:
    """Write the attempt's commit intent: every pending part it will complete (key, size, upload token and
    uploaded parts), so the next writer can finish or roll back a publish cut short (``core.intents``)."""
    body = {
        "run_id": attempt.run_id,
        "attempt": attempt.number,
        "parts": [[obj.key, obj.size, obj.token, [list(p) for p in obj.parts]] for obj in pending],
    }
    key = intent_key(attempt)
    storage.write_bytes(key, json.dumps(body).encode())
    return key


def _manifest_run_id(key: str) -> str | None:
    """The run id of a commit manifest's key, or None for any other object."""
    folder, _, name = key.rpartition("/")
    return name.removesuffix(".json") if folder == COMMITS_DIR and name.endswith(".json") else None


@dataclass(frozen=True)
class CommitRecord:
    """What one committed attempt made visible; recorded on its materialization and as a manifest object."""

    run_id: str
    attempt: int
    job: str
    parts: tuple[ObjectInfo, ...]
    records_written: int
    committed_at_ms: int

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(obj.key for obj in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "attempt": self.attempt,
            "job": self.job,
            "committed_at_ms": self.committed_at_ms,
            "records_written": self.records_written,
            "bytes_written": sum(obj.size for obj in self.parts),
            "parts": [[o.key, o.size, o.last_modified_ms, o.etag] for o in self.parts],
        }

    @classmethod
    def from_dict(cls, data: Any) -> CommitRecord | None:
        """The record back from metadata or a manifest object; None for anything that is not one."""
        if not isinstance(data, dict) or "run_id" not in data or "parts" not in data:
            return None
        return cls(
            run_id=str(data["run_id"]),
            attempt=int(data.get("attempt", 1)),
            job=str(data.get("job", "")),
            parts=tuple(ObjectInfo(str(k), int(s), int(lm), str(e)) for k, s, lm, e in data["parts"]),
            records_written=int(data.get("records_written", 0)),
            committed_at_ms=int(data.get("committed_at_ms", 0)),
        )


def publish(
    storage: Storage, attempt: Attempt, job: str, pending: Sequence[PendingObject], records_written: int
) -> CommitRecord:
    """Complete the attempt's pending objects and write its commit manifest; returns the commit record.

    The caller records the returned record on the run's materialization: that event is the commit. Before
    completing its first part it records its commit intent (:func:`record_intent`), so that a publish cut
    short is repaired by the next writer (``core.intents``), not only by garbage collection an hour later.
    """
    record_intent(storage, attempt, pending)
    parts = complete(storage, pending)
    record = CommitRecord(
        run_id=attempt.run_id,
        attempt=attempt.number,
        job=job,
        parts=parts,
        records_written=records_written,
        committed_at_ms=int(time.time() * 1000),
    )
    storage.write_bytes(commit_manifest_key(attempt.run_id), json.dumps(record.to_dict(), indent=1).encode())
    return record


#: Where the claims of the right to commit after a version live (one small object per commit).
CLAIMS_DIR = f"{COMMITS_DIR}/claims"


#: Run ids of the claims bookmark admin actions take (``bookmark-admin-<action>-<lease end ms>-<random>``):
#: an admin action (reset, rewind, set-to-current) takes the same claim as runs, so neither commits over
#: the other; it holds it for the moment between its fence and its event, and at most until the lease ends.
ADMIN_RUN_PREFIX = "bookmark-admin-"
_ADMIN_RUN = re.compile(r"bookmark-admin-(?P<action>[a-z-]+?)-(?P<until>\d+)-[0-9a-f]+")


def admin_attempt(action: str, lease_until_ms: int) -> Attempt:
    """The attempt a bookmark admin action claims as."""
    return Attempt(f"{ADMIN_RUN_PREFIX}{action}-{lease_until_ms}-{uuid.uuid4().hex[:8]}")


def admin_lease(run_id: str) -> tuple[str, int] | None:
    """(action, lease end in ms) of an admin action's claim; None for a run's."""
    match = _ADMIN_RUN.fullmatch(run_id)
    return (match.group("action"), int(match.group("until"))) if match else None


def later_reads(action: str) -> str:
    """What becomes of the objects a refused run planned to read, after ``action`` committed a bookmark."""
    if action == "set-to-current":
        return (
            "set-to-current marked these objects read: no later run reads them unless the bookmark is reset "
            "or rewound"
        )
    return "a later run reads these objects"


class ClaimLost(Exception):
    """Another attempt (``holder``) holds the right to commit after the version this attempt planned from."""

    def __init__(self, message: str, holder: Attempt | None = None) -> None:
        super().__init__(message)
        self.holder = holder


#: How a claim is taken: ``take(key, body)`` puts ``body`` under ``key`` only if nothing holds it, and returns
#: None when it did, else the holder's body (``core.claims`` takes it in the location or the Dagster instance).
ClaimTaker = Callable[[str, bytes], "bytes | None"]


def location_taker(storage: Storage) -> ClaimTaker:
    """Claims as put-if-absent objects in the location (``Storage.create_exclusive``)."""

    def take(key: str, body: bytes) -> bytes | None:
        if storage.create_exclusive(key, body):
            return None
        try:
            return storage.read_bytes(key)
        except StorageError:
            return b""  # unreadable: nobody can hold it

    return take


def claim_commit(
    storage: Storage,
    fence: str,
    attempt: Attempt,
    *,
    settled: Callable[[Attempt], bool],
    take: ClaimTaker | None = None,
) -> str:
    """Take the one right to commit after ``fence`` (the version this attempt planned from) atomically,
    before the commit fence is checked; returns the claim's key.

    The commit fence alone (read the log's newest version, then write the commit) leaves a window in
    which two runs planned from the same version both pass it, when the concurrency pool does not
    serialize them (SQLite's slot claim is not atomic across processes). The claim closes it the way
    Delta Lake's log does: the first put-if-absent of ``<claims>/<fence>.<generation>.json`` wins, in
    the location the runs write (or, through ``take``, in the Dagster instance: ``core.claims``). A claim
    whose attempt has ended (``settled``: its run finished, failed or was canceled, or a later attempt of
    the same run is claiming) is stale whether or not it committed (if it did, the fence refuses the
    claimant next); the next generation may then be taken. Raises :class:`ClaimLost` naming the live
    holder otherwise.
    """
    take = take or location_taker(storage)
    body = json.dumps({"run_id": attempt.run_id, "attempt": attempt.number}).encode()
    for generation in range(10_000):
        key = f"{CLAIMS_DIR}/{fence}.{generation:04d}.json"
        found = take(key, body)
        if found is None:
            return key
        try:
            holder_data = json.loads(found)
            holder = Attempt(str(holder_data["run_id"]), int(holder_data["attempt"]))
        except (ValueError, KeyError, TypeError):
            continue  # unreadable: nobody can hold it; try the next generation
        if holder == attempt:
            return key
        stale = settled(holder) or (holder.run_id == attempt.run_id and holder.number < attempt.number)
        if not stale:
            admin = admin_lease(holder.run_id)
            if admin is not None:
                raise ClaimLost(
                    f"commit conflict: a bookmark {admin[0]} is being recorded after the same version; nothing was "
                    f"committed and this attempt's objects were discarded, {later_reads(admin[0])}",
                    holder,
                )
            raise ClaimLost(
                f"commit conflict: run {holder.run_id} (attempt {holder.number}) is committing after the same "
                "version; nothing was committed and this attempt's objects were discarded, a later run reads "
                "these objects",
                holder,
            )
    raise ClaimLost(f"commit conflict: more than 10000 claims after {fence}")


def complete(storage: Storage, pending: Sequence[PendingObject]) -> tuple[ObjectInfo, ...]:
    """Make pending objects visible, each whole, in order; returns them as listed objects.

    :func:`publish` completes an attempt's parts this way and records the commit. Callers outside the
    protocol (``stage.run_stage``: tests, benchmarks, one-off scripts) complete parts without a record.
    """
    return tuple(storage.complete_upload(obj) for obj in pending)


def abort(storage: Storage, pending: Iterable[PendingObject], log: Callable[[str], None] = lambda _m: None) -> int:
    """Discard an attempt's pending objects (best effort: what cannot be aborted now, GC removes later)."""
    aborted = 0
    for obj in pending:
        try:
            storage.abort_upload(obj)
            aborted += 1
        except StorageError as err:
            log(f"could not abort pending {obj.key} ({err}); garbage collection removes it later")
    return aborted


@contextmanager
def aborted_on_failure(
    storage: Storage, pending: Sequence[PendingObject], log: Callable[[str], None] = lambda _m: None
) -> Iterator[None]:
    """Anything that fails inside discards the attempt's pending objects (``pending`` as it is then: a list
    the block appends to is aborted whole), and nothing else; the failure goes on."""
    try:
        yield
    except BaseException:
        aborted = abort(storage, pending, log)
        if aborted:
            log(f"aborted {aborted} pending parts of this attempt")
        raise


@dataclass
class CommittedParts:
    """Which part objects some commit lists, looked up once per producing run.

    ``lookup(run_id)`` returns that run's commit record for this location (from the event log), or None.
    """

    lookup: Callable[[str], CommitRecord | None]
    # Whether this instance knows the run at all. Garbage collection only removes what runs it knows
    # left behind: parts written under another Dagster instance (a SQLite home moved to PostgreSQL) are
    # that history's, not orphans.
    known_run: Callable[[str], bool] = lambda _run_id: True
    # Every commit a run recorded, on any asset of any flow. Flows may share a location, and "a run this
    # instance knows" covers them all: garbage collection keeps any part some commit of its run lists.
    anywhere: Callable[[str], Sequence[CommitRecord]] = lambda _run_id: ()
    _cache: dict[str, CommitRecord | None] = field(default_factory=dict)
    _anywhere_cache: dict[str, frozenset[str]] = field(default_factory=dict)

    def listed_anywhere(self, key: str) -> bool:
        """True when a commit of the part's run, for any location, lists its name (any name glueflow did
        not make counts as listed): the folder it was listed under may differ, its name does not."""
        attempt = attempt_of(key)
        if attempt is None:
            return True
        if attempt.run_id not in self._anywhere_cache:
            self._anywhere_cache[attempt.run_id] = frozenset(
                f"{record.attempt}/{part.rsplit('/', 1)[-1]}"
                for record in self.anywhere(attempt.run_id)
                for part in record.keys
            )
        return f"{attempt.number}/{key.rsplit('/', 1)[-1]}" in self._anywhere_cache[attempt.run_id]

    def record(self, run_id: str) -> CommitRecord | None:
        if run_id not in self._cache:
            self._cache[run_id] = self.lookup(run_id)
        return self._cache[run_id]

    def is_committed(self, obj: ObjectInfo) -> bool:
        """True for parts a commit lists, and for objects outside the protocol (names glueflow did not make)."""
        attempt = attempt_of(obj.key)
        if attempt is None:
            return True
        record = self.record(attempt.run_id)
        return record is not None and record.attempt == attempt.number and obj.key in record.keys

    def visible(self, listing: Iterable[ObjectInfo], orphans: list[ObjectInfo] | None = None) -> Iterator[ObjectInfo]:
        """The committed objects of a listing; the rest goes to ``orphans`` when given."""
        for obj in listing:
            if self.is_committed(obj):
                yield obj
            elif orphans is not None:
                orphans.append(obj)


def _claim_ended(storage: Storage, key: str, now_ms: int, settled: Callable[[Attempt], bool] | None) -> bool:
    """Whether the holder of the claim object ``key`` has ended (an unreadable claim holds nothing)."""
    try:
        data = json.loads(storage.read_bytes(key))
        holder = Attempt(str(data["run_id"]), int(data["attempt"]))
    except (StorageError, ValueError, KeyError, TypeError):
        return True
    lease = admin_lease(holder.run_id)
    if lease is not None and lease[1] > now_ms:
        return False
    return settled is None or settled(holder)


@dataclass(frozen=True)
class GarbageReport:
    """Orphans of one location: uncommitted parts and pending writes, and what was removed."""

    orphaned_files: int = 0
    orphaned_bytes: int = 0
    removed_files: int = 0
    removed_bytes: int = 0
    aborted_uploads: int = 0

    def metadata(self) -> dict[str, int]:
        return {
            "orphaned_files": self.orphaned_files,
            "orphaned_bytes": self.orphaned_bytes,
            "orphans_removed": self.removed_files,
            "pending_uploads_aborted": self.aborted_uploads,
        }


def collect_garbage(
    storage: Storage,
    listing: Iterable[ObjectInfo],
    committed: CommittedParts,
    *,
    now_ms: int,
    grace_s: float,
    log: Callable[[str], None] = lambda _m: None,
    settled: Callable[[Attempt], bool] | None = None,
) -> GarbageReport:
    """Count the orphans in ``listing`` and remove those older than the grace period.

    Orphans are parts whose attempt no commit lists, and pending writes (open multipart uploads, local
    pending files) left by attempts that never finished; the commit manifest such an attempt may have
    written before it died goes first. Only the location's single writer (the job that holds its
    concurrency slot) calls this, before it writes. It never deletes an object a commit
    lists: :meth:`CommittedParts.is_committed` is checked for every object it removes, and
    :meth:`CommittedParts.listed_anywhere` (any commit of the part's run, whatever flow or location it
    committed to). It touches only names glueflow's attempts make, of runs this instance knows: parts,
    their pending uploads, and manifests and claims under ``_glueflow/commits/``; a claim only once its
    holder has ended (``settled``; without it, an admin action's claim only once its lease has).
    """
    horizon = now_ms - int(grace_s * 1000)
    files = size = removed = removed_bytes = aborted = 0
    objects = list(listing)
    # First the commit manifests of runs that never committed (a crash between publish and the event
    # write): removed before their parts, so no manifest ever lists a deleted object.
    for obj in objects:
        run_id = _manifest_run_id(obj.key)
        if (
            run_id is not None
            and obj.last_modified_ms <= horizon
            and committed.record(run_id) is None
            and committed.known_run(run_id)
            and not committed.anywhere(run_id)
        ):
            storage.delete(obj.key)
    for obj in objects:
        if RESERVED_DIR in obj.key.split("/") or committed.is_committed(obj) or committed.listed_anywhere(obj.key):
            continue
        attempt = attempt_of(obj.key)
        if attempt is not None and not committed.known_run(attempt.run_id):
            continue  # another instance's history: neither data here nor ours to remove
        files += 1
        size += obj.size
        if obj.last_modified_ms <= horizon:
            storage.delete(obj.key)
            removed += 1
            removed_bytes += obj.size
    for upload in storage.pending_uploads():
        # Only uploads named by glueflow's attempts are glueflow's to abort: others (any tool's, anyone's)
        # may share the location, the whole bucket for a bucket-root location.
        attempt = attempt_of(upload.key)
        if attempt is None or not committed.known_run(attempt.run_id):
            continue
        files += 1
        if upload.started_ms <= horizon:
            with suppress(StorageError):
                storage.abort_upload(PendingObject(key=upload.key, size=0, token=upload.token))
                aborted += 1
    # Claims past the grace period: each was taken right before a commit, so by now its fence has moved
    # on (the holder committed) or its holder has ended (a later claimant may take the next generation
    # anyway). Removing them keeps the claims folder as small as the commits of the last grace period.
    # Not a claim whose holder is still live, however old: with a short grace period a run's collection
    # removed the claim a bookmark action held, then took it and committed after the same version.
    claims = [
        obj
        for obj in objects
        if obj.key.startswith(f"{CLAIMS_DIR}/")
        and obj.last_modified_ms <= horizon
        and _claim_ended(storage, obj.key, now_ms, settled)
    ]
    for obj in claims:
        storage.delete(obj.key)
    if claims:
        log(f"removed {len(claims)} commit claims older than {grace_s:g} s from {storage.uri}")
    report = GarbageReport(files, size, removed, removed_bytes, aborted)
    if files:
        log(
            f"{files} orphaned objects ({size:,} bytes) in {storage.uri} from attempts that never committed; "
            f"removed {removed} and aborted {aborted} pending writes older than {grace_s:g} s"
        )
    return report


__all__ = [
    "ADMIN_RUN_PREFIX",
    "COMMITS_DIR",
    "COMMIT_KEY",
    "DEFAULT_ORPHAN_GRACE_S",
    "INTENTS_DIR",
    "PENDING_DIR",
    "Attempt",
    "CommitConflict",
    "CommitRecord",
    "CommittedParts",
    "GarbageReport",
    "abort",
    "aborted_on_failure",
    "admin_attempt",
    "admin_lease",
    "attempt_of",
    "collect_garbage",
    "complete",
    "commit_manifest_key",
    "intent_key",
    "record_intent",
    "later_reads",
    "part_prefix",
    "publish",
]

"""The commit protocol's core on both backends: names, publish/abort, the committed view, garbage collection."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from dagster import MaterializeResult

from glueflow_dagster.core.claims import ROW_PREFIX, prune_superseded_claims, take_claim
from glueflow_dagster.core.commits import (
    CLAIMS_DIR,
    Attempt,
    ClaimLost,
    CommitRecord,
    CommittedParts,
    abort,
    attempt_of,
    collect_garbage,
    commit_manifest_key,
    publish,
)
from glueflow_dagster.core.storage import S3Storage, Storage


class DictTable:
    """`core.claims.ClaimTable` in memory (the Dagster instance's is tested in components/test_claims.py)."""

    def __init__(self) -> None:
        import threading

        self.rows: dict[str, str] = {}
        self.lock = threading.Lock()

    def insert_unique(self, name: str, body: str) -> str | None:
        with self.lock:
            if name in self.rows:
                return self.rows[name]
            self.rows[name] = body
        return None

    def names_under(self, prefix: str) -> list[str]:
        with self.lock:
            return [name for name in self.rows if name.startswith(prefix)]

    def delete_rows(self, names: Any) -> int:
        with self.lock:
            return sum(self.rows.pop(name, None) is not None for name in names)


def claim(storage: Storage, fence: str, attempt: Attempt, *, settled: Any, table: DictTable | None = None) -> str:
    """The claim as the runs take it: in the location, or where its store does not honour conditional writes
    (s3rver), in the table."""
    table = table if table is not None else TABLES[storage.uri]
    return take_claim(storage, fence, attempt, settled=settled, table=table)


TABLES: defaultdict[str, DictTable] = defaultdict(DictTable)


def is_s3rver(storage: Storage) -> bool:
    """s3rver: no conditional writes, no ListMultipartUploads (NotImplemented), no AbortMultipartUpload."""
    return isinstance(storage, S3Storage) and not storage.honours_conditional_writes()


def lists_uploads(storage: Storage) -> bool:
    return not is_s3rver(storage)


def test_conditional_writes_are_probed_once_per_location(storage: Storage, request: pytest.FixtureRequest) -> None:
    """A local folder and moto honour put-if-absent; s3rver ignores If-None-Match (the second PUT succeeds)."""
    from glueflow_dagster.core.storage import s3 as s3_module

    expected = request.node.callspec.params["storage"] != "s3rver"
    assert storage.honours_conditional_writes() is expected  # type: ignore[attr-defined]
    if isinstance(storage, S3Storage):
        probes = len(s3_module._CONDITIONAL_WRITES)
        assert storage.honours_conditional_writes() is expected  # cached: no new probe
        assert len(s3_module._CONDITIONAL_WRITES) == probes
    assert not [o for o in storage.list() if o.key.startswith("_glueflow/probe/")]  # the probe object is gone


def test_a_folder_that_refuses_hard_links_takes_its_claims_in_the_table_and_no_run_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAT/exFAT, some FUSE or SMB mounts refuse ``link``: the probe says so once per folder, and the claims go
    to the table (the Dagster instance), one winner per version, instead of failing every run."""
    import errno

    from glueflow_dagster.core.storage import LocalStorage
    from glueflow_dagster.core.storage import local as local_module

    def refuse(_src: Any, _dst: Any) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(local_module.os, "link", refuse)
    folder = LocalStorage(tmp_path / "mount")
    assert folder.honours_conditional_writes() is False
    assert list(folder.list()) == []  # the probe leaves nothing
    monkeypatch.undo()
    assert folder.honours_conditional_writes() is False  # cached per folder and process
    assert LocalStorage(tmp_path / "other").honours_conditional_writes() is True  # a real hard link here
    table = DictTable()
    key = take_claim(folder, "input-after-1", Attempt("a"), settled=lambda _a: False, table=table)
    with pytest.raises(ClaimLost, match="run a"):
        take_claim(folder, "input-after-1", Attempt("b"), settled=lambda _a: False, table=table)
    assert list(table.rows) == [f"{ROW_PREFIX}/{folder.uri}/{key}"] and list(folder.list()) == []


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("run-4f3c2a1e-8b7d-attempt-2-part-r-00001.json.gz", Attempt("4f3c2a1e-8b7d", 2)),
        ("batch=0/run-x-attempt-1-part-r-00000.json", Attempt("x", 1)),
        ("run-abc-part-r-00000.json", None),  # Glue's own names: outside the protocol
        ("notes.txt", None),
    ],
)
def test_part_names_say_which_attempt_wrote_them(key: str, expected: Attempt | None) -> None:
    assert attempt_of(key) == expected


def _write_parts(storage: Storage, tmp_path: Path, attempt: Attempt, count: int) -> list:
    pending = []
    for part in range(count):
        local = tmp_path / f"{attempt.part_prefix}-{part}.json"
        local.write_text(json.dumps({"part": part, "run": attempt.run_id}) + "\n")
        pending.append(storage.begin_upload(local, f"{attempt.part_prefix}-part-r-{part:05d}.json"))
    return pending


def _data_keys(storage: Storage) -> set[str]:
    return {o.key for o in storage.list() if not o.key.startswith("_glueflow/")}


def test_publish_makes_parts_visible_at_once_and_abort_leaves_nothing(storage: Storage, tmp_path: Path) -> None:
    good, bad = Attempt("good"), Attempt("bad")
    kept = _write_parts(storage, tmp_path, good, 2)
    dropped = _write_parts(storage, tmp_path, bad, 2)
    assert _data_keys(storage) == set()
    record = publish(storage, good, "job", kept, records_written=2)
    assert abort(storage, dropped) == 2
    assert _data_keys(storage) == set(record.keys) == {f"run-good-attempt-1-part-r-0000{i}.json" for i in range(2)}
    assert list(storage.pending_uploads()) == []
    on_disk = CommitRecord.from_dict(json.loads(storage.read_bytes(commit_manifest_key("good"))))
    assert on_disk is not None and on_disk.keys == record.keys and on_disk.records_written == 2


def test_garbage_collection_removes_only_what_no_commit_lists(storage: Storage, tmp_path: Path) -> None:
    committed_run, dead_run, foreign_run = Attempt("committed"), Attempt("dead"), Attempt("foreign")
    record = publish(storage, committed_run, "job", _write_parts(storage, tmp_path, committed_run, 2), 2)
    # A run that died between publishing and recording its commit: its parts and manifest are visible.
    publish(storage, dead_run, "job", _write_parts(storage, tmp_path, dead_run, 1), 1)
    publish(storage, foreign_run, "job", _write_parts(storage, tmp_path, foreign_run, 1), 1)
    storage.write_bytes("written-by-hand.json", b"{}\n")  # a name glueflow did not make
    _write_parts(storage, tmp_path, Attempt("killed"), 1)  # pending, never published
    commits = {"committed": record}
    parts = CommittedParts(commits.get, known_run=lambda run_id: run_id != "foreign")
    data = [o for o in storage.list() if not o.key.startswith("_glueflow/")]
    assert {o.key for o in parts.visible(data)} == {*record.keys, "written-by-hand.json"}

    # moto reports every multipart upload as initiated in 2010: "now" is never later than that start.
    now = min([int(time.time() * 1000), *(u.started_ms for u in storage.pending_uploads())])
    within = collect_garbage(storage, storage.list(), parts, now_ms=now, grace_s=3600)
    # A store without ListMultipartUploads (s3rver) cannot show the killed run's pending upload (invisible).
    listed = int(lists_uploads(storage))
    assert (within.orphaned_files, within.removed_files, within.aborted_uploads) == (1 + listed, 0, 0)  # kept

    past = collect_garbage(storage, storage.list(), parts, now_ms=int(time.time() * 1000) + 7_200_000, grace_s=3600)
    assert (past.removed_files, past.aborted_uploads) == (1, listed)
    left = {o.key for o in storage.list()}
    assert record.keys <= left and "written-by-hand.json" in left  # committed and foreign names stay
    assert "run-foreign-attempt-1-part-r-00000.json" in left  # another instance's history stays
    assert commit_manifest_key("dead") not in left  # the dead run's manifest went with its parts
    assert commit_manifest_key("committed") in left and commit_manifest_key("foreign") in left
    assert not any(key.startswith("run-dead-") for key in left)
    assert list(storage.pending_uploads()) == []


def test_create_exclusive_writes_once_and_reports_a_taken_name(storage: Storage) -> None:
    if not storage.honours_conditional_writes():  # type: ignore[attr-defined]
        pytest.skip("s3rver ignores If-None-Match: its claims are rows in the instance")
    assert storage.create_exclusive("_glueflow/commits/claims/x.json", b"first")
    assert not storage.create_exclusive("_glueflow/commits/claims/x.json", b"second")
    assert storage.read_bytes("_glueflow/commits/claims/x.json") == b"first"


def test_one_claim_per_version_until_its_holder_has_ended(storage: Storage) -> None:
    live: set[str] = {"a", "b"}

    def settled(attempt: Attempt) -> bool:
        return attempt.run_id not in live

    first = claim(storage, "output-ctx-v3", Attempt("a"), settled=settled)
    with pytest.raises(ClaimLost, match=r"^commit conflict: run a \(attempt 1\) is committing after the same"):
        claim(storage, "output-ctx-v3", Attempt("b"), settled=settled)
    assert claim(storage, "output-ctx-v3", Attempt("a"), settled=settled) == first  # its own claim
    assert claim(storage, "output-ctx-v4", Attempt("b"), settled=settled) != first  # another version
    # A retry of run a (attempt 2) takes over from attempt 1, which has ended by definition.
    retry = claim(storage, "output-ctx-v3", Attempt("a", 2), settled=settled)
    assert retry != first
    live.discard("a")  # run a has ended (committed or not): the next generation is free
    assert claim(storage, "output-ctx-v3", Attempt("b"), settled=settled) not in (first, retry)


def test_garbage_collection_removes_claims_past_the_grace_period_and_a_later_claim_still_has_one_winner(
    storage: Storage,
) -> None:
    if is_s3rver(storage):
        pytest.skip("claims on s3rver are rows in the instance, not objects garbage collection removes")
    live = {"a", "b", "c"}

    def settled(attempt: Attempt) -> bool:
        return attempt.run_id not in live

    old = claim(storage, "input-after-3", Attempt("a"), settled=settled)
    parts = CommittedParts(lambda _run_id: None)
    now = int(time.time() * 1000)
    within = collect_garbage(storage, storage.list(), parts, now_ms=now, grace_s=3600)
    assert within.orphaned_files == 0 and old in {o.key for o in storage.list()}  # young: kept
    collect_garbage(storage, storage.list(), parts, now_ms=now + 7_200_000, grace_s=3600)
    assert not [o for o in storage.list() if o.key.startswith("_glueflow/commits/claims/")]
    # The fence's first generation is free again, and still taken by one attempt only.
    assert claim(storage, "input-after-3", Attempt("b"), settled=settled) == old
    with pytest.raises(ClaimLost, match="run b"):
        claim(storage, "input-after-3", Attempt("c"), settled=settled)


def test_claims_from_many_threads_at_once_have_one_winner(storage: Storage) -> None:
    import threading

    table = DictTable()
    barrier = threading.Barrier(8)
    winners: list[str] = []
    losers: list[str] = []

    def contend(run_id: str) -> None:
        barrier.wait()
        try:
            claim(storage, "input-after-7", Attempt(run_id), settled=lambda _attempt: False, table=table)
            winners.append(run_id)
        except ClaimLost:
            losers.append(run_id)

    threads = [threading.Thread(target=contend, args=(f"run{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and len(losers) == 7, (winners, losers)


def test_claim_rows_of_older_versions_are_pruned_and_stay_bounded_over_many_commits(storage: Storage) -> None:
    """Where claims are rows (s3rver: the instance), each run past its fence removes the rows of older versions
    of its series: over 40 commits the table holds one version's rows per series, not one row per commit."""
    table = DictTable()
    ended: set[str] = set()
    for version in range(40):
        for fence in (f"input-after-{100 + 3 * version}", f"output-0123456789ab-v{version}"):
            run = Attempt(f"run-{fence}")
            if version % 5 == 0:  # now and then a holder died first: the next generation is taken
                claim(storage, fence, Attempt(f"dead-{fence}"), settled=lambda _a: True, table=table)
            claim(storage, fence, run, settled=lambda a: a.run_id in ended or a.run_id.startswith("dead-"), table=table)
            prune_superseded_claims(storage, fence, table)  # the fence passed
            ended.add(run.run_id)
    other = claim(storage, "output-ba9876543210-v2", Attempt("other"), settled=lambda _a: True, table=table)
    prune_superseded_claims(storage, "output-ba9876543210-v2", table)
    if not is_s3rver(storage):  # claims are objects in the location: garbage collection's (grace period)
        assert table.rows == {} and prune_superseded_claims(storage, "input-after-999", table) == 0
        return
    prefix = f"{ROW_PREFIX}/{storage.uri}/{CLAIMS_DIR}/"
    assert sorted(name[len(prefix) :] for name in table.rows) == sorted(
        [
            "input-after-217.0000.json",  # the current version of each series, and of another context
            "output-0123456789ab-v39.0000.json",
            other.split("/")[-1],
        ]
    )


def test_a_table_that_fails_to_prune_never_fails_the_run() -> None:
    from types import SimpleNamespace

    class Broken(DictTable):
        def names_under(self, prefix: str) -> list[str]:
            raise OSError("database is locked")

    store = SimpleNamespace(uri="s3://b/out", honours_conditional_writes=lambda: False)
    said: list[str] = []
    assert prune_superseded_claims(store, "input-after-9", Broken(), said.append) == 0  # type: ignore[arg-type]
    assert said == [
        "could not remove old commit claims of s3://b/out from the instance (OSError); the next run tries again"
    ]


def test_garbage_collection_aborts_only_uploads_named_by_glueflow(
    s3_storage: Storage, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    # Someone else's upload under the location (an S3 console upload, another tool's backup) is not ours.
    foreign = s3_client.create_multipart_upload(Bucket=s3_bucket, Key="root/prefix/videos/holiday.mp4")["UploadId"]
    _write_parts(s3_storage, tmp_path, Attempt("killed"), 1)  # glueflow's, never published
    parts = CommittedParts(lambda _run_id: None)
    report = collect_garbage(
        s3_storage, s3_storage.list(), parts, now_ms=int(time.time() * 1000) + 7_200_000, grace_s=3600
    )
    assert report.aborted_uploads == 1
    left = s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in left] == [("root/prefix/videos/holiday.mp4", foreign)]


def test_garbage_collection_keeps_what_a_commit_of_another_flow_lists(
    local_storage: Storage, tmp_path: Path, instance: Any
) -> None:
    """Flows A and B share a staging location: B's garbage collection looks at B's commits, but A's
    committed part is A's data, never an orphan, though A's run is one this instance knows."""
    from dagster import asset, materialize

    from glueflow_dagster.components.commit_log import commit_metadata, committed_parts
    from glueflow_dagster.components.jobs import staging_key

    @asset(key=staging_key("a"))
    def a_staging(context) -> MaterializeResult:  # type: ignore[no-untyped-def]  # dagster refuses a string annotation
        attempt = Attempt(context.run.run_id)
        record = publish(local_storage, attempt, "a_input_job", _write_parts(local_storage, tmp_path, attempt, 1), 1)
        return MaterializeResult(metadata=commit_metadata(record))

    assert materialize([a_staging], instance=instance).success
    before = {o.key for o in local_storage.list()}
    later = int(time.time() * 1000) + 7_200_000
    report = collect_garbage(
        local_storage, local_storage.list(), committed_parts(instance, staging_key("b")), now_ms=later, grace_s=3600
    )
    assert (report.orphaned_files, report.removed_files) == (0, 0)
    assert {o.key for o in local_storage.list()} == before

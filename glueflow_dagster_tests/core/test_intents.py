"""Commit intents on a local folder, moto and s3rver: a publish cut short is finished or rolled back by the
next writer at once, never an object a commit lists, never an attempt still running (issue 21 item 2)."""

from __future__ import annotations

import json
from pathlib import Path

from glueflow_dagster.core.commits import (
    INTENTS_DIR,
    Attempt,
    CommitRecord,
    CommittedParts,
    commit_manifest_key,
    intent_key,
    publish,
    record_intent,
)
from glueflow_dagster.core.intents import read_intent, repair_intents
from glueflow_dagster.core.storage import PendingObject, Storage


def _pending(storage: Storage, tmp_path: Path, attempt: Attempt, count: int) -> list[PendingObject]:
    pending = []
    for part in range(count):
        local = tmp_path / f"{attempt.part_prefix}-{part}.json"
        local.write_text(json.dumps({"part": part}) + "\n")
        pending.append(storage.begin_upload(local, f"{attempt.part_prefix}-part-r-{part:05d}.json"))
    return pending


def _data(storage: Storage) -> set[str]:
    return {o.key for o in storage.list() if not o.key.startswith("_glueflow/")}


def test_an_intent_records_every_pending_part_before_the_first_is_completed(storage: Storage, tmp_path: Path) -> None:
    attempt = Attempt("run1", 2)
    pending = _pending(storage, tmp_path, attempt, 3)
    key = record_intent(storage, attempt, pending)
    assert key == f"{INTENTS_DIR}/run1.2.json" == intent_key(attempt)
    intent = read_intent(storage, key)
    assert intent is not None and intent.attempt == attempt and intent.parts == tuple(pending)
    assert _data(storage) == set()  # nothing visible yet


def test_a_publish_cut_short_is_rolled_back_once_its_run_has_ended(storage: Storage, tmp_path: Path) -> None:
    dead, live, done = Attempt("dead"), Attempt("live"), Attempt("done")
    # "dead" completed 2 of its 4 parts and died (its manifest never written); "live" is still publishing;
    # "done" published and committed.
    dead_pending = _pending(storage, tmp_path, dead, 4)
    record_intent(storage, dead, dead_pending)
    for obj in dead_pending[:2]:
        storage.complete_upload(obj)
    live_pending = _pending(storage, tmp_path, live, 1)
    record_intent(storage, live, live_pending)
    storage.complete_upload(live_pending[0])
    record = publish(storage, done, "job", _pending(storage, tmp_path, done, 1), 1)
    assert len(_data(storage)) == 4  # what a plain lister sees: two dead parts among them

    commits: dict[str, CommitRecord] = {"done": record}
    parts = CommittedParts(commits.get)
    report = repair_intents(storage, parts, settled=lambda attempt: attempt.run_id != "live")
    assert (report.finished, report.rolled_back, report.parts_removed) == (1, 1, 2)
    assert report.metadata() == {  # what the repairing run records (docs/metadata.md)
        "intents_finished": 1,
        "intents_rolled_back": 1,
        "intent_parts_removed": 2,
        "intent_uploads_aborted": 2,  # s3rver cannot abort (MethodNotAllowed): its uploads stay invisible
    }
    # The two parts it never completed are aborted now, not after the grace period (s3rver lists none).
    assert not [upload for upload in storage.pending_uploads() if upload.key.startswith("run-dead-")]
    assert _data(storage) == {*record.keys, "run-live-attempt-1-part-r-00000.json"}
    intents = {o.key for o in storage.list(INTENTS_DIR)}
    assert intents == {intent_key(live)}  # the committed run's intent is finished, the live one kept
    assert commit_manifest_key("done") in {o.key for o in storage.list()}


def test_a_dead_runs_manifest_goes_before_its_parts_and_committed_parts_are_never_removed(
    storage: Storage, tmp_path: Path
) -> None:
    dead = Attempt("dead")
    record = publish(storage, dead, "job", _pending(storage, tmp_path, dead, 2), 2)  # then died before the event
    assert commit_manifest_key("dead") in {o.key for o in storage.list()}
    repair_intents(storage, CommittedParts(lambda _run_id: None), settled=lambda _attempt: True)
    left = {o.key for o in storage.list()}
    assert commit_manifest_key("dead") not in left and not (record.keys & left)

    # Attempt 1 of a run died mid-publish; attempt 2 of the same run committed the same part names' run.
    first, second = Attempt("retried", 1), Attempt("retried", 2)
    first_pending = _pending(storage, tmp_path, first, 2)
    record_intent(storage, first, first_pending)
    storage.complete_upload(first_pending[0])
    committed = publish(storage, second, "job", _pending(storage, tmp_path, second, 1), 1)
    report = repair_intents(storage, CommittedParts({"retried": committed}.get), settled=lambda _attempt: False,
                            current=Attempt("retried", 3))  # fmt: skip
    left = {o.key for o in storage.list()}
    assert report.rolled_back == 1 and report.finished == 1
    assert committed.keys <= left and commit_manifest_key("retried") in left  # attempt 2's commit stays
    assert "run-retried-attempt-1-part-r-00000.json" not in left


def test_intents_of_runs_this_instance_does_not_know_are_left_alone(storage: Storage, tmp_path: Path) -> None:
    foreign = Attempt("foreign")
    pending = _pending(storage, tmp_path, foreign, 1)
    record_intent(storage, foreign, pending)
    storage.complete_upload(pending[0])
    parts = CommittedParts(lambda _run_id: None, known_run=lambda _run_id: False)
    assert repair_intents(storage, parts, settled=lambda _attempt: True).rolled_back == 0
    assert "run-foreign-attempt-1-part-r-00000.json" in _data(storage)

"""Exactly once on every S3-compatible store, and for readers that only list (issue 21).

Two real S3 servers over HTTP: moto's ThreadedMotoServer, which honours conditional writes, and npm's
s3rver (``.ci/node``), which does not (it ignores ``If-None-Match``) and has neither ListMultipartUploads nor
AbortMultipartUpload. Each sits behind a proxy that can be cut: a lost endpoint, as when the server stops.

- A flow runs end to end on s3rver, its commit claims taken in the Dagster instance.
- An Output run's publish is cut at each step (before the first part, after some parts, after all parts
  before the manifest, after the manifest before the materialization); after the next Input and Output
  runs every reader sees each record once: Dagster's view, the commit manifests, and a plain reader that
  lists the output prefix and skips ``_``/``.`` paths (Athena, Spark, Glue crawlers). The grace period of
  garbage collection is one hour here: the commit intents, not garbage collection, repair the publish, and
  the repairing run records it in its metadata.
- The claims in the instance have one winner (SQLite, PostgreSQL) and their rows stay bounded over many
  commits.
- Bookmarks read each object version once on both servers; test_exactly_once.py's operator moves, in a fixed
  order, keep every record exactly once on s3rver.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import glueflow_dagster.core.commits as commits
import glueflow_dagster.core.output_run as output_run
from glueflow_dagster.components.claims import InstanceClaims
from glueflow_dagster.components.jobs import output_key, staging_key
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.core.claims import ROW_PREFIX
from glueflow_dagster.core.commits import CLAIMS_DIR, INTENTS_DIR, Attempt
from glueflow_dagster.core.storage import S3Storage
from glueflow_dagster_tests.support.cuttable_proxy import CuttableProxy
from glueflow_dagster_tests.support.flow_driver import FLOW, INPUT_JOB, OUTPUT_JOB, FlowDriver, S3Target
from glueflow_dagster_tests.support.s3rver import ACCESS_KEY, SECRET_KEY

GRACE_S = 3600  # garbage collection would wait an hour: only the intents can repair the publish at once


@dataclass
class Server:
    name: str
    endpoint: str
    client: Any
    bucket: str


@pytest.fixture(params=["moto", "s3rver"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Server:
    """Either S3 server, a fresh bucket on it, and credentials it accepts in the environment (the runs'
    S3Resource reads them there; moto accepts any)."""
    if request.param == "moto":
        endpoint = request.getfixturevalue("moto_server")
        client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")
    else:
        endpoint = request.getfixturevalue("s3rver_server").endpoint
        client, bucket = request.getfixturevalue("s3rver_client"), request.getfixturevalue("s3rver_bucket")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return Server(request.param, endpoint, client, bucket)


@contextmanager
def flow_on(server: Server, root: Path, **options: Any) -> Iterator[tuple[FlowDriver, CuttableProxy]]:
    proxy = CuttableProxy(server.endpoint)
    flow = FlowDriver(root, s3=S3Target(server.bucket, proxy, server.client), **options)
    try:
        yield flow, proxy
    finally:
        flow.close()
        proxy.close()


def keys_under(server: Server, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in server.client.get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", ())]
    return keys


def plain_reader(server: Server, prefix: str = "output/") -> Counter[int]:
    """What a reader that lists the prefix sees (Athena, Spark, Glue crawlers): every object whose path below
    the prefix has no segment starting with ``_`` or ``.``; the event ids of their records."""
    counts: Counter[int] = Counter()
    for key in keys_under(server, prefix):
        if any(segment.startswith(("_", ".")) for segment in key[len(prefix) :].split("/")):
            continue
        body = server.client.get_object(Bucket=server.bucket, Key=key)["Body"].read()
        body = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body  # staging parts are gzip
        counts.update(json.loads(line)["event_id"] for line in body.decode().splitlines() if line.strip())
    return counts


def assert_every_reader_sees_each_record_once(flow: FlowDriver, server: Server) -> None:
    verdict = flow.verdict()  # Dagster's view and the commit manifests' view, with the figures
    assert verdict.clean and verdict.losses == 0, (verdict, flow.runs_table())
    current = {i for ids in flow.truth.current.values() for i in ids}
    seen = plain_reader(server)
    twice = sorted(i for i, n in seen.items() if n > 1)
    assert not twice, f"a plain reader sees {len(twice)} records twice, e.g. {twice[:5]}"
    assert set(seen) == current


# --- A flow end to end on s3rver -------------------------------------------------------------------


@pytest.mark.slow
def test_a_flow_runs_end_to_end_on_s3rver_with_its_claims_in_the_instance(
    s3rver_server: Any, s3rver_client: Any, s3rver_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = Server("s3rver", s3rver_server.endpoint, s3rver_client, s3rver_bucket)
    for name, value in (("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)):
        monkeypatch.setenv(name, value)
    with flow_on(srv, tmp_path / "flow", orphan_grace_s=GRACE_S) as (flow, _proxy):
        assert not S3Storage(srv.bucket, "staging", srv.client).honours_conditional_writes()
        for _ in range(3):
            flow.add_raw(400)
        assert flow.input_run().success
        assert flow.tick_and_run()[0].success
        flow.add_raw(300)
        flow.quiesce()
        assert_every_reader_sees_each_record_once(flow, srv)
        # Every claim (one per Input run, one per Output run with bookmarks) is a row in the instance...
        claims = _claim_rows(flow)
        assert {key.split("/_glueflow/")[0] for key in claims} == {
            f"{ROW_PREFIX}/s3://{srv.bucket}/staging",
            f"{ROW_PREFIX}/s3://{srv.bucket}/output",
        }
        # ... and none is an object in the locations, where every claimant would win.
        assert not [k for k in keys_under(srv, "") if f"/{CLAIMS_DIR}/" in f"/{k}"]
        # Two commits in each location, one row left in each: each run past its fence removes its location's
        # rows of older versions (over many commits: test_instance_claim_rows_stay_bounded_over_many_commits).
        per_location = Counter(key.split("/_glueflow/")[0] for key in _claim_rows(flow))
        assert per_location == {
            f"{ROW_PREFIX}/s3://{srv.bucket}/staging": 1,
            f"{ROW_PREFIX}/s3://{srv.bucket}/output": 1,
        }, _claim_rows(flow)


def _claim_rows(flow: FlowDriver) -> list[str]:
    from dagster._core.storage.runs.schema import KeyValueStoreTable
    from sqlalchemy import select

    with flow.instance.run_storage.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(select(KeyValueStoreTable.c.key)).fetchall()
    return [row[0] for row in rows if str(row[0]).startswith(ROW_PREFIX + "/")]


@pytest.mark.parametrize("home", ["sqlite", "postgres"])
def test_instance_claims_have_one_winner_from_many_threads(home: str, request: pytest.FixtureRequest) -> None:
    """The claim row is inserted once, whoever races for it: under SQLite's write lock, in one PostgreSQL
    transaction (the unique index of the run storage's key-value table)."""
    import threading

    from glueflow_dagster.components.claims import _sql_run_storage

    dagster_instance = request.getfixturevalue("instance" if home == "sqlite" else "postgres_instance")
    assert _sql_run_storage(dagster_instance) is not None  # the database's unique index, not a process lock
    table = InstanceClaims(dagster_instance)
    barrier = threading.Barrier(8)
    won: list[int] = []

    def contend(i: int) -> None:
        barrier.wait()
        if table.insert_unique("glueflow/claims/s3://b/output/x.0000.json", json.dumps({"run": i})) is None:
            won.append(i)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    holder = table.insert_unique("glueflow/claims/s3://b/output/x.0000.json", "{}")
    assert holder == json.dumps({"run": won[0]})


@pytest.mark.parametrize("home", ["sqlite", "postgres"])
def test_instance_claim_rows_stay_bounded_over_many_commits(home: str, request: pytest.FixtureRequest) -> None:
    """Each claimant past its fence removes the rows of its series' older versions (`prune_superseded_claims`),
    in the database itself: ``_`` and ``%`` in the location's name match only themselves, and another
    location's or another series' rows stay."""
    from types import SimpleNamespace

    from glueflow_dagster.core.claims import prune_superseded_claims, take_claim

    dagster_instance = request.getfixturevalue("instance" if home == "sqlite" else "postgres_instance")
    table = InstanceClaims(dagster_instance)
    # A store that does not honour conditional writes (s3rver's answer to the probe), two locations whose
    # names differ only where LIKE would see wildcards.
    mine = SimpleNamespace(uri="s3://b/out_1%", honours_conditional_writes=lambda: False)
    near = SimpleNamespace(uri="s3://b/outx1x", honours_conditional_writes=lambda: False)
    take_claim(near, "input-after-1", Attempt("near"), settled=lambda _a: True, table=table)  # type: ignore[arg-type]
    for version in range(1, 31):
        fence = f"input-after-{version}"
        take_claim(mine, fence, Attempt(f"r{version}"), settled=lambda _a: True, table=table)  # type: ignore[arg-type]
        prune_superseded_claims(mine, fence, table)  # type: ignore[arg-type]
        assert len(table.names_under(f"{ROW_PREFIX}/s3://b/out_1%/")) == 1
    assert table.names_under(f"{ROW_PREFIX}/s3://b/out_1%/") == [
        f"{ROW_PREFIX}/s3://b/out_1%/{CLAIMS_DIR}/input-after-30.0000.json"
    ]
    assert table.names_under(f"{ROW_PREFIX}/s3://b/outx1x/") == [
        f"{ROW_PREFIX}/s3://b/outx1x/{CLAIMS_DIR}/input-after-1.0000.json"
    ]


# --- The publish cut at each step, on both servers ---------------------------------------------------


def repairing_run_metadata(flow: FlowDriver, job: str, key: Any, failed_run_id: str) -> dict[str, Any]:
    """The materialization metadata of the first successful run of ``job`` after the failed one (the run
    whose commit-intent repair rolled the failed publish back)."""
    from dagster import DagsterRunStatus, RunsFilter

    failed = flow.instance.get_run_record_by_id(failed_run_id)
    assert failed is not None
    records = flow.instance.get_run_records(
        RunsFilter(job_name=job, statuses=[DagsterRunStatus.SUCCESS], created_after=failed.create_timestamp),
        ascending=True,
    )
    assert records, f"no successful {job} run after {failed_run_id}"
    return run_materialization_metadata(flow.instance, records[0].dagster_run.run_id, key)


STEPS = ["before_first_part", "after_some_parts", "after_all_parts", "after_manifest"]


@contextmanager
def publish_cut(step: str, proxy: CuttableProxy) -> Iterator[list[int]]:
    """The S3 endpoint lost at ``step`` of the next publish (or, after the manifest, the run lost before its
    materialization is recorded); yields the list of completed parts counted so far."""
    completed: list[int] = []
    real_complete_upload = S3Storage.complete_upload
    real_complete = commits.complete
    real_publish = output_run.publish

    def complete_upload(self: S3Storage, pending: Any) -> Any:
        if (step == "before_first_part" and not completed) or (step == "after_some_parts" and len(completed) == 2):
            with outage():
                real_complete_upload(self, pending)
        info = real_complete_upload(self, pending)
        completed.append(1)
        return info

    def complete(storage: Any, pending: Any) -> Any:
        parts = real_complete(storage, pending)
        with outage():  # every part is complete; the manifest's PUT meets the outage
            storage.write_bytes(commits.commit_manifest_key("never-written"), b"{}")
        return parts

    @contextmanager
    def outage() -> Iterator[None]:
        """The endpoint lost for one request (after botocore's retries, the run fails) and back after it: the
        failing run's own aborts of its pending parts then succeed or not as they may (repair_intents of the
        next run covers both; tests/core/test_intents.py covers pending parts the run could not abort)."""
        proxy.cut()
        try:
            yield
        finally:
            proxy.restore()

    def publish(*args: Any, **kwargs: Any) -> Any:
        real_publish(*args, **kwargs)
        raise RuntimeError("run worker lost after publishing, before its materialization")

    with pytest.MonkeyPatch.context() as patch:  # its own: undoing it leaves the fixtures' patches alone
        patch.setattr(S3Storage, "complete_upload", complete_upload)
        if step == "after_all_parts":
            patch.setattr(commits, "complete", complete)
        if step == "after_manifest":
            patch.setattr(output_run, "publish", publish)
        yield completed


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_a_publish_cut_at_each_step_is_repaired_by_the_next_runs_for_every_reader(
    server: Server, step: str, tmp_path: Path
) -> None:
    with flow_on(server, tmp_path / "flow", orphan_grace_s=GRACE_S, output_target_file_bytes=20_000) as (flow, px):
        for _ in range(6):
            flow.add_raw(1000)
        assert flow.input_run().success
        with publish_cut(step, px) as completed:
            failed = flow.ui_materialize()
        assert not failed.success
        intent = f"output/{INTENTS_DIR}/{failed.run_id}.1.json"
        assert intent in keys_under(server, "output/")
        written = json.loads(server.client.get_object(Bucket=server.bucket, Key=intent)["Body"].read())
        assert len(written["parts"]) >= 4  # several parts: a publish can stop between them
        expected_visible = {"before_first_part": 0, "after_some_parts": 2}.get(step, len(written["parts"]))
        assert len(completed) == expected_visible
        dead_parts = [k for k in keys_under(server, "output/") if f"run-{failed.run_id}" in k]
        assert len(dead_parts) == expected_visible  # what a plain reader sees of the dead run until repaired

        flow.add_raw(500)  # the next Input and Output runs
        assert flow.input_run().success
        flow.quiesce()
        assert_every_reader_sees_each_record_once(flow, server)
        left = keys_under(server, "output/")
        assert not [k for k in left if failed.run_id in k], "the dead run's parts, manifest and intent are gone"
        assert flow.orphans_left() == 0
        # The run that repaired it says so in its materialization (docs/metadata.md).
        repair = repairing_run_metadata(flow, OUTPUT_JOB, output_key(FLOW), failed.run_id)
        assert repair["intents_rolled_back"] == 1
        assert repair["intent_parts_removed"] == expected_visible


@pytest.mark.slow
def test_an_input_runs_publish_cut_after_some_parts_is_repaired_by_the_next_input_run(
    server: Server, tmp_path: Path
) -> None:
    """The same repair in the Input job's location: staging, read by a plain lister, holds each record once."""
    with flow_on(server, tmp_path / "flow", orphan_grace_s=GRACE_S, input_target_file_bytes=3_000) as (flow, px):
        for _ in range(6):
            flow.add_raw(1000)
        with publish_cut("after_some_parts", px) as completed:
            failed = flow.input_run()
        assert not failed.success and len(completed) == 2
        assert len([k for k in keys_under(server, "staging/") if f"run-{failed.run_id}" in k]) == 2

        flow.add_raw(500)
        flow.quiesce()  # the next Input run first, then the sensor's Output runs
        assert_every_reader_sees_each_record_once(flow, server)
        staged = plain_reader(server, "staging/")
        assert set(staged) == {i for ids in flow.truth.current.values() for i in ids}
        assert max(staged.values()) == 1
        assert not [k for k in keys_under(server, "staging/") if failed.run_id in k]
        repair = repairing_run_metadata(flow, INPUT_JOB, staging_key(FLOW), failed.run_id)
        assert (repair["intents_rolled_back"], repair["intent_parts_removed"]) == (1, 2)


# --- Bookmarks on both servers (issue 21 item 4) -----------------------------------------------------


@pytest.mark.parametrize("store", ["s3", "s3rver"])
def test_bookmarks_read_each_object_version_once_on_both_servers(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The Input bookmark over a real server's listing (its last-modified, its etags, its listing order: s3rver
    lists in its folder walk's order) and the Output bookmark over committed staging: each raw object version
    is read once, a rewrite in place within the same second is read again (a new etag), nothing twice."""
    from glueflow_dagster.core.config import load_config
    from glueflow_dagster.core.input_run import run_input
    from glueflow_dagster.core.output_run import OutputRequest, run_output
    from glueflow_dagster_tests.conftest import raw_records, write_flow_file
    from glueflow_dagster_tests.core.test_commits import DictTable
    from glueflow_dagster_tests.core.test_job_runs import InputLog, MemoryCommitLog, OutputLog, polars_stage

    client, bucket = request.getfixturevalue(f"{store}_client"), request.getfixturevalue(f"{store}_bucket")
    raw, staging, output = (S3Storage(bucket, name, client) for name in ("raw", "staging", "output"))
    flow = load_config(write_flow_file(tmp_path, bookmark="enable")).flows["events"]
    log, table, runs = MemoryCommitLog(), DictTable(), iter(range(1, 100))

    def input_run() -> dict[str, Any]:
        run_id = f"in-{next(runs)}"
        outcome = run_input(
            flow, InputLog(log), raw, staging, Attempt(run_id), polars_stage(),
            job_name="events_input_job", now_ms=0, info=lambda _m: None, claims=table,
        )  # fmt: skip
        log.record(log.staging, run_id, outcome.metadata)
        log.ended.add(run_id)
        return outcome.metadata

    def output_run() -> dict[str, Any]:
        run_id = f"out-{next(runs)}"
        outcome = run_output(
            flow, OutputLog(log), staging, output, Attempt(run_id), OutputRequest(), polars_stage(),
            job_name="events_output_job", now_ms=0, info=lambda _m: None, claims=table,
        )  # fmt: skip
        log.record(log.output, run_id, outcome.metadata)
        log.ended.add(run_id)
        return outcome.metadata

    raw.write_bytes("b/one.json", raw_records(0, 50))
    raw.write_bytes("a/two.json", raw_records(50, 30))
    assert (input_run()["files_read"], output_run()["records_read"]) == (2, 80)
    assert (input_run()["files_read"], output_run()["records_read"]) == (0, 0)  # nothing new: nothing read
    raw.write_bytes("c/three.json", raw_records(80, 20))
    raw.write_bytes("b/one.json", raw_records(100, 10))  # rewritten in place: a new version
    first = input_run()
    assert (first["files_read"], first["records_read"]) == (2, 30)
    assert output_run()["records_read"] == 30
    assert (input_run()["files_read"], output_run()["records_read"]) == (0, 0)
    seen = plain_reader(Server(store, "", client, bucket))
    assert max(seen.values()) == 1 and set(seen) == {*range(0, 100), *range(100, 110)}


# --- Exactly once under operator moves, on s3rver (issue 21 item 4) ------------------------------------

#: The moves of test_exactly_once.py's S3 property test that differ on a store without conditional writes: two
#: Output runs from two processes at once (the claim is a row in the instance), a SIGKILLed Output run, an
#: outage mid-write, and raw objects rewritten and deleted; fixed, so that each runs every time.
S3RVER_MOVES = ("input_run", "two_at_once", "kill_output", "rewrite_raw", "outage", "delete_raw", "tick")


def output_run_cut_mid_write(flow: FlowDriver, proxy: CuttableProxy, request: Any) -> Any:
    """An Output run whose endpoint is lost right after its first pending part is begun (mid-write). Unlike
    ``FlowDriver.output_run_with_outage``, which watches ListMultipartUploads (s3rver has none), it cuts from
    inside the write; the endpoint is back once the run has failed."""
    real_begin_upload = S3Storage.begin_upload
    fired: list[bool] = []

    def begin_upload(self: S3Storage, *args: Any, **kwargs: Any) -> Any:
        pending = real_begin_upload(self, *args, **kwargs)
        if not fired:
            fired.append(True)
            proxy.cut()
        return pending

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(S3Storage, "begin_upload", begin_upload)
        try:
            result = flow.output_run(request)
        finally:
            if fired:
                proxy.restore()
    assert fired, "the run wrote nothing: no outage was injected"
    return result


@pytest.mark.slow
def test_exactly_once_under_operator_moves_on_s3rver(
    s3rver_server: Any, s3rver_client: Any, s3rver_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_exactly_once.py's S3 property test with its moves in a fixed order, on s3rver: after quiescence every
    current raw record is in the output exactly once for Dagster's view, the manifests and a plain lister."""
    from glueflow_dagster_tests.end_to_end.test_exactly_once import apply, check_after_quiescence

    srv = Server("s3rver", s3rver_server.endpoint, s3rver_client, s3rver_bucket)
    for name, value in (("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)):
        monkeypatch.setenv(name, value)  # the child processes' runs read them too
    with flow_on(srv, tmp_path / "flow", seed=21, output_target_file_bytes=20_000) as (flow, proxy):
        flow.add_raw(20)
        flow.input_run()
        for move in S3RVER_MOVES:
            if move == "outage":
                for _ in range(3):
                    flow.add_raw(500)
                flow.input_run()
                requests = flow.tick()
                assert not output_run_cut_mid_write(flow, proxy, requests[0] if requests else None).success
                assert not flow.snapshot()
            else:
                apply(flow, move, 1.0)
        check_after_quiescence(flow, len(S3RVER_MOVES))  # Dagster's view and the manifests
        seen = plain_reader(srv)  # a plain lister: each record once; a rewritten version's old records at most once
        assert not [i for i, n in seen.items() if n > 1]
        assert {i for ids in flow.truth.current.values() for i in ids} <= set(seen)
        assert flow.processes_left(wait_s=20.0) == []

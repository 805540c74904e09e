"""Drive one real flow the way operators do, and check exactly-once against the ground truth.

Shared by ``glueflow_dagster_tests/end_to_end/test_exactly_once.py`` and ``benchmarks.soak``: both need the same moves
(scheduled Input runs, sensor ticks, UI-style materializations, re-executions, SIGKILLed runs, two runs at
once from two processes, S3 outages, late / rewritten / deleted objects) and the same verdict, so they live
in one place. Everything is real: a Dagster instance in its own DAGSTER_HOME with the packaged dagster.yaml,
runs in this process or in child processes, local folders or S3 (a moto server behind a cuttable proxy).

Exactly-once, as checked here (``FlowDriver.verdict``):

- every record of the *current* version of every raw object appears exactly once in the committed output;
- a record of a version that was rewritten in place (or of a raw object deleted) appears at most once: the old
  version may have been delivered before it changed; a rewritten object is reprocessed in full (as in Glue),
  so its new version's records appear once as well;
- a record of a staging part deleted by hand appears at most once (a loss, explained by that deletion).

"Committed output" is read two ways, which must agree: the parts some commit lists in Dagster's event log
(what glueflow's readers see), and the parts listed in ``_glueflow/commits/*.json`` (what readers outside
Dagster see), intersected with the location's listing.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    ReexecutionOptions,
    RunsFilter,
    build_sensor_context,
    execute_job,
    reconstructable,
)
from dagster._core.definitions.reconstruct import ReconstructableJob

from glueflow_dagster.components.commit_log import committed_parts
from glueflow_dagster.components.jobs import output_key, staging_key
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.components.sensors import in_flight_run_id
from glueflow_dagster.core.commits import COMMITS_DIR, CommitRecord
from glueflow_dagster.core.storage import RESERVED_DIR, ObjectInfo, Storage
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.support.cuttable_proxy import CuttableProxy
from glueflow_dagster_tests.support.processes import descendants, is_java, outliving, process_table

FLOW = "events"
INPUT_JOB = f"{FLOW}_input_job"
OUTPUT_JOB = f"{FLOW}_output_job"
SENSOR = f"{FLOW}_output_sensor"
OUTPUT_OP = "events__output"
PACKAGED_DAGSTER_YAML = Path(__file__).parents[2] / "glueflow_dagster" / "dagster.yaml"
MAPPINGS = {
    "input": [["id", "long", "event_id", "long"], ["user.id", "int", "user_id", "long"]],
    "output": [["event_id", "long", "event_id", "long"], ["user_id", "long", "user_id", "long"]],
}

# The `spark:` section of a flow with a job on `engine: spark`: the local launcher, one core, a small heap.
SPARK_LOCAL = {"launcher": "local", "master": "local[1]", "driver_memory": "512m", "timeout_s": 600}

# Run in a child process (a run an operator starts elsewhere: another UI session, a worker we SIGKILL).
# argv: flow file, "job" <job name> | "asset" <asset key path>, tags JSON, run config JSON.
CHILD_RUN = """
import json, sys
from dagster import AssetKey, DagsterInstance
from glueflow_dagster.definitions import load_definitions
defs = load_definitions(sys.argv[1])
tags, config = json.loads(sys.argv[4]), json.loads(sys.argv[5])
with DagsterInstance.get() as instance:
    if sys.argv[2] == "asset":  # the UI's Materialize: __ASSET_JOB with an asset selection, no run config
        job = defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(instance=instance, asset_selection=[AssetKey(sys.argv[3].split("/"))],
                                        tags=tags, raise_on_error=False)
    else:
        result = defs.resolve_job_def(sys.argv[3]).execute_in_process(
            instance=instance, tags=tags, run_config=config, raise_on_error=False)
print("RUN", result.run_id, result.success, flush=True)
"""


def _glueflow_config_job(name: str) -> Any:
    """A job from the flow file in $GLUEFLOW_CONFIG: the reconstructable target of re-executions."""
    return load_definitions(os.environ["GLUEFLOW_CONFIG"]).resolve_job_def(name)


def input_job() -> Any:
    return _glueflow_config_job(INPUT_JOB)


def output_job() -> Any:
    return _glueflow_config_job(OUTPUT_JOB)


def _event_ids(data: bytes) -> list[int]:
    return [int(json.loads(line)["event_id"]) for line in data.splitlines() if line.strip()]


def _raw_lines(ids: range) -> bytes:
    return "".join(json.dumps({"id": i, "user": {"id": i % 7}, "pad": "x" * 40}) + "\n" for i in ids).encode()


def free_dead_slots(instance: DagsterInstance) -> None:
    """One iteration of the monitoring daemon's concurrency-slot sweep, as it runs after the grace period."""
    import logging
    from datetime import timedelta
    from types import SimpleNamespace
    from unittest import mock

    from dagster._daemon.monitoring import concurrency
    from dagster._time import get_current_datetime

    grace = instance.run_monitoring_settings.get("free_slots_after_run_end_seconds") or 0
    later = get_current_datetime() + timedelta(seconds=grace + 1)
    with mock.patch.object(concurrency, "get_current_datetime", return_value=later):
        context = SimpleNamespace(instance=instance)
        for _ in concurrency.execute_concurrency_slots_iteration(context, logging.getLogger(__name__)):  # type: ignore[arg-type]
            pass


@dataclass
class S3Target:
    """The bucket and the (proxied) endpoint a flow on S3 uses; ``client`` talks to moto directly."""

    bucket: str
    proxy: CuttableProxy
    client: Any


@dataclass
class Truth:
    """What producers and operators did: the ground truth the output is checked against."""

    current: dict[str, range] = field(default_factory=dict)  # raw key -> ids of its current version
    superseded: set[int] = field(default_factory=set)  # ids of rewritten or deleted raw versions: at most once
    hand_deleted: set[int] = field(default_factory=set)  # ids in staging parts deleted by hand: at most once
    next_id: int = 0

    def ids(self, count: int) -> range:
        ids = range(self.next_id, self.next_id + count)
        self.next_id += count
        return ids


@dataclass
class Verdict:
    records_in: int
    records_out: int
    duplicates: int
    losses: int
    explained_losses: int
    unexplained_losses: int
    manifest_view_differs: int
    superseded_out: int  # records of rewritten / deleted raw versions delivered before they changed (at most once)
    orphans_left: int
    figure_mismatches: list[str]
    deleted_committed: list[str]
    outlived_workers: list[str] = field(default_factory=list)  # a killed worker's children still running

    @property
    def clean(self) -> bool:
        return not (
            self.duplicates
            or self.unexplained_losses
            or self.manifest_view_differs
            or self.figure_mismatches
            or self.deleted_committed
            or self.outlived_workers
        )


class FlowDriver:
    """One flow (bookmarks enabled) in its own DAGSTER_HOME, and the operator moves on it."""

    def __init__(
        self,
        root: Path,
        *,
        s3: S3Target | None = None,
        orphan_grace_s: int = 0,
        input_target_file_bytes: int | None = None,
        output_target_file_bytes: int | None = None,
        max_manifest_attempts: int = 3,
        seed: int = 0,
        input_engine: str = "polars",
        output_engine: str = "polars",
    ) -> None:
        self.root, self.s3, self.rng = root, s3, random.Random(seed)
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(PACKAGED_DAGSTER_YAML, self.home / "dagster.yaml")
        base = f"s3://{s3.bucket}" if s3 else str(root / "data")
        self.uris = {name: f"{base}/{name}" for name in ("input", "staging", "output")}
        self.options = {
            "orphan_grace_s": orphan_grace_s,
            "input_target_file_bytes": input_target_file_bytes,
            "output_target_file_bytes": output_target_file_bytes,
            "max_manifest_attempts": max_manifest_attempts,
            "input_engine": input_engine,
            "output_engine": output_engine,
        }
        self.path = root / "glueflow.yaml"
        self.write_flow_file()
        saved = ("GLUEFLOW_CONFIG", "DAGSTER_HOME", "AWS_ENDPOINT_URL", "JAVA_TOOL_OPTIONS")
        self._saved_env = {k: os.environ.get(k) for k in saved}
        os.environ["GLUEFLOW_CONFIG"] = str(self.path)  # the reconstructable target of re-executions
        os.environ["DAGSTER_HOME"] = str(self.home)
        # Stage runs on engine: spark start a JVM each for seconds of work: the client JIT alone starts faster
        # (measured here: 14 to 18 s per small Spark stage run instead of 24 to 34 s). Same results.
        os.environ.setdefault("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1")
        if s3:
            os.environ["AWS_ENDPOINT_URL"] = s3.proxy.endpoint
        self.instance = DagsterInstance.from_config(str(self.home))
        self.defs: Definitions = load_definitions(self.path)
        self.truth = Truth()
        self.cursor: str | None = None
        self.committed_snapshot: set[tuple[str, str]] = set()  # (location, key) ever committed
        self.deleted_by_hand: set[tuple[str, str]] = set()
        self.log: list[str] = []
        self.with_report = False
        self.killed_children = 0  # child processes SIGKILLed workers had (the Spark stage and its JVM)
        self.outlived_workers: list[str] = []  # processes of SIGKILLed run workers alive 10 s after the kill

    # --- set-up -------------------------------------------------------------------------------------

    def write_flow_file(self, **changes: Any) -> None:
        self.options |= changes
        o = self.options
        grace = o["orphan_grace_s"]
        input_job_body: dict[str, Any] = {"mappings": MAPPINGS["input"]}
        output_job_body: dict[str, Any] = {
            "bookmark": "enable",
            "transformation_ctx": "bookmark_ctx",
            "mappings": MAPPINGS["output"],
            "max_manifest_attempts": o["max_manifest_attempts"],
        }
        if o["input_target_file_bytes"]:
            input_job_body["target_file_bytes"] = o["input_target_file_bytes"]
        if o["output_target_file_bytes"]:
            output_job_body["target_file_bytes"] = o["output_target_file_bytes"]
        flow: dict[str, Any] = {
            "input": {"uri": self.uris["input"], "recurse": True},
            "staging": {"uri": self.uris["staging"], "compression": "gzip", "orphan_grace_s": grace},
            "output": {"uri": self.uris["output"], "compression": "none", "orphan_grace_s": grace},
            "input_job": input_job_body,
            "output_job": output_job_body,
        }
        if "spark" in (o["input_engine"], o["output_engine"]):
            input_job_body["engine"], output_job_body["engine"] = o["input_engine"], o["output_engine"]
            flow["spark"] = SPARK_LOCAL  # the local launcher: a stage-script subprocess with its own JVM
        document = {"flows": {FLOW: flow}}
        self.path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        if hasattr(self, "defs"):
            self.defs = load_definitions(self.path)

    def close(self) -> None:
        self.instance.dispose()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def processes_left(self, wait_s: float = 0.0) -> list[str]:
        """Processes of this flow other than this one (run workers, stage scripts, ``timeout``, JVMs: they
        inherit ``GLUEFLOW_CONFIG``) still alive after up to ``wait_s`` seconds. Linux only (empty elsewhere)."""
        marker = f"GLUEFLOW_CONFIG={self.path}".encode()
        ours: set[int] = set()
        for pid in process_table():
            if pid == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    ours.add(pid)
        return outliving(ours, wait_s)

    def storage(self, name: str) -> Storage:
        return StorageResource().open(self.uris[name])

    # --- producers ----------------------------------------------------------------------------------

    def add_raw(self, records: int = 20, *, late_s: float = 0.0) -> str:
        """A new raw object; with ``late_s`` its last-modified lies that far in the past (local only)."""
        ids = self.truth.ids(records)
        key = f"batch={ids.start // 1_000_000}/obj-{ids.start:09d}.json"
        self.storage("input").write_bytes(key, _raw_lines(ids))
        if late_s:
            self._set_mtime(key, time.time() - late_s)
        self.truth.current[key] = ids
        return key

    def add_late_many(self, objects: int, records: int, late_s: float) -> list[str]:
        """Many late objects at once, written straight to the folder (fast) with old modification times."""
        assert self.s3 is None, "S3 sets last-modified itself: late objects exist on local folders only"
        folder = Path(self.uris["input"]) / "late"
        folder.mkdir(parents=True, exist_ok=True)
        keys, when = [], time.time() - late_s
        for n in range(objects):
            ids = self.truth.ids(records)
            path = folder / f"late-{ids.start:09d}.json"
            path.write_bytes(_raw_lines(ids))
            os.utime(path, (when + n * 0.001, when + n * 0.001))
            key = f"late/{path.name}"
            self.truth.current[key] = ids
            keys.append(key)
        return keys

    def rewrite_raw(self, key: str | None = None, records: int = 20) -> str | None:
        """An outside producer rewrites an object in place with new records (a new version)."""
        key = key or self._pick(sorted(self.truth.current))
        if key is None:
            return None
        old = self.truth.current[key]
        ids = self.truth.ids(records)
        self.storage("input").write_bytes(key, _raw_lines(ids))
        if self.s3 is None:  # a strictly newer modification time, even within one clock tick
            self._set_mtime(key, max(time.time(), (Path(self.uris["input"]) / key).stat().st_mtime + 1))
        self.truth.superseded |= set(old)
        self.truth.current[key] = ids
        return key

    def delete_raw(self, key: str | None = None) -> str | None:
        key = key or self._pick(sorted(self.truth.current))
        if key is None:
            return None
        self.storage("input").delete(key)
        self.truth.superseded |= set(self.truth.current.pop(key))
        return key

    def _set_mtime(self, key: str, when: float) -> None:
        os.utime(Path(self.uris["input"]) / key, (when, when))

    def _pick(self, items: list[str]) -> str | None:
        return self.rng.choice(items) if items else None

    # --- operators ----------------------------------------------------------------------------------

    def input_run(self, tags: dict[str, str] | None = None) -> Any:
        """A scheduled Input run (the schedule launches the job; in-process here)."""
        result = self.defs.resolve_job_def(INPUT_JOB).execute_in_process(
            instance=self.instance, tags=tags, raise_on_error=False
        )
        self.note(f"input run {result.run_id[:8]} success={result.success}")
        return result

    def tick(self) -> list[Any]:
        with build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=self.defs, resources=self.defs.resources
        ) as context:
            result = self.defs.resolve_sensor_def(SENSOR).evaluate_tick(context)
        self.cursor = result.cursor or self.cursor
        return list(result.run_requests or [])

    def output_run(self, request: Any = None) -> Any:
        config = request.run_config if request is not None else {}
        tags = request.tags if request is not None else {}
        # Without F/flow_report unless asked (a matplotlib chart per run costs seconds, not correctness).
        result = self.defs.resolve_job_def(OUTPUT_JOB).execute_in_process(
            instance=self.instance,
            run_config=config,
            tags=tags,
            raise_on_error=False,
            asset_selection=None if self.with_report else [output_key(FLOW)],
        )
        self.note(f"output run {result.run_id[:8]} success={result.success}")
        return result

    def tick_and_run(self) -> list[Any]:
        """One sensor tick and the run it requests (what the daemon launches)."""
        return [self.output_run(request) for request in self.tick()]

    def ui_materialize(self, key: AssetKey | None = None) -> Any:
        """The UI's Materialize button: `__ASSET_JOB` with an asset selection, no run config, no tags."""
        job = self.defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(
            instance=self.instance, asset_selection=[key or output_key(FLOW)], raise_on_error=False
        )
        self.note(f"UI materialize {result.run_id[:8]} success={result.success}")
        return result

    def reexecute(self, parent_run_id: str) -> Any:
        """The UI's Re-execute: a new run from the parent's job, with ReexecutionOptions (from_failure if failed)."""
        parent = self.instance.get_run_by_id(parent_run_id)
        assert parent is not None
        target = input_job if parent.job_name == INPUT_JOB else output_job
        options = ReexecutionOptions(parent_run_id=parent_run_id)
        # The UI re-executes with the parent's run config and tags; in-process executor for speed.
        config = {**parent.run_config, "execution": {"config": {"in_process": {}}}}
        tags = {k: v for k, v in parent.tags.items() if not k.startswith("dagster/")}
        # Dagster keeps the last reconstructed job per process (lru_cache on ReconstructableJob, keyed by the
        # pointer, the same `input_job`/`output_job` for every flow): without this, a re-execution would run
        # the flow file of an earlier FlowDriver in this process (another test's folders) or one from before
        # write_flow_file changed it (another engine).
        ReconstructableJob.get_definition.cache_clear()
        ReconstructableJob.get_repository_definition.cache_clear()
        with execute_job(
            reconstructable(target), instance=self.instance, reexecution_options=options, run_config=config, tags=tags
        ) as result:
            self.note(f"re-execution {result.run_id[:8]} of {parent_run_id[:8]} success={result.success}")
            return result.run_id, result.success

    def child_run(
        self,
        kind: str,
        target: str,
        *,
        tags: dict[str, str] | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a run in another process on the same DAGSTER_HOME (``kind``: "job" or "asset")."""
        env = {**os.environ, "DAGSTER_HOME": str(self.home)}
        args = [json.dumps(tags or {}), json.dumps(run_config or {})]
        return subprocess.Popen(
            [sys.executable, "-c", CHILD_RUN, str(self.path), kind, target, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def kill_run(
        self,
        job: str,
        *,
        when: str = "pending",
        delay_s: float = 0.0,
        run_config: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        timeout_s: float = 120.0,
    ) -> tuple[str | None, str]:
        """SIGKILL a run's worker process. ``when``: "pending" (once its first pending part exists: mid-write),
        "spark" (once the worker's Spark stage has its JVM: mid-stage, on ``engine: spark``) or "delay"
        (``delay_s`` after its run started: a random point). Then wait up to 10 s for the worker's children to
        die with it (survivors go to ``outlived_workers``, and the verdict is not clean) and do what Dagster's
        run monitoring does with a worker that died without a word: mark the run failed and free its pool slot.

        Returns (run id or None if it never started, what happened).
        """
        before = {r.dagster_run.run_id for r in self.instance.get_run_records(RunsFilter(job_name=job))}
        child = self.child_run("job", job, tags=tags, run_config=run_config)
        location = "staging" if job == INPUT_JOB else "output"
        run_id, outcome, started = None, "finished before the kill", None
        tree: set[int] = set()
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and child.poll() is None:
                if run_id is None:
                    fresh = [
                        r.dagster_run.run_id
                        for r in self.instance.get_run_records(RunsFilter(job_name=job))
                        if r.dagster_run.run_id not in before
                    ]
                    if fresh:
                        run_id, started = fresh[0], time.monotonic()
                if when == "pending":
                    fire = self._has_pending(location)
                elif when == "spark":
                    fire = any(is_java(pid) for pid in descendants(child.pid))
                else:
                    fire = started is not None and time.monotonic() - started >= delay_s
                if fire:
                    tree = descendants(child.pid)  # the stage script and its JVM on engine: spark
                    child.send_signal(signal.SIGKILL)
                    outcome = "killed"
                    break
                time.sleep(0.005)
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()
        # A killed worker's children must die with it (the local Spark launcher's stage script and JVM).
        survivors = outliving(tree, wait_s=10.0)
        self.outlived_workers += survivors
        if run_id is None:
            fresh = [
                r.dagster_run.run_id
                for r in self.instance.get_run_records(RunsFilter(job_name=job))
                if r.dagster_run.run_id not in before
            ]
            run_id = fresh[0] if fresh else None
        if run_id is not None:
            self.recover_dead_run(run_id)
        self.note(f"SIGKILL {job} run {str(run_id)[:8]}: {outcome} ({len(tree)} children; outlived: {survivors})")
        self.killed_children += len(tree)
        return run_id, outcome

    def recover_dead_run(self, run_id: str) -> bool:
        """What the daemon does for a worker that died: the code server / run monitoring marks the run failed,
        then the monitoring daemon's slot iteration frees its pool slot once
        ``run_monitoring.free_slots_after_run_end_seconds`` (packaged dagster.yaml) have passed; the clock is
        moved past that period instead of waiting it out. True if the run was still marked alive."""
        run = self.instance.get_run_by_id(run_id)
        # NOT_STARTED too: a worker killed between creating its run and starting it leaves the run there, and
        # nothing else will ever start it (the sensor would wait on it as "in flight" forever).
        alive = run is not None and run.status in (
            DagsterRunStatus.NOT_STARTED,
            DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED,
        )
        if alive:
            self.instance.report_run_failed(run)
        free_dead_slots(self.instance)
        return alive

    def _has_pending(self, location: str) -> bool:
        storage = self.storage(location)
        try:
            return any(True for _ in storage.pending_uploads())
        except Exception:  # noqa: BLE001 - a listing racing a rename: not yet
            return False

    def delete_staging_part(self) -> str | None:
        """An operator deletes a committed staging part by hand (its records may be lost: counted)."""
        staging = self.storage("staging")
        parts = [o.key for o in self.committed_objects("staging")]
        key = self._pick(sorted(parts))
        if key is None:
            return None
        self.truth.hand_deleted |= set(_event_ids(gzip.decompress(staging.read_bytes(key))))
        staging.delete(key)
        self.deleted_by_hand.add(("staging", key))
        self.note(f"deleted staging part {key}")
        return key

    @contextlib.contextmanager
    def s3_outage(self) -> Iterator[None]:
        assert self.s3 is not None
        self.s3.proxy.cut()
        try:
            yield
        finally:
            self.s3.proxy.restore()

    def output_run_with_outage(self, request: Any = None) -> Any:
        """An Output run whose S3 endpoint is lost once its first pending part is uploaded (mid-write)."""
        assert self.s3 is not None
        stop = threading.Event()
        fired = threading.Event()

        def watch() -> None:
            prefix = "output/"
            while not stop.is_set():
                uploads = self.s3.client.list_multipart_uploads(Bucket=self.s3.bucket, Prefix=prefix)
                if uploads.get("Uploads"):
                    self.s3.proxy.cut()
                    fired.set()
                    return
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            result = self.output_run(request)
        finally:
            stop.set()
            watcher.join()
            if fired.is_set():
                self.s3.proxy.restore()
        return result, fired.is_set()

    # --- quiescence and the verdict ---------------------------------------------------------------

    def quiesce(self, max_ticks: int = 12) -> int:
        """An Input run, then sensor ticks (each with its run) until the sensor asks for nothing; the number
        of ticks it took. Raises if the flow does not settle within ``max_ticks``."""
        self.input_run()
        for tick in range(1, max_ticks + 1):
            results = self.tick_and_run()
            self.snapshot()
            if not results:
                busy = in_flight_run_id(self.instance, FLOW)
                if busy is not None:  # the sensor skipped: not settled, blocked by a run that never ends
                    raise AssertionError(f"the sensor is blocked by Output run {busy} that is still in flight")
                return tick
        raise AssertionError(f"the flow did not settle within {max_ticks} sensor ticks:\n" + "\n".join(self.log[-30:]))

    def stage_engine(self, run_id: str) -> str:
        """The engine a run's stage ran on, from its log ("running the stage on Spark ..."): "spark" or "polars"."""
        spark = any("running the stage on Spark" in entry.user_message for entry in self.instance.all_logs(run_id))
        return "spark" if spark else "polars"

    def runs_table(self) -> str:
        """Every run, oldest first: id, job, status, manifest id, records read and written by F/output, what it
        planned; and the moves made (``log``). For failure reports: what committed which records."""
        lines = []
        for record in reversed(self.instance.get_run_records()):
            run = record.dagster_run
            meta: dict[str, Any] = {}
            for key in (staging_key(FLOW), output_key(FLOW)):
                for found in self.instance.fetch_materializations(key, limit=1000).records:
                    if found.run_id == run.run_id:
                        meta |= {k: v.value for k, v in found.asset_materialization.metadata.items()}
            planned = [str(m[0])[:40] for m in meta.get("manifest", [])]
            lines.append(
                f"{run.run_id[:8]} {run.job_name} {run.status.value} {self.stage_engine(run.run_id)} "
                f"parent={str(run.parent_run_id)[:8]} "
                f"manifest_id={meta.get('manifest_id')} read={meta.get('records_read')} "
                f"written={meta.get('records_written')} planned={planned}"
            )
        return "\n".join(["runs:", *lines, "moves:", *self.log])

    def note(self, line: str) -> None:
        self.log.append(line)

    def commit_lookup(self, location: str) -> Callable[[ObjectInfo], bool]:
        key = staging_key(FLOW) if location == "staging" else output_key(FLOW)
        return committed_parts(self.instance, key).is_committed

    def committed_objects(self, location: str) -> list[ObjectInfo]:
        """The location's parts some commit in the event log lists (what glueflow's readers see)."""
        is_committed = self.commit_lookup(location)
        return [
            o
            for o in self.storage(location).list()
            if RESERVED_DIR not in o.key.split("/") and not o.key.startswith("_errors/") and is_committed(o)
        ]

    def manifest_objects(self, location: str) -> list[ObjectInfo]:
        """The parts the commit manifests in ``_glueflow/commits/`` list that exist (readers outside Dagster)."""
        storage = self.storage(location)
        listing = {o.key: o for o in storage.list()}
        listed: set[str] = set()
        for key in listing:
            if key.startswith(COMMITS_DIR + "/"):
                record = CommitRecord.from_dict(json.loads(storage.read_bytes(key)))
                if record is not None:
                    listed |= record.keys
        return [listing[k] for k in sorted(listed) if k in listing]

    def snapshot(self) -> list[str]:
        """Record the committed keys now; returns committed keys seen earlier that are gone (must be none,
        apart from staging parts the operator deleted by hand)."""
        now = {(loc, o.key) for loc in ("staging", "output") for o in self.committed_objects(loc)}
        gone = sorted(f"{loc}/{key}" for loc, key in self.committed_snapshot - now - self.deleted_by_hand)
        self.committed_snapshot |= now
        return gone

    def output_ids(self, objects: list[ObjectInfo]) -> Counter[int]:
        storage = self.storage("output")
        counts: Counter[int] = Counter()
        for obj in objects:
            counts.update(_event_ids(storage.read_bytes(obj.key)))
        return counts

    def run_figures(self) -> list[str]:
        """`records_read == records_written + error_records` on every materialization of staging and output."""
        bad = []
        for key in (staging_key(FLOW), output_key(FLOW)):
            records = self.instance.fetch_materializations(key, limit=10_000).records
            for record in records:
                meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
                if "records_read" not in meta:
                    continue
                if meta["records_read"] != meta["records_written"] + meta.get("error_records", 0):
                    bad.append(f"{record.run_id}: {meta['records_read']} != {meta['records_written']} + errors")
        for run in self.instance.get_runs():
            for record in self.instance.get_records_for_run(
                run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
            ).records:
                evaluation = record.event_log_entry.dagster_event.event_specific_data
                if evaluation.check_name == "no_records_lost" and not evaluation.passed:
                    bad.append(f"{run.run_id}: no_records_lost failed")
        return bad

    def orphans_left(self) -> int:
        total = 0
        for location in ("staging", "output"):
            is_committed = self.commit_lookup(location)
            storage = self.storage(location)
            total += sum(
                1
                for o in storage.list()
                if RESERVED_DIR not in o.key.split("/") and not o.key.startswith("_errors/") and not is_committed(o)
            )
            total += sum(1 for _ in storage.pending_uploads())
        return total

    def verdict(self) -> Verdict:
        gone = self.snapshot()
        counts = self.output_ids(self.committed_objects("output"))
        manifest_counts = self.output_ids(self.manifest_objects("output"))
        current = {i for ids in self.truth.current.values() for i in ids}
        duplicates = sum(n - 1 for n in counts.values() if n > 1)
        unknown = [i for i in counts if i >= self.truth.next_id]
        missing = current - set(counts)
        explained = missing & self.truth.hand_deleted
        return Verdict(
            records_in=len(current),
            records_out=sum(counts.values()),
            duplicates=duplicates + len(unknown),
            losses=len(missing),
            explained_losses=len(explained),
            unexplained_losses=len(missing - explained),
            manifest_view_differs=sum((counts - manifest_counts).values()) + sum((manifest_counts - counts).values()),
            superseded_out=sum(1 for i in counts if i in self.truth.superseded and i not in current),
            orphans_left=self.orphans_left(),
            figure_mismatches=self.run_figures(),
            deleted_committed=gone,
            outlived_workers=list(self.outlived_workers),
        )

"""A run worker killed with SIGKILL must not block the flow (issue 9, Deliver 8), under a real `dagster dev`.

The Output run's worker is killed mid-write (its pending parts already in the output location). Then:
Dagster marks the run FAILURE (the code server sees its child die), the run's pool slot is released,
the next `F_output_sensor` tick requests the same frozen manifest again, that run succeeds, every raw
record is in the committed output exactly once, and the killed attempt's pending parts stay invisible
and are counted as `orphaned_files` on the next Output materialization.

The worker is made slow by the flow file alone (a large input, a tiny `output_job.target_file_bytes`:
thousands of parts), so the product has no test hook.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import glueflow_dagster
from glueflow_dagster.components.jobs import (
    INPUT_RUN_TAG,
    MANIFEST_TAG,
    input_job_name,
    output_job_name,
    output_sensor_name,
    pool_name,
)
from glueflow_dagster_tests.conftest import raw_records, write_flow_file
from glueflow_dagster_tests.end_to_end.test_ui import (
    MATERIALIZATIONS_QUERY,
    REPO,
    RUNS_QUERY,
    DagsterDev,
    _free_port,
    _marked_pids,
    _stop,
    _tags,
    _wait_for_server,
)
from glueflow_dagster_tests.support.processes import alive, command_line, descendants, describe, process_table

FLOW = "events"
INPUT_JOB, OUTPUT_JOB = input_job_name(FLOW), output_job_name(FLOW)
OUTPUT_POOL = pool_name(OUTPUT_JOB)
# Midnight, 1 January: the schedule does not fire during the test, which launches the Input run itself.
NEVER = "0 0 1 1 *"
FILES, RECORDS_PER_FILE = 20, 5_000
RECORDS = FILES * RECORDS_PER_FILE
# About 40 records per part: thousands of pending parts, written one by one, so the kill lands mid-write.
OUTPUT_TARGET_FILE_BYTES = 2_500
RUN_TIMEOUT_S = 300
FAILURE_TIMEOUT_S = 60
# The monitoring daemon's poll interval plus free_slots_after_run_end_seconds (dagster.yaml), with margin.
SLOT_TIMEOUT_S = 120
PACKAGED_DAGSTER_YAML = Path(glueflow_dagster.__file__).with_name("dagster.yaml")
FREE_SLOTS_AFTER_S = yaml.safe_load(PACKAGED_DAGSTER_YAML.read_text())["run_monitoring"][
    "free_slots_after_run_end_seconds"
]

LAUNCH_MUTATION = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DagsterDev]:
    flow_file = write_flow_file(tmp_path / "project", bookmark="enable", schedule=NEVER)
    document = yaml.safe_load(flow_file.read_text(encoding="utf-8"))
    document["flows"][FLOW]["output_job"]["target_file_bytes"] = OUTPUT_TARGET_FILE_BYTES
    flow_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    raw = flow_file.parent / "data" / "input" / "batch=0"
    raw.mkdir(parents=True)
    for n in range(FILES):
        (raw / f"part-{n:03d}.json").write_bytes(raw_records(n * RECORDS_PER_FILE, RECORDS_PER_FILE))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PACKAGED_DAGSTER_YAML, home / "dagster.yaml")
    port = _free_port()
    marker = uuid.uuid4().hex
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "GLUEFLOW_CONFIG": str(flow_file),
        "GLUEFLOW_UI_TEST_MARK": marker,  # what _marked_pids and _stop look for
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "dagster_dev.log"
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml")]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DagsterDev(f"http://127.0.0.1:{port}", process, log_path, marker)
    try:
        _wait_for_server(server)
        yield server
    finally:
        _stop(server)


def _runs(dev: DagsterDev) -> list[dict[str, Any]]:
    result = dev.graphql(RUNS_QUERY)["runsOrError"]
    assert result["__typename"] == "Runs", result
    return sorted(result["results"], key=lambda run: run["startTime"] or float("inf"))


def _describe_runs(runs: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {r['jobName']} {r['runId']} {r['status']} {_tags(r)}" for r in runs) or "  (none)"


def _wait_for(dev: DagsterDev, what: str, timeout_s: float, found: Any) -> Any:
    """Poll the runs until `found(runs)` returns something; fail with the runs and the log tail."""
    deadline = time.monotonic() + timeout_s
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if dev.process.poll() is not None:
            pytest.fail(f"dagster dev exited with {dev.process.returncode}:\n{dev.log_tail()}")
        runs = _runs(dev)
        result = found(runs)
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout_s} s; runs:\n{_describe_runs(runs)}\nlog:\n{dev.log_tail()}")


def _launch(dev: DagsterDev, job: str) -> str:
    params = {
        "selector": {"repositoryLocationName": "glueflow_dagster", "repositoryName": "__repository__", "jobName": job},
        "runConfigData": {},
    }
    result = dev.graphql(LAUNCH_MUTATION, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def _open_paths(pid: int) -> list[str]:
    paths = []
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                paths.append(os.readlink(fd))
    return paths


def run_worker_pids(marker: str, run_id: str) -> list[int]:
    """The run's worker processes: the run worker (a child of the code server) and everything below it.

    Neither process names the run on its command line (both are `multiprocessing.spawn` children), so
    the run is found by the step process's open compute-log files, `storage/<run id>/compute_logs/`,
    and the run worker is that process's ancestor right below the code server (`dagster api grpc`).
    """
    table = {pid: ppid for pid, (ppid, state) in process_table().items() if state != "Z"}
    ours = set(_marked_pids(marker))
    needle = f"/storage/{run_id}/compute_logs/"
    steps = [pid for pid in ours if pid in table and any(needle in path for path in _open_paths(pid))]
    workers = set()
    for pid in steps:
        chain = []  # the step process and its ancestors, up to the code server
        while pid in table and pid not in chain:
            chain.append(pid)
            pid = table[pid]
            if "dagster api grpc" in command_line(pid):
                workers.add(chain[-1])
                break
    found = set(workers)
    for worker in workers:
        found |= descendants(worker)
    return sorted(found)


def _pending_parts(location: Path, run_id: str) -> list[Path]:
    """The attempt's pending parts left in a local location (`_glueflow/pending/<uuid>/<part key>`)."""
    pending = location / "_glueflow" / "pending"
    if not pending.exists():
        return []
    return sorted(p for p in pending.rglob("*") if p.is_file() and f"run-{run_id}-" in p.name)


def _committed_event_ids(location: Path) -> Counter[int]:
    """Every record of the committed output, read as an outside reader would: the parts listed by the
    commit manifests `_glueflow/commits/<run id>.json`."""
    ids: Counter[int] = Counter()
    for manifest in sorted((location / "_glueflow" / "commits").glob("*.json")):
        for key, _size, _modified, _etag in json.loads(manifest.read_text(encoding="utf-8"))["parts"]:
            for line in (location / key).read_text(encoding="utf-8").splitlines():
                ids[json.loads(line)["event_id"]] += 1
    return ids


def _output_metadata(dev: DagsterDev, run_id: str) -> dict[str, Any]:
    asset = dev.graphql(MATERIALIZATIONS_QUERY, {"path": [FLOW, "output"]})["assetOrError"]
    assert asset["__typename"] == "Asset", asset
    [materialization] = [m for m in asset["assetMaterializations"] if m["runId"] == run_id]
    return {e["label"]: e.get("intValue", e.get("text")) for e in materialization["metadataEntries"]}


def _claimed(home: Path, pool: str) -> list[str]:
    """Run ids holding a slot of the pool, read from the instance's own storage."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        info = instance.event_log_storage.get_concurrency_info(pool)
        return [slot.run_id for slot in info.claimed_slots]


def _output_run_mid_write(dev: DagsterDev, output: Path) -> tuple[str, dict[str, Any]]:
    """Launch the Input run; once it succeeded and the sensor's Output run has written its first pending
    parts, return (Input run id, that Output run)."""
    input_run = _launch(dev, INPUT_JOB)
    _wait_for(
        dev,
        "Input run SUCCESS",
        RUN_TIMEOUT_S,
        lambda runs: [r for r in runs if r["runId"] == input_run and r["status"] == "SUCCESS"],
    )
    print(f"Input run {input_run} succeeded")

    def output_started(runs: list[dict[str, Any]]) -> Any:
        return [r for r in runs if r["jobName"] == OUTPUT_JOB and r["status"] == "STARTED"]

    [first] = _wait_for(dev, "the sensor's Output run STARTED", RUN_TIMEOUT_S, output_started)
    assert _tags(first)[INPUT_RUN_TAG] == input_run
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not _pending_parts(output, first["runId"]):
        assert time.monotonic() < deadline, f"no pending part within {RUN_TIMEOUT_S} s:\n{dev.log_tail()}"
        time.sleep(0.05)
    return input_run, first


def _assert_exactly_once(output: Path) -> None:
    ids = _committed_event_ids(output)
    assert sum(ids.values()) == RECORDS and set(ids) == set(range(RECORDS)), (sum(ids.values()), len(ids))


@pytest.mark.slow
def test_a_killed_output_worker_fails_frees_its_slot_and_the_next_tick_recovers(
    dev: DagsterDev, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    output = tmp_path / "project" / "data" / "output"
    # Mid-write: the first pending parts are in the output location; kill the whole worker at once.
    input_run, first = _output_run_mid_write(dev, output)
    killed_id = first["runId"]
    manifest_id = _tags(first)[MANIFEST_TAG]
    workers = run_worker_pids(dev.marker, killed_id)
    assert workers, f"no worker process found for run {killed_id}"
    print(f"killing run {killed_id}: {describe(workers)}")
    assert _claimed(home, OUTPUT_POOL) == [killed_id]
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    while alive(workers):  # gone (or a zombie): nothing more is written
        assert time.monotonic() - killed_at < 10, f"still alive after SIGKILL: {describe(workers)}"
        time.sleep(0.05)
    server_alive = [p for p in _marked_pids(dev.marker) if "dagster api grpc" in command_line(p)]
    assert server_alive, "the code server died with the worker"
    left = _pending_parts(output, killed_id)
    print(f"{len(left)} pending parts left by the killed attempt")
    assert left

    # 1. FAILURE within a bounded time.
    def failed(runs: list[dict[str, Any]]) -> Any:
        return [r for r in runs if r["runId"] == killed_id and r["status"] == "FAILURE"]

    _wait_for(dev, f"run {killed_id} FAILURE", FAILURE_TIMEOUT_S, failed)
    to_failure = time.monotonic() - killed_at
    print(f"run {killed_id} FAILURE {to_failure:.1f} s after SIGKILL")
    # The FAILURE does not free the slot: Dagster frees a step's slot in the worker, which is gone.
    assert killed_id in _claimed(home, OUTPUT_POOL)

    # 2. The pool slot: released by the run monitoring daemon (dagster.yaml); without run monitoring it
    # stayed claimed for good, and every later Output run waited in the queue behind it.
    deadline = killed_at + SLOT_TIMEOUT_S
    while killed_id in _claimed(home, OUTPUT_POOL):
        assert time.monotonic() < deadline, (
            f"run {killed_id} still holds its {OUTPUT_POOL} slot {SLOT_TIMEOUT_S} s after SIGKILL:\n{dev.log_tail()}"
        )
        time.sleep(1)
    to_release = time.monotonic() - killed_at
    print(f"its {OUTPUT_POOL} slot released {to_release:.1f} s after SIGKILL")
    # Not at the FAILURE: by the daemon, once the run has been over for free_slots_after_run_end_seconds.
    assert to_release >= FREE_SLOTS_AFTER_S, (to_failure, to_release)

    # 3. The next tick requests the same frozen manifest again, and that run succeeds.
    def retried(runs: list[dict[str, Any]]) -> Any:
        again = [
            r
            for r in runs
            if r["jobName"] == OUTPUT_JOB and r["runId"] != killed_id and _tags(r).get(MANIFEST_TAG) == manifest_id
        ]
        for run in again:
            assert run["status"] not in ("FAILURE", "CANCELED"), f"retry {run['runId']} {run['status']}"
        return [r for r in again if r["status"] == "SUCCESS"]

    [retry] = _wait_for(dev, f"a successful Output run of manifest {manifest_id}", RUN_TIMEOUT_S, retried)
    print(
        f"retry {retry['runId']} of manifest {manifest_id} succeeded {time.monotonic() - killed_at:.1f} s after SIGKILL"
    )
    assert _tags(retry)[INPUT_RUN_TAG] == input_run
    assert _tags(retry)["dagster/run_key"] == f"{input_run}:attempt-2"
    assert _tags(retry)["dagster/sensor_name"] == output_sensor_name(FLOW)
    outputs = [r for r in _runs(dev) if r["jobName"] == OUTPUT_JOB]
    assert [r["runId"] for r in outputs] == [killed_id, retry["runId"]], _describe_runs(outputs)

    # Every raw record exactly once in the committed output; the killed attempt's parts are invisible.
    _assert_exactly_once(output)
    commits = {m.stem for m in (output / "_glueflow" / "commits").glob("*.json")}
    assert commits == {retry["runId"]}
    metadata = _output_metadata(dev, retry["runId"])
    assert metadata["records_read"] == metadata["records_written"] == RECORDS
    # Counted on the next Output materialization, kept until the grace period (orphan_grace_s 3600 s).
    assert metadata["orphaned_files"] == len(left), metadata
    assert metadata["orphans_removed"] == metadata["pending_uploads_aborted"] == 0, metadata
    assert _pending_parts(output, killed_id) == left
    visible = {p.name for p in output.glob("*.json")}
    assert visible and not any(killed_id in name for name in visible)
    assert not _claimed(home, OUTPUT_POOL)


@pytest.mark.slow
def test_when_only_the_run_worker_is_killed_its_orphaned_step_is_fenced_and_the_flow_recovers(
    dev: DagsterDev, tmp_path: Path
) -> None:
    """SIGKILL of the run worker alone: its step process (a child it spawned) lives on without it.

    Dagster marks the run FAILURE at once, but the orphaned step may still finish and commit (its
    materialization is recorded in the failed run), and it may write while the sensor's retry writes,
    once the daemon has freed the slot. The commit fence lets one of them commit; the loser fails with a
    bookmark conflict, the sensor re-plans, and every record is committed exactly once either way.
    """
    output = tmp_path / "project" / "data" / "output"
    _input_run, first = _output_run_mid_write(dev, output)
    killed_id = first["runId"]
    workers = run_worker_pids(dev.marker, killed_id)
    assert len(workers) >= 2, f"expected the run worker and its step process: {describe(workers)}"
    run_worker, step = workers[0], workers[1]
    print(f"killing the run worker of {killed_id} only: {describe([run_worker])}")
    os.kill(run_worker, signal.SIGKILL)
    killed_at = time.monotonic()
    _wait_for(
        dev,
        f"run {killed_id} FAILURE",
        FAILURE_TIMEOUT_S,
        lambda runs: [r for r in runs if r["runId"] == killed_id and r["status"] == "FAILURE"],
    )
    print(f"run {killed_id} FAILURE {time.monotonic() - killed_at:.1f} s after SIGKILL of its run worker")

    def settled(runs: list[dict[str, Any]]) -> Any:
        outputs = [r for r in runs if r["jobName"] == OUTPUT_JOB]
        busy = [r for r in outputs if r["status"] not in ("SUCCESS", "FAILURE", "CANCELED")]
        return not busy and [r for r in outputs if r["status"] == "SUCCESS"]

    _wait_for(dev, "a successful Output run after the kill", 2 * RUN_TIMEOUT_S, settled)
    outputs = [r for r in _runs(dev) if r["jobName"] == OUTPUT_JOB]
    print(f"recovered {time.monotonic() - killed_at:.1f} s after SIGKILL:\n{_describe_runs(outputs)}")
    print(f"the orphaned step process {step} {'is still running' if alive([step]) else 'has exited'}")
    # Each commit manifest belongs to a run that recorded its commit (SUCCESS, or the killed run whose
    # orphaned step committed); together they hold every record once.
    committed = {m.stem for m in (output / "_glueflow" / "commits").glob("*.json")}
    successful = {r["runId"] for r in outputs if r["status"] == "SUCCESS"}
    assert committed <= successful | {killed_id}, (committed, _describe_runs(outputs))
    _assert_exactly_once(output)


def test_the_packaged_dagster_yaml_loads_with_run_monitoring(tmp_path: Path) -> None:
    """The packaged instance still loads: run monitoring on (slots of dead workers freed), pools at 1."""
    from dagster import DagsterInstance

    shutil.copyfile(PACKAGED_DAGSTER_YAML, tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert "MONITORING" in instance.get_required_daemon_types()
        settings = instance.run_monitoring_settings
        assert settings["free_slots_after_run_end_seconds"] > 0
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_monitoring_max_runtime_seconds == 0
        assert instance.run_monitoring_poll_interval_seconds == settings["poll_interval_seconds"]
        assert instance.event_log_storage.get_pool_config().default_pool_limit == 1

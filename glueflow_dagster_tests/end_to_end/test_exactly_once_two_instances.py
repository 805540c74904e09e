"""Exactly-once with two flows in two component instances of one code location, and bookmark admin actions
between and during runs (issue 22, done-when).

A dg project whose defs folder holds two ``defs.yaml`` instances of ``glueflow_dagster.GlueFlows``, one flow
each (``orders``, ``refunds``), loaded the way the code location loads them (``dg.load_from_defs_folder``)
into one set of definitions on one Dagster instance. Hypothesis draws a sequence of moves on either flow:
new raw objects, Input runs, Output runs, ``reset`` and ``set-to-current`` from ``F_bookmark_admin_job``
(the UI's controls), and an admin action during an Output run of the same flow.

What the docs promise, and so what is checked after every move, per flow:

- an Output run delivers what the bookmark has not read yet, and the bookmark then counts it read;
- ``reset`` forgets what was read: the next Output run reads staging again, so its records appear once
  more (a re-read by design, as Glue's reset-job-bookmark);
- ``set-to-current`` counts everything now in staging as read without running: those records are skipped;
- each action's dry run lists exactly what the next Output run then reads;
- an admin action during an Output run takes the same commit claim: it lands before or after the run's
  commit, or fails with one line naming the run and changes nothing; never half of both;
- one flow's moves never change what the other flow delivers, and no committed object is ever deleted.

The committed output (the parts some commit in the event log lists) must equal, as a multiset of record ids,
what this model delivered.

How "during" is driven (deterministically, each interleaving on purpose): the Output run is paused at its
publish (``core.output_run.publish``, reached once the run holds the commit claim and passed the fence), or
the admin action is paused while it holds the claim (``record_admin_action``), and the other party acts then:

- ``waits``: at the run's publish the admin job starts in a child process on the same DAGSTER_HOME (as the
  UI launches it); once it has met the run's claim the publish goes on; the action waits, sees the run's
  commit and lands after it;
- ``refused``: at the run's publish the admin job runs (in this process) with a 0.3 s claim wait: it fails
  with one line naming the run and changes nothing; the run commits;
- ``first``: while the admin action holds the claim, an Output run planned from the same version runs: it
  is refused (nothing committed); the action lands.

Why not a thread, as this test's first version did: two ``execute_in_process`` runs on two threads of one
process deadlock inside Dagster, not glueflow. Every run start calls ``logging.config.dictConfig``
(``get_yaml_python_handlers``, even with no ``python_logs`` config), which holds ``logging``'s module lock
while it takes each existing handler's lock to close it; the other thread, inside Dagster's event-log
handler (its lock held), logs through SQLAlchemy and waits for the module lock. faulthandler's dump of the
hung run showed exactly these two stacks. Dagster runs are processes in production; two runs at once are
driven as processes here.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

from glueflow_dagster.components import bookmark_admin
from glueflow_dagster.components.commit_log import committed_parts
from glueflow_dagster.components.jobs import output_key, staging_key
from glueflow_dagster.core import output_run as core_output_run
from glueflow_dagster.core.storage import RESERVED_DIR, LocalStorage, ObjectInfo
from glueflow_dagster_tests.support.flow_driver import PACKAGED_DAGSTER_YAML

FLOWS = ("orders", "refunds")
MAPPINGS = {
    "input": [["id", "long", "event_id", "long"]],
    "output": [["event_id", "long", "event_id", "long"]],
}
#: Wall budget of the property test: an example that would start after it is not run (hypothesis is told
#: so with ``assume``). Every wait inside an example is bounded too (child process, claim wait).
BUDGET_S = 90.0
#: How long the child admin process may take to start and meet the run's claim, and to finish.
CHILD_TIMEOUT_S = 120.0

# The admin job in a child process on the same DAGSTER_HOME (the UI launches it in its own run worker). It
# touches ``argv[5]`` each time it meets a claim it cannot take, so the test knows it is waiting.
ADMIN_CHILD = """
import sys
from pathlib import Path
import dagster as dg
from glueflow_dagster.components import bookmark_admin
from glueflow_dagster.core.commits import ClaimLost
root, package, flow, action, marker = sys.argv[1:6]
real_take = bookmark_admin.take_claim
def take_claim(*args, **kwargs):
    try:
        return real_take(*args, **kwargs)
    except ClaimLost:
        Path(marker).touch()
        raise
bookmark_admin.take_claim = take_claim
sys.path.insert(0, root)
defs = dg.load_from_defs_folder(path_within_project=Path(package))
config = {"ops": {f"{flow}_bookmark_admin": {"config": {"action": action, "dry_run": False}}}}
with dg.DagsterInstance.get() as instance:
    result = defs.resolve_job_def(f"{flow}_bookmark_admin_job").execute_in_process(
        instance=instance, run_config=config, raise_on_error=False
    )
print("ADMIN", result.success, flush=True)
sys.exit(0 if result.success else 1)
"""


def _project(root: Path, module: str) -> Path:
    """A dg project with two GlueFlows instances, one flow each, on local folders under ``root/data``."""
    (root / module / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "{module}"\n'
        'registry_modules = ["glueflow_dagster"]\n',
        encoding="utf-8",
    )
    (root / module / "__init__.py").write_text("", encoding="utf-8")
    (root / module / "defs" / "__init__.py").write_text("", encoding="utf-8")
    for name in FLOWS:
        data = root / "data" / name
        flow = {
            "input": {"uri": str(data / "input"), "recurse": True},
            "staging": {"uri": str(data / "staging"), "compression": "gzip", "orphan_grace_s": 0},
            "output": {"uri": str(data / "output"), "compression": "none", "orphan_grace_s": 0},
            "input_job": {"mappings": MAPPINGS["input"]},
            "output_job": {"bookmark": "enable", "transformation_ctx": "ctx", "mappings": MAPPINGS["output"]},
        }
        folder = root / module / "defs" / name
        folder.mkdir()
        instance = {"type": "glueflow_dagster.GlueFlows", "attributes": {"flows": {name: flow}}}
        (folder / "defs.yaml").write_text(yaml.safe_dump(instance, sort_keys=False), encoding="utf-8")
    return root / module


@contextmanager
def patched(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    """``owner.name`` is ``replacement`` inside the block (one move's hook), the original afterwards."""
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


def failure_message(result: Any) -> str:
    """The message of a run's first failed step (of the run's failure without one); "" for a success."""
    failures = [e for e in result.all_events if e.is_step_failure] or [e for e in result.all_events if e.is_run_failure]
    error = failures[0].event_specific_data.error if failures else None
    return error.message.strip() if error is not None else ""


class Flows:
    """The two flows on one instance, and the model of what each must deliver."""

    def __init__(self, root: Path) -> None:
        import dagster as dg

        self.root = root
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True)
        shutil.copy(PACKAGED_DAGSTER_YAML, self.home / "dagster.yaml")
        module = f"twoflows_{uuid.uuid4().hex[:8]}"
        self.package = _project(root, module)
        sys.path.insert(0, str(root))
        try:
            self.defs = dg.load_from_defs_folder(path_within_project=self.package)
        finally:
            sys.path.remove(str(root))
        self.instance = DagsterInstance.from_config(str(self.home))
        self.next_id = 0
        self.raw: dict[str, set[int]] = {f: set() for f in FLOWS}  # ids written to the input
        self.staged: dict[str, set[int]] = {f: set() for f in FLOWS}  # ids committed to staging
        self.read: dict[str, set[int]] = {f: set() for f in FLOWS}  # ids the Output bookmark counts read
        self.delivered: dict[str, Counter[int]] = {f: Counter() for f in FLOWS}
        self.committed: set[tuple[str, str]] = set()
        self.log: list[str] = []
        self.children: list[subprocess.Popen[bytes]] = []
        self.unclaimed: list[str] = []  # admin actions that did not wait for a publishing run's claim

    def storage(self, flow: str, role: str) -> LocalStorage:
        return LocalStorage(self.root / "data" / flow / role)

    def close(self) -> None:
        for child in self.children:  # every process this test started is stopped
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)
        self.instance.dispose()

    # --- moves ------------------------------------------------------------------------------------

    def add(self, flow: str, records: int) -> None:
        ids = range(self.next_id, self.next_id + records)
        self.next_id += records
        body = "".join(json.dumps({"id": i, "pad": "x" * 30}) + "\n" for i in ids)
        self.storage(flow, "input").write_bytes(f"obj-{ids.start:09d}.json", body.encode())
        self.raw[flow] |= set(ids)

    def input_run(self, flow: str) -> None:
        result = self.defs.resolve_job_def(f"{flow}_input_job").execute_in_process(
            instance=self.instance, raise_on_error=False
        )
        assert result.success, self.log
        self.staged[flow] |= self.raw[flow]
        self.log.append(f"{flow}: input run")

    def _output(self, flow: str) -> Any:
        return self.defs.resolve_job_def(f"{flow}_output_job").execute_in_process(
            instance=self.instance, raise_on_error=False, asset_selection=[output_key(flow)]
        )

    def _deliver(self, flow: str) -> int:
        """The model of a committed Output run: what the bookmark had not read, once more."""
        unread = self.staged[flow] - self.read[flow]
        self.delivered[flow].update(unread)
        self.read[flow] = set(self.staged[flow])
        return len(unread)

    def output_run(self, flow: str) -> None:
        preview = self.admin(flow, "show", dry_run=True)
        unread = self.staged[flow] - self.read[flow]
        result = self._output(flow)
        assert result.success, self.log
        self.log.append(f"{flow}: output run, {self._deliver(flow)} records")
        assert preview == unread, (sorted(preview ^ unread), self.log)  # the dry run listed what it read

    def _admin_job(self, flow: str, action: str, dry_run: bool) -> Any:
        config = {"action": action, "dry_run": dry_run}
        return self.defs.resolve_job_def(f"{flow}_bookmark_admin_job").execute_in_process(
            instance=self.instance,
            raise_on_error=False,
            run_config={"ops": {f"{flow}_bookmark_admin": {"config": config}}},
        )

    def admin(self, flow: str, action: str, *, dry_run: bool = False) -> set[int]:
        """``F_bookmark_admin_job`` as the launchpad runs it; the records in the staging parts its report
        says the next Output run reads."""
        result = self._admin_job(flow, action, dry_run)
        assert result.success, (failure_message(result), self.log)
        if not dry_run:
            self._apply(flow, action)
            self.log.append(f"{flow}: {action}")
        lines = [entry.user_message for entry in self.instance.all_logs(result.run_id) if entry.user_message]
        start = next(i for i, line in enumerate(lines) if line.startswith("next Output run reads "))
        keys = [line.split()[0] for line in lines[start + 1 :] if line.startswith("  ")]
        assert len(keys) == int(lines[start].split()[4]), "more parts than the report lists: fewer records"
        staging = self.storage(flow, "staging")
        ids = set()
        for key in keys:
            ids |= {json.loads(line)["event_id"] for line in gzip.decompress(staging.read_bytes(key)).splitlines()}
        return ids

    def _apply(self, flow: str, action: str) -> None:
        if action == "reset":
            self.read[flow] = set()
        elif action == "set-to-current":
            self.read[flow] = set(self.staged[flow])

    # --- an admin action during an Output run ---------------------------------------------------------

    def admin_during_output(self, flow: str, action: str, mode: str) -> None:
        """``action`` during an Output run of ``flow`` that has records to deliver, in one of three orders
        (``waits``, ``refused``, ``first``: the module docstring); the model follows the order the claim
        gave, and :meth:`check` then compares it with the committed output."""
        assert self.staged[flow] - self.read[flow], "the run must commit (a run that reads nothing claims nothing)"
        if mode == "first":
            self._run_refused_by_admin(flow, action)
        else:
            self._admin_at_publish(flow, action, mode)

    def _admin_at_publish(self, flow: str, action: str, mode: str) -> None:
        real_publish = core_output_run.publish
        seen: list[str] = []

        def publish(*args: Any, **kwargs: Any) -> Any:
            run_id = args[1].run_id  # publish(target, attempt, ...): the run holds the claim now
            seen.append(run_id)
            if mode == "refused":
                with patched(bookmark_admin, "CLAIM_WAIT_S", 0.3):
                    admin = self._admin_job(flow, action, False)
                message = failure_message(admin)
                assert not admin.success, self.log
                assert "\n" not in message and run_id in message and "nothing was changed" in message, message
            else:
                self._start_waiting_admin(flow, action)
            return real_publish(*args, **kwargs)

        with patched(core_output_run, "publish", publish):
            result = self._output(flow)
        assert result.success and len(seen) == 1, (failure_message(result), self.log)
        delivered = self._deliver(flow)
        if mode == "waits":
            child = self.children[-1]
            out, _ = child.communicate(timeout=CHILD_TIMEOUT_S)
            assert child.returncode == 0, (out.decode()[-3000:], self.log)
            self._apply(flow, action)  # it waited for the run's commit, then landed after it
        self.log.append(f"{flow}: {action} during an output run ({mode}), the run delivered {delivered}")

    def _start_waiting_admin(self, flow: str, action: str) -> None:
        """The admin job in a child process; returns once it has met the run's claim (it then waits)."""
        marker = self.root / f"admin-waiting-{uuid.uuid4().hex[:8]}"
        child = subprocess.Popen(
            [sys.executable, "-c", ADMIN_CHILD, str(self.root), str(self.package), flow, action, str(marker)],
            env={**os.environ, "DAGSTER_HOME": str(self.home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.children.append(child)
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while not marker.exists():
            if child.poll() is not None:  # it never waited: the verdict (and then the test) says what that did
                self.unclaimed.append(f"{flow}: {action} finished during a run's publish without meeting its claim")
                return
            if time.monotonic() > deadline:
                child.kill()
                out, _ = child.communicate(timeout=30)
                raise AssertionError(f"the admin child never met the run's claim: {out.decode()[-3000:]}")
            time.sleep(0.1)

    def _run_refused_by_admin(self, flow: str, action: str) -> None:
        real_record = bookmark_admin.record_admin_action
        runs: list[Any] = []

        def record(*args: Any, **kwargs: Any) -> Any:
            if not runs:  # the action holds the claim and passed the fence: a run planned from that version
                runs.append(self._output(flow))
            return real_record(*args, **kwargs)

        with patched(bookmark_admin, "record_admin_action", record):
            self.admin(flow, action)
        [run] = runs
        message = failure_message(run)
        assert not run.success, (f"an output run committed while a {action} held the claim", self.log)
        assert f"bookmark {action}" in message and "nothing was committed" in message, message
        self.log.append(f"{flow}: an output run during {action} was refused")

    # --- the verdict --------------------------------------------------------------------------------

    def committed_objects(self, flow: str, role: str) -> list[ObjectInfo]:
        """The data parts of a location some commit in the event log lists (what glueflow's readers see);
        not the protocol's own objects (claims, intents, manifests), which garbage collection may remove."""
        key = staging_key(flow) if role == "staging" else output_key(flow)
        is_committed = committed_parts(self.instance, key).is_committed
        return [
            obj
            for obj in self.storage(flow, role).list()
            if RESERVED_DIR not in obj.key.split("/") and not obj.key.startswith("_errors/") and is_committed(obj)
        ]

    def output_ids(self, flow: str) -> Counter[int]:
        storage = self.storage(flow, "output")
        counts: Counter[int] = Counter()
        for obj in self.committed_objects(flow, "output"):
            counts.update(json.loads(line)["event_id"] for line in storage.read_bytes(obj.key).splitlines() if line)
        return counts

    def check(self) -> None:
        now: set[tuple[str, str]] = set()
        for flow in FLOWS:
            assert self.output_ids(flow) == self.delivered[flow], (flow, self.log)
            for role in ("staging", "output"):
                now |= {(f"{flow}/{role}", obj.key) for obj in self.committed_objects(flow, role)}
        assert self.committed <= now, sorted(self.committed - now)  # nothing committed is ever deleted
        self.committed |= now


ACTIONS = ("reset", "set-to-current")
MOVES = st.one_of(
    st.tuples(st.sampled_from(["add", "input", "output", *ACTIONS]), st.sampled_from(FLOWS), st.just("")),
    st.tuples(
        st.sampled_from([f"{action}-during" for action in ACTIONS]),
        st.sampled_from(FLOWS),
        st.sampled_from(["waits", "refused", "first"]),
    ),
)


def play(flows: Flows, move: str, flow: str, mode: str) -> None:
    if move == "add":
        flows.add(flow, 15)
    elif move == "input":
        flows.input_run(flow)
    elif move == "output":
        flows.output_run(flow)
    elif move.endswith("-during"):
        flows.add(flow, 15)
        flows.input_run(flow)
        flows.admin_during_output(flow, move.removesuffix("-during"), mode)
    else:
        flows.admin(flow, move)


@pytest.fixture
def started() -> float:
    """When the test began (function-scoped: once for all of hypothesis's examples)."""
    return time.monotonic()


@pytest.mark.slow
@settings(
    max_examples=3,
    deadline=None,
    # Not shrunk: each step runs Dagster jobs; a failure prints the moves (the log in every assertion).
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(moves=st.lists(MOVES, min_size=4, max_size=7))
# First, always: each order of an admin action during a run, on both flows, with actions between runs.
@example(
    moves=[
        ("add", "orders", ""),
        ("reset-during", "orders", "waits"),
        ("set-to-current", "refunds", ""),
        ("set-to-current-during", "refunds", "first"),
        ("output", "orders", ""),
        ("set-to-current-during", "orders", "refused"),
        ("reset", "refunds", ""),
    ]
)
def test_property_two_instances_exactly_once_with_admin_actions_between_and_during_runs(
    monkeypatch: pytest.MonkeyPatch, started: float, moves: list[tuple[str, str, str]]
) -> None:
    assume(time.monotonic() - started < BUDGET_S)  # the wall budget: later examples are not run
    with tempfile.TemporaryDirectory(prefix="glueflow-two-") as tmp:
        monkeypatch.setenv("DAGSTER_HOME", str(Path(tmp) / "dagster_home"))
        monkeypatch.delenv("GLUEFLOW_CONFIG", raising=False)
        flows = Flows(Path(tmp))
        try:
            for flow in FLOWS:  # both flows with data in staging and output before the drawn moves
                flows.add(flow, 20)
                flows.input_run(flow)
                flows.output_run(flow)
            for move, flow, mode in moves:
                play(flows, move, flow, mode)
                flows.check()
                assert not flows.unclaimed, (flows.unclaimed, flows.log)
            for flow in FLOWS:  # quiescence: every staged record delivered at least once unless skipped
                flows.input_run(flow)
                flows.output_run(flow)
                flows.check()
                assert set(flows.delivered[flow]) <= flows.staged[flow]
        finally:
            flows.close()

"""Exactly-once with two flows in two component instances of one code location, and bookmark admin actions
between and during runs (issue 22, done-when).

A dg project whose defs folder holds two ``defs.yaml`` instances of ``glueflow_dagster.GlueFlows``, one flow
each (``orders``, ``refunds``), loaded the way the code location loads them (``dg.load_from_defs_folder``)
into one set of definitions on one Dagster instance. Hypothesis draws a sequence of moves on either flow:
new raw objects, Input runs, Output runs, ``reset`` and ``set-to-current`` from ``F_bookmark_admin_job``
(the UI's controls), and an admin action started while an Output run of the same flow runs.

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
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glueflow_dagster.components.commit_log import committed_parts
from glueflow_dagster.components.jobs import output_key, staging_key
from glueflow_dagster.core.storage import RESERVED_DIR, LocalStorage
from glueflow_dagster_tests.support.flow_driver import PACKAGED_DAGSTER_YAML

FLOWS = ("orders", "refunds")
MAPPINGS = {
    "input": [["id", "long", "event_id", "long"]],
    "output": [["event_id", "long", "event_id", "long"]],
}


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


class Flows:
    """The two flows on one instance, and the model of what each must deliver."""

    def __init__(self, root: Path) -> None:
        import dagster as dg

        self.root = root
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True)
        shutil.copy(PACKAGED_DAGSTER_YAML, self.home / "dagster.yaml")
        module = f"twoflows_{uuid.uuid4().hex[:8]}"
        package = _project(root, module)
        sys.path.insert(0, str(root))
        try:
            self.defs = dg.load_from_defs_folder(path_within_project=package)
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

    def storage(self, flow: str, role: str) -> LocalStorage:
        return LocalStorage(self.root / "data" / flow / role)

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

    def output_run(self, flow: str) -> None:
        preview = self.admin(flow, "show", dry_run=True)
        result = self._output(flow)
        assert result.success, self.log
        unread = self.staged[flow] - self.read[flow]
        self.delivered[flow].update(unread)
        self.read[flow] = set(self.staged[flow])
        self.log.append(f"{flow}: output run, {len(unread)} records")
        assert preview == unread, (sorted(preview ^ unread), self.log)  # the dry run listed what it read

    def admin(self, flow: str, action: str, *, dry_run: bool = False) -> set[int]:
        """``F_bookmark_admin_job`` as the launchpad runs it; the records in the staging parts its report
        says the next Output run reads."""
        config = {"action": action, "dry_run": dry_run}
        result = self.defs.resolve_job_def(f"{flow}_bookmark_admin_job").execute_in_process(
            instance=self.instance,
            raise_on_error=False,
            run_config={"ops": {f"{flow}_bookmark_admin": {"config": config}}},
        )
        assert result.success, self.log
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

    def admin_during_output(self, flow: str, action: str, delay: float) -> None:
        """An admin action started while an Output run of the same flow runs (the claim orders them)."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            outcome["result"] = self._output(flow)

        worker = threading.Thread(target=run)
        before_read, unread = set(self.read[flow]), self.staged[flow] - self.read[flow]
        worker.start()
        time.sleep(delay)
        config = {"action": action, "dry_run": False}
        admin = self.defs.resolve_job_def(f"{flow}_bookmark_admin_job").execute_in_process(
            instance=self.instance,
            raise_on_error=False,
            run_config={"ops": {f"{flow}_bookmark_admin": {"config": config}}},
        )
        worker.join(timeout=300)
        assert not worker.is_alive()
        run_ok = outcome["result"].success
        # Which order the claim gave is read off the output; the model must match one of them exactly.
        actual = self.output_ids(flow)
        candidates = []
        for admin_first in (True, False):
            read, delivered = set(before_read), Counter(self.delivered[flow])
            steps = (["admin"] if admin.success else []) + (["run"] if run_ok else [])
            for step in steps if admin_first else reversed(steps):
                if step == "run":
                    delivered.update(self.staged[flow] - read)
                    read = set(self.staged[flow])
                elif action == "reset":
                    read = set()
                else:
                    read = set(self.staged[flow])
            candidates.append((read, delivered))
        matching = [c for c in candidates if c[1] == actual]
        assert matching, (action, admin.success, run_ok, len(unread), self.log)
        self.read[flow], self.delivered[flow] = matching[0]
        self.log.append(f"{flow}: {action} during an output run (admin ok={admin.success}, run ok={run_ok})")

    # --- the verdict --------------------------------------------------------------------------------

    def output_ids(self, flow: str) -> Counter[int]:
        storage = self.storage(flow, "output")
        is_committed = committed_parts(self.instance, output_key(flow)).is_committed
        counts: Counter[int] = Counter()
        for obj in storage.list():
            if RESERVED_DIR in obj.key.split("/") or obj.key.startswith("_errors/") or not is_committed(obj):
                continue
            counts.update(json.loads(line)["event_id"] for line in storage.read_bytes(obj.key).splitlines() if line)
        return counts

    def check(self) -> None:
        now: set[tuple[str, str]] = set()
        for flow in FLOWS:
            assert self.output_ids(flow) == self.delivered[flow], (flow, self.log)
            for role, key in (("staging", staging_key(flow)), ("output", output_key(flow))):
                is_committed = committed_parts(self.instance, key).is_committed
                now |= {(f"{flow}/{role}", o.key) for o in self.storage(flow, role).list() if is_committed(o)}
        assert self.committed <= now, sorted(self.committed - now)  # nothing committed is ever deleted
        self.committed = now


MOVES = st.tuples(
    st.sampled_from(["add", "input", "output", "reset", "set-to-current", "reset-during", "set-to-current-during"]),
    st.sampled_from(FLOWS),
    st.floats(0.0, 2.0),
)


@pytest.mark.slow
@pytest.mark.skip(
    reason="unfinished (issue 22): its first run hung; the admin-during-run move (a thread) is suspect"
)
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(moves=st.lists(MOVES, min_size=6, max_size=10))
def test_property_two_instances_exactly_once_with_admin_actions_between_and_during_runs(
    monkeypatch: pytest.MonkeyPatch, moves: list[tuple[str, str, float]]
) -> None:
    with tempfile.TemporaryDirectory(prefix="glueflow-two-") as tmp:
        monkeypatch.setenv("DAGSTER_HOME", str(Path(tmp) / "dagster_home"))
        monkeypatch.delenv("GLUEFLOW_CONFIG", raising=False)
        flows = Flows(Path(tmp))
        try:
            for flow in FLOWS:  # both flows with data in staging and output before the drawn moves
                flows.add(flow, 20)
                flows.input_run(flow)
                flows.output_run(flow)
            for move, flow, delay in moves:
                if move == "add":
                    flows.add(flow, 15)
                elif move == "input":
                    flows.input_run(flow)
                elif move == "output":
                    flows.output_run(flow)
                elif move.endswith("-during"):
                    flows.add(flow, 15)
                    flows.input_run(flow)
                    flows.admin_during_output(flow, move.removesuffix("-during"), delay)
                else:
                    flows.admin(flow, move)
                flows.check()
            for flow in FLOWS:  # quiescence: every staged record delivered at least once unless skipped
                flows.input_run(flow)
                flows.output_run(flow)
                flows.check()
                assert set(flows.delivered[flow]) <= flows.staged[flow]
        finally:
            flows.instance.dispose()

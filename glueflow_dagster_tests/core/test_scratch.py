"""Scratch folders: a killed worker's folder is removed by the next stage; nothing else is touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from glueflow_dagster.core import scratch
from glueflow_dagster.core.scratch import scratch_folder, sweep_dead
from glueflow_dagster.core.stage import run_stage
from glueflow_dagster.core.storage import LocalStorage

# A process that makes a scratch folder, writes into it and is SIGKILLed inside the block (no cleanup runs).
_KILLED_WORKER = """
import os, signal, sys
from glueflow_dagster.core.scratch import scratch_folder
with scratch_folder("stage") as folder:
    (folder / "parts").mkdir()
    (folder / "parts" / "part-00000.json").write_bytes(b'{"a": 1}\\n' * 1000)
    print(folder, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _folder(parent: Path, name: str) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "part-00000.json").write_text("{}\n")
    return folder


def test_only_the_folders_of_gone_processes_of_this_host_are_removed(tmp_path: Path) -> None:
    dead, host, live = _dead_pid(), scratch._host_tag(), os.getpid()
    outside = tmp_path / "source.json"
    outside.write_text('{"kept": true}\n')
    gone = _folder(tmp_path, f"glueflow-stage-{dead}-{host}-a1b2c3")
    (gone / "copy.json").symlink_to(outside)  # a local copy linked to its source: the source stays
    gone_spark = _folder(tmp_path, f"glueflow-spark-{dead}-{host}-d4e5f6")
    gone_parts = _folder(tmp_path, f"glueflow-parts-{dead}-{host}-n4o5")
    kept = [
        _folder(tmp_path, f"glueflow-stage-{live}-{host}-g7h8i9"),  # a living process
        _folder(tmp_path, f"glueflow-stage-{dead}-{'0' * 8 if host != '0' * 8 else '1' * 8}-j0k1"),  # another host
        _folder(tmp_path, f"glueflow-simulate-{dead}-{host}-l2m3"),  # not a kind of scratch folder
        _folder(tmp_path, "glueflow-stage-x7q2"),  # an older version's name: no process in it
    ]
    logs: list[str] = []

    removed = sweep_dead(tmp_path, log=logs.append)

    assert sorted(removed) == sorted([gone, gone_spark, gone_parts])
    assert not any(folder.exists() for folder in removed)
    assert all(folder.exists() for folder in kept)
    assert outside.read_text() == '{"kept": true}\n'
    assert len(logs) == 3 and all(f"process {dead} (gone)" in line for line in logs), logs


def test_a_killed_workers_folder_is_left_and_the_next_stage_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    worker = subprocess.run(
        [sys.executable, "-c", _KILLED_WORKER], env={**os.environ, "TMPDIR": str(temp)}, capture_output=True, text=True
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr
    left = Path(worker.stdout.strip())
    assert left.parent == temp and (left / "parts" / "part-00000.json").exists()

    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    info = source.write_bytes("a.json", b"".join(json.dumps({"id": i}).encode() + b"\n" for i in range(10)))
    logs: list[str] = []
    mappings = [["id", "long", "id", "long"]]
    result = run_stage(source, [info], mappings, target, name_prefix="run-s", compression="none", log=logs.append)

    assert result.records_written == 10
    assert not left.exists()
    assert any(str(left) in line and "gone" in line for line in logs), logs
    assert list(temp.iterdir()) == []  # the stage's own folder went with it


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scratch folder kind 'other'"), scratch_folder("other"):
        pass

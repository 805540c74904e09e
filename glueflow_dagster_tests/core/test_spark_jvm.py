"""The local launcher's class archive (``glueflow_dagster.spark.jvm``): written by the first stage's JVM as
it exits, mapped by the next ones; and a stage that starts its JVM ends it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glueflow_dagster.spark import jvm

pytest.importorskip("pyspark")
if jvm._java() is None:
    pytest.skip("no java on PATH", allow_module_level=True)


def test_the_archive_is_written_under_its_own_name_then_moved_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(jvm.ENV, str(tmp_path / "classes"))
    archive = jvm.archive_path()
    assert archive is not None and archive.parent == tmp_path / "classes" and archive.suffix == ".jsa"
    options, pending = jvm.java_options(archive)
    assert pending is not None and pending.parent == archive.parent and pending != archive
    assert f"-XX:ArchiveClassesAtExit={pending}" in options and jvm.QUIET in options
    assert jvm.keep_archive(pending, archive) is False  # the JVM wrote nothing: nothing moved, nothing left
    pending.write_bytes(b"archive")
    assert jvm.keep_archive(pending, archive) is True and archive.read_bytes() == b"archive"
    assert not pending.exists()
    options, pending = jvm.java_options(archive)
    assert options.startswith(f"-XX:SharedArchiveFile={archive} -Xshare:auto") and pending is None


def test_a_half_written_archive_a_day_old_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(jvm.ENV, str(tmp_path))
    archive = jvm.archive_path()
    assert archive is not None
    old, recent = tmp_path / f"{archive.name}.1.tmp", tmp_path / f"{archive.name}.2.tmp"
    old.write_bytes(b"x")
    recent.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 86_400,) * 2)
    jvm.java_options(archive)
    assert not old.exists() and recent.exists()


def test_the_archive_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(jvm.ENV, "off")
    assert jvm.archive_path() is None and jvm.java_options(None) == ("", None)
    monkeypatch.setenv(jvm.ENV, str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a folder")
    archive = jvm.archive_path()
    assert jvm.java_options(archive) == ("", None)  # a folder that cannot be made: no archive, the stage runs


_STAGE = """
import json, sys
from glueflow_dagster.spark.stage_script import run
figures = run(json.loads(sys.argv[1]), lambda _message: None)
print(json.dumps({"records": figures["records_written"], "jobs": figures["spark_jobs"]}))
"""


@pytest.mark.spark
@pytest.mark.slow
def test_a_stage_writes_the_archive_the_next_one_maps_and_each_ends_its_jvm(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.json").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(50)))
    classes = tmp_path / "classes"
    env = {**os.environ, jvm.ENV: str(classes), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for attempt in (1, 2):
        extras = {
            "manifest": [{"key": "a.json", "size": (source / "a.json").stat().st_size, "last_modified_ms": 0}],
            "mappings": [["id", "long", "id", "long"]],
            "source": str(source),
            "target": str(tmp_path / f"out{attempt}"),
            "compression": "none",
            "part_prefix": f"run-a-attempt-{attempt}",
            "quarantine_prefix": f"_errors/a{attempt}",
            "max_error_records": 0,
            "target_file_bytes": 1 << 20,
            "master": "local[1]",
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", _STAGE, json.dumps(extras)], env=env, stdout=subprocess.PIPE, text=True
        )
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        assert json.loads(out.strip().splitlines()[-1]) == {"records": 50, "jobs": 2}
        # The stage ended its JVM before it returned: no process of it is left (the JVM's command line names
        # the attempt, spark.app.name).
        assert not _processes_naming(f"run-a-attempt-{attempt}")
        archives = sorted(p.name for p in classes.iterdir())
        assert len(archives) == 1 and archives[0].endswith(".jsa")  # written once, under its final name
        if attempt == 1:
            first = (classes / archives[0]).stat().st_mtime_ns
    assert (classes / archives[0]).stat().st_mtime_ns == first  # the second stage mapped it, wrote none


def _processes_naming(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found

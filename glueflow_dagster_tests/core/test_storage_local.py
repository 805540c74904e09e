"""Tests of glueflow_dagster.core.storage's local folder: atomic writes, symlinks, and a stage over a local input."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from glueflow_dagster.core.storage import (
    DANGLING_LINK,
    OUTSIDE_LINK,
    TMP_PREFIX,
    LocalStorage,
    RefusedObject,
    StorageError,
)
from glueflow_dagster.core.storage import local as local_module
from glueflow_dagster_tests.support.listings import keys_of

# --------------------------------------------------------------------------------------------------
# Local atomic writes


def local_leftovers(store: LocalStorage) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.name.startswith(TMP_PREFIX)]


def test_local_write_goes_through_temp_and_replace(
    local_storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    replaced: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        replaced.append((Path(src), Path(dst)))
        assert Path(src).read_bytes() == b"complete"  # fully written (and fsynced) before the swap
        real_replace(src, dst)

    monkeypatch.setattr(local_module.os, "replace", spy)
    local_storage.write_bytes("dir/out.json", b"complete")
    [(src, dst)] = replaced
    assert src.name.startswith(TMP_PREFIX)
    assert src.parent == dst.parent == local_storage.root / "dir"  # same folder: rename is atomic
    assert dst == local_storage.root / "dir" / "out.json"
    assert local_leftovers(local_storage) == []


@pytest.mark.parametrize("existing", [None, b"old content"])
def test_local_failed_upload_leaves_no_trace(
    local_storage: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bytes | None
) -> None:
    if existing is not None:
        local_storage.write_bytes("out.bin", existing)
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 100_000)

    def half_then_fail(fsrc: Any, fdst: Any, length: int = 0) -> None:
        fdst.write(fsrc.read(50_000))
        raise OSError(5, "Input/output error")  # e.g. the source disk failing mid-copy

    monkeypatch.setattr(local_module.shutil, "copyfileobj", half_then_fail)
    with pytest.raises(StorageError, match="out.bin: Input/output error"):
        local_storage.upload_file(src, "out.bin")
    monkeypatch.undo()

    assert local_leftovers(local_storage) == []
    if existing is None:
        assert keys_of(local_storage.list()) == []
    else:
        assert local_storage.read_bytes("out.bin") == existing  # old object untouched


def test_local_failed_fsync_leaves_no_trace(local_storage: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local_module.os, "fsync", failing_fsync)
    with pytest.raises(StorageError, match="No space left"):
        local_storage.write_bytes("a/out.json", b"data")
    monkeypatch.undo()
    assert local_leftovers(local_storage) == []
    assert not (local_storage.root / "a" / "out.json").exists()


def test_local_interrupted_write_leaves_no_trace(local_storage: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not only OSError: a KeyboardInterrupt mid-write must clean up too, and propagate unchanged.
    def interrupted(tmp: Path, target: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalStorage, "_bump_mtime", staticmethod(interrupted))
    with pytest.raises(KeyboardInterrupt):
        local_storage.write_bytes("out.json", b"data")
    assert local_leftovers(local_storage) == []
    assert not (local_storage.root / "out.json").exists()


def test_local_readers_never_see_partial_content(local_storage: LocalStorage) -> None:
    size = 512 * 1024
    versions = [b"A" * size, b"B" * size]
    local_storage.write_bytes("hot.bin", versions[0])
    path = local_storage.root / "hot.bin"
    stop = threading.Event()
    seen: set[bytes] = set()
    bad: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            data = path.read_bytes()
            if data not in versions:
                bad.append(len(data))
            seen.add(data[:1])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(60):
            local_storage.write_bytes("hot.bin", versions[i % 2])
    finally:
        stop.set()
        thread.join()
    assert bad == []
    assert seen  # the reader did run


def test_local_begin_upload_move_renames_the_file_without_copying(
    local_storage: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stage's parts: a pending object made by a rename, not a copy of its bytes (108 MB of JSON parts
    # cost 0.04-0.24 CPU s to copy). It stays invisible until the commit, like a copied one.
    part = tmp_path / "part-00000.json"
    part.write_bytes(b'{"a":1}\n' * 1000)
    inode = part.stat().st_ino
    hour_ago = time.time() - 3600
    os.utime(part, (hour_ago, hour_ago))  # a part written long before its upload (a long query)
    before_ms = int(time.time() * 1000) - 1000

    def no_copy(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("copied")

    monkeypatch.setattr(local_module.shutil, "copyfileobj", no_copy)
    pending = local_storage.begin_upload(part, "day=1/run-1-attempt-1-part-r-00000.json", move=True)
    monkeypatch.undo()
    assert not part.exists()  # given up by the caller
    staged = local_storage.root / pending.token
    assert staged.stat().st_ino == inode and staged.stat().st_nlink == 1  # the same file, one name
    assert pending.size == 8000
    assert [k for k in keys_of(local_storage.list()) if not k.startswith("_glueflow/")] == []  # pending: unseen
    [upload] = local_storage.pending_uploads()
    assert upload.key == "day=1/run-1-attempt-1-part-r-00000.json"
    assert upload.started_ms >= before_ms  # the upload's time, not the part's: no GC takes it for abandoned
    info = local_storage.complete_upload(pending)
    assert local_storage.read_bytes(info.key) == b'{"a":1}\n' * 1000
    assert keys_of(local_storage.list()) == ["day=1/run-1-attempt-1-part-r-00000.json"]  # pending folder gone
    assert list(local_storage.pending_uploads()) == []


def test_local_begin_upload_move_copies_across_file_systems(local_storage: LocalStorage) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no /dev/shm here: no second file system to move from")
    local_storage.write_bytes("marker", b"x")
    part = shm / f"glueflow-test-{uuid.uuid4().hex}.json"
    part.write_bytes(b"across\n")
    try:
        if part.stat().st_dev == local_storage.root.stat().st_dev:
            pytest.skip("/dev/shm shares the store's file system here")
        pending = local_storage.begin_upload(part, "p.json", move=True)  # EXDEV: copied, then removed
        assert not part.exists()
        assert local_storage.read_bytes(local_storage.complete_upload(pending).key) == b"across\n"
    finally:
        part.unlink(missing_ok=True)


def test_local_begin_upload_copies_by_default(local_storage: LocalStorage, tmp_path: Path) -> None:
    # The Spark tasks write every part to one local path and upload it after each: the pending object
    # must be a copy, never a second name of that file (rewriting it would change the pending part).
    part = tmp_path / "part.json"
    part.write_bytes(b"first\n")
    pending = local_storage.begin_upload(part, "a.json")
    with open(part, "wb") as rewritten:  # truncated in place, as open(..., "wb") does
        rewritten.write(b"second\n")
    assert local_storage.read_bytes(local_storage.complete_upload(pending).key) == b"first\n"


def test_local_list_hides_in_progress_temp_files(local_storage: LocalStorage) -> None:
    local_storage.write_bytes("d/real.json", b"x")
    (local_storage.root / "d" / f"{TMP_PREFIX}{uuid.uuid4().hex}").write_bytes(b"half")
    (local_storage.root / f"{TMP_PREFIX}{uuid.uuid4().hex}").write_bytes(b"half")
    assert keys_of(local_storage.list()) == ["d/real.json"]
    assert local_storage.delete_prefix("d") == 1  # another writer's temp file is not ours to delete


# --------------------------------------------------------------------------------------------------
# Local symlinks and errors


def test_local_does_not_follow_symlinked_folders(local_storage: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_bytes(b"x")
    local_storage.write_bytes("in.json", b"x")
    (local_storage.root / "link").symlink_to(outside, target_is_directory=True)
    assert keys_of(local_storage.list()) == ["in.json"]
    assert local_storage.refused == [RefusedObject("link", OUTSIDE_LINK)]  # reported, not silently skipped


def test_local_never_reads_a_symlink_out_of_its_root(
    local_storage: LocalStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside.json"
    outside.write_bytes(b'{"secret": 1}\n')
    local_storage.write_bytes("a/in.json", b"x")
    (local_storage.root / "a" / "abs.json").symlink_to(outside)
    (local_storage.root / "a" / "rel.json").symlink_to(Path("..") / ".." / "outside.json")
    with caplog.at_level("WARNING", logger="glueflow_dagster.core.storage"):
        assert keys_of(local_storage.list()) == ["a/in.json"]
    assert local_storage.refused == [
        RefusedObject("a/abs.json", OUTSIDE_LINK),
        RefusedObject("a/rel.json", OUTSIDE_LINK),
    ]
    assert f"{local_storage.root / 'a' / 'abs.json'}: symlink points outside the location; not read" in caplog.text
    # Reading it by key (a manifest planned elsewhere, a caller's own key) is refused in one line too.
    for read in (
        local_storage.read_bytes,
        local_storage.open_read,
        local_storage.stat,
        lambda key: local_storage.local_copy(key).__enter__(),
    ):
        with pytest.raises(StorageError) as raised:
            read("a/abs.json")
        assert str(raised.value) == f"{local_storage.root / 'a' / 'abs.json'}: symlink points outside the location"
    # An exclusion glob skips it without a report (the operator chose to).
    assert keys_of(local_storage.list(exclusions=["**/abs.json", "**/rel.json"])) == ["a/in.json"]
    assert local_storage.refused == []


def test_local_symlinks_inside_the_root_keep_working(tmp_path: Path) -> None:
    real_root = tmp_path / "real"
    real_root.mkdir()
    store = LocalStorage(tmp_path / "alias")  # the root itself is a symlink: its inside is the target's
    (tmp_path / "alias").symlink_to(real_root, target_is_directory=True)
    store.write_bytes("data/x.json", b"x")
    (real_root / "latest.json").symlink_to(real_root / "data" / "x.json")
    (real_root / "same").symlink_to(real_root / "data", target_is_directory=True)  # listed where it is
    (real_root / "gone.json").symlink_to(real_root / "nothing.json")
    assert keys_of(store.list()) == ["data/x.json", "latest.json"]
    assert store.read_bytes("latest.json") == b"x"
    with store.local_copy("latest.json") as path:
        assert path.read_bytes() == b"x"
    assert store.refused == [RefusedObject("gone.json", DANGLING_LINK)]


def test_local_errors_are_clear(local_storage: LocalStorage) -> None:
    local_storage.write_bytes("folder/x.json", b"x")
    with pytest.raises(StorageError, match="is a folder"):
        local_storage.read_bytes("folder")
    with pytest.raises(StorageError, match="is a folder"):
        local_storage.stat("folder")
    with pytest.raises(StorageError, match="folder/x.json/y: a parent of the path is a file"):
        local_storage.write_bytes("folder/x.json/y", b"x")
    root_file = local_storage.root.parent / "plainfile"
    root_file.write_bytes(b"x")
    with pytest.raises(StorageError, match="not a folder"):
        LocalStorage(root_file).list()


# --------------------------------------------------------------------------------------------------
# A stage over a local input


def test_a_stage_over_a_local_input_never_reads_a_symlink_out_of_it(tmp_path: Path) -> None:
    from glueflow_dagster.core.quarantine import list_stage_inputs
    from glueflow_dagster.core.stage import run_stage

    secret = tmp_path / "elsewhere" / "secret.json"
    secret.parent.mkdir()
    secret.write_bytes(b'{"id": 666}\n')
    source = LocalStorage(tmp_path / "input")
    source.write_bytes("a.json", b'{"id": 1}\n{"id": 2}\n')
    (source.root / "b.json").symlink_to(secret)
    (source.root / "more").symlink_to(secret.parent, target_is_directory=True)
    objects = list(list_stage_inputs(source, recurse=True, exclusions=()))
    assert keys_of(objects) == ["a.json"]
    assert [refused.key for refused in source.refused] == ["b.json", "more"]
    target = LocalStorage(tmp_path / "staging")
    result = run_stage(source, objects, [["id", "long", "id", "long"]], target, name_prefix="run-1", compression="none")
    assert (result.records_read, result.records_written, result.error_files) == (2, 2, 0)
    written = b"".join(target.read_bytes(info.key) for info in result.written)
    assert b"666" not in written

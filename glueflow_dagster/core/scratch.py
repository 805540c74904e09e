"""Scratch folders: where a stage keeps its local copies and parts until they are uploaded.

A stage's scratch folder lives in the system's temporary folder and is removed when the stage ends. A
worker killed outright (SIGKILL, the kernel's OOM killer, a lost pod) cannot remove it, and a host that
runs a flow every 30 minutes would collect one such folder per killed run. So every scratch folder is named
after its process (``glueflow-stage-<pid>-<host>-<random>``: ``<host>`` is a short hash of the host name and
the process-id namespace), and :func:`scratch_folder` first removes the folders of processes of this host
that are gone.

What a scratch folder holds is never data: a part becomes data only once its pending object is in the
store and a commit lists it (the local store hard-links a part to its pending name and drops the scratch
name; removing a scratch name never removes the store's). Local copies of inputs are copies or symlinks
(``shutil.rmtree`` removes a link, never what it points to). A folder is removed only when its process is
gone: a process id taken again by a living process keeps the folder until that one is gone too; the
folders of other hosts and containers sharing the temporary folder (a shared volume) carry another tag
and are kept.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["SCRATCH_KINDS", "new_scratch_folder", "scratch_folder", "sweep_dead"]

#: The kinds of scratch folder: the polars stage's, the Spark stage driver's and a Spark task's parts.
SCRATCH_KINDS = ("stage", "spark", "parts")
_NAME = re.compile(r"^glueflow-(?P<kind>[a-z]+)-(?P<pid>[0-9]+)-(?P<host>[0-9a-f]{8})-")


@functools.cache  # fixed for the process: read once, not on every sweep and every new folder
def _host_tag() -> str:
    """A short hash of the host name and the process-id namespace: a process id means the same process only
    within one namespace (containers sharing a temporary folder have their own)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]" (Linux)
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode()).hexdigest()[:8]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def sweep_dead(parent: Path | None = None, log: Callable[[str], None] = lambda _: None) -> list[Path]:
    """Remove the scratch folders in ``parent`` (default: the system's temporary folder) whose process, on
    this host, is gone; returns them. A folder that cannot be removed (another user's) is left and logged."""
    parent = Path(parent or tempfile.gettempdir())
    host = _host_tag()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None or match["kind"] not in SCRATCH_KINDS or match["host"] != host:
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or _alive(pid) or not entry.is_dir(follow_symlinks=False):
            continue
        folder = Path(entry.path)
        size = _size(folder)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            continue  # another stage swept it first
        except OSError as err:
            log(f"{folder}: a scratch folder left by process {pid} (gone), not removed: {err.strerror}")
            continue
        log(f"removed {folder}: a scratch folder left by process {pid} (gone), {size:,} bytes")
        removed.append(folder)
    return removed


def new_scratch_folder(kind: str, log: Callable[[str], None] = lambda _: None) -> Path:
    """A new scratch folder of ``kind`` (one of SCRATCH_KINDS) in the system's temporary folder, for the caller
    to remove; first, the folders that processes of this host left when they died are removed."""
    if kind not in SCRATCH_KINDS:
        raise ValueError(f"unknown scratch folder kind {kind!r} (choose from {', '.join(SCRATCH_KINDS)})")
    sweep_dead(log=log)
    return Path(tempfile.mkdtemp(prefix=f"glueflow-{kind}-{os.getpid()}-{_host_tag()}-"))


@contextmanager
def scratch_folder(kind: str, log: Callable[[str], None] = lambda _: None) -> Iterator[Path]:
    """:func:`new_scratch_folder`, removed when the block ends."""
    folder = new_scratch_folder(kind, log)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)

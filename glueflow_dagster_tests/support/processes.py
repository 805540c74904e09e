"""Processes read from /proc (Linux; nothing elsewhere): the process table, descendants, survivors of a kill."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, from /proc (Linux; empty elsewhere)."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]  # the name may hold spaces and parentheses
        table[int(entry.name)] = (int(ppid), state)
    return table


def descendants(pid: int) -> set[int]:
    """The living processes below ``pid`` (children, grandchildren, ...): a run worker's Spark stage script,
    ``timeout`` and the JVM."""
    table = process_table()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, (ppid, state) in table.items() if ppid in frontier and state != "Z"} - found
        found |= frontier
    return found


def is_java(pid: int) -> bool:
    """Whether ``pid`` runs a ``java`` executable (False if it is gone)."""
    try:
        return Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()).name == "java"
    except OSError:
        return False


def outliving(pids: set[int], wait_s: float) -> list[str]:
    """The processes of ``pids`` still alive (not zombies) after up to ``wait_s`` seconds, with their command."""
    deadline = time.monotonic() + wait_s
    while True:
        table = process_table()
        alive = sorted(p for p in pids if p in table and table[p][1] != "Z")
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    commands: list[str] = []
    for pid in alive:
        with contextlib.suppress(OSError):
            commands.append(f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
    return commands

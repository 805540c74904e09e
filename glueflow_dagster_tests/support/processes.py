"""Processes read from /proc (Linux; nothing elsewhere): the process table, descendants, command lines,
processes marked by an environment variable, survivors of a kill."""

from __future__ import annotations

import time
from collections.abc import Iterable
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


def alive(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` still living (zombies are not), in order."""
    table = process_table()
    return sorted(p for p in pids if p in table and table[p][1] != "Z")


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


def command_line(pid: int) -> str:
    """``pid``'s command line, its arguments joined by spaces ("" if it is gone or not ours to read)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").rstrip()
    except OSError:
        return ""


def describe(pids: list[int], width: int = 100) -> str:
    """``pid <- parent: command`` for each of ``pids`` still there, the command cut at ``width``: for messages."""
    table = process_table()
    return "; ".join(f"{pid} <- {table[pid][0]}: {command_line(pid)[:width]}" for pid in pids if pid in table)


def marked(name: str, value: str) -> list[int]:
    """The living processes whose environment holds ``name=value``: everything a test started with that
    mark, children that escaped its process group included."""
    needle = f"{name}={value}".encode()
    found = []
    for pid, (_ppid, state) in process_table().items():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(pid)
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
        living = alive(pids)
        if not living or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return [f"{pid}: {command_line(pid)[:200]}" for pid in living if Path(f"/proc/{pid}").exists()]

"""Benchmark engines run in child processes: the environment they get, their figures, their peak RSS.

Each engine runs in a fresh process so that its peak resident set (``wait4``'s ``ru_maxrss``, which Linux
reports in KiB) is its own and no engine warms another's caches. A child prints its figures as JSON on its
last line of output.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def child_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: ours, ``extra_env``, and this checkout importable."""
    path = os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])
    return {**os.environ, **(extra_env or {}), "PYTHONPATH": path}


def run_child(module: str, args: list[str], *, what: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m module args`` to its end; its last output line as JSON plus ``peak_rss_mb`` (wait4).

    A child that fails ends the benchmark with ``what`` named."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, env=env or child_env())
    assert proc.stdout is not None
    output = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{what} child failed with exit code {code}")
    figures: dict[str, Any] = json.loads(output.decode().strip().splitlines()[-1])
    figures["peak_rss_mb"] = usage.ru_maxrss * 1024 / MB
    return figures


def child_line(module: str, args: list[str], env: dict[str, str] | None = None) -> str:
    """Run ``python -m module args`` to its end; its last line of output (a child that fails ends the benchmark)."""
    done = subprocess.run([sys.executable, "-m", module, *args], env=env or child_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child {module} {args[0]} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip().splitlines()[-1]


def cpu_seconds() -> float:
    """User and system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages, printed with the figures (other load slows every engine)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def machine() -> str:
    """The machine line every benchmark prints first: cores, versions (from a child: this parent imports
    neither polars nor DuckDB), load average."""
    versions = child_line("benchmarks.stage", ["--versions"])
    return f"machine: {os.cpu_count()} cores; {versions}; load average {load_average()}"


@contextmanager
def scratch(folder: Path) -> Iterator[Path]:
    """``folder`` made empty for one child's output, and removed after it (the next run starts clean)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def clear(folder: Path) -> None:
    """Remove everything below ``folder`` (the folder itself stays)."""
    for leftover in sorted(folder.rglob("*"), reverse=True):
        leftover.unlink() if leftover.is_file() or leftover.is_symlink() else leftover.rmdir()

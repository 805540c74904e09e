"""Hostile or broken scripts end in one line and exit 2, in bounded memory and time, never a traceback.

The importer evaluates expressions statically; a script can still ask it to build huge values (`p = p + p`
sixty times is 2**60 characters), recurse past Python's limit (`not` a hundred thousand times, a
1,000-term `+` chain, a list nested in itself ten thousand times), or rebuild a growing list at every
statement. Every case runs through the real command in one child process whose address space is
capped, so a regression fails this test with MemoryError instead of taking the machine's memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import glueflow_dagster
from glueflow_dagster_tests.glue_import.glue_scripts import PLAIN_OUTPUT, SCRIPT_START, SINK, input_script, write

SOURCE_AND_MAPPING = """
frame = glueContext.create_dynamic_frame.from_options(connection_type="s3", connection_options={"paths": ["s3://raw/o"]}, format="json")
"""  # noqa: E501
FILTERS = 'frame = Filter.apply(frame=frame, f=lambda row: row["id"] > 0)\n' * 3000
CHAIN_END = 'mapped = ApplyMapping.apply(frame=frame, mappings=[("id", "long", "id", "long")])\n'

FIRST = SCRIPT_START.count("\n") + 1  # the line of the first statement after SCRIPT_START

# name -> (input script, expected exit code, a fragment of the one line on stderr)
CASES: dict[str, tuple[str, int, str]] = {
    "string doubling": (
        SCRIPT_START + 'p = "s3://bucket/raw/"\n' + "p = p + p\n" * 60,
        2,
        f"line {FIRST + 20}: a string grows past 8,388,608 characters",  # 16 characters * 2**20 > 8 MiB
    ),
    "list doubling": (SCRIPT_START + 'l = ["s3://bucket/raw/"]\n' + "l = l + l\n" * 60, 2, "a list grows past"),
    "many references to one long string": (
        SCRIPT_START
        + 'p = "s3://bucket/raw/"\n'
        + "p = p + p\n" * 16  # 1 MiB
        + "l = ["
        + ", ".join(["p"] * 10)
        + "]\nx = json.dumps(l)\n",
        2,
        "a list or dict grows past",
    ),
    "a list nested in itself": (
        SCRIPT_START + "a = []\n" + "a = [a]\n" * 10_000 + "x = json.dumps(a)\n",
        2,
        "nested over 32 deep",
    ),
    "a list rebuilt at every statement": (
        SCRIPT_START + "l = []\n" + 'l = l + ["x"]\n' * 20_000,
        2,
        "the script's expressions build over 67,108,864 characters and elements in all",
    ),
    "not 100,000 times": (
        SCRIPT_START + "flag = " + "not " * 100_000 + "True\n",
        2,
        "nested too deeply for Python's parser",
    ),
    "not 1,000 times": (SCRIPT_START + "flag = " + "not " * 1000 + "True\n", 2, f"line {FIRST}: nested over 100"),
    "a 1,000-term + chain": (
        SCRIPT_START + "path = " + " + ".join(['"a"'] * 1000) + "\n",
        2,
        f"line {FIRST}: nested over 100 levels",
    ),
    "a null byte": (SCRIPT_START + "x = 1\x00\n", 2, f"line {FIRST}: a null byte"),
    # 3,000 steps each reading the last: every one reported, the chain traced without recursion.
    "a chain of 3,000 steps": (
        input_script(SOURCE_AND_MAPPING) + FILTERS + CHAIN_END + SINK,
        1,
        "3000 construct(s) not converted; nothing written",
    ),
}

DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))
    from glueflow_dagster.cli.main import main
    results = {}
    for name, script in json.loads(sys.argv[1]).items():
        out, err = io.StringIO(), io.StringIO()
        started = time.monotonic()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["import-glue", "--input-script", script, "--output-script", sys.argv[2], "--flow", "x"])
        except BaseException as raised:  # what a user would see: a traceback
            code, err = f"raised {type(raised).__name__}", io.StringIO(err.getvalue() + "Traceback")
        results[name] = {"code": code, "stderr": err.getvalue(), "seconds": time.monotonic() - started}
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so it would report the pytest
    # worker's own peak (700 MB after a full suite) instead of this process's.
    status = open("/proc/self/status").read()
    results["peak_kib"] = int(status.split("VmHWM:")[1].split()[0])
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every case through `glueflow import-glue` in one capped child process (3 GiB of address space)."""
    folder = tmp_path_factory.mktemp("hostile")
    scripts = {name: str(write(folder, f"case{n}.py", case[0])) for n, (name, case) in enumerate(CASES.items())}
    output = write(folder, "output.py", PLAIN_OUTPUT)
    root = str(Path(glueflow_dagster.__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(scripts), str(output)],
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_script_gets_one_line(outcomes: dict[str, Any], name: str) -> None:
    _, code, fragment = CASES[name]
    outcome = outcomes[name]
    assert outcome["code"] == code, outcome
    stderr = outcome["stderr"]
    assert stderr.count("\n") == 1 and "Traceback" not in stderr and len(stderr) < 300, stderr
    assert stderr.startswith("glueflow: ") and fragment in stderr, stderr
    assert outcome["seconds"] < 60, outcome


def test_hostile_scripts_take_bounded_memory(outcomes: dict[str, Any]) -> None:
    # The interpreter with the CLI imported is about 150 MiB; the values stop at 8 MiB each.
    assert outcomes["peak_kib"] < 700 * 1024, outcomes["peak_kib"]

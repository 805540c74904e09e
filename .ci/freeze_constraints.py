"""Write constraints.txt: the exact versions of glueflow_dagster's dependency closure (with the `dev` extra)
as installed in the running interpreter, so CI and a new user install what the suite passed with.

Only the closure is written, not `pip freeze`: a machine's unrelated packages must not constrain anyone.
Run by `.ci/upgrade-constraints` after a green suite; `python .ci/freeze_constraints.py` rewrites the file
from the current environment.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = "glueflow_dagster"
EXTRAS = {"dev"}


def closure(root: str, extras: set[str]) -> dict[str, str]:
    """Canonical name -> installed version for `root[extras]` and everything it requires, transitively."""
    versions: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset(extras))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, wanted = pending.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement whose marker held but which is not installed here
        versions[canonicalize_name(dist.metadata["Name"])] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                pending.append((requirement.name, frozenset(requirement.extras)))
    versions.pop(canonicalize_name(root), None)
    return versions


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "constraints.txt"
    pins = closure(ROOT, EXTRAS)
    header = [
        "# The versions the suite passed with: `pip install -c constraints.txt -e \".[dev]\"` (README, .ci/run).",
        "# Written by .ci/freeze_constraints.py; move forward with `bash .ci/upgrade-constraints`.",
    ]
    target.write_text("\n".join(header + [f"{name}=={pins[name]}" for name in sorted(pins)]) + "\n")
    print(f"{target}: {len(pins)} pinned")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

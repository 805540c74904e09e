"""The README's demo table is what `glueflow demo` prints: figures that cannot go stale.

The sample data is generated from the batch number, so the same package versions (constraints.txt) and
the repo's own flow file print the same bytes on every `--fresh` run; when a change moves them (a gzip
level, a library, a mapping), this test fails until the README shows the new table.
"""

import re
import shutil
from pathlib import Path

from glueflow_dagster_tests.cli.test_cli import glueflow

REPO = Path(__file__).parents[2]
ROW = re.compile(r"^\s+(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)", re.M)


def _readme_table(marker: str) -> list[tuple[int, int, int, str]]:
    """The rows of the README's left-hand demo table (the first columns of the block under `marker`)."""
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index(marker) :].split("```", 1)[0]
    return [(int(c), int(w.replace(",", "")), int(r.replace(",", "")), ratio) for c, w, r, ratio in ROW.findall(block)]


def _printed(stdout: str) -> list[tuple[int, int, int, str]]:
    return [(int(c), int(w.replace(",", "")), int(r.replace(",", "")), ratio) for c, w, r, ratio in ROW.findall(stdout)]


def test_the_readme_demo_table_is_what_demo_prints(tmp_path: Path) -> None:
    expected = _readme_table("$ glueflow demo --fresh --cycles 4")
    assert [row[0] for row in expected] == [0, 1, 2, 3], expected
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(REPO / "glueflow.yaml", project / "glueflow.yaml")
    done = glueflow("demo", "--fresh", "--cycles", "4", "--config", str(project / "glueflow.yaml"), cwd=project)
    assert done.returncode == 0, done.stderr
    assert _printed(done.stdout) == expected, f"README.md's demo table is stale; demo printed:\n{done.stdout}"

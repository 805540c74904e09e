"""The corpus (issue 26 item 6): job scripts written for these tests in the styles of public repositories.

Each folder under `corpus/` holds an Input and an Output job script (`*.py.txt`, so linters leave them
as written) and `expected.yaml`: the flow the pair converts to, or the report items that stop it; the
items that need the user are listed too (the IAM note and the per-argument notes aside). Styles:
console-generated (old and new), Glue Studio, hand-written with arguments, catalog-based, CSV/Parquet,
partitioned, bookmarked. None is a copy of a third-party file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from glueflow_dagster.glue_import import NEEDS_USER, UNSUPPORTED, convert_scripts

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(path.name for path in CORPUS.iterdir() if path.is_dir())


def test_the_corpus_holds_at_least_thirty_scripts() -> None:
    assert len(list(CORPUS.glob("*/*.py.txt"))) >= 30
    assert all((CORPUS / case / "expected.yaml").is_file() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_each_corpus_pair_converts_as_expected(case: str) -> None:
    folder = CORPUS / case
    expected: dict[str, Any] = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))
    report = convert_scripts(
        "flow",
        (folder / "input.py.txt").read_text(encoding="utf-8"),
        (folder / "output.py.txt").read_text(encoding="utf-8"),
        catalog_locations=expected.get("catalog_locations", {}),
    )
    role = {"input.py": "input", "output.py": "output", None: None}
    unsupported = sorted([role[i.source], i.line or 0, i.field] for i in report.of(UNSUPPORTED))
    assert unsupported == sorted([s, line or 0, f] for s, line, f in expected["unsupported"]), report.table()
    needs_user = sorted(
        [role[i.source], i.line or 0, i.field]
        for i in report.of(NEEDS_USER)
        if i.field != "iam" and not i.field.startswith("argument")
    )
    assert needs_user == sorted([s, line or 0, f] for s, line, f in expected["needs_user"]), report.table()
    assert report.complete is expected["complete"]
    if expected["complete"]:
        assert report.entry == expected["entry"]
        assert sorted(report.variables) == expected["variables"]

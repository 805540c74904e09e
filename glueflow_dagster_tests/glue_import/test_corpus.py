"""The corpus (issue 26 item 6): job scripts written for these tests in the styles of public repositories.

Each folder under `corpus/` holds an Input and an Output job script (`*.py.txt`, so linters leave them
as written) and `expected.yaml`: the flow the pair converts to, or the report items that stop it; the
items that need the user are listed too (the IAM note and the per-argument notes aside). Styles:
console-generated (old and new), Glue Studio, hand-written with arguments, catalog-based, CSV/Parquet,
partitioned, bookmarked, Iceberg (`job_parameters`: the Output job's `--conf`/`--datalake-formats` given to the
importer). None is a copy of a third-party file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from glueflow_dagster.core.config import load_config
from glueflow_dagster.glue_import import NEEDS_USER, UNSUPPORTED, convert_scripts, write_flow_file

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(path.name for path in CORPUS.iterdir() if path.is_dir())


STYLES = ("console", "Glue Studio", "hand-written", "catalog", "CSV", "Parquet", "partition", "bookmark", "Iceberg")


def test_the_corpus_holds_at_least_thirty_scripts() -> None:
    assert len(list(CORPUS.glob("*/*.py.txt"))) >= 30
    assert all((CORPUS / case / "expected.yaml").is_file() for case in CASES)
    styles = " ".join(
        str(yaml.safe_load((CORPUS / c / "expected.yaml").read_text(encoding="utf-8"))["style"]) for c in CASES
    )
    assert [style for style in STYLES if style.lower() not in styles.lower()] == []  # each named style is there


@pytest.mark.parametrize("case", CASES)
def test_each_corpus_pair_converts_as_expected(case: str) -> None:
    folder = CORPUS / case
    expected: dict[str, Any] = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))
    report = convert_scripts(
        "flow",
        (folder / "input.py.txt").read_text(encoding="utf-8"),
        (folder / "output.py.txt").read_text(encoding="utf-8"),
        catalog_locations=expected.get("catalog_locations", {}),
        job_parameters=expected.get("job_parameters", {}),
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


@pytest.mark.parametrize("case", CASES)
def test_each_converted_corpus_flow_loads_with_the_flow_file_loader(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What converts is written as a flow file and read back by `load_config`, formats and partitions included."""
    folder = CORPUS / case
    expected: dict[str, Any] = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))
    if not expected["complete"]:
        pytest.skip("reported, not converted")
    report = convert_scripts(
        "flow",
        (folder / "input.py.txt").read_text(encoding="utf-8"),
        (folder / "output.py.txt").read_text(encoding="utf-8"),
        catalog_locations=expected.get("catalog_locations", {}),
        job_parameters=expected.get("job_parameters", {}),
    )
    for name in report.variables:
        monkeypatch.setenv(name, name.lower().replace("_", "-"))  # a bucket, a path part or a local folder
    flow = load_config(write_flow_file(report, tmp_path / "glueflow.yaml")).flows["flow"]
    for role in ("input", "staging", "output"):
        location, entry = getattr(flow, role), expected["entry"][role]
        assert location.format == entry.get("format", "json")
        assert list(location.partition_keys) == entry.get("partition_keys", [])

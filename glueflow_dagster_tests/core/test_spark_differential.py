"""glueflow's ApplyMapping against Spark (Glue's engine), over a generated corpus.

Always: glueflow against Spark's cached answers (``data/spark_casts.json``). With pyspark and Java
present (``-m spark`` selects only that part): against a live local Spark too. Every disagreement must be
one of the deliberate divergences in :mod:`glueflow_dagster_tests.spark_oracle`, which docs/mapping.md's table
mirrors; any other disagreement fails. Regenerate the cache with
``python -m glueflow_dagster_tests.spark_oracle --write``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from glueflow_dagster.core.mapping import parse_glue_type
from glueflow_dagster_tests import spark_oracle as oracle

MAPPING_DOC = Path(__file__).resolve().parents[2] / "docs" / "mapping.md"  # the divergence table
GLUE_TYPES = [
    "string", "boolean", "byte", "short", "int", "long", "float", "double", "decimal", "date", "timestamp", "struct",
    "array",
]  # fmt: skip


@pytest.fixture(scope="module")
def cached() -> dict[str, Any]:
    return json.loads(oracle.CACHE.read_text())


@pytest.fixture(scope="module")
def glue_casts() -> dict[str, Any]:
    return oracle.glueflow_casts(oracle.cast_cases())


def _unexplained_casts(spark: dict[str, Any], glue: dict[str, Any]) -> tuple[list[str], set[str]]:
    problems: list[str] = []
    used: set[str] = set()
    for case, expected, actual in oracle.disagreements(spark, glue):
        reason = oracle.explain(case.source_type, case.value, case.target_type, expected, actual)
        if reason is None:
            problems.append(f"{case.id}: spark={expected!r} glueflow={actual!r}")
        else:
            used.add(reason.id)
    return problems, used


def test_the_corpus_covers_every_glue_type_both_ways() -> None:
    cases = oracle.cast_cases()
    assert len(cases) >= 1000
    family = {name: name.split("(")[0] for name in {c.source_type for c in cases} | {c.target_type for c in cases}}
    assert {family[c.source_type] for c in cases} >= set(GLUE_TYPES)
    assert {family[c.target_type] for c in cases} >= set(GLUE_TYPES)
    for case in cases:
        parse_glue_type(case.source_type)  # every name is one glueflow accepts
    names = {c.id for c in oracle.structure_cases()}
    for kind in ("nested", "case-insensitive", "backticks", "array-element", "missing-field", "json-true-to-int"):
        assert kind in names


def test_the_cache_answers_every_case(cached: dict[str, Any]) -> None:
    # A changed corpus needs a regenerated cache (python -m glueflow_dagster_tests.spark_oracle --write).
    assert cached["spark_version"].startswith("3.5.")
    assert set(cached["casts"]) == {case.id for case in oracle.cast_cases()}
    assert set(cached["structures"]) == {case.id for case in oracle.structure_cases()}


def test_casts_agree_with_cached_spark_or_are_deliberate(cached: dict[str, Any], glue_casts: dict[str, Any]) -> None:
    problems, used = _unexplained_casts(cached["casts"], glue_casts)
    assert not problems, f"{len(problems)} unexplained disagreements with Spark:\n" + "\n".join(problems[:40])
    # The table holds no stale entries: each one explains a disagreement the corpus shows.
    assert used == {d.id for d in oracle.DIVERGENCES}
    agree = sum(1 for case in oracle.cast_cases() if cached["casts"][case.id] == glue_casts[case.id])
    assert agree >= 2500  # most of the corpus is plain agreement, not explained difference


# The issue's cases, spelled out (each is also in the corpus).
ISSUE_CASES = [
    ("double|1.005|decimal(10,2)", "1.01"),
    ("double|0.125|decimal(10,2)", "0.13"),
    ("double|1e+20|decimal(38,10)", "100000000000000000000.0000000000"),
    ('string|".5"|decimal(38,0)', "1"),
    ('string|"1704449472"|timestamp', None),
    ('string|"1e9"|timestamp', None),
    ('string|"20261123"|timestamp', None),
    ('string|"2026-11-23 23:59:60"|timestamp', None),
    ('string|"2026-11-23 12:00:00 Europe/Paris"|timestamp', "2026-11-23 11:00:00.000000"),
    ('string|"2026-11-23 12:00:00 PST"|timestamp', "2026-11-23 20:00:00.000000"),
    ('string|"2026-11-23 12:00:00 GMT+01:00"|timestamp', "2026-11-23 11:00:00.000000"),
    ('string|"2026-11-23T12"|timestamp', "2026-11-23 12:00:00.000000"),
    ('string|"2026-11-23 12:00:00."|timestamp', "2026-11-23 12:00:00.000000"),
    ('string|"2026-11-23 12:00:00+01:00:30"|timestamp', "2026-11-23 10:59:30.000000"),
    ("double|1e+20|string", "1.0E20"),
    ("double|10000000.0|string", "1.0E7"),
    ('double|"inf"|string', "Infinity"),
    ('timestamp|"2024-01-05 10:11:12.5"|string', "2024-01-05 10:11:12.5"),
    ('struct|{"a": 1, "b": "x"}|struct', '{"a":1,"b":"x"}'),
    ("array|[1, 2, 3]|array", "[1,2,3]"),
    ('struct|{"a": 1, "b": "x"}|string', '{"a":1,"b":"x"}'),
    # Signed and zero-padded years as Spark reads them; bytes as UTF-8 text, U+FFFD for a malformed sequence.
    ('string|"+2026-11-23"|timestamp', "2026-11-23 00:00:00.000000"),
    ('string|"+2026-11-23T12:00:00Z"|date', "2026-11-23"),
    ('string|"0002026-11-23"|date', "2026-11-23"),
    ('string|"-2026-11-23"|date', None),
    ('binary|"f09f9880e282ac41"|string', "\U0001f600\u20acA"),
    ('binary|"ff41"|string', "\ufffdA"),
    ('binary|"eda080"|string', "\ufffd"),
]


@pytest.mark.parametrize(("case_id", "expected"), ISSUE_CASES, ids=[c[0] for c in ISSUE_CASES])
def test_the_issue_cases(case_id: str, expected: Any, glue_casts: dict[str, Any]) -> None:
    assert glue_casts[case_id] == expected


@pytest.fixture(scope="module")
def structure_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[Any], list[Any]]]:
    """Every structure case both ways: ApplyMapping.apply on a frame, and run_stage on local folders."""
    folder = tmp_path_factory.mktemp("structures")
    return {
        case.id: (oracle.glueflow_structure_frame(case, folder), oracle.glueflow_structure_stage(case, folder))
        for case in oracle.structure_cases()
    }


def test_the_stage_maps_json_exactly_as_apply_maps_a_frame(
    structure_results: dict[str, tuple[list[Any], list[Any]]],
) -> None:
    for case_id, (frame, stage) in structure_results.items():
        assert stage == frame, case_id
    # The stage's read keeps JSON types (these were null or "1"/"-0" before).
    assert structure_results["json-true-to-int"][1] == [1, 0]
    assert structure_results["json-number-to-boolean"][1] == [True, False, True]
    assert structure_results["json-float-to-string"][1] == ["1.0", "-0.0", "1.0E20", "2.5"]
    epoch = ["2024-01-05 10:11:12.000000", "1970-01-01 00:00:00.000000"]
    assert structure_results["json-number-to-timestamp"][1] == epoch
    # A field that is a number in one record and an object in another never fails: each value is mapped.
    assert structure_results["json-number-or-object"][1] == [1, None, 3]
    assert structure_results["array-element"][1] == ["a1", None, "c"]


def test_structures_agree_with_cached_spark_or_are_deliberate(
    cached: dict[str, Any], structure_results: dict[str, tuple[list[Any], list[Any]]]
) -> None:
    problems = _unexplained_structures(cached["structures"], structure_results)
    assert not problems, "\n".join(problems)


def _unexplained_structures(spark: dict[str, Any], results: dict[str, tuple[list[Any], list[Any]]]) -> list[str]:
    problems = []
    for case in oracle.structure_cases():
        for way, actual in zip(("frame", "stage"), results[case.id], strict=True):
            expected = spark[case.id]
            if not oracle.same_structure(case, expected, actual) and not oracle.explain_structure(
                case, expected, actual
            ):
                problems.append(f"{case.id} ({way}): spark={expected!r} glueflow={actual!r}")
    return problems


def test_the_mapping_doc_table_mirrors_the_divergences() -> None:
    text = MAPPING_DOC.read_text()
    section = text.split("## Where glueflow differs from Glue/Spark, and why", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE)
    expected = [d.id for d in oracle.DIVERGENCES] + list(oracle.STRUCTURE_DIVERGENCES)
    assert sorted(rows) == sorted(expected)


@pytest.mark.spark
def test_live_spark_agrees_with_the_cache_and_glueflow(
    spark_session: Any,
    cached: dict[str, Any],
    glue_casts: dict[str, Any],
    structure_results: dict[str, tuple[list[Any], list[Any]]],
) -> None:
    live = oracle.spark_results(spark_session)
    problems, _ = _unexplained_casts(live["casts"], glue_casts)
    problems += _unexplained_structures(live["structures"], structure_results)
    assert not problems, "\n".join(problems[:40])
    # The cache is Spark's current answer (else regenerate it).
    stale = [key for key in live["casts"] if live["casts"][key] != cached["casts"].get(key)]
    stale += [key for key in live["structures"] if live["structures"][key] != cached["structures"].get(key)]
    # Time-only strings are stamped with today's date: the one answer that changes from day to day.
    stale = [key for key in stale if not re.search(r'\|"T?12:00(:00)?"\|timestamp$', key)]
    assert not stale, f"cache out of date for {stale[:10]}: python -m glueflow_dagster_tests.spark_oracle --write"


def test_a_json_type_past_the_sample_is_read_as_text_not_quarantined(tmp_path: Path) -> None:
    # The sample shows `v` as an integer; line 150 holds an object and line 151 is no JSON at all. The
    # typed read fails; `v` is read as text from then on (the object -> long is a cast error), `ok`
    # keeps its JSON type (true -> int is 1), and only the broken line goes to the quarantine.
    from glueflow_dagster.core.stage import run_stage
    from glueflow_dagster.core.storage import LocalStorage

    def run(lines: list[str], name: str) -> tuple[Any, dict[int, Any], list[str]]:
        source, target = LocalStorage(tmp_path / name / "in"), LocalStorage(tmp_path / name / "out")
        info = source.write_bytes("part-0.json", ("\n".join(lines) + "\n").encode())
        messages: list[str] = []
        mappings = [("id", "long", "id", "long"), ("v", "long", "v", "long"), ("ok", "boolean", "ok", "int")]
        result = run_stage(
            source, [info], mappings, target, name_prefix="run", compression="none", max_error_records=1,
            log=messages.append,
        )  # fmt: skip
        rows = {
            row["id"]: row
            for obj in target.list("")
            if obj.key.startswith("run-")
            for row in map(json.loads, target.read_bytes(obj.key).decode().splitlines())
        }
        return result, rows, messages

    lines = [json.dumps({"id": i, "v": i, "ok": True}) for i in range(300)]
    lines[150] = json.dumps({"id": 150, "v": {"k": 1}, "ok": True})
    result, rows, messages = run(lines, "mixed")
    assert (result.records_written, result.error_records, result.cast_errors) == (300, 0, 1)
    assert rows[150]["v"] is None and rows[149]["v"] == 149 and rows[299]["v"] == 299
    assert {row["ok"] for row in rows.values()} == {1}
    assert any("JSON types differ from the sample's" in m and ": v read as text" in m for m in messages)

    lines[151] = "not json"
    result, rows, messages = run(lines, "mixed-and-bad")
    assert (result.records_written, result.error_records, result.cast_errors) == (299, 1, 1)
    assert rows[150]["v"] is None and rows[152]["v"] == 152
    assert {row["ok"] for row in rows.values()} == {1}


@pytest.mark.parametrize("read", ["lines", "multiline", "jsonPath"])
def test_a_field_mixing_numbers_and_objects_never_raises_in_any_read(read: str, tmp_path: Path) -> None:
    # Numbers and objects (and arrays, text) under one name, in the sample and past it: every record is
    # written, each value mapped from its JSON text (an object -> long is a cast error), in every read.
    from glueflow_dagster.core.json_reader import JsonFormat
    from glueflow_dagster.core.stage import run_stage
    from glueflow_dagster.core.storage import LocalStorage

    mixed: list[Any] = [1, {"k": 1}, 3, [1, {"k": 2}], "4", {"k": {"z": 1}}, 5.5]
    records = [{"id": i, "v": mixed[i % 7], "u": {"w": mixed[(i + 1) % 7]}} for i in range(1400)]
    data, fmt = {
        "lines": ("".join(json.dumps(r) + "\n" for r in records), None),
        "multiline": (json.dumps(records, indent=1), JsonFormat(multiline=True)),
        "jsonPath": (json.dumps({"records": records}), JsonFormat(json_path="$.records[*]")),
    }[read]
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    info = source.write_bytes("part-0.json", data.encode())
    mappings = [("id", "long", "id", "long"), ("v", "long", "v", "long"), ("u.w", "string", "w", "string")]
    result = run_stage(source, [info], mappings, target, name_prefix="run", compression="none", json_format=fmt)
    rows = {
        row["id"]: row
        for obj in target.list("")
        for row in map(json.loads, target.read_bytes(obj.key).decode().splitlines())
    }
    assert (result.records_written, result.error_records, len(rows)) == (1400, 0, 1400)
    assert [rows[i]["v"] for i in range(7)] == [1, None, 3, None, 4, None, 5]  # text "5.5" -> long is 5, as in Spark
    assert rows[1399]["v"] == 5 and rows[6]["w"] == "1"

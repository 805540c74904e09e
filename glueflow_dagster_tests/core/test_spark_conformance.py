"""Conformance: the same stage on polars (``run_stage``) and on Spark (the stage script's ``run``).

Both engines read the same objects from a local folder and their output records, figures and
quarantines are compared; the expected values are whatever polars writes (the polars tests check
those). Spark runs the stage script's ``run`` on the test session's SparkSession (no JVM per case), as
the local launcher would in its subprocess. Each mapping table is one batched run per engine: every
case is a field of its own (so its JSON type is sampled alone), side by side in the same records.

Every difference must be listed here with its reason (and in the README's divergence table), and every
listed difference must still occur.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from glueflow_dagster.core.commits import Attempt, publish
from glueflow_dagster.core.stage import StageError, run_stage
from glueflow_dagster.core.storage import LocalStorage, ObjectInfo
from glueflow_dagster_tests.core import test_bad_input, test_mapping
from glueflow_dagster_tests.core.test_spark_mapping import TARGETS, VALUES

pytestmark = pytest.mark.spark


# ---------------------------------------------------------------------------------------------------------
# Running one stage on each engine
# ---------------------------------------------------------------------------------------------------------


class Outcome:
    """What a stage left: records, figures, quarantine entries; or the one-line error it failed with."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.figures: dict[str, int] = {}
        self.entries: list[tuple[str, str | None]] = []  # (source object's name, raw line or None)
        self.error: str | None = None


_FIGURES = ("records_read", "records_written", "error_records", "cast_errors", "error_files", "records_discarded")


def _objects(source: LocalStorage, exclusions: tuple[str, ...] = ()) -> list[ObjectInfo]:
    from glueflow_dagster.core.quarantine import list_stage_inputs

    return list(list_stage_inputs(source, recurse=True, exclusions=exclusions))


def _finish(outcome: Outcome, target: LocalStorage, result: Any) -> Outcome:
    for info in target.list(recurse=False):
        outcome.rows += [json.loads(line) for line in target.read_bytes(info.key).decode().splitlines()]
    for info in target.list("_errors"):
        for line in target.read_bytes(info.key).decode().splitlines():
            entry = json.loads(line)
            outcome.entries.append((entry["source"].rsplit("/", 1)[-1], entry["raw"]))
    outcome.entries.sort(key=lambda e: (e[0], e[1] or ""))
    outcome.figures = {name: int(getattr(result, name)) for name in _FIGURES}
    return outcome


def run_polars(folder: Path, mappings: Any, exclusions: tuple[str, ...] = (), max_errors: int = 100) -> Outcome:
    source, target = LocalStorage(folder / "in"), LocalStorage(folder / "polars")
    outcome = Outcome()
    try:
        result = run_stage(
            source,
            _objects(source, exclusions),
            mappings,
            target,
            name_prefix="run-p-attempt-1",
            compression="none",
            max_error_records=max_errors,
            quarantine_prefix="_errors/p",
        )
    except StageError as err:
        outcome.error = str(err)
        result = err.result
    return _finish(outcome, target, result)


def run_spark(
    spark: Any, folder: Path, mappings: Any, exclusions: tuple[str, ...] = (), max_errors: int = 100
) -> Outcome:
    from glueflow_dagster.components.spark_stage import stage_result
    from glueflow_dagster.spark.stage_script import run

    source, target = LocalStorage(folder / "in"), LocalStorage(folder / "spark")
    manifest = [
        {"uri": source.uri_for(o.key), "key": o.key, "size": o.size, "last_modified_ms": o.last_modified_ms}
        for o in _objects(source, exclusions)
    ]
    extras = {
        "manifest": manifest,
        "mappings": mappings,
        "source": source.uri,
        "target": target.uri,
        "compression": "none",
        "part_prefix": "run-s-attempt-1",
        "quarantine_prefix": "_errors/s",
        "max_error_records": max_errors,
        "target_file_bytes": 128 * 1024 * 1024,
        "master": "local[1]",
    }
    outcome = Outcome()
    try:
        figures = run(extras, lambda _message: None)
    except Exception as err:  # the script reports it as the run's one-line failure
        outcome.error = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        return outcome
    result = stage_result(figures, target, 0.0)
    if figures["exceeded"]:
        outcome.error = "exceeded"
    elif result.pending:
        publish(target, Attempt("s", 1), "conformance", result.pending, result.records_written)
    return _finish(outcome, target, result)


@pytest.fixture(scope="module")
def spark(spark_session: Any) -> Iterator[Any]:
    yield spark_session


def _f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def same(a: Any, b: Any) -> bool:
    """Equal JSON values; floats equal as float32 when either engine printed a float32 short."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b)) or (_f32(a) == _f32(b) and _f32(a) in (a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


def _by_key(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {row["k"]: row for row in rows}


# ---------------------------------------------------------------------------------------------------------
# The mapping tables, batched
# ---------------------------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    """A test value as JSON, or a reason it has none (JSON has no NaN, infinity, bytes, dates)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _table_corpus() -> tuple[list[dict[str, Any]], list[list[str]], dict[str, tuple[str, Any]]]:
    """One record per row position; each case a field of its own: (records, mappings, {target: case})."""
    columns: dict[str, list[Any]] = {}
    mappings: list[list[str]] = [["k", "long", "k", "long"]]
    cases: dict[str, tuple[str, Any]] = {}

    def add(field: str, values: list[Any], targets: list[str], case: str) -> None:
        columns[field] = values
        for target in targets:
            name = f"{field}__{target.replace('(', '_').replace(',', '_').replace(')', '')}"
            mappings.append([field, "string", name, target])
            cases[name] = (case, target)

    # test_mapping's casts from text: the values as JSON strings, to their own target.
    for index, (target, values, _dtype, _expected) in enumerate(test_mapping.STRING_CASTS):
        if target == "binary":
            continue  # the polars stage cannot write binary into JSON lines (polars: not implemented)
        add(f"text{index}", list(values), [target], f"STRING_CASTS[{target}]")
    # test_mapping's casts from typed columns, where the type is a JSON one (numbers, booleans, objects,
    # arrays, null): the values as JSON, read with the type polars samples.
    for name, series, target, _expected in test_mapping.TYPED_CASTS:
        if series.dtype in (pl.Int64, pl.Float64, pl.Boolean, pl.UInt64, pl.Null) or isinstance(
            series.dtype, pl.Struct | pl.List
        ):
            add(f"typed_{name.replace('->', '_to_')}", [_json_value(v) for v in series.to_list()], [target], name)
    # test_spark_mapping's raw values to every target, in one field per JSON type (so each is read with
    # its type, as polars samples it); integers beyond 64 bits on their own (polars reads them as text).
    kinds: dict[str, list[Any]] = {}
    for raw in VALUES:
        value = json.loads(raw)
        kind = type(value).__name__ if not isinstance(value, int) or abs(value) < 2**63 else "bigint"
        kinds.setdefault(kind, []).append(value)
    for kind, values in kinds.items():
        add(f"json_{kind}", values, TARGETS, f"VALUES[{kind}]")
    # test_mapping's case matching (case-insensitive, the stage's only mode), CASE_FRAME as JSON.
    frame = test_mapping.CASE_FRAME
    for field, series in frame.to_dict().items():
        columns[field] = series.to_list()
    for source in ("id", "Id"):
        mappings.append([source, "long", f"case_{source}", "long"])
        cases[f"case_{source}"] = (f"test_case_matching[{source}]", "long")
    for source in ("user.name", "USER.NAME"):
        mappings.append([source, "string", f"case_{source.replace('.', '_')}", "string"])
        cases[f"case_{source.replace('.', '_')}"] = (f"test_case_matching_nested[{source}]", "string")

    height = max(len(values) for values in columns.values())
    records = []
    for row in range(height):
        record: dict[str, Any] = {"k": row}
        for field, values in columns.items():
            if row < len(values):
                record[field] = values[row]
        records.append(record)
    return records, mappings, cases


# Structure: nested targets, dotted and backticked names, missing sources, JSON text, array elements,
# Glue Studio's struct and array types (test_mapping's structure tests, as JSON lines).
STRUCTURE_RECORDS: list[dict[str, Any]] = [
    {
        "k": 0,
        "a": 1,
        "b": "ann",
        "user": {"id": "1", "x.y": "2", "deep": {"z": "3"}},
        "this.old.name": "keep",
        "user.id": "top-level",
        "raw": '{"k": {"z": 1, "a.b": "x"}, "items": [{"sku": "x"}]}',
        "items": [{"sku": "a1", "n": 2}, {"sku": "b2", "n": 1}],
        "u": {"k": 1, "s": "x"},
        "arr": [1, 2],
        "n": 5,
        "s": 5,
    },
    {
        "k": 1,
        "a": 2,
        "user": {"id": None, "x.y": "x", "deep": None},
        "user.id": "!",
        "raw": "plain text",
        "items": [],
        "u": None,
        "arr": [],
        "n": 6,
        "s": 6,
    },
    {"k": 2, "raw": '{"k": 5}', "items": None, "n": 7},
    {"k": 3, "raw": None},
]
STRUCTURE_MAPPINGS = [
    ["k", "long", "k", "long"],
    ["a", "long", "id", "long"],
    ["b", "string", "person.name", "string"],
    ["user.deep.z", "string", "person.addr.city", "short"],
    ["user.id", "string", "uid", "long"],
    ["user.`x.y`", "string", "xy", "int"],
    ["`this.old.name`", "string", "thisNewName", "string"],
    ["`user.id`", "string", "literal", "string"],
    ["nope", "string", "missing", "long"],
    ["s.deep", "string", "y.other", "timestamp"],
    ["raw.k.z", "string", "z", "long"],
    ["raw.k.`a.b`", "string", "ab", "string"],
    ["raw.items[0].sku", "string", "raw_sku", "string"],
    ["raw", "string", "raw", "string"],
    ["items[0].sku", "string", "first", "string"],
    ["ITEMS[1].n", "int", "second_n", "long"],
    ["items[5].sku", "string", "beyond", "string"],
    ["items[0]", "struct", "first_item", "struct"],
    ["u", "struct", "u", "struct"],
    ["arr", "array", "arr", "array"],
    ["items", "array", "items", "array"],
    ["u", "struct", "u_text", "string"],
    ["arr", "array", "arr_text", "string"],
    ["items", "array", "items_text", "string"],
    ["n", "long", "n_struct", "struct"],
    ["n", "long", "n_array", "array"],
    ["u", "struct", "u_long", "long"],
]

# (case, target) -> why the engines differ. Mirrored in the README's Spark divergence table.
_FLOAT_TEXT = "Spark's JSON reader renders a JSON float read as text like Java's Double.toString; polars keeps it short"
TABLE_DIVERGENCES: dict[tuple[str, str], str] = {}


def _write_lines(folder: Path, name: str, records: list[dict[str, Any]]) -> None:
    (folder / "in").mkdir(parents=True, exist_ok=True)
    (folder / "in" / name).write_text("".join(json.dumps(r) + "\n" for r in records))


def _compare(polars: Outcome, spark: Outcome) -> dict[tuple[Any, str], tuple[Any, Any]]:
    assert (polars.error, spark.error) == (None, None)
    assert len(polars.rows) == len(spark.rows)
    p_rows, s_rows = _by_key(polars.rows), _by_key(spark.rows)
    assert p_rows.keys() == s_rows.keys()
    found = {}
    for key, p_row in p_rows.items():
        s_row = s_rows[key]
        assert list(p_row) == list(s_row), "the same columns in the same order"
        for column, value in p_row.items():
            if not same(value, s_row[column]):
                found[(key, column)] = (value, s_row[column])
    return found


def test_the_mapping_tables_map_the_same_on_both_engines(spark: Any, tmp_path: Path) -> None:
    records, mappings, cases = _table_corpus()
    _write_lines(tmp_path, "table.json", records)
    polars, sparked = run_polars(tmp_path, mappings), run_spark(spark, tmp_path, mappings)
    found = _compare(polars, sparked)
    differing = {cases[column]: got for (_, column), got in found.items()}
    unexpected = {case: got for case, got in differing.items() if case not in TABLE_DIVERGENCES}
    assert unexpected == {}, "differences not in the divergence table (polars, spark): " + repr(unexpected)
    assert set(TABLE_DIVERGENCES) - set(differing) == set(), "listed divergences that no longer occur"
    assert sparked.figures == polars.figures
    # The typed reads matter: a JSON number is epoch seconds, a JSON boolean casts to 1 (the text would not).
    rows = _by_key(sparked.rows)
    epoch = [r.get("json_int") for r in records].index(1700000000)
    assert rows[epoch]["json_int__timestamp"] == "2023-11-14 22:13:20"
    assert rows[[r.get("json_bool") for r in records].index(True)]["json_bool__int"] == 1


def test_paths_structs_and_arrays_map_the_same_on_both_engines(spark: Any, tmp_path: Path) -> None:
    _write_lines(tmp_path, "structure.json", STRUCTURE_RECORDS)
    polars, sparked = run_polars(tmp_path, STRUCTURE_MAPPINGS), run_spark(spark, tmp_path, STRUCTURE_MAPPINGS)
    assert _compare(polars, sparked) == {}
    assert sparked.figures == polars.figures
    first = _by_key(sparked.rows)[0]
    assert (first["first"], first["second_n"], first["raw_sku"], first["beyond"]) == ("a1", 1, "x", None)
    assert first["u"] == {"k": 1, "s": "x"} and first["items_text"] == '[{"sku":"a1","n":2},{"sku":"b2","n":1}]'


def test_types_that_change_past_the_sample_and_late_spellings_map_the_same(spark: Any, tmp_path: Path) -> None:
    """Fields typed by the sample hold other JSON types later; a spelling first appears past the sample."""
    records: list[dict[str, Any]] = [{"k": i, "n": i, "f": i + 0.5, "b": i % 2 == 0, "t": i} for i in range(150)]
    records[120]["n"] = "x"  # text where the sample saw numbers: n is read as text for the whole run
    records[130]["b"] = 1  # a number where the sample saw booleans
    records[140]["F"] = records[140].pop("f")  # a spelling the sample did not show
    records[145]["T"] = records[145].pop("t")
    mappings = [
        ["k", "long", "k", "long"],
        ["n", "long", "n_ts", "timestamp"],
        ["n", "long", "n_text", "string"],
        ["f", "double", "f", "double"],
        ["b", "boolean", "b", "int"],
        ["t", "long", "t_ts", "timestamp"],
    ]
    _write_lines(tmp_path, "late.json", records)
    polars, sparked = run_polars(tmp_path, mappings), run_spark(spark, tmp_path, mappings)
    assert _compare(polars, sparked) == {}
    assert sparked.figures == polars.figures
    rows = _by_key(sparked.rows)
    assert rows[140]["f"] == 140.5 and rows[145]["t_ts"] == "1970-01-01 00:02:25"  # found past the sample
    assert rows[3]["n_ts"] is None and rows[3]["t_ts"] == "1970-01-01 00:00:03"  # n read as text, t typed


# ---------------------------------------------------------------------------------------------------------
# Bad input (test_bad_input.py's cases), one run per engine and case
# ---------------------------------------------------------------------------------------------------------

# case -> why the engines differ (mirrored in the README's divergence table).
BAD_INPUT_DIVERGENCES: dict[str, str] = {
    "non_utf8_bytes": "Spark's reader decodes invalid UTF-8 as U+FFFD and keeps the record; polars quarantines it",
    "other_formats_reported": "an object without a JSON-object line: bad records on Spark, unreadable on polars",
}


def _bad_input_outcomes(spark: Any, tmp_path: Path, name: str, max_errors: int) -> tuple[Outcome, Outcome]:
    case = test_bad_input.CASES[name]
    for key, data in case.objects.items():
        path = tmp_path / "in" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    mappings = test_bad_input.MAPPINGS
    polars = run_polars(tmp_path, mappings, case.exclusions, max_errors)
    sparked = run_spark(spark, tmp_path, mappings, case.exclusions, max_errors)
    return polars, sparked


def _differences(polars: Outcome, sparked: Outcome) -> list[str]:
    found = []
    if (polars.error is None) != (sparked.error is None):
        found.append(f"error: {polars.error!r} / {sparked.error!r}")
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    if Counter(map(key, polars.rows)) != Counter(map(key, sparked.rows)):
        found.append(f"rows: {polars.rows} / {sparked.rows}")
    if polars.figures != sparked.figures and sparked.error is None:
        found.append(f"figures: {polars.figures} / {sparked.figures}")
    if polars.entries != sparked.entries and sparked.error is None:
        found.append(f"quarantine: {polars.entries} / {sparked.entries}")
    return found


@pytest.mark.parametrize("name", list(test_bad_input.CASES))
def test_bad_input_is_handled_the_same_on_both_engines(spark: Any, tmp_path: Path, name: str) -> None:
    polars, sparked = _bad_input_outcomes(spark, tmp_path, name, max_errors=100)
    found = _differences(polars, sparked)
    if name in BAD_INPUT_DIVERGENCES:
        assert found, f"{name} is listed as a divergence but both engines agree"
    else:
        assert found == []

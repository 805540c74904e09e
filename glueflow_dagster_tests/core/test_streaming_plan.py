"""Every cast stays native and on polars' streaming engine.

Walks every cast of the mapping table tests (test_mapping.py: text to every type, every typed column to
its targets, every source dtype to every target), in every form ApplyMapping maps in (full, plain
timestamps, plain timestamps as text, fast paths only), and fails if the plan holds a Python callback
(``map_batches``, ``map_elements``, ``python_udf``) or if polars' streaming engine would fall back to the
in-memory engine for any node. The streaming engine's physical plan (``show_graph(engine="streaming",
plan_stage="physical")``, polars 2.1) marks each node that falls back with its own fill colour.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from glueflow_dagster.core.mapping import ApplyMapping, FieldMapping, PlainTimestamps, parse_mappings, zones
from glueflow_dagster.core.mapping.casts import cast_value
from glueflow_dagster.core.stage.plan import QueryPlan, _mapped_with_cast_errors
from glueflow_dagster_tests.core.test_mapping import ALL_TARGETS, EXTREMES, STRING_CASTS, TYPED_CASTS

PYTHON = re.compile(r"map_batches|map_elements|python_udf|python_function|opaque_python")
# The physical plan's legend: "<FONT COLOR="0.0 0.3 1.0">⬤</FONT> in-memory engine fallback".
FALLBACK_COLOUR = "0.0 0.3 1.0"
MODES: list[PlainTimestamps] = [False, True, "text", "fast", "zulu", "nozones"]


@pytest.fixture(autouse=True)
def few_zones(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Zone names with a few zones: polars 2.1 panics formatting the physical plan of the whole table
    ("Formatting argument out of range": one branch per zone). The branches are alike, so a few show
    how they run; test_zone_names_hold_no_python checks the whole table's plan for Python."""
    if request.node.name == "test_zone_names_hold_no_python":
        return
    names, indices, table = zones.zone_table()
    kept = {"America/Los_Angeles", "Europe/Paris", "UTC"}
    short = tuple(zone for zone in table if zone in kept)
    pairs = [(name, short.index(table[i])) for name, i in zip(names, indices, strict=True) if table[i] in kept]
    monkeypatch.setattr(zones, "zone_table", lambda: (tuple(n for n, _ in pairs), tuple(i for _, i in pairs), short))


def test_zone_names_hold_no_python() -> None:
    """The whole zone table (every zone polars knows) in a timestamp cast: no Python in the plan."""
    query = pl.LazyFrame({"v": ["2024-01-01 10:00 Europe/Paris"]}).select(
        cast_value(pl.col("v"), pl.String(), pl.Datetime("us"))
    )
    plan = query.explain()
    branches = plan.count("convert_time_zone")  # one per zone
    assert branches >= len(zones.zone_table()[2]) - len(zones.SHORT_ZONE_OFFSETS) > 500  # the whole table
    assert not PYTHON.findall(plan)


def streaming_problems(query: pl.LazyFrame) -> list[str]:
    """What keeps ``query`` from running natively on the streaming engine (empty: nothing)."""
    problems = [f"Python in the plan: {m}" for m in sorted(set(PYTHON.findall(query.explain())))]
    graph = query.show_graph(engine="streaming", plan_stage="physical", raw_output=True, show=False)
    assert isinstance(graph, str) and "in-memory engine fallback" in graph  # the legend this test relies on
    for line in graph.splitlines():
        if f'fillcolor="{FALLBACK_COLOUR}"' in line:
            problems.append("falls back to the in-memory engine: " + line.strip()[:200])
    return problems


def _check(frame: pl.DataFrame, mappings: list[tuple[str, str, str, str]]) -> None:
    for mode in MODES:
        query = ApplyMapping.apply(frame.lazy(), mappings, plain_timestamps=mode)
        assert streaming_problems(query) == [], (mode, mappings)


def test_the_check_finds_a_python_callback_and_a_fallback() -> None:
    """The guard works: a Python UDF and a node the streaming engine cannot run are both reported."""
    frame = pl.LazyFrame({"v": ["a"]})
    udf = frame.select(pl.col("v").map_batches(lambda s: s, return_dtype=pl.String))
    problems = streaming_problems(udf)
    assert any("Python in the plan" in p for p in problems)
    assert any("falls back" in p for p in problems)
    assert streaming_problems(frame.select(pl.col("v").str.to_uppercase())) == []


@pytest.mark.parametrize("target", sorted({c[0] for c in STRING_CASTS}))
def test_every_cast_from_text_is_native_and_streaming(target: str) -> None:
    frame = pl.DataFrame({"v": ["x", None]}, schema={"v": pl.String})
    _check(frame, [("v", "string", "out", target)])


@pytest.mark.parametrize(("name", "series", "target"), [c[:3] for c in TYPED_CASTS], ids=[c[0] for c in TYPED_CASTS])
def test_every_typed_cast_is_native_and_streaming(name: str, series: pl.Series, target: str) -> None:
    _check(series.alias("v").to_frame(), [("v", "string", "out", target)])


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_every_source_dtype_to_every_target_is_native_and_streaming(target: str) -> None:
    _check(EXTREMES, [(name, "string", name, target) for name in EXTREMES.columns])


def test_the_stage_query_is_native_and_streaming(tmp_path: Path) -> None:
    """The stage's own query (scan, mapping, the cast-error counts) in every form it runs in."""
    path = tmp_path / "events.json"
    path.write_text('{"ts": "2026-11-02T01:28:55Z", "n": "5", "d": "2026-11-02", "a": "1.5", "b": "true"}\n')
    mappings: list[Any] = [
        ("ts", "string", "ts", "timestamp"),
        ("n", "string", "n", "long"),
        ("d", "string", "d", "date"),
        ("a", "string", "a", "decimal(10,2)"),
        ("b", "string", "b", "boolean"),
    ]
    parsed: tuple[FieldMapping, ...] = tuple(parse_mappings(mappings))
    schema = pl.Schema({"ts": pl.String, "n": pl.String, "d": pl.String, "a": pl.String, "b": pl.String})
    plan = QueryPlan(parsed, schema, 1000, writer=None)  # type: ignore[arg-type]
    scan = pl.scan_ndjson(str(path), schema=schema)
    for mode in MODES:
        mapped, columns, casts, timestamp_casts, named, needed = _mapped_with_cast_errors(scan, plan, mode)
        figures = [casts.alias("casts"), timestamp_casts.alias("timestamp_casts")]
        query = mapped.select(*columns, *figures)
        assert streaming_problems(query) == [], mode
        # The figures the sink's query runs beside it (zone names, values for the general path).
        counts = mapped.select(*figures, named.alias("named"), needed.alias("needed"))
        assert streaming_problems(counts) == [], mode

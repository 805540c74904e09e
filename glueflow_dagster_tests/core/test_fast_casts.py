"""The fast paths of text casts (core/mapping/fast.py) give exactly the general path's answers.

Every cast from text with a fast path is the fast value, else the general Spark-compatible parser's value
for what the fast path left null. These tests generate text in and around the fast forms (two-digit and
one-digit fields, T or a space or something else, 0-12 fraction digits, every kind of zone, second 60,
year 0, signs, blanks) and check the cast against the general parser alone on the same values.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glueflow_dagster.core.mapping import ApplyMapping
from glueflow_dagster.core.mapping.casts import (
    _parse_boolean,
    _parse_date,
    _parse_decimal,
    _parse_timestamp,
    cast_value,
)
from glueflow_dagster.core.mapping.fast import ZULU_RE, fast_date, fast_decimal, fast_timestamp, fast_zulu
from glueflow_dagster.core.stage import run_stage
from glueflow_dagster.core.storage import LocalStorage

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _two(low: int, high: int) -> st.SearchStrategy[str]:
    """A field of two digits mostly, one now and then (the general path reads both)."""
    return st.one_of(st.integers(low, high).map(lambda v: f"{v:02d}"), st.integers(0, 9).map(str))


YEAR = st.one_of(
    st.integers(1, 9999).map(lambda v: f"{v:04d}"),
    st.sampled_from(["0000", "9999", "0001", "+2026", "-2026", "202", "12026"]),
)
FRACTION = st.one_of(st.just(""), st.just("."), st.text("0123456789", min_size=1, max_size=12).map(lambda d: "." + d))
OFFSET = st.builds(
    lambda sign, h, m, colon: f"{sign}{h:02d}{':' if colon else ''}{m:02d}",
    st.sampled_from("+-"),
    st.integers(0, 19),
    st.sampled_from([0, 30, 45, 59, 60]),
    st.booleans(),
)
ZONE = st.one_of(
    st.just(""),
    st.just("Z"),
    OFFSET,
    st.sampled_from(["z", "+5", "-03", "+05:30:15", " UTC", "UTC+01:00", " Europe/Paris", "PST", "EST", " Nowhere"]),
)
TIMESTAMP = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, zone, pad: f"{pad}{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{zone}{pad}",
    YEAR,
    _two(0, 13),
    _two(0, 32),
    st.sampled_from(["T", " ", "T", "t", "  "]),
    _two(0, 24),
    _two(0, 60),
    _two(0, 61),
    FRACTION,
    ZONE,
    st.sampled_from(["", "", "", " "]),
)
DATE = st.builds(lambda y, mo, d: f"{y}-{mo}-{d}", YEAR, _two(0, 13), _two(0, 32))
TEXT = st.one_of(TIMESTAMP, DATE, st.text(max_size=12))


def _compare(values: list[str | None], cast: pl.Expr, general: pl.Expr) -> None:
    frame = pl.DataFrame({"text": values}, schema={"text": pl.String})
    got = frame.lazy().select(cast.alias("cast"), general.alias("general")).collect(engine="streaming")
    mismatches = got.with_columns(frame["text"]).filter(~pl.col("cast").eq_missing(pl.col("general")))
    assert mismatches.is_empty(), mismatches


@SETTINGS
@given(st.lists(st.one_of(TEXT, st.none()), min_size=1, max_size=40))
def test_timestamp_fast_path_equals_the_general_path(values: list[str | None]) -> None:
    text = pl.col("text")
    dst = pl.Datetime("us")
    _compare(values, cast_value(text, pl.String(), dst), _parse_timestamp(text, dst))


@SETTINGS
@given(st.lists(st.one_of(TEXT, st.none()), min_size=1, max_size=40))
def test_the_zulu_path_equals_the_fast_path_on_its_form_and_is_null_elsewhere(values: list[str | None]) -> None:
    text = pl.col("text")
    expected = pl.when(text.str.contains(ZULU_RE)).then(fast_timestamp(text))
    _compare(values, fast_zulu(text), expected)


@SETTINGS
@given(st.lists(st.one_of(TEXT, st.none()), min_size=1, max_size=40))
def test_date_fast_path_equals_the_general_path(values: list[str | None]) -> None:
    text = pl.col("text")
    _compare(values, cast_value(text, pl.String(), pl.Date()), _parse_date(text))


NUMBER = st.builds(
    lambda pad, sign, whole, frac, exp: f"{pad}{sign}{whole}{frac}{exp}{pad}",
    st.sampled_from(["", "", " "]),
    st.sampled_from(["", "", "-", "+"]),
    st.text("0123456789", max_size=12),
    st.one_of(st.just(""), st.text("0123456789", max_size=6).map(lambda d: "." + d)),
    st.sampled_from(["", "", "", "e2", "E-3", "e"]),
)


@SETTINGS
@given(st.lists(st.one_of(NUMBER, st.text(max_size=6), st.none()), min_size=1, max_size=40))
def test_decimal_fast_path_equals_the_general_path(values: list[str | None]) -> None:
    text = pl.col("text")
    for dst in (pl.Decimal(10, 2), pl.Decimal(5, 0), pl.Decimal(3, 3), pl.Decimal(38, 10), pl.Decimal(38, 0)):
        _compare(values, cast_value(text, pl.String(), dst), _parse_decimal(text, dst))


WORD = st.builds(
    lambda pad, word: f"{pad}{word}{pad}",
    st.sampled_from(["", "", " ", "\t"]),
    st.sampled_from(["true", "false", "True", "FALSE", "t", "f", "yes", "no", "y", "n", "1", "0", "2", "", "tru"]),
)


@SETTINGS
@given(st.lists(st.one_of(WORD, st.none()), min_size=1, max_size=40))
def test_boolean_fast_path_equals_the_general_path(values: list[str | None]) -> None:
    text = pl.col("text")
    _compare(values, cast_value(text, pl.String(), pl.Boolean()), _parse_boolean(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-02T01:28:55Z", dt.datetime(2026, 11, 2, 1, 28, 55)),
        ("2026-02-02T01:37:34.136758-03:30", dt.datetime(2026, 2, 2, 5, 7, 34, 136758)),
        ("2026-02-02T01:37:34.1+0130", dt.datetime(2026, 2, 2, 0, 7, 34, 100000)),
        ("2026-02-02 01:37:34.123456789", dt.datetime(2026, 2, 2, 1, 37, 34, 123456)),
        ("2026-02-02T01:37:34.1234567891234Z", dt.datetime(2026, 2, 2, 1, 37, 34, 123456)),  # Spark truncates
        ("2026-02-02", dt.datetime(2026, 2, 2)),
        ("2026-02-02T01:37:60Z", None),  # second 60: chrono's leap second is left to the general path
        ("0000-02-02T01:37:34Z", None),
        ("9999-12-31T23:00:00-02:00", None),
        ("2026-02-02T01:37:34+18:30", None),
    ],
)
def test_fast_timestamp_forms(text: str, expected: dt.datetime | None) -> None:
    frame = pl.DataFrame({"text": [text]})
    got = frame.select(cast_value(pl.col("text"), pl.String(), pl.Datetime("us"))).item()
    assert got == expected


def test_fast_paths_take_the_common_forms() -> None:
    """The fast paths themselves (not the general path) read the forms the docs list."""
    frame = pl.DataFrame(
        {
            "ts": ["2026-11-02T01:28:55Z", "2026-11-02 01:28:55.5+05:30", "2026-11-02T01:28:55.123", "2026-11-02"],
            "day": ["2026-11-02", "2026-11-02", "2026-11-02", "2026-11-02"],
            "dec": ["12.5", "-0.25", "+7", "12345678.99"],
        }
    )
    got = frame.select(
        fast_timestamp(pl.col("ts")).is_not_null().all(),
        fast_date(pl.col("day")).is_not_null().all(),
        fast_decimal(pl.col("dec"), pl.Decimal(10, 2)).eq(pl.col("dec").cast(pl.Decimal(10, 2))).all(),
    )
    assert got.row(0) == (True, True, True)
    assert frame.select(fast_decimal(pl.col("dec"), pl.Decimal(10, 2))).to_series().to_list() == [
        Decimal("12.50"),
        Decimal("-0.25"),
        Decimal("7.00"),
        Decimal("12345678.99"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-05 10:00 Europe/Paris", dt.datetime(2024, 1, 5, 9)),
        ("2024-03-31 02:30 Europe/Paris", None),  # in the spring-forward gap
        ("2024-10-27 02:30 Europe/Paris", dt.datetime(2024, 10, 27, 0, 30)),  # overlap: the earlier offset
        ("2024-01-01 10:00 PST", dt.datetime(2024, 1, 1, 18)),  # a short id: America/Los_Angeles
        ("2024-07-01 10:00 EST", dt.datetime(2024, 7, 1, 15)),  # a fixed offset, no daylight saving
        ("2024-01-01 10:00 Factory", None),  # not a zone polars (or java.time) knows
        ("2024-01-01 10:00 Nowhere/Else", None),
    ],
)
def test_zone_names_are_native(text: str, expected: dt.datetime | None) -> None:
    query = pl.LazyFrame({"text": [text]}).select(cast_value(pl.col("text"), pl.String(), pl.Datetime("us")))
    assert "python_udf" not in query.explain()
    assert query.collect(engine="streaming").item() == expected


@pytest.mark.parametrize("zone_name_at", [None, 3, 1500])
def test_the_stage_maps_as_the_full_casts_in_every_speculation(tmp_path: Path, zone_name_at: int | None) -> None:
    """ISO times with a malformed one in the sample (no speculation: the stage maps in full, first without
    the zone branches) and maybe a zone name, in the sample or past it: the records are ApplyMapping's."""
    texts = {i: f"2026-11-24T00:{i // 60 % 60:02d}:{i % 60:02d}.5Z" for i in range(2000)}
    texts[1] = "not a time"
    if zone_name_at is not None:
        texts[zone_name_at] = "2025-11-24 17:00:00 Europe/Paris"
    lines = "".join(json.dumps({"id": i, "ts": text}) + "\n" for i, text in texts.items())
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    info = source.write_bytes("t.json", lines.encode())
    mappings = [["id", "long", "event_id", "long"], ["ts", "string", "event_time", "timestamp"]]
    result = run_stage(source, [info], mappings, target, name_prefix="run-z", compression="none")
    written = pl.concat([pl.read_ndjson(target.read_bytes(o.key)) for o in target.list()]).sort("event_id")
    expected = ApplyMapping.apply(pl.read_ndjson(lines.encode()), mappings).collect()
    expected = expected.with_columns(pl.col("event_time").dt.strftime("%Y-%m-%d %H:%M:%S%.f").str.strip_suffix("000"))
    assert result.cast_errors == 1 and result.records_written == 2000
    got = written.select("event_id", pl.col("event_time").cast(pl.String))
    assert got["event_id"].to_list() == expected["event_id"].to_list()
    assert got["event_time"].str.slice(0, 19).to_list() == expected["event_time"].str.slice(0, 19).to_list()
    if zone_name_at is not None:
        assert got["event_time"][zone_name_at] == "2025-11-24 16:00:00"


def test_malformed_values_the_fast_paths_decide_keep_the_speculation(tmp_path: Path) -> None:
    """Malformed timestamps the general path cannot read either (``not a time``, ``2026-13-45T99:99:99Z``)
    leave the stage on the fast paths; a value only the general path reads still gets its value."""
    from glueflow_dagster.core.mapping import parse_mappings
    from glueflow_dagster.core.stage.plan import make_plan
    from glueflow_dagster.core.stage.write import JsonLinesWriter

    bad = ["not a time", "2026-13-45T99:99:99Z", "", "2026/11/02 01:28"]
    texts = [bad[i // 5 % 4] if i % 5 == 0 else f"2026-11-24T00:{i // 60 % 60:02d}:{i % 60:02d}Z" for i in range(2000)]
    texts[1500] = "2026-11-24 1:2:3"  # one-digit fields: the general path's
    lines = "".join(json.dumps({"id": i, "ts": text}) + "\n" for i, text in enumerate(texts))
    path = tmp_path / "t.json"
    path.write_text(lines)
    mappings = [["id", "long", "event_id", "long"], ["ts", "string", "event_time", "timestamp"]]
    plan = make_plan([path], parse_mappings(mappings), 2**27, JsonLinesWriter("none"))
    assert plan.fast_casts  # before: a sample with cast errors mapped every group in full
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    info = source.write_bytes("t.json", lines.encode())
    result = run_stage(source, [info], mappings, target, name_prefix="run-m", compression="none")
    written = pl.concat([pl.read_ndjson(target.read_bytes(o.key)) for o in target.list()]).sort("event_id")
    assert result.cast_errors == 399 and result.records_written == 2000  # 400 malformed, one replaced
    assert written["event_time"][1500] == "2026-11-24 01:02:03" and written["event_time"][0] is None


def test_a_sample_of_iso_z_times_alone_takes_the_zulu_form_and_other_forms_later_map_in_full(tmp_path: Path) -> None:
    """The sample holds only ``...:55Z`` (the stage maps by that form alone); later values in the other fixed
    forms, an invalid date in the Z form, a malformed value and one only the general path reads: the records
    are still ApplyMapping's (the group is mapped again in full)."""
    from glueflow_dagster.core.mapping import parse_mappings
    from glueflow_dagster.core.stage.plan import make_plan
    from glueflow_dagster.core.stage.write import JsonLinesWriter

    texts = [f"2026-11-24T00:{i // 60 % 60:02d}:{i % 60:02d}Z" for i in range(3000)]
    later = ["2026-11-24T00:00:01.25Z", "2026-11-24 00:00:02+05:30", "2026-02-30T00:00:00Z", "not a time"]
    for offset, text in enumerate([*later, "2026-11-24 1:2:3", "2026-11-24"]):
        texts[2000 + offset] = text
    lines = "".join(json.dumps({"id": i, "ts": text}) + "\n" for i, text in enumerate(texts))
    path = tmp_path / "t.json"
    path.write_text(lines)
    mappings = [["id", "long", "event_id", "long"], ["ts", "string", "event_time", "timestamp"]]
    plan = make_plan([path], parse_mappings(mappings), 2**27, JsonLinesWriter("none"))
    assert plan.fast_casts and plan.zulu_timestamps
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    info = source.write_bytes("t.json", lines.encode())
    result = run_stage(source, [info], mappings, target, name_prefix="run-zulu", compression="none")
    written = pl.concat([pl.read_ndjson(target.read_bytes(o.key)) for o in target.list()]).sort("event_id")
    expected = ApplyMapping.apply(pl.read_ndjson(lines.encode()), mappings).collect()
    expected = expected.with_columns(pl.col("event_time").dt.strftime("%Y-%m-%d %H:%M:%S%.f").str.strip_suffix("000"))
    assert result.cast_errors == 2 and result.records_written == 3000  # the invalid date and "not a time"
    assert written["event_time"].to_list() == expected["event_time"].str.strip_suffix(".000").to_list()
    assert written["event_time"][2000:2006].to_list() == [
        "2026-11-24 00:00:01.250",
        "2026-11-23 18:30:02",
        None,
        None,
        "2026-11-24 01:02:03",
        "2026-11-24 00:00:00",
    ]


def test_a_miss_of_the_zulu_form_falls_back_to_the_fast_paths_and_a_fast_path_miss_to_the_full_casts(
    tmp_path: Path,
) -> None:
    """After a group whose values the ``zulu`` form could not read, later groups keep the fast paths (which read
    fractions and offsets); only a miss of those leaves the run on the full casts."""
    from glueflow_dagster.core.mapping import parse_mappings
    from glueflow_dagster.core.stage.plan import after_miss, make_plan
    from glueflow_dagster.core.stage.write import JsonLinesWriter

    path = tmp_path / "z.json"
    path.write_text("".join(json.dumps({"ts": f"2026-11-24T00:00:{i % 60:02d}Z"}) + "\n" for i in range(500)))
    plan = make_plan([path], parse_mappings([["ts", "string", "ts", "timestamp"]]), 2**27, JsonLinesWriter("none"))
    assert plan.fast_casts and plan.zulu_timestamps
    fast = after_miss(plan)
    assert fast.fast_casts and not fast.zulu_timestamps
    full = after_miss(fast)
    assert not full.fast_casts and not full.plain_timestamps and not full.zulu_timestamps

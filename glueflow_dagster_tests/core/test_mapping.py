"""Tests for applying mappings to frames (Glue's ApplyMapping on polars): the cast tables and the output structure.

Parsing and validation are in test_mapping_parse.py, reading sources for a mapping in test_mapping_read.py.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from glueflow_dagster.core.mapping import ApplyMapping, FieldMapping, cast_error_count, parse_glue_type
from glueflow_dagster_tests.support.apply_mapping import errors, run

D = dt.date
T = dt.datetime
INF = float("inf")


# -------------------------------------------------------------------------------------------------------
# Casts from String (what source_read_schema produces)
# -------------------------------------------------------------------------------------------------------

STRING_CASTS: list[tuple[str, list[str | None], pl.DataType, list[Any]]] = [
    (
        "long",
        [
            " 42 ",
            "-7",
            "+8",
            "3.5",
            "-3.9",
            ".5",
            "7.",
            "1e3",
            "abc",
            "",
            "9223372036854775807",
            "9223372036854775808",
            None,
        ],
        pl.Int64(),
        [42, -7, 8, 3, -3, 0, 7, None, None, None, 9223372036854775807, None, None],
    ),
    (
        "int",
        ["2147483647", "2147483648", "-2147483648", "12.7"],
        pl.Int32(),
        [2147483647, None, -2147483648, 12],
    ),
    ("short", ["32767", "32768", "-32768", "x"], pl.Int16(), [32767, None, -32768, None]),
    ("byte", ["127", "128", "-128", "-129", "\t5\n"], pl.Int8(), [127, None, -128, None, 5]),
    (
        "double",
        [" 1.5 ", "1e3", "-0.25", "inf", "-Infinity", "abc", ""],
        pl.Float64(),
        [1.5, 1000.0, -0.25, INF, -INF, None, None],
    ),
    ("float", ["1.5", "x", "-2"], pl.Float32(), [1.5, None, -2.0]),
    (
        "boolean",
        ["true", "FALSE", " t ", "F", "yes", "No", "Y", "n", "1", "0", "2", "maybe", "", None],
        pl.Boolean(),
        [True, False, True, False, True, False, True, False, True, False, None, None, None, None],
    ),
    (
        "decimal(5,2)",
        ["1.5", " 2.345 ", "-2.345", "2.344999", "999.99", "999.995", "1000", "abc", "1e2", "+.5"],
        pl.Decimal(5, 2),
        [
            Decimal("1.50"),
            Decimal("2.35"),
            Decimal("-2.35"),
            Decimal("2.34"),
            Decimal("999.99"),
            None,
            None,
            None,
            Decimal("100.00"),
            Decimal("0.50"),
        ],
    ),
    # Bare decimal is decimal(10,0); rounding is HALF_UP like Spark.
    (
        "decimal",
        ["12.5", "12.4", "-12.5", "12345678901"],
        pl.Decimal(10, 0),
        [Decimal("13"), Decimal("12"), Decimal("-13"), None],
    ),
    (
        "date",
        [
            "2024-01-05",
            "2024-1-5",
            "2024-01-05T10:11:12Z",
            " 2024-01-05 23:59:59 ",
            "2024-02-30",
            "2024",
            "2024-03",
            "05/01/2024",
            "2024-01-05x",
            "x",
        ],
        pl.Date(),
        [
            D(2024, 1, 5),
            D(2024, 1, 5),
            D(2024, 1, 5),
            D(2024, 1, 5),
            None,
            D(2024, 1, 1),
            D(2024, 3, 1),
            None,
            None,
            None,
        ],
    ),
    (
        "timestamp",
        [
            "2024-01-05 10:11:12",
            "2024-01-05 10:11:12.5",
            "2024-01-05T10:11:12.123456789",
            "2024-01-05T10:11:12Z",
            "2024-01-05T10:11:12+02:00",
            "2024-01-05T10:11:12-0130",
            "2024-01-05T10:11:12 UTC",
            " 2024-01-05 ",
            "2024-1-5 1:2",
            "2024-01-05T25:00:00",
            "2024-01-05T10:11:12+19:00",
            "9999-12-31T23:00:00-02:00",
            "1704449472",
            "-1.5",
            "not a time",
            " 2024-01-05 10:11:12\t",
            "0000-01-01 00:00:00",
            "0001-01-01 00:00:00",
        ],
        pl.Datetime("us"),
        [
            T(2024, 1, 5, 10, 11, 12),
            T(2024, 1, 5, 10, 11, 12, 500000),
            T(2024, 1, 5, 10, 11, 12, 123456),
            T(2024, 1, 5, 10, 11, 12),
            T(2024, 1, 5, 8, 11, 12),
            T(2024, 1, 5, 11, 41, 12),
            T(2024, 1, 5, 10, 11, 12),
            T(2024, 1, 5),
            T(2024, 1, 5, 1, 2),
            None,  # hour 25
            None,  # offset beyond +-18:00
            None,  # past year 9999 in UTC
            None,  # a number in text is no timestamp (Spark: null); a JSON number is read as a number
            None,
            None,
            T(2024, 1, 5, 10, 11, 12),  # the plain form, padded: trimmed like Spark
            None,  # year 0
            T(1, 1, 1),
        ],
    ),
    ("string", ["x", " padded ", "", '{"q": 1}'], pl.String(), ["x", " padded ", "", '{"q": 1}']),
    ("binary", ["ab", "", "\u2603"], pl.Binary(), [b"ab", b"", "\u2603".encode()]),
]


@pytest.mark.parametrize(("target", "values", "dtype", "expected"), STRING_CASTS, ids=[c[0] for c in STRING_CASTS])
def test_cast_from_string(target: str, values: list[str | None], dtype: pl.DataType, expected: list[Any]) -> None:
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    mappings = [("v", "string", "out", target)]
    out = run(frame, mappings)
    assert out.schema == pl.Schema({"out": dtype})
    assert out["out"].to_list() == expected
    # Every non-null input that came out null is one cast error; nothing else is.
    assert errors(frame, mappings) == [int(v is not None and e is None) for v, e in zip(values, expected, strict=True)]


def test_plain_timestamps_read_only_the_plain_form_and_agree_with_the_full_parser_on_it() -> None:
    timestamp_case = next(case for case in STRING_CASTS if case[0] == "timestamp")
    values = timestamp_case[1]
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    mappings = [("v", "string", "out", "timestamp")]
    full = run(frame, mappings)["out"].to_list()
    plain = ApplyMapping.apply(frame, mappings, plain_timestamps=True).collect()["out"].to_list()
    plain_form = [
        v is not None and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", v) for v in values
    ]
    assert any(plain_form) and not all(plain_form)
    # The plain form maps as in full; every other value becomes null, which a caller sees as a cast error.
    assert plain == [f if is_plain else None for f, is_plain in zip(full, plain_form, strict=True)]


def test_plain_timestamps_as_text_write_the_same_json_lines_as_the_plain_form() -> None:
    timestamp_case = next(case for case in STRING_CASTS if case[0] == "timestamp")
    values = [*timestamp_case[1], "0001-01-01 00:00:00", "0000-01-01 00:00:00", "2024-02-30 00:00:00"]
    frame = pl.DataFrame({"v": values, "w": values}, schema={"v": pl.String, "w": pl.String})
    mappings = [("v", "string", "out", "timestamp"), ("w", "string", "nested.at", "timestamp")]
    plain = ApplyMapping.apply(frame, mappings, plain_timestamps=True).collect()
    text = ApplyMapping.apply(frame, mappings, plain_timestamps="text").collect()
    assert text.schema == pl.Schema({"out": pl.String(), "nested": pl.Struct({"at": pl.String()})})
    # The stage writes JSON lines: the source text where the plain form parsed is what polars writes for
    # the timestamp, and nulls stay where they are (so the cast error counts agree too).
    assert text.write_ndjson() == plain.write_ndjson()
    assert text["out"].null_count() == plain["out"].null_count() < len(values)
    # Another time unit or a zone is formatted as its own type: only Glue's timestamp is kept as text.
    other = [FieldMapping(("v",), pl.String(), ("out",), pl.Datetime("ms"))]
    assert ApplyMapping.apply(frame, other, plain_timestamps="text").collect_schema()["out"] == pl.Datetime("ms")


def test_cast_to_null_type_is_not_an_error() -> None:
    frame = pl.DataFrame({"v": ["x", None]})
    mappings = [("v", "string", "out", "null")]
    out = run(frame, mappings)
    assert out.schema == pl.Schema({"out": pl.Null()})
    assert out["out"].to_list() == [None, None]
    assert errors(frame, mappings) == [0, 0]


# -------------------------------------------------------------------------------------------------------
# Casts from typed columns
# -------------------------------------------------------------------------------------------------------

PARIS = pl.Datetime("us", "Europe/Paris")
TYPED_CASTS: list[tuple[str, pl.Series, str, list[Any]]] = [
    ("int64->byte", pl.Series([1, 300, -1, None]), "byte", [1, None, -1, None]),
    ("int64->string", pl.Series([1, -300, None]), "string", ["1", "-300", None]),
    ("int64->boolean", pl.Series([0, 2, -1]), "boolean", [False, True, True]),
    ("int64->decimal", pl.Series([12, 10**12]), "decimal(10,2)", [Decimal("12.00"), None]),
    (
        "int64->timestamp",
        pl.Series([1704449472, 0, 10**15]),
        "timestamp",
        [T(2024, 1, 5, 10, 11, 12), T(1970, 1, 1), None],
    ),
    ("int64->date", pl.Series([1, None]), "date", [None, None]),
    ("uint64->long", pl.Series([2**64 - 1, 5], dtype=pl.UInt64), "long", [None, 5]),
    ("float->long", pl.Series([3.7, -3.7, float("nan"), 1e30, INF]), "long", [3, -3, None, None, None]),
    ("float->int", pl.Series([2.5e9, 2.5]), "int", [None, 2]),
    ("float->string", pl.Series([1.5, -0.25]), "string", ["1.5", "-0.25"]),
    ("float->decimal", pl.Series([1.25, 1e30, float("nan")]), "decimal(10,2)", [Decimal("1.25"), None, None]),
    (
        "float->timestamp",
        pl.Series([1.5, -1.5]),
        "timestamp",
        [T(1970, 1, 1, 0, 0, 1, 500000), T(1969, 12, 31, 23, 59, 58, 500000)],
    ),
    ("double->float", pl.Series([0.5]), "float", [0.5]),
    ("boolean->int", pl.Series([True, False, None]), "int", [1, 0, None]),
    ("boolean->string", pl.Series([True, False]), "string", ["true", "false"]),
    ("boolean->decimal", pl.Series([True, False]), "decimal(3,1)", [Decimal("1.0"), Decimal("0.0")]),
    (
        "decimal->decimal",
        pl.Series(["1.235", "-1.235", "99.995"]).cast(pl.Decimal(10, 3)),
        "decimal(4,2)",
        [Decimal("1.24"), Decimal("-1.24"), None],
    ),
    ("decimal->long", pl.Series(["1.9", "-1.9"]).cast(pl.Decimal(5, 1)), "long", [1, -1]),
    ("decimal->double", pl.Series(["1.5"]).cast(pl.Decimal(5, 1)), "double", [1.5]),
    ("decimal->string", pl.Series(["-2.25"]).cast(pl.Decimal(5, 2)), "string", ["-2.25"]),
    ("date->timestamp", pl.Series([D(2024, 1, 5)]), "timestamp", [T(2024, 1, 5)]),
    ("date->string", pl.Series([D(2024, 1, 5)]), "string", ["2024-01-05"]),
    ("date->int", pl.Series([D(2024, 1, 5)]), "int", [None]),
    (
        "timestamp->long",
        pl.Series([T(2024, 1, 5, 10, 11, 12, 900000), T(1969, 12, 31, 23, 59, 59, 500000)]),
        "long",
        [1704449472, -1],
    ),
    ("timestamp->double", pl.Series([T(1970, 1, 1, 0, 0, 1, 500000)]), "double", [1.5]),
    ("timestamp->date", pl.Series([T(2024, 1, 5, 23, 59)]), "date", [D(2024, 1, 5)]),
    (
        "timestamp->string",
        pl.Series([T(2024, 1, 5, 10, 11, 12), T(2024, 1, 5, 10, 11, 12, 500000)]),
        "string",
        ["2024-01-05 10:11:12", "2024-01-05 10:11:12.5"],  # Spark trims the fraction
    ),
    (
        "timestamp[ns]->timestamp",
        pl.Series([T(2024, 1, 5, 1)], dtype=pl.Datetime("ns")),
        "timestamp",
        [T(2024, 1, 5, 1)],
    ),
    (
        "zoned->timestamp",
        pl.Series([T(2024, 1, 5, 11)]).cast(pl.Datetime("us")).dt.replace_time_zone("Europe/Paris"),
        "timestamp",
        [T(2024, 1, 5, 10)],
    ),
    (
        "zoned->date",
        pl.Series([T(2024, 1, 5, 0, 30)]).dt.replace_time_zone("Europe/Paris"),
        "date",
        [D(2024, 1, 4)],
    ),
    ("struct->string", pl.Series([{"x": 1, "y": "a"}, None]), "string", ['{"x":1,"y":"a"}', None]),
    ("struct->long", pl.Series([{"x": 1}]), "long", [None]),
    ("list->string", pl.Series([[1, 2], [], None]), "string", ["[1,2]", "[]", None]),
    ("binary->string", pl.Series([b"ab", b"\xff", None]), "string", ["ab", "\ufffd", None]),  # UTF-8, as Spark
    ("binary->binary", pl.Series([b"\xff"]), "binary", [b"\xff"]),
    ("null->long", pl.Series([None, None], dtype=pl.Null), "long", [None, None]),
    ("categorical->int", pl.Series(["1", "x"], dtype=pl.Categorical), "int", [1, None]),
    ("duration->string", pl.Series([dt.timedelta(days=1, seconds=5)]), "string", ["P1DT5S"]),
]


@pytest.mark.parametrize(("name", "series", "target", "expected"), TYPED_CASTS, ids=[c[0] for c in TYPED_CASTS])
def test_cast_from_typed_column(name: str, series: pl.Series, target: str, expected: list[Any]) -> None:
    frame = series.alias("v").to_frame()
    mappings = [("v", "string", "out", target)]
    out = run(frame, mappings)
    assert out.schema == pl.Schema({"out": parse_glue_type(target)})
    assert out["out"].to_list() == expected
    source = series.to_list()
    assert errors(frame, mappings) == [int(v is not None and e is None) for v, e in zip(source, expected, strict=True)]


# One column per source dtype with extreme values: no combination may raise, on either engine.
EXTREMES = pl.DataFrame(
    {
        "i8": pl.Series([-128, 127, 0, None], dtype=pl.Int8),
        "i64": pl.Series([-(2**63), 2**63 - 1, 0, None], dtype=pl.Int64),
        "u64": pl.Series([0, 2**64 - 1, 1, None], dtype=pl.UInt64),
        "f32": pl.Series([INF, -INF, float("nan"), 3.4e38], dtype=pl.Float32),
        "f64": pl.Series([1e308, -1e308, float("nan"), 5e-324]),
        "d38": pl.Series([Decimal("9" * 38), Decimal("-" + "9" * 38), Decimal(0), None], dtype=pl.Decimal(38, 0)),
        "d38s": pl.Series(
            [Decimal("0." + "9" * 38), Decimal(0), Decimal("-0." + "9" * 38), None], dtype=pl.Decimal(38, 38)
        ),
        "bool": pl.Series([True, False, None, True]),
        "date": pl.Series([D(1, 1, 1), D(9999, 12, 31), D(1970, 1, 1), None]),
        "ns": pl.Series([T(1677, 9, 22), T(2262, 4, 11), T(1970, 1, 1), None], dtype=pl.Datetime("ns")),
        "ms": pl.Series([T(1, 1, 1), T(9999, 12, 31, 23, 59, 59), T(1970, 1, 1), None], dtype=pl.Datetime("ms")),
        "zoned": pl.Series([T(1, 1, 2), T(9999, 12, 30), T(1970, 1, 1), None]).dt.replace_time_zone("America/New_York"),
        "time": pl.Series([dt.time(0), dt.time(23, 59, 59), None, dt.time(12)]),
        "duration": pl.Series([dt.timedelta(days=1), dt.timedelta(0), None, dt.timedelta(days=-99999)]),
        "str": pl.Series(["", "9" * 400, "\x00\u2603", None]),
        "numeric_str": pl.Series(["1e400", "-1e-400", "-9223372036854775808", "9999-12-31T23:59:59.999999999-18:00"]),
        "junk_str": pl.Series(["0000-00-00", "9999-99-99 99:99:99", "-1", "+.e"]),
        "binary": pl.Series([b"", b"\xff\xfe", None, b"abc"]),
        "struct": pl.Series([{"a": 1, "b": [1]}, None, {"a": None, "b": None}, {"a": 2, "b": []}]),
        "list": pl.Series([[1], None, [], [None]]),
        "array": pl.Series([[1, 2], None, [3, 4], [5, 6]], dtype=pl.Array(pl.Int64, 2)),
        "null": pl.Series([None] * 4, dtype=pl.Null),
        "categorical": pl.Series(["1", "x", None, "true"], dtype=pl.Categorical),
    }
)
ALL_TARGETS = [
    "string",
    "boolean",
    "byte",
    "short",
    "int",
    "long",
    "float",
    "double",
    "decimal",
    "decimal(38,0)",
    "decimal(38,38)",
    "decimal(1,0)",
    "decimal(37,2)",
    "date",
    "timestamp",
    "binary",
    "null",
]


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_every_source_dtype_casts_without_raising(target: str) -> None:
    mappings = [(name, "string", name, target) for name in EXTREMES.columns]
    streaming = run(EXTREMES, mappings)
    in_memory = ApplyMapping.apply(EXTREMES, mappings).collect()
    assert streaming.equals(in_memory)
    assert streaming.schema == pl.Schema({name: parse_glue_type(target) for name in EXTREMES.columns})
    streaming.rows()  # every value converts to Python (no year 10000 and the like)
    assert len(errors(EXTREMES, mappings)) == EXTREMES.height


# -------------------------------------------------------------------------------------------------------
# Structure: selection, order, nesting, missing sources, case
# -------------------------------------------------------------------------------------------------------


def test_only_mapped_fields_survive_in_mapping_order() -> None:
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [1.5, 2.5], "d": [True, False]})
    out = run(frame, [("c", "double", "first", "double"), ("a", "long", "second", "string")])
    assert out.schema == pl.Schema({"first": pl.Float64(), "second": pl.String()})
    assert out.rows() == [(1.5, "1"), (2.5, "2")]


def test_nested_targets_merge_at_first_position() -> None:
    frame = pl.DataFrame({"a": [1], "b": ["ann"], "c": [2], "d": ["a@x"], "e": ["Oslo"]})
    mappings = [
        ("a", "long", "id", "long"),
        ("b", "string", "user.name", "string"),
        ("c", "long", "other", "long"),
        ("d", "string", "user.email", "string"),
        ("e", "string", "user.addr.city", "string"),
    ]
    out = run(frame, mappings)
    user = pl.Struct({"name": pl.String(), "email": pl.String(), "addr": pl.Struct({"city": pl.String()})})
    assert out.schema == pl.Schema({"id": pl.Int64(), "user": user, "other": pl.Int64()})
    assert out.rows() == [(1, {"name": "ann", "email": "a@x", "addr": {"city": "Oslo"}}, 2)]


def test_dotted_and_backticked_sources() -> None:
    frame = pl.DataFrame(
        {
            "user": [{"id": "1", "x.y": "2", "deep": {"z": "3"}}, {"id": None, "x.y": "x", "deep": None}],
            "this.old.name": ["keep", None],
            "user.id": ["top-level, not the nested one", "!"],
        }
    )
    mappings = [
        ("user.id", "string", "id", "long"),
        ("user.`x.y`", "string", "xy", "int"),
        ("user.deep.z", "string", "z", "short"),
        ("`this.old.name`", "string", "thisNewName", "string"),
        ("`user.id`", "string", "literal", "string"),
    ]
    out = run(frame, mappings)
    assert out.schema == pl.Schema(
        {
            "id": pl.Int64(),
            "xy": pl.Int32(),
            "z": pl.Int16(),
            "thisNewName": pl.String(),
            "literal": pl.String(),
        }
    )
    assert out.rows() == [(1, 2, 3, "keep", "top-level, not the nested one"), (None, None, None, None, "!")]
    assert errors(frame, mappings) == [0, 1]


def test_missing_sources_give_typed_nulls_of_frame_height() -> None:
    frame = pl.DataFrame({"a": [1, 2, 3], "s": [5, 6, 7]})
    mappings = [
        ("nope", "string", "x", "long"),
        ("a.b", "string", "y.inner", "date"),  # `a` is not a struct: missing
        ("s.deep", "string", "y.other", "timestamp"),
    ]
    out = run(frame, mappings)
    assert out.schema == pl.Schema({"x": pl.Int64(), "y": pl.Struct({"inner": pl.Date(), "other": pl.Datetime("us")})})
    assert out.rows() == [(None, {"inner": None, "other": None})] * 3
    # Missing is not a cast failure.
    assert errors(frame, mappings) == [0, 0, 0]


def test_missing_source_next_to_present_one() -> None:
    frame = pl.LazyFrame({"a": ["1", "2"]})
    out = run(frame, [("a", "string", "a", "int"), ("b", "string", "b", "boolean")])
    assert out.schema == pl.Schema({"a": pl.Int32(), "b": pl.Boolean()})
    assert out.rows() == [(1, None), (2, None)]


CASE_FRAME = pl.DataFrame(
    {
        "ID": pl.Series([1, None, 3, None]),
        "User": pl.Series([{"Name": "ann"}, {"Name": None}, None, {"Name": "dan"}]),
        "id": pl.Series([None, "2", "4", "bad"]),
    }
)


@pytest.mark.parametrize(
    ("source", "case_sensitive", "expected", "expected_errors"),
    [
        # Both spellings are read and coalesced in schema order: "ID" wins over "id" on row 3.
        ("id", False, [1, 2, 3, None], [0, 0, 0, 1]),
        ("Id", False, [1, 2, 3, None], [0, 0, 0, 1]),
        ("id", True, [None, 2, 4, None], [0, 0, 0, 1]),
        ("ID", True, [1, None, 3, None], [0, 0, 0, 0]),
        ("Id", True, [None, None, None, None], [0, 0, 0, 0]),
    ],
)
def test_case_matching(source: str, case_sensitive: bool, expected: list[Any], expected_errors: list[int]) -> None:
    mappings = [(source, "long", "key", "long")]
    out = run(CASE_FRAME, mappings, case_sensitive=case_sensitive)
    assert out["key"].to_list() == expected
    assert errors(CASE_FRAME, mappings, case_sensitive=case_sensitive) == expected_errors


@pytest.mark.parametrize(
    ("source", "case_sensitive", "expected"),
    [
        ("user.name", False, ["ann", None, None, "dan"]),
        ("USER.NAME", False, ["ann", None, None, "dan"]),
        ("User.Name", True, ["ann", None, None, "dan"]),
        ("user.name", True, [None, None, None, None]),
    ],
)
def test_case_matching_nested(source: str, case_sensitive: bool, expected: list[Any]) -> None:
    out = run(CASE_FRAME, [(source, "string", "name", "string")], case_sensitive=case_sensitive)
    assert out["name"].to_list() == expected


def test_nested_path_inside_json_text() -> None:
    # An object read as String (e.g. because it is also mapped whole) is descended as JSON.
    frame = pl.DataFrame({"raw": ['{"k": {"z": 1, "a.b": "x"}}', "plain text", '{"k": 5}', None]})
    mappings = [
        ("raw.k.z", "string", "z", "long"),
        ("raw.k.`a.b`", "string", "ab", "string"),
        ("raw", "string", "raw", "string"),
    ]
    out = run(frame, mappings)
    assert out.rows() == [
        (1, "x", '{"k": {"z": 1, "a.b": "x"}}'),
        (None, None, "plain text"),
        (None, None, '{"k": 5}'),
        (None, None, None),
    ]
    assert errors(frame, mappings) == [0, 0, 0, 0]


@pytest.mark.parametrize("lazy", [False, True])
def test_apply_returns_lazyframe_for_eager_and_lazy_input(lazy: bool) -> None:
    frame = pl.DataFrame({"a": ["1", "x"], "b": ["2024-01-05", None]})
    source = frame.lazy() if lazy else frame
    result = ApplyMapping.apply(source, [("a", "string", "a", "long"), ("b", "string", "b", "date")])
    assert isinstance(result, pl.LazyFrame)
    assert result.collect(engine="streaming").rows() == [(1, D(2024, 1, 5)), (None, None)]


@pytest.mark.parametrize("lazy", [False, True])
def test_cast_error_count_sums_failures(lazy: bool) -> None:
    frame = pl.DataFrame({"n": ["1", "x", None, "y"], "d": ["2024-01-05", "bad", "bad", None]})
    source = frame.lazy() if lazy else frame
    mappings = [("n", "string", "n", "int"), ("d", "string", "d", "date"), ("gone", "string", "g", "long")]
    total = source.lazy().select(cast_error_count(source, mappings).sum()).collect(engine="streaming")
    assert total.rows() == [(4,)]
    assert errors(source, mappings) == [0, 2, 1, 1]


def test_cast_error_count_with_only_missing_sources_keeps_height() -> None:
    frame = pl.DataFrame({"a": [1, 2, 3]})
    assert errors(frame, [("nope", "string", "x", "long")]) == [0, 0, 0]


# -------------------------------------------------------------------------------------------------------
# Glue Studio's struct/array types and array elements
# -------------------------------------------------------------------------------------------------------


def test_array_elements_in_typed_lists_and_in_json_text() -> None:
    frame = pl.DataFrame(
        {
            "items": [[{"sku": "a1", "n": 2}, {"sku": "b2", "n": 1}], [], None],
            "fixed": pl.Series([[1, 2], [3, 4], None], dtype=pl.Array(pl.Int64, 2)),
            "raw": ['{"items": [{"sku": "x"}]}', "[1]", None],
        }
    )
    mappings = [
        ("items[0].sku", "string", "first", "string"),
        ("ITEMS[1].n", "int", "second_n", "long"),
        ("fixed[1]", "long", "fixed_1", "long"),
        ("raw.items[0].sku", "string", "raw_sku", "string"),
        ("items[5].sku", "string", "beyond", "string"),
    ]
    assert run(frame, mappings).rows() == [
        ("a1", 1, 2, "x", None),
        (None, None, 4, None, None),
        (None, None, None, None, None),
    ]


def test_struct_and_array_types_pass_through_or_become_json_text() -> None:
    frame = pl.DataFrame({"u": [{"k": 1, "s": "x"}, None], "items": [[1, 2], []], "n": [5, 6]})
    mappings = [
        ("u", "struct", "u", "struct"),
        ("items", "array", "items", "array"),
        ("u", "struct", "u_text", "string"),
        ("items", "array", "items_text", "string"),
        ("n", "long", "n_struct", "struct"),
    ]
    out = run(frame, mappings)
    assert out.schema["u"] == frame.schema["u"] and out.schema["items"] == frame.schema["items"]
    assert out.rows() == [
        ({"k": 1, "s": "x"}, [1, 2], '{"k":1,"s":"x"}', "[1,2]", None),
        (None, [], None, "[]", None),
    ]
    assert errors(frame, mappings) == [1, 1]  # a number is no struct

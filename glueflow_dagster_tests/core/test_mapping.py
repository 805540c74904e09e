"""Tests for glueflow_dagster.core.mapping (Glue's ApplyMapping on polars)."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from glueflow_dagster.core.mapping import (
    ApplyMapping,
    FieldMapping,
    MappingError,
    cast_error_count,
    parse_glue_type,
    parse_mappings,
    parse_path,
    source_read_schema,
)

D = dt.date
T = dt.datetime
INF = float("inf")


def run(frame: pl.DataFrame | pl.LazyFrame, mappings: Any, case_sensitive: bool = False) -> pl.DataFrame:
    """Apply the mappings and collect on the streaming engine (the engine the jobs use)."""
    result = ApplyMapping.apply(frame, mappings, case_sensitive=case_sensitive)
    assert isinstance(result, pl.LazyFrame)
    return result.collect(engine="streaming")


def errors(frame: pl.DataFrame | pl.LazyFrame, mappings: Any, case_sensitive: bool = False) -> list[int]:
    """Per-row cast error counts, evaluated over the original frame."""
    expr = cast_error_count(frame, mappings, case_sensitive=case_sensitive)
    out = frame.lazy().select(expr).collect(engine="streaming")
    assert out.dtypes == [pl.UInt32]
    return out.to_series().to_list()


# -------------------------------------------------------------------------------------------------------
# parse_glue_type
# -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("string", pl.String()),
        ("String", pl.String()),
        ("STRING", pl.String()),
        ("boolean", pl.Boolean()),
        ("Boolean", pl.Boolean()),
        ("byte", pl.Int8()),
        ("Byte", pl.Int8()),
        ("tinyint", pl.Int8()),
        ("short", pl.Int16()),
        ("Short", pl.Int16()),
        ("smallint", pl.Int16()),
        ("int", pl.Int32()),
        ("Int", pl.Int32()),
        ("integer", pl.Int32()),
        ("INTEGER", pl.Int32()),
        ("long", pl.Int64()),
        ("Long", pl.Int64()),
        ("bigint", pl.Int64()),
        ("BigInt", pl.Int64()),
        ("float", pl.Float32()),
        ("Float", pl.Float32()),
        ("double", pl.Float64()),
        ("Double", pl.Float64()),
        ("decimal", pl.Decimal(10, 0)),
        ("Decimal", pl.Decimal(10, 0)),
        ("decimal(38,0)", pl.Decimal(38, 0)),
        ("DECIMAL(10, 2)", pl.Decimal(10, 2)),
        ("decimal(7)", pl.Decimal(7, 0)),
        ("decimal(38,38)", pl.Decimal(38, 38)),
        ("date", pl.Date()),
        ("Date", pl.Date()),
        ("timestamp", pl.Datetime("us")),
        ("Timestamp", pl.Datetime("us")),
        ("binary", pl.Binary()),
        ("Binary", pl.Binary()),
        ("null", pl.Null()),
        ("NULL", pl.Null()),
        (" long ", pl.Int64()),
    ],
)
def test_parse_glue_type(name: str, expected: pl.DataType) -> None:
    got = parse_glue_type(name)
    # == on dtypes compares parameters too (Decimal precision/scale, Datetime unit and zone).
    assert got == expected
    assert repr(got) == repr(expected)


def test_timestamp_is_naive_microseconds() -> None:
    got = parse_glue_type("timestamp")
    assert isinstance(got, pl.Datetime)
    assert got.time_unit == "us"
    assert got.time_zone is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("integr", "unknown type 'integr'"),
        ("", "unknown type ''"),
        ("struct<a:int>", "unknown type 'struct<a:int>'"),
        ("array<int>", "unknown type 'array<int>'"),
        ("long long", "unknown type 'long long'"),
        ("decimal(", "unknown type 'decimal('"),
        ("decimal(0,0)", "invalid decimal 'decimal(0,0)'"),
        ("decimal(5,6)", "invalid decimal 'decimal(5,6)'"),
        ("decimal(39,0)", "invalid decimal 'decimal(39,0)'"),
        (5, "type must be a string, got 5"),
    ],
)
def test_parse_glue_type_rejects(name: Any, message: str) -> None:
    with pytest.raises(MappingError, match=re.escape(message)):
        parse_glue_type(name)


def test_mapping_error_is_value_error() -> None:
    assert issubclass(MappingError, ValueError)


# -------------------------------------------------------------------------------------------------------
# parse_path
# -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a", ("a",)),
        ("a.b.c", ("a", "b", "c")),
        ("`this.old.name`", ("this.old.name",)),
        ("user.`x.y`.z", ("user", "x.y", "z")),
        ("`x.y`.`z`", ("x.y", "z")),
        ("`a``b`", ("a`b",)),
        ("with space.x", ("with space", "x")),
        ("Mixed.Case", ("Mixed", "Case")),
    ],
)
def test_parse_path(path: str, expected: tuple[str, ...]) -> None:
    assert parse_path(path) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "empty path"),
        (".", "empty name"),
        ("a.", "empty name"),
        (".a", "empty name"),
        ("a..b", "empty name"),
        ("``", "empty name"),
        ("`a", "unbalanced backtick"),
        ("a`b", "unbalanced backtick"),
        ("a.`b", "unbalanced backtick"),
        ("`a`b", "after closing backtick"),
        ("`a.b`c.d", "after closing backtick"),
        (None, "path must be a string"),
    ],
)
def test_parse_path_rejects(path: Any, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_path(path)


# -------------------------------------------------------------------------------------------------------
# parse_mappings
# -------------------------------------------------------------------------------------------------------


def test_parse_mappings_accepts_lists_tuples_and_parsed() -> None:
    parsed = parse_mappings(
        [
            ["user.`x.y`", "String", "out.xy", "Long"],
            ("a", "int", "out.a", "decimal(5,2)"),
            FieldMapping(("b",), pl.String(), ("c",), pl.Date()),
        ]
    )
    assert parsed == (
        FieldMapping(("user", "x.y"), pl.String(), ("out", "xy"), pl.Int64()),
        FieldMapping(("a",), pl.Int32(), ("out", "a"), pl.Decimal(5, 2)),
        FieldMapping(("b",), pl.String(), ("c",), pl.Date()),
    )
    # Parsing is idempotent, so callers may pass the result around.
    assert parse_mappings(parsed) == parsed
    # A one-shot iterable works too.
    assert parse_mappings(iter([("a", "int", "b", "long")])) == (FieldMapping(("a",), pl.Int32(), ("b",), pl.Int64()),)


def test_parse_mappings_accepts_dtype_classes_in_field_mapping() -> None:
    (fm,) = parse_mappings([FieldMapping(("a",), pl.String, ("b",), pl.Int64)])  # type: ignore[arg-type]
    assert fm.target_type == pl.Int64()
    assert isinstance(fm.target_type, pl.Int64)


GOOD = ("ok", "string", "ok", "string")


@pytest.mark.parametrize(
    ("mappings", "message"),
    [
        (
            [GOOD, GOOD[:2] + ("ok2", "string"), ("user.id", "integr", "user_id", "long")],
            "mapping #2 ('user.id', 'integr', 'user_id', 'long'): unknown type 'integr' (source_type)",
        ),
        (
            [("a", "string", "b", "lng")],
            "mapping #0 ('a', 'string', 'b', 'lng'): unknown type 'lng' (target_type)",
        ),
        ([("a", "string", "b")], "mapping #0 ('a', 'string', 'b'): expected 4 fields"),
        (
            [GOOD, ["a", "string", "b", "long", "x"]],
            "mapping #1 ('a', 'string', 'b', 'long', 'x'): expected 4 fields",
        ),
        (
            [("a", None, "b", "long")],
            "mapping #0 ('a', None, 'b', 'long'): source_type must be a string, got None",
        ),
        (
            [("a", "string", 5, "long")],
            "mapping #0 ('a', 'string', 5, 'long'): target must be a string, got 5",
        ),
        ([GOOD, "abcd"], "mapping #1 'abcd': expected a (source, source_type, target, target_type) sequence"),
        ([GOOD, 7], "mapping #1 7: expected a (source, source_type, target, target_type) sequence"),
        ([("", "string", "b", "long")], "mapping #0 ('', 'string', 'b', 'long'): empty path (source)"),
        ([("a", "string", "b..c", "long")], "mapping #0 ('a', 'string', 'b..c', 'long'): empty name in path"),
        ([("`a", "string", "b", "long")], "mapping #0 ('`a', 'string', 'b', 'long'): unbalanced backtick"),
        (
            [("a", "string", "x", "long"), ("b", "string", "x", "int")],
            "mapping #1 ('b', 'string', 'x', 'int'): duplicate target 'x' (also mapping #0)",
        ),
        (
            [("a", "string", "s.x", "long"), ("b", "string", "`s`.x", "int")],
            "mapping #1 ('b', 'string', '`s`.x', 'int'): duplicate target 's.x' (also mapping #0)",
        ),
        (
            [("a", "string", "a", "long"), ("b", "string", "a.b", "long")],
            "mapping #1 ('b', 'string', 'a.b', 'long'): target 'a.b' needs 'a' to be a struct, "
            "but mapping #0 maps a value to it",
        ),
        (
            [("b", "string", "a.b.c", "long"), ("a", "string", "a", "long")],
            "mapping #1 ('a', 'string', 'a', 'long'): target 'a' is also a struct holding the target of mapping #0",
        ),
        ([], "no mappings given"),
        ("a,string,b,long", "mappings must be a list of 4-sequences"),
    ],
)
def test_parse_mappings_rejects(mappings: Any, message: str) -> None:
    with pytest.raises(MappingError) as info:
        parse_mappings(mappings)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_validation_happens_before_any_data_is_read() -> None:
    # Resolving this frame's schema would fail; the bad mapping must be reported first.
    broken = pl.LazyFrame({"a": [1]}).select(pl.col("does_not_exist"))
    bad = [("a", "string", "b", "nope")]
    with pytest.raises(MappingError, match="unknown type 'nope'"):
        ApplyMapping.apply(broken, bad)
    with pytest.raises(MappingError, match="unknown type 'nope'"):
        cast_error_count(broken, bad)
    with pytest.raises(MappingError, match="unknown type 'nope'"):
        source_read_schema(bad)


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
# source_read_schema
# -------------------------------------------------------------------------------------------------------

READ_MAPPINGS = [
    ("id", "long", "id", "long"),
    ("user.name", "string", "user.name", "string"),
    ("user.`x.y`", "int", "user.xy", "int"),
    ("user.addr.city", "string", "city", "string"),
    ("Ts", "string", "ts", "timestamp"),
    ("user.missing", "string", "user.missing", "string"),
]


# Read schemas list fields in code-point order (uppercase first), whatever the mapping or sample order.
UNOBSERVED_READ = pl.Schema(
    {
        "Ts": pl.String(),
        "id": pl.String(),
        "user": pl.Struct(
            {
                "addr": pl.Struct({"city": pl.String()}),
                "missing": pl.String(),
                "name": pl.String(),
                "x.y": pl.String(),
            }
        ),
    }
)


def test_source_read_schema_without_observed() -> None:
    assert list(source_read_schema(READ_MAPPINGS).items()) == list(UNOBSERVED_READ.items())


@pytest.mark.parametrize(
    "mappings",
    [
        [("u", "string", "raw", "string"), ("u.x", "int", "x", "int")],
        [("u.x", "int", "x", "int"), ("u", "string", "raw", "string")],
    ],
)
def test_source_read_schema_reads_a_field_mapped_whole_and_nested_as_text(
    mappings: list[tuple[str, ...]],
) -> None:
    assert source_read_schema(mappings) == pl.Schema({"u": pl.String()})


OBSERVED = pl.Schema(
    {
        "ts": pl.Int64(),
        "ID": pl.Int64(),
        "User": pl.Struct({"Name": pl.String(), "x.y": pl.Int64(), "extra": pl.Boolean(), "NAME": pl.String()}),
        "other": pl.String(),
        "id": pl.String(),
    }
)


def test_source_read_schema_with_observed_reads_every_spelling_in_code_point_order() -> None:
    # Observed JSON types are kept (numbers as Int64), so casts see what a frame read by polars shows.
    expected = {
        "ID": pl.Int64(),
        "User": pl.Struct(
            {
                "NAME": pl.String(),
                "Name": pl.String(),
                "addr": pl.Struct({"city": pl.String()}),  # not observed: the mapping's own spelling
                "missing": pl.String(),
                "x.y": pl.Int64(),
            }
        ),
        "id": pl.String(),
        "ts": pl.Int64(),
    }
    assert list(source_read_schema(READ_MAPPINGS, OBSERVED).items()) == list(expected.items())


def _reversed(schema: pl.Schema) -> pl.Schema:
    flip = {
        name: pl.Struct(dict(reversed(list(_reversed(pl.Schema({f.name: f.dtype for f in dtype.fields})).items()))))
        if isinstance(dtype, pl.Struct)
        else dtype
        for name, dtype in schema.items()
    }
    return pl.Schema(dict(reversed(list(flip.items()))))


def test_the_spelling_a_record_gives_does_not_depend_on_the_sample_order() -> None:
    # polars' NDJSON inference orders the fields of records with differing keys differently from one
    # process to the next; which of ID and id a record holding both gives must not follow it.
    flipped = _reversed(OBSERVED)
    assert list(flipped) != list(OBSERVED)
    read = source_read_schema(READ_MAPPINGS, OBSERVED)
    assert list(source_read_schema(READ_MAPPINGS, flipped).items()) == list(read.items())
    frame = pl.LazyFrame([{"ID": 3, "id": "4"}], schema={name: read[name] for name in ("ID", "id")})
    for schema in (OBSERVED, flipped):
        ordered = source_read_schema([("id", "long", "key", "long")], schema)
        assert run(frame.select(list(ordered)), [("id", "long", "key", "long")])["key"].to_list() == [3]


def test_source_read_schema_with_observed_case_sensitive() -> None:
    assert list(source_read_schema(READ_MAPPINGS, OBSERVED, case_sensitive=True).items()) == list(
        UNOBSERVED_READ.items()
    )


def test_source_read_schema_reads_an_observed_scalar_prefix_as_text() -> None:
    # Reading `u` as a struct would fail on the scalar the sample shows; read it as text instead.
    observed = pl.Schema({"u": pl.Int64(), "v": pl.String()})
    mappings = [("u.x", "string", "x", "string"), ("V.y", "string", "y", "string")]
    assert source_read_schema(mappings, observed) == pl.Schema({"u": pl.String(), "v": pl.String()})


# -------------------------------------------------------------------------------------------------------
# End to end: NDJSON -> scan_ndjson(schema=source_read_schema(...)) -> apply on the streaming engine
# -------------------------------------------------------------------------------------------------------

RECORDS = [
    {
        "ID": 1,
        "User": {"Name": "ann", "x.y": "5", "extra": True},
        "price": "12.345",
        "ok": "yes",
        "when": "2024-01-05T10:11:12+02:00",
        "tags": ["a", "b"],
        "meta": {"k": 1},
        "junk": "dropped",
    },
    {
        "id": "2",
        "User": {"Name": "bob", "x.y": 7},
        "price": 3,
        "ok": False,
        "when": 1704449472,
        "tags": None,
        "meta": "not json",
        "junk": 1,
    },
    {"Id": "three", "User": None, "price": "abc", "ok": "maybe", "when": "garbage", "meta": {"k": "x"}},
]
E2E_MAPPINGS = [
    ("id", "long", "id", "long"),
    ("user.name", "string", "user.name", "string"),
    ("user.`x.y`", "int", "user.xy", "int"),
    ("price", "string", "price", "decimal(10,2)"),
    ("ok", "string", "ok", "boolean"),
    ("when", "string", "when", "timestamp"),
    ("tags", "string", "tags", "string"),
    ("meta", "string", "meta_text", "string"),
    ("meta.k", "string", "meta_k", "long"),
    ("absent", "string", "absent", "date"),
]
E2E_SCHEMA = pl.Schema(
    {
        "id": pl.Int64(),
        "user": pl.Struct({"name": pl.String(), "xy": pl.Int32()}),
        "price": pl.Decimal(10, 2),
        "ok": pl.Boolean(),
        "when": pl.Datetime("us"),
        "tags": pl.String(),
        "meta_text": pl.String(),
        "meta_k": pl.Int64(),
        "absent": pl.Date(),
    }
)


@pytest.fixture
def ndjson_file(tmp_path: Path) -> Path:
    path = tmp_path / "part-0.json"
    path.write_text("".join(json.dumps(record) + "\n" for record in RECORDS))
    return path


def test_ndjson_reader_renders_any_json_value_as_text(ndjson_file: Path) -> None:
    schema = pl.Schema({"ID": pl.String(), "ok": pl.String(), "meta": pl.String(), "tags": pl.String()})
    read = pl.scan_ndjson(ndjson_file, schema=schema).collect(engine="streaming")
    assert read.rows() == [
        ("1", "yes", '{"k": 1}', '["a", "b"]'),
        (None, "false", "not json", None),
        (None, "maybe", '{"k": "x"}', None),
    ]


def test_end_to_end_with_observed_schema(ndjson_file: Path) -> None:
    observed = pl.scan_ndjson(ndjson_file).collect_schema()
    frame = pl.scan_ndjson(ndjson_file, schema=source_read_schema(E2E_MAPPINGS, observed))
    out = run(frame, E2E_MAPPINGS)
    assert out.schema == E2E_SCHEMA
    assert out.rows() == [
        (
            1,
            {"name": "ann", "xy": 5},
            Decimal("12.35"),
            True,
            T(2024, 1, 5, 8, 11, 12),
            '["a","b"]',  # an array, observed as one: compact JSON text
            '{"k": 1}',  # a field that is an object in one record and text in another: read as text
            1,
            None,
        ),
        (
            2,
            {"name": "bob", "xy": 7},
            Decimal("3.00"),
            False,
            None,  # the number 1704449472 in a field read as text (it also holds text): no timestamp
            None,
            "not json",
            None,
            None,
        ),
        (None, {"name": None, "xy": None}, None, None, None, None, '{"k": "x"}', None, None),
    ]
    # Row 3: "three" -> long, "abc" -> decimal, "maybe" -> boolean, "garbage" -> timestamp, "x" -> long.
    assert errors(frame, E2E_MAPPINGS) == [0, 1, 5]


def test_end_to_end_without_observed_uses_mapping_spelling(ndjson_file: Path) -> None:
    frame = pl.scan_ndjson(ndjson_file, schema=source_read_schema(E2E_MAPPINGS))
    out = run(frame, E2E_MAPPINGS)
    assert out.schema == E2E_SCHEMA
    # Only the exact spellings are read: "ID", "Id" and "User" stay unread, so those values are null.
    assert out.select("id", "user", "price").rows() == [
        (None, {"name": None, "xy": None}, Decimal("12.35")),
        (2, {"name": None, "xy": None}, Decimal("3.00")),
        (None, {"name": None, "xy": None}, None),
    ]
    assert errors(frame, E2E_MAPPINGS) == [0, 1, 4]


# -------------------------------------------------------------------------------------------------------
# Glue Studio's struct/array types, array element paths, JSON types in the read schema
# -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("items[0].sku", ("items", 0, "sku")),
        ("a[1][2]", ("a", 1, 2)),
        ("`a.b`[3].c", ("a.b", 3, "c")),
        ("x.y[10]", ("x", "y", 10)),
    ],
)
def test_parse_path_reads_array_indexes(path: str, expected: tuple[str | int, ...]) -> None:
    assert parse_path(path) == expected


def test_an_array_index_is_only_allowed_in_a_source() -> None:
    with pytest.raises(MappingError, match=re.escape("an array index cannot be a target (target)")):
        parse_mappings([("a", "string", "b[0]", "string")])
    with pytest.raises(MappingError, match="must be a non-empty tuple"):
        parse_mappings([FieldMapping(("a",), pl.String(), ("b", 0), pl.String())])  # type: ignore[arg-type]
    assert parse_mappings([FieldMapping(("a", 0), pl.String(), ("b",), pl.String())])[0].source == ("a", 0)


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


def test_source_read_schema_keeps_observed_json_types() -> None:
    observed = pl.Schema(
        {
            "flag": pl.Boolean(),
            "n": pl.Int64(),
            "x": pl.Float64(),
            "items": pl.List(pl.Struct({"sku": pl.String()})),
            "empty": pl.List(pl.Null()),
            "big": pl.Int128(),
        }
    )
    mappings = [
        ("flag", "boolean", "flag", "int"),
        ("n", "long", "n", "boolean"),
        ("x", "double", "x", "string"),
        ("items[0].sku", "string", "sku", "string"),
        ("empty", "array", "empty", "array"),
        ("big", "string", "big", "string"),
    ]
    assert dict(source_read_schema(mappings, observed)) == dict(  # types only; the order is code points'
        {
            "flag": pl.Boolean(),
            "n": pl.Int64(),
            "x": pl.Float64(),
            "items": pl.List(pl.Struct({"sku": pl.String()})),
            "empty": pl.String(),  # an array only ever seen empty: its elements' type is unknown
            "big": pl.String(),
        }
    )
    assert set(source_read_schema(mappings, observed, typed=False).values()) == {pl.String()}
    assert source_read_schema(mappings, observed, typed={1})["n"] == pl.Int64()
    assert source_read_schema(mappings, observed, typed={1})["flag"] == pl.String()

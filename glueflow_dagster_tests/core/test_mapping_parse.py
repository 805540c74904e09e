"""Tests for parsing and validating mappings (glueflow_dagster.core.mapping): Glue types, paths, mapping lists."""

from __future__ import annotations

import re
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
# Glue Studio's array element paths
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

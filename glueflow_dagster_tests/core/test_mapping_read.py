"""Tests for reading sources for a mapping: source_read_schema, and NDJSON read with it then mapped end to end."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from glueflow_dagster.core.mapping import source_read_schema
from glueflow_dagster_tests.support.apply_mapping import errors, run

T = dt.datetime


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
# JSON types in the read schema (Glue Studio's struct/array types)
# -------------------------------------------------------------------------------------------------------


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

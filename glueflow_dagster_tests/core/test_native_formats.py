"""CSV and Parquet scanned natively by the stage's query give what the JSON-lines path gave, record for record.

Each test stages the same objects twice with the real stage: natively (the default; the test checks that
no JSON lines were written) and through the converting path (objects -> JSON lines -> the JSON query, the
path every group took before ``formats.native``, forced here by refusing the native frame), and compares
the outputs byte for byte (JSON lines, CSV) or value for value (Parquet), the figures and the quarantine.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from glueflow_dagster.core.formats import convert
from glueflow_dagster.core.formats.convert import ConvertingReader
from glueflow_dagster.core.formats.csv import CsvSource
from glueflow_dagster.core.formats.native import concatenated, native_frames, sample_json_lines, timestamp_sources
from glueflow_dagster.core.formats.options import CsvOptions, DataFormat
from glueflow_dagster.core.formats.parquet import ParquetSource
from glueflow_dagster.core.mapping import ApplyMapping, parse_mappings
from glueflow_dagster.core.stage import run as run_module
from glueflow_dagster.core.stage import run_stage
from glueflow_dagster.core.stage.plan import make_plan
from glueflow_dagster.core.stage.write import JsonLinesWriter
from glueflow_dagster.core.storage import LocalStorage
from glueflow_dagster_tests.core.test_streaming_plan import streaming_problems

# Quoted separators, doubled quotes, quoted line breaks, a BOM, empty fields; two objects, the second
# spelling its header in other cases (names match case-insensitively).
TRICKY_CSV = {
    "a.csv": b'\xef\xbb\xbfid,name,note,ts,amount\n1,"Smith, Jane","she said ""hi""",2024-01-02 03:04:05,1.5\n'
    b'2,"two\nlines",plain,2024-01-02T03:04:05Z,2\n3,,,,\n',
    "b.csv": b'ID,Name,NOTE,Ts,AMOUNT\n4,"x,y","""q""","2024-02-29 23:59:59.123456",-0.25\r\n5,z,"a\r\nb",bad,x\r\n',
}
CSV_MAPPINGS = [
    ["id", "string", "event_id", "long"],
    ["name", "string", "name", "string"],
    ["note", "string", "note", "string"],
    ["ts", "string", "event_time", "timestamp"],
    ["amount", "string", "amount", "double"],
]


def _stage(tmp_path: Path, label: str, objects: dict[str, bytes], mappings: list[list[str]], **formats: Any) -> Any:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / label)
    for key, data in objects.items():
        source.write_bytes(key, data)
    result = run_stage(
        source, list(source.list()), mappings, target, name_prefix="run-n-attempt-1", max_error_records=10, **formats
    )
    return result, target


def _both(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    objects: dict[str, bytes],
    mappings: list[list[str]],
    **formats: Any,
) -> tuple[tuple[Any, LocalStorage], tuple[Any, LocalStorage], list[int]]:
    """The stage run natively, then through JSON lines; and the JSON-lines conversions the native run made."""
    conversions: list[int] = []
    real_converted = convert._converted

    def converted(frames: list[pl.LazyFrame], *args: Any) -> Any:
        conversions.append(len(frames))
        return real_converted(frames, *args)

    monkeypatch.setattr(convert, "_converted", converted)
    native = _stage(tmp_path, "native", objects, mappings, **formats)
    native_conversions = list(conversions)
    monkeypatch.setattr(run_module, "native_frames", lambda *args, **kwargs: None)
    converting = _stage(tmp_path, "converting", objects, mappings, **formats)
    assert conversions[len(native_conversions) :], "the converting path converted nothing"
    return native, converting, native_conversions


def _outputs(target: LocalStorage) -> dict[str, bytes]:
    return {obj.key: target.read_bytes(obj.key) for obj in target.list() if not obj.key.startswith("_errors/")}


def _figures(result: Any) -> tuple[int, ...]:
    return (result.records_read, result.records_written, result.error_records, result.error_files, result.cast_errors)


@pytest.mark.parametrize("out", ["json", "csv", "parquet"])
def test_tricky_csv_maps_to_the_same_output_natively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str) -> None:
    read = DataFormat("csv", CsvOptions(with_header=True))
    compression = "snappy" if out == "parquet" else "none"
    (native, n_target), (converting, c_target), conversions = _both(
        tmp_path, monkeypatch, TRICKY_CSV, CSV_MAPPINGS, compression=compression,
        read_format=read, write_format=DataFormat(out),
    )  # fmt: skip
    assert conversions == []  # nothing went through JSON lines
    assert _figures(native) == _figures(converting) == (5, 5, 0, 0, 2)  # "bad" and "x" are cast errors
    n_out, c_out = _outputs(n_target), _outputs(c_target)
    assert sorted(n_out) == sorted(c_out) and len(n_out) == 1
    if out == "parquet":
        (n_bytes,), (c_bytes,) = n_out.values(), c_out.values()
        native_frame = pl.read_parquet(io.BytesIO(n_bytes))
        assert native_frame.equals(pl.read_parquet(io.BytesIO(c_bytes)))
        assert native_frame["note"].to_list() == ['she said "hi"', "plain", None, '"q"', "a\r\nb"]
    else:
        assert n_out == c_out


def _records(target: LocalStorage) -> list[bytes]:
    """Every JSON line written, in a stable order (the parts of two queries split them differently)."""
    return sorted(line for data in _outputs(target).values() for line in data.splitlines())


def test_only_the_object_with_a_malformed_row_takes_the_converting_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = {**TRICKY_CSV, "c.csv": b"id,name\n6,ok\n7,too,many,fields\n8,fine\n"}
    read = DataFormat("csv", CsvOptions(with_header=True))
    (native, n_target), (converting, c_target), conversions = _both(
        tmp_path, monkeypatch, objects, CSV_MAPPINGS, compression="none", read_format=read
    )
    # The native query failed on the bad row; c.csv alone was then converted (and its clean rows again).
    assert conversions == [1, 1]
    assert _figures(native) == _figures(converting) == (8, 7, 1, 0, 2)
    assert _records(n_target) == _records(c_target) and len(_records(n_target)) == 7
    n_errors = [n_target.read_bytes(o.key) for o in n_target.list() if o.key.startswith("_errors/")]
    c_errors = [c_target.read_bytes(o.key) for o in c_target.list() if o.key.startswith("_errors/")]
    assert n_errors == c_errors and b'"line":3' in n_errors[0]


def _typed_parquet() -> bytes:
    utc = dt.UTC
    frame = pl.DataFrame(
        {
            "i32": pl.Series([1, None, -3], dtype=pl.Int32),
            "i64": [10, 20, None],
            "f32": pl.Series([0.1, 2.5, None], dtype=pl.Float32),
            "f64": [1.0, None, 1e20],
            "flag": [True, False, None],
            "text": ["a", None, "7"],
            "day": [dt.date(2024, 1, 2), None, dt.date(1999, 12, 31)],
            "ts": [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5, 120000), None],
            "ts_ms": pl.Series([dt.datetime(2024, 1, 2, 3, 4, 5, 123000)] * 3).cast(pl.Datetime("ms")),
            "ts_utc": [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc)] * 3,
            "ts_paris": pl.Series([dt.datetime(2024, 7, 1, 3, 4, 5, 250000, tzinfo=utc)] * 3).dt.convert_time_zone(
                "Europe/Paris"
            ),
            "money": [decimal.Decimal("12.30"), decimal.Decimal("-0.05"), None],
            "blob": [b"\x00\xff", None, b"ab"],
            "user": [{"id": 1, "name": "x"}, {"id": None, "name": "y"}, None],
            "tags": [[1, 2], [], None],
        }
    )
    data = io.BytesIO()
    frame.write_parquet(data)
    return data.getvalue()


TYPED_MAPPINGS = [
    ["i32", "int", "i32", "long"],
    ["i32", "int", "i32_text", "string"],
    ["i64", "long", "i64", "long"],
    ["f32", "float", "f32", "double"],
    ["f64", "double", "f64_text", "string"],
    ["flag", "boolean", "flag", "boolean"],
    ["text", "string", "text_long", "long"],
    ["day", "date", "day", "date"],
    ["ts", "timestamp", "ts", "timestamp"],
    ["ts_ms", "timestamp", "ts_ms", "timestamp"],
    ["ts_utc", "timestamp", "ts_utc", "timestamp"],
    ["ts", "timestamp", "ts_again", "timestamp"],
    ["ts_paris", "timestamp", "ts_paris", "timestamp"],
    ["ts_paris", "timestamp", "ts_paris_text", "string"],
    ["ts_utc", "timestamp", "ts_utc_text", "string"],
    ["ts_ms", "timestamp", "ts_ms_text", "string"],
    ["day", "date", "day_text", "string"],
    ["money", "decimal(10,2)", "money", "decimal(10,2)"],
    ["blob", "binary", "blob", "string"],
    ["user.id", "long", "user_id", "long"],
    ["user", "struct", "user", "struct"],
    ["tags", "array", "tags", "array"],
]


@pytest.mark.parametrize("out", ["json", "parquet"])
def test_typed_parquet_maps_to_the_same_output_natively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str
) -> None:
    objects = {"p1.parquet": _typed_parquet(), "p2.parquet": _typed_parquet()}
    compression = "snappy" if out == "parquet" else "none"
    (native, n_target), (converting, c_target), conversions = _both(
        tmp_path, monkeypatch, objects, TYPED_MAPPINGS, compression=compression,
        read_format=DataFormat("parquet"), write_format=DataFormat(out),
    )  # fmt: skip
    assert conversions == []
    assert _figures(native) == _figures(converting)
    n_out, c_out = _outputs(n_target), _outputs(c_target)
    assert sorted(n_out) == sorted(c_out)
    if out == "parquet":
        for key in n_out:
            assert pl.read_parquet(io.BytesIO(n_out[key])).equals(pl.read_parquet(io.BytesIO(c_out[key]))), key
    else:
        assert n_out == c_out


def test_an_unreadable_parquet_object_falls_back_and_is_quarantined_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = {"p1.parquet": _typed_parquet(), "p2.parquet": b"PAR1 this is no parquet", "p3.parquet": _typed_parquet()}
    (native, n_target), (converting, c_target), _ = _both(
        tmp_path, monkeypatch, objects, TYPED_MAPPINGS[:3], compression="none", read_format=DataFormat("parquet")
    )
    assert _figures(native) == _figures(converting) and native.error_files == 1 and native.records_written == 6
    assert _records(n_target) == _records(c_target)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_native_frame_streams_with_no_python(tmp_path: Path, fmt: str) -> None:
    """Every conversion of the native frame (timestamps as JSON text, base64, casts) runs natively on the
    streaming engine, and so does the query that maps it."""
    reader = ConvertingReader(CsvSource(CsvOptions(with_header=True)) if fmt == "csv" else ParquetSource())
    objects = TRICKY_CSV if fmt == "csv" else {"p1.parquet": _typed_parquet()}
    mappings = parse_mappings(CSV_MAPPINGS if fmt == "csv" else TYPED_MAPPINGS)
    paths = []
    for key, data in objects.items():
        (tmp_path / key).write_bytes(data)
        paths.append(tmp_path / key)
    uris = [str(p) for p in paths]
    with ExitStack() as stack:
        sample = sample_json_lines(reader, paths, uris, tmp_path, stack)
        assert sample is not None
        plan = make_plan([sample], mappings, 1024**2, JsonLinesWriter("none"))
        frames = native_frames(reader, paths, uris, plan.read_schema, tmp_path, stack, timestamp_sources(mappings))
        assert frames is not None
        frame = concatenated(frames, plan.read_schema)
        assert streaming_problems(frame) == []
        assert streaming_problems(ApplyMapping.apply(frame, mappings, plain_timestamps="nozones")) == []


@pytest.mark.parametrize("late", ["i", "f"])
def test_values_first_seen_past_the_sample_map_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, late: str
) -> None:
    """A column null in the plan's sample is read as text: a long's text is its JSON text (native); a
    double's JSON text has no native equivalent, so that group takes the converting path."""
    values = [None] * 1500 + ([7, -1, 9_007_199_254_740_993] if late == "i" else [0.1, 1e20, -0.0])
    data = io.BytesIO()
    pl.DataFrame({"k": list(range(1503)), late: values}).write_parquet(data)
    mappings = [["k", "long", "k", "long"], [late, "string", "text", "string"], [late, "string", "number", "double"]]
    (native, n_target), (converting, c_target), conversions = _both(
        tmp_path, monkeypatch, {"p.parquet": data.getvalue()}, mappings, compression="none",
        read_format=DataFormat("parquet"),
    )  # fmt: skip
    assert (conversions == []) is (late == "i")
    assert _figures(native) == _figures(converting) and _outputs(n_target) == _outputs(c_target)


def _large_parquet(seed: int) -> bytes:
    """About 1.2 MB of Parquet (random text does not compress): an object worth counting."""
    import random

    rng = random.Random(seed)
    frame = pl.DataFrame({"id": range(60_000), "text": [f"{rng.getrandbits(128):032x}" for _ in range(60_000)]})
    data = io.BytesIO()
    frame.write_parquet(data)
    assert len(data.getvalue()) > 1024**2
    return data.getvalue()

def _splitting_sinks_counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets one entry per splitting sink (``pl.PartitionBy``) the stage makes from now on."""
    made: list[int] = []
    real_partition_by = pl.PartitionBy

    def partition_by(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return real_partition_by(*args, **kwargs)

    monkeypatch.setattr(pl, "PartitionBy", partition_by)
    return made



@pytest.mark.parametrize(
    ("source", "out", "counted"),
    [
        ("csv", "json", True),  # small uncompressed CSV: its bytes bound its records, nothing read
        ("csv", "csv", True),
        ("parquet", "parquet", True),  # objects of a MB and more: their footers counted
        ("csv.gz", "json", False),  # counting would inflate them
        ("small parquet", "parquet", False),  # a count would cost what reading them costs
        ("many csv", "json", False),  # more objects than are counted
    ],
)
def test_a_group_counted_to_fit_one_part_is_written_by_a_plain_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, out: str, counted: bool
) -> None:
    """Where the native query's records are known cheaply to fit one part, the part is written by a plain
    sink (polars' splitting sink costs 10-15% more CPU), with the same bytes; where they are not known
    cheaply, or do not fit, the parts are split as before."""
    import gzip

    made = _splitting_sinks_counted(monkeypatch)
    if source == "parquet":
        objects = {"p1.parquet": _large_parquet(1), "p2.parquet": _large_parquet(2)}
        mappings, read = [["id", "long", "id", "long"], ["text", "string", "text", "string"]], DataFormat("parquet")
    elif source == "small parquet":
        objects = {"p1.parquet": _typed_parquet(), "p2.parquet": _typed_parquet()}
        mappings, read = TYPED_MAPPINGS, DataFormat("parquet")
    else:
        objects = {k: gzip.compress(v) if source == "csv.gz" else v for k, v in TRICKY_CSV.items()}
        if source == "many csv":
            objects = {f"{index:03d}.csv": b"id,name\n%d,x\n" % index for index in range(65)}
        mappings, read = CSV_MAPPINGS, DataFormat("csv", CsvOptions(with_header=True))
    formats: dict[str, Any] = {"read_format": read, "write_format": DataFormat(out)}
    formats["compression"] = "snappy" if out == "parquet" else "none"

    one, one_target = _stage(tmp_path, "one", objects, mappings, **formats)
    assert len(_outputs(one_target)) == 1
    assert len(made) == (0 if counted else 1)
    made.clear()
    monkeypatch.setattr(run_module, "records_bound", lambda *args: None)  # as before: the splitting sink
    split, split_target = _stage(tmp_path, "split", objects, mappings, **formats)
    assert len(made) == 1 and _figures(one) == _figures(split)
    one_out, split_out = _outputs(one_target), _outputs(split_target)
    assert sorted(one_out) == sorted(split_out)
    if out == "parquet":
        for key in one_out:
            assert pl.read_parquet(io.BytesIO(one_out[key])).equals(pl.read_parquet(io.BytesIO(split_out[key])))
    else:
        assert one_out == split_out
    monkeypatch.undo()
    # More records than a part holds: split, whether counted or bounded by bytes.
    target_file_bytes = 1_000_000 if source == "parquet" else 150
    small, small_target = _stage(tmp_path, "small", objects, mappings, **formats, target_file_bytes=target_file_bytes)
    assert len(_outputs(small_target)) > 1 and small.records_written == one.records_written


@pytest.mark.parametrize("out", ["json", "csv", "parquet"])
def test_the_single_part_sink_is_one_plain_file_sink_on_the_streaming_engine(tmp_path: Path, out: str) -> None:
    """A counted group's writer sinks into one plain file (polars' file sink, no partition sink and no
    Python callback naming parts), run by the streaming engine; without the count it splits as before."""
    from glueflow_dagster.core.formats.seams import writer_of
    from glueflow_dagster.core.stage.write import single_part

    splitting = writer_of(DataFormat(out), "snappy" if out == "parquet" else "none", None)
    writer = single_part(splitting)
    frame = pl.LazyFrame({"id": ["1", "2"], "ts": ["2024-01-02 03:04:05", None]})
    mappings = parse_mappings([["id", "string", "id", "long"], ["ts", "string", "ts", "timestamp"]])
    mapped = ApplyMapping.apply(frame, mappings, plain_timestamps="nozones")
    with ExitStack() as files:
        assert splitting.sink(mapped, tmp_path, 0, 10, files).explain().startswith("SINK (partition)")
        sink = writer.sink(mapped, tmp_path, 0, 10, files)
        assert sink.explain().startswith("SINK (file)")
        sink.collect(engine="streaming")
    assert [p.name for p in tmp_path.iterdir()] == [f"part-00000.{out}"]


@pytest.mark.parametrize(("size", "counted"), [("large", True), ("small", False), ("large.gz", False)])
def test_json_lines_counted_to_fit_one_part_are_written_by_a_plain_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: str, counted: bool
) -> None:
    """JSON lines too: objects of a MB and more, uncompressed, have their lines counted (a bound on their
    records); when they fit one part a plain sink writes it, with the bytes the splitting sink writes."""
    import gzip

    from glueflow_dagster.core.stage import read as read_module

    made = _splitting_sinks_counted(monkeypatch)
    rows = 30_000 if size != "small" else 30
    lines = b"".join(b'{"id": %d, "ts": "2024-01-02 03:04:05", "note": "x,\\"y\\""}\n' % i for i in range(rows))
    lines += b"\n"  # a blank line: no record, one more line counted
    objects = {"a.json": lines, "b.json": lines}
    if size == "large.gz":
        objects = {key: gzip.compress(data) for key, data in objects.items()}
    mappings = [["id", "long", "id", "long"], ["ts", "string", "ts", "timestamp"], ["note", "string", "note", "string"]]
    formats: dict[str, Any] = {"write_format": DataFormat("parquet"), "compression": "snappy"}
    one, one_target = _stage(tmp_path, "one", objects, mappings, **formats)
    assert one.records_written == 2 * rows and len(_outputs(one_target)) == 1
    assert len(made) == (0 if counted else 1)
    monkeypatch.setattr(read_module, "lines_bound", lambda *args: None)  # as before: the splitting sink
    split, split_target = _stage(tmp_path, "split", objects, mappings, **formats)
    assert _figures(one) == _figures(split)
    one_out, split_out = _outputs(one_target), _outputs(split_target)
    assert sorted(one_out) == sorted(split_out)
    for key in one_out:
        assert pl.read_parquet(io.BytesIO(one_out[key])).equals(pl.read_parquet(io.BytesIO(split_out[key])))
    monkeypatch.undo()
    target_file_bytes = 1_000_000 if rows > 30 else 500  # more records than a part holds: split
    small, small_target = _stage(tmp_path, "small", objects, mappings, **formats, target_file_bytes=target_file_bytes)
    assert len(_outputs(small_target)) > 1 and small.records_written == 2 * rows


@pytest.mark.parametrize(
    ("source", "formats", "counted"),
    [
        ("json", {"compression": "none"}, True),
        ("json", {"compression": "gzip"}, False),  # gzip parts are split by ISA-L's writer either way
        ("json", {"write_format": DataFormat("parquet", partition_keys=("day",)), "compression": "snappy"}, False),
        ("csv", {"write_format": DataFormat("parquet"), "compression": "snappy"}, True),
        ("csv", {"write_format": DataFormat("parquet", partition_keys=("day",)), "compression": "snappy"}, False),
    ],
)
def test_the_input_is_counted_only_where_the_count_changes_the_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, formats: dict[str, Any], counted: bool
) -> None:
    """Counting a group's records (a pass over its bytes: 11-38 ms per 100 MB of JSON lines) pays only where
    it lets a plain sink write the part; for gzip JSON lines and Hive folders nothing changes, so nothing
    is counted, and the output is the same either way."""
    from glueflow_dagster.core.stage import read as read_module

    counts: list[str] = []
    real_lines, real_records = read_module.lines_bound, run_module.records_bound
    monkeypatch.setattr(read_module, "lines_bound", lambda *a: counts.append("lines") or real_lines(*a))
    monkeypatch.setattr(run_module, "records_bound", lambda *a: counts.append("records") or real_records(*a))
    rows = 30_000
    if source == "json":
        data = b"".join(b'{"id": %d, "day": "2024-01-0%d"}\n' % (i, 1 + i % 2) for i in range(rows))
        objects, read = {"a.json": data}, DataFormat("json")
    else:
        data = b"id,day\n" + b"".join(b"%d,2024-01-0%d\n" % (i, 1 + i % 2) for i in range(rows))
        objects, read = {"a.csv": data}, DataFormat("csv", CsvOptions(with_header=True))
    mappings = [["id", "long", "id", "long"], ["day", "string", "day", "string"]]
    result, target = _stage(tmp_path, "out", objects, mappings, read_format=read, **formats)
    assert bool(counts) == counted
    assert result.records_written == rows
    monkeypatch.setattr(read_module, "lines_bound", lambda *a: None)
    monkeypatch.setattr(run_module, "records_bound", lambda *a: None)
    uncounted, uncounted_target = _stage(tmp_path, "uncounted", objects, mappings, read_format=read, **formats)
    assert _figures(uncounted) == _figures(result)
    assert sorted(_outputs(uncounted_target)) == sorted(_outputs(target))


def test_an_unpartitioned_iceberg_data_file_counted_to_fit_is_one_plain_file_sink(tmp_path: Path) -> None:
    """An Iceberg table's data files take the plain sink too where the stage counted its records (the
    Output job's staging is JSON lines); a partitioned table's writer is left as it is (nothing counted)."""
    from glueflow_dagster.core.formats.iceberg import IcebergDataWriter
    from glueflow_dagster.core.stage.write import single_part

    splitting = IcebergDataWriter()
    writer = single_part(splitting)
    assert writer is not splitting
    partitioned = IcebergDataWriter(partition_keys=("day(ts)",))
    assert single_part(partitioned) is partitioned
    frame = pl.LazyFrame({"id": [1, 2], "ts": [None, None]}, schema={"id": pl.Int64, "ts": pl.Datetime("us")})
    with ExitStack() as files:
        assert splitting.sink(frame, tmp_path, 0, 10, files).explain().startswith("SINK (partition)")
        sink = writer.sink(frame, tmp_path, 3, 10, files)
        assert sink.explain().startswith("SINK (file)")
        sink.collect(engine="streaming")
    assert [p.name for p in tmp_path.iterdir()] == ["part-00003.parquet"]
    assert pl.read_parquet(tmp_path / "part-00003.parquet")["id"].to_list() == [1, 2]

"""CSV and Parquet in and out, Hive partitions: the flow file's keys, the stage, and whole flows.

Real readers check what is written: DuckDB, polars and pyarrow read the Parquet output (partition columns
included), Python's csv module reads the CSV output with the same options.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import gzip
import io
import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

from glueflow_dagster.core.commits import Attempt
from glueflow_dagster.core.config import ConfigError, FlowConfig, load_config
from glueflow_dagster.core.formats import convert
from glueflow_dagster.core.formats.options import CsvOptions, DataFormat
from glueflow_dagster.core.formats.partitions import hive_escape, partition_folder, partition_values
from glueflow_dagster.core.input_run import run_input
from glueflow_dagster.core.output_run import OutputRequest, run_output
from glueflow_dagster.core.stage import run as run_module
from glueflow_dagster.core.stage import run_stage, stage_pending
from glueflow_dagster.core.stage.request import StageRequest
from glueflow_dagster.core.storage import LocalStorage, S3Storage, Storage
from glueflow_dagster_tests.conftest import flow_document
from glueflow_dagster_tests.core.test_job_runs import InputLog, MemoryCommitLog, OutputLog, polars_stage

# --------------------------------------------------------------------------------------------------
# The flow file


def _flow_file(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    document = flow_document()
    body = document["flows"]["events"]
    for name, changes in sections.items():
        body[name] = {**body[name], **changes}
        body[name] = {k: v for k, v in body[name].items() if v is not None}
    path = tmp_path / "glueflow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_format_defaults_to_json_and_glue_s_options_are_read(tmp_path: Path) -> None:
    flow = load_config(_flow_file(tmp_path)).flows["events"]
    assert (flow.input.format, flow.staging.format, flow.output.format) == ("json", "json", "json")
    path = _flow_file(
        tmp_path,
        input={"format": "csv", "separator": ";", "quoteChar": "'", "escaper": "\\", "withHeader": True,
               "skipFirst": True, "multiLine": True},
        staging={"format": "parquet", "compression": None, "partition_keys": ["user_id"]},
        output={"format": "csv", "writeHeader": False, "compression": "gzip", "quoteChar": "-1"},
    )  # fmt: skip
    flow = load_config(path).flows["events"]
    assert flow.input.csv == CsvOptions(";", "'", "\\", multiline=True, with_header=True, skip_first=True)
    assert (flow.staging.format, flow.staging.compression, flow.staging.partition_keys) == (
        "parquet",
        "snappy",
        ("user_id",),
    )
    assert flow.output.csv == CsvOptions(quote_char=None, write_header=False) and flow.output.compression == "gzip"


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"input": {"separator": ";"}},
         r"input\.separator: separator is a csv option, but the location's format is json$"),
        ({"input": {"format": "csv", "multiline": True}}, r"input\.multiline: multiline is a json option.*is csv$"),
        ({"staging": {"format": "parquet", "quoteChar": "'"}}, r"staging\.quoteChar: quoteChar is a csv option"),
        ({"staging": {"format": "parquet", "compression_level": 3}}, r"staging\.compression_level: .*not parquet$"),
        ({"output": {"compression": "zstd"}}, r"output\.compression: expected one of gzip, none, got 'zstd'$"),
        ({"output": {"format": "parquet", "compression": "lz4"}}, r"expected one of snappy, gzip, zstd, none"),
        ({"output": {"format": "xml"}}, r"output\.format: expected one of json, csv, parquet, iceberg, got 'xml'$"),
        ({"input": {"format": "csv", "separator": ";;"}}, r"input\.separator: expected one character"),
        ({"input": {"format": "csv", "withHeader": "yes"}}, r"input\.withHeader: expected true or false"),
        ({"input": {"partition_keys": ["id"]}}, r"input: unknown field 'partition_keys'"),
        ({"input": {"format": "csv", "writeHeader": True}}, r"input: unknown field 'writeHeader'"),
        ({"output": {"withHeader": True}}, r"output: unknown field 'withHeader'"),
        ({"output": {"partition_keys": ["nope"]}}, r"output\.partition_keys: 'nope' is not a column .*output_job maps"),
        ({"staging": {"partition_keys": ["user_id"], "recurse": False}}, r"staging\.recurse: partitioned staging"),
        ({"staging": {"partition_keys": ["event_id", "event_id"]}},
         r"staging\.partition_keys: a column is named twice"),
        ({"output_job": {"engine": "spark"}, "staging": {"format": "parquet", "compression": None}},
         r"output_job\.engine: spark reads and writes JSON lines only: not staging\.format: parquet$"),
        ({"input_job": {"engine": "spark"}, "staging": {"partition_keys": ["user_id"]}},
         r"input_job\.engine: spark writes no Hive partitions yet: not with staging\.partition_keys$"),
    ],
)  # fmt: skip
def test_an_option_that_does_not_fit_is_refused_at_load_with_one_line(
    tmp_path: Path, sections: dict[str, dict[str, Any]], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as raised:
        load_config(_flow_file(tmp_path, **sections))
    assert "\n" not in str(raised.value)


def test_csv_output_refuses_a_nested_column(tmp_path: Path) -> None:
    mappings = [["id", "long", "event.id", "long"], ["amount", "string", "amount", "double"]]
    with pytest.raises(ConfigError, match=r"input_job\.mappings: 'event\.id' is nested: csv holds no nested column"):
        load_config(
            _flow_file(tmp_path, staging={"format": "csv", "compression": None}, input_job={"mappings": mappings})
        )


# --------------------------------------------------------------------------------------------------
# Hive folders


def test_partition_folders_are_escaped_as_hive_escapes_them_and_read_back() -> None:
    assert (
        hive_escape("a b/c:d=e%f#g?h*i'j\"k\\l{m[n]o^p\x01")
        == "a b%2Fc%3Ad%3De%25f%23g%3Fh%2Ai%27j%22k%5Cl%7Bm%5Bn%5Do%5Ep%01"
    )
    folder = partition_folder(["k", "empty", "missing", "flag"], ["x/y", "", None, True])
    assert folder == "k=x%2Fy/empty=__HIVE_DEFAULT_PARTITION__/missing=__HIVE_DEFAULT_PARTITION__/flag=true"
    assert partition_values(f"s3://b/staging/{folder}/part.json", ["k", "missing", "flag"]) == {
        "k": "x/y",
        "missing": None,
        "flag": "true",
    }


# --------------------------------------------------------------------------------------------------
# The stage


GLUE_CSV = b'\xef\xbb\xbfid,name,note\n1,"Smith, Jane","she said ""hi"""\n2,"two\nlines",plain\n3,,\n'
GLUE_READS = [  # Glue's CSV reader (withHeader): separators and line breaks inside quotes, doubled quotes
    {"id": 1, "name": "Smith, Jane", "note": 'she said "hi"'},
    {"id": 2, "name": "two\nlines", "note": "plain"},
    {"id": 3, "name": None, "note": None},
]
TEXT_MAPPINGS = [
    ["id", "string", "id", "long"],
    ["name", "string", "name", "string"],
    ["note", "string", "note", "string"],
]


@pytest.fixture(params=["local", "s3"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, Storage]:
    if request.param == "local":
        return LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")
    return S3Storage(bucket, "in", client), S3Storage(bucket, "out", client)


def _json_records(target: Storage) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for obj in target.list():
        if obj.key.startswith(("_glueflow/", "_errors/")):
            continue
        data = target.read_bytes(obj.key)
        text = gzip.decompress(data).decode() if data[:2] == b"\x1f\x8b" else data.decode()
        rows += [json.loads(line) for line in text.splitlines() if line]
    return sorted(rows, key=lambda r: r["id"])


def _stage(source: Storage, target: Storage, mappings: list[list[str]], **options: Any) -> Any:
    return run_stage(source, list(source.list()), mappings, target, name_prefix="run-f-attempt-1", **options)


def test_a_csv_input_is_read_as_glue_reads_it(stores: tuple[Storage, Storage]) -> None:
    source, target = stores
    source.write_bytes("a.csv", GLUE_CSV)
    read = DataFormat("csv", CsvOptions(with_header=True))
    result = _stage(source, target, TEXT_MAPPINGS, compression="none", read_format=read)
    assert _json_records(target) == GLUE_READS
    assert (result.records_read, result.records_written, result.bytes_read) == (3, 3, len(GLUE_CSV))


def test_csv_without_a_header_has_glue_s_column_names_and_skip_first_and_an_escaper(tmp_path: Path) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    source.write_bytes("a.csv", b"skipped;line\n1;'it\\'s'\n2;'back\\\\'\n")
    read = DataFormat("csv", CsvOptions(separator=";", quote_char="'", escaper="\\", skip_first=True))
    mappings = [["col0", "string", "id", "long"], ["col1", "string", "name", "string"]]
    _stage(source, target, mappings, compression="none", read_format=read)
    assert _json_records(target) == [{"id": 1, "name": "it's"}, {"id": 2, "name": "back\\"}]


def _recorded_queries(monkeypatch: pytest.MonkeyPatch) -> tuple[list[list[str] | None], list[int]]:
    """The stage's queries (the columns of a natively scanned frame, None for a JSON-lines scan) and the
    JSON-lines conversions (objects per conversion) of a run."""
    queries: list[list[str] | None] = []
    conversions: list[int] = []
    real_query, real_converted = run_module.query, convert._converted

    def query(*args: Any, frame: pl.LazyFrame | None = None, **kwargs: Any) -> Any:
        queries.append(None if frame is None else frame.collect_schema().names())
        return real_query(*args, frame=frame, **kwargs)

    def converted(frames: list[pl.LazyFrame], *args: Any) -> Any:
        conversions.append(len(frames))
        return real_converted(frames, *args)

    monkeypatch.setattr(run_module, "query", query)
    monkeypatch.setattr(convert, "_converted", converted)
    return queries, conversions


def test_many_small_csv_objects_are_read_in_one_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    for index in range(40):
        source.write_bytes(f"part-{index:02d}.csv", f"id,name,note\n{index},n{index},x\n".encode())
    queries, conversions = _recorded_queries(monkeypatch)
    read = DataFormat("csv", CsvOptions(with_header=True))
    result = _stage(source, target, TEXT_MAPPINGS, compression="none", read_format=read)
    # One native query over the 40 objects; nothing converted to JSON lines.
    assert queries == [["id", "name", "note"]] and conversions == []
    assert result.records_written == 40 and result.files_read == 40
    assert [r["id"] for r in _json_records(target)] == list(range(40))


def test_a_malformed_csv_row_is_quarantined_with_its_line_number(stores: tuple[Storage, Storage]) -> None:
    source, target = stores
    source.write_bytes("a.csv", b'id,name,note\n1,a,x\n2,"b\nc",y\n3,d,e,EXTRA\n4,f,g\n')
    read = DataFormat("csv", CsvOptions(with_header=True))
    result = _stage(source, target, TEXT_MAPPINGS, compression="none", read_format=read, max_error_records=1)
    assert [r["id"] for r in _json_records(target)] == [1, 2, 4]
    assert (result.records_read, result.records_written, result.error_records) == (4, 3, 1)
    [entry] = [json.loads(target.read_bytes(o.key)) for o in target.list() if o.key.startswith("_errors/")]
    assert entry["line"] == 5 and entry["raw"] == "3,d,e,EXTRA" and entry["source"] == source.uri_for("a.csv")
    assert result.first_error.endswith("line 5: malformed CSV row: 4 fields, the header has 3")


def test_an_unreadable_parquet_object_is_quarantined_whole(stores: tuple[Storage, Storage]) -> None:
    source, target = stores
    good = io.BytesIO()
    pl.DataFrame({"id": ["1", "2"], "name": ["a", "b"], "note": ["x", "y"]}).write_parquet(good)
    source.write_bytes("good.parquet", good.getvalue())
    source.write_bytes("bad.parquet", b"PAR1 this is not parquet at all")
    read = DataFormat("parquet")
    result = _stage(source, target, TEXT_MAPPINGS, compression="none", read_format=read, max_error_records=1)
    assert [r["id"] for r in _json_records(target)] == [1, 2]
    assert (result.error_files, result.records_written) == (1, 2)
    [entry] = [json.loads(target.read_bytes(o.key)) for o in target.list() if o.key.startswith("_errors/")]
    assert entry["source"] == source.uri_for("bad.parquet") and entry["line"] is None


TYPED_RECORDS = [
    {"id": 1, "ts": "2024-03-01 12:30:45.123456", "day": "2024-03-01", "price": "12.34", "ok": True,
     "user": {"id": 7}, "tags": ["a", "b"], "bytes": "x"},
    {"id": 2, "ts": "2024-03-02 00:00:00", "day": "2024-03-02", "price": "0.5", "ok": False,
     "user": {"id": 8}, "tags": [], "bytes": "y"},
]  # fmt: skip
TYPED_MAPPINGS = [
    ["id", "long", "id", "long"],
    ["ts", "string", "ts", "timestamp"],
    ["day", "string", "day", "date"],
    ["price", "string", "price", "decimal(10,2)"],
    ["ok", "boolean", "ok", "boolean"],
    ["user.id", "int", "user.id", "int"],
    ["tags", "array", "tags", "array"],
]


def _parquet_files(target: Storage, tmp_path: Path) -> Path:
    """The target's visible Parquet parts copied to a local folder (keeping their Hive folders)."""
    local = tmp_path / "parquet-copy"
    for obj in target.list():
        if obj.key.endswith(".parquet"):
            (local / obj.key).parent.mkdir(parents=True, exist_ok=True)
            (local / obj.key).write_bytes(target.read_bytes(obj.key))
    return local


@pytest.mark.parametrize("compression", ["snappy", "gzip", "zstd", "none"])
def test_parquet_output_is_read_by_duckdb_polars_and_pyarrow_with_glue_s_types(
    tmp_path: Path, compression: str
) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    source.write_bytes("a.json", "".join(json.dumps(r) + "\n" for r in TYPED_RECORDS).encode())
    _stage(source, target, TYPED_MAPPINGS, compression=compression, write_format=DataFormat("parquet"))
    [part] = [o.key for o in target.list() if not o.key.startswith("_")]
    infix = {"snappy": ".snappy", "gzip": ".gz", "zstd": ".zstd", "none": ""}[compression]
    assert part == f"run-f-attempt-1-part-r-00000{infix}.parquet"
    path = Path(target.uri_for(part))
    schema = pq.read_schema(path)
    assert str(schema.field("ts").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("price").type) == "decimal128(10, 2)" and str(schema.field("day").type) == "date32[day]"
    assert str(schema.field("ok").type) == "bool" and str(schema.field("user").type) == "struct<id: int32>"
    column = pq.ParquetFile(path).metadata.row_group(0).column(1)
    assert column.physical_type == "INT64" and column.compression.lower() == {"none": "uncompressed"}.get(
        compression, compression
    )
    expected_ts = dt.datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=dt.UTC)
    table = pq.read_table(path).to_pylist()
    assert table[0]["ts"] == expected_ts and table[0]["price"] == decimal.Decimal("12.34")
    assert table[0]["user"] == {"id": 7} and table[0]["tags"] == ["a", "b"]
    frame = pl.read_parquet(path)
    assert frame["ts"].to_list()[0] == expected_ts and frame["day"].to_list() == [
        dt.date(2024, 3, 1),
        dt.date(2024, 3, 2),
    ]
    rows = duckdb.sql(f"select id, ts, price, ok, user.id from read_parquet('{path}') order by id").fetchall()
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        (1, decimal.Decimal("12.34"), True, 7),
        (2, decimal.Decimal("0.50"), False, 8),
    ]


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_csv_output_is_read_back_by_python_csv_with_the_same_options(tmp_path: Path, compression: str) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    source.write_bytes("a.csv", GLUE_CSV)
    options = CsvOptions(separator=";", quote_char="'", write_header=True)
    _stage(
        source, target, TEXT_MAPPINGS, compression=compression,
        read_format=DataFormat("csv", CsvOptions(with_header=True)), write_format=DataFormat("csv", options),
    )  # fmt: skip
    [part] = [o.key for o in target.list() if not o.key.startswith("_")]
    assert part.endswith(".csv.gz" if compression == "gzip" else ".csv")
    data = target.read_bytes(part)
    text = (gzip.decompress(data) if compression == "gzip" else data).decode()
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";", quotechar="'"))
    assert [dict(r) for r in rows] == [
        {"id": "1", "name": "Smith, Jane", "note": 'she said "hi"'},
        {"id": "2", "name": "two\nlines", "note": "plain"},
        {"id": "3", "name": "", "note": ""},
    ]


def test_csv_round_trips_through_csv_staging_without_a_header(tmp_path: Path) -> None:
    source, staging, target = (LocalStorage(tmp_path / name) for name in ("in", "staging", "out"))
    source.write_bytes("a.csv", GLUE_CSV)
    staged = DataFormat("csv", CsvOptions(write_header=False))
    _stage(
        source,
        staging,
        TEXT_MAPPINGS,
        compression="none",
        read_format=DataFormat("csv", CsvOptions(with_header=True)),
        write_format=staged,
    )
    mappings = [
        ["col0", "string", "id", "long"],
        ["col1", "string", "name", "string"],
        ["col2", "string", "note", "string"],
    ]
    _stage(staging, target, mappings, compression="none", read_format=staged)
    assert _json_records(target) == GLUE_READS


PARTITION_RECORDS = [
    {"id": 1, "region": "eu/west", "day": "2024-01-01", "amount": "1.5"},
    {"id": 2, "region": "eu/west", "day": "2024-01-02", "amount": "2.5"},
    {"id": 3, "region": None, "day": "2024-01-01", "amount": "3.5"},
    {"id": 4, "region": "us:east", "day": "2024-01-01", "amount": "4.5"},
]
PARTITION_MAPPINGS = [
    ["id", "long", "id", "long"],
    ["region", "string", "region", "string"],
    ["day", "string", "day", "date"],
    ["amount", "string", "amount", "double"],
]


@pytest.mark.parametrize("fmt", ["parquet", "json", "csv"])
def test_partitioned_parts_are_pending_in_hive_folders_until_the_commit(tmp_path: Path, fmt: str) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    source.write_bytes("a.json", "".join(json.dumps(r) + "\n" for r in PARTITION_RECORDS).encode())
    written = DataFormat(fmt, CsvOptions(), ("region", "day"))
    compression = "snappy" if fmt == "parquet" else "none"
    request = StageRequest(
        source, tuple(source.list()), target, "run-p-attempt-1", tuple(PARTITION_MAPPINGS),  # type: ignore[arg-type]
        compression=compression, write_format=written,
    )  # fmt: skip
    result = stage_pending(request)
    assert [o.key for o in target.list() if not o.key.startswith("_glueflow/")] == []  # nothing visible yet
    folders = sorted(p.key.rsplit("/", 1)[0] for p in result.pending)
    assert folders == [
        "region=__HIVE_DEFAULT_PARTITION__/day=2024-01-01",
        "region=eu%2Fwest/day=2024-01-01",
        "region=eu%2Fwest/day=2024-01-02",
        "region=us%3Aeast/day=2024-01-01",
    ]
    assert all(p.key.rsplit("/", 1)[1].startswith("run-p-attempt-1-part-r-") for p in result.pending)


def test_partitioned_parquet_is_read_by_every_reader_with_its_partition_columns(
    stores: tuple[Storage, Storage], tmp_path: Path
) -> None:
    source, target = stores
    source.write_bytes("a.json", "".join(json.dumps(r) + "\n" for r in PARTITION_RECORDS).encode())
    _stage(
        source,
        target,
        PARTITION_MAPPINGS,
        compression="snappy",
        write_format=DataFormat("parquet", partition_keys=("region", "day")),
    )
    local = _parquet_files(target, tmp_path)
    expected = [
        (1, "eu/west", "2024-01-01", 1.5),
        (2, "eu/west", "2024-01-02", 2.5),
        (3, None, "2024-01-01", 3.5),
        (4, "us:east", "2024-01-01", 4.5),
    ]
    glob = f"{local}/**/*.parquet"
    by_duckdb = duckdb.sql(
        "select id, region, cast(day as varchar), amount"
        f" from read_parquet('{glob}', hive_partitioning=true) order by id"
    ).fetchall()
    assert by_duckdb == expected
    frame = pl.scan_parquet(glob, hive_partitioning=True).sort("id").collect()
    assert [(r["id"], r["region"], str(r["day"]), r["amount"]) for r in frame.to_dicts()] == expected
    import pyarrow.dataset as ds

    table = ds.dataset(local, format="parquet", partitioning="hive").to_table().to_pylist()
    by_arrow = sorted((r["id"], r["region"], str(r["day"]), r["amount"]) for r in table)
    assert by_arrow == expected  # pyarrow reads Hive's default partition as null too


@pytest.mark.parametrize("fmt", ["json", "parquet", "csv"])
def test_a_job_reading_partitioned_staging_gets_the_partition_columns_back(tmp_path: Path, fmt: str) -> None:
    source, staging, target = (LocalStorage(tmp_path / name) for name in ("in", "staging", "out"))
    source.write_bytes("a.json", "".join(json.dumps(r) + "\n" for r in PARTITION_RECORDS).encode())
    staged = DataFormat(fmt, CsvOptions(with_header=True), ("region", "day"))
    compression = "snappy" if fmt == "parquet" else "gzip"
    _stage(source, staging, PARTITION_MAPPINGS, compression=compression, write_format=staged)
    _stage(staging, target, PARTITION_MAPPINGS, compression="none", read_format=staged)
    assert _json_records(target) == [
        {"id": 1, "region": "eu/west", "day": "2024-01-01", "amount": 1.5},
        {"id": 2, "region": "eu/west", "day": "2024-01-02", "amount": 2.5},
        {"id": 3, "region": None, "day": "2024-01-01", "amount": 3.5},
        {"id": 4, "region": "us:east", "day": "2024-01-01", "amount": 4.5},
    ]


# --------------------------------------------------------------------------------------------------
# Whole flows: Input (CSV raw input) -> partitioned Parquet staging -> Output (Parquet or CSV)


def _formats_flow(tmp_path: Path, output: dict[str, Any], s3: tuple[Any, str] | None = None) -> FlowConfig:
    document = flow_document(bookmark="enable")
    body = document["flows"]["events"]
    body["input"] = {**body["input"], "format": "csv", "withHeader": True}
    body["staging"] = {"uri": body["staging"]["uri"], "format": "parquet", "partition_keys": ["user_id"]}
    body["output"] = {**body["output"], **output}
    body["input_job"]["mappings"] = [
        ["id", "string", "event_id", "long"],
        ["user_id", "string", "user_id", "long"],
        ["amount", "string", "amount", "double"],
    ]
    if s3 is not None:
        bucket = s3[1]
        for role in ("input", "staging", "output"):
            body[role]["uri"] = f"s3://{bucket}/{role}"
    path = tmp_path / "glueflow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return load_config(path).flows["events"]


def _csv_records(first: int, count: int) -> bytes:
    lines = ["id,user_id,name,amount"] + [
        f'{i},{i % 3},"u{i}, the ""{i}th""",{i}.25' for i in range(first, first + count)
    ]
    return ("\n".join(lines) + "\n").encode()


def _run_flow(
    flow: FlowConfig, stores: tuple[Storage, Storage, Storage], log: MemoryCommitLog, n: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    raw, staging, output = stores
    info = lambda _msg: None  # noqa: E731
    stage = polars_stage()
    inp = run_input(flow, InputLog(log), raw, staging, Attempt(f"in-{n}", 1), stage, job_name="i", now_ms=0, info=info)
    log.record(log.staging, f"in-{n}", inp.metadata)
    log.ended.add(f"in-{n}")
    out = run_output(
        flow,
        OutputLog(log),
        staging,
        output,
        Attempt(f"out-{n}", 1),
        OutputRequest(),
        stage,
        job_name="o",
        now_ms=0,
        info=info,
    )
    log.record(log.output, f"out-{n}", out.metadata)
    log.ended.add(f"out-{n}")
    return inp.metadata, out.metadata


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_csv_flow_through_partitioned_parquet_staging_writes_every_record_once(
    tmp_path: Path, request: pytest.FixtureRequest, where: str
) -> None:
    s3 = (request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")) if where == "s3" else None
    flow = _formats_flow(tmp_path, {"format": "parquet", "compression": "zstd"}, s3)
    if s3 is None:
        stores = tuple(LocalStorage(Path(loc.uri)) for loc in (flow.input, flow.staging, flow.output))
    else:
        stores = tuple(S3Storage(s3[1], role, s3[0]) for role in ("input", "staging", "output"))
    raw, staging, output = stores
    log = MemoryCommitLog()
    raw.write_bytes("a.csv", _csv_records(0, 30))
    first_in, first_out = _run_flow(flow, stores, log, 1)  # type: ignore[arg-type]
    assert (first_in["records_written"], first_out["records_written"]) == (30, 30)
    assert first_in["bytes_read"] == len(_csv_records(0, 30)) and first_out["bytes_written"] > 0
    staged = sorted(key for key, *_ in first_in["commit"]["parts"])
    assert [key.split("/")[0] for key in staged] == ["user_id=0", "user_id=1", "user_id=2"]
    raw.write_bytes("b.csv", _csv_records(30, 12))
    second_in, second_out = _run_flow(flow, stores, log, 2)  # type: ignore[arg-type]
    assert (second_in["records_read"], second_out["records_read"]) == (12, 12)  # bookmarks moved on
    local = _parquet_files(output, tmp_path)
    rows = duckdb.sql(f"select event_id, user_id from read_parquet('{local}/*.parquet') order by event_id").fetchall()
    assert rows == [(i, i % 3) for i in range(42)]


def test_a_flow_writes_csv_output_read_back_with_its_options(tmp_path: Path) -> None:
    flow = _formats_flow(tmp_path, {"format": "csv", "separator": "|", "writeHeader": True})
    stores = tuple(LocalStorage(Path(loc.uri)) for loc in (flow.input, flow.staging, flow.output))
    stores[0].write_bytes("a.csv", _csv_records(0, 10))
    _, out = _run_flow(flow, stores, MemoryCommitLog(), 1)  # type: ignore[arg-type]
    assert out["records_written"] == 10
    rows = []
    for obj in stores[2].list():
        if obj.key.endswith(".csv"):
            rows += list(csv.DictReader(io.StringIO(stores[2].read_bytes(obj.key).decode(), newline=""), delimiter="|"))
    assert sorted(int(r["event_id"]) for r in rows) == list(range(10))


def test_the_asset_kinds_show_each_location_s_format(tmp_path: Path) -> None:
    from glueflow_dagster.components.assets import _kinds

    flow = _formats_flow(tmp_path, {"format": "csv"})
    assert [_kinds(loc) for loc in (flow.input, flow.staging, flow.output)] == [
        {"file", "csv", "polars"},
        {"file", "parquet", "polars"},
        {"file", "csv", "polars"},
    ]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_plain_timestamps_are_written_typed_not_as_their_source_text(tmp_path: Path, fmt: str) -> None:
    """The stage maps timestamps of the plain form fast and writes their source text into JSON; CSV and
    Parquet parts hold typed timestamps (one form, whatever the source text looked like)."""
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    lines = [{"id": i, "ts": f"2024-03-0{i} 12:00:00"} for i in (1, 2, 3)]
    source.write_bytes("a.json", "".join(json.dumps(r) + "\n" for r in lines).encode())
    mappings = [["id", "long", "id", "long"], ["ts", "string", "ts", "timestamp"]]
    compression = "snappy" if fmt == "parquet" else "none"
    _stage(source, target, mappings, compression=compression, write_format=DataFormat(fmt))
    [part] = [o.key for o in target.list() if not o.key.startswith("_")]
    if fmt == "parquet":
        assert str(pq.read_schema(target.uri_for(part)).field("ts").type) == "timestamp[us, tz=UTC]"
    else:
        rows = list(csv.DictReader(io.StringIO(target.read_bytes(part).decode(), newline="")))
        assert [r["ts"] for r in rows] == [f"2024-03-0{i}T12:00:00.000000" for i in (1, 2, 3)]


def test_block_boundaries_do_not_split_an_escape_or_a_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import ExitStack

    from glueflow_dagster.core.formats import csv as csv_format
    from glueflow_dagster.core.formats import partitions

    monkeypatch.setattr(csv_format, "_CHUNK", 3)
    monkeypatch.setattr(partitions, "_CHUNK", 5)
    raw = tmp_path / "a.csv"
    raw.write_bytes(b'1,"a\\"b\\\\",x\\\\\\"y\n')
    with ExitStack() as stack:
        unescaped = csv_format._unescaped(raw, "\\", '"', tmp_path, stack)
        assert unescaped.read_bytes() == b'1,"a""b\\",x\\""y\n'
    lines = tmp_path / "a.json"
    lines.write_bytes(gzip.compress(b'{"a":1}\n{}\n{"b":"{x}"}\n{"c":2}'))
    partitions.with_partition_columns(lines, {"k": "v"}, tmp_path / "out.json")
    assert (tmp_path / "out.json").read_bytes() == b'{"k":"v","a":1}\n{"k":"v"}\n{"k":"v","b":"{x}"}\n{"k":"v","c":2}'


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_only_the_mapped_columns_are_converted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    frame = pl.DataFrame({"ID": ["1", "2"], "Name": ["a", "b"], "note": ["x", "y"], "unmapped": ["u", "v"]})
    data = io.BytesIO()
    frame.write_csv(data) if fmt == "csv" else frame.write_parquet(data)
    source.write_bytes(f"a.{fmt}", data.getvalue())
    queries, conversions = _recorded_queries(monkeypatch)
    read = DataFormat(fmt, CsvOptions(with_header=True))
    _stage(source, target, TEXT_MAPPINGS[:2], compression="none", read_format=read)
    assert queries == [["ID", "Name"]] and conversions == []  # names match case-insensitively, as the mapping's do
    assert _json_records(target) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_gzip_csv_unquoted_csv_and_a_csv_that_is_not_utf8(tmp_path: Path) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    source.write_bytes("a.csv.gz", gzip.compress(b'id\tname\tnote\n1\t"a"\tx\n'))
    source.write_bytes("b.csv", b"id\tname\tnote\n2\tb\t\xff\xfe\n")
    read = DataFormat("csv", CsvOptions(separator="\t", quote_char=None, with_header=True))
    result = _stage(source, target, TEXT_MAPPINGS, compression="none", read_format=read, max_error_records=1)
    assert _json_records(target) == [{"id": 1, "name": '"a"', "note": "x"}]  # no quoting: quotes are text
    assert result.error_files == 1 and result.first_error.startswith(source.uri_for("b.csv"))

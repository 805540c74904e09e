"""Glue's JSON reader options (`multiline`, `jsonPath`): config keys, the streaming converter, the stage."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from glueflow_dagster.core import json_reader
from glueflow_dagster.core.config import ConfigError, load_config
from glueflow_dagster.core.json_reader import JsonFormat, JsonPathError, convert_object, parse_json_path
from glueflow_dagster.core.stage import run_stage
from glueflow_dagster.core.storage import LocalStorage, S3Storage, Storage
from glueflow_dagster_tests.conftest import write_flow_file

MAPPINGS = [("id", "long", "id", "long"), ("user.name", "string", "name", "string")]


def _convert(tmp_path: Path, data: bytes, fmt: JsonFormat) -> tuple[Any, list[Any], list[dict[str, Any]]]:
    path = tmp_path / "object.json"
    path.write_bytes(data)
    report = convert_object(path, "s3://b/object.json", tmp_path, fmt)
    records = [json.loads(line) for line in report.clean_path.read_text().splitlines()] if report.clean_path else []
    entries = [json.loads(line) for line in report.entries_path.read_text().splitlines()] if report.entries_path else []
    return report, records, entries


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", ((), False)),
        ("$[*]", ((), True)),
        ("$.records[*]", (("records",), True)),
        ("$.a.b", (("a", "b"), False)),
        ("$['odd key'][\"x\"][*]", (("odd key", "x"), True)),
    ],
)
def test_parse_json_path(path: str, expected: tuple[tuple[str, ...], bool]) -> None:
    assert parse_json_path(path) == expected


@pytest.mark.parametrize("path", ["records[*]", "$.a[0]", "$..a", "$.a[*].b"])
def test_parse_json_path_rejects(path: str) -> None:
    with pytest.raises(JsonPathError, match="jsonPath"):
        parse_json_path(path)


def test_multiline_reads_pretty_printed_documents_and_arrays(tmp_path: Path) -> None:
    data = '{\n  "id": 1,\n  "user": {"name": "ann"}\n}\n[\n  {"id": 2},\n  7,\n  {"id": 3}\n]\n'
    report, records, entries = _convert(tmp_path, data.encode(), JsonFormat(multiline=True))
    assert records == [{"id": 1, "user": {"name": "ann"}}, {"id": 2}, {"id": 3}]
    assert (report.good_records, report.error_records) == (3, 1)
    # The bad value keeps its position: the object, the line where it starts and its record number.
    assert entries == [
        {
            "source": "s3://b/object.json",
            "line": 7,
            "record": 3,
            "error": "not a JSON object (number)",
            "raw": "7",
            "raw_encoding": "utf-8",
        }
    ]


def test_json_path_finds_records_inside_each_document(tmp_path: Path) -> None:
    data = json.dumps({"meta": {"skip": [1, {"id": 0}]}, "records": [{"id": 1}, {"id": 2}], "n": 2}, indent=2)
    _, records, _ = _convert(tmp_path, data.encode(), JsonFormat(json_path="$.records[*]"))
    assert records == [{"id": 1}, {"id": 2}]
    _, records, _ = _convert(tmp_path, b'[{"id": 1},\n{"id": 2}]', JsonFormat(json_path="$[*]"))
    assert records == [{"id": 1}, {"id": 2}]


def test_malformed_json_ends_the_records_of_the_object_with_its_position(tmp_path: Path) -> None:
    data = b'[\n{"id": 1},\n{"id": 2 "oops"},\n{"id": 3}\n]'
    report, records, entries = _convert(tmp_path, data, JsonFormat(multiline=True))
    assert records == [{"id": 1}]
    positions = [(e["line"], e["record"], e["error"]) for e in entries]
    assert positions == [(3, 2, "malformed JSON (Expecting ',' delimiter)")]
    assert report.first_error == "s3://b/object.json line 3 (record 2): malformed JSON (Expecting ',' delimiter)"


def test_unreadable_objects(tmp_path: Path) -> None:
    report, _, _ = _convert(tmp_path, b'[{"a": "\xff"}]', JsonFormat(multiline=True))
    assert report.unreadable and report.error == "not valid UTF-8 (near line 1)"
    report, _, _ = _convert(tmp_path, b"PAR1\x00\x00", JsonFormat(multiline=True))
    assert report.error == "not JSON (a Parquet file)"


@pytest.mark.parametrize("chunk", [1, 3, 17])
def test_records_cut_by_chunk_boundaries(tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_reader, "_CHUNK", chunk)
    records = [{"id": i, "v": [1.5e10, -2, True, None], "s": 'a\u2603\\n"]}'} for i in range(40)]
    data = json.dumps({"head": 1e5, "records": records, "tail": "x"}, indent=1).encode()
    report, got, _ = _convert(tmp_path, data, JsonFormat(json_path="$.records[*]"))
    assert got == records and report.error_records == 0


def test_memory_stays_bounded_by_a_record_not_the_object(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with open(path, "w") as out:
        out.write("[")
        for i in range(30_000):
            out.write(("," if i else "") + json.dumps({"id": i, "pad": "x" * 1000}))
        out.write("]")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        report = convert_object(path, "big", tmp_path, JsonFormat(multiline=True))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.good_records == 30_000
    assert size > 30_000_000 and peak < 20_000_000  # a few read chunks, not the 30 MB object


def _write(storage: Storage, key: str, data: bytes) -> Any:
    return storage.write_bytes(key, data)


def _rows(target: Storage) -> list[dict[str, Any]]:
    return [
        row
        for obj in sorted(target.list(""), key=lambda o: o.key)
        if obj.key.startswith("run-")
        for row in map(json.loads, target.read_bytes(obj.key).decode().splitlines())
    ]


@pytest.fixture(params=["local", "s3"])
def locations(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, Storage]:
    if request.param == "local":
        return LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")
    return S3Storage(bucket, "in", client), S3Storage(bucket, "staging/x", client)


def test_the_stage_reads_multiline_and_json_path_objects_and_quarantines_with_positions(
    locations: tuple[Storage, Storage],
) -> None:
    source, target = locations
    document = {"records": [{"id": 1, "user": {"name": "ann"}}, "junk", {"id": 2, "user": {"name": "bob"}}]}
    infos = [
        _write(source, "a.json", json.dumps(document, indent=2).encode()),
        _write(source, "b.json.gz", gzip.compress(json.dumps({"records": [{"id": 3}]}).encode())),
        _write(source, "c.json", b"PAR1 not json"),
    ]
    result = run_stage(
        source,
        infos,
        MAPPINGS,
        target,
        name_prefix="run",
        compression="none",
        max_error_records=5,
        json_format=JsonFormat(json_path="$.records[*]"),
    )
    assert sorted((r["id"], r["name"]) for r in _rows(target)) == [(1, "ann"), (2, "bob"), (3, None)]
    assert (result.records_read, result.records_written, result.error_records, result.error_files) == (4, 3, 1, 1)
    entries = [
        json.loads(line) for obj in result.quarantined for line in target.read_bytes(obj.key).decode().splitlines()
    ]
    by_source = {e["source"].rsplit("/", 1)[1]: e for e in entries}
    assert by_source["a.json"]["record"] == 2 and by_source["a.json"]["line"] == 9
    assert by_source["a.json"]["error"] == "not a JSON object (string)"
    assert by_source["c.json"]["error"] == "not JSON (a Parquet file)" and by_source["c.json"]["line"] is None


def test_json_lines_stays_the_default(tmp_path: Path) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    info = _write(source, "a.json", b'{"id": 1}\n{"id": 2}\n')
    result = run_stage(source, [info], MAPPINGS, target, name_prefix="run", compression="none")
    assert result.records_written == 2


def test_config_keys_on_locations_a_job_reads(tmp_path: Path) -> None:
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    flow = document["flows"]["events"]
    flow["input"].update({"multiline": True, "jsonPath": "$.records[*]"})
    flow["staging"]["multiline"] = True
    path.write_text(yaml.safe_dump(document))
    loaded = load_config(path).flows["events"]
    assert loaded.input.json_format == JsonFormat(multiline=True, json_path="$.records[*]")
    assert loaded.staging.json_format == JsonFormat(multiline=True)
    assert loaded.output.json_format.is_lines

    flow["output"]["multiline"] = True  # output locations are written, never read by a job
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"flow 'events'\.output: unknown field 'multiline'"):
        load_config(path)
    del flow["output"]["multiline"]
    flow["input"]["jsonPath"] = "records[*]"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"flow 'events'\.input\.jsonPath: jsonPath 'records\[\*\]' must start"):
        load_config(path)
    flow["input"]["jsonPath"] = "$"
    flow["input"]["multiline"] = "yes"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"flow 'events'\.input\.multiline: expected true or false"):
        load_config(path)

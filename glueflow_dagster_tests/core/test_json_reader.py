"""Glue's JSON reader options (`multiline`, `jsonPath`): config keys, the streaming converter, the stage."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import polars as pl
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


# Hostile input (issue 22 items 2, 3, 7, 8): one object never stops the run, nothing is dropped silently,
# memory stays bounded by a record and time by the object's size.


def _nested(depth: int) -> str:
    return '{"id": 9, "deep": ' + "[" * depth + "]" * depth + "}"


def test_a_deeply_nested_record_is_read_or_quarantined_never_a_crash(tmp_path: Path) -> None:
    # 1,000 levels: deeper than Python's decoder goes, not deeper than the stage's reader reads (1,024).
    path = tmp_path / "object.json"
    path.write_bytes(f'[{{"id": 1}},\n{_nested(1000)},\n{_nested(5000)},\n{{"id": 2}}]'.encode())
    report = convert_object(path, "s3://b/object.json", tmp_path, JsonFormat(multiline=True))
    assert report.clean_path is not None and report.entries_path is not None
    # Read as the stage reads (Python's json module cannot load the 1,000 levels).
    assert pl.read_ndjson(report.clean_path, schema={"id": pl.Int64})["id"].to_list() == [1, 9, 2]
    entries = [json.loads(line) for line in report.entries_path.read_text().splitlines()]
    assert (report.good_records, report.error_records) == (3, 1)
    assert [(e["line"], e["record"], e["error"]) for e in entries] == [(3, 3, "nested deeper than 1024 levels")]


@pytest.mark.parametrize("fmt", [JsonFormat(multiline=True), JsonFormat(json_path="$.records[*]")])
def test_a_corrupt_gzip_object_is_unreadable_not_a_crash(tmp_path: Path, fmt: JsonFormat) -> None:
    payload = gzip.compress(json.dumps({"records": [{"id": i, "pad": "x" * i} for i in range(2000)]}).encode())
    corrupt = payload[:200] + bytes(b ^ 0x5A for b in payload[200:400]) + payload[400:]
    report, records, _ = _convert(tmp_path, corrupt, fmt)
    assert report.unreadable and records == []
    assert report.error is not None and report.error.startswith("corrupt gzip stream ("), report.error
    assert report.first_error == f"s3://b/object.json: {report.error}"


def test_a_json_path_that_matches_nothing_is_reported_not_dropped(tmp_path: Path) -> None:
    data = json.dumps({"items": [{"id": i} for i in range(1000)]}).encode()
    report, records, _ = _convert(tmp_path, data, JsonFormat(json_path="$.records[*]"))
    assert records == [] and report.unreadable
    assert report.error == "no records at path $.records[*]"
    # A path that is there but holds no records, and an empty object, are not errors.
    for empty in (b'{"records": []}', b"", b" \n"):
        report, records, _ = _convert(tmp_path, empty, JsonFormat(json_path="$.records[*]"))
        assert (report.unreadable, report.good_records, report.error_records) == (False, 0, 0)


def test_a_long_json_path_is_cut_in_messages() -> None:
    path = "$." + "a" * 100_000
    with pytest.raises(JsonPathError) as raised:
        parse_json_path(path + "[0]")
    assert len(str(raised.value)) < 300 and "100,005 characters" in str(raised.value)
    with pytest.raises(JsonPathError, match="at most 100 steps"):
        parse_json_path("$" + ".a" * 101)


def test_a_hostile_object_is_quarantined_and_the_others_staged(locations: tuple[Storage, Storage]) -> None:
    source, target = locations
    good = json.dumps({"records": [{"id": 1, "user": {"name": "ann"}}]}).encode()
    infos = [
        _write(source, "a.json", good),
        _write(source, "b.json.gz", gzip.compress(good)[:-30] + b"\x00" * 30),
        _write(source, "c.json", b'{"records": [' + _nested(5000).encode() + b', {"id": 2}]}'),
        _write(source, "d.json", b'{"other": [{"id": 3}]}'),
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
    assert sorted(r["id"] for r in _rows(target)) == [1, 2]
    assert (result.error_records, result.error_files) == (1, 2)
    entries = [
        json.loads(line) for obj in result.quarantined for line in target.read_bytes(obj.key).decode().splitlines()
    ]
    by_source = {e["source"].rsplit("/", 1)[1]: e["error"] for e in entries}
    assert by_source["b.json.gz"].startswith(("corrupt gzip stream", "truncated gzip stream"))
    assert by_source["c.json"] == "nested deeper than 1024 levels"
    assert by_source["d.json"] == "no records at path $.records[*]"


def _peak(run: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_memory_of_one_large_record_is_about_its_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_reader, "_CHUNK", 256 * 1024)
    path = tmp_path / "big.json"
    items = ",".join(json.dumps({"k": i, "v": "ab", "f": 1.5}) for i in range(150_000))
    path.write_text('{"id": 1, "items": [' + items + "]}")
    size = path.stat().st_size
    report, peak = _peak(lambda: convert_object(path, "big", tmp_path, JsonFormat(multiline=True)))
    assert report.good_records == 1
    # The record's text (held once, and once more while the buffer grows), not its decoded objects (~10x).
    assert size > 5_000_000 and peak < 3 * size, (size, peak)


def test_a_skipped_sibling_is_never_held_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_reader, "_CHUNK", 64 * 1024)
    path = tmp_path / "big.json"
    items = ",".join(json.dumps({"k": i, "v": 'a]}\\"b', "f": [1.5, None]}) for i in range(150_000))
    path.write_text('{"skip": [' + items + '], "text": "' + "y" * 3_000_000 + '", "records": [{"id": 1}]}')
    report, peak = _peak(lambda: convert_object(path, "big", tmp_path, JsonFormat(json_path="$.records[*]")))
    assert report.good_records == 1 and report.error_records == 0
    assert path.stat().st_size > 8_000_000 and peak < 1_000_000, peak


def test_time_grows_linearly_with_the_bad_values(tmp_path: Path) -> None:
    # Every bad value's line was counted from the start of the buffer (quadratic: 100,000 took ~17 s). Compared as
    # growth, not against a clock: four times the bad values must cost about four times the CPU time (quadratic
    # work would cost sixteen), so a loaded machine slows both runs alike and cannot fail the test.
    def cpu_seconds(count: int, folder: Path) -> float:
        folder.mkdir()
        data = ("[" + ",\n".join("1" for _ in range(count)) + "]").encode()
        started = time.process_time()
        report, _, entries = _convert(folder, data, JsonFormat(multiline=True))
        assert report.error_records == count and entries[-1]["line"] == count
        return time.process_time() - started

    small = min(cpu_seconds(25_000, tmp_path / f"small{i}") for i in range(2))
    large = min(cpu_seconds(100_000, tmp_path / f"large{i}") for i in range(2))
    assert large < 9 * max(small, 0.01), (small, large)


# Peak memory of a real conversion, measured in a child process by its VmHWM (ru_maxrss is carried over
# fork and exec on Linux, so a child started by a large pytest worker would report the worker's peak).
_CHILD = """
import sys
from pathlib import Path
from glueflow_dagster.core.json_reader import JsonFormat, convert_object

def hwm():
    status = Path("/proc/self/status").read_text()
    return int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]) * 1024

path, json_path = Path(sys.argv[1]), sys.argv[2]
fmt = JsonFormat(json_path=json_path) if json_path else JsonFormat(multiline=True)
baseline = hwm()
report = convert_object(path, "big", path.parent, fmt)
print(hwm() - baseline, report.good_records, report.error_records, report.error)
"""


def _write_large(path: Path, case: str, size: int) -> str:
    """One large record (or a large skipped sibling); the jsonPath to read it with ("" for multiline)."""
    with open(path, "w") as out:
        if case == "one-string":
            out.write('{"id": 1, "text": "' + "y" * size + '"}')
            return ""
        out.write('{"id": 1, "items": [' if case != "sibling" else '{"skip": [')
        item = '"s{}"' if case == "strings" else '{{"k": {}, "v": [1.5, null], "s": "a]}}\\\\\\"b"}}'
        written = 0
        while written < size:
            piece = ",".join(item.format(i) for i in range(10_000))
            out.write(("," if written else "") + piece)
            written += len(piece) + 1
        out.write("]}" if case != "sibling" else '], "records": [{"id": 1}]}')
        return "$.records[*]" if case == "sibling" else ""


@pytest.mark.parametrize("case", ["strings", "objects", "one-string", "sibling"])
def test_peak_memory_stays_a_few_chunks_whatever_the_record_size(tmp_path: Path, case: str) -> None:
    # Before: one 20 MB record of short strings +247 MB, of small objects +44 MB, one 20 MB string +51 MB.
    size = 20_000_000
    path = tmp_path / "big.json"
    json_path = _write_large(path, case, size)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), json_path], capture_output=True, text=True, timeout=300, check=True
    )
    peak, good, bad, error = done.stdout.split()
    assert (int(good), int(bad), error) == (1, 0, "None")
    assert int(peak) < 16_000_000, (
        f"{case}: peak {int(peak) / 1e6:.1f} MB over the baseline for a {size / 1e6:.0f} MB value"
    )

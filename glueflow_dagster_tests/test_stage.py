"""One stage (list -> read -> ApplyMapping -> write) on local folders and on the moto S3 server."""

import gzip
import json
from typing import Any

import pytest

from glueflow_dagster.mapping import parse_mappings
from glueflow_dagster.stage import output_object_key, run_stage
from glueflow_dagster.storage import LocalStorage, S3Storage, Storage

MAPPINGS = parse_mappings(
    [
        ["id", "long", "event_id", "long"],
        ["user.id", "int", "user_id", "long"],
        ["amount", "string", "amount", "double"],
    ]
)
RECORDS = [
    {"id": 1, "user": {"id": 7, "name": "a"}, "amount": "1.5", "extra": "dropped"},
    {"id": 2, "user": {"id": 8}, "amount": "not a number"},
    {"id": 3, "amount": "3"},
]
EXPECTED = [
    {"event_id": 1, "user_id": 7, "amount": 1.5},
    {"event_id": 2, "user_id": 8, "amount": None},
    {"event_id": 3, "user_id": None, "amount": 3.0},
]


def _lines(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


@pytest.fixture(params=["local", "s3"])
def locations(request: pytest.FixtureRequest, tmp_path) -> tuple[Storage, Storage]:
    if request.param == "local":
        return LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")
    return S3Storage(bucket, "in", client), S3Storage(bucket, "staging/x", client)


def _read_back(target: Storage) -> list[dict[str, Any]]:
    rows = []
    for info in target.list():
        data = target.read_bytes(info.key)
        text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        rows += [json.loads(line) for line in text.decode().splitlines()]
    return rows


def test_stage_maps_plain_and_gzip_objects_and_reports_figures(locations: tuple[Storage, Storage]) -> None:
    source, target = locations
    plain = source.write_bytes("a/part-0.json", _lines(RECORDS[:2]))
    packed = source.write_bytes("b/part-1.json.gz", gzip.compress(_lines(RECORDS[2:])))
    result = run_stage(source, [plain, packed], MAPPINGS, target, name_prefix="run-abc", compression="gzip")

    assert sorted(_read_back(target), key=lambda r: r["event_id"]) == EXPECTED
    [written] = list(target.list())
    assert written.key == "run-abc-part-r-00000.json.gz"
    assert target.read_bytes(written.key)[:2] == b"\x1f\x8b"
    assert result.written == (written,)
    assert (result.files_read, result.bytes_read) == (2, plain.size + packed.size)
    assert (result.files_written, result.bytes_written) == (1, written.size)
    assert (result.records_read, result.records_written, result.error_records) == (3, 3, 0)
    assert result.cast_errors == 1  # "not a number" -> null, counted
    assert result.duration_s > 0


def test_rerun_with_the_same_name_overwrites_instead_of_duplicating(
    locations: tuple[Storage, Storage],
) -> None:
    source, target = locations
    info = source.write_bytes("x.json", _lines(RECORDS))
    for _ in range(2):
        run_stage(source, [info], MAPPINGS, target, name_prefix="run-same", compression="none")
    assert [o.key for o in target.list()] == ["run-same-part-r-00000.json"]
    assert len(_read_back(target)) == 3


def test_nothing_to_read_writes_nothing(tmp_path) -> None:
    target = LocalStorage(tmp_path / "out")
    result = run_stage(
        LocalStorage(tmp_path / "in"), [], MAPPINGS, target, name_prefix="run-x", compression="gzip"
    )
    assert list(target.list()) == []
    assert (result.records_read, result.bytes_written, result.files_written) == (0, 0, 0)


def test_source_field_names_match_case_insensitively(tmp_path) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    info = source.write_bytes("x.json", _lines([{"ID": 5, "User": {"Id": 9}, "AMOUNT": "2.5"}]))
    run_stage(source, [info], MAPPINGS, target, name_prefix="run-c", compression="none")
    assert _read_back(target) == [{"event_id": 5, "user_id": 9, "amount": 2.5}]


@pytest.mark.parametrize(("compression", "suffix"), [("gzip", ".json.gz"), ("none", ".json")])
def test_output_object_key(compression: str, suffix: str) -> None:
    assert output_object_key("run-r1", 3, compression) == f"run-r1-part-r-00003{suffix}"

"""One stage (list -> read -> ApplyMapping -> write) on local folders and on the moto S3 server."""

import gzip
import json
import socket
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from glueflow_dagster.core.commits import Attempt, abort, commit_manifest_key, publish
from glueflow_dagster.core.mapping import parse_mappings
from glueflow_dagster.core.quarantine import list_stage_inputs
from glueflow_dagster.core.sample_data import write_events_file
from glueflow_dagster.core.stage import StageError, StageRequest, output_object_key, run_stage, stage_pending
from glueflow_dagster.core.stage import plan as stage_plan
from glueflow_dagster.core.stage import read as stage_read
from glueflow_dagster.core.storage import LocalStorage, ObjectInfo, S3Storage, Storage, StorageError

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


@pytest.fixture(params=["local", "s3", "s3rver"])
def locations(request: pytest.FixtureRequest, tmp_path) -> tuple[Storage, Storage]:
    if request.param == "local":
        return LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    prefix = "s3_" if request.param == "s3" else "s3rver_"  # moto, or npm's s3rver (issue 21)
    client, bucket = request.getfixturevalue(f"{prefix}client"), request.getfixturevalue(f"{prefix}bucket")
    return S3Storage(bucket, "in", client), S3Storage(bucket, "staging/x", client)


def _is_s3rver(storage: Storage) -> bool:
    """s3rver ignores If-None-Match and has no ListMultipartUploads (the probe tells it apart from moto)."""
    return isinstance(storage, S3Storage) and not storage.honours_conditional_writes()


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
    result = run_stage(LocalStorage(tmp_path / "in"), [], MAPPINGS, target, name_prefix="run-x", compression="gzip")
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


# --- parts ------------------------------------------------------------------------------------------


def _many(count: int, first: int = 0) -> bytes:
    return _lines([{"id": i, "user": {"id": i % 7}, "amount": f"{i}.25"} for i in range(first, first + count)])


def _part_keys(target: Storage, name_prefix: str) -> list[str]:
    return [o.key for o in target.list(recurse=False) if o.key.startswith(f"{name_prefix}-part-r-")]


def _records_by_part(target: Storage) -> dict[str, list[dict[str, Any]]]:
    parts = {}
    for info in target.list(recurse=False):
        data = target.read_bytes(info.key)
        text = gzip.decompress(data) if info.key.endswith(".gz") else data
        parts[info.key] = [json.loads(line) for line in text.decode().splitlines()]
    return parts


def test_large_runs_are_split_into_parts_of_about_target_file_bytes(
    locations: tuple[Storage, Storage],
) -> None:
    source, target = locations
    infos = [source.write_bytes(f"in-{i}.json", _many(50, 50 * i)) for i in range(3)]
    result = run_stage(source, infos, MAPPINGS, target, name_prefix="run-p", compression="gzip", target_file_bytes=1000)
    parts = _records_by_part(target)
    assert list(parts) == [output_object_key("run-p", n, "gzip") for n in range(len(parts))]
    sizes = [sum(len(json.dumps(r, separators=(",", ":"))) + 1 for r in records) for records in parts.values()]
    # About 45 bytes of JSON per record: 150 records make 7 parts of about 1000 bytes (the last one less).
    assert len(sizes) == 7
    assert all(800 <= size <= 1100 for size in sizes[:-1]) and sizes[-1] <= 1100
    ids = sorted(r["event_id"] for records in parts.values() for r in records)
    assert ids == list(range(150))  # every record once
    assert result.files_written == 7 and result.records_written == 150
    assert [o.key for o in result.written] == list(parts)
    assert result.bytes_written == sum(o.size for o in target.list(recurse=False))


def test_a_stage_run_returns_pending_parts_only_until_commits_publishes_them(
    locations: tuple[Storage, Storage],
) -> None:
    source, target = locations
    info = source.write_bytes("x.json", _many(60))
    request = StageRequest(source, (info,), target, "run-d", MAPPINGS, compression="gzip", target_file_bytes=500)
    result = stage_pending(request)
    assert len(result.pending) == result.files_written > 3
    assert [p.key for p in result.pending] == [o.key for o in result.written]
    assert list(list_stage_inputs(target, recurse=True, exclusions=())) == []  # written, but no reader sees it
    assert not any(o.key.startswith("run-d") for o in target.list(recurse=True))  # not even a raw listing
    listed = sorted(u.key for u in target.pending_uploads())  # s3rver lists no uploads (NotImplemented)
    assert listed == ([] if _is_s3rver(target) else sorted(p.key for p in result.pending))
    record = publish(target, Attempt("r1"), "job", result.pending, result.records_written)
    assert sorted(o.key for o in list_stage_inputs(target, recurse=True, exclusions=())) == sorted(record.keys)
    assert sum(len(records) for records in _records_by_part(target).values() if records) == 60
    assert list(target.pending_uploads()) == []
    manifest = json.loads(target.read_bytes(commit_manifest_key("r1")))
    assert manifest["records_written"] == 60 and len(manifest["parts"]) == result.files_written


def test_an_aborted_attempt_leaves_nothing_and_touches_no_other_attempt(locations: tuple[Storage, Storage]) -> None:
    source, target = locations
    info = source.write_bytes("x.json", _many(30))
    run_stage(source, [info], MAPPINGS, target, name_prefix="run-a", compression="none", target_file_bytes=300)
    committed = {o.key: target.read_bytes(o.key) for o in target.list(recurse=False)}
    assert len(committed) > 1
    result = stage_pending(StageRequest(source, (info,), target, "run-b", MAPPINGS))
    assert abort(target, result.pending) == len(result.pending) == 1
    bad = source.write_bytes("x.json", _many(30) + b"{broken\n")
    with pytest.raises(StageError, match=r"x\.json line 31: malformed JSON$"):
        run_stage(source, [bad], MAPPINGS, target, name_prefix="run-c", compression="none", target_file_bytes=300)
    assert {o.key: target.read_bytes(o.key) for o in target.list(recurse=False)} == committed
    assert list(target.pending_uploads()) == []
    assert [o.key for o in target.list("_errors")] == ["_errors/run-c/errors-00000.json"]


def test_objects_deleted_after_planning_are_skipped_and_counted(locations: tuple[Storage, Storage]) -> None:
    source, target = locations
    kept = source.write_bytes("a.json", _many(5))
    gone = source.write_bytes("b.json", _many(7, 100))
    source.delete("b.json")
    result = run_stage(source, [kept, gone], MAPPINGS, target, name_prefix="run-v", compression="none")
    assert result.vanished == (gone,)
    assert result.read == (kept,) and result.records_read == result.records_written == 5


def test_remote_objects_are_read_in_bounded_groups(
    s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stage_read, "_STAGING_BYTES", 1)  # every object is its own download group
    source, target = S3Storage(s3_bucket, "in", s3_client), S3Storage(s3_bucket, "out", s3_client)
    infos = [source.write_bytes(f"in-{i}.json", _many(10, 10 * i)) for i in range(4)]
    result = run_stage(source, infos, MAPPINGS, target, name_prefix="run-g", compression="gzip")
    assert _part_keys(target, "run-g") == [output_object_key("run-g", n, "gzip") for n in range(4)]
    assert sorted(r["event_id"] for rows in _records_by_part(target).values() for r in rows) == list(range(40))
    assert (result.records_read, result.records_written, result.files_read) == (40, 40, 4)


TIMESTAMP_MAPPINGS = parse_mappings([["id", "long", "event_id", "long"], ["ts", "string", "event_time", "timestamp"]])


def _timestamps(count: int, first: int = 0, late: dict[int, str] | None = None) -> bytes:
    """Plain-form times, except the lines in ``late`` (line index -> text)."""
    late = late or {}
    return _lines(
        [
            {"id": i, "ts": late.get(i, f"2026-11-24 00:{i // 60 % 60:02d}:{i % 60:02d}")}
            for i in range(first, first + count)
        ]
    )


def _stage_log(source: Storage, infos: list[ObjectInfo], target: Storage) -> tuple[list[str], Any]:
    messages: list[str] = []
    result = run_stage(
        source, infos, TIMESTAMP_MAPPINGS, target, name_prefix="run-t", compression="none", log=messages.append
    )
    return messages, result


def test_a_timestamp_in_another_form_past_the_sample_is_mapped_in_full(locations: tuple[Storage, Storage]) -> None:
    # The sample (the first 1000 lines) holds only the plain form, so the stage speculates; line 1500
    # is ISO with a zone and line 1501 has a zone name: the speculation misses and the group is mapped again.
    source, target = locations
    late = {1500: "2026-11-24T10:00:00+02:00", 1501: "2025-11-24 17:00:00 Europe/Paris"}
    info = source.write_bytes("t.json", _timestamps(2000, late=late))
    messages, result = _stage_log(source, [info], target)
    rows = {r["event_id"]: r["event_time"] for r in _read_back(target)}
    assert len(rows) == 2000 and all(rows.values())
    assert rows[1500] == "2026-11-24 08:00:00" and rows[1501] == "2025-11-24 16:00:00"
    assert rows[0] == "2026-11-24 00:00:00"
    assert result.cast_errors == 0 and result.records_written == 2000
    assert sum("mapped again with the full parser" in m for m in messages) == 1
    assert _part_keys(target, "run-t") == [output_object_key("run-t", 0, "none")]  # no parts left of the miss


def test_a_sample_in_another_form_maps_in_full_from_the_start(tmp_path: Path) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    info = source.write_bytes("t.json", _timestamps(50, late={0: "2026-11-24T10:00:00Z", 1: "not a time"}))
    messages, result = _stage_log(source, [info], target)
    assert not any("mapped again" in m for m in messages)  # no speculation, so nothing to miss
    assert result.cast_errors == 1  # "not a time" only
    rows = {r["event_id"]: r["event_time"] for r in _read_back(target)}
    assert rows[0] == "2026-11-24 10:00:00" and rows[1] is None and rows[2] == "2026-11-24 00:00:02"


def test_after_a_miss_later_groups_are_mapped_in_full_at_once(
    s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stage_read, "_STAGING_BYTES", 1)  # every object is its own download group
    source, target = S3Storage(s3_bucket, "in", s3_client), S3Storage(s3_bucket, "out", s3_client)
    infos = [
        source.write_bytes("a.json", _timestamps(10)),
        source.write_bytes("b.json", _timestamps(10, 10, late={15: "2026-11-24T00:00:15"})),
        source.write_bytes("c.json", _timestamps(10, 20, late={25: "2026-11-24T00:00:25"})),
    ]
    messages, result = _stage_log(source, infos, target)
    assert sum("mapped again with the full parser" in m for m in messages) == 1  # b.json only
    rows = {r["event_id"]: r["event_time"] for r in _read_back(target)}
    assert rows[15] == "2026-11-24 00:00:15" and rows[25] == "2026-11-24 00:00:25"
    assert result.cast_errors == 0 and result.records_written == 30


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects above 1,000 bytes are read in pieces of about 300 bytes; boundaries are looked for 16
    bytes at a time, so lines cross windows."""
    monkeypatch.setattr(stage_read, "_SPLIT_ABOVE_BYTES", 1000)
    monkeypatch.setattr(stage_read, "_PIECE_BYTES", 300)
    monkeypatch.setattr(stage_read, "_BOUNDARY_WINDOW", 16)


def test_the_size_sample_reads_the_head_of_a_json_lines_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage_plan, "_SAMPLE_BLOCK", 100)
    monkeypatch.setattr(stage_plan, "_SIZE_SAMPLE_LINES", 10)
    data = _many(50)
    plain, packed, short = tmp_path / "plain.json", tmp_path / "packed.json", tmp_path / "short.json"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    short.write_bytes(_many(3)[:-1])  # no final newline
    head = stage_plan._sample_source(plain)
    assert isinstance(head, bytes) and data.startswith(head) and head.endswith(b"\n")
    # The sample's lines, whole, and no more: the reader parses every line it is given, whatever n_rows.
    assert head.count(b"\n") == 10
    assert stage_plan._sample_source(packed) == str(packed)  # compressed: read by polars, as before
    assert stage_plan._sample_source(short) == short.read_bytes()
    monkeypatch.setattr(stage_plan, "_SAMPLE_MAX_BYTES", 100)
    long_line = tmp_path / "long.json"
    long_line.write_bytes(b'{"note": "' + b"x" * 500 + b'"}\n')
    assert stage_plan._sample_source(long_line) == str(long_line)  # no whole line within the limit


def test_the_size_sample_of_long_lines_stops_at_about_sample_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines of 120-field records: the sample holds whole lines up to about _SAMPLE_BYTES, not its full count
    of lines (which read and mapped 2.2 MB before the query of a 100 MB object)."""
    monkeypatch.setattr(stage_plan, "_SAMPLE_BLOCK", 100)
    monkeypatch.setattr(stage_plan, "_SIZE_SAMPLE_LINES", 1000)
    monkeypatch.setattr(stage_plan, "_SAMPLE_BYTES", 300)
    data = _many(200)
    plain = tmp_path / "plain.json"
    plain.write_bytes(data)
    head = stage_plan._sample_source(plain)
    assert isinstance(head, bytes) and data.startswith(head) and head.endswith(b"\n")
    assert 1 <= head.count(b"\n") < 20 and len(head) <= 300
    wide = tmp_path / "wide.json"
    wide.write_bytes(b'{"note": "' + b"x" * 500 + b'"}\n' + data)  # the first line is longer than _SAMPLE_BYTES
    long_head = stage_plan._sample_source(wide)  # blocks up to the first whole line, and the block it ends in
    assert isinstance(long_head, bytes) and long_head.startswith(b'{"note"') and long_head.count(b"\n") <= 2


@pytest.mark.usefixtures("small_pieces")
def test_pieces_are_line_aligned_and_add_up_to_the_object(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + _many(60) + b'{"id": 1000, "note": "' + b"x" * 700 + b'"}\n' + _many(5, 2000)[:-1]
    path = tmp_path / "big.json"
    path.write_bytes(data)
    messages: list[str] = []
    with ExitStack() as stack:
        pieces = stage_read.line_aligned_pieces(path, "file:///big.json", tmp_path, stack, messages.append)
        contents = [piece.read_bytes() for piece in pieces]
        assert len(pieces) > 3 and b"".join(contents) == data
        assert all(c.endswith(b"\n") for c in contents[:-1])  # every piece ends where a line ends
        assert all(len(c) <= 300 + 800 for c in contents)  # a piece overruns only to finish its line
    assert not any(piece.exists() for piece in pieces)  # removed with the stack
    assert messages == [
        f"reading file:///big.json ({len(data):,} bytes) as {len(pieces)} line-aligned pieces, so memory stays bounded"
    ]


@pytest.mark.usefixtures("small_pieces")
def test_a_large_object_read_in_pieces_maps_like_a_small_one(locations: tuple[Storage, Storage]) -> None:
    source, target = locations
    info = source.write_bytes("big.json", _many(200))
    messages: list[str] = []
    result = run_stage(source, [info], MAPPINGS, target, name_prefix="run-b", compression="gzip", log=messages.append)
    assert sorted(r["event_id"] for r in _read_back(target)) == list(range(200))
    assert (result.records_read, result.records_written, result.error_records) == (200, 200, 0)
    assert any("line-aligned pieces" in m for m in messages)


@pytest.mark.usefixtures("small_pieces")
def test_bad_records_of_a_large_object_keep_the_object_s_own_line_numbers(tmp_path: Path) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    info = source.write_bytes("big.json", _many(40) + b"{broken\n" + _many(40, 40))
    result = run_stage(source, [info], MAPPINGS, target, name_prefix="run-q", compression="none", max_error_records=1)
    assert (result.records_read, result.records_written, result.error_records) == (81, 80, 1)
    [entry] = [
        json.loads(line)
        for o in target.list()
        if o.key.startswith("_errors/")
        for line in target.read_bytes(o.key).decode().splitlines()
    ]
    assert (entry["source"], entry["line"], entry["raw"]) == (source.uri_for("big.json"), 41, "{broken")


@pytest.mark.usefixtures("small_pieces")
def test_compressed_and_other_large_objects_are_read_whole(tmp_path: Path) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    big_gzip = source.write_bytes("big.json.gz", gzip.compress(_many(300)))
    assert big_gzip.size > 1000
    messages: list[str] = []
    result = run_stage(
        source, [big_gzip], MAPPINGS, target, name_prefix="run-c", compression="none", log=messages.append
    )
    assert result.records_written == 300 and not any("pieces" in m for m in messages)


def test_errors_in_a_later_group_delete_the_parts_of_earlier_groups(
    s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stage_read, "_STAGING_BYTES", 1)
    source, target = S3Storage(s3_bucket, "in", s3_client), S3Storage(s3_bucket, "out", s3_client)
    infos = [
        source.write_bytes("a.json", _many(10)),
        source.write_bytes("b.json", _many(10, 10) + b"[]\n"),
        source.write_bytes("c.json", b"nope\n" + _many(10, 20)),
    ]
    with pytest.raises(StageError) as info:
        run_stage(source, infos, MAPPINGS, target, name_prefix="run-l", compression="gzip")
    assert str(info.value) == (
        f"2 error records exceed max_error_records=0; first: {source.uri_for('b.json')} line 11: "
        "not a JSON object (array)"
    )
    assert _part_keys(target, "run-l") == []
    result = info.value.result
    assert (result.records_read, result.records_written, result.error_records, result.records_discarded) == (
        32,
        0,
        2,
        30,
    )
    assert [o.key for o in result.quarantined] == [
        "_errors/run-l/errors-00000.json",
        "_errors/run-l/errors-00001.json",
    ]


def test_records_read_is_records_written_plus_error_records(tmp_path: Path) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    infos = [
        source.write_bytes("a.json", _many(100) + b"bad\n" + _many(5, 100)),
        source.write_bytes("b.json.gz", gzip.compress(_many(20, 200) + b"\xff\n")),
    ]
    result = run_stage(source, infos, MAPPINGS, target, name_prefix="run-i", compression="gzip", max_error_records=2)
    assert (result.records_read, result.records_written, result.error_records) == (127, 125, 2)


def test_compression_level_trades_bytes_for_speed(tmp_path: Path) -> None:
    source = LocalStorage(tmp_path / "in")
    (tmp_path / "in").mkdir()
    write_events_file(tmp_path / "in" / "in.json", 5000)  # the benchmark's events: realistic entropy
    info = source.stat("in.json")
    plain = LocalStorage(tmp_path / "plain")
    run_stage(source, [info], MAPPINGS, plain, name_prefix="run-z", compression="none")
    written = {}
    for level in (None, 4, 9):
        target = LocalStorage(tmp_path / f"out-{level}")
        result = run_stage(
            source, [info], MAPPINGS, target, name_prefix="run-z", compression="gzip", compression_level=level
        )
        assert _read_back(target) == _read_back(plain)
        written[level] = result.bytes_written
    # The default (2, ISA-L) writes more than zlib's level 4, which writes more than its smallest, 9.
    assert written[None] > written[4] > written[9]


@pytest.mark.parametrize("level", [1, 2, 3])
def test_isal_levels_write_one_standard_gzip_stream_per_part_with_the_same_records(tmp_path: Path, level: int) -> None:
    source = LocalStorage(tmp_path / "in")
    infos = [source.write_bytes(f"in-{i}.json", _many(3000, 3000 * i)) for i in range(3)]
    target = LocalStorage(tmp_path / "out")
    result = run_stage(
        source,
        infos,
        MAPPINGS,
        target,
        name_prefix="run-l",
        compression="gzip",
        compression_level=level,
        target_file_bytes=100_000,  # several parts, each its own igzip stream
    )
    assert len(result.written) > 1
    records = []
    for obj in result.written:
        data = target.read_bytes(obj.key)
        assert data[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no file name: nothing but the records varies
        decoded = zlib.decompressobj(wbits=31)  # one gzip member, nothing after it
        text = decoded.decompress(data)
        assert decoded.eof and not decoded.unused_data
        records += [json.loads(line) for line in text.decode().splitlines()]
        assert pl.read_ndjson(data).height == text.count(b"\n")  # polars reads it as it reads its own gzip
    plain = LocalStorage(tmp_path / "plain")
    run_stage(source, infos, MAPPINGS, plain, name_prefix="run-p", compression="none")
    assert sorted(records, key=lambda r: r["event_id"]) == sorted(_read_back(plain), key=lambda r: r["event_id"])


def test_arguments_are_checked_before_anything_is_read(tmp_path: Path) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    info = source.write_bytes("a.json", _many(1))
    for kwargs, message in [
        ({"compression": "zip"}, "compression must be"),
        ({"max_error_records": -1}, "max_error_records must be >= 0"),
        ({"target_file_bytes": 0}, "target_file_bytes must be >= 1"),
        ({"compression_level": 10}, "compression_level must be 1-9 with gzip compression, got 10"),
        ({"compression_level": 0}, "compression_level must be 1-9 with gzip compression, got 0"),
        ({"compression": "none", "compression_level": 6}, "compression_level must be 1-9 with gzip"),
    ]:
        call = {"name_prefix": "run-a", "compression": "gzip", **kwargs}
        with pytest.raises(ValueError, match=message):
            run_stage(source, [info], MAPPINGS, target, **call)
    assert not target.exists()


# --- the environment -----------------------------------------------------------------------------


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self.data


def _s3_error(status: int, code: str) -> Callable[..., AWSResponse]:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>m</Message></Error>"

    def reply(request: Any, **_kwargs: Any) -> AWSResponse:
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Body(body.encode()))

    return reply


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_missing_source_bucket_is_one_line_naming_the_uri(s3_client: Any, tmp_path: Path) -> None:
    source = S3Storage("glueflow-no-such-bucket", "raw", s3_client)
    missing = ObjectInfo("a.json", 10, 0, "e")
    with pytest.raises(StorageError) as info:
        run_stage(source, [missing], MAPPINGS, LocalStorage(tmp_path), name_prefix="r", compression="gzip")
    assert _one_line(info.value) == "s3://glueflow-no-such-bucket/raw/a.json: bucket does not exist (NoSuchBucket)"


def test_missing_target_bucket_is_one_line_naming_the_uri(s3_client: Any, tmp_path: Path) -> None:
    source = LocalStorage(tmp_path / "in")
    info = source.write_bytes("a.json", _many(1))
    target = S3Storage("glueflow-no-such-bucket", "out", s3_client)
    with pytest.raises(StorageError) as err:
        run_stage(source, [info], MAPPINGS, target, name_prefix="r", compression="gzip")
    assert _one_line(err.value).startswith("s3://glueflow-no-such-bucket/out/")
    assert str(err.value).endswith(": bucket does not exist (NoSuchBucket)")


def test_an_unreachable_endpoint_is_one_line_naming_the_uri(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, s3={"addressing_style": "path"}),
    )
    source = S3Storage("bucket", "raw", client)
    with pytest.raises(StorageError) as err:
        list(list_stage_inputs(source, recurse=True, exclusions=()))
    assert _one_line(err.value) == f"s3://bucket: endpoint unreachable (http://127.0.0.1:{port})"
    with pytest.raises(StorageError) as err:
        run_stage(
            source,
            [ObjectInfo("a.json", 1, 0, "e")],
            MAPPINGS,
            LocalStorage(tmp_path),
            name_prefix="r",
            compression="gzip",
        )
    assert _one_line(err.value) == f"s3://bucket/raw/a.json: endpoint unreachable (http://127.0.0.1:{port})"


def test_access_denied_is_one_line_naming_the_uri(s3_client: Any, s3_bucket: str, tmp_path: Path) -> None:
    source = S3Storage(s3_bucket, "raw", s3_client)
    info = source.write_bytes("a.json", _many(1))
    for operation in ("HeadObject", "GetObject"):
        s3_client.meta.events.register(f"before-send.s3.{operation}", _s3_error(403, "AccessDenied"))
    with pytest.raises(StorageError) as err:
        run_stage(source, [info], MAPPINGS, LocalStorage(tmp_path), name_prefix="r", compression="gzip")
    assert _one_line(err.value).startswith(f"{source.uri_for('a.json')}: access denied (")


def test_transient_s3_errors_are_retried(s3_client: Any, s3_bucket: str, tmp_path: Path) -> None:
    """The s3_client fixture retries 3 times (botocore standard mode); two 503s in a row are absorbed."""
    source = S3Storage(s3_bucket, "raw", s3_client)
    info = source.write_bytes("a.json", _many(3))
    failures = {"left": 2, "seen": 0}
    slow_down = _s3_error(503, "SlowDown")

    def flaky(request: Any, **kwargs: Any) -> AWSResponse | None:
        if failures["left"]:
            failures["left"] -= 1
            failures["seen"] += 1
            return slow_down(request, **kwargs)
        return None  # send the request for real

    s3_client.meta.events.register("before-send.s3.GetObject", flaky)
    result = run_stage(source, [info], MAPPINGS, LocalStorage(tmp_path), name_prefix="r", compression="gzip")
    assert failures == {"left": 0, "seen": 2}
    assert result.records_written == 3


def test_groups_after_the_threshold_are_still_counted_but_not_written(
    s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the run is failing, later groups are only read (every line parsed), not mapped to parts."""
    monkeypatch.setattr(stage_read, "_STAGING_BYTES", 1)
    text_only = parse_mappings([["id", "string", "id", "string"]])  # no casts: nothing else parses lines
    source, target = S3Storage(s3_bucket, "in", s3_client), S3Storage(s3_bucket, "out", s3_client)
    infos = [
        source.write_bytes("a.json", b"{oops\n" + _many(3)),
        source.write_bytes("b.json", _many(4) + b"[]\n" + b"{also bad\n"),
    ]
    with pytest.raises(StageError) as info:
        run_stage(source, infos, text_only, target, name_prefix="run-c", compression="gzip")
    result = info.value.result
    assert str(info.value).startswith("3 error records exceed max_error_records=0; first: ")
    assert (result.records_read, result.error_records, result.records_discarded) == (10, 3, 7)
    assert _part_keys(target, "run-c") == []


def test_keys_with_glob_characters_are_read_as_themselves(locations: tuple[Storage, Storage]) -> None:
    """polars expands *?[] in paths: a[1].json must not read a1.json, b*.json must not read bx.json."""
    source, target = locations
    infos = [
        source.write_bytes("a[1].json", _many(1, 1)),
        source.write_bytes("a1.json", _many(1, 2)),
        source.write_bytes("b*.json.gz", gzip.compress(_many(1, 3))),
        source.write_bytes("bx.json.gz", gzip.compress(_many(1, 4))),
        source.write_bytes("c{d,e}?.json", _many(1, 5) + b"bad\n"),
    ]
    result = run_stage(source, infos, MAPPINGS, target, name_prefix="run-g", compression="none", max_error_records=1)
    assert sorted(r["event_id"] for r in _read_back_parts(target)) == [1, 2, 3, 4, 5]
    assert (result.records_read, result.error_records) == (6, 1)
    assert result.first_error == f"{source.uri_for('c{d,e}?.json')} line 2: malformed JSON"


def _read_back_parts(target: Storage) -> list[dict[str, Any]]:
    return [r for key, rows in _records_by_part(target).items() if not key.startswith("_errors/") for r in rows]


def test_a_spelling_first_seen_past_the_sample_is_mapped(locations: tuple[Storage, Storage]) -> None:
    source, target = locations
    early = [{"id": i, "user": {"id": i % 7}, "amount": "1.5"} for i in range(300)]
    late = [{"ID": 1000 + i, "User": {"Id": 3}, "AMOUNT": "2.5"} for i in range(4)]
    info = source.write_bytes("mixed.json", _lines(early + late))
    messages: list[str] = []
    result = run_stage(source, [info], MAPPINGS, target, name_prefix="run-sp", compression="none", log=messages.append)
    rows = [row for records in _records_by_part(target).values() for row in records]
    assert result.records_written == 304 and result.cast_errors == 0
    assert sorted(r["event_id"] for r in rows if r["event_id"] >= 1000) == [1000, 1001, 1002, 1003]
    assert all(r["user_id"] == 3 and r["amount"] == 2.5 for r in rows if r["event_id"] >= 1000)
    assert any("spelled differently past the sample" in m for m in messages)


@pytest.mark.parametrize("write_format", ["json", "parquet-partitioned"])
def test_parts_reach_a_local_target_by_rename_not_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_format: str
) -> None:
    # The stage's part files are given up to a local target (LocalStorage.begin_upload(move=True)): no
    # byte of a part is copied, every record still arrives once, pending until the commit.
    from glueflow_dagster.core.formats.options import DataFormat
    from glueflow_dagster.core.storage import local as local_module

    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    source.write_bytes("a.json", _lines(RECORDS))
    copied: list[object] = []
    real_copy = local_module.shutil.copyfileobj
    monkeypatch.setattr(local_module.shutil, "copyfileobj", lambda *a, **k: copied.append(a) or real_copy(*a, **k))
    fmt = DataFormat() if write_format == "json" else DataFormat("parquet", partition_keys=("user_id",))
    request = StageRequest(
        source=source, objects=tuple(source.list()), target=target, name_prefix="run-r-attempt-1",
        mappings=tuple(MAPPINGS), compression="none" if write_format == "json" else "snappy", write_format=fmt,
    )  # fmt: skip
    result = stage_pending(request)
    assert copied == []
    assert len(result.pending) == (1 if write_format == "json" else 3)
    assert [o.key for o in target.list() if not o.key.startswith("_glueflow/")] == []  # pending only
    for pending in result.pending:
        target.complete_upload(pending)
    keys = sorted(o.key for o in target.list() if not o.key.startswith("_glueflow/"))
    read = {"json": pl.read_ndjson, "parquet": pl.read_parquet}
    frames = [read[k.rsplit(".", 1)[-1]](target.root / k) for k in keys]
    assert sum(f.height for f in frames) == 3

"""Bad input never crashes a stage and never vanishes: one case per kind of bad input, on both backends.

Each case runs a real stage twice: tolerating the errors (what is written, what is quarantined, the
figures) and with the default ``max_error_records=0`` (a one-line StageError naming the first bad file
and line, no output objects, the quarantine still written).
"""

import base64
import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from glueflow_dagster.core.mapping import parse_mappings
from glueflow_dagster.core.quarantine import list_stage_inputs
from glueflow_dagster.core.stage import StageError, StageResult, run_stage
from glueflow_dagster.core.storage import LocalStorage, ObjectInfo, S3Storage, Storage

MAPPINGS = parse_mappings(
    [
        ["id", "long", "event_id", "long"],
        ["user.id", "int", "user_id", "long"],
        ["amount", "string", "amount", "double"],
    ]
)
RUN = "run-bad"
QUARANTINE = f"_errors/{RUN}"


def good(i: int) -> bytes:
    return json.dumps({"id": i, "user": {"id": i * 10, "name": "n"}, "amount": f"{i}.5"}).encode() + b"\n"


def row(i: int) -> dict[str, Any]:
    return {"event_id": i, "user_id": i * 10, "amount": i + 0.5}


def _parquet() -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame({"id": [1, 2]}).write_parquet(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class Case:
    """Objects to read and what must come out of them."""

    objects: dict[str, bytes]
    rows: list[dict[str, Any]]
    # (key, line, error, raw, raw_encoding) of each quarantined record
    records: list[tuple[str, int, str, str, str]] = field(default_factory=list)
    # (key, error prefix) of each object that cannot be read at all
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    cast_errors: int = 0
    exclusions: tuple[str, ...] = ()
    # (key, what follows the object's URI) of the first bad thing, in listing (key) order
    first: tuple[str, str] = ("", "")


TRUNCATED = gzip.compress(b"".join(good(i) for i in range(100, 200)))
CASES: dict[str, Case] = {
    "malformed_json_line": Case(
        {"a.json": good(1) + b'{"id": 2, "user": \n' + good(3) + b'{"id": 4,, }\n'},
        [row(1), row(3)],
        records=[
            ("a.json", 2, "malformed JSON", '{"id": 2, "user": ', "utf-8"),
            ("a.json", 4, "malformed JSON", '{"id": 4,, }', "utf-8"),
        ],
        first=("a.json", " line 2: malformed JSON"),
    ),
    "line_that_is_not_an_object": Case(
        {"b.json": good(1) + b"[1, 2]\n" + b'"text"\n' + b"42\n" + b"true\n" + b"null\n" + good(7)},
        [row(1), row(7)],
        records=[
            ("b.json", 2, "not a JSON object (array)", "[1, 2]", "utf-8"),
            ("b.json", 3, "not a JSON object (string)", '"text"', "utf-8"),
            ("b.json", 4, "not a JSON object (number)", "42", "utf-8"),
            ("b.json", 5, "not a JSON object (boolean)", "true", "utf-8"),
            ("b.json", 6, "not a JSON object (null)", "null", "utf-8"),
        ],
        first=("b.json", " line 2: not a JSON object (array)"),
    ),
    "non_utf8_bytes": Case(
        {"c.json.gz": gzip.compress(good(1) + b'{"id": 2, "name": "caf\xe9"}\r\n' + good(3))},
        [row(1), row(3)],
        records=[
            (
                "c.json.gz",
                2,
                "not valid UTF-8",
                base64.b64encode(b'{"id": 2, "name": "caf\xe9"}').decode(),
                "base64",
            )
        ],
        first=("c.json.gz", " line 2: not valid UTF-8"),
    ),
    "empty_file": Case({"empty.json": b"", "blank.json": b"\n  \n\t\r\n", "g.json": good(1)}, [row(1)]),
    "zero_byte_object": Case({"zero.json.gz": b"", "nothing.json.gz": gzip.compress(b""), "g.json": good(1)}, [row(1)]),
    "truncated_gzip": Case(
        {"g.json": good(1), "t.json.gz": TRUNCATED[: len(TRUNCATED) // 2]},
        [row(1)],
        unreadable=[("t.json.gz", "truncated gzip stream")],
        first=("t.json.gz", ": truncated gzip stream"),
    ),
    "corrupt_gzip": Case(
        {"g.json": good(1), "x.json.gz": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 64},
        [row(1)],
        unreadable=[("x.json.gz", "corrupt gzip stream (")],
        first=("x.json.gz", ": corrupt gzip stream ("),
    ),
    "other_formats_reported": Case(
        {"g.json": good(1), "h.csv": b"id,amount\n1,2.5\n", "p.parquet": _parquet()},
        [row(1)],
        unreadable=[
            (
                "h.csv",
                "not JSON lines: none of its 2 non-blank lines is a JSON object (line 1: malformed JSON)",
            ),
            ("p.parquet", "not JSON lines (a Parquet file)"),
        ],
        first=(
            "h.csv",
            ": not JSON lines: none of its 2 non-blank lines is a JSON object (line 1: malformed JSON)",
        ),
    ),
    "other_formats_excluded": Case(
        {"g.json": good(1), "h.csv": b"id,amount\n1,2.5\n", "p.parquet": _parquet()},
        [row(1)],
        exclusions=("**.csv", "**.parquet"),
    ),
    "value_of_the_wrong_type": Case(
        {
            "w.json": b'{"id": 1, "amount": "abc"}\n'  # string -> double fails: null, counted
            b'{"id": {"x": 1}, "amount": "2"}\n'  # an object where a long is expected: null, counted
            b'{"id": 3, "user": 5}\n'  # a scalar where a struct is expected: no user.id
            b'{"id": 4, "user": [1, 2]}\n'  # an array where a struct is expected: no user.id
            b'{"id": 5, "user": {"id": "x"}}\n'  # int cast fails: null, counted
        },
        [
            {"event_id": 1, "user_id": None, "amount": None},
            {"event_id": None, "user_id": None, "amount": 2.0},
            {"event_id": 3, "user_id": None, "amount": None},
            {"event_id": 4, "user_id": None, "amount": None},
            {"event_id": 5, "user_id": None, "amount": None},
        ],
        cast_errors=3,
    ),
    "utf8_bom": Case({"bom.json": b"\xef\xbb\xbf" + good(1) + good(2)}, [row(1), row(2)]),
    "several_bad_objects": Case(
        {
            "a.json": good(1) + b"oops\n",
            "b.json": good(2),
            "c.json.gz": TRUNCATED[:30],
            "d.json": b"7\n" + good(4),
        },
        [row(1), row(2), row(4)],
        records=[
            ("a.json", 2, "malformed JSON", "oops", "utf-8"),
            ("d.json", 1, "not a JSON object (number)", "7", "utf-8"),
        ],
        unreadable=[("c.json.gz", "truncated gzip stream")],
        first=("a.json", " line 2: malformed JSON"),
    ),
}


@pytest.fixture(params=["local", "s3"])
def locations(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, Storage]:
    if request.param == "local":
        return LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")
    return S3Storage(bucket, "raw", client), S3Storage(bucket, "staging", client)


def read_parts(target: Storage) -> list[dict[str, Any]]:
    """Every record of the target's output objects (never the quarantine)."""
    rows: list[dict[str, Any]] = []
    for info in target.list(recurse=False):
        data = target.read_bytes(info.key)
        text = gzip.decompress(data) if info.key.endswith(".gz") else data
        rows += [json.loads(line) for line in text.decode().splitlines()]
    return rows


def read_quarantine(target: Storage, prefix: str = QUARANTINE) -> list[dict[str, Any]]:
    return [
        json.loads(line) for info in target.list(prefix) for line in target.read_bytes(info.key).decode().splitlines()
    ]


def check_quarantine(case: Case, source: Storage, target: Storage) -> None:
    entries = read_quarantine(target)
    assert [
        (e["source"], e["line"], e["error"], e["raw"], e["raw_encoding"]) for e in entries if e["line"] is not None
    ] == [(source.uri_for(k), n, err, raw, enc) for k, n, err, raw, enc in case.records]
    objects = [(e["source"], e["error"], e["raw"], e["raw_encoding"]) for e in entries if e["line"] is None]
    assert len(objects) == len(case.unreadable)
    for (uri, error, raw, encoding), (key, prefix) in zip(objects, case.unreadable, strict=True):
        assert (uri, raw, encoding) == (source.uri_for(key), None, None)
        assert error.startswith(prefix), error


def _stage(case: Case, source: Storage, target: Storage, **kwargs: Any) -> StageResult:
    listed = list(list_stage_inputs(source, recurse=True, exclusions=case.exclusions))
    return run_stage(source, listed, MAPPINGS, target, name_prefix=RUN, compression="gzip", **kwargs)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_quarantined_and_counted(name: str, locations: tuple[Storage, Storage]) -> None:
    case = CASES[name]
    source, target = locations
    for key, data in case.objects.items():
        source.write_bytes(key, data)

    result = _stage(case, source, target, max_error_records=100)

    assert sorted(read_parts(target), key=lambda r: (r["event_id"] is None, r["event_id"] or 0)) == sorted(
        case.rows, key=lambda r: (r["event_id"] is None, r["event_id"] or 0)
    )
    check_quarantine(case, source, target)
    assert result.records_written == len(case.rows)
    assert result.error_records == len(case.records)
    assert result.error_files == len(case.unreadable)
    assert result.records_read == result.records_written + result.error_records
    assert result.cast_errors == case.cast_errors
    assert result.files_read == len(case.objects) - (2 if case.exclusions else 0)
    assert result.records_discarded == 0
    bad = bool(case.records or case.unreadable)
    assert len(result.quarantined) == len({k for k, *_ in case.records} | {k for k, _ in case.unreadable})
    assert result.quarantine_uri == (target.uri_for(QUARANTINE) if bad else None)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.records or c.unreadable])
def test_bad_input_beyond_max_error_records_fails_the_run_and_writes_nothing(
    name: str, locations: tuple[Storage, Storage]
) -> None:
    case = CASES[name]
    source, target = locations
    for key, data in case.objects.items():
        source.write_bytes(key, data)

    with pytest.raises(StageError) as info:
        _stage(case, source, target)  # default max_error_records=0

    message = str(info.value)
    assert "\n" not in message
    records = f"{len(case.records)} error record{'' if len(case.records) == 1 else 's'}"
    objects = f" and {len(case.unreadable)} unreadable object{'' if len(case.unreadable) == 1 else 's'}"
    key, rest = case.first
    expected = f"{records}{objects if case.unreadable else ''} exceed max_error_records=0; first: "
    assert message.startswith(expected + source.uri_for(key) + rest), message
    assert [o.key for o in target.list(recurse=False)] == []  # no output objects
    check_quarantine(case, source, target)  # but the quarantine says why
    result = info.value.result
    assert result is not None
    assert (result.written, result.records_written) == ((), 0)
    assert result.records_discarded == len(case.rows)
    assert result.records_read == result.records_discarded + result.error_records
    assert (result.error_records, result.error_files) == (len(case.records), len(case.unreadable))


def test_exactly_max_error_records_is_tolerated(locations: tuple[Storage, Storage]) -> None:
    case = CASES["line_that_is_not_an_object"]
    source, target = locations
    for key, data in case.objects.items():
        source.write_bytes(key, data)
    with pytest.raises(StageError, match=r"^5 error records exceed max_error_records=4; first: "):
        _stage(case, source, target, max_error_records=4)
    result = _stage(case, source, target, max_error_records=5)
    assert (result.error_records, result.records_written) == (5, 2)
    assert len(read_parts(target)) == 2


def test_a_folder_marker_is_skipped_not_read(locations: tuple[Storage, Storage]) -> None:
    source, target = locations
    good_file = source.write_bytes("dir/a.json", good(1))
    marker = ObjectInfo(key="dir/", size=0, last_modified_ms=0, etag="")
    result = run_stage(source, [marker, good_file], MAPPINGS, target, name_prefix=RUN, compression="none")
    assert result.skipped == (marker,)
    assert result.read == (good_file,)
    assert (result.records_read, result.records_written, result.error_records, result.error_files) == (
        1,
        1,
        0,
        0,
    )
    assert read_parts(target) == [row(1)]


def test_a_quarantined_run_is_not_read_again_by_the_next_job(locations: tuple[Storage, Storage]) -> None:
    """The quarantine lives under the target: the next job's listing of that location skips it."""
    source, target = locations
    source.write_bytes("a.json", good(1) + b"not json\n")
    run_stage(
        source,
        list(list_stage_inputs(source, recurse=True, exclusions=())),
        MAPPINGS,
        target,
        name_prefix=RUN,
        compression="gzip",
        max_error_records=1,
    )
    assert len(read_quarantine(target)) == 1
    next_inputs = [o.key for o in list_stage_inputs(target, recurse=True, exclusions=())]
    assert next_inputs == [f"{RUN}-part-r-00000.json.gz"]


def test_a_rerun_replaces_its_quarantine(locations: tuple[Storage, Storage]) -> None:
    source, target = locations
    source.write_bytes("a.json", good(1) + b"not json\n")
    objects = list(list_stage_inputs(source, recurse=True, exclusions=()))
    with pytest.raises(StageError):
        run_stage(source, objects, MAPPINGS, target, name_prefix=RUN, compression="gzip")
    assert len(read_quarantine(target)) == 1
    fixed = source.write_bytes("a.json", good(1) + good(2))
    result = run_stage(source, [fixed], MAPPINGS, target, name_prefix=RUN, compression="gzip")
    assert read_quarantine(target) == []
    assert (result.error_records, result.quarantined, result.quarantine_uri) == (0, (), None)
    assert sorted(r["event_id"] for r in read_parts(target)) == [1, 2]


def test_quarantine_prefix_can_be_chosen(tmp_path: Path) -> None:
    source, target = LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out")
    info = source.write_bytes("a.json", b"x\n" + good(1))
    result = run_stage(
        source,
        [info],
        MAPPINGS,
        target,
        name_prefix=RUN,
        compression="none",
        max_error_records=1,
        quarantine_prefix="_errors/attempt-7/",
    )
    assert result.quarantine_uri == target.uri_for("_errors/attempt-7")
    assert [e["raw"] for e in read_quarantine(target, "_errors/attempt-7")] == ["x"]

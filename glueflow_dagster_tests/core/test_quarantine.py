"""The quarantine: what the careful reader makes of bad objects, its format, and listings that skip it."""

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from glueflow_dagster.core import quarantine
from glueflow_dagster.core.mapping import parse_mappings, source_read_schema
from glueflow_dagster.core.quarantine import (
    QUARANTINE_DIR,
    inspect_object,
    is_quarantine_key,
    list_stage_inputs,
    object_entry,
    quarantine_key,
)
from glueflow_dagster.core.storage import LocalStorage, S3Storage, Storage, StorageError

READ_SCHEMA = source_read_schema(parse_mappings([["id", "long", "id", "long"], ["user.id", "int", "uid", "int"]]))
ENTRY_KEYS = ["source", "line", "error", "raw", "raw_encoding"]


def _entries(path: Path | None) -> list[dict[str, Any]]:
    assert path is not None
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _inspect(tmp_path: Path, data: bytes, name: str = "x.json") -> quarantine.ObjectReport:
    src = tmp_path / name
    src.write_bytes(data)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return inspect_object(src, f"s3://b/raw/{name}", work, READ_SCHEMA)


def test_quarantine_dir_and_keys() -> None:
    assert QUARANTINE_DIR == "_errors"
    assert quarantine_key("_errors/run-1/", 3) == "_errors/run-1/errors-00003.json"
    assert is_quarantine_key("_errors/run-1/errors-00000.json")
    assert is_quarantine_key("staging/_errors/run-1/errors-00000.json")
    assert not is_quarantine_key("my_errors/x.json")
    assert not is_quarantine_key("_errors.json")


def test_object_entry_is_one_json_line_with_every_key() -> None:
    line = object_entry("s3://b/raw/y.json.gz", "truncated gzip stream")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    entry = json.loads(line)
    assert list(entry) == ENTRY_KEYS
    assert entry == {
        "source": "s3://b/raw/y.json.gz",
        "line": None,
        "error": "truncated gzip stream",
        "raw": None,
        "raw_encoding": None,
    }


def test_bad_lines_are_quarantined_with_line_numbers_and_raw_text(tmp_path: Path) -> None:
    data = (
        b'{"id": 1}\r\n'  # CRLF endings are fine
        b"\n"  # blank lines are not records but still count as lines
        b'{"id": 2, "user": \n'
        b"[1, 2]\n"
        b'  "text"  \n'
        b"42\n"
        b"false\n"
        b"null\n"
        b'{"id": "caf\xe9"}\n'
        b'{"id": 3}'  # no final newline
    )
    report = _inspect(tmp_path, data)
    assert not report.unreadable
    assert (report.good_records, report.error_records) == (2, 7)
    assert report.first_error == "s3://b/raw/x.json line 3: malformed JSON"
    entries = _entries(report.entries_path)
    assert all(list(e) == ENTRY_KEYS for e in entries)
    assert [(e["line"], e["error"], e["raw"], e["raw_encoding"]) for e in entries] == [
        (3, "malformed JSON", '{"id": 2, "user": ', "utf-8"),
        (4, "not a JSON object (array)", "[1, 2]", "utf-8"),
        (5, "not a JSON object (string)", '  "text"  ', "utf-8"),
        (6, "not a JSON object (number)", "42", "utf-8"),
        (7, "not a JSON object (boolean)", "false", "utf-8"),
        (8, "not a JSON object (null)", "null", "utf-8"),
        (9, "not valid UTF-8", base64.b64encode(b'{"id": "caf\xe9"}').decode(), "base64"),
    ]
    assert {e["source"] for e in entries} == {"s3://b/raw/x.json"}
    assert report.clean_path is not None
    assert report.clean_path.read_text().splitlines() == ['{"id": 1}', '{"id": 3}']


def test_gzip_objects_are_inspected_after_decompression(tmp_path: Path) -> None:
    report = _inspect(tmp_path, gzip.compress(b'{"id": 1}\nnope\n'), "x.json.gz")
    assert [(e["line"], e["raw"]) for e in _entries(report.entries_path)] == [(2, "nope")]
    assert (report.good_records, report.error_records) == (1, 1)


def test_a_utf8_bom_is_not_an_error(tmp_path: Path) -> None:
    report = _inspect(tmp_path, b'\xef\xbb\xbf{"id": 1}\n{"id": 2}\n')
    assert (report.good_records, report.error_records, report.entries_path) == (2, 0, None)


def test_a_scalar_where_a_struct_is_expected_is_a_record_not_an_error(tmp_path: Path) -> None:
    report = _inspect(tmp_path, b'{"id": 1, "user": 5}\n{"id": 2, "user": {"id": 3}}\n')
    assert (report.good_records, report.error_records, report.unreadable) == (2, 0, False)


@pytest.mark.parametrize(
    ("data", "name", "error"),
    [
        (gzip.compress(b'{"id": 1}\n' * 500, mtime=0)[:40], "t.json.gz", "truncated gzip stream"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"\xff" * 40, "c.json.gz", "corrupt gzip stream ("),
        (b"\x1f\x8bnot gzip at all", "h.json.gz", "corrupt gzip stream ("),
        (
            b"id,name\n1,a\n2,b\n",
            "d.csv",
            "not JSON lines: none of its 3 non-blank lines is a JSON object (line 1",
        ),
        (b"[1, 2, 3]", "arr.json", "not JSON lines: none of its 1 non-blank line is a JSON object (line 1"),
        (
            b'{\n  "id": 1\n}\n',
            "pretty.json",
            "not JSON lines: none of its 3 non-blank lines is a JSON object",
        ),
        (b"PAR1\x00\x00binary", "x.parquet", "not JSON lines (a Parquet file)"),
        (b"Obj\x01\x00avro", "x.avro", "not JSON lines (an Avro file)"),
        (
            b"\xff\xfe\x00binary\n\x80\x81\n",
            "x.bin",
            "not JSON lines: none of its 2 non-blank lines is a JSON object",
        ),
    ],
)
def test_objects_that_cannot_be_read_at_all(tmp_path: Path, data: bytes, name: str, error: str) -> None:
    report = _inspect(tmp_path, data, name)
    assert report.unreadable
    assert report.error is not None and report.error.startswith(error)
    assert "\n" not in report.error
    assert report.first_error == f"s3://b/raw/{name}: {report.error}"
    assert (report.good_records, report.error_records, report.clean_path, report.entries_path) == (
        0,
        0,
        None,
        None,
    )


def test_a_real_parquet_file_is_recognised(tmp_path: Path) -> None:
    pl.DataFrame({"id": [1, 2]}).write_parquet(tmp_path / "real.parquet")
    report = _inspect(tmp_path, (tmp_path / "real.parquet").read_bytes(), "copy.parquet")
    assert report.error == "not JSON lines (a Parquet file)"


def test_a_line_longer_than_the_limit_makes_the_object_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quarantine, "MAX_LINE_BYTES", 1024)
    monkeypatch.setattr(quarantine, "_CHUNK", 256)
    report = _inspect(tmp_path, b'{"id": 1}\n{"id": "' + b"x" * 5000 + b'"}\n')
    assert report.error is not None and report.error.startswith("unreadable: a line longer than")


def test_work_files_do_not_pile_up(tmp_path: Path) -> None:
    report = _inspect(tmp_path, b'{"id": 1}\nbad\n')
    left = sorted(p.name for p in (tmp_path / "work").iterdir())
    assert left == sorted(p.name for p in (report.clean_path, report.entries_path) if p is not None)


# --- list_stage_inputs ------------------------------------------------------------------------------


def test_list_stage_inputs_never_yields_quarantined_records(storage: Storage) -> None:
    for key in ["a.json", "_errors/run-1/errors-00000.json", "sub/b.json", "sub/_errors/x.json", "c.tmp"]:
        storage.write_bytes(key, b'{"id": 1}\n')
    keys = [o.key for o in list_stage_inputs(storage, recurse=True, exclusions=["**.tmp"])]
    assert keys == ["a.json", "sub/b.json"]
    assert [o.key for o in list_stage_inputs(storage, recurse=False, exclusions=())] == ["a.json", "c.tmp"]


def test_list_stage_inputs_skips_s3_folder_markers(s3_storage: S3Storage, s3_client: Any) -> None:
    s3_storage.write_bytes("folder/a.json", b'{"id": 1}\n')
    s3_client.put_object(Bucket=s3_storage.bucket, Key=f"{s3_storage.prefix}/folder/", Body=b"")
    s3_client.put_object(Bucket=s3_storage.bucket, Key=f"{s3_storage.prefix}/empty/", Body=b"")
    assert [o.key for o in list_stage_inputs(s3_storage, recurse=True, exclusions=())] == ["folder/a.json"]


def test_list_stage_inputs_refuses_a_missing_local_location(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "nowhere")
    with pytest.raises(StorageError) as info:
        list(list_stage_inputs(storage, recurse=True, exclusions=()))
    assert str(info.value) == f"{tmp_path / 'nowhere'}: location does not exist (no such folder)"
    assert list(list_stage_inputs(storage, recurse=True, exclusions=(), must_exist=False)) == []


def test_list_stage_inputs_refuses_a_missing_bucket(s3_client: Any) -> None:
    storage = S3Storage("glueflow-no-such-bucket", "raw", s3_client)
    with pytest.raises(StorageError) as info:
        list(list_stage_inputs(storage, recurse=True, exclusions=()))
    assert str(info.value) == "s3://glueflow-no-such-bucket/raw: bucket does not exist (NoSuchBucket)"

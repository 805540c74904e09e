"""Many small objects (Glue's groupFiles/groupSize): read as group files, with the records, quarantine and
figures of reading each object on its own; on local folders and on the moto S3 server."""

import gzip
import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from glueflow_dagster.core.mapping import parse_mappings
from glueflow_dagster.core.stage import StageResult, run_stage
from glueflow_dagster.core.stage import read as stage_read
from glueflow_dagster.core.storage import LocalStorage, ObjectInfo, S3Storage, Storage, StorageError

MAPPINGS = parse_mappings(
    [
        ["id", "long", "event_id", "long"],
        ["user.id", "int", "user_id", "long"],
        ["amount", "string", "amount", "double"],
    ]
)


@pytest.fixture(params=["local", "s3"])
def locations(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, Storage, Storage]:
    """(source, target for the small objects, target for the same bytes in one large object)."""
    if request.param == "local":
        return LocalStorage(tmp_path / "in"), LocalStorage(tmp_path / "out"), LocalStorage(tmp_path / "big-out")
    client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")
    return S3Storage(bucket, "in", client), S3Storage(bucket, "out", client), S3Storage(bucket, "big-out", client)


@pytest.fixture
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Group files of about 8 KB, so a few hundred small objects make several of them."""
    monkeypatch.setattr(stage_read, "_GROUP_BYTES", 8 * 1024)


def _record(i: int) -> dict[str, Any]:
    return {"id": i, "user": {"id": i % 97, "name": f"u{i}"}, "amount": f"{i}.25", "pad": "x" * (i % 50)}


def _objects(count: int, rng: random.Random) -> list[bytes]:
    """``count`` small JSON-lines objects of 1-6 records; some lack their final newline, some use CRLF."""
    objects, first = [], 0
    for index in range(count):
        records = rng.randint(1, 6)
        lines = [json.dumps(_record(i)) for i in range(first, first + records)]
        first += records
        end = "\r\n" if index % 11 == 0 else "\n"
        data = end.join(lines) + ("" if index % 7 == 0 else end)
        objects.append(data.encode())
    return objects


def _write_all(source: Storage, named: list[tuple[str, bytes]]) -> list[ObjectInfo]:
    with ThreadPoolExecutor(8) as pool:  # moto answers PUTs one by one; a few at a time keeps tests short
        return list(pool.map(lambda item: source.write_bytes(*item), named))


def _rows(target: Storage) -> list[dict[str, Any]]:
    rows = []
    for info in target.list():
        if info.key.startswith("_errors/"):
            continue
        data = target.read_bytes(info.key)
        text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        rows += [json.loads(line) for line in text.decode().splitlines()]
    return sorted(rows, key=lambda r: r["event_id"])


def _quarantine(target: Storage) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for info in target.list()
        if info.key.startswith("_errors/")
        for line in target.read_bytes(info.key).decode().splitlines()
    ]


def _run(source: Storage, infos: list[ObjectInfo], target: Storage, **options: Any) -> tuple[StageResult, list[str]]:
    logged: list[str] = []
    result = run_stage(
        source, infos, MAPPINGS, target, name_prefix="run-s", compression="gzip", log=logged.append, **options
    )
    return result, logged


@pytest.mark.usefixtures("small_groups")
def test_small_objects_give_the_records_of_the_same_bytes_in_one_object(
    locations: tuple[Storage, Storage, Storage],
) -> None:
    source, target, big_target = locations
    objects = _objects(300, random.Random(1))
    objects[5] = b""  # an empty object and a blank one hold no records
    objects[6] = b"\n\n"
    infos = _write_all(source, [(f"small/o-{i:04d}.json", data) for i, data in enumerate(objects)])
    big = source.write_bytes("big/all.json", b"".join(d if d.endswith(b"\n") or not d else d + b"\n" for d in objects))

    result, logged = _run(source, infos, target)
    big_result, _ = _run(source, [big], big_target)

    assert any("small objects as" in line and "group files" in line for line in logged), logged
    assert _rows(target) == _rows(big_target) and len(_rows(target)) == big_result.records_written
    assert (result.records_read, result.records_written, result.error_records) == (
        big_result.records_read,
        big_result.records_written,
        0,
    )
    assert result.cast_errors == big_result.cast_errors
    assert (result.files_read, result.bytes_read) == (300, sum(len(d) for d in objects))
    assert sorted(o.key for o in result.read) == sorted(o.key for o in infos)


@pytest.mark.usefixtures("small_groups")
def test_a_bad_record_in_one_of_a_thousand_small_objects_keeps_its_uri_and_line(
    locations: tuple[Storage, Storage, Storage],
) -> None:
    source, target, _ = locations
    objects = _objects(1000, random.Random(2))
    good_records = sum(len(d.splitlines()) for d in objects)
    lines = objects[500].split(b"\n")
    objects[500] = b"\n".join([lines[0], b'{"id": 9999999, broken', *lines[1:]])
    infos = _write_all(source, [(f"o-{i:04d}.json", data) for i, data in enumerate(objects)])

    result, logged = _run(source, infos, target, max_error_records=1)

    assert (result.records_read, result.records_written, result.error_records) == (good_records + 1, good_records, 1)
    assert result.error_files == 0
    [entry] = _quarantine(target)
    bad = (source.uri_for("o-0500.json"), 2, '{"id": 9999999, broken')
    assert (entry["source"], entry["line"], entry["raw"]) == bad
    assert result.first_error == f"{source.uri_for('o-0500.json')} line 2: malformed JSON"
    good = [line for d in objects for line in d.splitlines() if b"broken" not in line]
    assert [r["event_id"] for r in _rows(target)] == sorted(json.loads(line)["id"] for line in good)
    assert any("1 of the" in line and "small objects of a group file do not read" in line for line in logged), logged


@pytest.mark.usefixtures("small_groups")
def test_small_objects_deleted_after_planning_are_counted_as_vanished(
    locations: tuple[Storage, Storage, Storage],
) -> None:
    source, target, _ = locations
    objects = _objects(200, random.Random(3))
    infos = _write_all(source, [(f"o-{i:04d}.json", data) for i, data in enumerate(objects)])
    gone = [infos[i] for i in (0, 57, 58, 199)]
    for info in gone:
        source.delete(info.key)

    result, logged = _run(source, infos, target)

    assert result.vanished == tuple(gone)
    kept = [d for i, d in enumerate(objects) if i not in (0, 57, 58, 199)]
    assert result.records_written == result.records_read == sum(len(d.splitlines()) for d in kept)
    assert len(result.read) == 196 and result.bytes_read == sum(len(d) for d in kept)
    assert sum("deleted since the run was planned" in line for line in logged) == 4


@pytest.mark.usefixtures("small_groups")
def test_gzip_and_odd_small_objects_are_read_on_their_own(locations: tuple[Storage, Storage, Storage]) -> None:
    source, target, big_target = locations
    objects = _objects(240, random.Random(4))
    named = []
    for i, data in enumerate(objects):
        if i % 10 == 3:
            named.append((f"o-{i:04d}.json.gz", gzip.compress(data)))  # compressed: its own file
        elif i % 10 == 7:
            named.append((f"o-{i:04d}.json", b"\xef\xbb\xbf" + data))  # a BOM: its own file
        else:
            named.append((f"o-{i:04d}.json", data))
    named.append(("broken.json.gz", gzip.compress(objects[0])[:-9]))  # truncated gzip: unreadable
    infos = _write_all(source, named)
    big = source.write_bytes("big/all.json", b"".join(d if d.endswith(b"\n") else d + b"\n" for d in objects))

    result, _ = _run(source, infos, target, max_error_records=1)
    _run(source, [big], big_target)

    assert _rows(target) == _rows(big_target)
    assert (result.error_files, result.error_records) == (1, 0)
    [entry] = _quarantine(target)
    assert entry["source"] == source.uri_for("broken.json.gz") and entry["line"] is None


def test_bulk_path_checks_refuse_what_local_copy_refuses(tmp_path: Path) -> None:
    """readable_paths (one realpath per folder) gives local_copy's answers: a symlinked folder or file out of
    the root is refused, a missing object or a folder does not exist, a link inside the root is read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text('{"id": 1}\n')
    source = LocalStorage(tmp_path / "in")
    source.write_bytes("ok/a.json", b'{"id": 2}\n')
    (source.root / "sub").mkdir()
    (source.root / "out").symlink_to(outside)
    (source.root / "sub" / "link.json").symlink_to(outside / "secret.json")
    (source.root / "sub" / "inner.json").symlink_to(source.root / "ok" / "a.json")
    (source.root / "sub" / "folder.json").mkdir()
    keys = ["ok/a.json", "out/secret.json", "sub/link.json", "sub/inner.json", "gone.json", "sub/folder.json"]
    found = source.readable_paths(keys)
    assert found[0] == source.uri_for("ok/a.json") and found[3] == source.uri_for("sub/inner.json")
    assert [str(f).endswith(": symlink points outside the location") for f in found[1:3]] == [True, True]
    for key in ("out/secret.json", "sub/link.json"):
        with pytest.raises(StorageError, match="symlink points outside the location"), source.local_copy(key):
            pass
    assert all(": object does not exist" in str(f) for f in found[4:])
    assert str(found[4]).startswith(source.uri_for("gone.json"))


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self.data


def test_an_error_among_many_small_s3_objects_is_one_line_naming_its_uri(
    s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    source = S3Storage(s3_bucket, "in", s3_client)
    infos = _write_all(source, [(f"o-{i:03d}.json", data) for i, data in enumerate(_objects(60, random.Random(5)))])
    denied = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code><Message>m</Message></Error>"

    def reply(request: Any, **_kwargs: Any) -> AWSResponse | None:
        if not request.url.split("?")[0].endswith("/in/o-031.json"):
            return None  # every other object is served
        return AWSResponse(request.url, 403, {"Content-Type": "application/xml"}, _Body(denied.encode()))

    s3_client.meta.events.register("before-send.s3.GetObject", reply)
    try:
        with pytest.raises(StorageError) as err:
            run_stage(source, infos, MAPPINGS, LocalStorage(tmp_path / "out"), name_prefix="r", compression="gzip")
    finally:
        s3_client.meta.events.unregister("before-send.s3.GetObject", reply)
    text = str(err.value)
    assert "\n" not in text and text == f"{source.uri_for('o-031.json')}: access denied (AccessDenied)"

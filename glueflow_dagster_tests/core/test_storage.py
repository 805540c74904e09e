"""Contract tests for glueflow_dagster.core.storage, on both backends (a local folder, a real moto S3 server).

The local folder's own concerns (atomic writes, symlinks, a stage over a local input) are in test_storage_local.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from glueflow_dagster.core.storage import (
    TMP_PREFIX,
    LocalStorage,
    ObjectInfo,
    S3Storage,
    Storage,
    StorageError,
    glob_match,
    open_storage,
    redact,
    shown,
)
from glueflow_dagster.core.storage import keys as storage_keys
from glueflow_dagster.core.storage import s3 as s3_storage
from glueflow_dagster_tests.support.listings import keys_of


def make_marker(store: Storage, folder: str) -> None:
    """Create what each backend calls an empty folder: a zero-byte 'folder/' key on S3, a local directory."""
    if isinstance(store, S3Storage):
        store.client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/{folder}/", Body=b"")
    else:
        assert isinstance(store, LocalStorage)
        (store.root / folder).mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------------------------------
# glob_match

GLOB_CASES = [
    # Glue's common "**.ext" form: any depth, including the top level.
    ("**.tmp", "c.tmp", True),
    ("**.tmp", "a/b/c.tmp", True),
    ("**.tmp", "a/b/c.tmp.json", False),
    ("**.tmp", "a/b/ctmp", False),
    # '*' stays within one level.
    ("*.json", "x.json", True),
    ("*.json", "a/x.json", False),
    ("logs/*", "logs/x.log", True),
    ("logs/*", "logs/2024/x.log", False),
    ("logs/*", "logs", False),
    ("logs/*", "mylogs/x.log", False),
    ("logs/**", "logs/2024/01/x.log", True),
    # '**/' matches zero or more folders.
    ("**/_SUCCESS", "_SUCCESS", True),
    ("**/_SUCCESS", "a/_SUCCESS", True),
    ("**/_SUCCESS", "a/b/_SUCCESS", True),
    ("**/_SUCCESS", "a/b/_SUCCESS.json", False),
    ("**/_SUCCESS", "a/not_SUCCESS", False),
    ("a/**/b.json", "a/b.json", True),
    ("a/**/b.json", "a/x/y/b.json", True),
    ("**", "anything/at/all", True),
    # Alternatives.
    ("{a,b}.json", "a.json", True),
    ("{a,b}.json", "b.json", True),
    ("{a,b}.json", "c.json", False),
    ("{a,b}.json", "x/a.json", False),
    ("**.{tmp,crc}", "d/x.crc", True),
    ("**.{tmp,crc}", "d/x.json", False),
    ("a,b.json", "a,b.json", True),  # a comma outside braces is literal
    # Character classes.
    ("[0-9]*.json", "1abc.json", True),
    ("[0-9]*.json", "2024.json", True),
    ("[0-9]*.json", "a1.json", False),
    ("[!0-9]*.json", "a1.json", True),
    ("[!0-9]*.json", "1a.json", False),
    ("a[!x]b", "a/b", False),  # negated classes never match '/'
    ("[]x]", "]", True),
    ("[a-]", "-", True),
    # Single character.
    ("?.json", "a.json", True),
    ("?.json", "ab.json", False),
    ("?.json", ".json", False),
    ("a?b", "a/b", False),
    # Literals, escapes, regex metacharacters.
    ("a.json", "aXjson", False),
    ("a+b(1)$.json", "a+b(1)$.json", True),
    ("\\*.json", "*.json", True),
    ("\\*.json", "x.json", False),
    ("dt=2024-01-01/*", "dt=2024-01-01/x.json", True),
    ("données/*.json", "données/é.json", True),
    # The whole key must match.
    ("x.json", "a/x.json", False),
    ("a", "ab", False),
]


@pytest.mark.parametrize(("pattern", "key", "expected"), GLOB_CASES)
def test_glob_match(pattern: str, key: str, expected: bool) -> None:
    assert glob_match(pattern, key) is expected


@pytest.mark.parametrize("pattern", ["[abc", "{a,b", "{a,{b,c}}", "[z-a]"])
def test_glob_match_rejects_malformed_patterns(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid glob"):
        glob_match(pattern, "x")


def test_glob_patterns_are_compiled_once() -> None:
    storage_keys.compile_glob.cache_clear()
    for _ in range(5):
        glob_match("**.unique-pattern", "a.unique-pattern")
    info = storage_keys.compile_glob.cache_info()
    assert (info.misses, info.hits) == (1, 4)


# --------------------------------------------------------------------------------------------------
# Contract, both backends


def test_backends_satisfy_protocol(storage: Storage) -> None:
    assert isinstance(storage, Storage)


def test_write_stat_read_roundtrip(storage: Storage) -> None:
    data = b'{"id": 1}\n{"id": 2}\n'
    info = storage.write_bytes("in/part-0.json", data)
    assert info.key == "in/part-0.json"
    assert info.size == len(data)
    assert info.etag and '"' not in info.etag
    assert info.last_modified_ms > 1_600_000_000_000  # epoch milliseconds, not seconds

    assert storage.stat("in/part-0.json") == info
    assert storage.read_bytes("in/part-0.json") == data
    with storage.open_read("in/part-0.json") as f:
        assert f.readline() == b'{"id": 1}\n'
        assert f.read() == b'{"id": 2}\n'
    with storage.local_copy("in/part-0.json") as path:
        assert path.read_bytes() == data
    assert storage.uri_for("in/part-0.json") == f"{storage.uri}/in/part-0.json"


def test_open_read_streams_in_chunks(storage: Storage) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    storage.write_bytes("big.bin", data)
    chunks = []
    with storage.open_read("big.bin") as f:
        while chunk := f.read(256 * 1024):
            chunks.append(chunk)
    assert len(chunks) > 1
    assert b"".join(chunks) == data


def test_missing_object_errors_name_the_uri(storage: Storage) -> None:
    uri = storage.uri_for("no/such.json")
    for call in (
        lambda: storage.stat("no/such.json"),
        lambda: storage.read_bytes("no/such.json"),
        lambda: storage.open_read("no/such.json"),
    ):
        with pytest.raises(StorageError, match="does not exist") as excinfo:
            call()
        assert str(excinfo.value).startswith(f"{uri}: ")
        assert "\n" not in str(excinfo.value)
    with pytest.raises(StorageError, match="does not exist"), storage.local_copy("no/such.json"):
        pass


def test_local_copy_of_s3_is_a_temp_file_removed_on_exit(s3_storage: S3Storage) -> None:
    s3_storage.write_bytes("d/x.json.gz", b"payload")
    with s3_storage.local_copy("d/x.json.gz") as path:
        assert path.is_file()
        assert path.name.endswith(".json.gz")  # readers can still sniff the compression
        assert path.read_bytes() == b"payload"
    assert not path.exists()


def test_local_copy_of_local_is_the_file_itself(local_storage: LocalStorage) -> None:
    local_storage.write_bytes("d/x.json", b"payload")
    with local_storage.local_copy("d/x.json") as path:
        assert path == local_storage.root / "d" / "x.json"
    assert path.exists()  # never deletes the real object


def test_upload_file(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    # Above boto3's 8 MiB multipart threshold, so S3 goes through a multipart upload.
    src.write_bytes(os.urandom(9 * 1024 * 1024))
    info = storage.upload_file(src, "up/big.bin")
    assert info.size == src.stat().st_size
    assert storage.read_bytes("up/big.bin") == src.read_bytes()
    with pytest.raises(StorageError, match="does not exist"):
        storage.upload_file(tmp_path / "missing.bin", "up/other.bin")


def test_list_recursion(storage: Storage) -> None:
    for key in ["top.json", "a/one.json", "a/b/two.json", "a/b/c/three.json", "ab/x.json"]:
        storage.write_bytes(key, b"x")

    assert keys_of(storage.list()) == [
        "a/b/c/three.json",
        "a/b/two.json",
        "a/one.json",
        "ab/x.json",
        "top.json",
    ]
    assert keys_of(storage.list(recurse=False)) == ["top.json"]
    # A prefix is a folder: "a" does not take in "ab/".
    assert keys_of(storage.list("a")) == ["a/b/c/three.json", "a/b/two.json", "a/one.json"]
    assert keys_of(storage.list("a/")) == keys_of(storage.list("a"))
    assert keys_of(storage.list("a", recurse=False)) == ["a/one.json"]
    assert keys_of(storage.list("a/b", recurse=False)) == ["a/b/two.json"]
    assert keys_of(storage.list("missing")) == []
    assert all(isinstance(info, ObjectInfo) for info in storage.list())


def test_list_order_is_plain_key_order(storage: Storage, request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params["storage"] == "s3rver":
        pytest.skip("s3rver lists in its folder walk's order, not S3's key order (nothing relies on the order)")
    # '-' and '.' sort before '/', '0' after it: a naive per-folder walk would put "a/x" first.
    keys = ["a/x", "a-b", "a.b", "a0", "b"]
    for key in keys:
        storage.write_bytes(key, b"x")
    assert keys_of(storage.list()) == sorted(keys)


def test_list_exclusions(storage: Storage) -> None:
    keys = [
        "_SUCCESS",
        "logs/run.log",
        "logs/2024/old.log",
        "data/a.json",
        "data/a.json.tmp",
        "data/_SUCCESS",
        "data/deep/b.json",
        "data/deep/x.tmp",
    ]
    for key in keys:
        storage.write_bytes(key, b"x")
    listed = keys_of(storage.list(exclusions=["**.tmp", "**/_SUCCESS", "logs/*"]))
    assert listed == ["data/a.json", "data/deep/b.json", "logs/2024/old.log"]
    # Patterns match the key relative to the root, whatever prefix is listed.
    assert keys_of(storage.list("data", exclusions=["data/deep/**"])) == [
        "data/_SUCCESS",
        "data/a.json",
        "data/a.json.tmp",
    ]
    with pytest.raises(TypeError, match="single string"):
        storage.list(exclusions="**.tmp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid glob"):
        storage.list(exclusions=["[oops"])


def test_list_skips_folder_markers(storage: Storage) -> None:
    storage.write_bytes("folder/x.json", b"x")
    make_marker(storage, "folder")
    make_marker(storage, "empty")
    make_marker(storage, "empty/nested")
    assert keys_of(storage.list()) == ["folder/x.json"]
    assert keys_of(storage.list(recurse=False)) == []
    assert keys_of(storage.list("empty")) == []


def test_list_pagination_laziness_and_bulk_delete(storage: Storage) -> None:
    # More than one ListObjectsV2 page (1000 keys) and more than one DeleteObjects batch on S3.
    keys = [f"many/dt=2024-01-{i % 3:02d}/obj-{i:05d}.json" for i in range(1100)]

    def put(key: str) -> None:
        if isinstance(storage, S3Storage):
            # Raw PUT: write_bytes also HEADs, doubling the cost against moto without testing more.
            storage.client.put_object(Bucket=storage.bucket, Key=f"{storage.prefix}/{key}", Body=b"{}")
        else:
            storage.write_bytes(key, b"{}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, keys))

    calls: list[str] = []
    if isinstance(storage, S3Storage):
        events = storage.client.meta.events
        events.register("before-call.s3.ListObjectsV2", lambda **_: calls.append("list"))
        events.register("before-call.s3.DeleteObjects", lambda **_: calls.append("delete"))

    assert keys_of(storage.list("many")) == sorted(keys)
    if isinstance(storage, S3Storage):
        assert calls == ["list", "list"]
        calls.clear()
        it = storage.list("many")
        assert calls == []  # nothing is fetched before iteration starts
        next(it)
        assert calls == ["list"]  # the first object needs only the first page
        calls.clear()

    assert storage.delete_prefix("many") == 1100
    if isinstance(storage, S3Storage):
        assert calls == ["list", "delete", "list", "delete"]  # one page at a time, 1000-key batches
    assert keys_of(storage.list()) == []


def test_missing_location_lists_nothing(storage: Storage) -> None:
    assert keys_of(storage.list()) == []
    assert keys_of(storage.list("x/y", recurse=False)) == []


@pytest.mark.parametrize(
    "key",
    [
        "with space/file name.json",
        "unicodé/日本語/ü.json",
        "dt=2024-01-01/hour=00/part=1.json",
        "odd+chars/a&b;c,d@e!f(1)'x'.json",
        "%20literal-percent.json",
    ],
)
def test_odd_keys_round_trip(storage: Storage, key: str) -> None:
    storage.write_bytes(key, b"odd")
    assert keys_of(storage.list()) == [key]
    assert storage.stat(key).key == key
    assert storage.read_bytes(key) == b"odd"
    folder = key.rsplit("/", 1)[0] if "/" in key else ""
    assert keys_of(storage.list(folder, recurse=False)) == [key]
    assert keys_of(storage.list(exclusions=[key])) == []
    storage.delete(key)
    assert keys_of(storage.list()) == []


ESCAPING_KEYS = ["../x", "/abs", "a/../../b", "a\\b", "a/../b", "a//b", "./a", "a/./b", "", "a\nb", "a\x00b"]
KEY_METHODS: dict[str, Callable[[Storage, str, Path], Any]] = {
    "uri_for": lambda s, k, _: s.uri_for(k),
    "stat": lambda s, k, _: s.stat(k),
    "read_bytes": lambda s, k, _: s.read_bytes(k),
    "open_read": lambda s, k, _: s.open_read(k),
    "local_copy": lambda s, k, _: s.local_copy(k).__enter__(),
    "write_bytes": lambda s, k, _: s.write_bytes(k, b"evil"),
    "upload_file": lambda s, k, src: s.upload_file(src, k),
    "delete": lambda s, k, _: s.delete(k),
}


@pytest.mark.parametrize("key", ESCAPING_KEYS)
def test_unsafe_keys_are_refused(storage: Storage, key: str, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"evil")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for name, call in KEY_METHODS.items():
        with pytest.raises(StorageError) as excinfo:
            call(storage, key, src)
        message = str(excinfo.value)
        assert "\n" not in message, name
        shown = key if key and key.isprintable() else repr(key)
        assert message.startswith(f"{shown}: "), (name, message)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("prefix", ["../x", "/abs", "a/../../b", "a\\b", "a//b", "/"])
def test_unsafe_prefixes_are_refused(storage: Storage, prefix: str) -> None:
    with pytest.raises(StorageError, match="escapes|invalid key"):
        storage.list(prefix)
    with pytest.raises(StorageError, match="escapes|invalid key"):
        storage.delete_prefix(prefix)


def test_escape_message_names_key_and_cause(storage: Storage) -> None:
    with pytest.raises(StorageError, match=r"^\.\./x: key escapes the storage root"):
        storage.read_bytes("../x")


def test_reserved_temp_names_are_refused(storage: Storage) -> None:
    with pytest.raises(StorageError, match="reserved"):
        storage.write_bytes(f"a/{TMP_PREFIX}x", b"x")


def test_etag_changes_when_rewritten(storage: Storage) -> None:
    first = storage.write_bytes("r.json", b"one")
    second = storage.write_bytes("r.json", b"two")  # same size, written immediately after
    assert second.etag != first.etag
    assert second.last_modified_ms >= first.last_modified_ms
    assert storage.stat("r.json").etag == second.etag
    assert [info.etag for info in storage.list()] == [second.etag]


def test_local_rewrite_moves_mtime_forward(local_storage: LocalStorage) -> None:
    # Incremental readers select by last-modified: a rewrite must never keep the old millisecond.
    infos = [local_storage.write_bytes("r.json", b"same") for _ in range(20)]
    stamps = [info.last_modified_ms for info in infos]
    assert stamps == sorted(set(stamps))
    assert len({info.etag for info in infos}) == 20


def test_delete(storage: Storage) -> None:
    storage.write_bytes("d/x.json", b"x")
    storage.write_bytes("d/y.json", b"y")
    storage.delete("d/x.json")
    storage.delete("d/x.json")  # missing is fine
    storage.delete("never/existed.json")
    assert keys_of(storage.list()) == ["d/y.json"]


def test_delete_prefix(storage: Storage) -> None:
    for key in ["p/a.json", "p/q/b.json", "p/q/r/c.json", "pp/keep.json", "keep.json"]:
        storage.write_bytes(key, b"x")
    make_marker(storage, "p/q")
    assert storage.delete_prefix("p") == 3
    assert keys_of(storage.list()) == ["keep.json", "pp/keep.json"]
    assert storage.delete_prefix("p") == 0
    assert storage.delete_prefix("") == 2
    assert keys_of(storage.list()) == []


def test_local_delete_prefix_prunes_empty_folders(local_storage: LocalStorage) -> None:
    local_storage.write_bytes("p/q/r/c.json", b"x")
    local_storage.write_bytes("keep/x.json", b"x")
    local_storage.delete_prefix("p")
    assert not (local_storage.root / "p").exists()
    local_storage.delete_prefix("")
    assert local_storage.root.is_dir()  # the root itself stays
    assert list(local_storage.root.iterdir()) == []


def test_exists(storage: Storage) -> None:
    if isinstance(storage, LocalStorage):
        assert not storage.exists()  # nothing is created on init
        assert not storage.root.exists()
    else:
        assert storage.exists()  # the bucket exists, even with an empty prefix
    storage.write_bytes("x", b"x")
    assert storage.exists()


# --------------------------------------------------------------------------------------------------
# S3 specifics


def test_s3_prefix_isolation(s3_storage: S3Storage) -> None:
    s3_storage.client.put_object(Bucket=s3_storage.bucket, Key="root/prefix2/sibling.json", Body=b"x")
    s3_storage.client.put_object(Bucket=s3_storage.bucket, Key="root/outside.json", Body=b"x")
    s3_storage.write_bytes("mine.json", b"x")
    assert keys_of(s3_storage.list()) == ["mine.json"]
    assert s3_storage.delete_prefix("") == 1
    remaining = s3_storage.client.list_objects_v2(Bucket=s3_storage.bucket)["Contents"]
    assert sorted(obj["Key"] for obj in remaining) == ["root/outside.json", "root/prefix2/sibling.json"]


def test_s3_without_prefix(s3_client: Any, s3_bucket: str) -> None:
    store = S3Storage(s3_bucket, "", s3_client)
    assert store.uri == f"s3://{s3_bucket}"
    store.write_bytes("a/b.json", b"x")
    assert store.uri_for("a/b.json") == f"s3://{s3_bucket}/a/b.json"
    assert keys_of(store.list()) == ["a/b.json"]
    assert s3_client.get_object(Bucket=s3_bucket, Key="a/b.json")["Body"].read() == b"x"


def test_s3_list_ms_and_etag_match_head(s3_storage: S3Storage) -> None:
    written = s3_storage.write_bytes("x.json", b"hello")
    [listed] = s3_storage.list()
    assert listed == written == s3_storage.stat("x.json")
    assert listed.etag == "5d41402abc4b2a76b9719d911017c592"  # MD5 of b"hello", quotes stripped


def test_missing_bucket(s3_client: Any) -> None:
    bucket = f"glueflow-missing-{uuid.uuid4().hex[:12]}"
    store = S3Storage(bucket, "staging", s3_client)
    assert store.exists() is False
    calls: dict[str, Callable[[], Any]] = {
        "list": lambda: list(store.list()),
        "stat": lambda: store.stat("x.json"),
        "read_bytes": lambda: store.read_bytes("x.json"),
        "local_copy": lambda: store.local_copy("x.json").__enter__(),
        "write_bytes": lambda: store.write_bytes("x.json", b"x"),
        "delete": lambda: store.delete("x.json"),
        "delete_prefix": lambda: store.delete_prefix(""),
    }
    for name, call in calls.items():
        with pytest.raises(StorageError) as excinfo:
            call()
        message = str(excinfo.value)
        assert message.startswith(f"s3://{bucket}/staging"), (name, message)
        assert message.endswith("bucket does not exist (NoSuchBucket)"), (name, message)
        assert isinstance(excinfo.value.__cause__, ClientError), name


def test_missing_bucket_upload(s3_client: Any, tmp_path: Path) -> None:
    src = tmp_path / "f.json"
    src.write_bytes(b"x")
    store = S3Storage(f"glueflow-missing-{uuid.uuid4().hex[:12]}", "staging", s3_client)
    with pytest.raises(StorageError, match=r"bucket does not exist \(NoSuchBucket\)$"):
        store.upload_file(src, "f.json")


def test_unreachable_endpoint(moto_server: str) -> None:
    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:1",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1),
    )
    store = S3Storage("bkt", "x", client)
    for call in (
        lambda: list(store.list()),
        lambda: store.read_bytes("k"),
        lambda: store.write_bytes("k", b"x"),
        lambda: store.exists(),
    ):
        with pytest.raises(StorageError) as excinfo:
            call()
        message = str(excinfo.value)
        assert message.startswith("s3://bkt")
        assert message.endswith("endpoint unreachable (http://127.0.0.1:1)")
        assert isinstance(excinfo.value.__cause__, EndpointConnectionError)


def test_an_endpoint_password_is_never_shown(moto_server: str) -> None:
    client = boto3.client(
        "s3",
        endpoint_url="http://AKIAEXAMPLE:wJalrSECRET@127.0.0.1:1",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1),
    )
    store = S3Storage("bkt", "x", client)
    for call in (lambda: list(store.list()), lambda: store.read_bytes("k"), lambda: store.exists()):
        with pytest.raises(StorageError) as excinfo:
            call()
        assert str(excinfo.value).endswith("endpoint unreachable (http://***@127.0.0.1:1)")
        # Dagster shows the chained botocore errors too: redacted as well.
        chained: BaseException | None = excinfo.value
        while chained is not None:
            assert "SECRET" not in str(chained) and "AKIA" not in str(chained), repr(chained)
            chained = chained.__cause__ or chained.__context__


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://key:secret@bucket/x", "s3://***@bucket/x"),
        ("http://key@host:9000", "http://***@host:9000"),
        ("endpoint (https://a:b@h) and s3://c:d@e", "endpoint (https://***@h) and s3://***@e"),
        ("user:password@host", "***@host"),
        ("someone@example.com", "someone@example.com"),
        ("s3://bucket/key@v2", "s3://bucket/key@v2"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_storage_errors_never_embed_an_unbounded_value() -> None:
    long = "m" * 100_000
    err = s3_storage.boto_error("s3://b/k", ClientError({"Error": {"Code": "Odd", "Message": long}}, "Get"), "e")
    assert len(str(err)) < 200 and str(err).endswith("... (Odd)")
    with pytest.raises(StorageError) as raised:
        LocalStorage("/tmp").read_bytes("x/" * 50_000 + "../y")
    assert len(str(raised.value)) < 300
    assert StorageError("http://k:SECRET@h: down").args[0] == "http://***@h: down"
    assert shown("s3://k:SECRET@" + "b" * 100) == "'s3://***@" + "b" * 31 + "'..."


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            ClientError({"Error": {"Code": "NoSuchBucket", "Message": "x"}}, "ListObjectsV2"),
            "bucket does not exist (NoSuchBucket)",
        ),
        (
            ClientError({"Error": {"Code": "AccessDenied", "Message": "x"}}, "GetObject"),
            "access denied (AccessDenied)",
        ),
        (ClientError({"Error": {"Code": "403", "Message": ""}}, "HeadObject"), "access denied (403)"),
        (
            ClientError({"Error": {"Code": "NoSuchKey", "Message": "x"}}, "GetObject"),
            "object does not exist (NoSuchKey)",
        ),
        (
            ClientError({"Error": {"Code": "InvalidAccessKeyId", "Message": "x"}}, "GetObject"),
            "credentials rejected (InvalidAccessKeyId)",
        ),
        (
            ClientError({"Error": {"Code": "SlowDown", "Message": "x"}}, "PutObject"),
            "service unavailable after retries (SlowDown)",
        ),
        (ClientError({"Error": {"Code": "Weird", "Message": "odd thing"}}, "PutObject"), "odd thing (Weird)"),
        (NoCredentialsError(), "no AWS credentials found (NoCredentialsError)"),
        (EndpointConnectionError(endpoint_url="http://h:1/bkt/k"), "endpoint unreachable (http://h:1)"),
    ],
)
def test_boto_error_mapping(error: Exception, cause: str) -> None:
    err = s3_storage.boto_error("s3://bkt/k", error, "http://h:1")
    assert str(err) == f"s3://bkt/k: {cause}"


# --------------------------------------------------------------------------------------------------
# open_storage


def test_open_storage_local_paths(tmp_path: Path) -> None:
    rel = open_storage("data/staging", base_dir=tmp_path)
    assert isinstance(rel, LocalStorage)
    assert rel.root == tmp_path / "data" / "staging"
    assert rel.uri == str(tmp_path / "data" / "staging")
    assert not rel.root.exists()  # nothing created on open

    dotted = open_storage("./a/../b", base_dir=tmp_path)
    assert isinstance(dotted, LocalStorage) and dotted.root == tmp_path / "b"

    absolute = open_storage(str(tmp_path / "abs"), base_dir=Path("/elsewhere"))
    assert isinstance(absolute, LocalStorage) and absolute.root == tmp_path / "abs"

    file_uri = open_storage(f"file://{tmp_path}/with%20space")
    assert isinstance(file_uri, LocalStorage) and file_uri.root == tmp_path / "with space"

    with pytest.raises(StorageError, match="must be absolute"):
        open_storage("file://relative/path")
    with pytest.raises(StorageError, match="unsupported storage scheme 'gs'"):
        open_storage("gs://bucket/x")


def test_open_storage_relative_defaults_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_storage("rel")
    assert isinstance(store, LocalStorage) and store.root == tmp_path / "rel"


def test_open_storage_s3_with_factory(s3_client: Any, s3_bucket: str) -> None:
    made: list[Any] = []

    def factory() -> Any:
        made.append(s3_client)
        return s3_client

    store = open_storage(f"s3://{s3_bucket}/a/b/", s3_client_factory=factory)
    assert isinstance(store, S3Storage)
    assert (store.bucket, store.prefix, store.uri) == (s3_bucket, "a/b", f"s3://{s3_bucket}/a/b")
    assert store.client is s3_client and len(made) == 1
    store.write_bytes("k.json", b"x")
    assert s3_client.get_object(Bucket=s3_bucket, Key="a/b/k.json")["Body"].read() == b"x"

    bare = open_storage(f"s3://{s3_bucket}", s3_client_factory=factory)
    assert isinstance(bare, S3Storage) and bare.prefix == "" and bare.uri == f"s3://{s3_bucket}"
    with pytest.raises(StorageError, match="missing bucket"):
        open_storage("s3:///x", s3_client_factory=factory)
    with pytest.raises(StorageError, match="escapes"):
        open_storage(f"s3://{s3_bucket}/a/../b", s3_client_factory=factory)


def test_open_storage_default_client_honours_endpoint_env(
    moto_server: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    store = open_storage(f"s3://{s3_bucket}/p")
    assert store.exists()
    store.write_bytes("x", b"y")
    assert store.read_bytes("x") == b"y"


def test_storage_error_is_a_runtime_error() -> None:
    assert issubclass(StorageError, RuntimeError)
    err = StorageError("s3://b/k: cause", uri="s3://b/k")
    assert err.uri == "s3://b/k"

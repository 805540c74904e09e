"""Shared fixtures: a real moto S3 server over HTTP (no in-process patching) and both storage backends."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from glueflow_dagster.core.storage import LocalStorage, S3Storage, Storage

# Tests that start `dagster dev` (a webserver, a daemon and code servers each) share one pytest-xdist
# worker, so two of them never compete for the CPU and their startup timeouts hold; they go first, so the
# other worker's many short tests fill the time they take instead of trailing behind them.
_DAGSTER_DEV_MODULES = ("test_ui.py", "test_dead_worker.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    starts_dagster_dev = [item for item in items if item.path.name in _DAGSTER_DEV_MODULES]
    for item in starts_dagster_dev:
        item.add_marker(pytest.mark.xdist_group("dagster_dev"))
    items[:] = starts_dagster_dev + [item for item in items if item.path.name not in _DAGSTER_DEV_MODULES]


_FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Removed for the session: a real token or profile would be mixed with the fake keys.
_CLEARED_AWS_ENV = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A standalone moto server on a free port; yields its endpoint URL ("http://127.0.0.1:PORT").

    Fake credentials are put in os.environ for the session (monkeypatch is function-scoped) and the
    previous values are restored afterwards.
    """
    saved = {name: os.environ.get(name) for name in (*_FAKE_AWS_ENV, *_CLEARED_AWS_ENV)}
    # werkzeug logs every request at INFO: thousands of lines in failure reports, and slower.
    werkzeug_logger = logging.getLogger("werkzeug")
    saved_level = werkzeug_logger.level
    werkzeug_logger.setLevel(logging.WARNING)
    os.environ.update(_FAKE_AWS_ENV)
    for name in _CLEARED_AWS_ENV:
        os.environ.pop(name, None)
    # port=0: the OS picks a free port; get_host_and_port() reports the one actually bound.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        try:
            server.stop()
        finally:
            werkzeug_logger.setLevel(saved_level)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture
def s3_client(moto_server: str) -> Any:
    """A boto3 S3 client for the moto server, with botocore's standard retries."""
    return boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        # Path-style: an IP endpoint has no DNS for "<bucket>.127.0.0.1".
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}),
    )


def _empty_bucket(client: Any, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    """A fresh, uniquely named bucket (tests never share S3 state); emptied and deleted afterwards."""
    bucket = f"glueflow-test-{uuid.uuid4().hex[:20]}"
    s3_client.create_bucket(Bucket=bucket)
    try:
        yield bucket
    finally:
        try:
            _empty_bucket(s3_client, bucket)
            s3_client.delete_bucket(Bucket=bucket)
        except s3_client.exceptions.NoSuchBucket:
            pass  # the test removed it itself


@pytest.fixture
def s3_storage(s3_client: Any, s3_bucket: str) -> S3Storage:
    """S3Storage under a two-level prefix, so prefix handling is always exercised."""
    return S3Storage(s3_bucket, "root/prefix", s3_client)


@pytest.fixture(scope="session")
def s3rver_server() -> Iterator[Any]:
    """npm's s3rver (no conditional writes, no ListMultipartUploads) on a free port, for the session;
    skipped without Node.js or the package unless GLUEFLOW_REQUIRE_S3RVER=1 (issue 21)."""
    from glueflow_dagster_tests.support.s3rver import start_s3rver

    server = start_s3rver()
    try:
        yield server
    finally:
        server.stop()
        import shutil

        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def s3rver_client(s3rver_server: Any) -> Any:
    from glueflow_dagster_tests.support.s3rver import s3rver_client as make_client

    return make_client(s3rver_server.endpoint)


@pytest.fixture
def s3rver_bucket(s3rver_client: Any) -> Iterator[str]:
    """A fresh bucket on s3rver; emptied and deleted afterwards."""
    bucket = f"glueflow-test-{uuid.uuid4().hex[:20]}"
    s3rver_client.create_bucket(Bucket=bucket)
    try:
        yield bucket
    finally:
        try:
            _empty_bucket(s3rver_client, bucket)
            s3rver_client.delete_bucket(Bucket=bucket)
        except Exception:  # noqa: BLE001 - the test removed it, or stopped the server
            pass


@pytest.fixture
def s3rver_storage(s3rver_client: Any, s3rver_bucket: str) -> S3Storage:
    """S3Storage on s3rver under a two-level prefix."""
    return S3Storage(s3rver_bucket, "root/prefix", s3rver_client)


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    """LocalStorage in a not-yet-existing folder (writes must create it)."""
    return LocalStorage(tmp_path / "store")


@pytest.fixture(params=["local", "s3", "s3rver"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """Every backend: contract tests using it run on a local folder, moto and s3rver."""
    # getfixturevalue keeps it lazy: local-only runs never start the moto server.
    return request.getfixturevalue(f"{request.param}_storage")


# --- Dagster instance and flow files -------------------------------------------------------------

SMALL_FLOW_MAPPINGS = {
    "input": [
        ["id", "long", "event_id", "long"],
        ["user.id", "int", "user_id", "long"],
        ["amount", "string", "amount", "double"],
    ],
    "output": [
        ["event_id", "long", "event_id", "long"],
        ["user_id", "long", "user_id", "long"],
        ["amount", "double", "amount", "double"],
    ],
}


def flow_document(
    *,
    flow: str = "events",
    input_uri: str = "data/input",
    staging_uri: str = "data/staging",
    output_uri: str = "data/output",
    bookmark: str = "disable",
    schedule: str = "*/30 * * * *",
    owners: list[str] | None = None,
) -> dict[str, Any]:
    """The `{flows: ...}` document of `write_flow_file`: a flow file's content, or a GlueFlows instance's attributes."""
    body: dict[str, Any] = {
        "input": {"uri": input_uri, "recurse": True, "exclusions": ["**.tmp"]},
        "staging": {"uri": staging_uri, "compression": "gzip"},
        "output": {"uri": output_uri, "compression": "none"},
        "input_job": {"schedule": schedule, "mappings": SMALL_FLOW_MAPPINGS["input"]},
        "output_job": {
            "bookmark": bookmark,
            "transformation_ctx": "bookmark_ctx",
            "mappings": SMALL_FLOW_MAPPINGS["output"],
        },
    }
    if owners is not None:
        body["owners"] = list(owners)
    return {"flows": {flow: body}}


def write_flow_file(
    directory: Path,
    *,
    flow: str = "events",
    input_uri: str = "data/input",
    staging_uri: str = "data/staging",
    output_uri: str = "data/output",
    bookmark: str = "disable",
    schedule: str = "*/30 * * * *",
    owners: list[str] | None = None,
) -> Path:
    """A flow file with one small flow; locations default to folders beside it."""
    import yaml

    document = flow_document(
        flow=flow,
        input_uri=input_uri,
        staging_uri=staging_uri,
        output_uri=output_uri,
        bookmark=bookmark,
        schedule=schedule,
        owners=owners,
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "glueflow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def instance() -> Iterator[Any]:
    """A real Dagster instance in a temporary DAGSTER_HOME (SQLite storage), with the concurrency pools of
    the packaged dagster.yaml (max concurrency 1 per flow and job)."""
    from dagster import instance_for_test

    with instance_for_test(overrides=packaged_instance_overrides()) as dagster_instance:
        yield dagster_instance


def packaged_instance_overrides() -> dict[str, Any]:
    """The `concurrency.pools` section of the dagster.yaml shipped in the package."""
    import yaml

    packaged = yaml.safe_load((Path(__file__).parents[1] / "glueflow_dagster" / "dagster.yaml").read_text())
    return {"concurrency": {"pools": packaged["concurrency"]["pools"]}}


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    return write_flow_file(tmp_path / "project")


def raw_records(first_id: int, count: int) -> bytes:
    """Raw input lines for the small flow of `write_flow_file`."""
    import json

    return "".join(
        json.dumps({"id": i, "user": {"id": i % 7, "name": f"u{i}"}, "amount": f"{i}.25", "noise": "x" * 20}) + "\n"
        for i in range(first_id, first_id + count)
    ).encode()


@pytest.fixture
def flow_defs(flow_file: Path) -> Any:
    from glueflow_dagster.definitions import load_definitions

    return load_definitions(flow_file)


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """One local[1] SparkSession for the test session (ANSI off, UTC), stopped at the end with its JVM.

    Skips when pyspark or Java is missing (the differential tests then use Spark's cached answers).
    """
    import shutil

    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no java on PATH")
    from pyspark import SparkContext

    from glueflow_dagster_tests.spark_oracle import start_spark

    spark = start_spark()
    gateway = SparkContext._gateway
    try:
        yield spark
    finally:
        spark.stop()
        if gateway is not None:
            # stop() leaves the py4j JVM running until the interpreter exits; end it now (the JVM
            # exits when its stdin closes).
            gateway.shutdown()
            proc = getattr(gateway, "proc", None)
            if proc is not None:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=60)
            SparkContext._gateway = None
            SparkContext._jvm = None
# --- PostgreSQL: a real server from Debian's `postgresql` package --------------------------------

POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
POSTGRES_PASSWORD = "glueflow-test"  # a throwaway server on 127.0.0.1, removed at the end of the session


def _postgres_bin() -> Path | None:
    """The newest installed server's bin folder (initdb, pg_ctl), or None."""
    import glob

    folders = [Path(p) for p in glob.glob(POSTGRES_BIN_GLOB) if (Path(p) / "initdb").is_file()]
    return max(folders, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, default=None)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_instance_url() -> Iterator[str]:
    """A PostgreSQL server on a temporary data dir and a free port; yields its URL (database `postgres`).

    initdb and the server refuse to run as root, so as root they run as the `postgres` user (created by
    Debian's package). Skipped only when the binaries are missing (`apt-get install postgresql`).
    """
    import shutil
    import subprocess
    import tempfile
    import time

    bin_dir = _postgres_bin()
    if bin_dir is None:
        reason = f"PostgreSQL server binaries not found under {POSTGRES_BIN_GLOB} (apt-get install postgresql)"
        if os.environ.get("GLUEFLOW_REQUIRE_POSTGRES"):  # set by .ci/run: there, they must be installed
            pytest.fail(reason)
        pytest.skip(reason)
    # Not under pytest's basetemp: that is mode 0700 for root, and the server may run as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="glueflow-postgres-"))
    data, sockets, log, pwfile = root / "data", root / "sockets", root / "server.log", root / "pwfile"
    sockets.mkdir()
    pwfile.write_text(POSTGRES_PASSWORD + "\n", encoding="utf-8")
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        for path in (sockets, pwfile):
            shutil.chown(path, "postgres")
    port = _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")

    stop = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync")  # fmt: skip
        # fsync off: a test server's data is thrown away, and the suite shares two cores.
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
        url = f"postgresql://postgres:{POSTGRES_PASSWORD}@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while not _postgres_ready(url) and time.monotonic() < deadline:
            time.sleep(0.2)
        yield url
    finally:
        try:
            if (data / "postmaster.pid").exists():  # started (or half-started): stop it
                subprocess.run(stop, capture_output=True, timeout=120)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _postgres_ready(url: str) -> bool:
    import psycopg2

    try:
        psycopg2.connect(url, connect_timeout=2).close()
        return True
    except psycopg2.OperationalError:
        return False


@pytest.fixture
def postgres_instance(postgres_instance_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real DagsterInstance on its own fresh PostgreSQL database, built from the shipped
    `glueflow_dagster/dagster_postgres.yaml` (credentials from DAGSTER_PG_* env vars)."""
    from dagster import DagsterInstance

    for name, value in postgres_home(postgres_instance_url, tmp_path / "dagster_home").items():
        monkeypatch.setenv(name, value)
    dagster_instance = DagsterInstance.from_config(str(tmp_path / "dagster_home"))
    try:
        yield dagster_instance
    finally:
        dagster_instance.dispose()


def postgres_home(server_url: str, home: Path) -> dict[str, str]:
    """A DAGSTER_HOME using the shipped `dagster_postgres.yaml` on a new database of the server;
    returns the DAGSTER_PG_* variables the file reads."""
    import shutil
    from urllib.parse import urlparse

    import psycopg2

    db_name = f"glueflow_{uuid.uuid4().hex[:16]}"
    connection = psycopg2.connect(server_url)
    connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{db_name}"')
    finally:
        connection.close()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).parents[1] / "glueflow_dagster" / "dagster_postgres.yaml", home / "dagster.yaml")
    url = urlparse(server_url)
    values = {"HOST": url.hostname, "PORT": url.port, "DB": db_name, "USERNAME": url.username, "PASSWORD": url.password}
    return {f"DAGSTER_PG_{name}": str(value) for name, value in values.items()}

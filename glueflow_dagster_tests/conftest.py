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

from glueflow_dagster.storage import LocalStorage, S3Storage, Storage

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


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    """LocalStorage in a not-yet-existing folder (writes must create it)."""
    return LocalStorage(tmp_path / "store")


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """Either backend: contract tests using it run once per backend."""
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


def write_flow_file(
    directory: Path,
    *,
    flow: str = "events",
    input_uri: str = "data/input",
    staging_uri: str = "data/staging",
    output_uri: str = "data/output",
    bookmark: str = "disable",
    schedule: str = "*/30 * * * *",
) -> Path:
    """A flow file with one small flow; locations default to folders beside it."""
    import yaml

    document = {
        "flows": {
            flow: {
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
        }
    }
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

    Skips when pyspark or Java is missing.
    """
    import shutil

    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no java on PATH")
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[1]").appName("glueflow-tests")
    for key, value in {
        "spark.sql.ansi.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "1",
    }.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
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

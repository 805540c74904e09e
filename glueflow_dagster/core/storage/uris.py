"""Opening a location from its URI: ``s3://bucket/prefix``, ``file:///abs/path`` or a local path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from glueflow_dagster.core.storage.errors import SHOWN_CHARS, StorageError, shorten, shown
from glueflow_dagster.core.storage.local import LocalStorage
from glueflow_dagster.core.storage.objects import Storage
from glueflow_dagster.core.storage.s3 import S3Storage


def open_storage(
    uri: str,
    *,
    s3_client_factory: Callable[[], Any] | None = None,
    base_dir: Path | None = None,
) -> Storage:
    """Storage for ``uri``: ``s3://bucket/prefix``, ``file:///abs/path`` or a local path.

    A relative local path is resolved against ``base_dir`` (default: the current directory). Without a
    factory the S3 client is ``boto3.client("s3")``, which honours ``AWS_ENDPOINT_URL``. Other
    ``scheme://`` URIs are refused rather than taken as oddly named local folders.
    """
    text = str(uri).strip()
    if not text:
        raise StorageError("'': empty storage URI")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "s3":
        rest = text[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StorageError(f"{text}: missing bucket name", uri=text)
        if s3_client_factory is not None:
            client = s3_client_factory()
        else:
            import boto3  # deferred: only S3 locations need it

            client = boto3.client("s3")
        return S3Storage(bucket, prefix, client)
    if scheme == "file":
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"{text}: file:// URIs must be absolute (file:///path)", uri=text)
        return LocalStorage(Path(unquote(parsed.path)))
    if scheme:
        cause = f"unsupported storage scheme {shown(scheme)} (use s3:// or a local path)"
        raise StorageError(f"{shorten(text, 2 * SHOWN_CHARS)}: {cause}", uri=text)
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else Path.cwd()).expanduser().absolute() / path
    return LocalStorage(path)


def location_uri(uri: str) -> str:
    """A location as a URI: `s3://...` as it is, a local path as `file:///...`."""
    return uri if "://" in uri else Path(uri).resolve().as_uri()

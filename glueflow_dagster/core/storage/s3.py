"""An S3 prefix as a location, through a ready boto3 client (the Dagster shell configures its retries).

Every botocore error surfaces as a one-line :class:`StorageError` naming the URI and the cause, with URL
credentials redacted in it and in the chained botocore errors; pending writes are open multipart uploads.
"""

from __future__ import annotations

import io
import re
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from glueflow_dagster.core.storage.errors import SHOWN_CHARS, StorageError, redact, shorten
from glueflow_dagster.core.storage.keys import check_key, compile_exclusions, excluded, is_marker
from glueflow_dagster.core.storage.local import COPY_CHUNK, check_upload_source
from glueflow_dagster.core.storage.objects import PROBE_PREFIX, ObjectInfo, PendingObject, PendingUpload

#: S3 multipart part size for pending writes (S3 requires >= 5 MiB for every part but the last).
_MULTIPART_PART_BYTES = 64 * 1024 * 1024

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DELETE_BATCH = 1000  # DeleteObjects accepts at most 1000 keys per call

# Codes of a store that does not offer an operation at all (s3rver: ListMultipartUploads is NotImplemented,
# AbortMultipartUpload is MethodNotAllowed; older MinIO and Ceph refuse If-None-Match with NotImplemented).
_UNSUPPORTED = frozenset(("NotImplemented", "501", "MethodNotAllowed", "405"))
# Whether a location honours If-None-Match on PutObject: probed once per (endpoint, bucket, prefix) and process.
_CONDITIONAL_WRITES: dict[tuple[str, str, str], bool] = {}


def _client_error_cause(err: ClientError) -> tuple[str, str]:
    """(code, readable cause) of a botocore ClientError."""
    error = err.response.get("Error", {}) or {}
    code = str(error.get("Code") or err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
    message = _one_line(str(error.get("Message") or ""))  # the server's text: bounded, one line
    if code == "NoSuchBucket":
        return code, "bucket does not exist (NoSuchBucket)"
    if code in ("NoSuchKey", "404", "NotFound"):
        return code, f"object does not exist ({code})"
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return code, f"access denied ({code})"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
        return code, f"credentials rejected ({code})"
    if code in ("SlowDown", "ServiceUnavailable", "InternalError", "500", "503", "RequestTimeout"):
        return code, f"service unavailable after retries ({code})"
    return code, f"{message or 'request failed'} ({code})"


class _S3Reader(io.RawIOBase):
    """Raw stream over a GetObject body, mapping botocore errors to StorageError.

    Wrapped in ``io.BufferedReader`` so callers get a regular binary file (readline, iteration, gzip).
    """

    def __init__(self, body: Any, uri: str, endpoint: str) -> None:
        super().__init__()
        self._body = body
        self._uri = uri
        self._endpoint = endpoint

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            chunk = self._body.read(len(buffer))
        except (BotoCoreError, ClientError) as err:
            raise boto_error(self._uri, err, self._endpoint) from err
        n = len(chunk)
        buffer[:n] = chunk
        return n

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _redact_chain(err: BaseException | None) -> None:
    """Redact URL credentials in the messages of ``err`` and the exceptions it chains, in place.

    The StorageError chains the botocore error (``raise ... from err``) and Dagster shows the whole
    chain; botocore's own text holds the endpoint URL (``http://key:secret@host/bucket?...``).
    """
    seen = 0
    while err is not None and seen < 8:
        if any(isinstance(arg, str) and "@" in arg for arg in err.args):
            err.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in err.args)
            kwargs = getattr(err, "kwargs", None)  # botocore keeps the format values here too
            if isinstance(kwargs, dict):
                err.kwargs = {k: redact(v) if isinstance(v, str) else v for k, v in kwargs.items()}  # type: ignore[attr-defined]
        err = err.__cause__ or err.__context__
        seen += 1


def boto_error(uri: str, err: BaseException, endpoint: str) -> StorageError:
    """One-line StorageError for any botocore / boto3 transfer failure (credentials redacted, also in
    the chained botocore errors)."""
    _redact_chain(err)
    # boto3's managed transfers re-raise ClientError as S3UploadFailedError with the original as context.
    inner = err.__cause__ or err.__context__
    if not isinstance(err, ClientError | BotoCoreError) and isinstance(inner, ClientError | BotoCoreError):
        err = inner
    if isinstance(err, ClientError):
        cause = _client_error_cause(err)[1]
    elif isinstance(err, EndpointConnectionError | ConnectionClosedError):
        cause = f"endpoint unreachable ({endpoint})"
    elif isinstance(err, ConnectTimeoutError):
        cause = f"endpoint unreachable, connect timed out ({endpoint})"
    elif isinstance(err, ReadTimeoutError):
        cause = f"endpoint timed out while reading ({endpoint})"
    elif isinstance(err, NoCredentialsError):
        cause = "no AWS credentials found (NoCredentialsError)"
    elif isinstance(err, PartialCredentialsError):
        cause = f"incomplete AWS credentials (PartialCredentialsError: {_one_line(str(err))})"
    else:
        cause = f"{_one_line(str(err))} ({type(err).__name__})"
    return StorageError(f"{uri}: {cause}", uri=uri)


def _one_line(text: str) -> str:
    """A library's or a server's message as one bounded line, credentials redacted."""
    return shorten(" ".join(redact(text).split()), 3 * SHOWN_CHARS)


def _boto_errors() -> tuple[type[BaseException], ...]:
    """botocore's errors and boto3's transfer error (its transfer manager wraps upload errors in it).

    Imported when an S3 location is opened, not with this module: importing boto3 costs a process about
    11 MB that a stage between local folders does not need."""
    from boto3.exceptions import S3UploadFailedError

    return (BotoCoreError, ClientError, S3UploadFailedError)


class S3Storage:
    """Objects under ``s3://bucket/prefix``, through a ready boto3 S3 client (retries configured there)."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        if not bucket or "/" in bucket:
            raise StorageError(f"s3://{bucket}: invalid bucket name", uri=f"s3://{bucket}")
        self.bucket = bucket
        self.prefix = check_key(prefix.strip("/"), f"s3://{bucket}", prefix=True) if prefix else ""
        self.client = client
        self._errors = _boto_errors()
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        # Prefix of every full key; listing strips it to get root-relative keys.
        self._base = f"{self.prefix}/" if self.prefix else ""

    def __repr__(self) -> str:
        return f"S3Storage({self.uri!r})"

    @property
    def _endpoint(self) -> str:
        # Shown in messages: an endpoint URL may carry "key:secret@" (redacted) and is bounded.
        return shorten(redact(str(getattr(getattr(self.client, "meta", None), "endpoint_url", "?"))), 2 * SHOWN_CHARS)

    def _full(self, key: str) -> str:
        return self._base + check_key(key, self.uri)

    def _error(self, uri: str, err: BaseException, *, object_op: bool = False) -> StorageError:
        # HEAD answers carry no body, so a missing bucket and a missing key both arrive as a bare 404:
        # ask the bucket to tell which one it is.
        if (
            object_op
            and isinstance(err, ClientError)
            and _client_error_cause(err)[0] in ("404", "NotFound", "NoSuchKey")
            and not self._bucket_exists_quietly()
        ):
            return StorageError(f"{uri}: bucket does not exist (NoSuchBucket)", uri=uri)
        return boto_error(uri, err, self._endpoint)

    def _bucket_exists_quietly(self) -> bool:
        try:
            return self.exists()
        except StorageError:
            return True  # cannot tell: keep the original error

    def uri_for(self, key: str) -> str:
        """``s3://bucket/prefix/key``."""
        return f"s3://{self.bucket}/{self._full(key)}"

    def exists(self) -> bool:
        """True when the bucket exists (and is reachable with these credentials)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as err:
            if _client_error_cause(err)[0] in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise self._error(f"s3://{self.bucket}", err) from err
        except BotoCoreError as err:
            raise self._error(f"s3://{self.bucket}", err) from err
        return True

    @staticmethod
    def _ms(value: datetime) -> int:
        return (value - _EPOCH) // timedelta(milliseconds=1)

    def list(self, prefix: str = "", *, recurse: bool = True, exclusions: Sequence[str] = ()) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` (a folder), in key order, one ListObjectsV2 page in memory at a time.

        Keys S3 allows but this module refuses (e.g. ``a//b``) are still listed, so they never vanish
        silently; reading them raises, and an exclusion glob can skip them.
        """
        prefix = check_key(prefix, self.uri, prefix=True)
        matchers = compile_exclusions(exclusions)
        list_prefix = self._base + (f"{prefix}/" if prefix else "")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": list_prefix}
        if not recurse:
            kwargs["Delimiter"] = "/"
        uri = f"s3://{self.bucket}/{list_prefix}".rstrip("/")
        return self._iter_list(kwargs, uri, matchers)

    def _pages(self, kwargs: dict[str, Any], uri: str) -> Iterator[dict[str, Any]]:
        pages = iter(self.client.get_paginator("list_objects_v2").paginate(**kwargs))
        while True:
            # Only the fetch is guarded: the consumer's own exceptions must not be rewritten.
            try:
                page = next(pages)
            except StopIteration:
                return
            except self._errors as err:
                raise self._error(uri, err) from err
            yield page

    def _iter_list(
        self, kwargs: dict[str, Any], uri: str, matchers: tuple[re.Pattern[str], ...]
    ) -> Iterator[ObjectInfo]:
        base_len = len(self._base)
        for page in self._pages(kwargs, uri):
            for obj in page.get("Contents", ()):
                full: str = obj["Key"]
                if is_marker(full) or not full.startswith(self._base):
                    continue
                key = full[base_len:]
                if excluded(key, matchers):
                    continue
                yield ObjectInfo(
                    key=key,
                    size=int(obj["Size"]),
                    last_modified_ms=self._ms(obj["LastModified"]),
                    etag=str(obj.get("ETag", "")).strip('"'),
                )

    def stat(self, key: str) -> ObjectInfo:
        """HEAD one object."""
        full = self._full(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=full)
        except self._errors as err:
            raise self._error(self.uri_for(key), err, object_op=True) from err
        return ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            last_modified_ms=self._ms(head["LastModified"]),
            etag=str(head.get("ETag", "")).strip('"'),
        )

    def _get_body(self, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
        except self._errors as err:
            raise self._error(self.uri_for(key), err, object_op=True) from err

    def read_bytes(self, key: str) -> bytes:
        """Whole content of one object: one GetObject, its body read at once (no transfer manager, no
        read buffer: for the small objects a stage fetches by the thousand, see stage._fetch_small)."""
        body = self._get_body(key)
        try:
            return bytes(body.read())
        except self._errors as err:
            raise self._error(self.uri_for(key), err) from err
        finally:
            body.close()

    def open_read(self, key: str) -> BinaryIO:
        """A streaming, buffered binary reader over GetObject; the caller closes it."""
        body = self._get_body(key)
        raw = _S3Reader(body, self.uri_for(key), self._endpoint)
        return io.BufferedReader(raw, buffer_size=COPY_CHUNK)  # type: ignore[return-value]

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """Download into a temp file (streamed, bounded memory); the file is deleted on exit."""
        full = self._full(key)
        suffix = "".join(Path(key).suffixes[-2:])  # keep ".json.gz" so readers can sniff compression
        tmp = tempfile.NamedTemporaryFile(prefix="glueflow-", suffix=suffix, delete=False)  # noqa: SIM115
        path = Path(tmp.name)
        try:
            try:
                with tmp:
                    self.client.download_fileobj(self.bucket, full, tmp)
            except self._errors as err:
                raise self._error(self.uri_for(key), err, object_op=True) from err
            yield path
        finally:
            path.unlink(missing_ok=True)

    def write_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """PUT one object (S3 PUTs are atomic)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"write_bytes expects bytes, got {type(data).__name__}")
        full = self._full(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=bytes(data))
        except self._errors as err:
            raise self._error(self.uri_for(key), err) from err
        return self.stat(key)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Put-if-absent: a PUT with ``If-None-Match: *`` (S3's conditional write); 412 means the name
        exists. A 409 (another conditional write of the name in flight) is retried until one of them wins."""
        full = self._full(key)
        for wait_s in (0.1, 0.2, 0.4, 0.8, 1.6, 0.0):
            try:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=bytes(data), IfNoneMatch="*")
                return True
            except self._errors as err:
                code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
                if code in ("PreconditionFailed", "412"):
                    return False
                if code not in ("ConditionalRequestConflict", "409") or not wait_s:
                    raise self._error(self.uri_for(key), err) from err
                time.sleep(wait_s)
        raise AssertionError("unreachable")

    def honours_conditional_writes(self) -> bool:
        """Whether this location's store honours ``If-None-Match: *`` on ``PutObject`` (put-if-absent).

        Probed once per location and process: two conditional PUTs of one new key under
        ``_glueflow/probe/``; the second must be refused with 412. A store that answers ``NotImplemented``
        (s3rver, older MinIO, Ceph's gateway before conditional writes) or lets the second PUT succeed (it
        ignores the header) does not honour it. The probe object is deleted afterwards. An unreachable
        endpoint raises :class:`StorageError` and nothing is cached.
        """
        cache_key = (self._endpoint, self.bucket, self.prefix)
        if cache_key not in _CONDITIONAL_WRITES:
            key = f"{PROBE_PREFIX}/conditional-write-{uuid.uuid4().hex}.json"
            try:
                honoured = self._probe_conditional_write(key)
            finally:
                with suppress(StorageError):
                    self.delete(key)
            _CONDITIONAL_WRITES[cache_key] = honoured
        return _CONDITIONAL_WRITES[cache_key]

    def _probe_conditional_write(self, key: str) -> bool:
        full = self._full(key)
        for attempt in (1, 2):
            try:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=b"{}", IfNoneMatch="*")
            except self._errors as err:
                code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
                if code in _UNSUPPORTED or (attempt == 1 and code in ("InvalidArgument", "400")):
                    return False
                if attempt == 2 and code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    return True
                raise self._error(self.uri_for(key), err) from err
        return False  # the second conditional PUT of an existing name succeeded: the header is ignored

    def upload_file(self, local_path: Path, key: str) -> ObjectInfo:
        """Upload through the transfer manager (multipart for big files; the object appears whole)."""
        full = self._full(key)
        src = Path(local_path)
        check_upload_source(src)
        try:
            self.client.upload_file(str(src), self.bucket, full)
        except self._errors as err:
            raise self._error(self.uri_for(key), err) from err
        return self.stat(key)

    def delete(self, key: str) -> None:
        """DELETE one object; a missing object is fine."""
        full = self._full(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full)
        except self._errors as err:
            raise self._error(self.uri_for(key), err) from err

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (a folder; ``""`` is the whole root), markers included.

        Returns the number of objects deleted (markers are not counted, as ``list`` does not show them).
        """
        prefix = check_key(prefix, self.uri, prefix=True)
        list_prefix = self._base + (f"{prefix}/" if prefix else "")
        uri = f"s3://{self.bucket}/{list_prefix}".rstrip("/")
        count = 0
        batch: list[str] = []
        for page in self._pages({"Bucket": self.bucket, "Prefix": list_prefix}, uri):
            for obj in page.get("Contents", ()):
                batch.append(obj["Key"])
                count += not is_marker(obj["Key"])
                if len(batch) == _DELETE_BATCH:
                    self._delete_batch(batch, uri)
                    batch = []
        if batch:
            self._delete_batch(batch, uri)
        return count

    def _delete_batch(self, keys: list[str], uri: str) -> None:
        try:
            resp = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        except self._errors as err:
            raise self._error(uri, err) from err
        errors = resp.get("Errors") or []
        if errors:
            first = errors[0]
            raise StorageError(
                f"s3://{self.bucket}/{first.get('Key')}: delete failed ({_one_line(str(first.get('Code')))}: "
                f"{_one_line(str(first.get('Message')))}; {len(errors)} of {len(keys)} keys in the batch failed)",
                uri=uri,
            )

    # Pending writes: an open multipart upload, invisible to every reader until it is completed.

    def begin_upload(self, local_path: Path, key: str) -> PendingObject:
        """Upload ``local_path`` as the parts of a multipart upload that is left open (S3A's magic committer)."""
        full = self._full(key)
        src = Path(local_path)
        check_upload_source(src)
        uri = self.uri_for(key)
        try:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]
        except self._errors as err:
            raise self._error(uri, err) from err
        pending = PendingObject(key=key, size=src.stat().st_size, token=upload_id)
        parts: list[tuple[int, str]] = []
        try:
            with open(src, "rb") as f:
                number = 1
                while True:
                    chunk = f.read(_MULTIPART_PART_BYTES)
                    if not chunk and parts:
                        break
                    answer = self.client.upload_part(
                        Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=chunk
                    )
                    parts.append((number, str(answer["ETag"])))
                    number += 1
                    if len(chunk) < _MULTIPART_PART_BYTES:
                        break
        except BaseException as err:
            with suppress(StorageError):
                self.abort_upload(pending)
            if isinstance(err, self._errors):
                raise self._error(uri, err) from err
            raise
        return PendingObject(key=key, size=pending.size, token=upload_id, parts=tuple(parts))

    def complete_upload(self, pending: PendingObject) -> ObjectInfo:
        """Complete the multipart upload: the object appears at once, whole."""
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._full(pending.key),
                UploadId=pending.token,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in pending.parts]},
            )
        except self._errors as err:
            raise self._error(self.uri_for(pending.key), err) from err
        return self.stat(pending.key)

    def abort_upload(self, pending: PendingObject) -> None:
        """Abort the multipart upload; an upload already gone is fine, and so is a store that cannot abort
        uploads (s3rver answers MethodNotAllowed): its open uploads stay invisible to every reader."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._full(pending.key), UploadId=pending.token)
        except ClientError as err:
            if _client_error_cause(err)[0] in ("NoSuchUpload", "404", *_UNSUPPORTED):
                return
            raise self._error(self.uri_for(pending.key), err) from err
        except BotoCoreError as err:
            raise self._error(self.uri_for(pending.key), err) from err

    def pending_uploads(self) -> Iterator[PendingUpload]:
        """Multipart uploads left open under this location (ListMultipartUploads), with their start times.

        A store without ListMultipartUploads (s3rver answers NotImplemented) lists none: its open uploads
        are invisible to every reader, and only the commit intents name them (see ``core.intents``)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._base}
        uri = self.uri
        while True:
            try:
                page = self.client.list_multipart_uploads(**kwargs)
            except ClientError as err:
                if _client_error_cause(err)[0] in _UNSUPPORTED:
                    return
                raise self._error(uri, err) from err
            except self._errors as err:
                raise self._error(uri, err) from err
            for upload in page.get("Uploads", ()):
                full: str = upload["Key"]
                if full.startswith(self._base):
                    yield PendingUpload(
                        key=full[len(self._base) :], token=upload["UploadId"], started_ms=self._ms(upload["Initiated"])
                    )
            if not page.get("IsTruncated"):
                return
            kwargs["KeyMarker"] = page.get("NextKeyMarker", "")
            kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker", "")

"""What a location holds: objects, pending writes, the reserved folder, and the :class:`Storage` protocol."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

#: Name prefix of the temp files of in-progress local atomic writes; hidden from listings.
TMP_PREFIX = ".glueflow-tmp-"
#: Cause of a local symlink whose target resolves outside the location root: never listed nor read.
OUTSIDE_LINK = "symlink points outside the location"
DANGLING_LINK = "symlink target does not exist"

#: Folder of glueflow's own bookkeeping in every location (pending writes, commit manifests); never data.
RESERVED_DIR = "_glueflow"
#: Where a local location keeps written-but-uncommitted objects (S3 keeps them as open multipart uploads).
PENDING_DIR = f"{RESERVED_DIR}/pending"
#: Where a store's put-if-absent is probed (S3: two conditional PUTs; local: a hard link), then deleted.
PROBE_PREFIX = f"{RESERVED_DIR}/probe"


@dataclass(frozen=True)
class RefusedObject:
    """An entry a local listing did not yield as an object, and why (``OUTSIDE_LINK``, ``DANGLING_LINK``)."""

    key: str
    cause: str


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object. ``key`` is relative to the location root."""

    key: str
    size: int
    last_modified_ms: int
    etag: str


@dataclass(frozen=True)
class PendingObject:
    """An object written but not yet visible: it becomes ``key`` only when completed (the commit).

    ``token`` is the pending file's key under :data:`PENDING_DIR` (local) or the multipart upload id (S3);
    ``parts`` are the uploaded S3 parts as (part number, etag).
    """

    key: str
    size: int
    token: str
    parts: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class PendingUpload:
    """A pending write found in a location (for garbage collection): target key, token, start time."""

    key: str
    token: str
    started_ms: int


# --------------------------------------------------------------------------------------------------
# Protocol


@runtime_checkable
class Storage(Protocol):
    """What every backend offers. All keys are relative to ``uri``.

    Backends may also offer ``honours_conditional_writes() -> bool`` (both built-in ones do: S3 probes it
    once per location and process); ``core.claims`` takes a backend without it as honouring put-if-absent.
    """

    uri: str

    def uri_for(self, key: str) -> str: ...

    def list(
        self, prefix: str = "", *, recurse: bool = True, exclusions: Sequence[str] = ()
    ) -> Iterator[ObjectInfo]: ...

    def exists(self) -> bool: ...

    def stat(self, key: str) -> ObjectInfo: ...

    def read_bytes(self, key: str) -> bytes: ...

    def open_read(self, key: str) -> BinaryIO: ...

    def local_copy(self, key: str) -> AbstractContextManager[Path]: ...

    def write_bytes(self, key: str, data: bytes) -> ObjectInfo: ...

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if no object has that name, atomically (put-if-absent); False if one has."""
        ...

    def upload_file(self, local_path: Path, key: str) -> ObjectInfo: ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def begin_upload(self, local_path: Path, key: str) -> PendingObject: ...

    def complete_upload(self, pending: PendingObject) -> ObjectInfo: ...

    def abort_upload(self, pending: PendingObject) -> None: ...

    def pending_uploads(self) -> Iterator[PendingUpload]: ...

"""pyiceberg's file IO over glueflow's own storage, for the Output run's table work before its stage.

An Output run opens its table (creates it, evolves its schema) and lists the data files its snapshots
reference (garbage collection) before the stage writes anything. pyiceberg's default file IO for
``file://`` and ``s3://`` is its Arrow IO, whose import loads pyarrow with its dataset, compute and Parquet
libraries: about 50 MB resident that the process then holds through the stage, on top of the stage's own
peak (docs/formats.md, "Measured"). These steps read and write only the table's metadata files (JSON and
Avro, kilobytes), which :class:`StorageFileIO` does through the output location's :class:`Storage` (a
local folder or boto3's S3 client, already loaded for the run): pyarrow is imported after the stage, by
the append that reads the data files' Parquet footers (through pyiceberg's Arrow IO, ranged reads).

The catalog property ``py-io-impl`` names this class (:data:`STORAGE_FILE_IO`); pyiceberg builds it from
the catalog's properties: ``warehouse`` (the output location, every path it is asked for lies under it),
and for S3 ``s3.endpoint``, ``s3.region``, ``s3.access-key-id`` / ``s3.secret-access-key`` /
``s3.session-token`` when set (a REST catalog may vend them per table; otherwise boto3's own chain, as
for the run's storage). Whole objects are read into memory: it is for
metadata files only.
"""

from __future__ import annotations

import io
from typing import Any

from pyiceberg.io import FileIO, InputFile, InputStream, OutputFile, OutputStream

from glueflow_dagster.core.storage import Storage, StorageError, open_storage

__all__ = ["STORAGE_FILE_IO", "StorageFileIO"]

STORAGE_FILE_IO = "glueflow_dagster.core.iceberg_io.StorageFileIO"
_STORAGES: dict[tuple[str, ...], Storage] = {}  # one storage (one boto3 client) per warehouse and endpoint


def _not_found(err: StorageError) -> bool:
    cause = err.__cause__
    if isinstance(cause, FileNotFoundError):
        return True
    code = str(getattr(cause, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def _storage(properties: dict[str, str]) -> Storage:
    warehouse = properties["warehouse"].rstrip("/")
    options = ("s3.endpoint", "s3.region", "s3.access-key-id", "s3.secret-access-key", "s3.session-token")
    cache_key = (warehouse, *(properties.get(name, "") for name in options))
    if cache_key not in _STORAGES:
        factory = None
        if warehouse.startswith("s3://"):

            def factory() -> Any:
                import boto3

                return boto3.client(
                    "s3",
                    endpoint_url=properties.get("s3.endpoint") or None,
                    region_name=properties.get("s3.region") or None,
                    aws_access_key_id=properties.get("s3.access-key-id") or None,
                    aws_secret_access_key=properties.get("s3.secret-access-key") or None,
                    aws_session_token=properties.get("s3.session-token") or None,
                )

        _STORAGES[cache_key] = open_storage(warehouse, s3_client_factory=factory)
    return _STORAGES[cache_key]


class StorageFileIO(FileIO):
    """pyiceberg's FileIO over the :class:`Storage` of the ``warehouse`` property (see the module)."""

    def __init__(self, properties: dict[str, str] | None = None) -> None:
        super().__init__(properties or {})
        self.storage = _storage(dict(self.properties))
        self.warehouse = self.properties["warehouse"].rstrip("/") + "/"

    def key(self, location: str) -> str:
        """The storage key of a path under the warehouse (a file:// path may come as a plain path)."""
        path = location if "://" in location or not self.warehouse.startswith("file://") else f"file://{location}"
        if not path.startswith(self.warehouse):
            raise ValueError(f"{location[:200]}: not under the table's warehouse {self.warehouse[:200]}")
        return path.removeprefix(self.warehouse)

    def new_input(self, location: str) -> InputFile:
        return _Input(location, self)

    def new_output(self, location: str) -> OutputFile:
        return _Output(location, self)

    def delete(self, location: str | InputFile | OutputFile) -> None:
        path = location if isinstance(location, str) else location.location
        self.storage.delete(self.key(path))

    def exists(self, location: str) -> bool:
        try:
            self.storage.stat(self.key(location))
        except StorageError as err:
            if _not_found(err):
                return False
            raise
        return True


class _Located:
    """What pyiceberg's input and output files share: a location in the file IO's storage."""

    location: str

    def __init__(self, location: str, file_io: StorageFileIO) -> None:
        super().__init__(location)  # type: ignore[call-arg]  # pyiceberg's InputFile/OutputFile, next in the MRO
        self.file_io = file_io

    def __len__(self) -> int:
        return self.file_io.storage.stat(self.file_io.key(self.location)).size

    def exists(self) -> bool:
        return self.file_io.exists(self.location)


class _Input(_Located, InputFile):
    def open(self, seekable: bool = True) -> InputStream:
        try:
            data = self.file_io.storage.read_bytes(self.file_io.key(self.location))
        except StorageError as err:
            if _not_found(err):
                raise FileNotFoundError(str(err)) from err
            raise
        return io.BytesIO(data)  # type: ignore[return-value]


class _Output(_Located, OutputFile):
    def to_input_file(self) -> InputFile:
        return _Input(self.location, self.file_io)

    def create(self, overwrite: bool = False) -> OutputStream:
        if not overwrite and self.exists():
            raise FileExistsError(f"{self.location[:200]}: already exists")
        return _Upload(self.file_io.storage, self.file_io.key(self.location))  # type: ignore[return-value]


class _Upload(io.BytesIO):
    """The object's bytes, written to the storage in one piece when closed (not when a write failed)."""

    def __init__(self, storage: Storage, key: str) -> None:
        super().__init__()
        self.storage, self.key, self.failed = storage, key, False

    def __exit__(self, *exc: Any) -> None:
        self.failed = exc[0] is not None
        self.close()

    def close(self) -> None:
        if not self.closed:
            data = self.getvalue()
            super().close()
            if not self.failed:
                self.storage.write_bytes(self.key, data)

"""One storage interface over a local folder and an S3 prefix.

Plain package on purpose (no Dagster import): the Dagster shell builds the boto3 client, with the retry
policy it wants, and hands it over. Every error surfaces as a one-line :class:`StorageError` naming the
URI and the cause; botocore exceptions are chained, never the headline.

Keys are relative to the location root and checked the same way on both backends (see ``keys``).

The package, by concept: ``errors`` (one-line messages, redaction), ``objects`` (what a location holds; the
``Storage`` protocol), ``keys`` (key checks, exclusion globs), ``local`` and ``s3`` (the two backends) and
``uris`` (opening a location from its URI). Every public name is importable from here.
"""

from glueflow_dagster.core.storage.errors import SHOWN_CHARS, StorageError, redact, shorten, shown
from glueflow_dagster.core.storage.keys import glob_match
from glueflow_dagster.core.storage.local import LocalStorage
from glueflow_dagster.core.storage.objects import (
    DANGLING_LINK,
    OUTSIDE_LINK,
    PENDING_DIR,
    RESERVED_DIR,
    TMP_PREFIX,
    ObjectInfo,
    PendingObject,
    PendingUpload,
    RefusedObject,
    Storage,
)
from glueflow_dagster.core.storage.s3 import S3Storage
from glueflow_dagster.core.storage.uris import location_uri, open_storage

__all__ = [
    "DANGLING_LINK",
    "OUTSIDE_LINK",
    "PENDING_DIR",
    "RESERVED_DIR",
    "SHOWN_CHARS",
    "TMP_PREFIX",
    "LocalStorage",
    "ObjectInfo",
    "PendingObject",
    "PendingUpload",
    "RefusedObject",
    "S3Storage",
    "Storage",
    "StorageError",
    "glob_match",
    "location_uri",
    "open_storage",
    "redact",
    "shorten",
    "shown",
]

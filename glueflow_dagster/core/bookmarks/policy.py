"""The bookmark's options and policy: the band, the caps, and what happens to rewritten and late objects.

The options and the policy's effects on a selection are described in the package docstring and in
:mod:`glueflow_dagster.core.bookmarks.select`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from glueflow_dagster.core.storage import ObjectInfo

DEFAULT_MAX_BAND_MS = 900_000  # Glue's default maxBand: 15 minutes
DEFAULT_MAX_BAND_FILES = 128  # like Glue's maxFilesInBand, but overflow goes to the digest, not deferred
REPORT_LIMIT = 1000  # objects listed per reported state in a Selection (counts are always complete)
OPTIONS = ("enable", "disable", "pause")
ON_MODIFIED = ("reprocess", "ignore")
ON_LATE = ("process", "report")

Known = Callable[[Sequence[ObjectInfo]], set[str]]


class BookmarkError(ValueError):
    """A bookmark state, policy or option that cannot be read or used."""


def position(obj: ObjectInfo) -> tuple[int, str]:
    return (obj.last_modified_ms, obj.key)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------------
# Policy


@dataclass(frozen=True)
class BookmarkPolicy:
    """How a flow's bookmark treats the band, caps, rewritten and late objects."""

    max_band_ms: int = DEFAULT_MAX_BAND_MS
    max_files_per_run: int | None = None
    max_bytes_per_run: int | None = None  # a single object larger than the cap is still taken alone
    on_modified: str = "reprocess"  # reprocess | ignore
    on_late: str = "process"  # process | report
    max_band_files: int | None = DEFAULT_MAX_BAND_FILES  # None: every object of the band is kept exactly

    def __post_init__(self) -> None:
        if not is_int(self.max_band_ms) or self.max_band_ms < 0:
            raise BookmarkError(f"max_band_ms must be an integer >= 0, got {self.max_band_ms!r}")
        for name in ("max_files_per_run", "max_bytes_per_run"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value < 1):
                raise BookmarkError(f"{name} must be an integer >= 1 or None, got {value!r}")
        if self.max_band_files is not None and (not is_int(self.max_band_files) or self.max_band_files < 0):
            raise BookmarkError(f"max_band_files must be an integer >= 0 or None, got {self.max_band_files!r}")
        if self.on_modified not in ON_MODIFIED:
            raise BookmarkError(f"on_modified must be one of {', '.join(ON_MODIFIED)}, got {self.on_modified!r}")
        if self.on_late not in ON_LATE:
            raise BookmarkError(f"on_late must be one of {', '.join(ON_LATE)}, got {self.on_late!r}")


def resolve_policy(policy: BookmarkPolicy | None, max_band_ms: int | None) -> BookmarkPolicy:
    result = policy if policy is not None else BookmarkPolicy()
    if max_band_ms is not None and max_band_ms != result.max_band_ms:
        result = replace(result, max_band_ms=max_band_ms)
    return result

"""A run's selection: its manifest, the state of every listed object, and the digest its commit re-baselines to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from glueflow_dagster.core.bookmarks.digest import Digest
from glueflow_dagster.core.bookmarks.policy import BookmarkError, BookmarkPolicy, is_int
from glueflow_dagster.core.storage import ObjectInfo

# --------------------------------------------------------------------------------------------------
# Selection


class ObjectState(StrEnum):
    """What one run does with one listed object. Every listed object gets exactly one."""

    NEW = "new"  # read by this run: never read before
    MODIFIED = "modified"  # read by this run: a new version of a key that was read before
    LATE = "late"  # read by this run: last-modified <= watermark - band, never read
    ALREADY_READ = "already_read"  # a committed run read (or acknowledged) this exact version
    DEFERRED = "deferred"  # left for a later run by max_files_per_run / max_bytes_per_run
    IGNORED = "ignored"  # modified with on_modified=ignore, or late with on_late=report


_READ_STATES = (ObjectState.NEW, ObjectState.MODIFIED, ObjectState.LATE)


def zero_counts() -> dict[ObjectState, int]:
    return dict.fromkeys(ObjectState, 0)


@dataclass(frozen=True)
class Selection:
    """The objects one run reads (its manifest) and the count of every other listed object's state.

    ``states`` partitions the listing (NEW/MODIFIED/LATE count objects in the manifest);
    ``found`` counts what each object *is* (new, modified, late, already read) whatever the run does
    with it, so ``new_files + modified_files + late_files + already_read_files == listed_files``.
    """

    manifest: tuple[ObjectInfo, ...]
    states: dict[ObjectState, int] = field(default_factory=zero_counts)
    listed_files: int = 0
    already_read_files: int = 0
    found: dict[ObjectState, int] = field(default_factory=zero_counts)
    late: tuple[ObjectInfo, ...] = ()  # late objects found (read, reported or deferred), capped
    deferred: tuple[ObjectInfo, ...] = ()  # capped at REPORT_LIMIT
    ignored: tuple[ObjectInfo, ...] = ()  # capped at REPORT_LIMIT
    acknowledged: tuple[ObjectInfo, ...] = ()  # ignored rewrites the commit marks read: complete
    deferred_bytes: int = 0
    option: str = "enable"
    policy: BookmarkPolicy = field(default_factory=BookmarkPolicy)
    base_version: int | None = None  # the state version it was selected from (commit checks it)
    listing_digest: Digest | None = None  # listed objects below the watermark that were accounted for
    digest_lookups: int = 0  # candidates passed to `known` (0 unless the digest difference overflowed)
    digest_guessed: bool = False  # overflow with no `known`: candidates taken as unread, caps lifted

    @property
    def manifest_bytes(self) -> int:
        return sum(obj.size for obj in self.manifest)

    @property
    def new_files(self) -> int:
        return self.found.get(ObjectState.NEW, 0)

    @property
    def modified_files(self) -> int:
        return self.found.get(ObjectState.MODIFIED, 0)

    @property
    def late_files(self) -> int:
        return self.found.get(ObjectState.LATE, 0)

    @property
    def skipped_files(self) -> int:
        return self.states.get(ObjectState.DEFERRED, 0) + self.states.get(ObjectState.IGNORED, 0)

    def counts(self) -> dict[str, int]:
        """Every count, named as run metadata."""
        return {
            "listed_files": self.listed_files,
            "new_files": self.new_files,
            "modified_files": self.modified_files,
            "late_files": self.late_files,
            "already_read_files": self.already_read_files,
            "skipped_files": self.skipped_files,
            "deferred_files": self.states.get(ObjectState.DEFERRED, 0),
            "ignored_files": self.states.get(ObjectState.IGNORED, 0),
            "deferred_bytes": self.deferred_bytes,
            "manifest_files": len(self.manifest),
            "manifest_bytes": self.manifest_bytes,
            "digest_lookups": self.digest_lookups,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of what :func:`commit` needs (and the counts), e.g. to freeze a planned run.

        The reported lists (late, deferred, ignored) are display-only and not included.
        """
        digest = self.listing_digest
        return {
            "option": self.option,
            "base_version": self.base_version,
            "manifest": [_row(obj) for obj in self.manifest],
            "acknowledged": [_row(obj) for obj in self.acknowledged],
            "listing_digest": None if digest is None else {"cells": digest.cells, "data": digest.to_text()},
            "policy": {
                name: getattr(self.policy, name)
                for name in (
                    "max_band_ms",
                    "max_files_per_run",
                    "max_bytes_per_run",
                    "on_modified",
                    "on_late",
                    "max_band_files",
                )
            },
            "states": {state.value: n for state, n in self.states.items()},
            "found": {state.value: n for state, n in self.found.items()},
            "listed_files": self.listed_files,
            "already_read_files": self.already_read_files,
            "deferred_bytes": self.deferred_bytes,
            "digest_lookups": self.digest_lookups,
            "digest_guessed": self.digest_guessed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Selection:
        try:
            digest = data.get("listing_digest")
            return cls(
                manifest=tuple(_from_row(row) for row in data.get("manifest", ())),
                acknowledged=tuple(_from_row(row) for row in data.get("acknowledged", ())),
                listing_digest=None if digest is None else Digest.from_text(digest["cells"], digest["data"]),
                option=str(data.get("option", "enable")),
                base_version=data.get("base_version"),
                policy=BookmarkPolicy(**data.get("policy", {})),
                states={
                    **zero_counts(),
                    **{ObjectState(k): int(n) for k, n in data.get("states", {}).items()},
                },
                found={
                    **zero_counts(),
                    **{ObjectState(k): int(n) for k, n in data.get("found", {}).items()},
                },
                listed_files=int(data.get("listed_files", 0)),
                already_read_files=int(data.get("already_read_files", 0)),
                deferred_bytes=int(data.get("deferred_bytes", 0)),
                digest_lookups=int(data.get("digest_lookups", 0)),
                digest_guessed=bool(data.get("digest_guessed", False)),
            )
        except BookmarkError:
            raise
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            raise BookmarkError(f"selection is not valid: {err}") from err


def _row(obj: ObjectInfo) -> list[Any]:
    return [obj.key, obj.size, obj.last_modified_ms, obj.etag]


def _from_row(row: Sequence[Any]) -> ObjectInfo:
    key, size, lm, etag = row
    if not (isinstance(key, str) and is_int(size) and is_int(lm) and isinstance(etag, str)):
        raise BookmarkError(f"manifest row {row!r} must be [key, size, last_modified_ms, etag]")
    return ObjectInfo(key=key, size=size, last_modified_ms=lm, etag=etag)

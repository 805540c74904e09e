"""The committed state (:class:`Bookmark`), what it covers, and the state after a successful run (:func:`commit`).

The state (:class:`Bookmark`): small, whatever the history
----------------------------------------------------------
* a high-water mark on the position ``(last_modified_ms, key)`` of everything committed;
* ``band``: the exact version ``key -> (last_modified_ms, etag)`` of committed objects inside the
  consistency band ``lm > watermark_ms - max_band_ms`` (Glue's maxBand, 15 minutes), at most
  ``max_band_files`` of them (the newest; Glue's maxFilesInBand). Exact, cheap, and the way a
  recent rewrite is recognised;
* ``retired``: a fixed-size :class:`Digest` (1032 cells: at most 26.8 KB packed, 35.8 KB as base64
  in the JSON) of every committed object version that is *not* in the band, however many there are;
* Glue's counters ``run_number`` and ``version`` (both +1 on every commit).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from glueflow_dagster.core.bookmarks.digest import Cells, Digest, version_hashes
from glueflow_dagster.core.bookmarks.policy import BookmarkError, BookmarkPolicy, is_int, position, resolve_policy
from glueflow_dagster.core.bookmarks.selection import Selection
from glueflow_dagster.core.storage import ObjectInfo

# --------------------------------------------------------------------------------------------------
# The committed state


@dataclass(frozen=True)
class Bookmark:
    """What earlier successful runs read: a high-water mark, the band and the digest of the rest.

    ``retired`` is None only for a state written before the digest existed (read as Glue does).
    """

    watermark_ms: int | None = None
    watermark_key: str = ""
    band: dict[str, tuple[int, str]] = field(default_factory=dict)
    retired: Digest | None = field(default_factory=Digest)
    run_number: int = 0
    version: int = 0

    def covers(self, obj: ObjectInfo, policy: BookmarkPolicy | int | None = None) -> bool:
        """See :func:`covers`. ``policy`` may also be a band width in ms (older callers)."""
        if is_int(policy):
            policy = BookmarkPolicy(max_band_ms=policy)  # type: ignore[arg-type]
        return covers(self, obj, policy)  # type: ignore[arg-type]

    @property
    def retired_files(self) -> int:
        return self.retired.files if self.retired is not None else 0

    def to_dict(self) -> dict[str, Any]:
        retired = None
        if self.retired is not None:
            retired = {
                "cells": self.retired.cells,
                "files": self.retired.files,
                "data": self.retired.to_text(),
            }
        return {
            "watermark_ms": self.watermark_ms,
            "watermark_key": self.watermark_key,
            "band": {key: [lm, etag] for key, (lm, etag) in sorted(self.band.items())},
            "retired": retired,
            "run_number": self.run_number,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Bookmark:
        if not data:
            return cls()
        try:
            return cls._from_dict(data)
        except BookmarkError:
            raise
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            raise BookmarkError(f"bookmark state is not valid: {err}") from err

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> Bookmark:
        if not isinstance(data, Mapping):
            raise BookmarkError(f"bookmark state must be an object, got {type(data).__name__}")
        watermark = data.get("watermark_ms")
        if watermark is not None and not is_int(watermark):
            raise BookmarkError(f"watermark_ms must be an integer or null, got {watermark!r}")
        watermark_key = data.get("watermark_key", "")
        if not isinstance(watermark_key, str):
            raise BookmarkError("watermark_key must be a string")
        band: dict[str, tuple[int, str]] = {}
        raw_band = data.get("band", {})
        if not isinstance(raw_band, Mapping):
            raise BookmarkError("band must be an object of key -> [last_modified_ms, etag]")
        for key, value in raw_band.items():
            lm, etag = value
            if not (isinstance(key, str) and is_int(lm) and isinstance(etag, str)):
                raise BookmarkError(f"band entry {key!r} must be [last_modified_ms, etag]")
            band[key] = (lm, etag)
        retired: Digest | None
        if "retired" not in data:
            retired = None if watermark is not None else Digest()  # a state from before the digest
        elif data["retired"] is None:
            retired = None
        else:
            raw = data["retired"]
            if not isinstance(raw, Mapping) or not is_int(raw.get("cells")):
                raise BookmarkError("retired must be an object with cells and data")
            retired = Digest.from_text(raw["cells"], raw.get("data", ""))
            if "files" in raw and raw["files"] != retired.files:
                raise BookmarkError("bookmark digest does not match its file count (corrupt state)")
        counters = {name: data.get(name, 0) for name in ("run_number", "version")}
        for name, value in counters.items():
            if not is_int(value) or value < 0:
                raise BookmarkError(f"{name} must be an integer >= 0, got {value!r}")
        if watermark is None and (band or (retired is not None and retired.files)):
            raise BookmarkError("a bookmark without a watermark cannot hold read objects")
        return cls(watermark, watermark_key, band, retired, counters["run_number"], counters["version"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Bookmark:
        try:
            return cls.from_dict(json.loads(text) if text else None)
        except json.JSONDecodeError as err:
            raise BookmarkError(f"bookmark state is not valid JSON: {err}") from err


def covers(bookmark: Bookmark, obj: ObjectInfo, policy: BookmarkPolicy | None = None) -> bool:
    """True when the state accounts for this exact object version, judged from the state alone.

    Exact for the band and above the watermark. Below it, a single object can only be tested against
    the digest's cells (an empty cell proves it was never committed; full cells prove nothing), so
    this answers True like Glue does; :func:`select_objects`, which sees the whole listing, is exact.
    """
    policy = policy if policy is not None else BookmarkPolicy()
    if bookmark.watermark_ms is None:
        return False
    held = bookmark.band.get(obj.key)
    if held is not None:
        return held == (obj.last_modified_ms, obj.etag)
    if position(obj) > (bookmark.watermark_ms, bookmark.watermark_key):
        return False
    if bookmark.retired is None:
        return obj.last_modified_ms <= bookmark.watermark_ms - policy.max_band_ms
    work = Cells.of(bookmark.retired)
    v, _ = version_hashes(obj)
    return all(work.count[j] or work.vx[j] for j in work.where(v))


# --------------------------------------------------------------------------------------------------
# Commit


def commit(
    bookmark: Bookmark,
    selection_or_manifest: Selection | Iterable[ObjectInfo],
    *,
    policy: BookmarkPolicy | None = None,
    max_band_ms: int | None = None,
) -> Bookmark:
    """The state after a SUCCESSFUL run that read the manifest (and acknowledged ignored rewrites).

    Given a :class:`Selection`, the digest is re-baselined to what the listing showed (deleted and
    rewritten objects leave it), and a selection planned from another state version raises
    BookmarkError (Glue's version mismatch); ``disable`` and ``pause`` selections return the state
    unchanged. Given a bare manifest, its objects are added and nothing is re-baselined. Objects
    leaving the band (older than watermark - max_band_ms, or beyond max_band_files) move into the
    digest. ``run_number`` and ``version`` both advance by one.
    """
    if isinstance(selection_or_manifest, Selection):
        selection = selection_or_manifest
        if selection.option != "enable":
            return bookmark
        if selection.base_version is not None and selection.base_version != bookmark.version:
            raise BookmarkError(
                "bookmark version mismatch: the selection was planned from version "
                f"{selection.base_version}, the state is at version {bookmark.version}"
            )
        items = selection.manifest + selection.acknowledged
        baseline = selection.listing_digest
        policy = resolve_policy(policy if policy is not None else selection.policy, max_band_ms)
    else:
        items = tuple(selection_or_manifest)
        baseline = None
        policy = resolve_policy(policy, max_band_ms)
    counters = {"run_number": bookmark.run_number + 1, "version": bookmark.version + 1}
    if not items and baseline is None:
        return replace(bookmark, **counters)
    mark = (bookmark.watermark_ms, bookmark.watermark_key) if bookmark.watermark_ms is not None else None
    for obj in items:
        if mark is None or position(obj) > mark:
            mark = position(obj)
    entries = dict(bookmark.band)
    for obj in items:
        entries[obj.key] = (obj.last_modified_ms, obj.etag)  # the newest committed version of the key
    band: dict[str, tuple[int, str]] = {}
    leaving: list[ObjectInfo] = []
    if mark is not None:
        floor = mark[0] - policy.max_band_ms
        recent = sorted(((lm, key) for key, (lm, _) in entries.items() if lm > floor), reverse=True)
        kept = {key for _, key in recent[: policy.max_band_files]} if policy.max_band_files is not None else None
        for key, (lm, etag) in entries.items():
            if lm > floor and (kept is None or key in kept):
                band[key] = (lm, etag)
            else:
                leaving.append(ObjectInfo(key=key, size=0, last_modified_ms=lm, etag=etag))
    retired = baseline if baseline is not None else bookmark.retired
    if retired is not None and leaving:
        work = Cells.of(retired)
        for obj in leaving:
            work.add(*version_hashes(obj), 1)
        retired = work.freeze()
    return Bookmark(
        watermark_ms=mark[0] if mark is not None else None,
        watermark_key=mark[1] if mark is not None else "",
        band=band,
        retired=retired,
        **counters,
    )

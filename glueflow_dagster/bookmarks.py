"""Job bookmarks: which objects a run reads, and the small state that remembers what was read.

Plain Python (no Dagster import). The state follows Glue's design: a high-water mark on
(last-modified, key) plus the objects inside the consistency band (watermark - max_band_ms,
watermark], so objects that show up late inside the band are still picked up while the state stays
small. Selection is a pure function of (listing, state, option); committing is a separate step the
caller takes only once the run has succeeded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from glueflow_dagster.storage import ObjectInfo

DEFAULT_MAX_BAND_MS = 900_000  # Glue's default maxBand: 15 minutes


class BookmarkError(ValueError):
    """A bookmark state that cannot be read or used."""


@dataclass(frozen=True)
class Bookmark:
    """What earlier successful runs read. `band` maps key -> [last_modified_ms, etag]."""

    watermark_ms: int | None = None
    band: dict[str, tuple[int, str]] = field(default_factory=dict)
    run_number: int = 0
    version: int = 0

    def covers(self, obj: ObjectInfo, max_band_ms: int) -> bool:
        """True when a committed run already read this exact object version."""
        if self.watermark_ms is None:
            return False
        if obj.last_modified_ms <= self.watermark_ms - max_band_ms:
            return True
        return self.band.get(obj.key) == (obj.last_modified_ms, obj.etag)

    def to_dict(self) -> dict[str, Any]:
        return {
            "watermark_ms": self.watermark_ms,
            "band": {key: list(value) for key, value in sorted(self.band.items())},
            "run_number": self.run_number,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Bookmark:
        if not data:
            return cls()
        try:
            return cls(
                watermark_ms=data.get("watermark_ms"),
                band={key: (int(lm), str(etag)) for key, (lm, etag) in data.get("band", {}).items()},
                run_number=int(data.get("run_number", 0)),
                version=int(data.get("version", 0)),
            )
        except (ValueError, TypeError, AttributeError) as err:
            raise BookmarkError(f"bookmark state is not valid: {err}") from err

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Bookmark:
        try:
            return cls.from_dict(json.loads(text) if text else None)
        except json.JSONDecodeError as err:
            raise BookmarkError(f"bookmark state is not valid JSON: {err}") from err


@dataclass(frozen=True)
class Selection:
    """The objects one run will read (its manifest) and the counts of what it passed over."""

    manifest: tuple[ObjectInfo, ...]
    listed_files: int
    already_read_files: int

    @property
    def manifest_bytes(self) -> int:
        return sum(obj.size for obj in self.manifest)


def select_objects(
    listing: Iterable[ObjectInfo], bookmark: Bookmark, *, option: str, max_band_ms: int = DEFAULT_MAX_BAND_MS
) -> Selection:
    """The manifest of a run: everything (`disable`) or what the bookmark does not cover."""
    listed = 0
    manifest: list[ObjectInfo] = []
    for obj in listing:
        listed += 1
        if option == "disable" or not bookmark.covers(obj, max_band_ms):
            manifest.append(obj)
    # Oldest first, so a watermark never passes an object that was left for a later run.
    manifest.sort(key=lambda o: (o.last_modified_ms, o.key))
    return Selection(tuple(manifest), listed, listed - len(manifest))


def commit(
    bookmark: Bookmark, manifest: Iterable[ObjectInfo], *, max_band_ms: int = DEFAULT_MAX_BAND_MS
) -> Bookmark:
    """The state after a successful run that read `manifest`; the band keeps only recent objects."""
    read = list(manifest)
    if not read:
        return replace(bookmark, run_number=bookmark.run_number + 1, version=bookmark.version + 1)
    watermark = max([obj.last_modified_ms for obj in read] + [bookmark.watermark_ms or 0])
    floor = watermark - max_band_ms
    band = {key: value for key, value in bookmark.band.items() if value[0] > floor}
    band.update({obj.key: (obj.last_modified_ms, obj.etag) for obj in read if obj.last_modified_ms > floor})
    return Bookmark(
        watermark_ms=watermark, band=band, run_number=bookmark.run_number + 1, version=bookmark.version + 1
    )

"""The one Output planner: the committed bookmark and the committed staging -> the run's selection.

Plain Python (no Dagster import). An Output run reads a manifest decided before it starts. Two places
plan one: `F_output_sensor`, which freezes the plan into the run config it requests, and the `F/output`
asset, when it is launched by hand without one. Both call :func:`plan_output`, so the two cannot drift:
the same committed bookmark over the same committed staging gives the same selection, the same manifest
id, hence the same output names. The frozen manifest is that selection serialized once
(:meth:`OutputPlan.frozen`, read back by :func:`thawed_plan`): the whole selection, base version and
object states included, so the commit can also re-baseline the bookmark's digest of older objects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from glueflow_dagster.core.bookmarks import (
    Bookmark,
    BookmarkPolicy,
    CommittedBookmark,
    Selection,
    select_objects,
    select_range,
)
from glueflow_dagster.core.config import JobConfig, Location
from glueflow_dagster.core.quarantine import list_stage_inputs
from glueflow_dagster.core.storage import ObjectInfo, Storage

Known = Callable[[Sequence[ObjectInfo]], set[str]]


def list_location(storage: Storage, location: Location, *, must_exist: bool) -> Iterator[ObjectInfo]:
    """What a job may read at a location: its exclusions applied, quarantined records never included.

    Staging is listed with must_exist=False: before the first Input run wrote anything there is
    simply nothing to read; a missing raw input location is an error.
    """
    return list_stage_inputs(storage, recurse=location.recurse, exclusions=location.exclusions, must_exist=must_exist)


def policy_for(job: JobConfig) -> BookmarkPolicy:
    return BookmarkPolicy(
        max_band_ms=job.max_band_ms,
        max_files_per_run=job.max_files_per_run,
        max_bytes_per_run=job.max_bytes_per_run,
        on_modified=job.on_modified,
        on_late=job.on_late,
    )


def plan_manifest(
    listing: Iterable[ObjectInfo],
    committed: Bookmark,
    *,
    option: str,
    policy: BookmarkPolicy,
    known: Known | None = None,
    pause_range: tuple[Bookmark, Bookmark] | None = None,
) -> Selection:
    """What a run reads: everything (disable), what the bookmark does not cover (enable, pause),
    or exactly the objects between two committed runs (pause with from_run/to_run)."""
    if option == "pause" and pause_range is not None:
        return select_range(listing, pause_range[0], pause_range[1], policy=policy)
    return select_objects(listing, committed, option=option, policy=policy, known=known)


@dataclass(frozen=True)
class OutputPlan:
    """What one Output run reads, planned from version ``base_version`` of context ``ctx``'s bookmark.

    ``selection`` is what the bookmark commits: a :class:`Selection`, or the bare manifest a run was
    given by hand (read as planned from the state committed when it runs).
    """

    ctx: str
    base_version: int | None
    selection: Selection | tuple[ObjectInfo, ...]

    @property
    def manifest(self) -> tuple[ObjectInfo, ...]:
        return self.selection.manifest if isinstance(self.selection, Selection) else self.selection

    @property
    def manifest_id(self) -> str:
        """The same objects planned from the same state always get the same id (hence the same names)."""
        return manifest_id(self.ctx, self.base_version, self.manifest)

    @property
    def states(self) -> dict[str, int]:
        """What the selection found, as run metadata."""
        selection = self.selection
        if not isinstance(selection, Selection):
            return {"new_files": len(selection)}
        return {
            "new_files": selection.new_files,
            "modified_files": selection.modified_files,
            "late_files": selection.late_files,
            "skipped_files": selection.skipped_files,
        }

    def frozen(self) -> str:
        """The selection serialized (the one frozen form of the manifest): see :func:`thawed_plan`."""
        if not isinstance(self.selection, Selection):
            raise TypeError("only a planned selection is frozen; a manifest given by hand is its own form")
        return json.dumps(self.selection.to_dict(), separators=(",", ":"))

    def frozen_request(self, option: str) -> dict[str, Any]:
        """The Output run's options that carry this plan (``output_run.OutputRequest``'s fields)."""
        return {
            "bookmark": option,
            "transformation_ctx": self.ctx,
            "manifest_id": self.manifest_id,
            "plan": self.frozen(),
        }


def plan_output(
    job: JobConfig,
    committed: CommittedBookmark,
    committed_staging: Iterable[ObjectInfo],
    *,
    option: str,
    known: Known | None,
    pause_range: tuple[Bookmark, Bookmark] | None = None,
) -> OutputPlan:
    """The Output run's selection over the committed view of staging, from the committed bookmark
    (Glue's ``--job-bookmark-option``: enable, disable, pause with an optional from/to range)."""
    selection = plan_manifest(
        committed_staging,
        committed.bookmark,
        option=option,
        policy=policy_for(job),
        known=known,
        pause_range=pause_range,
    )
    return OutputPlan(committed.ctx, committed.bookmark.version, selection)


def thawed_plan(ctx: str, frozen: str) -> OutputPlan:
    """A frozen plan back (:meth:`OutputPlan.frozen`), planned from the version it records."""
    selection = Selection.from_dict(json.loads(frozen))
    return OutputPlan(ctx, selection.base_version, selection)


def frozen_manifest(options: Mapping[str, Any]) -> tuple[ObjectInfo, ...]:
    """The manifest an Output run's options carry: the frozen plan's (:meth:`OutputPlan.frozen_request`), or
    a manifest given by hand (``{key, size, last_modified_ms, etag}`` rows)."""
    if options.get("plan") is not None:
        return Selection.from_dict(json.loads(options["plan"])).manifest
    return tuple(ObjectInfo(**row) for row in options.get("manifest") or ())


def manifest_to_json(manifest: Sequence[ObjectInfo]) -> list[list[Any]]:
    return [[o.key, o.size, o.last_modified_ms, o.etag] for o in manifest]


def manifest_from_json(rows: Sequence[Sequence[Any]]) -> tuple[ObjectInfo, ...]:
    return tuple(ObjectInfo(key=str(k), size=int(s), last_modified_ms=int(lm), etag=str(e)) for k, s, lm, e in rows)


def manifest_id(ctx: str, base_version: int | None, manifest: Sequence[ObjectInfo]) -> str:
    """The same objects planned from the same state always get the same id, hence the same output names."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{ctx}\0{base_version}\0".encode())
    for obj in manifest:
        digest.update(f"{obj.key}\0{obj.etag}\0{obj.last_modified_ms}\n".encode())
    return f"{ctx}-v{base_version}-{digest.hexdigest()}"

"""Manifests: the frozen list of objects one Output run reads, decided before it starts.

Plain Python (no Dagster import), shared by `F_output_sensor` (which freezes a manifest into the
run config it requests) and the `F/output` asset (which plans one itself when launched by hand).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from glueflow_dagster.core.bookmarks import Bookmark, BookmarkPolicy, Selection, select_objects, select_range
from glueflow_dagster.core.config import JobConfig, Location
from glueflow_dagster.core.quarantine import list_stage_inputs
from glueflow_dagster.core.storage import ObjectInfo, Storage


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
    known: Callable[[Sequence[ObjectInfo]], set[str]] | None = None,
    pause_range: tuple[Bookmark, Bookmark] | None = None,
) -> Selection:
    """What a run reads: everything (disable), what the bookmark does not cover (enable, pause),
    or exactly the objects between two committed runs (pause with from_run/to_run)."""
    if option == "pause" and pause_range is not None:
        return select_range(listing, pause_range[0], pause_range[1], policy=policy)
    return select_objects(listing, committed, option=option, policy=policy, known=known)


def manifest_to_json(manifest: Sequence[ObjectInfo]) -> list[list[Any]]:
    return [[o.key, o.size, o.last_modified_ms, o.etag] for o in manifest]


def manifest_from_json(rows: Sequence[Sequence[Any]]) -> tuple[ObjectInfo, ...]:
    return tuple(ObjectInfo(key=str(k), size=int(s), last_modified_ms=int(lm), etag=str(e)) for k, s, lm, e in rows)


def manifest_id(ctx: str, base_version: int, manifest: Sequence[ObjectInfo]) -> str:
    """The same objects planned from the same state always get the same id, hence the same output names."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{ctx}\0{base_version}\0".encode())
    for obj in manifest:
        digest.update(f"{obj.key}\0{obj.etag}\0{obj.last_modified_ms}\n".encode())
    return f"{ctx}-v{base_version}-{digest.hexdigest()}"

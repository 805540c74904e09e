"""Where committed bookmarks live: Dagster's event log, on the flow's `F/output` asset.

A successful `F/output` materialization made with `bookmark: enable` carries the state after its
commit (`bookmark` metadata), so the state advances in the same step as the materialization and
never for a failed run. Admin actions (reset, rewind, set-to-current) record an AssetObservation
with the same entries. `F_output_sensor` mirrors the newest state in its cursor; the event log is
the record it is rebuilt from, and the history that answers "which files did run X read?".
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from dagster import AssetObservation, AssetRecordsFilter, DagsterInstance

from glueflow_dagster.components.jobs import output_key, staging_key
from glueflow_dagster.core.bookmarks import (  # noqa: F401  (the commit log's keys, re-exported for readers)
    ACTION_KEY,
    CTX_KEY,
    MANIFEST_ID_KEY,
    MANIFEST_KEY,
    STATE_KEY,
    VERSION_KEY,
    Bookmark,
    CommittedBookmark,
    bookmark_metadata,
)
from glueflow_dagster.core.plan import manifest_from_json
from glueflow_dagster.core.storage import ObjectInfo

# Metadata keys (a contract: README).

COMMITTING_ACTIONS = ("commit", "reset", "rewind", "set-to-current")
_PAGE = 100


class BookmarkConflict(RuntimeError):
    """Another run or an admin action committed since this run's manifest was decided."""


def _bookmark_events(instance: DagsterInstance, flow: str, after_storage_id: int | None = None) -> Iterator[Any]:
    """Materializations and observations of `F/output`, newest first, merged by storage id."""

    def stream(fetch: Callable[..., Any]) -> Iterator[Any]:
        cursor = None
        records_filter = AssetRecordsFilter(asset_key=output_key(flow), after_storage_id=after_storage_id)
        while True:
            result = fetch(records_filter, limit=_PAGE, cursor=cursor)
            yield from result.records
            if not result.has_more:
                return
            cursor = result.cursor

    streams = [stream(instance.fetch_materializations), stream(instance.fetch_observations)]
    heads = [next(s, None) for s in streams]
    while any(h is not None for h in heads):
        index = max((i for i, h in enumerate(heads) if h is not None), key=lambda i: heads[i].storage_id)
        yield heads[index]
        heads[index] = next(streams[index], None)


def _metadata(record: Any) -> dict[str, Any]:
    event = record.asset_materialization or record.asset_observation
    return {name: entry.value for name, entry in event.metadata.items()} if event is not None else {}


def committed_bookmark(
    instance: DagsterInstance, flow: str, ctx: str, *, newer_than: CommittedBookmark | None = None
) -> CommittedBookmark:
    """The newest committed state for (flow, ctx); with `newer_than`, only events after it are read."""
    after = newer_than.storage_id if newer_than is not None else None
    for record in _bookmark_events(instance, flow, after_storage_id=after):
        metadata = _metadata(record)
        if metadata.get(CTX_KEY) == ctx and metadata.get(ACTION_KEY) in COMMITTING_ACTIONS:
            return CommittedBookmark(
                ctx=ctx,
                bookmark=Bookmark.from_dict(metadata.get(STATE_KEY)),
                storage_id=record.storage_id,
                run_id=record.run_id or None,
                action=str(metadata[ACTION_KEY]),
            )
    return newer_than if newer_than is not None else CommittedBookmark(ctx=ctx, bookmark=Bookmark())


def state_after_run(instance: DagsterInstance, flow: str, ctx: str, run_id: str) -> Bookmark:
    """The state that run `run_id` committed (for rewind and for pause's from/to range)."""
    for record in _bookmark_events(instance, flow):
        metadata = _metadata(record)
        if record.run_id == run_id and metadata.get(CTX_KEY) == ctx and metadata.get(ACTION_KEY) == "commit":
            return Bookmark.from_dict(metadata.get(STATE_KEY))
    raise ValueError(f"run {shown_run_id(run_id)} committed no bookmark for flow {flow!r}, context {ctx!r}")


def shown_run_id(run_id: str) -> str:
    """A run id as a message quotes it: a typed one may be anything, so a long one is cut."""
    return run_id if len(run_id) <= 60 else f"{run_id[:60]}... ({len(run_id):,} characters)"


def committed_manifests(instance: DagsterInstance, flow: str, ctx: str) -> Iterator[tuple[str, list[ObjectInfo]]]:
    """(run id, objects read) of every committed run of (flow, ctx), newest first."""
    for record in _bookmark_events(instance, flow):
        metadata = _metadata(record)
        if metadata.get(CTX_KEY) == ctx and metadata.get(ACTION_KEY) == "commit":
            yield record.run_id, list(manifest_from_json(metadata.get(MANIFEST_KEY) or []))


def known_objects(instance: DagsterInstance, flow: str, ctx: str) -> Callable[[Sequence[ObjectInfo]], set[str]]:
    """The history lookup the bookmark core uses for late-file candidates: which were read already."""
    return _known_in(lambda: (manifest for _run_id, manifest in committed_manifests(instance, flow, ctx)))


def input_known_objects(instance: DagsterInstance, flow: str) -> Callable[[Sequence[ObjectInfo]], set[str]]:
    """The same history lookup for the Input job: the raw objects its committed runs read (on `F/staging`)."""

    def manifests() -> Iterator[list[ObjectInfo]]:
        cursor = None
        while True:
            result = instance.fetch_materializations(staging_key(flow), limit=_PAGE, cursor=cursor)
            for record in result.records:
                yield list(manifest_from_json(_metadata(record).get(MANIFEST_KEY) or []))
            if not result.has_more:
                return
            cursor = result.cursor

    return _known_in(manifests)


def _known_in(manifests: Callable[[], Iterator[list[ObjectInfo]]]) -> Callable[[Sequence[ObjectInfo]], set[str]]:
    """Which candidates (same key and etag) some committed manifest lists, newest commits first."""

    def known(candidates: Sequence[ObjectInfo]) -> set[str]:
        wanted = {(o.key, o.etag) for o in candidates}
        found: set[str] = set()
        for manifest in manifests():
            found |= {o.key for o in manifest if (o.key, o.etag) in wanted}
            if len(found) == len(wanted):
                break
        return found

    return known


def record_admin_action(
    instance: DagsterInstance, flow: str, current: CommittedBookmark, action: str, state: Bookmark, note: str
) -> Bookmark:
    """Commit an admin action's state as an observation on `F/output`; the version always moves on."""
    new_state = replace(state, version=current.bookmark.version + 1)
    metadata = {**bookmark_metadata(current.ctx, action, new_state), "note": note}
    instance.report_runless_asset_event(AssetObservation(asset_key=output_key(flow), metadata=metadata))
    return new_state

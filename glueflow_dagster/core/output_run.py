"""The Output job's run, start to commit: plan -> stage -> account -> commit.

1. **Plan**: the manifest is the sensor's frozen plan, a manifest given by hand, or planned here from the
   committed view of staging and the committed bookmark (Glue's `--job-bookmark-option`: enable,
   disable, pause with an optional from/to range).
2. **Stage**: map the manifest into pending parts (nothing visible yet).
3. **Account**: the stage's figures, the guide's flow figures over the committed view of staging
   (`flow_ratio` over the run's Input window, reprocessed bytes, backlog, lag) and the checks' verdicts.
4. **Commit**: with bookmarks enabled, the fence (the bookmark is still the version this run planned
   from), then `publish` makes the parts data; the caller records the returned metadata (the commit
   record, the new bookmark) as the materialization, which is the commit log's entry.

Anything that fails before the publish discards this attempt's pending objects, and nothing else.
What the run reads from the commit log comes through `OutputLog` (Dagster's event log in the shell).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from glueflow_dagster.core.bookmarks import (
    ACTION_KEY,
    CTX_KEY,
    MANIFEST_ID_KEY,
    MANIFEST_KEY,
    Bookmark,
    CommittedBookmark,
    bookmark_metadata,
    commit,
)
from glueflow_dagster.core.checks import BACKLOG_RUNS, Verdict, evaluate
from glueflow_dagster.core.claims import ClaimTable, prune_superseded_claims
from glueflow_dagster.core.commits import Attempt, CommittedParts, aborted_on_failure, later_reads, publish
from glueflow_dagster.core.config import BOOKMARK_OPTIONS, FlowConfig
from glueflow_dagster.core.job_run import (
    ROW_COUNT_KEY,
    SUMMARY_KEY,
    Log,
    RunOutcome,
    RunRefused,
    Stage,
    claim_or_refuse,
    commit_figures,
    garbage_collection,
    location_figures,
    stage_figures,
    stage_request,
    summary_markdown,
)
from glueflow_dagster.core.plan import (
    OutputPlan,
    list_location,
    manifest_to_json,
    plan_output,
    policy_for,
    thawed_plan,
)
from glueflow_dagster.core.stage import StageResult
from glueflow_dagster.core.storage import ObjectInfo, Storage

if TYPE_CHECKING:
    from glueflow_dagster.core.iceberg_commit import IcebergOutput


@dataclass(frozen=True)
class OutputRequest:
    """Per-run options of the Output job (Glue's job arguments); None means the flow file's values."""

    bookmark: str | None = None
    transformation_ctx: str | None = None
    from_run: str | None = None
    to_run: str | None = None
    manifest: tuple[ObjectInfo, ...] | None = None  # given by hand: read as planned from the state committed now
    manifest_id: str | None = None
    plan: str | None = None  # frozen by the sensor: the whole selection (JSON)


class OutputLog(Protocol):
    """The Output job's view of the commit log: the bookmark's events on `F/output`, the commits on
    `F/staging` and `F/output`, and the flow's history for its figures."""

    def committed_bookmark(self, ctx: str, newer_than: CommittedBookmark | None = None) -> CommittedBookmark: ...

    def state_after_run(self, ctx: str, run_id: str) -> Bookmark: ...

    def known_objects(self, ctx: str) -> Callable[[Sequence[ObjectInfo]], set[str]]: ...

    def committed_staging_parts(self) -> CommittedParts: ...

    def committed_output_parts(self) -> CommittedParts: ...

    def flow_figures(self, result: StageResult, staging_after: list[ObjectInfo]) -> dict[str, Any]:
        """The guide's figures for this run (its window's `flow_ratio`, reprocessing, backlog, lag)."""
        ...

    def earlier_backlogs(self, count: int) -> list[int]: ...

    def settled(self, attempt: Attempt) -> bool:
        """Whether that attempt has ended (its run finished, failed or was canceled)."""
        ...


def same_state(a: Bookmark, b: Bookmark) -> bool:
    """Whether two bookmarks record the same objects read (whatever their version and run number)."""
    return replace(a, run_number=0, version=0) == replace(b, run_number=0, version=0)


def ctx_token(ctx: str) -> str:
    """A transformation_ctx as a short, name-safe token (claims are object names)."""
    return hashlib.blake2b(ctx.encode(), digest_size=6).hexdigest()


def conflict_message(ctx: str, expected: int, found: CommittedBookmark) -> str:
    return (
        f"bookmark conflict for context {ctx!r}: this run's manifest was planned from version {expected}, "
        f"but version {found.bookmark.version} was committed since ({found.action} by run {found.run_id}); "
        f"nothing was committed, {later_reads(found.action or '')}"
    )


def _plan(
    flow: FlowConfig,
    log: OutputLog,
    request: OutputRequest,
    option: str,
    committed: CommittedBookmark,
    committed_staging: Callable[[], list[ObjectInfo]],
) -> OutputPlan:
    """The sensor's frozen plan, a manifest given by hand, or planned here as the sensor plans."""
    if request.plan is not None:
        return thawed_plan(committed.ctx, request.plan)
    if request.manifest is not None:
        return OutputPlan(committed.ctx, committed.bookmark.version, tuple(request.manifest))
    pause_range = None
    if option == "pause" and (request.from_run or request.to_run):
        if not (request.from_run and request.to_run):
            raise RunRefused("pause with a range needs both from_run and to_run (Glue's --job-bookmark-from/-to)")
        ctx = committed.ctx
        pause_range = (log.state_after_run(ctx, request.from_run), log.state_after_run(ctx, request.to_run))
    return plan_output(
        flow.output_job,
        committed,
        committed_staging(),
        option=option,
        known=log.known_objects(committed.ctx),
        pause_range=pause_range,
    )


def run_output(
    flow: FlowConfig,
    log: OutputLog,
    source: Storage,
    target: Storage,
    attempt: Attempt,
    request: OutputRequest,
    stage: Stage,
    *,
    job_name: str,
    now_ms: int,
    info: Log,
    claims: ClaimTable | None = None,
) -> RunOutcome:
    job = flow.output_job
    option = request.bookmark or job.bookmark
    if option not in BOOKMARK_OPTIONS:
        raise RunRefused(f"run config bookmark: expected one of {', '.join(BOOKMARK_OPTIONS)}, got {option!r}")
    ctx = request.transformation_ctx or job.transformation_ctx
    policy = policy_for(job)
    # An Iceberg output: the table is opened (created, evolved) before anything is written, and garbage
    # collection keeps every data file a snapshot references (see core.iceberg_commit).
    iceberg = _iceberg_output(flow, target)
    parts = log.committed_output_parts()
    garbage = garbage_collection(
        target,
        iceberg.guarded(parts) if iceberg else parts,
        now_ms=now_ms,
        grace_s=flow.output.orphan_grace_s,
        log=info,
        settled=log.settled,
        attempt=attempt,
    )
    staged = log.committed_staging_parts()

    def committed_staging() -> list[ObjectInfo]:
        return list(staged.visible(list_location(source, flow.staging, must_exist=False), None))

    committed = log.committed_bookmark(ctx)
    if committed.fresh and option != "disable":
        info(f"no committed bookmark for context {ctx!r}: starting fresh")
    plan = _plan(flow, log, request, option, committed, committed_staging)
    frozen = request.plan is not None or request.manifest is not None
    if frozen and option == "enable" and plan.base_version != committed.bookmark.version:
        raise RunRefused(conflict_message(ctx, plan.base_version, committed))
    planned_id = request.manifest_id or plan.manifest_id
    reads, writes = (source, flow.staging), (target, flow.output)
    request_ = stage_request(job, plan.manifest, attempt, reads=reads, writes=writes)
    result = stage(iceberg.staged(request_) if iceberg else request_)
    with aborted_on_failure(target, result.pending, info):
        metadata: dict[str, Any] = {**stage_figures(result), **plan.states}
        metadata |= log.flow_figures(result, committed_staging())
        metadata |= {
            "bookmark_option": option,
            CTX_KEY: ctx,
            MANIFEST_ID_KEY: planned_id,
            MANIFEST_KEY: manifest_to_json(plan.manifest),
            "bookmark_started_fresh": committed.fresh,
        }
        after = commit(committed.bookmark, plan.selection, policy=policy) if option == "enable" else None
        # A run that read nothing (a UI Materialize after the sensor's run) leaves the bookmark where it was,
        # its version too: moving it would only fail the fence of a run the sensor planned meanwhile.
        if after is not None and not same_state(after, committed.bookmark):
            # One run commits after each version (the claim), and only if the bookmark is still the
            # version this run planned from (the fence).
            fence = f"output-{ctx_token(ctx)}-v{plan.base_version}"
            claim_or_refuse(target, fence, attempt, log.settled, claims=claims, log=info)
            latest = log.committed_bookmark(ctx, newer_than=committed)
            if latest.storage_id != committed.storage_id:
                raise RunRefused(conflict_message(ctx, plan.base_version, latest))
            prune_superseded_claims(target, fence, claims, info)  # the fence passed: older versions' rows go
            metadata |= bookmark_metadata(ctx, "commit", after)
        if iceberg is None:
            record = publish(target, attempt, job_name, result.pending, result.records_written)
        else:  # one Iceberg append per bookmark version, or the adoption of the snapshot holding it
            consumed = after is not None and ACTION_KEY in metadata  # the bookmark moves: one append per version
            version = f"{ctx}/v{plan.base_version}" if consumed else f"{ctx}/{attempt.part_prefix}"
            record, table_figures = iceberg.commit(target, attempt, job_name, result, metadata, version)
            metadata |= table_figures
    metadata |= commit_figures(result, record, garbage)
    metadata[SUMMARY_KEY] = summary_markdown(f"{flow.name} Output run", metadata)
    verdicts: tuple[Verdict, ...] = tuple(
        evaluate(metadata, log.earlier_backlogs(BACKLOG_RUNS - 1), job.flow_ratio_band)
    )
    metadata |= location_figures(flow.output.uri, result.records_written)
    if iceberg is not None:
        metadata |= iceberg.location_figures() | {ROW_COUNT_KEY: metadata["iceberg_added_records"]}
    return RunOutcome(metadata, verdicts)


def _iceberg_output(flow: FlowConfig, target: Storage) -> IcebergOutput | None:
    """The flow's Iceberg table (pyiceberg is imported only by flows that write one)."""
    if flow.output.format != "iceberg":
        return None
    from glueflow_dagster.core.iceberg_commit import open_output

    return open_output(flow, target)

"""Bookmark controls shared by `glueflow bookmark ...` and the `F_bookmark_admin_job` Dagster job.

show, reset, rewind to an earlier run, set-to-current (mark all of staging as read without running),
each with a dry run that lists what the next Output run would read and changes nothing.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import Any

from dagster import Config, DagsterInstance, Failure, JobDefinition, OpExecutionContext, job, op
from pydantic import Field as PydanticField

from glueflow_dagster.components.bookmark_store import (
    CommittedBookmark,
    committed_bookmark,
    known_objects,
    record_admin_action,
    shown_run_id,
    state_after_run,
)
from glueflow_dagster.components.claims import InstanceClaims
from glueflow_dagster.components.commit_log import committed_staging
from glueflow_dagster.components.event_log import attempt_settled
from glueflow_dagster.components.jobs import FLOW_TAG, bookmark_admin_job_name
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core.bookmarks import Bookmark, BookmarkPolicy, commit
from glueflow_dagster.core.claims import take_claim
from glueflow_dagster.core.commits import ClaimLost, admin_attempt
from glueflow_dagster.core.config import FlowConfig
from glueflow_dagster.core.output_run import ctx_token
from glueflow_dagster.core.plan import plan_manifest, policy_for
from glueflow_dagster.core.storage import ObjectInfo, Storage

ACTIONS = ("show", "reset", "rewind", "set-to-current")
_LISTED = 20
#: How long an admin action waits for a run that holds the commit claim before it gives up.
CLAIM_WAIT_S = 60.0
#: How long an admin action's claim holds at most (it needs milliseconds; a dead process frees it by then).
ADMIN_LEASE_S = 30
_CLAIM_POLL_S = 0.5


class BookmarkAdminError(ValueError):
    """An admin request that cannot be carried out (unknown run, missing --to-run)."""


@dataclass(frozen=True)
class AdminReport:
    """What an action did (or, dry, would do) and what the next Output run reads afterwards."""

    flow: str
    ctx: str
    action: str
    dry_run: bool
    before: CommittedBookmark
    after: Bookmark
    next_manifest: tuple[ObjectInfo, ...] = dataclass_field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return self.action != "show" and not self.dry_run

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "transformation_ctx": self.ctx,
            "action": self.action,
            "dry_run": self.dry_run,
            "changed": self.changed,
            "before": _describe(self.before.bookmark)
            | {"last_action": self.before.action, "run_id": self.before.run_id},
            "after": _describe(self.after),
            "next_run_reads": {
                "files": len(self.next_manifest),
                "bytes": sum(o.size for o in self.next_manifest),
                "keys": [o.key for o in self.next_manifest],
            },
        }

    def lines(self) -> list[str]:
        verb = {"show": "bookmark", "reset": "reset", "rewind": "rewound", "set-to-current": "set to current"}
        state = _describe(self.after)
        head = "dry run, nothing changed: " if self.dry_run and self.action != "show" else ""
        out = [
            f"{head}{self.flow} / {self.ctx}: {verb[self.action]} -> version {state['version']}, "
            f"run number {state['run_number']}, watermark {state['watermark'] or 'none'}, "
            f"{state['band_files']} objects in the band",
            f"next Output run reads {len(self.next_manifest)} objects "
            f"({sum(o.size for o in self.next_manifest):,} bytes)",
        ]
        out += [f"  {o.key}  {o.size:,} bytes" for o in self.next_manifest[:_LISTED]]
        if len(self.next_manifest) > _LISTED:
            out.append(f"  ... and {len(self.next_manifest) - _LISTED} more")
        return out


def _describe(bookmark: Bookmark) -> dict[str, Any]:
    watermark = (
        datetime.fromtimestamp(bookmark.watermark_ms / 1000, tz=UTC).isoformat()
        if bookmark.watermark_ms is not None
        else None
    )
    return {
        "version": bookmark.version,
        "run_number": bookmark.run_number,
        "watermark": watermark,
        "band_files": len(bookmark.band),
    }


def run_admin_action(
    instance: DagsterInstance,
    flow: FlowConfig,
    staging: Storage,
    action: str,
    *,
    ctx: str | None = None,
    to_run: str | None = None,
    dry_run: bool = False,
    output: Storage | None = None,
) -> AdminReport:
    """Carry out (or with dry_run, preview) one bookmark action for a flow's Output job.

    A change takes the commit claim in the flow's output location (``output``; by default opened from the
    flow file) and passes the fence exactly as an Output run's commit does (:func:`_record_claimed`).
    """
    if action not in ACTIONS:
        raise BookmarkAdminError(f"unknown action {action!r} (expected one of {', '.join(ACTIONS)})")
    job = flow.output_job
    ctx = ctx or job.transformation_ctx
    if action == "rewind" and not to_run:
        raise BookmarkAdminError("rewind needs --to-run RUN_ID (a successful Output run of this context)")
    policy = policy_for(job)
    known = known_objects(instance, flow.name, ctx)

    def listing() -> list[ObjectInfo]:
        return list(committed_staging(instance, flow, staging))

    def state_after(current: CommittedBookmark) -> Bookmark:
        if action == "show":
            return current.bookmark
        if action == "reset":
            return Bookmark()
        if action == "rewind":
            try:
                return state_after_run(instance, flow.name, ctx, to_run or "")
            except ValueError as err:
                raise BookmarkAdminError(str(err)) from err
        # set-to-current: everything in staging now counts as read, without running
        everything = plan_manifest(listing(), current.bookmark, option="enable", policy=_uncapped(policy), known=known)
        return commit(current.bookmark, everything, policy=policy)

    if action == "show" or dry_run:
        current = committed_bookmark(instance, flow.name, ctx)
        after = state_after(current)
    else:
        target = output if output is not None else StorageResource().open(flow.output.uri)
        current, after = _record_claimed(instance, flow, ctx, action, target, state_after, to_run)
    option = "enable" if job.bookmark == "disable" else job.bookmark
    preview = plan_manifest(listing(), after, option=option, policy=policy, known=known)
    return AdminReport(flow.name, ctx, action, dry_run, current, after, preview.manifest)


def _record_claimed(
    instance: DagsterInstance,
    flow: FlowConfig,
    ctx: str,
    action: str,
    output: Storage,
    state_after: Callable[[CommittedBookmark], Bookmark],
    to_run: str | None,
) -> tuple[CommittedBookmark, Bookmark]:
    """Record an admin action under the commit claim and fence the Output runs take.

    Why: an action recorded while a run was between its fence and its commit was silently replaced by the
    run's commit (the run's version came after it). Like a run, the action claims the one right to commit
    after the version it read (``claims/output-<ctx>-v<version>`` in the output location), then checks that
    the bookmark is still that version, then records its event. A run holding the claim is waited for up
    to :data:`CLAIM_WAIT_S`, then the action fails with one line naming the run and changes nothing; when
    the bookmark has moved on (the run committed), the action is worked out again on the new state. A run
    that finds the action's claim is refused (its lease: :func:`glueflow_dagster.core.commits.admin_lease`).
    """
    deadline = time.monotonic() + CLAIM_WAIT_S
    note = f"{action} by glueflow" + (f" to run {to_run}" if to_run else "")
    while True:
        current = committed_bookmark(instance, flow.name, ctx)
        after = state_after(current)
        attempt = admin_attempt(action, int(time.time() * 1000) + ADMIN_LEASE_S * 1000)
        fence = f"output-{ctx_token(ctx)}-v{current.bookmark.version}"
        try:
            take_claim(
                output,
                fence,
                attempt,
                settled=lambda holder: attempt_settled(instance, holder),
                table=InstanceClaims(instance),
            )
        except ClaimLost as err:
            moved = committed_bookmark(instance, flow.name, ctx, newer_than=current).storage_id != current.storage_id
            if moved:
                continue  # the holder committed: work the action out again on its state
            if time.monotonic() < deadline:
                time.sleep(_CLAIM_POLL_S)
                continue
            holder = f"run {shown_run_id(err.holder.run_id)}" if err.holder is not None else "another run"
            raise BookmarkAdminError(
                f"bookmark {action} refused: {holder} is committing to flow {flow.name!r} (context {ctx!r}); "
                "nothing was changed, try again when it has finished"
            ) from None
        if committed_bookmark(instance, flow.name, ctx, newer_than=current).storage_id != current.storage_id:
            continue  # committed between our read and our claim: the fence, as for a run
        return current, record_admin_action(instance, flow.name, current, action, after, note)


def _uncapped(policy: BookmarkPolicy) -> BookmarkPolicy:
    # Late objects held back by on_late=report are marked read too: set-to-current means "all of it".
    return replace(policy, max_files_per_run=None, max_bytes_per_run=None, on_late="process")


class BookmarkAdminConfig(Config):
    """Launchpad config of `F_bookmark_admin_job`: the same controls as `glueflow bookmark`."""

    action: str = PydanticField("show", description="show | reset | rewind | set-to-current")
    to_run: str | None = PydanticField(None, description="rewind: the successful Output run to go back to")
    transformation_ctx: str | None = PydanticField(None, description="default: the flow file's output_job context")
    dry_run: bool = PydanticField(True, description="list what the next Output run would read; change nothing")


def build_bookmark_admin_job(flow: FlowConfig) -> JobDefinition:
    """Bookmark controls from the Dagster UI (and so on Dagster Cloud), with dry_run on by default."""

    @op(name=f"{flow.name}_bookmark_admin")
    def bookmark_admin(context: OpExecutionContext, config: BookmarkAdminConfig, storage: StorageResource) -> None:
        try:
            report = run_admin_action(
                context.instance,
                flow,
                storage.open(flow.staging.uri),
                config.action,
                ctx=config.transformation_ctx,
                to_run=config.to_run,
                dry_run=config.dry_run,
            )
        except BookmarkAdminError as err:
            raise Failure(str(err)) from err
        for line in report.lines():
            context.log.info(line)

    @job(
        name=bookmark_admin_job_name(flow.name),
        tags={FLOW_TAG: flow.name},
        description=("Show, reset, rewind or set-to-current the Output job's bookmark (dry_run by default)."),
    )
    def bookmark_admin_job() -> None:
        bookmark_admin()

    return bookmark_admin_job

"""`F_output_sensor`: one Output run after each successful Input run, never two Output runs at once.

A plain cursor sensor rather than a run-status sensor: run-status sensors skip runs that finished
before their first tick, and Glue's conditional trigger must not lose an Input success while the
sensor was off.
"""

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from glueflow_dagster.components.bookmark_store import CommittedBookmark, committed_bookmark, known_objects
from glueflow_dagster.components.commit_log import committed_staging
from glueflow_dagster.components.jobs import (
    INPUT_RUN_TAG,
    MANIFEST_TAG,
    input_job_name,
    output_job_name,
    output_key,
    output_sensor_name,
)
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core.bookmarks import Bookmark
from glueflow_dagster.core.config import FlowConfig
from glueflow_dagster.core.plan import plan_output

if TYPE_CHECKING:  # not exported by dagster's public API
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# Runs that hold the Output job's single concurrency slot (Glue's max concurrency 1).
IN_FLIGHT_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
SENSOR_INTERVAL_S = 30


@dataclass(frozen=True)
class FollowCursor:
    """The last Input run (by end time, then run id) whose Output run has been requested."""

    end_time: float = 0.0
    run_id: str = ""

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"input_end_time": self.end_time, "input_run_id": self.run_id}

    @classmethod
    def from_json(cls, text: str | None) -> "FollowCursor":
        return cls.from_dict(json.loads(text) if text else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FollowCursor":
        return cls(float(data.get("input_end_time", 0.0)), str(data.get("input_run_id", "")))


@dataclass(frozen=True)
class PendingRun:
    """The Output run requested last, with its frozen manifest; cleared once it succeeded."""

    manifest_id: str
    input_run_id: str
    base_version: int
    attempt: int = 1


@dataclass(frozen=True)
class SensorCursor:
    """The sensor's whole cursor: whom it follows, the pending manifest and the committed bookmark."""

    follow: FollowCursor = FollowCursor()
    pending: PendingRun | None = None
    bookmark: CommittedBookmark | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = self.follow.to_dict()
        if self.pending is not None:
            data["pending"] = asdict(self.pending)
        if self.bookmark is not None:
            data["bookmark"] = {
                "ctx": self.bookmark.ctx,
                "storage_id": self.bookmark.storage_id,
                "run_id": self.bookmark.run_id,
                "action": self.bookmark.action,
                "state": self.bookmark.bookmark.to_dict(),
            }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> "SensorCursor":
        data = json.loads(text) if text else {}
        pending = PendingRun(**data["pending"]) if data.get("pending") else None
        mirror = data.get("bookmark")
        bookmark = (
            CommittedBookmark(
                ctx=mirror["ctx"],
                bookmark=Bookmark.from_dict(mirror["state"]),
                storage_id=mirror["storage_id"],
                run_id=mirror["run_id"],
                action=mirror["action"],
            )
            if mirror
            else None
        )
        return cls(FollowCursor.from_dict(data), pending, bookmark)


# A run created but never submitted (its launch failed, or the process that launched it died first) stays
# NOT_STARTED for ever: run monitoring only times out STARTING runs. Past this age it no longer holds the
# slot; should it start after all, the commit fence keeps the flow exactly once.
NOT_STARTED_TIMEOUT_S = 600


def in_flight_run_id(
    instance: DagsterInstance, flow: str, *, not_started_timeout_s: float = NOT_STARTED_TIMEOUT_S
) -> str | None:
    """The Output run that holds the flow's slot, if any: queued or running, or created recently."""
    records = instance.get_run_records(RunsFilter(job_name=output_job_name(flow), statuses=IN_FLIGHT_STATUSES))
    now = datetime.now(tz=UTC)
    for record in records:
        age_s = (now - record.create_timestamp.replace(tzinfo=record.create_timestamp.tzinfo or UTC)).total_seconds()
        if record.dagster_run.status != DagsterRunStatus.NOT_STARTED or age_s < not_started_timeout_s:
            return record.dagster_run.run_id
    return None


def unfollowed_input_runs(instance: DagsterInstance, flow: str, cursor: FollowCursor) -> list[tuple[float, str]]:
    """Successful Input runs after the cursor, oldest first, as (end time, run id)."""
    # A run's update timestamp is at or after its end, so this bounds the query without missing any.
    since = datetime.fromtimestamp(max(cursor.end_time - 1.0, 0.0), tz=UTC)
    records = instance.get_run_records(
        RunsFilter(job_name=input_job_name(flow), statuses=[DagsterRunStatus.SUCCESS], updated_after=since)
    )
    runs = sorted((r.end_time or 0.0, r.dagster_run.run_id) for r in records)
    return [run for run in runs if run > (cursor.end_time, cursor.run_id)]


def already_followed(instance: DagsterInstance, flow: str, input_run_id: str) -> bool:
    """An Output run for this Input run exists (launched by an earlier tick, or by `glueflow demo`)."""
    records = instance.get_run_records(
        RunsFilter(job_name=output_job_name(flow), tags={INPUT_RUN_TAG: input_run_id}), limit=1
    )
    return bool(records)


def _request_for(
    flow: FlowConfig,
    storage: StorageResource,
    instance: DagsterInstance,
    committed: CommittedBookmark,
    input_run_id: str,
    run_key: str | None = None,
) -> tuple[RunRequest, PendingRun | None]:
    """The Output run following `input_run_id`; with bookmarks, its plan (`core.plan.plan_output`, as the run
    itself would plan) is frozen into the run config."""
    tags = {INPUT_RUN_TAG: input_run_id}
    job = flow.output_job
    run_key = run_key or input_run_id
    if job.bookmark == "disable":
        return RunRequest(run_key=run_key, tags=tags), None
    source = storage.open(flow.staging.uri)
    plan = plan_output(
        job,
        committed,
        committed_staging(instance, flow, source),
        option=job.bookmark,
        known=known_objects(instance, flow.name, job.transformation_ctx),
    )
    op = output_key(flow.name).to_python_identifier()
    request = RunRequest(
        run_key=run_key,
        run_config={"ops": {op: {"config": plan.frozen_request(job.bookmark)}}},
        tags={**tags, MANIFEST_TAG: plan.manifest_id},
    )
    return request, PendingRun(plan.manifest_id, input_run_id, plan.base_version)


def _retry_request(instance: DagsterInstance, flow: str, pending: PendingRun) -> tuple[str, RunRequest | None]:
    """What became of the pending manifest's latest run: 'done', 'in flight', or a request to run it again."""
    records = instance.get_run_records(
        RunsFilter(job_name=output_job_name(flow), tags={MANIFEST_TAG: pending.manifest_id}), limit=1
    )
    if not records:
        return "lost", None  # never launched: plan afresh, nothing was committed
    run = records[0].dagster_run
    if run.status == DagsterRunStatus.SUCCESS:
        return "done", None
    if run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
        request = RunRequest(
            run_key=f"{pending.input_run_id}:attempt-{pending.attempt + 1}",
            run_config=run.run_config,
            tags={INPUT_RUN_TAG: pending.input_run_id, MANIFEST_TAG: pending.manifest_id},
        )
        return f"{run.status.value.lower()} run {run.run_id}", request
    return "in flight", None


def build_output_sensor(flow: FlowConfig, output_job: "UnresolvedAssetJobDefinition") -> SensorDefinition:
    name, job = flow.name, flow.output_job

    @sensor(
        name=output_sensor_name(name),
        job=output_job,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Starts {output_job_name(name)} after each successful {input_job_name(name)} run, one at a time; "
            "with bookmarks, each run gets a frozen manifest and a failed run's manifest is run again."
        ),
    )
    def output_sensor(context: SensorEvaluationContext, storage: StorageResource) -> SensorResult | SkipReason:
        instance = context.instance
        busy = in_flight_run_id(instance, name)
        if busy:
            return SkipReason(f"{output_job_name(name)} run {busy} is queued or running (max concurrency 1)")
        state = SensorCursor.from_json(context.cursor)
        committed = None
        if job.bookmark != "disable":
            mirror = state.bookmark if state.bookmark and state.bookmark.ctx == job.transformation_ctx else None
            committed = committed_bookmark(instance, name, job.transformation_ctx, newer_than=mirror)
            state = replace(state, bookmark=committed)
        if state.pending is not None:
            pending = state.pending
            outcome, retry = _retry_request(instance, name, pending)
            stale = committed is not None and committed.bookmark.version != pending.base_version
            exhausted = pending.attempt >= job.max_manifest_attempts
            if retry is not None and not exhausted and not (stale and job.bookmark == "enable"):
                context.log.info(f"manifest {pending.manifest_id}: {outcome}; requesting it again")
                pending = replace(pending, attempt=pending.attempt + 1)
                return SensorResult(run_requests=[retry], cursor=replace(state, pending=pending).to_json())
            if retry is not None:
                # Recovery, not a retry loop: a manifest that cannot succeed is planned afresh from the
                # committed bookmark and the committed staging, for the same Input run.
                why = (
                    f"failed {pending.attempt} times (output_job.max_manifest_attempts={job.max_manifest_attempts})"
                    if exhausted
                    else f"planned from bookmark version {pending.base_version}, now at {committed.bookmark.version}"
                )
                request, replanned = _request_for(
                    flow,
                    storage,
                    instance,
                    committed or CommittedBookmark(ctx=job.transformation_ctx, bookmark=Bookmark()),
                    pending.input_run_id,
                    run_key=f"{pending.input_run_id}:replan-{pending.manifest_id}",
                )
                context.log.info(f"manifest {pending.manifest_id}: {outcome}, {why}; planned afresh")
                return SensorResult(run_requests=[request], cursor=replace(state, pending=replanned).to_json())
            state = replace(state, pending=None)
        follow = state.follow
        for end_time, run_id in unfollowed_input_runs(instance, name, follow):
            follow = FollowCursor(end_time, run_id)
            if already_followed(instance, name, run_id):
                continue
            request, pending = _request_for(
                flow,
                storage,
                instance,
                committed or CommittedBookmark(ctx=job.transformation_ctx, bookmark=Bookmark()),
                run_id,
            )
            return SensorResult(run_requests=[request], cursor=replace(state, follow=follow, pending=pending).to_json())
        return SensorResult(
            skip_reason=f"no successful {input_job_name(name)} run without an Output run",
            cursor=replace(state, follow=follow).to_json(),
        )

    return output_sensor

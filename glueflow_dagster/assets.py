# No `from __future__ import annotations`: Dagster reads the context and resource annotations at runtime.
"""Each flow's software-defined assets: `F/raw_input` -> `F/staging` -> `F/output`.

Thin adapters: selection lives in bookmarks.py, the data path in stage.py, the ratio in flow_ratio.py.
"""

import json
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetSpec,
    AutomationCondition,
    BetaWarning,
    CodeReferencesMetadataValue,
    Config,
    Failure,
    LocalFileCodeReference,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
    asset,
)
from pydantic import Field as PydanticField

from glueflow_dagster.bookmark_store import (
    CTX_KEY,
    MANIFEST_ID_KEY,
    MANIFEST_KEY,
    CommittedBookmark,
    bookmark_metadata,
    committed_bookmark,
    input_known_objects,
    known_objects,
    state_after_run,
)
from glueflow_dagster.bookmarks import Bookmark, Selection, commit, select_objects
from glueflow_dagster.checks import (
    BACKLOG_NOT_GROWING,
    BACKLOG_RUNS,
    FLOW_RATIO_IN_BAND,
    NO_RECORDS_LOST,
    NO_REPROCESSING,
    NO_VANISHED_OBJECTS,
    Verdict,
    evaluate,
)
from glueflow_dagster.commit_log import (
    commit_metadata,
    committed_parts,
    committed_staging,
    latest_commit,
    latest_commit_id,
)
from glueflow_dagster.commits import (
    Attempt,
    CommitRecord,
    CommittedParts,
    GarbageReport,
    abort,
    collect_garbage,
    publish,
)
from glueflow_dagster.config import BOOKMARK_OPTIONS, FlowConfig, JobConfig, Location
from glueflow_dagster.jobs import (
    INPUT_RUN_TAG,
    flow_report_key,
    input_job_name,
    output_job_name,
    output_key,
    pool_name,
    raw_input_key,
    staging_key,
)
from glueflow_dagster.lineage import RAW_INPUT, STAGING, Column, Lineage, flow_columns, flow_line
from glueflow_dagster.manifests import list_location, manifest_id, manifest_to_json, plan_manifest, policy_for
from glueflow_dagster.monitoring import (
    RunClock,
    current_flow_report,
    earlier_backlogs,
    output_flow_figures,
)
from glueflow_dagster.quarantine import QUARANTINE_DIR
from glueflow_dagster.report import location_uri, report_metadata
from glueflow_dagster.resources import StorageResource
from glueflow_dagster.stage import StageError, StageResult, run_stage
from glueflow_dagster.storage import ObjectInfo, PendingObject, Storage, StorageError

# The Input job's own bookmark rides on its staging materializations, so it commits only on success.
INPUT_BOOKMARK_KEY = "input_bookmark"


# Where F/flow_report's chart is written, inside the output location (`_glueflow/` is never read as data).
REPORT_CHART_KEY = "_glueflow/reports/flow_chart.png"
# Dagster's standard metadata keys.
URI_KEY, ROW_COUNT_KEY = "dagster/uri", "dagster/row_count"
COLUMN_SCHEMA_KEY, COLUMN_LINEAGE_KEY = "dagster/column_schema", "dagster/column_lineage"
CODE_REFERENCES_KEY = "dagster/code_references"


def _kinds(location: Location) -> set[str]:
    """The UI's kind badges: the storage, the format and the engine."""
    return {"s3" if location.is_s3 else "file", "json", "polars"}


def column_schema(
    columns: Sequence[Column], lineage: Lineage = (), keys: dict[str, AssetKey] | None = None
) -> TableSchema:
    """The columns with their Glue types. With `lineage`, each description also names the upstream columns
    (`column lineage: events/staging.user_id`): Dagster's open-source UI never draws `dagster/column_lineage`
    (its column lineage view is a Dagster+ feature), but it shows these descriptions in the Columns table."""
    upstream = dict(lineage)

    def description(column: Column) -> str:
        deps = upstream.get(column.name)
        if not deps or keys is None:
            return column.description
        sources = ", ".join(f"{keys[dep.asset].to_user_string()}.{dep.column}" for dep in deps)
        return f"{column.description}; column lineage: {sources}"

    return TableSchema(columns=[TableColumn(c.name, type=c.type, description=description(c)) for c in columns])


def column_lineage(lineage: Lineage, keys: dict[str, AssetKey]) -> TableColumnLineage:
    """Each written column with the upstream asset columns it comes from (columns of nulls have none)."""
    return TableColumnLineage(
        deps_by_column={
            name: [TableColumnDep(asset_key=keys[dep.asset], column_name=dep.column) for dep in deps]
            for name, deps in lineage
            if deps
        }
    )


def definition_metadata(flow: FlowConfig, location: Location) -> dict[str, Any]:
    """What every asset of the flow declares: its location (`uri` kept, `dagster/uri` standard) and where the
    flow is declared (`dagster/code_references`, the flow file at the flow's line)."""
    metadata: dict[str, Any] = {"uri": location.uri, URI_KEY: location_uri(location.uri)}
    if flow.config_path is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BetaWarning)  # code references are beta in 1.13; the key is standard
            reference = LocalFileCodeReference(
                file_path=str(flow.config_path),
                line_number=flow_line(flow.config_path, flow.name),
                label=f"flow {flow.name} in {flow.config_path.name}",
            )
            metadata[CODE_REFERENCES_KEY] = CodeReferencesMetadataValue(code_references=[reference])
    return metadata


def run_location_metadata(uri: str, records_written: int) -> dict[str, Any]:
    """Per materialization: the records written (`dagster/row_count`) and where (`dagster/uri`)."""
    return {ROW_COUNT_KEY: records_written, URI_KEY: location_uri(uri)}


def source_observation(
    key: AssetKey, uri: str, listing: Sequence[ObjectInfo], selection: Selection, now_ms: int
) -> AssetObservation:
    """What an Input run found at the source: objects and bytes listed, those new since the last run and
    the age of the oldest of them (0 when nothing is unread), so `F/raw_input` has a history and plots."""
    new = selection.manifest
    oldest = min((obj.last_modified_ms for obj in new), default=now_ms)
    return AssetObservation(
        asset_key=key,
        metadata={
            "objects_listed": len(listing),
            "bytes_listed": sum(obj.size for obj in listing),
            "new_objects": len(new),
            "new_bytes": sum(obj.size for obj in new),
            "oldest_unread_age_s": round(max(now_ms - oldest, 0) / 1000, 3),
            URI_KEY: location_uri(uri),
        },
    )


def stage_metadata(result: StageResult) -> dict[str, Any]:
    """The figures Dagster plots (plain ints/floats become Int/Float entries) and a short summary."""
    figures: dict[str, Any] = {
        "bytes_read": result.bytes_read,
        "bytes_written": result.bytes_written,
        "records_read": result.records_read,
        "records_written": result.records_written,
        "files_read": result.files_read,
        "files_written": result.files_written,
        "error_records": result.error_records,
        "error_files": result.error_files,
        "cast_errors": result.cast_errors,
        "duration_s": round(result.duration_s, 3),
    }
    return figures


def summary_markdown(title: str, figures: dict[str, Any]) -> MetadataValue:
    rows = "\n".join(
        f"| {name} | {value:,} |" if isinstance(value, int) else f"| {name} | {value} |"
        for name, value in figures.items()
    )
    return MetadataValue.md(f"**{title}**\n\n| figure | value |\n|---|---|\n{rows}")


def run_stage_or_fail(
    context: AssetExecutionContext,
    source: Storage,
    manifest: Sequence[ObjectInfo],
    job: JobConfig,
    target: Storage,
    name_prefix: str,
    target_location: Location,
    source_location: Location | None = None,
) -> StageResult:
    """Run one stage; too many bad records or a storage failure fail the run with a one-line headline."""
    try:
        if job.engine == "spark":  # the same stage on Spark through Dagster Pipes (spark_stage.py)
            from glueflow_dagster.spark_stage import run_spark_stage

            refused = [(source.uri_for(r.key), r.cause) for r in getattr(source, "refused", ())]
            quarantine = f"{QUARANTINE_DIR}/{context.run.run_id}/"
            return run_spark_stage(
                context, source, manifest, job, target, name_prefix, target_location, quarantine, refused
            )
        return run_stage(
            source,
            manifest,
            job.mappings,
            target,
            name_prefix=name_prefix,
            compression=target_location.compression,
            compression_level=target_location.compression_level,
            log=context.log.info,
            max_error_records=job.max_error_records,
            target_file_bytes=job.target_file_bytes,
            quarantine_prefix=f"{QUARANTINE_DIR}/{context.run.run_id}/",
            defer_commit=True,
            # Local symlinks out of the location, refused by the listing: quarantined and counted.
            refused=[(source.uri_for(r.key), r.cause) for r in getattr(source, "refused", ())],
            json_format=source_location.json_format if source_location is not None else None,
        )
    except StageError as err:
        figures = stage_metadata(err.result) if err.result is not None else {}
        raise Failure(description=str(err), metadata=figures) from err


@contextmanager
def storage_failures() -> Iterator[None]:
    """A storage failure anywhere in an asset (listing included) fails the run with its one-line cause."""
    try:
        yield
    except StorageError as err:
        raise Failure(description=str(err)) from err


def this_attempt(context: AssetExecutionContext) -> Attempt:
    """The attempt that owns every name this step writes: a re-execution is a new run, a retry a new attempt."""
    return Attempt(context.run.run_id, context.retry_number + 1)


@contextmanager
def aborted_unless_published(target: Storage, pending: Sequence[PendingObject], log: Any) -> Iterator[None]:
    """Anything that fails between the stage and the commit discards this attempt's pending objects only."""
    try:
        yield
    except BaseException:
        abort(target, pending, log)
        raise


def garbage_collection(context: AssetExecutionContext, target: Storage, key: Any, grace_s: int) -> GarbageReport:
    """Count and (after the grace period) remove the orphans of the location this step alone writes."""
    return collect_garbage(
        target,
        target.list(),
        committed_parts(context.instance, key),
        now_ms=int(time.time() * 1000),
        grace_s=grace_s,
        log=context.log.info,
    )


def commit_figures(result: StageResult, record: CommitRecord, garbage: GarbageReport) -> dict[str, Any]:
    """The stage's figures as committed, the commit record, orphans and vanished objects."""
    return {
        **stage_metadata(replace(result, written=record.parts)),
        "vanished_files": len(result.vanished),
        "vanished_bytes": sum(obj.size for obj in result.vanished),
        **garbage.metadata(),
        **commit_metadata(record),
    }


def conflict_on_location(uri: str) -> str:
    return (
        f"commit conflict on {uri}: another run committed there since this run planned; "
        "nothing was committed and this attempt's objects were discarded, a later run reads these objects"
    )


def build_flow_assets(flow: FlowConfig) -> list[Any]:
    """The three assets of one flow, in one asset group named after it."""
    name = flow.name
    columns = flow_columns(flow.input_job, flow.output_job)
    upstream = {RAW_INPUT: raw_input_key(name), STAGING: staging_key(name)}
    owners, tags = list(flow.owners), dict(flow.tags)
    raw_input = AssetSpec(
        raw_input_key(name),
        group_name=name,
        description=f"Raw JSON objects at {flow.input.uri}, written by producers outside Dagster.",
        kinds=_kinds(flow.input),
        owners=owners,
        tags=tags,
        metadata={
            **definition_metadata(flow, flow.input),
            COLUMN_SCHEMA_KEY: column_schema(columns.raw_input),
        },
    )

    @asset(
        key=staging_key(name),
        deps=[raw_input_key(name)],
        group_name=name,
        kinds=_kinds(flow.staging),
        pool=pool_name(input_job_name(name)),
        description=f"Input job output: mapped {flow.staging.compression} JSON lines at {flow.staging.uri}.",
        owners=owners,
        tags=tags,
        metadata={
            **definition_metadata(flow, flow.staging),
            COLUMN_SCHEMA_KEY: column_schema(columns.staging, columns.staging_lineage, upstream),
            COLUMN_LINEAGE_KEY: column_lineage(columns.staging_lineage, upstream),
        },
    )
    def staging(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        with storage_failures():
            return run_input(context, flow, storage)

    @asset(
        key=output_key(name),
        deps=[staging_key(name)],
        group_name=name,
        kinds=_kinds(flow.output),
        pool=pool_name(output_job_name(name)),
        description=f"Output job output: mapped JSON lines at {flow.output.uri}.",
        owners=owners,
        tags=tags,
        metadata={
            **definition_metadata(flow, flow.output),
            COLUMN_SCHEMA_KEY: column_schema(columns.output, columns.output_lineage, upstream),
            COLUMN_LINEAGE_KEY: column_lineage(columns.output_lineage, upstream),
        },
        check_specs=[
            AssetCheckSpec(check, asset=output_key(name), description=text, blocking=False)
            for check, text in CHECK_DESCRIPTIONS.items()
        ],
    )
    def output(context: AssetExecutionContext, storage: StorageResource, config: OutputRunConfig) -> MaterializeResult:
        with storage_failures():
            return run_output(context, flow, storage, config)

    @asset(
        key=flow_report_key(name),
        deps=[output_key(name)],
        group_name=name,
        kinds={"matplotlib", "png", "s3" if flow.output.is_s3 else "file"},
        owners=owners,
        tags=tags,
        # Only the code reference: the chart's location is per materialization (`dagster/uri`).
        metadata={k: v for k, v in definition_metadata(flow, flow.output).items() if k == CODE_REFERENCES_KEY},
        # Redrawn by F_output_job; after a UI "Materialize" of F/output alone, by Dagster's automation
        # sensor (`default_automation_condition_sensor`, when it is turned on).
        automation_condition=AutomationCondition.eager(),
        description="The Glue guide's charts for this flow: Input bytes written and Output bytes read per "
        "Input window, and the flow ratio per window (the chart itself, its PNG in the output location "
        f"at {REPORT_CHART_KEY}, and the table in the metadata).",
    )
    def flow_report(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        report = current_flow_report(context.instance, name, context.run.run_id)
        png = report.png_path.read_bytes() if report.png_path is not None else None
        chart_uri = None
        if png is not None:
            with storage_failures():
                target = storage.open(flow.output.uri)
                target.write_bytes(REPORT_CHART_KEY, png)
                chart_uri = target.uri_for(REPORT_CHART_KEY)
        return MaterializeResult(metadata=report_metadata(report, chart_png=png, chart_uri=chart_uri))

    return [raw_input, staging, output, flow_report]


def run_input(context: AssetExecutionContext, flow: FlowConfig, storage: StorageResource) -> MaterializeResult:
    """The Input job: read new raw objects, map, write staging as pending parts, and commit them together
    with the Input bookmark, unless another Input run committed since this one planned (the fence)."""
    name, key = flow.name, staging_key(flow.name)
    source, target = storage.open(flow.input.uri), storage.open(flow.staging.uri)
    attempt = this_attempt(context)
    # The bookmark and the version the fence compares come from the same materialization.
    planned_from, committed = latest_commit(context.instance, key)
    bookmark = Bookmark.from_dict(committed.get(INPUT_BOOKMARK_KEY))
    garbage = garbage_collection(context, target, key, flow.staging.orphan_grace_s)
    listing = list(list_location(source, flow.input, must_exist=True))
    selection = select_objects(listing, bookmark, option="enable", known=input_known_objects(context.instance, name))
    context.log_event(
        source_observation(raw_input_key(name), flow.input.uri, listing, selection, int(time.time() * 1000))
    )
    context.log.info(
        f"{selection.listed_files} objects listed, {len(selection.manifest)} new "
        f"({selection.already_read_files} read by earlier runs)"
    )
    result = run_stage_or_fail(
        context,
        source,
        selection.manifest,
        flow.input_job,
        target,
        attempt.part_prefix,
        flow.staging,
        flow.input,
    )
    with aborted_unless_published(target, result.pending, context.log.info):
        if latest_commit_id(context.instance, key) != planned_from:
            raise Failure(conflict_on_location(target.uri))
        record = publish(target, attempt, input_job_name(name), result.pending, result.records_written)
    figures = commit_figures(result, record, garbage)
    plotted = {k: v for k, v in figures.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return MaterializeResult(
        metadata={
            **figures,
            "summary": summary_markdown(f"{name} Input run", plotted),
            MANIFEST_KEY: MetadataValue.json(manifest_to_json(result.read)),
            INPUT_BOOKMARK_KEY: MetadataValue.json(commit(bookmark, selection).to_dict()),
            **run_location_metadata(flow.staging.uri, result.records_written),
        }
    )


class ManifestObject(Config):
    key: str
    size: int
    last_modified_ms: int
    etag: str


class OutputRunConfig(Config):
    """Per-run options of `F_output_job` (Glue's job arguments); empty means the flow file's values."""

    bookmark: str | None = PydanticField(None, description="enable | disable | pause (--job-bookmark-option)")
    transformation_ctx: str | None = PydanticField(None, description="bookmark context; a new name starts fresh")
    from_run: str | None = PydanticField(None, description="pause only: ignore input up to this run's commit")
    to_run: str | None = PydanticField(None, description="pause only: read input up to this run's commit")
    manifest: list[ManifestObject] | None = PydanticField(None, description="frozen by F_output_sensor")
    manifest_id: str | None = None
    plan: str | None = PydanticField(None, description="frozen by F_output_sensor: the whole selection (JSON)")


def selection_states(selection: Selection) -> dict[str, int]:
    return {
        "new_files": selection.new_files,
        "modified_files": selection.modified_files,
        "late_files": selection.late_files,
        "skipped_files": selection.skipped_files,
    }


def conflict_message(ctx: str, expected: int, found: CommittedBookmark) -> str:
    return (
        f"bookmark conflict for context {ctx!r}: this run's manifest was planned from version {expected}, "
        f"but version {found.bookmark.version} was committed since ({found.action} by run {found.run_id}); "
        "nothing was committed, a later run reads these objects"
    )


def run_output(
    context: AssetExecutionContext, flow: FlowConfig, storage: StorageResource, config: OutputRunConfig
) -> MaterializeResult:
    """The Output job: read the run's manifest from staging, map, write, and commit the bookmark."""
    job, name = flow.output_job, flow.name
    option = config.bookmark or job.bookmark
    if option not in BOOKMARK_OPTIONS:
        raise Failure(f"run config bookmark: expected one of {', '.join(BOOKMARK_OPTIONS)}, got {option!r}")
    ctx = config.transformation_ctx or job.transformation_ctx
    policy = policy_for(job)
    source, target = storage.open(flow.staging.uri), storage.open(flow.output.uri)
    attempt = this_attempt(context)
    garbage = garbage_collection(context, target, output_key(name), flow.output.orphan_grace_s)
    staged = committed_parts(context.instance, staging_key(name))
    committed = committed_bookmark(context.instance, name, ctx)
    if committed.fresh and option != "disable":
        context.log.info(f"no committed bookmark for context {ctx!r}: starting fresh")
    if config.plan is not None:
        plan: Selection | tuple[ObjectInfo, ...] = Selection.from_dict(json.loads(config.plan))
        manifest, base_version, states = plan.manifest, plan.base_version, selection_states(plan)
    elif config.manifest is not None:
        # A manifest given by hand is read as planned from the state committed now.
        manifest = tuple(ObjectInfo(**m.model_dump()) for m in config.manifest)
        base_version, states = committed.bookmark.version, {"new_files": len(manifest)}
        plan = manifest
    else:
        pause_range = None
        if option == "pause" and (config.from_run or config.to_run):
            if not (config.from_run and config.to_run):
                raise Failure("pause with a range needs both from_run and to_run (Glue's --job-bookmark-from/-to)")
            pause_range = (
                state_after_run(context.instance, name, ctx, config.from_run),
                state_after_run(context.instance, name, ctx, config.to_run),
            )
        selection = plan_manifest(
            committed_staging(context.instance, flow, source, parts=staged),
            committed.bookmark,
            option=option,
            policy=policy,
            known=known_objects(context.instance, name, ctx),
            pause_range=pause_range,
        )
        manifest, base_version, plan = selection.manifest, committed.bookmark.version, selection
        states = selection_states(selection)
    frozen = config.plan is not None or config.manifest is not None
    if frozen and option == "enable" and base_version != committed.bookmark.version:
        raise Failure(conflict_message(ctx, base_version, committed))
    planned_id = config.manifest_id or manifest_id(ctx, base_version, manifest)
    result = run_stage_or_fail(
        context, source, manifest, job, target, attempt.part_prefix, flow.output, flow.staging
    )
    with aborted_unless_published(target, result.pending, context.log.info):
        metadata = output_metadata(context, flow, result, source, staged, states)
        metadata |= {
            "bookmark_option": option,
            CTX_KEY: ctx,
            MANIFEST_ID_KEY: planned_id,
            MANIFEST_KEY: MetadataValue.json(manifest_to_json(manifest)),
            "bookmark_started_fresh": committed.fresh,
        }
        if option == "enable":
            # The commit fence: commit only if the bookmark is still the version this run planned from.
            latest = committed_bookmark(context.instance, name, ctx, newer_than=committed)
            if latest.storage_id != committed.storage_id:
                raise Failure(conflict_message(ctx, base_version, latest))
            metadata |= bookmark_metadata(ctx, "commit", commit(committed.bookmark, plan, policy=policy))
        record = publish(target, attempt, output_job_name(name), result.pending, result.records_written)
    metadata |= commit_figures(result, record, garbage)
    figures = {k: v for k, v in metadata.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    metadata["summary"] = summary_markdown(f"{name} Output run", figures)
    verdicts = evaluate(metadata, earlier_backlogs(context.instance, name, BACKLOG_RUNS - 1), job.flow_ratio_band)
    metadata |= run_location_metadata(flow.output.uri, result.records_written)
    return MaterializeResult(metadata=metadata, check_results=[_check_result(v) for v in verdicts])


def output_metadata(
    context: AssetExecutionContext,
    flow: FlowConfig,
    result: StageResult,
    staging: Storage,
    staged: CommittedParts,
    states: dict[str, int],
) -> dict[str, Any]:
    """The stage's figures and the guide's flow figures, over the committed view of staging."""
    metadata: dict[str, Any] = {**stage_metadata(result), **states}
    record = context.instance.get_run_record_by_id(context.run.run_id)
    started = float(record.start_time or time.time()) if record is not None else time.time()
    metadata |= output_flow_figures(
        context.instance,
        flow.name,
        RunClock(context.run.run_id, started),
        context.run.tags.get(INPUT_RUN_TAG),
        result.bytes_read,
        result.read,
        list(committed_staging(context.instance, flow, staging, parts=staged)),
        now_ms=int(time.time() * 1000),
        max_band_ms=flow.output_job.max_band_ms,
    )
    return metadata


def _check_result(verdict: Verdict) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=verdict.name,
        passed=verdict.passed,
        severity=AssetCheckSeverity.ERROR if verdict.severity == "ERROR" else AssetCheckSeverity.WARN,
        description=verdict.description,
        metadata=verdict.figures,
    )


CHECK_DESCRIPTIONS = {
    NO_REPROCESSING: "WARN: reprocessed_bytes > 0 while bookmarks are enabled",
    BACKLOG_NOT_GROWING: "WARN: backlog_bytes grew over the last 3 Output runs",
    FLOW_RATIO_IN_BAND: "WARN: flow_ratio outside output_job.flow_ratio_band (default 0.5-2.0)",
    NO_RECORDS_LOST: "ERROR: records_read != records_written + error_records",
    NO_VANISHED_OBJECTS: "WARN: planned staging objects were deleted before the run read them",
}

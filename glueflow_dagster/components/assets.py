# No `from __future__ import annotations`: Dagster reads the context and resource annotations at runtime.
"""Each flow's software-defined assets: `F/raw_input` -> `F/staging` -> `F/output` -> `F/flow_report`.

Thin adapters: each job's run is one core function (`core.input_run.run_input`,
`core.output_run.run_output`: plan -> stage -> account -> commit) called with this instance's event log
(`event_log.py`) and this step's stage; this module declares the assets, their standard metadata
(`dagster/uri`, column schema and lineage, code references, owners, kinds) and turns the core's outcome
into a materialization and check results.
"""

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
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

from glueflow_dagster.components.claims import InstanceClaims
from glueflow_dagster.components.event_log import InputEventLog, OutputEventLog, now_ms
from glueflow_dagster.components.jobs import (
    flow_report_key,
    input_job_name,
    output_job_name,
    output_key,
    pool_name,
    raw_input_key,
    staging_key,
)
from glueflow_dagster.components.output_metadata import ordered_output_metadata
from glueflow_dagster.components.report import current_flow_report, report_metadata
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core import input_run, output_run
from glueflow_dagster.core.checks import (
    BACKLOG_NOT_GROWING,
    FLOW_RATIO_IN_BAND,
    NO_RECORDS_LOST,
    NO_REPROCESSING,
    NO_VANISHED_OBJECTS,
    Verdict,
)
from glueflow_dagster.core.commits import Attempt
from glueflow_dagster.core.config import FlowConfig, JobConfig, Location
from glueflow_dagster.core.job_run import (
    SUMMARY_KEY,
    URI_KEY,
    RunOutcome,
    RunRefused,
    Stage,
    polars_stage,
    stage_figures,
)
from glueflow_dagster.core.lineage import RAW_INPUT, STAGING, Column, Lineage, flow_columns, flow_line
from glueflow_dagster.core.output_run import OutputRequest
from glueflow_dagster.core.stage import StageError, StageRequest, StageResult
from glueflow_dagster.core.storage import ObjectInfo, StorageError, location_uri

# Where F/flow_report's chart is written, inside the output location (`_glueflow/` is never read as data).
REPORT_CHART_KEY = "_glueflow/reports/flow_chart.png"
# Dagster's standard metadata keys (URI_KEY and ROW_COUNT_KEY: core/job_run.py).
COLUMN_SCHEMA_KEY, COLUMN_LINEAGE_KEY = "dagster/column_schema", "dagster/column_lineage"
CODE_REFERENCES_KEY = "dagster/code_references"


def _kinds(location: Location) -> set[str]:
    """The UI's kind badges: the storage, the format (json, csv, parquet) and the engine."""
    return {"s3" if location.is_s3 else "file", location.format, "polars"}


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


def run_stage_or_fail(context: AssetExecutionContext, job: JobConfig) -> Stage:
    """The stage this step runs for `job` (polars here, or Spark through Dagster Pipes with `engine: spark`);
    too many bad records fail the run with a one-line headline and the figures so far."""
    polars = polars_stage(context.log.info)

    def stage(request: StageRequest) -> StageResult:
        try:
            if job.engine == "spark":  # the same stage on Spark through Dagster Pipes (spark_stage.py)
                from glueflow_dagster.components.spark_stage import run_spark_stage

                return run_spark_stage(context, request, job.spark)
            return polars(request)
        except StageError as err:
            figures = stage_figures(err.result) if err.result is not None else {}
            raise Failure(description=str(err), metadata=figures) from err

    return stage


@contextmanager
def run_failures() -> Iterator[None]:
    """A storage failure anywhere in an asset (listing included), or a run the core refuses (a commit
    conflict, a bad run option), fails the run with its one-line cause."""
    try:
        yield
    except (StorageError, RunRefused) as err:
        raise Failure(description=str(err)) from err


def this_attempt(context: AssetExecutionContext) -> Attempt:
    """The attempt that owns every name this step writes: a re-execution is a new run, a retry a new attempt."""
    return Attempt(context.run.run_id, context.retry_number + 1)


def materialize_result(
    outcome: RunOutcome, order: Callable[[Mapping[str, Any]], dict[str, Any]] = dict
) -> MaterializeResult:
    """The core's outcome as the materialization: the summary shown as markdown, the verdicts as checks;
    `order` arranges the metadata (F/output's: `output_metadata.ordered_output_metadata`)."""
    metadata = order(outcome.metadata)
    if SUMMARY_KEY in metadata:
        metadata[SUMMARY_KEY] = MetadataValue.md(metadata[SUMMARY_KEY])
    return MaterializeResult(metadata=metadata, check_results=[_check_result(v) for v in outcome.verdicts])


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
        with run_failures():
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
        with run_failures():
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
        # Redrawn by F_output_job; after a UI "Materialize" of F/output alone, by F_flow_report_sensor
        # (components/report_sensor.py), which compares the two assets' latest materializations.
        # One line at 1,366 px, so the chart (the first metadata entry) is on the first screen.
        description="The Glue guide's chart of this flow, below: bytes per Input window and the flow ratio.",
    )
    def flow_report(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        report = current_flow_report(context.instance, name, context.run.run_id)
        png = report.png_path.read_bytes() if report.png_path is not None else None
        chart_uri = None
        if png is not None:
            with run_failures():
                target = storage.open(flow.output.uri)
                target.write_bytes(REPORT_CHART_KEY, png)
                chart_uri = target.uri_for(REPORT_CHART_KEY)
        return MaterializeResult(metadata=report_metadata(report, chart_png=png, chart_uri=chart_uri))

    return [raw_input, staging, output, flow_report]


def run_input(context: AssetExecutionContext, flow: FlowConfig, storage: StorageResource) -> MaterializeResult:
    """The Input job: `core.input_run.run_input` over this instance's event log."""
    outcome = input_run.run_input(
        flow,
        InputEventLog(context, flow),
        storage.open(flow.input.uri),
        storage.open(flow.staging.uri),
        this_attempt(context),
        run_stage_or_fail(context, flow.input_job),
        job_name=input_job_name(flow.name),
        now_ms=now_ms(),
        info=context.log.info,
        claims=InstanceClaims(context.instance),
    )
    return materialize_result(outcome)


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

    def request(self) -> OutputRequest:
        manifest = tuple(ObjectInfo(**m.model_dump()) for m in self.manifest) if self.manifest is not None else None
        return OutputRequest(
            bookmark=self.bookmark,
            transformation_ctx=self.transformation_ctx,
            from_run=self.from_run,
            to_run=self.to_run,
            manifest=manifest,
            manifest_id=self.manifest_id,
            plan=self.plan,
        )


def run_output(
    context: AssetExecutionContext, flow: FlowConfig, storage: StorageResource, config: OutputRunConfig
) -> MaterializeResult:
    """The Output job: `core.output_run.run_output` over this instance's event log."""
    outcome = output_run.run_output(
        flow,
        OutputEventLog(context, flow),
        storage.open(flow.staging.uri),
        storage.open(flow.output.uri),
        this_attempt(context),
        config.request(),
        run_stage_or_fail(context, flow.output_job),
        job_name=output_job_name(flow.name),
        now_ms=now_ms(),
        info=context.log.info,
        claims=InstanceClaims(context.instance),
    )
    return materialize_result(outcome, ordered_output_metadata)


def _check_result(verdict: Verdict) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=verdict.name,
        passed=verdict.passed,
        severity=AssetCheckSeverity.ERROR if verdict.severity == "ERROR" else AssetCheckSeverity.WARN,
        description=verdict.description,
        metadata=verdict.figures,
    )


# What each check asserts, worded as the condition that passes (the UI shows this beside a green check too),
# then what happens when it does not hold.
CHECK_DESCRIPTIONS = {
    NO_REPROCESSING: "Passes when no staging object is read twice while bookmarks are enabled "
    "(warns when reprocessed_bytes > 0).",
    BACKLOG_NOT_GROWING: "Passes while the staging backlog is not growing "
    "(warns when backlog_bytes grew over each of the last 3 Output runs).",
    FLOW_RATIO_IN_BAND: "Passes when flow_ratio is inside output_job.flow_ratio_band, default 0.5-2.0 "
    "(warns outside it; a window with nothing to compare passes as n/a).",
    NO_RECORDS_LOST: "Passes when every record read is written or quarantined "
    "(records_read == records_written + error_records; an error otherwise).",
    NO_VANISHED_OBJECTS: "Passes when every planned staging object was still there to read "
    "(warns when committed objects were deleted before the run read them).",
}

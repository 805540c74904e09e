# No `from __future__ import annotations`: Dagster reads the context and resource annotations at runtime.
"""Each flow's software-defined assets: `F/raw_input` -> `F/staging` -> `F/output`.

Thin adapters: selection lives in bookmarks.py, the data path in stage.py, the ratio in flow_ratio.py.
"""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    DagsterEventType,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    asset,
)

from glueflow_dagster.bookmarks import Bookmark, commit, select_objects
from glueflow_dagster.config import FlowConfig, Location
from glueflow_dagster.flow_ratio import flow_ratio
from glueflow_dagster.jobs import INPUT_RUN_TAG, output_key, raw_input_key, staging_key
from glueflow_dagster.resources import StorageResource
from glueflow_dagster.stage import StageResult, run_stage

# The Input job's own bookmark rides on its staging materializations, so it commits only on success.
INPUT_BOOKMARK_KEY = "input_bookmark"


def _kinds(location: Location) -> set[str]:
    return {"s3", "json"} if location.is_s3 else {"json"}


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


def latest_metadata(instance: DagsterInstance, key: AssetKey) -> dict[str, Any]:
    """Metadata of the asset's latest materialization, as plain values ({} if never materialized)."""
    records = instance.fetch_materializations(key, limit=1).records
    if not records or records[0].asset_materialization is None:
        return {}
    return {name: entry.value for name, entry in records[0].asset_materialization.metadata.items()}


def run_materialization_metadata(instance: DagsterInstance, run_id: str, key: AssetKey) -> dict[str, Any]:
    """Metadata that run `run_id` recorded for `key` ({} if it recorded none)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is not None and materialization.asset_key == key:
            return {name: entry.value for name, entry in materialization.metadata.items()}
    return {}


def run_name_prefix(context: AssetExecutionContext) -> str:
    # The root run id keeps object names stable when a failed run is re-executed, so it overwrites.
    return f"run-{context.run.root_run_id or context.run.run_id}"


def build_flow_assets(flow: FlowConfig) -> list[Any]:
    """The three assets of one flow, in one asset group named after it."""
    name = flow.name
    raw_input = AssetSpec(
        raw_input_key(name),
        group_name=name,
        description=f"Raw JSON objects at {flow.input.uri}, written by producers outside Dagster.",
        kinds=_kinds(flow.input),
        metadata={"uri": flow.input.uri},
    )

    @asset(
        key=staging_key(name),
        deps=[raw_input_key(name)],
        group_name=name,
        kinds=_kinds(flow.staging),
        description=f"Input job output: mapped {flow.staging.compression} JSON lines at {flow.staging.uri}.",
        metadata={"uri": flow.staging.uri},
    )
    def staging(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        source, target = storage.open(flow.input.uri), storage.open(flow.staging.uri)
        previous = latest_metadata(context.instance, staging_key(name)).get(INPUT_BOOKMARK_KEY)
        bookmark = Bookmark.from_dict(previous)
        listing = source.list(recurse=flow.input.recurse, exclusions=flow.input.exclusions)
        selection = select_objects(listing, bookmark, option="enable")
        context.log.info(
            f"{selection.listed_files} objects listed, {len(selection.manifest)} new "
            f"({selection.already_read_files} read by earlier runs)"
        )
        result = run_stage(
            source,
            selection.manifest,
            flow.input_job.mappings,
            target,
            name_prefix=run_name_prefix(context),
            compression=flow.staging.compression,
            log=context.log.info,
        )
        figures = stage_metadata(result)
        return MaterializeResult(
            metadata={
                **figures,
                "summary": summary_markdown(f"{name} Input run", figures),
                INPUT_BOOKMARK_KEY: MetadataValue.json(commit(bookmark, selection.manifest).to_dict()),
            }
        )

    @asset(
        key=output_key(name),
        deps=[staging_key(name)],
        group_name=name,
        kinds=_kinds(flow.output),
        description=f"Output job output: mapped JSON lines at {flow.output.uri}.",
        metadata={"uri": flow.output.uri},
    )
    def output(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        source, target = storage.open(flow.staging.uri), storage.open(flow.output.uri)
        listing = source.list(recurse=flow.staging.recurse, exclusions=flow.staging.exclusions)
        selection = select_objects(listing, Bookmark(), option=flow.output_job.bookmark)
        result = run_stage(
            source,
            selection.manifest,
            flow.output_job.mappings,
            target,
            name_prefix=run_name_prefix(context),
            compression=flow.output.compression,
            log=context.log.info,
        )
        figures = stage_metadata(result)
        input_run_id = context.run.tags.get(INPUT_RUN_TAG)
        upstream = _upstream_staging(context.instance, name, input_run_id)
        ratio = flow_ratio(result.bytes_read, int(upstream.get("bytes_written", 0)))
        if ratio is not None:
            figures["flow_ratio"] = round(ratio, 4)
        figures["input_bytes_written"] = int(upstream.get("bytes_written", 0))
        metadata: dict[str, Any] = {**figures, "summary": summary_markdown(f"{name} Output run", figures)}
        if input_run_id:
            metadata["input_run_id"] = input_run_id
        return MaterializeResult(metadata=metadata)

    return [raw_input, staging, output]


def _upstream_staging(instance: DagsterInstance, flow: str, input_run_id: str | None) -> dict[str, Any]:
    """The staging figures of the Input run this Output run follows (the latest one if launched by hand)."""
    if input_run_id:
        return run_materialization_metadata(instance, input_run_id, staging_key(flow))
    return latest_metadata(instance, staging_key(flow))

"""Names and tags of each flow's Dagster objects, and the two asset jobs.

The names are a contract (README): `F_input_job`, `F_output_job`, `F_input_schedule`,
`F_output_sensor`, asset keys `F/raw_input`, `F/staging`, `F/output`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import AssetKey, define_asset_job

if TYPE_CHECKING:  # not exported by dagster's public API
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# A dagster.yaml run tag concurrency limit of 1 per unique value gives every job Glue's max concurrency 1.
CONCURRENCY_TAG = "glueflow/max_concurrency"
FLOW_TAG = "glueflow/flow"
# Set by the output sensor on each Output run: the Input run whose success it follows.
INPUT_RUN_TAG = "glueflow/input_run_id"
# Set on Output runs that read a frozen manifest: retries of the same manifest share it.
MANIFEST_TAG = "glueflow/manifest_id"


def pool_name(job_name: str) -> str:
    """The concurrency pool of the job's writing asset: limit 1 (dagster.yaml) holds however a run starts."""
    return f"glueflow/{job_name}"


def raw_input_key(flow: str) -> AssetKey:
    return AssetKey([flow, "raw_input"])


def staging_key(flow: str) -> AssetKey:
    return AssetKey([flow, "staging"])


def output_key(flow: str) -> AssetKey:
    return AssetKey([flow, "output"])


def flow_report_key(flow: str) -> AssetKey:
    return AssetKey([flow, "flow_report"])


def input_job_name(flow: str) -> str:
    return f"{flow}_input_job"


def output_job_name(flow: str) -> str:
    return f"{flow}_output_job"


def input_schedule_name(flow: str) -> str:
    return f"{flow}_input_schedule"


def output_sensor_name(flow: str) -> str:
    return f"{flow}_output_sensor"


def bookmark_admin_job_name(flow: str) -> str:
    return f"{flow}_bookmark_admin_job"


def job_tags(flow: str, job_name: str) -> dict[str, str]:
    return {FLOW_TAG: flow, CONCURRENCY_TAG: job_name}


def build_flow_jobs(flow: str) -> tuple[UnresolvedAssetJobDefinition]:
    """`F_input_job` materializes `F/staging`; `F_output_job` materializes `F/output` and `F/flow_report`."""
    input_job = define_asset_job(
        input_job_name(flow),
        selection=[staging_key(flow)],
        description="Glue's Input job: raw JSON -> ApplyMapping -> staging (gzip JSON lines).",
        tags=job_tags(flow, input_job_name(flow)),
    )
    output_job = define_asset_job(
        output_job_name(flow),
        selection=[output_key(flow), flow_report_key(flow)],
        description="Glue's Output job: staging -> ApplyMapping -> output, after each Input success; "
        "then redraws the flow report.",
        tags=job_tags(flow, output_job_name(flow)),
    )
    return input_job, output_job

"""`glueflow_dagster.GlueFlows`: the flow file as a Dagster Component (`defs/<name>/defs.yaml`).

Why a component: Dagster 1.13 projects declare their pipelines as component instances that
`dg scaffold defs` writes, `dg check defs` validates and `dg list defs` lists. The component owns its
definitions: `build_defs` builds every flow's assets, jobs, schedule, sensors and checks
(`build_definitions`); `definitions.py` only loads.

The attributes are typed (`flows` or `flow_file`, see `flow_source.py`), so `dg list components`
shows their schema and `dg check yaml` checks a `defs.yaml` against it: the keys of every section,
their types and their choices. What a schema cannot say (a cron Dagster would reject, a mapping's
types, two locations that overlap, `${VAR}` expansion, credentials in a URI) the flow parser
(`config.parse_config`) checks next, with the flow file's one-line errors naming the `defs.yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from glueflow_dagster.components.assets import build_flow_assets
from glueflow_dagster.components.bookmark_admin import build_bookmark_admin_job
from glueflow_dagster.components.flow_source import COMPONENT_TYPE, demo_flow_file, instance_flows
from glueflow_dagster.components.jobs import build_flow_jobs
from glueflow_dagster.components.report_sensor import build_flow_report_sensor
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.components.schedules import build_input_schedule
from glueflow_dagster.components.sensors import build_output_sensor
from glueflow_dagster.core.config import (
    ALL_COMPRESSIONS,
    BOOKMARK_OPTIONS,
    ENGINES,
    FORMATS,
    GLUE_WORKER_TYPES,
    ON_LATE_OPTIONS,
    ON_MODIFIED_OPTIONS,
    SPARK_LAUNCHERS,
    ConfigError,
    FlowConfig,
    GlueflowConfig,
    check_separate_locations,
)
from glueflow_dagster.core.storage import shown

# One instance shared by every component instance: Definitions.merge refuses two different objects
# under the same resource key, so several GlueFlows instances in defs/ must hand over the same one.
STORAGE = StorageResource()


def build_definitions(config: GlueflowConfig) -> dg.Definitions:
    """Every flow's definitions: F/raw_input -> F/staging -> F/output -> F/flow_report with the output
    checks, F_input_job on its schedule, F_output_job run by F_output_sensor, F_bookmark_admin_job and
    F_flow_report_sensor."""
    assets: list[Any] = []
    jobs: list[Any] = []
    schedules: list[Any] = []
    sensors: list[Any] = []
    for flow in config.flows.values():
        input_job, output_job = build_flow_jobs(flow.name)
        assets += build_flow_assets(flow)
        jobs += [input_job, output_job, build_bookmark_admin_job(flow)]
        schedules.append(build_input_schedule(flow, input_job))
        sensors += [build_output_sensor(flow, output_job), build_flow_report_sensor(flow)]
    return dg.Definitions(
        assets=assets, jobs=jobs, schedules=schedules, sensors=sensors, resources={"storage": STORAGE}
    )


# --------------------------------------------------------------------------------------------------
# The attributes' schema. Every key of the flow file, typed; choices come from the parser's own tuples,
# and a test keeps each section's keys equal to the parser's. Nothing has a default here: a key left out
# stays out, and the parser applies its default (one place for defaults).

# No coercion ("yes" is not true, "2" is not 2): the flow file refuses those too.
_STRICT = ConfigDict(strict=True, extra="forbid")
Text = Annotated[str, Field(min_length=1)]
Whole = Annotated[int, Field(ge=0)]
Mapping4 = Annotated[list[str], Field(min_length=4, max_length=4, description="[source, source type, target, type]")]


def _choice(options: tuple[str, ...]) -> Any:
    return Literal[options]  # Literal[("a", "b")] is Literal["a", "b"]


class _Section(dg.Resolvable, dg.Model):
    model_config = _STRICT


class InputLocation(_Section):
    """Where the raw input is read: a local folder or s3://bucket/prefix."""

    uri: Text = Field(
        description="local folder (relative: see the flow's rules) or s3://bucket/prefix; ${VAR} expanded"
    )
    recurse: bool | None = Field(None, description="read objects in sub-folders too (default true)")
    exclusions: list[Text] | None = Field(None, description='glob patterns of keys never read, e.g. ["**.tmp"]')
    multiline: bool | None = Field(None, description="a record may span lines (Glue's multiline; default false)")
    jsonPath: Text | None = Field(None, description="read the records at this JSON path (Glue's jsonPath)")  # noqa: N815
    format: _choice(FORMATS) | None = Field(None, description="json, csv or parquet (default json)")
    separator: Text | None = Field(None, description="csv: the field separator (default ,)")
    quoteChar: Text | None = Field(None, description='csv: the quote (default "; "-1": no quoting)')  # noqa: N815
    escaper: Text | None = Field(None, description="csv: escapes the quote inside quotes (default: doubled quotes)")
    multiLine: bool | None = Field(None, description="csv: a quoted value may span lines (Glue's multiLine)")  # noqa: N815
    withHeader: bool | None = Field(None, description="csv: the first line names the columns (default false)")  # noqa: N815
    skipFirst: bool | None = Field(None, description="csv: skip the first data line (default false)")  # noqa: N815


class StagingLocation(InputLocation):
    """Where the Input job writes and the Output job reads."""

    compression: _choice(ALL_COMPRESSIONS) | None = Field(
        None, description="parts' compression (json/csv: gzip, none; parquet: snappy, gzip, zstd, none)"
    )
    compression_level: Annotated[int, Field(ge=1, le=9)] | None = Field(None, description="gzip level 1-9")
    orphan_grace_s: Whole | None = Field(None, description="age in seconds before uncommitted objects are removed")
    partition_keys: list[Text] | None = Field(
        None, description="Hive-style column=value/ folders (Glue's partitionKeys)"
    )
    writeHeader: bool | None = Field(None, description="csv: write a header line (default true)")  # noqa: N815


class OutputLocation(_Section):
    """Where the Output job writes."""

    uri: Text = Field(description="local folder or s3://bucket/prefix; ${VAR} expanded")
    recurse: bool | None = Field(None, description="default true")
    exclusions: list[Text] | None = Field(None, description="glob patterns of keys never read")
    format: _choice((*FORMATS, "iceberg")) | None = Field(
        None, description="json, csv, parquet or iceberg (default json)"
    )
    table: Text | None = Field(None, description="iceberg: <namespace>.<name> in the catalog")
    catalog: dict[str, str | int | float | bool] | None = Field(
        None, description="iceberg: pyiceberg's catalog properties {type: sql|glue|rest, ...} (default SQLite)"
    )
    separator: Text | None = Field(None, description="csv: the field separator (default ,)")
    quoteChar: Text | None = Field(None, description='csv: the quote (default "; "-1": no quoting)')  # noqa: N815
    escaper: Text | None = Field(None, description="csv: read only; written quotes are doubled")
    compression: _choice(ALL_COMPRESSIONS) | None = Field(
        None, description="parts' compression (json/csv: gzip, none; parquet: snappy, gzip, zstd, none)"
    )
    compression_level: Annotated[int, Field(ge=1, le=9)] | None = Field(None, description="gzip level 1-9")
    orphan_grace_s: Whole | None = Field(None, description="age in seconds before uncommitted objects are removed")
    partition_keys: list[Text] | None = Field(
        None, description="Hive-style column=value/ folders (Glue's partitionKeys)"
    )
    writeHeader: bool | None = Field(None, description="csv: write a header line (default true)")  # noqa: N815


class _Job(_Section):
    mappings: Annotated[list[Mapping4], Field(min_length=1)] = Field(
        description="Glue ApplyMapping: [[source, source type, target, target type], ...]"
    )
    max_error_records: Whole | None = Field(None, description="records that may fail to map per run (default 0)")
    target_file_bytes: Annotated[int, Field(ge=1)] | None = Field(None, description="size of each written part")
    engine: _choice(ENGINES) | None = Field(None, description="where the stage runs (default polars)")


class InputJob(_Job):
    """The Input job: raw input -> staging, on a schedule."""

    schedule: Text | None = Field(None, description='five-field cron, UTC (default "*/30 * * * *"); ${VAR} expanded')


class OutputJob(_Job):
    """The Output job: committed staging -> output, requested by F_output_sensor."""

    bookmark: _choice(BOOKMARK_OPTIONS) | None = Field(
        None, description="Glue's --job-bookmark-option (default disable)"
    )
    transformation_ctx: Text | None = Field(None, description="the bookmark's name (default bookmark_ctx)")
    max_band_ms: Whole | None = Field(None, description="late-arrival band of the bookmark, ms (default 900000)")
    max_files_per_run: Annotated[int, Field(ge=1)] | None = Field(None, description="Glue's boundedFiles")
    max_bytes_per_run: Annotated[int, Field(ge=1)] | None = Field(None, description="Glue's boundedSize")
    on_modified: _choice(ON_MODIFIED_OPTIONS) | None = Field(None, description="a read object rewritten")
    on_late: _choice(ON_LATE_OPTIONS) | None = Field(None, description="an object older than the bookmark")
    flow_ratio_band: Annotated[list[float], Field(min_length=2, max_length=2)] | None = Field(
        None, description="[low, high] of output/input bytes before the flow check warns (default [0.5, 2.0])"
    )
    max_manifest_attempts: Annotated[int, Field(ge=1)] | None = Field(None, description="default 3")


class Spark(_Section):
    """How jobs with engine: spark launch the stage script (no ${VAR} expansion here)."""

    launcher: _choice(SPARK_LAUNCHERS) | None = Field(None, description="default local")
    master: Text | None = Field(None, description="local launcher: local, local[N] or local[*] (default local[2])")
    driver_memory: Text | None = Field(None, description="local launcher: JVM heap such as 512m or 2g (default 1g)")
    timeout_s: Annotated[int, Field(ge=1)] | None = Field(None, description="default 3600")
    job_name: Text | None = Field(None, description="glue launcher: the Glue job (required)")
    script_uri: Text | None = Field(None, description="glue/emr_serverless: s3://bucket/key.py, no credentials")
    iam_role: Text | None = Field(None, description="glue/emr_serverless: the role the job runs as (required)")
    glue_version: Text | None = Field(None, description="glue launcher: default 5.0")
    worker_type: _choice(GLUE_WORKER_TYPES) | None = Field(None, description="glue launcher: default G.1X")
    number_of_workers: Annotated[int, Field(ge=2)] | None = Field(None, description="glue launcher: default 2")
    python_modules: Text | None = Field(None, description="glue launcher: --additional-python-modules")
    application_id: Text | None = Field(None, description="emr_serverless launcher: the application (required)")


class Flow(_Section):
    """One chained Input -> Output flow (the flow file's `flows.<name>`)."""

    input: InputLocation
    staging: StagingLocation
    output: OutputLocation
    input_job: InputJob
    output_job: OutputJob
    owners: list[Text] | None = Field(None, description="asset owners: e-mail addresses or team:<name>")
    tags: dict[str, str] | None = Field(None, description="asset tags {key: value}")
    spark: Spark | None = None


SECTIONS: dict[str, type[_Section]] = {
    "flow": Flow,
    "input": InputLocation,
    "staging": StagingLocation,
    "output": OutputLocation,
    "input_job": InputJob,
    "output_job": OutputJob,
    "spark": Spark,
}


def _given(value: Any) -> Any:
    """A resolved attribute back as the flow file's plain document: only the keys the YAML gave."""
    if isinstance(value, _Section):
        return {key: _given(getattr(value, key)) for key in value.model_fields_set}
    if isinstance(value, list):
        return [_given(item) for item in value]
    if isinstance(value, dict):
        return {key: _given(item) for key, item in value.items()}
    return value


# --------------------------------------------------------------------------------------------------
# `dg scaffold defs glueflow_dagster.GlueFlows <name>`: the demo flow, named after the folder.

_SCAFFOLD_HEADER = """\
# glueflow flows as a Dagster component (`dg check defs` validates it). The attributes are the flow
# file's schema (README: "Flows"); local uris resolve against the project root, and ${{VAR}} and
# ${{VAR:-default}} are expanded. Made from the demo flow ({source}). Try it: glueflow demo --config <this file>
type: {type_name}

attributes:
  flows:
"""
_DATA_PREFIX = "${GLUEFLOW_DATA:-.glueflow/data}/"


def scaffold_flow_name(folder_name: str) -> str:
    """A flow name (an identifier) from the scaffolded folder's name: `my-flow` -> `my_flow`."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", folder_name) or "flow"
    return f"_{name}" if name[0].isdigit() else name


def scaffold_text(type_name: str, flow: str, flow_file: Path) -> str:
    """A defs.yaml declaring the flow file's first flow (comments kept) as `flow`, inline, its local
    data under `<data>/<flow>/` so several scaffolded flows never share a location."""
    lines = flow_file.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip() == "flows:") + 1
    first = next(i for i in range(start, len(lines)) if lines[i].strip() and not lines[i].lstrip().startswith("#"))
    end = next(
        (i for i in range(first + 1, len(lines)) if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) <= 2),
        len(lines),
    )
    body = [f"    {flow}:"] + [("  " + line if line.strip() else "") for line in lines[first + 1 : end]]
    text = "\n".join(body).replace(_DATA_PREFIX, f"{_DATA_PREFIX}{flow}/")
    return _SCAFFOLD_HEADER.format(type_name=type_name, source=flow_file.name) + text.rstrip() + "\n"


class GlueFlowsScaffolder(dg.Scaffolder):
    """Writes `defs.yaml` with one working flow named after the target folder."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        if request.scaffold_format != "yaml":
            raise ConfigError(f"{request.target_path}: GlueFlows is scaffolded as defs.yaml only (--format yaml)")
        flow = scaffold_flow_name(request.target_path.name)
        text = scaffold_text(request.type_name, flow, demo_flow_file())
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(text, encoding="utf-8")


def _instance_file(folder: Path) -> Path:
    """The file that declared this instance (named in errors): defs.yaml or defs.yml, else the folder."""
    for name in ("defs.yaml", "defs.yml"):
        if (folder / name).is_file():
            return folder / name
    return folder


@dg.scaffold_with(GlueFlowsScaffolder)
class GlueFlows(dg.Component, dg.Model, dg.Resolvable):
    """Chained, incremental Glue-style flows: per flow F the assets F/raw_input -> F/staging ->
    F/output -> F/flow_report, the F_input_job schedule, the F_output_sensor, bookmarks and checks.

    Give exactly one of `flows` (the flow file's schema, inline; local uris against the project root)
    or `flow_file` (a flow file, relative to this defs.yaml; its local uris against its own folder).
    """

    flows: dict[str, Flow] | None = Field(
        None, description="Flows by name: {name: {input, staging, output, input_job, output_job}}."
    )
    flow_file: str | None = Field(
        None, description="A flow file (glueflow.yaml) declaring the flows, relative to this defs.yaml."
    )

    # The flows, parsed when the instance loads: build_defs checks them against every other instance's.
    _flows: GlueflowConfig | None = PrivateAttr(None)

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> GlueFlows:
        try:
            component = super().load(attributes, context)
        except Exception:
            # The schema's report (pydantic's, several lines): the flow parser's one line instead when
            # it finds the same mistake in the attributes as written.
            written = attributes.model_dump(exclude_unset=True) if attributes is not None else {}
            refused = _refusal(lambda: instance_flows(written, _instance_file(context.path), context.project_root))
            if refused is None:
                raise
            raise refused from None
        refused = _refusal(lambda: setattr(component, "_flows", component.flow_config(context)))
        if refused is not None:
            # Dagster wraps a component's error in its own (ComponentTreeException, both stacks printed):
            # raised afresh here, ours is this one frame and the one-line message.
            raise refused from None
        return component

    def flow_config(self, context: dg.ComponentLoadContext) -> GlueflowConfig:
        """This instance's flows, validated by the flow parser (one-line errors naming the file)."""
        attributes = {"flows": _given(self.flows), "flow_file": self.flow_file}
        return instance_flows(attributes, _instance_file(context.path), context.project_root)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        config = self._flows if self._flows is not None else self.flow_config(context)
        refused = _refusal(lambda: self._separate_from_other_instances(config, context))
        if refused is not None:
            raise refused from None  # one frame of ours under Dagster's (see load)
        return build_definitions(config)

    def _separate_from_other_instances(self, config: GlueflowConfig, context: dg.ComponentLoadContext) -> None:
        """Refuse this instance's flows sharing a location or a name with any other GlueFlows instance
        of the code location: a flow's cleanup would delete another's committed data."""
        flows: list[FlowConfig] = list(config.flows.values())
        for other in context.component_tree.get_all_components(of_type=GlueFlows):
            if other is self or other._flows is None:
                continue
            for flow in other._flows.flows.values():
                if flow.name in config.flows:
                    raise ConfigError(
                        f"{config.flows[flow.name].config_path}: flow {shown(flow.name)} is also declared in "
                        f"{flow.config_path}: a flow's name is unique in a code location"
                    )
                flows.append(flow)
        check_separate_locations(flows)


def _refusal(check: Callable[[], object]) -> ConfigError | None:
    """The ConfigError ``check`` raises, as a fresh exception without a traceback, else None."""
    try:
        check()
    except ConfigError as err:
        return ConfigError(str(err))
    return None


__all__ = ["COMPONENT_TYPE", "GlueFlows", "GlueFlowsScaffolder", "build_definitions"]

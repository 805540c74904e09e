"""The whole conversion: both scripts' jobs, then the schedule, bookmarks, triggers, arguments and IAM.

`convert_scripts` is the one entry point (the `--from-aws` and file readers only fetch the texts): it
reads both scripts, traces each job's source -> ApplyMapping -> sink, fills the flow entry through the
converters of each part, and validates a complete entry against the flow file's own schema
(`config.parse_config`), so a converted flow always loads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glueflow_dagster.core.storage import redact
from glueflow_dagster.glue_import.arguments import (
    entry_variables,
    job_namespaces,
    report_arguments,
    report_conflicting_defaults,
    split_arguments,
    validate_entry,
    variable_default,
)
from glueflow_dagster.glue_import.aws import AwsFacts, read_aws
from glueflow_dagster.glue_import.bookmarks import bookmarks
from glueflow_dagster.glue_import.catalog import partition_columns
from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.formats import (
    null_fields_columns,
    staging_partitions,
    staging_read_as_written,
    written_columns,
)
from glueflow_dagster.glue_import.iceberg import parse_conf_parameter, report_conf_parameter, report_spark_settings
from glueflow_dagster.glue_import.locations import sink, source
from glueflow_dagster.glue_import.mappings import mappings
from glueflow_dagster.glue_import.report import (
    CONVERTED,
    DEFAULT,
    NEEDS_USER,
    STATUSES,
    UNSUPPORTED,
    ImportGlueError,
    ImportReport,
    short,
)
from glueflow_dagster.glue_import.script import GlueScript, JobShape, Step, job_shape, read_script_file
from glueflow_dagster.glue_import.triggers import DEFAULT_SCHEDULE
from glueflow_dagster.glue_import.values import IDENTIFIER, Text


def build(draft: Draft) -> ImportReport:
    """Both jobs, then what the flow around them says; the report lists converted items first."""
    inp, out = draft.inp, draft.out
    input_shape, output_shape = job_shape(inp), job_shape(out)
    source(draft, inp, input_shape.source, "input", "input_job")
    mappings(draft, inp, input_shape, "input_job")
    partition_columns(draft, inp, input_shape.mapping, "input", "input_job")
    staging_uri = sink(draft, inp, input_shape.sink, "staging")
    written_columns(draft, inp, input_shape.sink, "staging", "input_job")
    null_fields_columns(draft, inp, input_shape.before, "staging")
    _output_source(draft, output_shape.source, staging_uri)
    mappings(draft, out, output_shape, "output_job")
    _staging_partition_columns(draft, output_shape.mapping)
    _quality(draft, input_shape, output_shape)
    sink(draft, out, output_shape.sink, "output")
    report_spark_settings(draft)
    written_columns(draft, out, output_shape.sink, "output", "output_job")
    null_fields_columns(draft, out, output_shape.before, "output")
    _schedule(draft)
    bookmarks(draft, input_shape, output_shape)
    _sensor_and_concurrency(draft)
    report_arguments(draft)
    report_conflicting_defaults(draft)
    _housekeeping(draft)
    _iam(draft)
    items = [*draft.items, *inp.items, *out.items]
    items.sort(key=lambda i: STATUSES.index(i.status))  # stable: keeps script order within a status
    variables = {name: variable_default(draft, name) for name in entry_variables(draft.entry)}
    entry = {section: _ordered(draft.entry[section]) for section in draft.entry}
    return ImportReport(draft.flow, entry, items, variables, {"input": inp.label, "output": out.label})


def _output_source(draft: Draft, step: Step | None, staging_uri: str | None) -> str | None:
    """The Output job's source is staging: its recurse/exclusions describe the staging location."""
    if step is None:
        return None
    written, draft.entry["staging"] = draft.entry["staging"], {}
    uri = source(draft, draft.out, step, "staging", "output_job", set_uri=False)
    draft.entry["staging"] = staging_read_as_written(draft, written, draft.entry["staging"], step)
    draft.output_source_uri = uri
    if uri is None or staging_uri is None:
        return uri
    same = uri.rstrip("/") == staging_uri.rstrip("/")
    read, written = _with_defaults(draft, uri), _with_defaults(draft, staging_uri)
    if not same and read is not None and written is not None and read.rstrip("/") == written.rstrip("/"):
        # --from-aws: the two jobs' own argument values say the Output job reads what the Input job writes.
        draft.add(
            CONVERTED,
            "staging.uri",
            f"the Output job reads what the Input job writes ({short(read)}, by the jobs' DefaultArguments)",
            uri,
            draft.out,
            step.line,
        )
    elif not same:
        known = read is not None and written is not None
        draft.add(
            UNSUPPORTED if known else NEEDS_USER,
            "staging.uri",
            f"the Output job reads {uri} but the Input job writes {staging_uri}; glueflow chains them through "
            "one staging location (the Input job's path is kept)" + ("" if known else ": check they are the same"),
            script=draft.out,
            line=step.line,
        )
    else:
        shared = entry_variables(uri)
        note = (
            f" (job argument(s) {', '.join(shared)} in this path: the same value in both jobs, as a chain of Glue "
            "jobs passes them)"
            if shared
            else ""
        )
        draft.add(
            CONVERTED, "staging.uri", "the Output job reads what the Input job writes" + note, uri, draft.out, step.line
        )
    return uri


def _staging_partition_columns(draft: Draft, step: Step | None) -> None:
    """The Output mapping against staging's partition columns: a catalog table's (Glue adds them from the
    path) and the Input job's partitionKeys (glueflow reads them back; Glue's from_options does not)."""
    written = {str(k).lower() for k in draft.entry["staging"].get("partition_keys") or []}
    table = {k.lower() for k in draft.partition_keys.get("staging", [])}
    if written and written == table:
        return  # a partitioned catalog table written with its own keys: both read the partition columns back
    partition_columns(draft, draft.out, step, "staging", "output_job")
    staging_partitions(draft, step)


def _with_defaults(draft: Draft, text: str) -> str | None:
    """`text` with each `${X}` replaced by its Glue job's default value; None if one has none (or no --from-aws)."""
    values = {name: variable_default(draft, name) for name in entry_variables(text)}
    if None in values.values():
        return None
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: str(values[m.group(1)]), text)


def _quality(draft: Draft, input_shape: JobShape, output_shape: JobShape) -> None:
    """Glue Studio's EvaluateDataQuality on a frame the job writes: the asset check it would become.

    Its outcomes are published, not written: the records the job writes are the same without it, so
    the flow still converts; the rules themselves are the user's to carry over.
    """
    for script, shape, asset in ((draft.inp, input_shape, "staging"), (draft.out, output_shape, "output")):
        for step in shape.quality:
            ruleset = step.args.get("ruleset")
            rules = " ".join(ruleset.text.split()) if isinstance(ruleset, Text) else "built at run time"
            draft.add(
                NEEDS_USER,
                "data quality",
                f"{step.name}: would become a Dagster asset check on {draft.flow}/{asset} evaluating these rules; "
                "glueflow does not evaluate DQDL, so it is not carried over (the records written are the same)",
                short(rules),
                script,
                step.line,
            )


def _schedule(draft: Draft) -> None:
    if draft.aws is not None and draft.aws.schedule is not None:
        draft.entry["input_job"]["schedule"] = draft.aws.schedule
        return  # reported by the trigger reader
    draft.set(
        "input_job.schedule",
        DEFAULT_SCHEDULE,
        DEFAULT,
        "the guide's 30 minutes (no scheduled trigger read; --from-aws reads it)",
        None,
        None,
    )


def _sensor_and_concurrency(draft: Draft) -> None:
    if draft.aws is None:
        draft.add(
            DEFAULT,
            "output_job (trigger)",
            f"{draft.flow}_output_sensor starts one Output run after each successful Input run (Glue's trigger)",
        )
        draft.add(DEFAULT, "max concurrency", "1 per job (glueflow/max_concurrency tag; Glue's MaxConcurrentRuns 1)", 1)
        return
    draft.items.extend(draft.aws.items)
    used = entry_variables(draft.entry)
    iceberg = draft.entry["output"].get("format") == "iceberg"
    for job in (draft.aws.input_job, draft.aws.output_job):
        where = f"Glue job {job.name}"
        if job.max_concurrent_runs != 1:
            draft.add(
                NEEDS_USER,
                "max concurrency",
                f"MaxConcurrentRuns {job.max_concurrent_runs}: glueflow runs each job at max concurrency 1 "
                "(bookmarks need it)",
                job.max_concurrent_runs,
                source=where,
            )
        else:
            draft.add(
                CONVERTED, "max concurrency", "MaxConcurrentRuns 1 = glueflow's max concurrency 1", 1, source=where
            )
        if job.command != "glueetl":
            draft.add(
                UNSUPPORTED,
                "job type",
                f"Command.Name {job.command!r}: only Spark ETL jobs (glueetl) are converted",
                job.command,
                source=where,
            )
        if job.max_retries:
            draft.add(
                NEEDS_USER,
                "retries",
                "MaxRetries: glueflow does not retry a failed run (use Dagster's run retries)",
                job.max_retries,
                source=where,
            )
        for key, value in job.default_arguments.items():
            name = key.removeprefix("--")
            if key == "--job-bookmark-option" or name in used:
                continue  # reported with the bookmark / as a variable default
            if key == "--conf":
                report_conf_parameter(draft, parse_conf_parameter(str(value)), where)
                continue
            if key == "--datalake-formats" and job is draft.aws.output_job and iceberg:
                draft.add(
                    DEFAULT, "job argument", f"{key}: read for the Iceberg write", short(str(value)), source=where
                )
                continue
            draft.add(
                NEEDS_USER,
                "job argument",
                f"{key}: not carried over (no glueflow equivalent, or not used by a converted step)",
                short(redact(str(value))),
                source=where,
            )


def _housekeeping(draft: Draft) -> None:
    for script in (draft.inp, draft.out):
        if script.setup_lines:
            lines = ", ".join(str(n) for n in sorted(set(script.setup_lines)))
            draft.add(
                DEFAULT,
                "set-up",
                f"SparkContext/GlueContext/Job set-up (lines {lines}): not needed by glueflow",
                None,
                script,
                script.setup_lines[0],
            )
        if script.log_lines:
            lines = ", ".join(str(n) for n in script.log_lines)
            draft.add(
                NEEDS_USER,
                "logging",
                f"print/logger calls (lines {lines}) are not carried over; glueflow records run metadata",
                None,
                script,
                script.log_lines[0],
            )


def _iam(draft: Draft) -> None:
    buckets = sorted(
        {
            str(uri).removeprefix("s3://").split("/", 1)[0]
            for section in ("input", "staging", "output")
            if str(uri := draft.entry[section].get("uri", "")).startswith("s3://")
        }
    )
    roles = ""
    if draft.aws is not None:
        names = sorted({job.role for job in (draft.aws.input_job, draft.aws.output_job) if job.role})
        roles = f" (the Glue jobs ran as {', '.join(names)})" if names else ""
    draft.add(
        NEEDS_USER,
        "iam",
        "the credentials Dagster runs with need s3:ListBucket and s3:GetObject on input.uri, and also "
        "s3:PutObject, s3:DeleteObject, s3:AbortMultipartUpload and s3:ListBucketMultipartUploads on "
        f"staging.uri and output.uri (the commit protocol's pending writes){roles}",
        ", ".join(buckets) or None,
    )


_KEY_ORDER = (
    "uri",
    "recurse",
    "exclusions",
    "format",
    "compression",
    "partition_keys",
    "schedule",
    "bookmark",
    "transformation_ctx",
    "mappings",
)


def _ordered(section: dict[str, Any]) -> dict[str, Any]:
    """Keys in the README's order, so a converted entry reads like a hand-written one."""
    rank = {key: index for index, key in enumerate(_KEY_ORDER)}
    return dict(sorted(section.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def convert_scripts(
    flow: str,
    input_text: str,
    output_text: str,
    *,
    input_label: str = "input.py",
    output_label: str = "output.py",
    catalog_locations: Mapping[str, str] | None = None,
    aws: AwsFacts | None = None,
    job_parameters: Mapping[str, str] | None = None,
) -> ImportReport:
    """Convert an Input and an Output Glue script into one flow entry and its migration report.

    `job_parameters`: the Output job's Glue parameters `--conf` (Spark settings, `k=v --conf k2=v2`) and
    `--datalake-formats`, for its Iceberg writes when they are not read with `--from-aws`."""
    if not IDENTIFIER.match(flow):
        raise ImportGlueError(f"--flow {flow!r}: flow names must be identifiers (letters, digits, underscore)")
    catalog = catalog_locations or {}
    parameters = job_parameters or {}
    draft = Draft(
        flow, GlueScript(input_text, input_label), GlueScript(output_text, output_label), catalog, aws, parameters
    )
    report = build(draft)
    split = split_arguments(draft)
    if split:
        # Both jobs use these arguments for different locations: convert again, each job's value its own variable.
        namespaces = job_namespaces(split, draft.inp.args, draft.out.args)
        input_script = GlueScript(input_text, input_label, namespaces[0])
        output_script = GlueScript(output_text, output_label, namespaces[1])
        report = build(Draft(flow, input_script, output_script, catalog, aws, parameters))
    if report.complete:
        validate_entry(flow, report.entry, report.variables)
    return report


def convert_files(
    flow: str,
    input_script: Path,
    output_script: Path,
    catalog_locations: Mapping[str, str] | None = None,
    job_parameters: Mapping[str, str] | None = None,
) -> ImportReport:
    texts = [read_script_file(path) for path in (input_script, output_script)]
    return convert_scripts(
        flow,
        texts[0],
        texts[1],
        input_label=str(input_script),
        output_label=str(output_script),
        catalog_locations=catalog_locations,
        job_parameters=job_parameters,
    )


def convert_aws(
    flow: str,
    input_job: str,
    output_job: str,
    catalog_locations: Mapping[str, str] | None = None,
    glue: Any = None,
    s3: Any = None,
    job_parameters: Mapping[str, str] | None = None,
) -> ImportReport:
    facts, input_text, output_text = read_aws(input_job, output_job, glue, s3)
    report = convert_scripts(
        flow,
        input_text,
        output_text,
        input_label=facts.input_job.script_location,
        output_label=facts.output_job.script_location,
        catalog_locations=catalog_locations,
        aws=facts,
        job_parameters=job_parameters,
    )
    return report

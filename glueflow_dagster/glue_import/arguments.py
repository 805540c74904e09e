"""Glue job arguments: `args['X']` becomes the flow file's `${X}`, with the Glue job's default value.

The flow file expands `${X}` from the environment where Dagster runs (`${X:-default}` when the Glue
job's DefaultArguments gave one), so a converted flow keeps taking its locations from outside.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glueflow_dagster.core.config import ConfigError, parse_config
from glueflow_dagster.glue_import.aws import AwsFacts
from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.report import DEFAULT, NEEDS_USER, ImportGlueError, short


def entry_variables(entry: Mapping[str, Any]) -> list[str]:
    """The job arguments the flow entry reads as `${X}` (in order of first use)."""
    found = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", json.dumps(entry))
    return list(dict.fromkeys(found))


def variable_default(aws: AwsFacts | None, name: str) -> str | None:
    """The Glue jobs' DefaultArguments value of `--name` (the Input job's first), if usable in `${X:-...}`."""
    if aws is None:
        return None
    for job in (aws.input_job, aws.output_job):
        value = job.default_arguments.get(f"--{name}")
        if value is not None and "}" not in value:
            return value
    return None


def report_arguments(draft: Draft) -> None:
    """One report item per getResolvedOptions name: Glue's own, read by the flow, or unused."""
    used = entry_variables(draft.entry)
    for script in (draft.inp, draft.out):
        for name, line in script.args.items():
            if name == "JOB_NAME":
                draft.add(
                    DEFAULT,
                    "argument JOB_NAME",
                    f"Glue's own; glueflow names the jobs {draft.flow}_input_job / {draft.flow}_output_job",
                    None,
                    script,
                    line,
                )
            elif name in used:
                default = variable_default(draft.aws, name)
                how = "the flow file reads ${" + name + "}: set it where Dagster runs"
                if default is not None:
                    how += " (defaults to the Glue job's value)"
                draft.add(NEEDS_USER, f"argument {name}", how, default, script, line)
            else:
                draft.add(
                    NEEDS_USER,
                    f"argument {name}",
                    "read by the script but used by no converted step",
                    None,
                    script,
                    line,
                )


def report_conflicting_defaults(draft: Draft) -> None:
    if draft.aws is None:
        return
    for name in entry_variables(draft.entry):
        values = [job.default_arguments.get(f"--{name}") for job in (draft.aws.input_job, draft.aws.output_job)]
        if None not in values and values[0] != values[1]:
            draft.add(
                NEEDS_USER,
                f"argument {name}",
                f"the two jobs' default values differ ({short(values[0])} / {short(values[1])}); "
                "the Input job's is used",
                values[0],
            )


def _placeholders(entry: Any, variables: Mapping[str, str | None]) -> Any:
    """The entry with `${X}` replaced by X's default or a stand-in, so it validates without the environment."""
    if isinstance(entry, str):
        return re.sub(
            r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}",
            lambda m: m.group(2) or variables.get(m.group(1)) or f"glueflow-import-{m.group(1)}",
            entry,
        )
    if isinstance(entry, list):
        return [_placeholders(v, variables) for v in entry]
    if isinstance(entry, dict):
        return {k: _placeholders(v, variables) for k, v in entry.items()}
    return entry


def validate_entry(flow: str, entry: Mapping[str, Any], variables: Mapping[str, str | None] | None = None) -> None:
    """Check the entry against the real flow-file schema; raises ImportGlueError (a bug if it ever does)."""
    try:
        parse_config({"flows": {flow: _placeholders(dict(entry), variables or {})}}, Path("import-glue"))
    except ConfigError as err:
        raise ImportGlueError(f"what converted is not a complete flow: {err}") from err


def with_defaults(entry: Mapping[str, Any], variables: Mapping[str, str | None]) -> dict[str, Any]:
    """`${X}` -> `${X:-default}` where the Glue job gave X a default value."""

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(
                r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                lambda m: "${" + m.group(1) + (f":-{variables[m.group(1)]}" if variables.get(m.group(1)) else "") + "}",
                value,
            )
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return walk(dict(entry))

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
from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.report import DEFAULT, NEEDS_USER, ImportGlueError, short


def entry_variables(entry: Mapping[str, Any]) -> list[str]:
    """The job arguments the flow entry reads as `${X}` (in order of first use)."""
    found = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", json.dumps(entry))
    return list(dict.fromkeys(found))


def variable_default(draft: Draft, name: str) -> str | None:
    """The DefaultArguments value of the job argument flow variable `name` reads (the Input job's first).

    A variable is one job's argument when the two jobs use that argument for different locations
    (`${INPUT_X}` / `${OUTPUT_X}`), else the argument both jobs share; only a value usable in
    `${X:-...}` is returned.
    """
    if draft.aws is None:
        return None
    for script, job in ((draft.inp, draft.aws.input_job), (draft.out, draft.aws.output_job)):
        for argument in script.args:
            if script.env_name(argument) != name:
                continue
            value = job.default_arguments.get(f"--{argument}")
            if value is not None and "}" not in value:
                return value
    return None


def split_arguments(draft: Draft) -> list[str]:
    """Job arguments both jobs use for different locations: each job's value must be its own variable.

    Glue gives each job its own arguments; the flow file reads one environment. Two jobs that each take
    `--source_bucket_uri`/`--target_bucket_uri` (the Input job's target is the Output job's source) hold
    different values under one name, and one `${target_bucket_uri}` would make staging and output the
    same location. A name is shared only where the Output job reads exactly the path the Input job writes
    (that path's arguments are assumed to be the same in both jobs: that is how the two jobs chain).
    """
    entry = draft.entry
    input_side = set(entry_variables({key: entry[key] for key in ("input", "staging", "input_job")}))
    output_side = set(entry_variables({key: entry[key] for key in ("output", "output_job")}))
    chained: set[str] = set()
    read, staging = draft.output_source_uri, entry["staging"].get("uri")
    if read is not None and staging is not None and read.rstrip("/") == str(staging).rstrip("/"):
        chained = set(entry_variables(read))
    elif read is not None:
        output_side |= set(entry_variables(read))
    return sorted((input_side & output_side) - chained)


def job_namespaces(
    split: list[str], input_arguments: Mapping[str, int], output_arguments: Mapping[str, int]
) -> tuple[dict[str, str], dict[str, str]]:
    """`X` -> `INPUT_X` in the Input script and `OUTPUT_X` in the Output script (never a name either declares)."""
    taken = set(input_arguments) | set(output_arguments)

    def fresh(prefix: str, name: str) -> str:
        candidate = f"{prefix}_{name.upper()}"
        while candidate in taken:
            candidate += "_"
        taken.add(candidate)
        return candidate

    return {name: fresh("INPUT", name) for name in split}, {name: fresh("OUTPUT", name) for name in split}


def report_arguments(draft: Draft) -> None:
    """One report item per getResolvedOptions name: Glue's own, read by the flow, or unused."""
    used = entry_variables(draft.entry)
    read = set(entry_variables(draft.output_source_uri or ""))
    for script, job in ((draft.inp, "Input"), (draft.out, "Output")):
        for name, line in script.args.items():
            variable = script.env_name(name)
            if name == "JOB_NAME":
                draft.add(
                    DEFAULT,
                    "argument JOB_NAME",
                    f"Glue's own; glueflow names the jobs {draft.flow}_input_job / {draft.flow}_output_job",
                    None,
                    script,
                    line,
                )
            elif variable in used:
                default = variable_default(draft, variable)
                how = "the flow file reads ${" + variable + "}: set it where Dagster runs"
                if variable != name:
                    how = (
                        f"both jobs take --{name}, each for a different location: the flow file reads the "
                        f"{job} job's value as ${{{variable}}}; set it where Dagster runs"
                    )
                if default is not None:
                    how += " (defaults to the Glue job's value)"
                draft.add(NEEDS_USER, f"argument {name}", how, default, script, line)
            elif script is draft.out and variable in read:
                draft.add(
                    NEEDS_USER,
                    f"argument {name}",
                    "the Output job reads staging through it; the flow's staging is the Input job's path (staging.uri)",
                    None,
                    script,
                    line,
                )
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
        values = [
            next((job.default_arguments.get(f"--{a}") for a in script.args if script.env_name(a) == name), None)
            for script, job in ((draft.inp, draft.aws.input_job), (draft.out, draft.aws.output_job))
        ]
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
        # The stand-ins are shown as the variables they stand for: `glueflow-import-X` reads like a local folder.
        # A stand-in alone resolves as a folder beside the flow file (here, the working directory).
        folder = re.escape(str(Path.cwd().resolve()).rstrip("/") + "/")
        message = re.sub(f"(?:{folder})?glueflow-import-([A-Za-z_][A-Za-z0-9_]*)", r"${\1}", str(err))
        raise ImportGlueError(f"what converted is not a complete flow: {message}") from err


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

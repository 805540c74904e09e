"""ApplyMapping: the mapping tuples, their error thresholds and case sensitivity as the job's keys.

The tuples are checked with the flow file's own parser (`core.mapping.parse_mappings`), so a type
glueflow cannot cast is reported at the tuple's line, not when the flow loads.
"""

from __future__ import annotations

import re

from glueflow_dagster.core.mapping import MappingError, parse_mappings
from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.report import CONVERTED, DEFAULT, NEEDS_USER, UNSUPPORTED, short
from glueflow_dagster.glue_import.script import GlueScript, JobShape
from glueflow_dagster.glue_import.transforms import compose
from glueflow_dagster.glue_import.values import Text, plain


def mappings(draft: Draft, script: GlueScript, shape: JobShape, job: str) -> None:
    """The job's ApplyMapping tuples, with the transforms on the way to the sink folded in (`transforms`)."""
    step = shape.mapping
    if step is None:
        return
    raw = step.args.get("mappings")
    if not isinstance(raw, list):
        draft.add(UNSUPPORTED, f"{job}.mappings", "mappings is not a list", script=script, line=step.line)
        return
    rows: list[list[str]] = []
    lines = getattr(raw, "lines", [step.line] * len(raw))
    for entry, line in zip(raw, lines, strict=True):
        parts = plain(entry)
        if not isinstance(entry, list) or not all(isinstance(p, Text) and not p.variables for p in entry):
            draft.add(
                UNSUPPORTED,
                f"{job}.mappings",
                f"entry {short(parts)!r} is not a tuple of 4 literal strings",
                script=script,
                line=line,
            )
            return
        rows.append(parts)
    try:
        parse_mappings(rows)
    except MappingError as err:
        match = re.match(r"mapping #(\d+)", str(err))
        line = lines[int(match.group(1))] if match else step.line
        draft.add(UNSUPPORTED, f"{job}.mappings", f"{err}", script=script, line=line)
        return
    binary = [(row, line) for row, line in zip(rows, lines, strict=True) if row[3].strip().lower() == "binary"]
    if binary:
        # glueflow writes JSON lines and cannot write a binary column: the flow would load, then every run fail.
        (row, line), *_ = binary
        draft.add(
            UNSUPPORTED,
            f"{job}.mappings",
            f"{short(row)}: a binary target cannot be written as JSON lines by glueflow; map it to string",
            script=script,
            line=line,
        )
        return
    status, note = CONVERTED, f"{step.name}: {len(rows)} mapping tuple(s)"
    if shape.before or shape.after:
        folded = compose(draft, script, rows, shape.before, shape.after, job)
        if folded is None:
            # Reported at the transform (the import is incomplete); --allow-partial writes the tuples as written.
            status, note = NEEDS_USER, f"{step.name}: the tuples as written; a transform on the way is not converted"
        else:
            rows = folded
    draft.set(f"{job}.mappings", rows, status, note, script, step.line)
    if step.args.get("case_sensitive"):
        draft.add(
            UNSUPPORTED,
            f"{job}.mappings",
            "case_sensitive=True: glueflow matches source names case-insensitively (Glue's default)",
            script=script,
            line=step.line,
        )
    total = plain(step.args.get("totalThreshold", 0))
    stage = plain(step.args.get("stageThreshold", 0))
    if isinstance(total, int) and not isinstance(total, bool) and total > 0:
        draft.set(f"{job}.max_error_records", total, CONVERTED, "ApplyMapping totalThreshold", script, step.line)
    elif total in (0, None):
        why = (
            "Glue's totalThreshold 0 (its default) never fails the job on error records (malformed input is "
            "dropped); glueflow's max_error_records 0 fails a run on its first bad record (quarantined, counted): "
            f"set {job}.max_error_records to tolerate bad input as the Glue job did"
        )
        draft.add(DEFAULT, f"{job}.max_error_records", why, 0, script, step.line)
    elif total not in (0, None):
        draft.add(
            UNSUPPORTED,
            f"{job}.max_error_records",
            "totalThreshold is not a whole number",
            total,
            script,
            step.line,
        )
    if stage not in (0, None):
        draft.add(
            NEEDS_USER,
            f"{job}.max_error_records",
            "stageThreshold (per Spark stage) has no glueflow equivalent; max_error_records counts the whole run",
            stage,
            script,
            step.line,
        )


# -- the whole flow

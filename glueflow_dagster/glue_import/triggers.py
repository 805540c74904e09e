"""Glue triggers and Glue cron: the Input job's schedule and the Output job's conditional trigger.

A Glue cron has six fields (the sixth is the year) and its own day-of-week numbering (1-7 = SUN-SAT);
Dagster takes a five-field cron (0-6). What has no five-field equivalent (L, W, #, a year) is refused
in one line rather than approximated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from glueflow_dagster.core.storage import redact
from glueflow_dagster.glue_import.report import (
    CONVERTED,
    DEFAULT,
    NEEDS_USER,
    UNSUPPORTED,
    ReportItem,
    short,
)

DEFAULT_SCHEDULE = "*/30 * * * *"


class GlueCronError(ValueError):
    """A Glue schedule with no five-field cron equivalent; the message is one line."""


_DAY_NAMES = {name: index for index, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_MONTH_NAMES = {
    name: index + 1
    for index, name in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
}
# (name, lowest, highest, names) per Glue field; Glue's day-of-week is 1-7 = SUN-SAT, cron's 0-6.
_GLUE_FIELDS = (
    ("minutes", 0, 59, {}),
    ("hours", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 1, 7, {name: index + 1 for name, index in _DAY_NAMES.items()}),
)


def glue_cron_to_dagster(expression: str) -> str:
    """`cron(0/30 * * * ? *)` -> `*/30 * * * *`; raises GlueCronError when there is no five-field equivalent."""
    match = re.fullmatch(r"\s*cron\((.*)\)\s*", expression, flags=re.IGNORECASE)
    if not match:
        raise GlueCronError(f"schedule {short(expression)!r}: not a Glue cron(...) expression")
    fields = match.group(1).split()
    if len(fields) != 6:
        raise GlueCronError(f"schedule {short(expression)!r}: a Glue cron has 6 fields, got {len(fields)}")
    if fields[5] != "*":
        raise GlueCronError(
            f"schedule {expression!r}: Year field {fields[5]!r} has no five-field cron equivalent (only '*')"
        )
    result = []
    for (name, low, high, names), text in zip(_GLUE_FIELDS, fields[:5], strict=True):
        result.append(_cron_field(expression, name, low, high, names, text))
    if fields[2] not in ("?", "*") and fields[4] not in ("?", "*"):
        raise GlueCronError(f"schedule {expression!r}: Glue needs '?' in day-of-month or day-of-week")
    return " ".join(result)


def _cron_field(expression: str, name: str, low: int, high: int, names: Mapping[str, int], text: str) -> str:
    if text == "?":
        if name not in ("day-of-month", "day-of-week"):
            raise GlueCronError(f"schedule {expression!r}: '?' is only allowed in day-of-month or day-of-week")
        return "*"
    if re.search(r"[LW#]", re.sub(r"[A-Za-z]{3}", lambda m: "" if m.group(0).upper() in names else m.group(0), text)):
        raise GlueCronError(
            f"schedule {expression!r}: {name} {text!r} uses L/W/# (last day, nearest weekday, nth weekday), "
            "which has no five-field cron equivalent"
        )
    shift = 1 if name == "day-of-week" else 0  # Glue 1-7 (SUN-SAT) -> cron 0-6

    def number(token: str) -> int:
        value = names.get(token.upper()) if token.isalpha() else (int(token) if token.isdigit() else None)
        if value is None or not low <= value <= high:
            raise GlueCronError(f"schedule {expression!r}: {name} value {token!r} is not in {low}-{high}")
        return value - shift

    parts = []
    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            raise GlueCronError(f"schedule {expression!r}: {name} step {step!r} is not a positive number")
        if base == "*":
            converted = "*"
        elif "-" in base:
            first, _, last = base.partition("-")
            converted = f"{number(first)}-{number(last)}"
        elif step:
            start = number(base)
            # Glue's `a/n` means from a to the end; a five-field cron spells it `a-high/n` (or `*/n` from the start).
            converted = "*" if start == low - shift else f"{start}-{high - shift}"
        else:
            converted = str(number(base))
        parts.append(converted + (f"/{step}" if step else ""))
    return ",".join(parts)


# --- the triggers that start the two jobs -----------------------------------------------------------

_Add = Callable[..., None]


def read_triggers(input_job: str, output_job: str, triggers: list[dict[str, Any]]) -> tuple[str, list[ReportItem]]:
    """The Input job's five-field schedule and the report items of every trigger that starts either job."""
    items: list[ReportItem] = []
    add: _Add = lambda status, where, message, value=None, source=None: items.append(  # noqa: E731
        ReportItem(status, where, message, value, source)
    )
    schedule: str | None = None
    sensor = False
    for trigger in triggers:
        starts = [a.get("JobName") for a in trigger.get("Actions") or []]
        if input_job not in starts and output_job not in starts:
            continue
        source = f"trigger {trigger.get('Name', '?')}"
        _trigger_setup(add, trigger, starts, source, input_job, output_job)
        kind = trigger.get("Type")
        if kind == "SCHEDULED" and input_job in starts:
            expression = trigger.get("Schedule", "")
            if schedule is not None:
                add(
                    UNSUPPORTED,
                    "input_job.schedule",
                    "a second scheduled trigger for the Input job",
                    expression,
                    source,
                )
                continue
            schedule = _schedule(add, expression, source)
        elif kind == "CONDITIONAL" and output_job in starts:
            sensor = _conditional(add, trigger, source, input_job, output_job) or sensor
        else:
            add(
                UNSUPPORTED,
                "trigger",
                f"{kind} trigger starting {', '.join(map(str, starts))}: only the Input schedule and the Output "
                "job's conditional trigger are converted",
                None,
                source,
            )
    if schedule is None:
        add(
            DEFAULT,
            "input_job.schedule",
            "no scheduled trigger starts the Input job; the guide's 30 minutes",
            DEFAULT_SCHEDULE,
        )
        schedule = DEFAULT_SCHEDULE
    if not sensor:
        add(
            DEFAULT,
            "output_job (trigger)",
            f"no conditional trigger (on {input_job} SUCCEEDED) found; the flow's Output sensor does that",
        )
    return schedule, items


def _trigger_setup(
    add: _Add, trigger: dict[str, Any], starts: list[Any], source: str, input_job: str, output_job: str
) -> None:
    """What any trigger of the flow's jobs says beside its kind: state, arguments, workflow, other jobs."""
    state = trigger.get("State")
    if state not in (None, "ACTIVATED", "ACTIVATING"):
        add(
            NEEDS_USER, "trigger state", f"{state} in Glue; glueflow's schedule and sensor start running", state, source
        )
    for action in trigger.get("Actions") or []:
        for key, value in (action.get("Arguments") or {}).items():
            # Glue passes these to the run, over the job's DefaultArguments; the flow reads ${X} instead.
            add(
                NEEDS_USER,
                "trigger argument",
                f"{key} passed to {action.get('JobName')}: set it as the environment variable "
                f"{key.removeprefix('--')} (the flow file's ${{...}} references)",
                short(redact(str(value))),
                source,
            )
    if trigger.get("WorkflowName"):
        add(
            NEEDS_USER,
            "trigger",
            f"part of Glue workflow {short(trigger['WorkflowName'])}: only this trigger is converted",
            None,
            source,
        )
    others = [j for j in starts if j not in (input_job, output_job)]
    if others:
        add(
            UNSUPPORTED,
            "trigger",
            f"also starts job(s) {', '.join(map(str, others))}, which are not part of this flow",
            None,
            source,
        )


def _schedule(add: _Add, expression: str, source: str) -> str:
    """The Input job's scheduled trigger as a five-field cron (the default, reported, when there is none)."""
    try:
        schedule = glue_cron_to_dagster(expression)
    except GlueCronError as err:
        add(
            UNSUPPORTED,
            "input_job.schedule",
            f"{err}; the default {DEFAULT_SCHEDULE!r} is written instead",
            expression,
            source,
        )
        return DEFAULT_SCHEDULE
    add(CONVERTED, "input_job.schedule", f"Glue {expression} (UTC) as a five-field cron", schedule, source)
    return schedule


def _conditional(add: _Add, trigger: dict[str, Any], source: str, input_job: str, output_job: str) -> bool:
    """True when the conditional trigger is glueflow's Output sensor (start Output after Input SUCCEEDED)."""
    predicate = trigger.get("Predicate") or {}
    conditions = predicate.get("Conditions") or []
    expected = [{"JobName": input_job, "State": "SUCCEEDED"}]
    seen = [{"JobName": c.get("JobName"), "State": c.get("State")} for c in conditions]
    if seen == expected and conditions[0].get("LogicalOperator", "EQUALS") == "EQUALS":
        add(
            CONVERTED,
            "output_job (trigger)",
            f"on {input_job} SUCCEEDED start {output_job}: becomes the flow's Output sensor",
            None,
            source,
        )
        return True
    shown = ", ".join(f"{c['JobName']} {c['State']}" for c in seen)
    add(
        UNSUPPORTED,
        "output_job (trigger)",
        f"condition ({shown}) differs from glueflow's sensor (after each successful Input run)",
        None,
        source,
    )
    return False

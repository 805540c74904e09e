"""The migration report: what was converted, set from defaults, left to the user or not converted.

Every value shown is bounded (`short`): a report line never carries a whole document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from glueflow_dagster.core.storage import redact

CONVERTED, DEFAULT, NEEDS_USER, UNSUPPORTED = "converted", "default", "needs_user", "unsupported"
STATUSES = (CONVERTED, DEFAULT, NEEDS_USER, UNSUPPORTED)
SHOWN = 80  # longest value shown in a report line: values are bounded, never whole documents


class ImportGlueError(ValueError):
    """Input the importer cannot read at all (missing file, not Python, AWS error); one line.

    URL credentials (`s3://key:secret@bucket`) are redacted here, whatever built the message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def short_where(where: str) -> str:
    """A long `file:line` cut at its start: the file's name and the line are what a reader looks for."""
    return where if len(where) <= SHOWN else "..." + where[-(SHOWN - 3) :]


@dataclass(frozen=True)
class ReportItem:
    """One line of the migration report.

    `status` is converted | default | needs_user | unsupported; only `unsupported` makes the import
    incomplete (non-zero exit without --allow-partial). `field` is the flow key it sets (`input.uri`)
    or a topic (`step`, `argument`, `iam`, `trigger`, `concurrency`, ...).
    """

    status: str
    field: str
    message: str
    value: Any = None
    source: str | None = None
    line: int | None = None

    def where(self) -> str:
        if self.source is None:
            return ""
        return f"{self.source}:{self.line}" if self.line is not None else self.source

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "field": self.field,
            "value": self.value,
            "source": self.source,
            "line": self.line,
            "message": self.message,
        }


@dataclass
class ImportReport:
    """The converted flow entry and everything the conversion decided, assumed or could not do."""

    flow: str
    entry: dict[str, Any]
    items: list[ReportItem] = field(default_factory=list)
    variables: dict[str, str | None] = field(default_factory=dict)  # env var -> default (None: must be set)
    sources: dict[str, str] = field(default_factory=dict)  # "input"/"output" -> script label

    @property
    def complete(self) -> bool:
        return not any(item.status == UNSUPPORTED for item in self.items)

    def of(self, status: str) -> list[ReportItem]:
        return [item for item in self.items if item.status == status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "complete": self.complete,
            "sources": dict(self.sources),
            "converted": [i.to_dict() for i in self.of(CONVERTED)],
            "defaults": [i.to_dict() for i in self.of(DEFAULT)],
            "needs_user": [i.to_dict() for i in self.of(NEEDS_USER)],
            "unsupported": [i.to_dict() for i in self.of(UNSUPPORTED)],
            "variables": [{"name": k, "default": v} for k, v in self.variables.items()],
            "flow_entry": self.entry,
        }

    def table(self) -> str:
        """The report as text: one section per status, one row per item (field, value, where, note)."""
        titles = {
            CONVERTED: "Converted",
            DEFAULT: "Set from defaults",
            NEEDS_USER: "Needs the user",
            UNSUPPORTED: "Not converted (unsupported; needs the user)",
        }
        lines = [f"glueflow import-glue: flow {self.flow!r} from {' + '.join(self.sources.values())}"]
        for status in STATUSES:
            rows = self.of(status)
            if not rows:
                continue
            lines.append("")
            lines.append(f"{titles[status]} ({len(rows)})")
            lines.append(f"  {'where':<26} {'field':<34} {'value':<34} note")
            for item in rows:
                value = "" if item.value is None else short(item.value)
                value = value if len(value) <= 34 else value[:31] + "..."
                lines.append(f"  {short_where(item.where()):<26} {item.field:<34} {value:<34} {item.message}")
        if self.variables:
            lines.append("")
            lines.append("Environment variables the flow file reads (set them where Dagster runs):")
            for name, default in self.variables.items():
                lines.append(f"  {name}" + ("" if default is None else f"  (default from the Glue job: {default})"))
        lines.append("")
        unsupported = self.of(UNSUPPORTED)
        if unsupported:
            lines.append(f"INCOMPLETE: {len(unsupported)} construct(s) not converted (see above)")
        else:
            lines.append("complete: every step of both scripts was converted")
        return "\n".join(lines)

"""The flow entry being built and its report, shared by the converters of each part of the two jobs.

Each converter (locations, mappings, bookmarks, arguments) writes keys into `entry` with `set` and
tells the report what it decided with `add`; `builder.build` calls them in order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from glueflow_dagster.glue_import.aws import AwsFacts
from glueflow_dagster.glue_import.report import DEFAULT, NEEDS_USER, UNSUPPORTED, ReportItem, short
from glueflow_dagster.glue_import.script import GlueScript
from glueflow_dagster.glue_import.values import Text, plain


class Draft:
    """Accumulates the flow entry and the report while both scripts are converted."""

    def __init__(
        self,
        flow: str,
        input_script: GlueScript,
        output_script: GlueScript,
        catalog_locations: Mapping[str, str],
        aws: AwsFacts | None,
        job_parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.flow = flow
        self.inp, self.out = input_script, output_script
        self.catalog = dict(catalog_locations)
        self.aws = aws
        # The Output job's Glue parameters given on the command line (`--conf`, `--datalake-formats`), for
        # its Iceberg writes when they are not read from AWS (see `iceberg`).
        self.job_parameters = dict(job_parameters or {})
        self.partition_keys: dict[str, list[str]] = {}  # location -> its catalog table's partition keys
        # "<location> read"/"written": a catalog table given by --catalog-location, its format not known
        self.unknown_format: set[str] = set()
        self.output_source_uri: str | None = None  # what the Output job reads (staging, in its own arguments)
        self.items: list[ReportItem] = []
        self.entry: dict[str, Any] = {
            "input": {},
            "staging": {},
            "output": {},
            "input_job": {},
            "output_job": {},
        }

    def add(
        self,
        status: str,
        where: str,
        message: str,
        value: Any = None,
        script: GlueScript | None = None,
        line: int | None = None,
        source: str | None = None,
    ) -> None:
        label = source if source is not None else (script.label if script is not None else None)
        self.items.append(ReportItem(status, where, message, value, label, line))

    def set(self, key: str, value: Any, status: str, message: str, script: GlueScript | None, line: int | None) -> None:
        section, name = key.split(".", 1)
        self.entry[section][name] = value
        self.add(status, key, message, value, script, line)

    def text(self, value: Any, key: str, script: GlueScript, line: int | None, *, expandable: bool) -> str | None:
        """A string option; `${X}` only where glueflow expands variables (uri, schedule, transformation_ctx)."""
        if not isinstance(value, Text):
            self.add(UNSUPPORTED, key, f"expected a string, got {short(plain(value))!r}", script=script, line=line)
            return None
        if value.variables and not expandable:
            self.add(
                UNSUPPORTED,
                key,
                f"uses job argument(s) {', '.join(value.variables)}; glueflow expands ${{VAR}} only in uri, "
                "schedule and transformation_ctx",
                script=script,
                line=line,
            )
            return None
        scheme = re.match(r"(?i)(s3a|s3n|s3)://", value.text)
        if key.endswith(".uri") and scheme is not None and scheme.group(0) != "s3://":
            # Hadoop's s3a:// and s3n:// (and S3://) name the same bucket and key as s3://, which glueflow reads.
            self.add(DEFAULT, key, f"{scheme.group(0)} is Hadoop's name for s3://", value.text, script, line)
            value = Text("s3://" + value.text[len(scheme.group(0)) :], value.variables)
        if key.endswith(".uri") and not value.text.startswith(("s3://", "${")):
            # Glue reads s3:// only; the flow file would take anything else for a local folder.
            self.add(
                NEEDS_USER,
                key,
                "not an s3:// path: the flow file reads it as a local folder beside the flow file",
                value.text,
                script,
                line,
            )
        return value.text

"""Column schemas and column lineage of a flow, derived from its ApplyMapping tuples alone.

ApplyMapping *is* column lineage: every target column comes from one source path. A flow has two of
them in a chain, so an output column comes from a staging column, which comes from a raw JSON path.
This module turns the mappings into plain tuples (no Dagster import, so the core stays testable and
Dagster-free); the shell (assets.py) wraps them in `TableSchema` and `TableColumnLineage`.

Nested targets (`user.country`) are shown twice, on purpose: the top-level column `user` with its
Glue/Spark struct type (`struct<country:string,premium:boolean>`), and each field under it as a
dotted column (`user.country`), the way Spark's `printSchema` and the Glue catalog list nested
fields. Lineage is recorded on the dotted leaf columns (and, as the union of its fields, on the
struct), so a UI can follow `country` in `F/output` back to `user.country` in `F/staging` and on to
the raw JSON path `user.country` of `F/raw_input`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from glueflow_dagster.core.config import JobConfig
from glueflow_dagster.core.mapping import parse_path

RAW_INPUT, STAGING, OUTPUT = "raw_input", "staging", "output"


class Column(NamedTuple):
    """One column of an asset's schema: dotted name (backticks quote dots), Glue type name, description."""

    name: str
    type: str
    description: str


class ColumnDep(NamedTuple):
    """One upstream column: the upstream asset's role (`raw_input` or `staging`) and its column name."""

    asset: str
    column: str


# A column name and the upstream columns it is computed from.
Lineage = tuple[tuple[str, tuple[ColumnDep, ...]], ...]


def glue_type_name(name: str) -> str:
    """A Glue type name as shown in the schema: lower case, no spaces (`Decimal(10, 2)` -> `decimal(10,2)`)."""
    return re.sub(r"\s+", "", name).lower()


def column_name(path: Sequence[str]) -> str:
    """A path as a column name, the way the flow file writes it (backticks around names holding dots)."""
    return ".".join("`" + part.replace("`", "``") + "`" if "." in part or "`" in part else part for part in path)


def _fold(path: Sequence[str]) -> tuple[str, ...]:
    # Glue matches source names case-insensitively, and so does the lineage.
    return tuple(part.lower() for part in path)


class _Node:
    """A path tree: leaves carry a type and a description, inner nodes become structs."""

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.type: str | None = None
        self.description = ""

    def insert(self, path: Sequence[str], type_name: str, description: str) -> None:
        node = self
        for part in path:
            node = node.children.setdefault(part, _Node())
        if node.type is None:
            node.type, node.description = type_name, description

    def type_name(self) -> str:
        if not self.children:
            return self.type or "string"
        fields = ",".join(f"{column_name([name])}:{child.type_name()}" for name, child in self.children.items())
        return f"struct<{fields}>"

    def columns(self, prefix: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], _Node]]:
        for name, child in self.children.items():
            yield (*prefix, name), child
            yield from child.columns((*prefix, name))


def _schema(entries: Iterable[tuple[tuple[str, ...], str, str]]) -> tuple[Column, ...]:
    """Top-level columns in mapping order, each struct followed by its fields as dotted columns."""
    root = _Node()
    for path, type_name, description in entries:
        root.insert(path, type_name, description)
    columns: list[Column] = []
    for name, node in root.children.items():
        columns.append(_column((name,), node))
        columns.extend(_column(path, child) for path, child in node.columns((name,)))
    return tuple(columns)


def _column(path: tuple[str, ...], node: _Node) -> Column:
    count = len(node.children)
    description = node.description if not count else f"struct of {count} field{'s' if count > 1 else ''}"
    return Column(column_name(path), node.type_name(), description)


def source_schema(job: JobConfig) -> tuple[Column, ...]:
    """The raw JSON paths a job reads, with the Glue types it reads them as (the first mapping's, on repeats)."""
    seen: dict[tuple[str, ...], tuple[str, ...]] = {}
    for mapping in job.mappings:
        seen.setdefault(_fold(mapping.source), mapping.source)
    entries = []
    for mapping, raw in zip(job.mappings, job.raw_mappings, strict=True):
        path = seen[_fold(mapping.source)]
        entries.append((path, glue_type_name(raw[1]), f"JSON path {raw[0]}, read as {glue_type_name(raw[1])}"))
    return _schema(entries)


def target_schema(job: JobConfig) -> tuple[Column, ...]:
    """The columns a job writes: its mapping targets with their Glue target types."""
    return _schema(
        (
            mapping.target,
            glue_type_name(raw[3]),
            f"ApplyMapping {raw[0]} ({glue_type_name(raw[1])}) -> {raw[2]} ({glue_type_name(raw[3])})",
        )
        for mapping, raw in zip(job.mappings, job.raw_mappings, strict=True)
    )


def _upstream_columns(source: tuple[str, ...], upstream: Sequence[Column]) -> tuple[str, ...]:
    """The upstream columns a source path reads: the column itself, else the nearest enclosing column
    (a JSON text or struct read into), else the fields under it (a whole struct read)."""
    by_path = {_fold(parse_path(column.name)): column.name for column in upstream}
    structs = {_fold(parse_path(column.name)) for column in upstream if column.type.startswith("struct<")}
    wanted = _fold(source)
    if wanted in by_path:
        return (by_path[wanted],)
    for cut in range(len(wanted) - 1, 0, -1):
        if wanted[:cut] in by_path:
            # A value read as JSON text is descended into; a struct lacking the field gives nulls.
            return () if wanted[:cut] in structs else (by_path[wanted[:cut]],)
    return tuple(name for path, name in by_path.items() if path[: len(wanted)] == wanted)


def job_lineage(job: JobConfig, upstream: Sequence[Column], upstream_asset: str) -> Lineage:
    """Each column a job writes, with the upstream columns it is computed from.

    A leaf depends on the upstream column its source path names (matched case-insensitively, as Glue
    matches); a struct on the union of its fields' dependencies. A source found nowhere upstream gives a
    column of nulls, with no dependencies.
    """
    leaf_deps: dict[tuple[str, ...], tuple[ColumnDep, ...]] = {}
    for mapping in job.mappings:
        names = _upstream_columns(mapping.source, upstream)
        leaf_deps.setdefault(mapping.target, tuple(ColumnDep(upstream_asset, name) for name in names))
    lineage: list[tuple[str, tuple[ColumnDep, ...]]] = []
    for column in target_schema(job):
        path = parse_path(column.name)
        deps: list[ColumnDep] = []
        for target, target_deps in leaf_deps.items():
            if target[: len(path)] == path:
                deps.extend(dep for dep in target_deps if dep not in deps)
        lineage.append((column.name, tuple(deps)))
    return tuple(lineage)


class FlowColumns(NamedTuple):
    """Schemas of the three data assets of a flow and the lineage of the two written ones."""

    raw_input: tuple[Column, ...]
    staging: tuple[Column, ...]
    output: tuple[Column, ...]
    staging_lineage: Lineage
    output_lineage: Lineage


def flow_columns(input_job: JobConfig, output_job: JobConfig) -> FlowColumns:
    """Schemas and lineage through both jobs: output column <- staging column <- raw JSON path."""
    raw = source_schema(input_job)
    staging = target_schema(input_job)
    return FlowColumns(
        raw_input=raw,
        staging=staging,
        output=target_schema(output_job),
        staging_lineage=job_lineage(input_job, raw, RAW_INPUT),
        output_lineage=job_lineage(output_job, staging, STAGING),
    )


def flow_line(path: Path, flow: str) -> int | None:
    """The 1-based line where `flow` is declared under `flows:` in a flow file (for code references)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    declared = re.compile(rf"^\s+['\"]?{re.escape(flow)}['\"]?\s*:")
    in_flows = False
    for number, line in enumerate(lines, start=1):
        if re.match(r"^flows\s*:", line):
            in_flows = True
        elif in_flows and declared.match(line):
            return number
    return None

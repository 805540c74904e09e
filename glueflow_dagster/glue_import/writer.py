"""Writing the converted flow: a flow file's `flows:` entry or a `glueflow_dagster.GlueFlows` component.

An existing file is merged into, never overwritten: a flow of the same name is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glueflow_dagster.glue_import.arguments import with_defaults
from glueflow_dagster.glue_import.report import ImportGlueError, ImportReport


def dump_yaml(document: Any) -> str:
    import yaml

    # Flow style for leaf lists and small mappings: mappings print as `- [id, long, event_id, long]`.
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=120)


def flow_document(report: ImportReport) -> dict[str, Any]:
    return {"flows": {report.flow: with_defaults(report.entry, report.variables)}}


def write_flow_file(report: ImportReport, path: Path) -> Path:
    """Write the flow into `path`, adding it to the file's `flows:` when the file exists."""
    import yaml

    document: dict[str, Any] = {"flows": {}}
    if path.exists():
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {"flows": {}}
        except yaml.YAMLError as err:
            raise ImportGlueError(f"{path}: not valid YAML, not merged: {getattr(err, 'problem', err)}") from None
        if not isinstance(document, dict) or not isinstance(document.get("flows", {}), dict):
            raise ImportGlueError(f"{path}: expected a top-level 'flows:' mapping, not merged")
        document.setdefault("flows", {})
        if report.flow in document["flows"]:
            raise ImportGlueError(f"{path}: flow {report.flow!r} already exists; remove it or choose another --flow")
    document["flows"][report.flow] = with_defaults(report.entry, report.variables)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(document), encoding="utf-8")
    return path


COMPONENT_TYPE = "glueflow_dagster.GlueFlows"


def write_component(report: ImportReport, directory: Path) -> Path:
    """Write `directory/defs.yaml`: a `glueflow_dagster.GlueFlows` component holding the flow."""
    import yaml

    path = directory / "defs.yaml"
    document: dict[str, Any] = {"type": COMPONENT_TYPE, "attributes": {"flows": {}}}
    if path.exists():
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or document
        except yaml.YAMLError as err:
            raise ImportGlueError(f"{path}: not valid YAML, not merged: {getattr(err, 'problem', err)}") from None
        if not isinstance(document, dict) or document.get("type") != COMPONENT_TYPE:
            raise ImportGlueError(f"{path}: not a {COMPONENT_TYPE} component, not merged")
        attributes = document.setdefault("attributes", {})
        if not isinstance(attributes, dict) or not isinstance(attributes.setdefault("flows", {}), dict):
            raise ImportGlueError(f"{path}: attributes.flows is not a mapping, not merged")
        if report.flow in attributes["flows"]:
            raise ImportGlueError(f"{path}: flow {report.flow!r} already exists; remove it or choose another --flow")
    document["attributes"]["flows"][report.flow] = with_defaults(report.entry, report.variables)
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(document), encoding="utf-8")
    return path

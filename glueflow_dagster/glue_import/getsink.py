"""Glue Studio's sink: `glueContext.getSink(...)`, then `setCatalogInfo`, `setFormat` and `writeFrame`.

Glue Studio writes an S3 target that updates the Data Catalog as four statements:

    sink = glueContext.getSink(path="s3://...", connection_type="s3", updateBehavior="UPDATE_IN_DATABASE",
                               partitionKeys=["year"], enableUpdateCatalog=True, transformation_ctx="sink")
    sink.setCatalogInfo(catalogDatabase="db", catalogTableName="table")
    sink.setFormat("glueparquet", compression="snappy")
    sink.writeFrame(frame)

They are read as one sink step, the same as `write_dynamic_frame.from_options(frame, connection_type,
connection_options={"path", "partitionKeys", "compression"}, format, format_options)`, at the
`getSink` line; `updateBehavior`, `enableUpdateCatalog` and `setCatalogInfo` update the Data Catalog,
which glueflow does not (the files written are the same): each needs the user. awsglue's signatures:
`getSink(connection_type, format=None, transformation_ctx="", **options)`, `setFormat(format, **options)`,
`setCatalogInfo(catalogDatabase, catalogTableName, catalogId=None)`, `writeFrame(dynamic_frame, info="")`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Protocol

from glueflow_dagster.glue_import.report import NEEDS_USER, ReportItem
from glueflow_dagster.glue_import.values import DictValue, Unresolved, plain


class GlueScript(Protocol):
    """What of `script.GlueScript` the sink reader uses (a protocol: `script` imports this module)."""

    label: str
    items: list[ReportItem]

    def evaluate(self, node: ast.expr) -> Any: ...

    def unsupported(self, what: str, message: str, line: int | None) -> None: ...


CATALOG_UPDATES = ("updateBehavior", "enableUpdateCatalog")


@dataclass
class SinkBuilder:
    """What a getSink call and the calls on its result say, until `writeFrame` makes it a sink step."""

    line: int
    args: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    format_options: dict[str, Any] = field(default_factory=dict)
    written: bool = False


def _bind(script: GlueScript, call: ast.Call, positional: tuple[str, ...], name: str) -> dict[str, Any]:
    bound: dict[str, Any] = {}
    for index, node in enumerate(call.args):
        if isinstance(node, ast.Starred) or index >= len(positional):
            raise Unresolved(f"{name}: positional argument #{index + 1} not understood", call.lineno)
        bound[positional[index]] = script.evaluate(node)
    for keyword in call.keywords:
        if keyword.arg is None:
            raise Unresolved(f"{name}: **kwargs cannot be read without running the script", call.lineno)
        bound[keyword.arg] = script.evaluate(keyword.value)
    return bound


def get_sink(script: GlueScript, call: ast.Call) -> SinkBuilder:
    """`glueContext.getSink(...)`: its connection type, format and options, kept until writeFrame."""
    bound = _bind(script, call, ("connection_type", "format", "transformation_ctx"), "getSink")
    builder = SinkBuilder(call.lineno)
    for key, value in bound.items():
        if key in ("connection_type", "format", "transformation_ctx"):
            builder.args[key] = value
        else:
            builder.options[key] = value
    return builder


def sink_method(script: GlueScript, builder: SinkBuilder, call: ast.Call, method: str) -> dict[str, Any] | None:
    """`setFormat`, `setCatalogInfo`, `writeFrame` on a getSink result; anything else is reported.

    Returns, for writeFrame, the arguments of the sink step (`script` adds it at the getSink line)."""
    if method == "setFormat":
        bound = _bind(script, call, ("format",), "setFormat")
        builder.args["format"] = bound.pop("format", None)
        builder.format_options.update(bound)
        return None
    if method == "setCatalogInfo":
        bound = _bind(script, call, ("catalogDatabase", "catalogTableName", "catalogId"), "setCatalogInfo")
        table = f"{plain(bound.get('catalogDatabase'))}.{plain(bound.get('catalogTableName'))}"
        why = (
            f"setCatalogInfo: Glue adds the written files to table {table}; glueflow writes S3 only "
            "(the files are the same): add them with a crawler or Athena's MSCK REPAIR TABLE"
        )
        script.items.append(ReportItem(NEEDS_USER, "catalog", why, table, script.label, call.lineno))
        return None
    if method == "writeFrame":
        bound = _bind(script, call, ("frame", "info"), "writeFrame")
        frame = bound.get("frame")
        if builder.written:
            script.unsupported("step", "second writeFrame of one sink: a glueflow job writes once", call.lineno)
        builder.written = True
        options = {k: v for k, v in builder.options.items() if k not in CATALOG_UPDATES}
        args = {
            **builder.args,
            "frame": frame,
            "connection_options": DictValue(options),
            "format_options": DictValue(builder.format_options),
            "catalog_updates": {k: v for k, v in builder.options.items() if k in CATALOG_UPDATES},
        }
        return args
    script.unsupported("step", f"getSink(...).{method}: not converted", call.lineno)
    return None


def report_catalog_updates(script: GlueScript, args: dict[str, Any], location: str, line: int) -> list[ReportItem]:
    """getSink's updateBehavior/enableUpdateCatalog: the Data Catalog update glueflow does not make."""
    return [
        ReportItem(
            NEEDS_USER,
            f"{location} ({key})",
            "glueflow writes the S3 location, not the Data Catalog (the files written are the same)",
            plain(value),
            script.label,
            line,
        )
        for key, value in (args.get("catalog_updates") or {}).items()
    ]

"""Spark settings and Spark DataFrame writes in a Glue script, read from its syntax tree.

Glue jobs that write an Iceberg table set Spark's catalog settings in the script (`SparkConf().set(k, v)`,
`SparkSession.builder.config(k, v)`, `spark.conf.set(k, v)`) or as the job's `--conf` parameter, turn the
mapped DynamicFrame into a Spark DataFrame (`frame.toDF()`) and write it with
`df.writeTo("glue_catalog.db.table").append()` or
`glueContext.write_data_frame.from_catalog(frame=df, database=..., table_name=...)`. This module reads
those statements (the settings into `script.spark_conf`, the write as a sink step's arguments);
`iceberg` converts them. Nothing here decides what converts: every setting is judged there.
"""

from __future__ import annotations

import ast
from typing import Any, Protocol

from glueflow_dagster.glue_import.values import LineList, Opaque, Text, Unresolved, dotted

_CONF_CLASSES = ("SparkConf", "pyspark.SparkConf", "pyspark.conf.SparkConf", "conf.SparkConf")
_CONF_METHODS = ("set", "setIfMissing", "setAll", "setAppName", "setMaster")
_BUILDER_METHODS = ("config", "appName", "master", "enableHiveSupport", "getOrCreate")
_SESSIONS = ("spark_session", "SparkSession")
# DataFrameWriterV2 methods read after writeTo(...): the last one writes (append, overwrite, create, ...).
WRITE_TO = "writeTo"


class ScriptLike(Protocol):
    """What of `script.GlueScript` this module uses (a protocol: `script` imports this module)."""

    spark_conf: dict[str, tuple[Text, int]]
    unused_conf: dict[str, tuple[Text, int]]

    def evaluate(self, node: ast.expr) -> Any: ...


def method_chain(call: ast.Call) -> tuple[ast.expr, list[ast.Call]]:
    """`base.m1(...).m2(...)`: the base expression and the method calls on it, in the order they run."""
    calls: list[ast.Call] = []
    node: ast.expr = call
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        calls.append(node)
        node = node.func.value
    return node, calls[::-1]


def spark_settings(script: ScriptLike, call: ast.Call, env: dict[str, Any]) -> Opaque | None:
    """A statement that builds or sets Spark settings: the settings go into `script.spark_conf` (each with its
    line) and the value is returned (None: not a settings statement, left to the caller)."""
    base, calls = method_chain(call)
    names = [c.func.attr for c in calls]  # type: ignore[attr-defined]
    if (
        isinstance(base, ast.Call)
        and dotted(base.func) in _CONF_CLASSES
        or (isinstance(base, ast.Name) and env.get(base.id) == Opaque("SparkConf"))
    ):
        if not all(name in _CONF_METHODS for name in names):
            return None
        for method in calls:
            _conf_method(script, method, script.unused_conf)  # in effect once given to a SparkContext
        return Opaque("SparkConf")
    if dotted(base).endswith("SparkSession.builder"):
        if not all(name in _BUILDER_METHODS for name in names):
            return None
        for method in calls:
            if method.func.attr == "config" and method.args:  # type: ignore[attr-defined]
                _setting(script, method, method.args[0], method.args[1] if len(method.args) > 1 else None)
            elif method.func.attr == "config":  # type: ignore[attr-defined]
                given_conf(script, method, env)
        return Opaque("SparkSession")
    if (
        isinstance(base, ast.Attribute)
        and base.attr == "conf"
        and isinstance(base.value, ast.Name)
        and isinstance(env.get(base.value.id), Opaque)
        and env[base.value.id].kind in _SESSIONS
        and names == ["set"]
    ):
        _conf_method(script, calls[0], script.spark_conf)
        return Opaque("conf")
    return None


def given_conf(script: ScriptLike, call: ast.Call, env: dict[str, Any]) -> None:
    """`SparkContext(conf=c)`, `SparkContext.getOrCreate(conf=c)`, `builder.config(conf=c)` anywhere in `call`:
    the settings made on SparkConf objects take effect (a SparkConf never given to Spark changes nothing)."""
    for node in ast.walk(call):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        given = [k.value for k in node.keywords if k.arg == "conf"]
        if name in ("SparkContext", "SparkContext.getOrCreate", "pyspark.SparkContext") and not given and node.args:
            given = [node.args[-1]] if name.endswith("getOrCreate") else []
        for value in given:
            if isinstance(value, ast.Call):
                spark_settings(script, value, env)  # an inline SparkConf().set(...)
            script.spark_conf.update(script.unused_conf)
            script.unused_conf.clear()


def _conf_method(script: ScriptLike, call: ast.Call, into: dict[str, tuple[Text, int]]) -> None:
    method = call.func.attr  # type: ignore[attr-defined]
    if method in ("set", "setIfMissing"):
        if len(call.args) != 2:
            raise Unresolved(f"SparkConf.{method}: expected (key, value)", call.lineno)
        _setting(script, call, call.args[0], call.args[1], into)
    elif method == "setAll":
        pairs = script.evaluate(call.args[0]) if call.args else None
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise Unresolved("SparkConf.setAll: expected a literal list of (key, value) pairs", call.lineno)
        lines = getattr(pairs, "lines", None) or [call.lineno] * len(pairs)
        for (key, value), line in zip(pairs, lines, strict=False):
            _record(into, key, value, line)


def _setting(
    script: ScriptLike, call: ast.Call, key: ast.expr, value: ast.expr | None, into: dict[str, Any] | None = None
) -> None:
    if value is None:
        raise Unresolved("a Spark setting without a value", call.lineno)
    _record(script.spark_conf if into is None else into, script.evaluate(key), script.evaluate(value), call.lineno)


def _record(into: dict[str, tuple[Text, int]], key: Any, value: Any, line: int) -> None:
    if not isinstance(key, Text) or key.variables:
        raise Unresolved("a Spark setting whose key is not a literal string", line)
    if isinstance(value, bool | int | float):
        value = Text(str(value).lower() if isinstance(value, bool) else str(value))
    if not isinstance(value, Text):
        raise Unresolved(f"Spark setting {key.text}: the value is not a string", line)
    into[key.text] = (value, line)


def write_to_chain(call: ast.Call) -> tuple[ast.expr, ast.Call, list[ast.Call]] | None:
    """`<frame>.writeTo(table).<m>(...)...`: the frame expression, the writeTo call and the calls after it."""
    _base, calls = method_chain(call)
    for index, method in enumerate(calls):
        if method.func.attr == WRITE_TO:  # type: ignore[attr-defined]
            return method.func.value, method, calls[index + 1 :]  # type: ignore[attr-defined]
    return None


def write_to_args(script: ScriptLike, frame: Any, write: ast.Call, after: list[ast.Call]) -> dict[str, Any]:
    """The sink step's arguments of a writeTo chain: the table and each method after it (name, arguments)."""
    if len(write.args) != 1 or write.keywords:
        raise Unresolved("writeTo: expected one table name", write.lineno)
    methods = LineList(
        [[c.func.attr, [script.evaluate(a) for a in c.args]] for c in after],  # type: ignore[attr-defined]
        [c.lineno for c in after],
    )
    for method in after:
        if method.keywords:
            raise Unresolved(f"writeTo(...).{method.func.attr}: keyword arguments not read", method.lineno)  # type: ignore[attr-defined]
    return {"frame": frame, "table": script.evaluate(write.args[0]), "methods": methods}


def save_as_table_chain(call: ast.Call) -> tuple[ast.expr, list[ast.Call]] | None:
    """`<frame>.write.<format/mode/...>(...).saveAsTable(table)` (Spark's older writer): the frame expression and
    the calls after `.write`, the last one saveAsTable."""
    base, calls = method_chain(call)
    if not calls or calls[-1].func.attr != "saveAsTable":  # type: ignore[attr-defined]
        return None
    if not (isinstance(base, ast.Attribute) and base.attr == "write"):
        return None
    return base.value, calls


def save_as_table_args(script: ScriptLike, frame: Any, calls: list[ast.Call]) -> dict[str, Any]:
    """The sink step's arguments of a saveAsTable chain, in writeTo's terms: `format("iceberg")` is
    `using("iceberg")`, `mode("append")` is `append()` (Spark's default mode fails on an existing table)."""
    last = calls[-1]
    if len(last.args) != 1 or last.keywords:
        raise Unresolved("saveAsTable: expected one table name (format=, mode= keywords are not read)", last.lineno)
    methods: list[list[Any]] = []
    lines: list[int] = []
    mode = None
    for call in calls[:-1]:
        name = call.func.attr  # type: ignore[attr-defined]
        if call.keywords:
            raise Unresolved(f"write.{name}: keyword arguments not read", call.lineno)
        arguments = [script.evaluate(a) for a in call.args]
        if name == "mode" and len(arguments) == 1 and isinstance(arguments[0], Text):
            mode = (arguments[0].text.lower(), call.lineno)
            continue
        methods.append(["using" if name == "format" else name, arguments])
        lines.append(call.lineno)
    final = (
        "append"
        if mode is not None and mode[0] == "append"
        else f"saveAsTable in mode {mode[0] if mode else 'errorifexists'!r}"
    )
    methods.append([final, []])
    lines.append(mode[1] if mode is not None else last.lineno)
    return {"frame": frame, "table": script.evaluate(last.args[0]), "methods": LineList(methods, lines)}

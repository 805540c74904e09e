"""One Glue script read statement by statement from its syntax tree, and the one job it describes.

The script is parsed with Python's `ast` and never executed (it imports awsglue/pyspark, which are not
installed here, and running someone's ETL to read its shape would be unsafe). Each statement is a
recognised step (source, ApplyMapping, sink), Glue set-up, logging, or reported with its line.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glueflow_dagster.glue_import.getsink import SinkBuilder, get_sink, sink_method
from glueflow_dagster.glue_import.report import DEFAULT, NEEDS_USER, UNSUPPORTED, ImportGlueError, ReportItem
from glueflow_dagster.glue_import.shapes import ShapeReader
from glueflow_dagster.glue_import.sparkwrites import (
    given_conf,
    save_as_table_args,
    save_as_table_chain,
    spark_settings,
    write_to_args,
    write_to_chain,
)
from glueflow_dagster.glue_import.values import Frame, Opaque, Text, Unresolved, ValueTooLarge, dotted

MAX_SCRIPT_BYTES = 5 * 1024 * 1024  # a Glue script larger than this is not a script we can read
MAX_NESTING = 100  # syntax tree levels; Glue scripts use about 15 (a def, a loop, a call, a dict, a list)


@dataclass
class Step:
    """One recognised DynamicFrame operation; `kind` is source | mapping | sink | other."""

    kind: str
    line: int
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[int, ...] = ()


_SOURCE_OPTIONS = ("connection_type", "connection_options", "format", "format_options", "transformation_ctx")
_SOURCE_SIGNATURE = (*_SOURCE_OPTIONS, "push_down_predicate")
_CATALOG_SIGNATURE = (
    "database",
    "table_name",
    "redshift_tmp_dir",
    "transformation_ctx",
    "push_down_predicate",
    "additional_options",
    "catalog_id",
)
_CATALOG_SINK_SIGNATURE = (
    "frame",
    "database",
    "table_name",
    "redshift_tmp_dir",
    "transformation_ctx",
    "additional_options",
    "catalog_id",
)
_SINK_SIGNATURE = ("frame", "connection_type", "connection_options", "format", "format_options", "transformation_ctx")
# awsglue's ApplyMapping.apply(frame, mappings, case_sensitive, transformation_ctx, info, stageThreshold,
# totalThreshold): positional arguments are bound in this order.
_MAPPING_SIGNATURE = (
    "frame",
    "mappings",
    "case_sensitive",
    "transformation_ctx",
    "info",
    "stageThreshold",
    "totalThreshold",
)
_METHOD_MAPPING_SIGNATURE = (
    "mappings",
    "case_sensitive",
    "transformation_ctx",
    "info",
    "stageThreshold",
    "totalThreshold",
)
_THRESHOLDS = ("transformation_ctx", "info", "stageThreshold", "totalThreshold")
# awsglue's transforms that are mapping steps (see `transforms`): Class.apply(frame, ...) and the
# DynamicFrame method of the same step, with their positional order.
_TRANSFORM_SIGNATURES = {
    "SelectFields": ("paths", *_THRESHOLDS),
    "DropFields": ("paths", *_THRESHOLDS),
    "RenameField": ("old_name", "new_name", *_THRESHOLDS),
    "ResolveChoice": ("specs", "choice", "database", "table_name", *_THRESHOLDS, "catalog_id"),
    "DropNullFields": _THRESHOLDS,
}
_TRANSFORM_METHODS = {
    "select_fields": "SelectFields",
    "drop_fields": "DropFields",
    "rename_field": "RenameField",
    "resolveChoice": "ResolveChoice",
}
_QUALITY_CALLS = ("EvaluateDataQuality().process_rows", "EvaluateDataQuality.apply")
_SETUP_CALLS = ("SparkContext", "SparkContext.getOrCreate", "GlueContext", "Job", "SparkSession.builder")
_INSPECTIONS = ("printSchema", "show", "count")
_REPARTITIONS = ("coalesce", "repartition")  # the same records in other Spark partitions
_NOT_SPARK = object()  # `_spark_call`'s answer for a call that is no Spark setting, DataFrame or DataFrame write


def read_script_file(path: Path) -> str:
    if not path.is_file():
        raise ImportGlueError(f"{path}: script not found")
    data = path.read_bytes()
    if len(data) > MAX_SCRIPT_BYTES:
        raise ImportGlueError(f"{path}: {len(data):,} bytes is too large for a Glue script")
    try:
        return data.decode("utf-8-sig")  # editors on Windows write a BOM
    except UnicodeDecodeError as err:
        raise ImportGlueError(f"{path}: not UTF-8 text (byte {err.start})") from None


def parse_script(text: str, label: str) -> ast.Module:
    """The script's syntax tree, or one line saying why it is not one the importer reads.

    Python's own parser gives up on deep nesting with MemoryError or RecursionError (`not` a hundred
    thousand times); the importer's evaluation recurses once per level, so it takes MAX_NESTING levels.
    """
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ImportGlueError(f"{label}: line {line}: a null byte; a Python script is text, not valid Python")
    try:
        tree = ast.parse(text, filename=label)
    except SyntaxError as err:
        where = f"line {err.lineno}: " if err.lineno is not None else ""
        raise ImportGlueError(f"{label}: {where}not valid Python: {err.msg}") from None
    except (MemoryError, RecursionError):
        raise ImportGlueError(f"{label}: nested too deeply for Python's parser; not a Glue script") from None
    deepest = _nested_over(tree, MAX_NESTING)
    if deepest is not None:
        raise ImportGlueError(
            f"{label}: line {deepest}: nested over {MAX_NESTING} levels deep (a chain of over {MAX_NESTING} "
            "operators, calls or brackets); the importer does not evaluate it"
        )
    return tree


def _nested_over(tree: ast.AST, limit: int) -> int | None:
    """The line of the first node nested deeper than `limit` in the tree, or None (no recursion: any depth)."""
    stack: list[tuple[ast.AST, int, int]] = [(tree, 0, 1)]
    while stack:
        node, depth, line = stack.pop()
        line = getattr(node, "lineno", line)
        if depth > limit:
            return line
        stack.extend((child, depth + 1, line) for child in ast.iter_child_nodes(node))
    return None


class GlueScript(ShapeReader):
    """What one Glue script does, read statement by statement from its syntax tree."""

    def __init__(self, text: str, label: str, namespace: dict[str, str] | None = None) -> None:
        super().__init__(namespace)
        self.text = text
        self.label = label
        self.steps: list[Step] = []
        self.items: list[ReportItem] = []
        self.job_init: int | None = None
        self.job_commit: int | None = None
        self.setup_lines: list[int] = []
        self.log_lines: list[int] = []
        self.spark_conf: dict[str, tuple[Text, int]] = {}  # Spark settings the script makes (key -> value, line)
        self.unused_conf: dict[str, tuple[Text, int]] = {}  # set on a SparkConf not (yet) given to Spark
        self._init_shapes()
        tree = parse_script(text, label)
        self._statements(tree.body)
        self.finish_shapes()

    def _statements(self, statements: Sequence[ast.stmt]) -> None:
        for statement in statements:
            try:
                self._statement(statement)
            except Unresolved as err:
                self.unsupported("step", str(err), err.line or statement.lineno)
                self._failed(statement)
            except ValueTooLarge as err:
                raise ImportGlueError(f"{self.label}: line {statement.lineno}: {err}") from None

    def _failed(self, statement: ast.stmt) -> None:
        """A statement that could not be read still produces a frame, so later steps trace through it."""
        value = getattr(statement, "value", None)
        if not isinstance(value, ast.Call) or self.value_call(value):
            return
        name = dotted(value.func).replace("()", "(...)")
        self.steps.append(Step("other", statement.lineno, name, inputs=self._frames_in(value)))
        frame = Frame(len(self.steps) - 1)
        targets = statement.targets if isinstance(statement, ast.Assign) else [getattr(statement, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name):
                self._env[target.id] = frame

    def unsupported(self, what: str, message: str, line: int | None) -> None:
        self.items.append(ReportItem(UNSUPPORTED, what, message, source=self.label, line=line))

    # -- statements

    def _statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Pass):
            return  # imports select names; the calls that use them are what is judged
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return  # a docstring or a bare literal
        if self._shape(node):
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            self._call_statement(node.value, target=None)
            return
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            self._assign(node.targets[0].id, node.value)
            return
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Tuple | ast.List)
            and isinstance(node.value, ast.Tuple | ast.List)
            and len(node.targets[0].elts) == len(node.value.elts)
            and all(isinstance(t, ast.Name) for t in node.targets[0].elts)
        ):
            values = [self.evaluate(v) for v in node.value.elts]  # `a, b = x, y`: all read before any is bound
            for target, value in zip(node.targets[0].elts, values, strict=True):
                self._env[target.id] = value  # type: ignore[attr-defined]
            return
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            self._assign(node.target.id, node.value)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            # A definition does nothing by itself; a call to it is reported as an unconverted step.
            self._env.pop(node.name, None)
            if node.name in self._functions:
                return  # reported by finish_shapes: read where a call runs it, or not converted
            self.items.append(
                ReportItem(
                    NEEDS_USER,
                    "step",
                    f"def {node.name} (lines {node.lineno}-{node.end_lineno}): not converted; calls to it are reported",
                    source=self.label,
                    line=node.lineno,
                )
            )
            return
        kind = type(node).__name__
        lines = (
            f"line {node.lineno}"
            if node.end_lineno in (None, node.lineno)
            else f"lines {node.lineno}-{node.end_lineno}"
        )
        self.unsupported("step", f"{kind} statement ({lines}): not converted", node.lineno)

    def _assign(self, name: str, value: ast.expr) -> None:
        if isinstance(value, ast.Call) and not self.value_call(value):
            result = self._call_statement(value, target=name)
            if result is not None:
                self._env[name] = result
            else:
                self._env.pop(name, None)  # an unsupported step: its result is unknown
            return
        if isinstance(value, ast.Attribute) and value.attr in ("spark_session", "sparkContext"):
            self.setup_lines.append(value.lineno)
            self._env[name] = Opaque(value.attr)
            return
        self._env[name] = self.evaluate(value)

    def _call_statement(self, call: ast.Call, target: str | None) -> Any:
        """Classify one call; returns the value bound to `target` (a Frame, an Opaque) or None."""
        name = dotted(call.func)
        last = name.rsplit(".", 1)[-1]
        receiver = (
            self._env.get(call.func.value.id)
            if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
            else None
        )
        if last == "getResolvedOptions":
            return self._resolved_options(call)
        spark = self._spark_call(call, name, last)
        if spark is not _NOT_SPARK:
            return spark
        given_conf(self, call, self._env)  # SparkContext(conf=...) anywhere in the call: its settings apply
        if name in _SETUP_CALLS or name.startswith("SparkSession.builder") or last == "get_logger":
            self.setup_lines.append(call.lineno)
            return Opaque("logger" if last == "get_logger" else name)
        if name in ("logging.getLogger", "logging.basicConfig"):
            self.setup_lines.append(call.lineno)  # Python's logging: output for a person, no data effect
            return Opaque("logger")
        if isinstance(receiver, Opaque) and receiver.kind == "Job" and last in ("init", "commit"):
            if last == "init":
                self.job_init = call.lineno
            else:
                self.job_commit = call.lineno
            return None
        if name == "print" or (isinstance(receiver, Opaque) and receiver.kind == "logger"):
            self.log_lines.append(call.lineno)
            return None
        if isinstance(receiver, Frame) and last in _INSPECTIONS:
            self.log_lines.append(call.lineno)  # printSchema()/show()/count(): output for a person, no data effect
            return None
        if name.endswith(("create_dynamic_frame.from_options", "create_dynamic_frame_from_options")):
            return self._add_step("source", call, "create_dynamic_frame.from_options", _SOURCE_SIGNATURE)
        if name.endswith(("create_dynamic_frame.from_catalog", "create_dynamic_frame_from_catalog")):
            return self._add_step("catalog", call, "create_dynamic_frame.from_catalog", _CATALOG_SIGNATURE)
        if name.endswith(("write_dynamic_frame.from_options", "write_dynamic_frame_from_options")):
            self._add_step("sink", call, "write_dynamic_frame.from_options", _SINK_SIGNATURE)
            return None  # the sink's return value is never a frame anything reads
        if name.endswith(("write_dynamic_frame.from_catalog", "write_dynamic_frame_from_catalog")):
            self._add_step("sink", call, "write_dynamic_frame.from_catalog", _CATALOG_SINK_SIGNATURE)
            return None
        if name == "ApplyMapping.apply" or name.endswith(".ApplyMapping.apply"):
            return self._add_step("mapping", call, "ApplyMapping.apply", _MAPPING_SIGNATURE)
        if last == "apply_mapping" and isinstance(call.func, ast.Attribute):
            frame = self.evaluate(call.func.value)
            if isinstance(frame, Frame):
                step = self._add_step("mapping", call, ".apply_mapping", _METHOD_MAPPING_SIGNATURE)
                self.steps[step.step].args["frame"] = frame
                self.steps[step.step].inputs = (frame.step,)
                return step
        transform = name.removesuffix(".apply").rsplit(".", 1)[-1] if name.endswith(".apply") else None
        if transform in _TRANSFORM_SIGNATURES:
            signature = ("frame", *_TRANSFORM_SIGNATURES[transform])
            return self._add_step("transform", call, f"{transform}.apply", signature)
        if last in _TRANSFORM_METHODS and isinstance(call.func, ast.Attribute):
            frame = self.evaluate(call.func.value)
            if isinstance(frame, Frame):
                transform = _TRANSFORM_METHODS[last]
                step = self._add_step("transform", call, f"{transform}.{last}", _TRANSFORM_SIGNATURES[transform])
                self.steps[step.step].args["frame"] = frame
                self.steps[step.step].inputs = (frame.step,)
                return step
        if name.endswith(_QUALITY_CALLS):
            return self._quality(call, name)
        if last == "getSink" and isinstance(call.func, ast.Attribute):
            return get_sink(self, call)
        if isinstance(receiver, SinkBuilder):
            args = sink_method(self, receiver, call, last)
            if args is not None:  # writeFrame: the sink step, at the getSink line
                frame = args.get("frame")
                inputs = (frame.step,) if isinstance(frame, Frame) else ()
                self.steps.append(Step("sink", receiver.line, "getSink", args, inputs))
            return None
        return self._other(call, name)

    def _spark_call(self, call: ast.Call, name: str, last: str) -> Any:
        """Spark settings, toDF, coalesce/repartition and the DataFrame writes (see `sparkwrites`): the value
        bound to the statement's target, or _NOT_SPARK when the call is none of them."""
        settings = spark_settings(self, call, self._env)
        if settings is not None:  # SparkConf().set(...), SparkSession.builder.config(...), spark.conf.set(...)
            self.setup_lines.append(call.lineno)
            return settings
        dataframe = self._dataframe(call)
        if dataframe is not None:
            return dataframe
        if last in _REPARTITIONS and isinstance(call.func, ast.Attribute):
            frame = (
                self._call_statement(call.func.value, target=None)
                if isinstance(call.func.value, ast.Call)
                else self._env.get(call.func.value.id)
                if isinstance(call.func.value, ast.Name)
                else None
            )
            if isinstance(frame, Frame):
                self._repartitioned(call, last)
                return frame  # the same records in other partitions: the frame it was called on
        write = write_to_chain(call)
        if write is not None and (frame := self._dataframe(write[0])) is not None:
            args = write_to_args(self, frame, write[1], write[2])
            self.steps.append(Step("sink", call.lineno, "writeTo", args, (frame.step,)))
            return None
        saved = save_as_table_chain(call)
        if saved is not None and (frame := self._dataframe(saved[0])) is not None:
            args = save_as_table_args(self, frame, saved[1])
            self.steps.append(Step("sink", call.lineno, "saveAsTable", args, (frame.step,)))
            return None
        if name.endswith(("write_data_frame.from_catalog", "write_data_frame_from_catalog")):
            self._add_step("sink", call, "write_data_frame.from_catalog", _CATALOG_SINK_SIGNATURE)
            return None
        return _NOT_SPARK

    def _dataframe(self, node: ast.expr) -> Frame | None:
        """A Spark DataFrame the script made with `frame.toDF()` (a step of kind dataframe: the same records),
        or a name bound to one; None for anything else (a DataFrame from spark.sql, toDF with arguments, ...)."""
        if isinstance(node, ast.Name):
            bound = self._env.get(node.id)
            return bound if isinstance(bound, Frame) else None
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (node.func.attr == "toDF" and not node.args and not node.keywords or node.func.attr in _REPARTITIONS)
        ):
            return None
        frame = self._dataframe(node.func.value)
        if frame is not None and node.func.attr in _REPARTITIONS:
            if self.steps[frame.step].kind != "dataframe":
                return None  # a DynamicFrame's: read by _call_statement
            self._repartitioned(node, node.func.attr)
            return frame
        if frame is None or self.steps[frame.step].kind == "dataframe":
            return None  # DataFrame.toDF(...) renames columns: not the DynamicFrame's toDF
        self.steps.append(Step("dataframe", node.lineno, ".toDF", {"frame": frame}, (frame.step,)))
        return Frame(len(self.steps) - 1)

    def _repartitioned(self, call: ast.Call, method: str) -> None:
        self.items.append(
            ReportItem(
                DEFAULT,
                "step",
                f"{method}(): the same records in other Spark partitions; glueflow sizes its parts itself "
                "(target_file_bytes)",
                source=self.label,
                line=call.lineno,
            )
        )

    def _quality(self, call: ast.Call, name: str) -> Frame:
        """Glue's EvaluateDataQuality: its frame and ruleset; `builder` reports the asset check it would become."""
        nodes = dict(zip(("frame", "ruleset"), call.args, strict=False))
        nodes.update({k.arg: k.value for k in call.keywords if k.arg in ("frame", "ruleset")})
        args: dict[str, Any] = {}
        for key, node in nodes.items():
            try:
                args[key] = self.evaluate(node)
            except Unresolved:
                args[key] = None  # a ruleset built at run time: reported without its rules
        frame = args.get("frame")
        inputs = (frame.step,) if isinstance(frame, Frame) else self._frames_in(call)
        self.steps.append(Step("quality", call.lineno, name.replace("()", "(...)"), args, inputs))
        return Frame(len(self.steps) - 1)

    def _other(self, call: ast.Call, name: str) -> Frame:
        """Any other call (Filter, Join, ResolveChoice, spark.sql, toDF, ...): reported with its line."""
        inputs = self._frames_in(call)
        shown = name.replace("()", "(...)")
        if "write_dynamic_frame" in name or "getSink" in name:
            why = "only write_dynamic_frame and getSink to S3 are converted"
        elif "create_dynamic_frame" in name or "getSource" in name:
            why = "only create_dynamic_frame.from_options on S3 is converted"
        elif inputs:
            why = "transform not converted (glueflow has ApplyMapping only)"
        else:
            why = "call not converted"
        self.unsupported("step", f"{shown}: {why}", call.lineno)
        self.steps.append(Step("other", call.lineno, shown, inputs=inputs))
        return Frame(len(self.steps) - 1)

    def _frames_in(self, call: ast.Call) -> tuple[int, ...]:
        """The steps whose frames a call mentions (its inputs, for tracing what reaches the sink)."""
        found = (
            value.step
            for node in ast.walk(call)
            if isinstance(node, ast.Name) and isinstance(value := self._env.get(node.id), Frame)
        )
        return tuple(dict.fromkeys(found))

    def _add_step(self, kind: str, call: ast.Call, name: str, signature: Sequence[str]) -> Frame:
        bound: dict[str, Any] = {}
        for index, node in enumerate(call.args):
            if isinstance(node, ast.Starred) or index >= len(signature):
                raise Unresolved(f"{name}: positional argument #{index + 1} not understood", call.lineno)
            bound[signature[index]] = self._argument(signature[index], node)
        for keyword in call.keywords:
            if keyword.arg is None:
                raise Unresolved(f"{name}: **kwargs cannot be read without running the script", call.lineno)
            if keyword.arg not in signature:
                self.unsupported("step", f"{name}: argument {keyword.arg}= not converted", keyword.value.lineno)
                continue
            bound[keyword.arg] = self._argument(keyword.arg, keyword.value)
        inputs = (bound["frame"].step,) if isinstance(bound.get("frame"), Frame) else ()
        self.steps.append(Step(kind, call.lineno, name, bound, inputs))
        return Frame(len(self.steps) - 1)

    def _argument(self, key: str, node: ast.expr) -> Any:
        """A step's argument; `frame=x.toDF()` is the DataFrame step it makes."""
        if key == "frame" and isinstance(node, ast.Call) and (dataframe := self._dataframe(node)) is not None:
            return dataframe
        return self.evaluate(node)

    def _resolved_options(self, call: ast.Call) -> Opaque:
        if len(call.args) < 2:
            raise Unresolved("getResolvedOptions without an argument list", call.lineno)
        names = self.evaluate(call.args[1])
        if not isinstance(names, list) or not all(isinstance(n, Text) and not n.variables for n in names):
            raise Unresolved("getResolvedOptions: the argument list is not a literal list of names", call.lineno)
        for name in names:
            self.args.setdefault(name.text, call.lineno)
        return Opaque("args")


# --- one job: source -> ApplyMapping -> sink -------------------------------------------------------


@dataclass
class JobShape:
    """The converted pieces of one script (None where the script had no convertible counterpart)."""

    source: Step | None = None
    mapping: Step | None = None
    sink: Step | None = None
    before: list[Step] = field(default_factory=list)  # transforms between the source and ApplyMapping
    after: list[Step] = field(default_factory=list)  # transforms between ApplyMapping and the sink
    quality: list[Step] = field(default_factory=list)  # EvaluateDataQuality of a frame on the way to the sink


def job_shape(script: GlueScript) -> JobShape:
    """Trace the sink's frame back to its source; anything else on or off that path is reported."""
    shape = JobShape()
    sinks = [s for s in script.steps if s.kind == "sink"]
    if not sinks:
        if not any("write_dynamic_frame" in s.name for s in script.steps):  # else: already reported
            script.unsupported("step", "no write_dynamic_frame.from_options sink: nothing to convert", None)
        for step in script.steps:  # recognised transforms would otherwise go unreported
            if step.kind == "transform":
                script.unsupported("step", f"{step.name}: no sink to fold it into; not converted", step.line)
            elif step.kind == "quality":
                shape.quality.append(step)
        return shape
    for extra in sinks[1:]:
        script.unsupported("step", "second sink: a glueflow job writes one location", extra.line)
    shape.sink = sinks[0]
    if not shape.sink.inputs:
        script.unsupported("step", "the sink's frame= is not a frame read by the script", shape.sink.line)
    ancestors = _ancestors(script, shape.sink)
    _frame_kinds(script, shape.sink, ancestors)
    mappings = [s for s in ancestors if s.kind == "mapping"]
    sources = [s for s in ancestors if s.kind in ("source", "catalog")]
    for extra in mappings[:-1]:
        script.unsupported("step", "a second ApplyMapping on the way to the sink is not converted", extra.line)
    for extra in sources[1:]:
        script.unsupported("step", f"{extra.name}: a second source; a glueflow job reads one location", extra.line)
    if not mappings and sources:
        script.unsupported(
            "step", "no ApplyMapping between source and sink: glueflow needs the mappings", sources[0].line
        )
    # Other steps on the path are already reported with their line; what is convertible is still converted.
    shape.mapping = mappings[-1] if mappings else None  # the one nearest the source
    shape.source = sources[0] if sources else None
    reaching = {id(step) for step in ancestors}
    position = {id(step): index for index, step in enumerate(script.steps)}  # by identity: equal steps differ
    for step in script.steps:
        if step.kind == "quality" and id(step) in reaching:
            script.unsupported(
                "step", f"{step.name}: its result (data quality outcomes) reaches the sink; not converted", step.line
            )
        elif step.kind == "quality":
            shape.quality.append(step)  # its outcomes are published, never written: reported with its check
        elif step.kind not in ("other", "quality", "dataframe") and step is not shape.sink and id(step) not in reaching:
            script.unsupported("step", f"{step.name}: its frame never reaches the sink; not converted", step.line)
    transforms = sorted((s for s in ancestors if s.kind == "transform"), key=lambda s: position[id(s)])
    mapped_at = position[id(shape.mapping)] if shape.mapping is not None else len(script.steps)
    if shape.mapping is None:
        for step in transforms:
            script.unsupported("step", f"{step.name}: no ApplyMapping to fold it into; not converted", step.line)
        transforms = []
    shape.before = [s for s in transforms if position[id(s)] < mapped_at]
    shape.after = [s for s in transforms if position[id(s)] > mapped_at]
    return shape


DATAFRAME_SINKS = ("writeTo", "saveAsTable", "write_data_frame.from_catalog")


def _frame_kinds(script: GlueScript, sink: Step, ancestors: list[Step]) -> None:
    """A Spark DataFrame write takes the DataFrame of `frame.toDF()`, a DynamicFrame write a DynamicFrame;
    anything else fails in Glue (no such method or argument type), so it is reported, never converted."""
    direct = script.steps[sink.inputs[0]] if sink.inputs else None
    if any(step.kind == "other" for step in ancestors):
        return  # an unconverted step on the way: reported at its own line
    if sink.name in DATAFRAME_SINKS and direct is not None and direct.kind != "dataframe":
        script.unsupported(
            "step", f"{sink.name}: the frame is a DynamicFrame; a Spark DataFrame write takes frame.toDF()", sink.line
        )
    for step in ancestors:
        if step.kind == "dataframe" and (sink.name not in DATAFRAME_SINKS or step is not direct):
            script.unsupported(
                "step",
                "toDF(): a Spark DataFrame on the way to a DynamicFrame step; only a DataFrame write of it converts",
                step.line,
            )


def _ancestors(script: GlueScript, sink: Step) -> list[Step]:
    """The steps whose frames reach `sink`: depth first from the sink, first input first.

    An explicit stack, not recursion: a script may chain thousands of steps, each reading the last.
    """
    ancestors: list[Step] = []
    seen: set[int] = set()
    stack = [iter(sink.inputs)]
    while stack:
        index = next(stack[-1], None)
        if index is None:
            stack.pop()
            continue
        if index in seen:
            continue
        seen.add(index)
        ancestors.append(script.steps[index])
        stack.append(iter(script.steps[index].inputs))
    return ancestors

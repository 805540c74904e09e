"""`glueflow import-glue`: turn existing AWS Glue PySpark scripts, jobs and triggers into a glueflow flow.

Why this exists: people who already run the Glue guide's Input/Output jobs should not retype every
ApplyMapping tuple and S3 option. The scripts are read with Python's `ast` and never executed (they
import awsglue/pyspark, which are not installed here, and running someone's ETL to read its shape
would be unsafe). Only the shapes the guide uses are converted; every other statement is reported
with its line, so nothing is silently dropped. The result is a flow entry in glueflow.yaml's exact
schema (validated with `config.parse_config`) plus a report of what was converted, what came from
defaults and what needs the user.

Plain Python (no Dagster import). boto3 is imported only by the `--from-aws` reader.
"""

from __future__ import annotations

import ast
import json
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glueflow_dagster.core.config import ConfigError, parse_config
from glueflow_dagster.core.mapping import MappingError, parse_mappings

CONVERTED, DEFAULT, NEEDS_USER, UNSUPPORTED = "converted", "default", "needs_user", "unsupported"
STATUSES = (CONVERTED, DEFAULT, NEEDS_USER, UNSUPPORTED)
DEFAULT_SCHEDULE = "*/30 * * * *"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHOWN = 80  # longest value shown in a report line: values are bounded, never whole documents
_MAX_SCRIPT_BYTES = 5 * 1024 * 1024  # a Glue script larger than this is not a script we can read


class ImportGlueError(ValueError):
    """Input the importer cannot read at all (missing file, not Python, AWS error); one line."""


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _short_where(where: str) -> str:
    """A long `file:line` cut at its start: the file's name and the line are what a reader looks for."""
    return where if len(where) <= _SHOWN else "..." + where[-(_SHOWN - 3) :]


# --- the report ------------------------------------------------------------------------------------


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
                value = "" if item.value is None else _short(item.value)
                value = value if len(value) <= 34 else value[:31] + "..."
                lines.append(f"  {_short_where(item.where()):<26} {item.field:<34} {value:<34} {item.message}")
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


# --- static evaluation of script expressions -------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A string from the script; `${X}` marks a Glue job argument (`args['X']`)."""

    text: str
    variables: tuple[str, ...] = ()

    def __add__(self, other: Text) -> Text:
        return Text(self.text + other.text, tuple(dict.fromkeys(self.variables + other.variables)))


class LineList(list):  # type: ignore[type-arg]
    """A list literal that remembers the script line of each element (for mapping errors)."""

    lines: list[int]


@dataclass(frozen=True)
class Frame:
    """A DynamicFrame: the index of the step that produced it."""

    step: int


@dataclass(frozen=True)
class Opaque:
    """A Glue/Spark set-up object (GlueContext, Job, logger, the resolved-options dict)."""

    kind: str


class Unresolved(Exception):
    """An expression the importer cannot evaluate without running the script."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _dotted(node: ast.AST) -> str:
    """`glueContext.create_dynamic_frame.from_options` for an attribute chain; `?` for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}()"
    return "?"


# --- one script ------------------------------------------------------------------------------------


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
_SINK_SIGNATURE = ("frame", "connection_type", "connection_options", "format", "format_options", "transformation_ctx")
_MAPPING_SIGNATURE = ("frame", "mappings", "transformation_ctx", "info", "stageThreshold", "totalThreshold")
_METHOD_MAPPING_SIGNATURE = (
    "mappings",
    "case_sensitive",
    "transformation_ctx",
    "info",
    "stageThreshold",
    "totalThreshold",
)
_SETUP_CALLS = ("SparkContext", "SparkContext.getOrCreate", "GlueContext", "Job", "SparkSession.builder")
_LOG_METHODS = ("info", "warn", "warning", "error", "debug")
_INSPECTIONS = ("printSchema", "show", "count")


class GlueScript:
    """What one Glue script does, read statement by statement from its syntax tree."""

    def __init__(self, text: str, label: str) -> None:
        self.label = label
        self.steps: list[Step] = []
        self.items: list[ReportItem] = []
        self.args: dict[str, int] = {}  # getResolvedOptions names -> line
        self.job_init: int | None = None
        self.job_commit: int | None = None
        self.setup_lines: list[int] = []
        self.log_lines: list[int] = []
        self._env: dict[str, Any] = {}
        try:
            tree = ast.parse(text, filename=label)
        except SyntaxError as err:
            raise ImportGlueError(f"{label}: line {err.lineno}: not valid Python: {err.msg}") from None
        for statement in tree.body:
            try:
                self._statement(statement)
            except Unresolved as err:
                self.unsupported("step", str(err), err.line or statement.lineno)
                self._failed(statement)

    def _failed(self, statement: ast.stmt) -> None:
        """A statement that could not be read still produces a frame, so later steps trace through it."""
        value = getattr(statement, "value", None)
        if not isinstance(value, ast.Call) or self._value_call(value):
            return
        name = _dotted(value.func).replace("()", "(...)")
        self.steps.append(Step("other", statement.lineno, name, inputs=self._frames_in(value)))
        frame = Frame(len(self.steps) - 1)
        targets = statement.targets if isinstance(statement, ast.Assign) else [getattr(statement, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name):
                self._env[target.id] = frame

    # -- report helpers

    def unsupported(self, what: str, message: str, line: int | None) -> None:
        self.items.append(ReportItem(UNSUPPORTED, what, message, source=self.label, line=line))

    # -- statements

    def _statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Pass):
            return  # imports select names; the calls that use them are what is judged
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return  # a docstring or a bare literal
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

    def _value_call(self, call: ast.Call) -> bool:
        """Calls that only build a string: `"...".format(...)`, `"/".join([...])`, `args.get("X")`, json.dumps."""
        func = call.func
        if _dotted(func) == "json.dumps":
            return True
        if not isinstance(func, ast.Attribute):
            return False
        if (
            func.attr in ("format", "join")
            and isinstance(func.value, ast.Constant)
            and isinstance(func.value.value, str)
        ):
            return True
        return (
            func.attr == "get" and isinstance(func.value, ast.Name) and self._env.get(func.value.id) == Opaque("args")
        )

    def _assign(self, name: str, value: ast.expr) -> None:
        if isinstance(value, ast.Call) and not self._value_call(value):
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
        name = _dotted(call.func)
        last = name.rsplit(".", 1)[-1]
        receiver = (
            self._env.get(call.func.value.id)
            if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
            else None
        )
        if last == "getResolvedOptions":
            return self._resolved_options(call)
        if name in _SETUP_CALLS or name.startswith("SparkSession.builder") or last == "get_logger":
            self.setup_lines.append(call.lineno)
            return Opaque("logger" if last == "get_logger" else name)
        if isinstance(receiver, Opaque) and receiver.kind == "Job" and last in ("init", "commit"):
            if last == "init":
                self.job_init = call.lineno
            else:
                self.job_commit = call.lineno
            return None
        if name == "print" or (isinstance(receiver, Opaque) and receiver.kind == "logger" and last in _LOG_METHODS):
            self.log_lines.append(call.lineno)
            return None
        if isinstance(receiver, Frame) and last in _INSPECTIONS:
            self.log_lines.append(call.lineno)  # printSchema()/show()/count(): output for a person, no data effect
            return None
        if name.endswith(("create_dynamic_frame.from_options", "create_dynamic_frame_from_options")):
            return self._add("source", call, "create_dynamic_frame.from_options", _SOURCE_SIGNATURE)
        if name.endswith(("create_dynamic_frame.from_catalog", "create_dynamic_frame_from_catalog")):
            return self._add("catalog", call, "create_dynamic_frame.from_catalog", _CATALOG_SIGNATURE)
        if name.endswith(("write_dynamic_frame.from_options", "write_dynamic_frame_from_options")):
            self._add("sink", call, "write_dynamic_frame.from_options", _SINK_SIGNATURE)
            return None  # the sink's return value is never a frame anything reads
        if name == "ApplyMapping.apply" or name.endswith(".ApplyMapping.apply"):
            return self._add("mapping", call, "ApplyMapping.apply", _MAPPING_SIGNATURE)
        if last == "apply_mapping" and isinstance(call.func, ast.Attribute):
            frame = self.evaluate(call.func.value)
            if isinstance(frame, Frame):
                step = self._add("mapping", call, ".apply_mapping", _METHOD_MAPPING_SIGNATURE)
                self.steps[step.step].args["frame"] = frame
                self.steps[step.step].inputs = (frame.step,)
                return step
        return self._other(call, name)

    def _other(self, call: ast.Call, name: str) -> Frame:
        """Any other call (Filter, Join, ResolveChoice, spark.sql, toDF, ...): reported with its line."""
        inputs = self._frames_in(call)
        shown = name.replace("()", "(...)")
        if "write_dynamic_frame" in name or "getSink" in name:
            why = "only write_dynamic_frame.from_options to S3 is converted"
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

    def _add(self, kind: str, call: ast.Call, name: str, signature: Sequence[str]) -> Frame:
        bound: dict[str, Any] = {}
        for index, node in enumerate(call.args):
            if isinstance(node, ast.Starred) or index >= len(signature):
                raise Unresolved(f"{name}: positional argument #{index + 1} not understood", call.lineno)
            bound[signature[index]] = self.evaluate(node)
        for keyword in call.keywords:
            if keyword.arg is None:
                raise Unresolved(f"{name}: **kwargs cannot be read without running the script", call.lineno)
            if keyword.arg not in signature:
                self.unsupported("step", f"{name}: argument {keyword.arg}= not converted", keyword.value.lineno)
                continue
            bound[keyword.arg] = self.evaluate(keyword.value)
        inputs = (bound["frame"].step,) if isinstance(bound.get("frame"), Frame) else ()
        self.steps.append(Step(kind, call.lineno, name, bound, inputs))
        return Frame(len(self.steps) - 1)

    def _resolved_options(self, call: ast.Call) -> Opaque:
        if len(call.args) < 2:
            raise Unresolved("getResolvedOptions without an argument list", call.lineno)
        names = self.evaluate(call.args[1])
        if not isinstance(names, list) or not all(isinstance(n, Text) and not n.variables for n in names):
            raise Unresolved("getResolvedOptions: the argument list is not a literal list of names", call.lineno)
        for name in names:
            self.args.setdefault(name.text, call.lineno)
        return Opaque("args")

    # -- expressions

    def evaluate(self, node: ast.expr) -> Any:
        """The value of a literal expression; `args['X']` becomes Text('${X}'); anything else is Unresolved."""
        line = getattr(node, "lineno", None)
        if isinstance(node, ast.Constant):
            return Text(node.value) if isinstance(node.value, str) else node.value
        if isinstance(node, ast.Name):
            if node.id in self._env:
                return self._env[node.id]
            raise Unresolved(f"name {node.id!r} is not defined by a literal assignment in the script", line)
        if isinstance(node, ast.List | ast.Tuple):
            values = LineList(self.evaluate(element) for element in node.elts)
            values.lines = [element.lineno for element in node.elts]
            return values if isinstance(node, ast.List) else _TupleValue(values, values.lines)
        if isinstance(node, ast.Dict):
            result: dict[str, Any] = {}
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:
                    raise Unresolved("dict unpacking (**) cannot be read without running the script", line)
                key_value = self.evaluate(key)
                if not isinstance(key_value, Text) or key_value.variables:
                    raise Unresolved("dict key is not a literal string", line)
                result[key_value.text] = self.evaluate(value)
            return result
        if isinstance(node, ast.Subscript):
            container = self.evaluate(node.value)
            key = self.evaluate(node.slice)
            if isinstance(container, Opaque) and container.kind == "args" and isinstance(key, Text):
                return self._argument(key.text, line)
            if isinstance(container, dict) and isinstance(key, Text) and key.text in container:
                return container[key.text]
            if isinstance(container, list) and isinstance(key, int) and -len(container) <= key < len(container):
                return container[key]
            raise Unresolved(f"subscript {ast.unparse(node)!r} cannot be evaluated", line)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.evaluate(node.left), self.evaluate(node.right)
            if isinstance(left, Text) and isinstance(right, Text):
                return left + right
            if isinstance(left, list) and isinstance(right, list):
                joined = LineList([*left, *right])
                joined.lines = [
                    *getattr(left, "lines", [line] * len(left)),
                    *getattr(right, "lines", [line] * len(right)),
                ]
                return joined
            raise Unresolved(f"{ast.unparse(node)!r}: '+' of these values is not understood", line)
        if isinstance(node, ast.JoinedStr):
            text = Text("")
            for part in node.values:
                value = self.evaluate(part.value) if isinstance(part, ast.FormattedValue) else self.evaluate(part)
                if not isinstance(value, Text):
                    raise Unresolved(f"f-string part {ast.unparse(part)!r} is not a string", line)
                text = text + value
            return text
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return -node.operand.value
        if isinstance(node, ast.Call) and _dotted(node.func) == "json.dumps" and len(node.args) == 1:
            value = self.evaluate(node.args[0])  # exclusions are often written json.dumps([...])
            return Text(json.dumps(_plain(value)))
        if isinstance(node, ast.Call) and self._value_call(node):
            return self._string_call(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            return self._percent(node)
        shown = _short(ast.unparse(node))
        raise Unresolved(f"{shown!r} cannot be evaluated without running the script", line)

    def _string_call(self, call: ast.Call) -> Text:
        """`"s3://{}/raw".format(args["bucket"])`, `"/".join([...])`, `args.get("X")`."""
        assert isinstance(call.func, ast.Attribute)
        line = call.lineno
        if call.func.attr == "get":
            key = self.evaluate(call.args[0]) if len(call.args) == 1 and not call.keywords else None
            if not isinstance(key, Text):
                raise Unresolved(f"{_short(ast.unparse(call))!r}: args.get with a default is not converted", line)
            return self._argument(key.text, line)
        template = str(call.func.value.value)  # type: ignore[attr-defined]
        if call.func.attr == "join":
            parts = self.evaluate(call.args[0]) if len(call.args) == 1 else None
            if not isinstance(parts, list) or not all(isinstance(p, Text) for p in parts):
                raise Unresolved(f"{_short(ast.unparse(call))!r}: join of values that are not strings", line)
            text = Text("")
            for index, part in enumerate(parts):
                text = text + (Text(template) if index else Text("")) + part
            return text
        positional = [self.evaluate(a) for a in call.args]
        named = {k.arg: self.evaluate(k.value) for k in call.keywords if k.arg is not None}
        text, automatic = Text(""), 0
        for literal, field_name, spec, conversion in string.Formatter().parse(template):
            text = text + Text(literal)
            if field_name is None:
                continue
            if spec or conversion:
                raise Unresolved(f"{_short(ast.unparse(call))!r}: format specs are not converted", line)
            if field_name == "":
                value, automatic = (positional[automatic] if automatic < len(positional) else None), automatic + 1
            elif field_name.isdigit():
                value = positional[int(field_name)] if int(field_name) < len(positional) else None
            else:
                value = named.get(field_name)
            if not isinstance(value, Text):
                raise Unresolved(f"{_short(ast.unparse(call))!r}: field {{{field_name}}} is not a string", line)
            text = text + value
        return text

    def _percent(self, node: ast.BinOp) -> Text:
        """`"s3://%s/raw" % args["bucket"]` (only %s)."""
        template, values = self.evaluate(node.left), self.evaluate(node.right)
        values = list(values) if isinstance(values, list) else [values]
        pieces = template.text.split("%s") if isinstance(template, Text) and not template.variables else None
        if pieces is None or "%" in "".join(pieces) or len(pieces) - 1 != len(values):
            raise Unresolved(
                f"{_short(ast.unparse(node))!r}: only '%s' formatting of strings is converted", node.lineno
            )
        text = Text(pieces[0])
        for value, piece in zip(values, pieces[1:], strict=True):
            if not isinstance(value, Text):
                raise Unresolved(f"{_short(ast.unparse(node))!r}: a %s value is not a string", node.lineno)
            text = text + value + Text(piece)
        return text

    def _argument(self, name: str, line: int | None) -> Text:
        if name not in self.args:
            raise Unresolved(f"args[{name!r}] is not in the getResolvedOptions list", line)
        if not _IDENT.match(name):
            raise Unresolved(f"argument {name!r} cannot become an environment variable (not an identifier)", line)
        return Text("${" + name + "}", (name,))


class _TupleValue(LineList):
    """A tuple literal (kept distinct from lists only so mapping entries print as written)."""

    def __init__(self, values: list[Any], lines: list[int]) -> None:
        super().__init__(values)
        self.lines = lines


def _plain(value: Any) -> Any:
    """Text -> str, lists recursively; for json.dumps and for the flow entry."""
    if isinstance(value, Text):
        return value.text
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- one job: source -> ApplyMapping -> sink -------------------------------------------------------


@dataclass
class JobShape:
    """The converted pieces of one script (None where the script had no convertible counterpart)."""

    source: Step | None = None
    mapping: Step | None = None
    sink: Step | None = None


def _job_shape(script: GlueScript) -> JobShape:
    """Trace the sink's frame back to its source; anything else on or off that path is reported."""
    shape = JobShape()
    sinks = [s for s in script.steps if s.kind == "sink"]
    if not sinks:
        if not any("write_dynamic_frame" in s.name for s in script.steps):  # else: already reported
            script.unsupported("step", "no write_dynamic_frame.from_options sink: nothing to convert", None)
        return shape
    for extra in sinks[1:]:
        script.unsupported("step", "second sink: a glueflow job writes one location", extra.line)
    shape.sink = sinks[0]
    if not shape.sink.inputs:
        script.unsupported("step", "the sink's frame= is not a frame read by the script", shape.sink.line)
    ancestors: list[Step] = []  # depth first from the sink, first input first

    def visit(step: Step) -> None:
        for index in step.inputs:
            parent = script.steps[index]
            if all(parent is not seen for seen in ancestors):
                ancestors.append(parent)
                visit(parent)

    visit(shape.sink)
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
    for step in script.steps:
        if step.kind != "other" and step is not shape.sink and all(step is not a for a in ancestors):
            script.unsupported("step", f"{step.name}: its frame never reaches the sink; not converted", step.line)
    return shape


# --- the flow ----------------------------------------------------------------------------------------


@dataclass
class AwsJob:
    """What `--from-aws` read about one Glue job."""

    name: str
    script_location: str
    default_arguments: dict[str, str] = field(default_factory=dict)
    max_concurrent_runs: int = 1
    role: str | None = None
    command: str = "glueetl"
    max_retries: int = 0


@dataclass
class AwsFacts:
    """The two jobs and what their triggers say."""

    input_job: AwsJob
    output_job: AwsJob
    schedule: str | None = None  # converted five-field cron
    items: list[ReportItem] = field(default_factory=list)


_SOURCE_KEYS_INPUT = {"paths", "recurse", "exclusions"}
_SOURCE_KEYS_OUTPUT = {"paths", "recurse", "exclusions", "maxBand", "boundedFiles", "boundedSize"}


class _Builder:
    """Accumulates the flow entry and the report while both scripts are converted."""

    def __init__(
        self,
        flow: str,
        input_script: GlueScript,
        output_script: GlueScript,
        catalog_locations: Mapping[str, str],
        aws: AwsFacts | None,
    ) -> None:
        self.flow = flow
        self.inp, self.out = input_script, output_script
        self.catalog = dict(catalog_locations)
        self.aws = aws
        self.items: list[ReportItem] = []
        self.used_variables: dict[str, None] = {}
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
            self.add(UNSUPPORTED, key, f"expected a string, got {_short(_plain(value))!r}", script=script, line=line)
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
        self.used_variables.update(dict.fromkeys(value.variables))
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

    # -- sources and sinks

    def source(
        self, script: GlueScript, step: Step | None, location: str, job: str, set_uri: bool = True
    ) -> str | None:
        """Fill `location` (input or staging) from a source step; returns its uri."""
        if step is None:
            return None
        if step.kind == "catalog":
            return self._catalog_source(script, step, location, set_uri)
        args = step.args
        uri = None
        if not self._s3_json(script, step, "source"):
            return None
        options = args.get("connection_options", {})
        if not isinstance(options, dict):
            self.add(
                UNSUPPORTED,
                f"{location}.uri",
                "connection_options is not a literal dict",
                script=script,
                line=step.line,
            )
            return None
        paths = options.get("paths")
        if not isinstance(paths, list) or len(paths) != 1:
            shown = _short(_plain(paths)) if paths is not None else "missing"
            self.add(
                UNSUPPORTED,
                f"{location}.uri",
                f"'paths' must hold exactly one S3 path, got {shown}",
                script=script,
                line=step.line,
            )
        else:
            uri = self.text(paths[0], f"{location}.uri", script, step.line, expandable=True)
            if uri is not None and set_uri:
                self.set(f"{location}.uri", uri, CONVERTED, "connection_options paths", script, step.line)
        recurse = options.get("recurse")
        if recurse is None:
            # Glue reads only the top level unless recurse is set; glueflow's own default is true.
            self.set(
                f"{location}.recurse", False, DEFAULT, "Glue's default (no 'recurse' in the script)", script, step.line
            )
        elif isinstance(recurse, bool):
            self.set(f"{location}.recurse", recurse, CONVERTED, "connection_options recurse", script, step.line)
        else:
            self.add(
                UNSUPPORTED,
                f"{location}.recurse",
                f"expected True or False, got {_short(_plain(recurse))}",
                script=script,
                line=step.line,
            )
        if "exclusions" in options:
            self._exclusions(script, step, options["exclusions"], location)
        allowed = _SOURCE_KEYS_OUTPUT if job == "output_job" else _SOURCE_KEYS_INPUT
        for key, value in options.items():
            if key in ("paths", "recurse", "exclusions"):
                continue
            shown = _plain(value)
            if key == "useS3ListImplementation":
                self.add(
                    DEFAULT,
                    f"{location} (useS3ListImplementation)",
                    "not needed: glueflow always lists S3 in pages",
                    shown,
                    script,
                    step.line,
                )
            elif key in ("groupFiles", "groupSize"):
                # No flow key: glueflow always groups small objects (stage._SMALL_OBJECT_BYTES, _GROUP_BYTES).
                self.add(
                    DEFAULT,
                    f"{location} ({key})",
                    "not needed: glueflow always reads objects of up to 1 MiB as group files of about 64 MiB "
                    "(Glue's groupFiles; the records are the same, parts are target_file_bytes)",
                    shown,
                    script,
                    step.line,
                )
            elif key == "compressionType":
                self._compression_type(script, step, value, location)
            elif key in allowed:
                self._bounded(script, step, key, value)
            elif key in ("maxBand", "boundedFiles", "boundedSize", "maxFilesInBand"):
                self.add(
                    UNSUPPORTED,
                    f"{location} ({key})",
                    f"not supported on the {job.split('_')[0]} job's source by glueflow",
                    shown,
                    script,
                    step.line,
                )
            else:
                self.add(
                    UNSUPPORTED,
                    f"{location} ({key})",
                    "connection option not supported by glueflow",
                    shown,
                    script,
                    step.line,
                )
        self._format_options(script, step, location)
        return uri

    def _exclusions(self, script: GlueScript, step: Step, value: Any, location: str) -> None:
        globs = _plain(value)
        if isinstance(value, Text):
            try:
                globs = json.loads(value.text)  # Glue takes exclusions as a JSON string of a list
            except ValueError:
                globs = None
        if not isinstance(globs, list) or not all(isinstance(g, str) and g for g in globs):
            self.add(
                UNSUPPORTED,
                f"{location}.exclusions",
                f"expected a JSON list of globs, got {_short(_plain(value))}",
                script=script,
                line=step.line,
            )
            return
        if any("${" in g for g in globs):
            self.add(
                UNSUPPORTED,
                f"{location}.exclusions",
                "job arguments in exclusions are not expanded by glueflow",
                script=script,
                line=step.line,
            )
            return
        self.set(f"{location}.exclusions", globs, CONVERTED, "connection_options exclusions", script, step.line)

    def _compression_type(self, script: GlueScript, step: Step, value: Any, location: str) -> None:
        if isinstance(value, Text) and value.text.lower() == "gzip":
            self.add(
                DEFAULT,
                f"{location} (compressionType)",
                "glueflow reads gzip by the .gz suffix and the gzip magic bytes",
                "gzip",
                script,
                step.line,
            )
        else:
            self.add(
                UNSUPPORTED,
                f"{location} (compressionType)",
                "only gzip input is read by glueflow",
                _plain(value),
                script,
                step.line,
            )

    def _bounded(self, script: GlueScript, step: Step, key: str, value: Any) -> None:
        target = {"maxBand": "max_band_ms", "boundedFiles": "max_files_per_run", "boundedSize": "max_bytes_per_run"}[
            key
        ]
        number = _plain(value)
        if isinstance(number, str) and number.isdigit():
            number = int(number)  # Glue takes these as strings ("1000")
        if not isinstance(number, int) or isinstance(number, bool) or number < (0 if key == "maxBand" else 1):
            self.add(
                UNSUPPORTED,
                f"output_job.{target}",
                f"{key}: expected a whole number, got {_short(number)!r}",
                script=script,
                line=step.line,
            )
            return
        self.set(f"output_job.{target}", number, CONVERTED, f"connection_options {key}", script, step.line)

    def _format_options(self, script: GlueScript, step: Step, location: str) -> None:
        options = step.args.get("format_options") or {}
        if not isinstance(options, dict):
            self.add(
                UNSUPPORTED,
                f"{location} (format_options)",
                "format_options is not a literal dict",
                script=script,
                line=step.line,
            )
            return
        for key, value in options.items():
            shown = _plain(value)
            if key.lower() == "multiline" and shown in (False, "false", "False"):
                self.add(
                    DEFAULT,
                    f"{location} (format_options {key})",
                    "one JSON record per line: glueflow's format",
                    shown,
                    script,
                    step.line,
                )
            elif key.lower() == "multiline" and shown in (True, "true", "True"):
                self.set(f"{location}.multiline", True, CONVERTED, f"format_options {key}", script, step.line)
            elif key.lower() == "multiline":
                self.add(
                    UNSUPPORTED,
                    f"{location} (format_options {key})",
                    "expected true or false",
                    shown,
                    script,
                    step.line,
                )
            elif key == "jsonPath" and isinstance(shown, str) and _json_path_problem(shown) is None:
                self.set(f"{location}.jsonPath", shown, CONVERTED, "format_options jsonPath", script, step.line)
            elif key == "jsonPath":
                problem = _json_path_problem(shown) if isinstance(shown, str) else "expected a literal string"
                self.add(
                    UNSUPPORTED,
                    f"{location} (format_options jsonPath)",
                    f"glueflow cannot read this jsonPath: {problem}",
                    shown,
                    script,
                    step.line,
                )
            else:
                self.add(
                    UNSUPPORTED,
                    f"{location} (format_options {key})",
                    "JSON format option not supported by glueflow",
                    shown,
                    script,
                    step.line,
                )

    def _s3_json(self, script: GlueScript, step: Step, what: str) -> bool:
        ok = True
        connection = step.args.get("connection_type")
        if not (isinstance(connection, Text) and connection.text.lower() == "s3"):
            shown = _plain(connection) if connection is not None else "missing"
            self.add(
                UNSUPPORTED,
                "step",
                f"{step.name}: connection_type {shown!r} not supported (S3 only)",
                script=script,
                line=step.line,
            )
            ok = False
        fmt = step.args.get("format")
        if not (isinstance(fmt, Text) and fmt.text.lower() == "json"):
            shown = _plain(fmt) if fmt is not None else "missing"
            self.add(
                UNSUPPORTED,
                "step",
                f"{step.name}: format {shown!r} not supported (JSON lines only)",
                script=script,
                line=step.line,
            )
            ok = False
        if what == "source" and step.args.get("push_down_predicate"):
            self.add(
                UNSUPPORTED, "step", f"{step.name}: push_down_predicate not supported", script=script, line=step.line
            )
        return ok

    def _catalog_source(self, script: GlueScript, step: Step, location: str, set_uri: bool) -> str | None:
        database, table = step.args.get("database"), step.args.get("table_name")
        name = f"{_plain(database)}.{_plain(table)}"
        if name not in self.catalog:
            self.add(
                UNSUPPORTED,
                f"{location}.uri",
                f"create_dynamic_frame.from_catalog({name}): glueflow reads S3 locations, not the Data Catalog; "
                f"give the table's location with --catalog-location {name}=s3://bucket/prefix",
                script=script,
                line=step.line,
            )
            return None
        uri = self.catalog[name]
        if set_uri:
            self.set(
                f"{location}.uri",
                uri,
                CONVERTED,
                f"location of catalog table {name} (--catalog-location)",
                script,
                step.line,
            )
        self.set(
            f"{location}.recurse",
            True,
            DEFAULT,
            "a catalog table reads all its partitions (sub-prefixes)",
            script,
            step.line,
        )
        self.add(
            NEEDS_USER,
            f"{location} (format)",
            f"glueflow reads JSON lines: check that table {name} is JSON",
            script=script,
            line=step.line,
        )
        for key in ("push_down_predicate", "additional_options", "redshift_tmp_dir", "catalog_id"):
            if step.args.get(key):
                self.add(
                    UNSUPPORTED,
                    f"{location} ({key})",
                    "from_catalog option not supported by glueflow",
                    _plain(step.args[key]),
                    script,
                    step.line,
                )
        return uri

    def sink(self, script: GlueScript, step: Step | None, location: str) -> str | None:
        if step is None:
            return None
        self._s3_json(script, step, "sink")  # reported; the options are still read, so all is reported at once
        options = step.args.get("connection_options", {})
        if not isinstance(options, dict):
            self.add(
                UNSUPPORTED,
                f"{location}.uri",
                "connection_options is not a literal dict",
                script=script,
                line=step.line,
            )
            return None
        uri = None
        if "path" not in options:
            self.add(UNSUPPORTED, f"{location}.uri", "connection_options has no 'path'", script=script, line=step.line)
        else:
            uri = self.text(options["path"], f"{location}.uri", script, step.line, expandable=True)
            if uri is not None:
                self.set(f"{location}.uri", uri, CONVERTED, "connection_options path", script, step.line)
        compression = options.get("compression")
        if compression is None:
            self.set(
                f"{location}.compression",
                "none",
                DEFAULT,
                "Glue's default (no 'compression' in the script)",
                script,
                step.line,
            )
        elif isinstance(compression, Text) and compression.text.lower() in ("gzip", "none"):
            self.set(
                f"{location}.compression",
                compression.text.lower(),
                CONVERTED,
                "connection_options compression",
                script,
                step.line,
            )
        else:
            self.add(
                UNSUPPORTED,
                f"{location}.compression",
                "glueflow writes gzip or none",
                _plain(compression),
                script,
                step.line,
            )
        for key, value in options.items():
            if key in ("path", "compression"):
                continue
            if key == "partitionKeys" and _plain(value) == []:
                continue
            self.add(
                UNSUPPORTED,
                f"{location} ({key})",
                "sink option not supported by glueflow",
                _plain(value),
                script,
                step.line,
            )
        for key, value in (step.args.get("format_options") or {}).items():
            self.add(
                UNSUPPORTED,
                f"{location} (format_options {key})",
                "sink format option not supported by glueflow",
                _plain(value),
                script,
                step.line,
            )
        return uri

    def mappings(self, script: GlueScript, step: Step | None, job: str) -> None:
        if step is None:
            return
        raw = step.args.get("mappings")
        if not isinstance(raw, list):
            self.add(UNSUPPORTED, f"{job}.mappings", "mappings is not a list", script=script, line=step.line)
            return
        rows: list[list[str]] = []
        lines = getattr(raw, "lines", [step.line] * len(raw))
        for entry, line in zip(raw, lines, strict=True):
            parts = _plain(entry)
            if not isinstance(entry, list) or not all(isinstance(p, Text) and not p.variables for p in entry):
                self.add(
                    UNSUPPORTED,
                    f"{job}.mappings",
                    f"entry {_short(parts)!r} is not a tuple of 4 literal strings",
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
            self.add(UNSUPPORTED, f"{job}.mappings", f"{err}", script=script, line=line)
            return
        self.set(f"{job}.mappings", rows, CONVERTED, f"{step.name}: {len(rows)} mapping tuple(s)", script, step.line)
        if step.args.get("case_sensitive"):
            self.add(
                UNSUPPORTED,
                f"{job}.mappings",
                "case_sensitive=True: glueflow matches source names case-insensitively (Glue's default)",
                script=script,
                line=step.line,
            )
        total = _plain(step.args.get("totalThreshold", 0))
        stage = _plain(step.args.get("stageThreshold", 0))
        if isinstance(total, int) and not isinstance(total, bool) and total > 0:
            self.set(f"{job}.max_error_records", total, CONVERTED, "ApplyMapping totalThreshold", script, step.line)
        elif total not in (0, None):
            self.add(
                UNSUPPORTED,
                f"{job}.max_error_records",
                "totalThreshold is not a whole number",
                total,
                script,
                step.line,
            )
        if stage not in (0, None):
            self.add(
                NEEDS_USER,
                f"{job}.max_error_records",
                "stageThreshold (per Spark stage) has no glueflow equivalent; max_error_records counts the whole run",
                stage,
                script,
                step.line,
            )

    # -- the whole flow

    def build(self) -> ImportReport:
        inp, out = self.inp, self.out
        input_shape, output_shape = _job_shape(inp), _job_shape(out)
        self.source(inp, input_shape.source, "input", "input_job")
        self.mappings(inp, input_shape.mapping, "input_job")
        staging_uri = self.sink(inp, input_shape.sink, "staging")
        output_source_uri = self._output_source(output_shape.source, staging_uri)
        del output_source_uri
        self.mappings(out, output_shape.mapping, "output_job")
        self.sink(out, output_shape.sink, "output")
        self._schedule()
        self._bookmarks(input_shape, output_shape)
        self._sensor_and_concurrency()
        self._arguments()
        self._conflicting_defaults()
        self._housekeeping()
        self._iam()
        items = [*self.items, *inp.items, *out.items]
        items.sort(key=lambda i: STATUSES.index(i.status))  # stable: keeps script order within a status
        variables = {name: self._variable_default(name) for name in self.entry_variables()}
        entry = {section: _ordered(self.entry[section]) for section in self.entry}
        return ImportReport(self.flow, entry, items, variables, {"input": inp.label, "output": out.label})

    def entry_variables(self) -> list[str]:
        """The job arguments the flow entry reads as `${X}` (in order of first use)."""
        found = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", json.dumps(self.entry))
        return list(dict.fromkeys(found))

    def _output_source(self, step: Step | None, staging_uri: str | None) -> str | None:
        """The Output job's source is staging: its recurse/exclusions describe the staging location."""
        if step is None:
            return None
        uri = self.source(self.out, step, "staging", "output_job", set_uri=False)
        if uri is not None and staging_uri is not None and uri.rstrip("/") != staging_uri.rstrip("/"):
            literal = "${" not in uri and "${" not in staging_uri
            self.add(
                UNSUPPORTED if literal else NEEDS_USER,
                "staging.uri",
                f"the Output job reads {uri} but the Input job writes {staging_uri}; glueflow chains them through "
                "one staging location (the Input job's path is kept)"
                + ("" if literal else ": check they are the same"),
                script=self.out,
                line=step.line,
            )
        elif uri is not None and staging_uri is not None:
            self.add(
                CONVERTED, "staging.uri", "the Output job reads what the Input job writes", uri, self.out, step.line
            )
        return uri

    def _schedule(self) -> None:
        if self.aws is not None and self.aws.schedule is not None:
            self.entry["input_job"]["schedule"] = self.aws.schedule
            return  # reported by the trigger reader
        self.set(
            "input_job.schedule",
            DEFAULT_SCHEDULE,
            DEFAULT,
            "the guide's 30 minutes (no scheduled trigger read; --from-aws reads it)",
            None,
            None,
        )

    def _bookmarks(self, input_shape: JobShape, output_shape: JobShape) -> None:
        out = self.out
        ctx_value = output_shape.source.args.get("transformation_ctx") if output_shape.source else None
        ctx = None
        if isinstance(ctx_value, Text) and ctx_value.text:
            ctx = self.text(ctx_value, "output_job.transformation_ctx", out, output_shape.source.line, expandable=True)
        committed = out.job_init is not None and out.job_commit is not None
        option = None
        if self.aws is not None:
            option = self.aws.output_job.default_arguments.get("--job-bookmark-option", "job-bookmark-disable")
        line = output_shape.source.line if output_shape.source else None
        if ctx is None:
            self.set(
                "output_job.bookmark",
                "disable",
                CONVERTED,
                "no transformation_ctx on the Output source: every run reads all of staging (the guide before its fix)",
                out,
                line,
            )
        elif not committed:
            missing = "job.init()" if out.job_init is None else "job.commit()"
            self.set(
                "output_job.bookmark",
                "disable",
                CONVERTED,
                f"transformation_ctx but no {missing}: Glue never saves that bookmark",
                out,
                line,
            )
        elif option in (None, "job-bookmark-enable"):
            why = "transformation_ctx + job.init/job.commit" + (
                "" if option is None else " + --job-bookmark-option job-bookmark-enable"
            )
            self.set("output_job.bookmark", "enable", CONVERTED, why, out, line)
        elif option == "job-bookmark-pause":
            self.set("output_job.bookmark", "pause", CONVERTED, "--job-bookmark-option job-bookmark-pause", out, line)
        else:
            self.set(
                "output_job.bookmark",
                "disable",
                CONVERTED,
                f"--job-bookmark-option {_short(option)} (the script has a transformation_ctx)",
                out,
                line,
            )
        if ctx is not None:
            self.set(
                "output_job.transformation_ctx", ctx, CONVERTED, "the Output source's transformation_ctx", out, line
            )
        else:
            self.add(
                DEFAULT,
                "output_job.transformation_ctx",
                "glueflow's default (used if the bookmark is enabled later)",
                "bookmark_ctx",
                out,
                line,
            )
        # glueflow's Input job always keeps its own bookmark (it reads each raw object once).
        inp = self.inp
        in_ctx = input_shape.source.args.get("transformation_ctx") if input_shape.source else None
        in_option = (
            self.aws.input_job.default_arguments.get("--job-bookmark-option", "job-bookmark-disable")
            if self.aws
            else None
        )
        bookmarked = (
            isinstance(in_ctx, Text)
            and in_ctx.text
            and inp.job_commit is not None
            and in_option in (None, "job-bookmark-enable")
        )
        if bookmarked:
            self.add(
                CONVERTED,
                "input_job (bookmark)",
                "the Input job reads each raw object once (its own bookmark), as the script's transformation_ctx did",
                _plain(in_ctx),
                inp,
                input_shape.source.line if input_shape.source else None,
            )
        else:
            self.add(
                NEEDS_USER,
                "input_job (bookmark)",
                "glueflow's Input job always reads only raw objects no earlier successful run read; the Glue job "
                "rereads all input each run (no transformation_ctx/job.commit or bookmark option)",
                None,
                inp,
                input_shape.source.line if input_shape.source else None,
            )

    def _sensor_and_concurrency(self) -> None:
        if self.aws is None:
            self.add(
                DEFAULT,
                "output_job (trigger)",
                f"{self.flow}_output_sensor starts one Output run after each successful Input run (Glue's trigger)",
            )
            self.add(
                DEFAULT, "max concurrency", "1 per job (glueflow/max_concurrency tag; Glue's MaxConcurrentRuns 1)", 1
            )
            return
        self.items.extend(self.aws.items)
        for job in (self.aws.input_job, self.aws.output_job):
            where = f"Glue job {job.name}"
            if job.max_concurrent_runs != 1:
                self.add(
                    NEEDS_USER,
                    "max concurrency",
                    f"MaxConcurrentRuns {job.max_concurrent_runs}: glueflow runs each job at max concurrency 1 "
                    "(bookmarks need it)",
                    job.max_concurrent_runs,
                    source=where,
                )
            else:
                self.add(
                    CONVERTED, "max concurrency", "MaxConcurrentRuns 1 = glueflow's max concurrency 1", 1, source=where
                )
            if job.command != "glueetl":
                self.add(
                    UNSUPPORTED,
                    "job type",
                    f"Command.Name {job.command!r}: only Spark ETL jobs (glueetl) are converted",
                    job.command,
                    source=where,
                )
            if job.max_retries:
                self.add(
                    NEEDS_USER,
                    "retries",
                    "MaxRetries: glueflow does not retry a failed run (use Dagster's run retries)",
                    job.max_retries,
                    source=where,
                )
            for key, value in job.default_arguments.items():
                name = key.removeprefix("--")
                if key == "--job-bookmark-option" or name in self.entry_variables():
                    continue  # reported with the bookmark / as a variable default
                self.add(
                    NEEDS_USER,
                    "job argument",
                    f"{key}: not carried over (no glueflow equivalent, or not used by a converted step)",
                    _short(value),
                    source=where,
                )

    def _arguments(self) -> None:
        for script in (self.inp, self.out):
            for name, line in script.args.items():
                if name == "JOB_NAME":
                    self.add(
                        DEFAULT,
                        "argument JOB_NAME",
                        f"Glue's own; glueflow names the jobs {self.flow}_input_job / {self.flow}_output_job",
                        None,
                        script,
                        line,
                    )
                elif name in self.entry_variables():
                    default = self._variable_default(name)
                    how = "the flow file reads ${" + name + "}: set it where Dagster runs"
                    if default is not None:
                        how += " (defaults to the Glue job's value)"
                    self.add(NEEDS_USER, f"argument {name}", how, default, script, line)
                else:
                    self.add(
                        NEEDS_USER,
                        f"argument {name}",
                        "read by the script but used by no converted step",
                        None,
                        script,
                        line,
                    )

    def _variable_default(self, name: str) -> str | None:
        """The Glue jobs' DefaultArguments value of `--name` (the Input job's first), if usable in `${X:-...}`."""
        if self.aws is None:
            return None
        for job in (self.aws.input_job, self.aws.output_job):
            value = job.default_arguments.get(f"--{name}")
            if value is not None and "}" not in value:
                return value
        return None

    def _conflicting_defaults(self) -> None:
        if self.aws is None:
            return
        for name in self.entry_variables():
            values = [job.default_arguments.get(f"--{name}") for job in (self.aws.input_job, self.aws.output_job)]
            if None not in values and values[0] != values[1]:
                self.add(
                    NEEDS_USER,
                    f"argument {name}",
                    f"the two jobs' default values differ ({_short(values[0])} / {_short(values[1])}); "
                    "the Input job's is used",
                    values[0],
                )

    def _housekeeping(self) -> None:
        for script in (self.inp, self.out):
            if script.setup_lines:
                lines = ", ".join(str(n) for n in sorted(set(script.setup_lines)))
                self.add(
                    DEFAULT,
                    "set-up",
                    f"SparkContext/GlueContext/Job set-up (lines {lines}): not needed by glueflow",
                    None,
                    script,
                    script.setup_lines[0],
                )
            if script.log_lines:
                lines = ", ".join(str(n) for n in script.log_lines)
                self.add(
                    NEEDS_USER,
                    "logging",
                    f"print/logger calls (lines {lines}) are not carried over; glueflow records run metadata",
                    None,
                    script,
                    script.log_lines[0],
                )

    def _iam(self) -> None:
        buckets = sorted(
            {
                str(uri).removeprefix("s3://").split("/", 1)[0]
                for section in ("input", "staging", "output")
                if str(uri := self.entry[section].get("uri", "")).startswith("s3://")
            }
        )
        roles = ""
        if self.aws is not None:
            names = sorted({job.role for job in (self.aws.input_job, self.aws.output_job) if job.role})
            roles = f" (the Glue jobs ran as {', '.join(names)})" if names else ""
        self.add(
            NEEDS_USER,
            "iam",
            "the credentials Dagster runs with need s3:ListBucket and s3:GetObject on input.uri, and also "
            "s3:PutObject, s3:DeleteObject, s3:AbortMultipartUpload and s3:ListBucketMultipartUploads on "
            f"staging.uri and output.uri (the commit protocol's pending writes){roles}",
            ", ".join(buckets) or None,
        )


_KEY_ORDER = (
    "uri",
    "recurse",
    "exclusions",
    "compression",
    "schedule",
    "bookmark",
    "transformation_ctx",
    "mappings",
)


def _ordered(section: dict[str, Any]) -> dict[str, Any]:
    """Keys in the README's order, so a converted entry reads like a hand-written one."""
    rank = {key: index for index, key in enumerate(_KEY_ORDER)}
    return dict(sorted(section.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def convert_scripts(
    flow: str,
    input_text: str,
    output_text: str,
    *,
    input_label: str = "input.py",
    output_label: str = "output.py",
    catalog_locations: Mapping[str, str] | None = None,
    aws: AwsFacts | None = None,
) -> ImportReport:
    """Convert an Input and an Output Glue script into one flow entry and its migration report."""
    if not _IDENT.match(flow):
        raise ImportGlueError(f"--flow {flow!r}: flow names must be identifiers (letters, digits, underscore)")
    input_script = GlueScript(input_text, input_label)
    output_script = GlueScript(output_text, output_label)
    report = _Builder(flow, input_script, output_script, catalog_locations or {}, aws).build()
    if report.complete:
        validate_entry(flow, report.entry, report.variables)
    return report


def convert_files(
    flow: str,
    input_script: Path,
    output_script: Path,
    catalog_locations: Mapping[str, str] | None = None,
) -> ImportReport:
    texts = [_read_script(path) for path in (input_script, output_script)]
    return convert_scripts(
        flow,
        texts[0],
        texts[1],
        input_label=str(input_script),
        output_label=str(output_script),
        catalog_locations=catalog_locations,
    )


def _read_script(path: Path) -> str:
    if not path.is_file():
        raise ImportGlueError(f"{path}: script not found")
    data = path.read_bytes()
    if len(data) > _MAX_SCRIPT_BYTES:
        raise ImportGlueError(f"{path}: {len(data):,} bytes is too large for a Glue script")
    try:
        return data.decode("utf-8-sig")  # editors on Windows write a BOM
    except UnicodeDecodeError as err:
        raise ImportGlueError(f"{path}: not UTF-8 text (byte {err.start})") from None


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
        raise ImportGlueError(f"what converted is not a complete flow: {err}") from err


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


# --- writing the result ------------------------------------------------------------------------------


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


# --- Glue cron -> five-field cron ---------------------------------------------------------------------


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
        raise GlueCronError(f"schedule {_short(expression)!r}: not a Glue cron(...) expression")
    fields = match.group(1).split()
    if len(fields) != 6:
        raise GlueCronError(f"schedule {_short(expression)!r}: a Glue cron has 6 fields, got {len(fields)}")
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


# --- --from-aws ------------------------------------------------------------------------------------


def _aws_error(action: str, err: Exception) -> ImportGlueError:
    """One line naming the call and the AWS error code; never credentials, never a whole response."""
    response = getattr(err, "response", None)
    if isinstance(response, dict) and "Error" in response:
        code = response["Error"].get("Code", "error")
        message = _short(str(response["Error"].get("Message", "")))
        return ImportGlueError(f"AWS {action}: {code}: {message}")
    kind = type(err).__name__
    if kind == "NoCredentialsError":
        return ImportGlueError(
            f"AWS {action}: no credentials found (boto3's chain: environment, ~/.aws, instance role)"
        )
    if kind == "NoRegionError":
        return ImportGlueError(f"AWS {action}: no region set (AWS_REGION or AWS_DEFAULT_REGION)")
    return ImportGlueError(f"AWS {action}: {kind}: {_short(str(err))}")


def read_aws(input_job: str, output_job: str, glue: Any = None, s3: Any = None) -> tuple[AwsFacts, str, str]:
    """Read both jobs, their scripts and the triggers; returns the facts and the two script texts."""
    import boto3

    try:
        glue = glue or boto3.client("glue")  # boto3's usual chain; honours AWS_ENDPOINT_URL
        s3 = s3 or boto3.client("s3")
    except Exception as err:  # noqa: BLE001 - botocore raises many kinds; all become one line
        raise _aws_error("client", err) from None
    jobs = [_get_job(glue, name) for name in (input_job, output_job)]
    texts = [_get_script(s3, job) for job in jobs]
    facts = AwsFacts(jobs[0], jobs[1])
    try:
        triggers = [t for page in glue.get_paginator("get_triggers").paginate() for t in page.get("Triggers", [])]
    except Exception as err:  # noqa: BLE001
        raise _aws_error("GetTriggers", err) from None
    _read_triggers(facts, triggers)
    return facts, texts[0], texts[1]


def _get_job(glue: Any, name: str) -> AwsJob:
    try:
        job = glue.get_job(JobName=name)["Job"]
    except Exception as err:  # noqa: BLE001
        raise _aws_error(f"GetJob {name!r}", err) from None
    command = job.get("Command") or {}
    location = command.get("ScriptLocation")
    if not location or not str(location).startswith("s3://"):
        raise ImportGlueError(f"Glue job {name!r}: Command.ScriptLocation {_short(location)!r} is not an s3:// URI")
    return AwsJob(
        name=name,
        script_location=location,
        default_arguments=dict(job.get("DefaultArguments") or {}),
        max_concurrent_runs=int((job.get("ExecutionProperty") or {}).get("MaxConcurrentRuns", 1)),
        role=job.get("Role"),
        command=command.get("Name", "glueetl"),
        max_retries=int(job.get("MaxRetries") or 0),
    )


def _get_script(s3: Any, job: AwsJob) -> str:
    bucket, _, key = job.script_location.removeprefix("s3://").partition("/")
    action = f"GetObject {job.script_location} (script of Glue job {job.name!r})"
    try:
        body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{_MAX_SCRIPT_BYTES}")["Body"].read()
    except Exception as err:  # noqa: BLE001
        raise _aws_error(action, err) from None
    if len(body) > _MAX_SCRIPT_BYTES:
        raise ImportGlueError(f"{job.script_location}: larger than {_MAX_SCRIPT_BYTES:,} bytes, not a Glue script")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ImportGlueError(f"{job.script_location}: not UTF-8 text (byte {err.start})") from None


def _read_triggers(facts: AwsFacts, triggers: list[dict[str, Any]]) -> None:
    inp, out = facts.input_job.name, facts.output_job.name
    add: Callable[..., None] = lambda status, where, message, value=None, source=None: facts.items.append(  # noqa: E731
        ReportItem(status, where, message, value, source)
    )
    scheduled, sensor = False, False
    for trigger in triggers:
        name, kind = trigger.get("Name", "?"), trigger.get("Type")
        source = f"trigger {name}"
        starts = [a.get("JobName") for a in trigger.get("Actions") or []]
        if inp not in starts and out not in starts:
            continue
        state = trigger.get("State")
        if state not in (None, "ACTIVATED", "ACTIVATING"):
            add(
                NEEDS_USER,
                "trigger state",
                f"{state} in Glue; glueflow's schedule and sensor start running",
                state,
                source,
            )
        for action in trigger.get("Actions") or []:
            for key, value in (action.get("Arguments") or {}).items():
                # Glue passes these to the run, over the job's DefaultArguments; the flow reads ${X} instead.
                add(
                    NEEDS_USER,
                    "trigger argument",
                    f"{key} passed to {action.get('JobName')}: set it as the environment variable "
                    f"{key.removeprefix('--')} (the flow file's ${{...}} references)",
                    _short(value),
                    source,
                )
        if trigger.get("WorkflowName"):
            add(
                NEEDS_USER,
                "trigger",
                f"part of Glue workflow {_short(trigger['WorkflowName'])}: only this trigger is converted",
                None,
                source,
            )
        others = [j for j in starts if j not in (inp, out)]
        if others:
            add(
                UNSUPPORTED,
                "trigger",
                f"also starts job(s) {', '.join(map(str, others))}, which are not part of this flow",
                None,
                source,
            )
        if kind == "SCHEDULED" and inp in starts:
            expression = trigger.get("Schedule", "")
            if scheduled:
                add(
                    UNSUPPORTED,
                    "input_job.schedule",
                    "a second scheduled trigger for the Input job",
                    expression,
                    source,
                )
                continue
            scheduled = True
            try:
                facts.schedule = glue_cron_to_dagster(expression)
            except GlueCronError as err:
                add(
                    UNSUPPORTED,
                    "input_job.schedule",
                    f"{err}; the default {DEFAULT_SCHEDULE!r} is written instead",
                    expression,
                    source,
                )
                facts.schedule = DEFAULT_SCHEDULE
                continue
            add(
                CONVERTED, "input_job.schedule", f"Glue {expression} (UTC) as a five-field cron", facts.schedule, source
            )
        elif kind == "CONDITIONAL" and out in starts:
            predicate = trigger.get("Predicate") or {}
            conditions = predicate.get("Conditions") or []
            expected = [{"JobName": inp, "State": "SUCCEEDED"}]
            seen = [{"JobName": c.get("JobName"), "State": c.get("State")} for c in conditions]
            if seen == expected and conditions[0].get("LogicalOperator", "EQUALS") == "EQUALS":
                sensor = True
                add(
                    CONVERTED,
                    "output_job (trigger)",
                    f"on {inp} SUCCEEDED start {out}: becomes the flow's Output sensor",
                    None,
                    source,
                )
            else:
                shown = ", ".join(f"{c['JobName']} {c['State']}" for c in seen)
                add(
                    UNSUPPORTED,
                    "output_job (trigger)",
                    f"condition ({shown}) differs from glueflow's sensor (after each successful Input run)",
                    None,
                    source,
                )
        else:
            add(
                UNSUPPORTED,
                "trigger",
                f"{kind} trigger starting {', '.join(map(str, starts))}: only the Input schedule and the Output "
                "job's conditional trigger are converted",
                None,
                source,
            )
    if not scheduled:
        add(
            DEFAULT,
            "input_job.schedule",
            "no scheduled trigger starts the Input job; the guide's 30 minutes",
            DEFAULT_SCHEDULE,
        )
        facts.schedule = DEFAULT_SCHEDULE
    if not sensor:
        add(
            DEFAULT,
            "output_job (trigger)",
            f"no conditional trigger (on {inp} SUCCEEDED) found; the flow's Output sensor does that",
        )


def convert_aws(
    flow: str,
    input_job: str,
    output_job: str,
    catalog_locations: Mapping[str, str] | None = None,
    glue: Any = None,
    s3: Any = None,
) -> ImportReport:
    facts, input_text, output_text = read_aws(input_job, output_job, glue, s3)
    report = convert_scripts(
        flow,
        input_text,
        output_text,
        input_label=facts.input_job.script_location,
        output_label=facts.output_job.script_location,
        catalog_locations=catalog_locations,
        aws=facts,
    )
    return report


def _json_path_problem(path: str) -> str | None:
    """Why glueflow's JSON reader cannot take this jsonPath (the flow file's own check), or None."""
    from glueflow_dagster.core.json_reader import JsonPathError, parse_json_path

    try:
        parse_json_path(path)
    except JsonPathError as err:
        return str(err)
    return None

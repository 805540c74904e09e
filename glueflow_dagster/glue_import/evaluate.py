"""Static evaluation of a Glue script's expressions: literals, job arguments and string building.

Only what builds a path or a mapping list is evaluated: literals, names bound by a literal assignment,
`args['X']` (which becomes `${X}`), `+` of strings or lists, f-strings, `"...".format(...)`,
`"/".join([...])`, `"%s" % ...` and `json.dumps(...)`. Anything else raises `Unresolved`, which the
script reader reports with its line.
"""

from __future__ import annotations

import ast
import json
import string
from typing import Any

from glueflow_dagster.glue_import.report import short
from glueflow_dagster.glue_import.values import (
    IDENTIFIER,
    MAX_EVALUATION_WORK,
    MAX_VALUE_SIZE,
    DictValue,
    LineList,
    Opaque,
    Text,
    TupleValue,
    Unresolved,
    ValueTooLarge,
    concat,
    dotted,
    measure,
    plain,
)


class Evaluator:
    """The names a script bound so far, and the job arguments its getResolvedOptions call declared."""

    def __init__(self, namespace: dict[str, str] | None = None) -> None:
        self.args: dict[str, int] = {}  # getResolvedOptions names -> line
        # Job argument -> the flow file's variable name, when it is not the argument's own name (both jobs
        # take the argument for different locations: each job's value is its own variable, see `arguments`).
        self.namespace = dict(namespace or {})
        self._env: dict[str, Any] = {}
        self._work = 0  # characters and elements of every value evaluated so far (see MAX_EVALUATION_WORK)

    def value_call(self, call: ast.Call) -> bool:
        """Calls that only build a string: `"...".format(...)`, `"/".join([...])`, `args.get("X")`, json.dumps."""
        func = call.func
        if dotted(func) == "json.dumps":
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

    def evaluate(self, node: ast.expr) -> Any:
        """The value of a literal expression; `args['X']` becomes Text('${X}'); anything else is Unresolved.

        Each value's size is charged to the script's evaluation budget: values growing statement by
        statement (`l = l + [x]` thousands of times) cost time with the square of their count.
        """
        value = self._evaluate(node)
        self._work += measure(value)[0]
        if self._work > MAX_EVALUATION_WORK:
            raise ValueTooLarge(
                f"the script's expressions build over {MAX_EVALUATION_WORK:,} characters and elements in all; "
                "the importer stops evaluating"
            )
        return value

    def _evaluate(self, node: ast.expr) -> Any:
        line = getattr(node, "lineno", None)
        if isinstance(node, ast.Constant):
            return Text(node.value) if isinstance(node.value, str) else node.value
        if isinstance(node, ast.Name):
            if node.id in self._env:
                return self._env[node.id]
            raise Unresolved(f"name {node.id!r} is not defined by a literal assignment in the script", line)
        if isinstance(node, ast.List | ast.Tuple):
            kind = LineList if isinstance(node, ast.List) else TupleValue
            return kind((self.evaluate(element) for element in node.elts), [element.lineno for element in node.elts])
        if isinstance(node, ast.Dict):
            return self._dict(node)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self._add(node)
        if isinstance(node, ast.JoinedStr):
            parts: list[Text] = []
            for part in node.values:
                if isinstance(part, ast.FormattedValue) and (
                    part.format_spec is not None or part.conversion not in (-1, ord("s"))
                ):
                    # `{day:0>2}` pads and `{day!r}` quotes a value known only when the job runs.
                    raise Unresolved(
                        f"f-string field {short(ast.unparse(part))!r}: format specs and !r/!a are not converted", line
                    )
                value = self.evaluate(part.value) if isinstance(part, ast.FormattedValue) else self.evaluate(part)
                if not isinstance(value, Text):
                    raise Unresolved(f"f-string part {ast.unparse(part)!r} is not a string", line)
                parts.append(value)
            return concat(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return -node.operand.value
        if isinstance(node, ast.Call) and dotted(node.func) == "json.dumps" and len(node.args) == 1:
            value = self.evaluate(node.args[0])  # exclusions are often written json.dumps([...])
            return Text(json.dumps(plain(value)))
        if isinstance(node, ast.Call) and self.value_call(node):
            return self._string_call(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            return self._percent(node)
        shown = short(ast.unparse(node))
        raise Unresolved(f"{shown!r} cannot be evaluated without running the script", line)

    def _dict(self, node: ast.Dict) -> DictValue:
        result: dict[str, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise Unresolved("dict unpacking (**) cannot be read without running the script", node.lineno)
            key_value = self.evaluate(key)
            if not isinstance(key_value, Text) or key_value.variables:
                raise Unresolved("dict key is not a literal string", node.lineno)
            result[key_value.text] = self.evaluate(value)
        return DictValue(result)

    def _subscript(self, node: ast.Subscript) -> Any:
        line = node.lineno
        container = self.evaluate(node.value)
        key = self.evaluate(node.slice)
        if isinstance(container, Opaque) and container.kind == "args" and isinstance(key, Text):
            return self.argument(key.text, line)
        if isinstance(container, dict) and isinstance(key, Text) and key.text in container:
            return container[key.text]
        if isinstance(container, list) and isinstance(key, int) and -len(container) <= key < len(container):
            return container[key]
        raise Unresolved(f"subscript {ast.unparse(node)!r} cannot be evaluated", line)

    def _add(self, node: ast.BinOp) -> Any:
        line = node.lineno
        left, right = self.evaluate(node.left), self.evaluate(node.right)
        if isinstance(left, Text) and isinstance(right, Text):
            return left + right
        if isinstance(left, list) and isinstance(right, list):
            if measure(left)[0] + measure(right)[0] > MAX_VALUE_SIZE:  # refused before it is built
                raise ValueTooLarge(f"a list grows past {MAX_VALUE_SIZE:,} characters and elements; not evaluated")
            lines = [*getattr(left, "lines", [line] * len(left)), *getattr(right, "lines", [line] * len(right))]
            return LineList([*left, *right], lines)
        raise Unresolved(f"{ast.unparse(node)!r}: '+' of these values is not understood", line)

    def _string_call(self, call: ast.Call) -> Text:
        """`"s3://{}/raw".format(args["bucket"])`, `"/".join([...])`, `args.get("X")`."""
        assert isinstance(call.func, ast.Attribute)
        line = call.lineno
        if call.func.attr == "get":
            key = self.evaluate(call.args[0]) if len(call.args) == 1 and not call.keywords else None
            if not isinstance(key, Text):
                raise Unresolved(f"{short(ast.unparse(call))!r}: args.get with a default is not converted", line)
            return self.argument(key.text, line)
        template = str(call.func.value.value)  # type: ignore[attr-defined]
        if call.func.attr == "join":
            parts = self.evaluate(call.args[0]) if len(call.args) == 1 else None
            if not isinstance(parts, list) or not all(isinstance(p, Text) for p in parts):
                raise Unresolved(f"{short(ast.unparse(call))!r}: join of values that are not strings", line)
            separated = [Text(template)] * (2 * len(parts) - 1) if parts else []
            separated[::2] = parts
            return concat(separated)
        positional = [self.evaluate(a) for a in call.args]
        named = {k.arg: self.evaluate(k.value) for k in call.keywords if k.arg is not None}
        pieces: list[Text] = []
        automatic = 0
        for literal, field_name, spec, conversion in string.Formatter().parse(template):
            pieces.append(Text(literal))
            if field_name is None:
                continue
            if spec or conversion:
                raise Unresolved(f"{short(ast.unparse(call))!r}: format specs are not converted", line)
            if field_name == "":
                value, automatic = (positional[automatic] if automatic < len(positional) else None), automatic + 1
            elif field_name.isdigit():
                value = positional[int(field_name)] if int(field_name) < len(positional) else None
            else:
                value = named.get(field_name)
            if not isinstance(value, Text):
                raise Unresolved(f"{short(ast.unparse(call))!r}: field {{{field_name}}} is not a string", line)
            pieces.append(value)
        return concat(pieces)

    def _percent(self, node: ast.BinOp) -> Text:
        """`"s3://%s/raw" % args["bucket"]` (only %s)."""
        template, values = self.evaluate(node.left), self.evaluate(node.right)
        values = list(values) if isinstance(values, list) else [values]
        pieces = template.text.split("%s") if isinstance(template, Text) and not template.variables else None
        if pieces is None or "%" in "".join(pieces) or len(pieces) - 1 != len(values):
            raise Unresolved(f"{short(ast.unparse(node))!r}: only '%s' formatting of strings is converted", node.lineno)
        texts = [Text(pieces[0])]
        for value, piece in zip(values, pieces[1:], strict=True):
            if not isinstance(value, Text):
                raise Unresolved(f"{short(ast.unparse(node))!r}: a %s value is not a string", node.lineno)
            texts += [value, Text(piece)]
        return concat(texts)

    def argument(self, name: str, line: int | None) -> Text:
        if name not in self.args:
            raise Unresolved(f"args[{name!r}] is not in the getResolvedOptions list", line)
        if not IDENTIFIER.match(name):
            raise Unresolved(f"argument {name!r} cannot become an environment variable (not an identifier)", line)
        if name == "JOB_NAME":
            # Glue sets it to each job's own name; as ${JOB_NAME} both jobs would read one unset variable.
            raise Unresolved(
                "args['JOB_NAME'] is the Glue job's name (set by Glue, per job); glueflow has no such variable: "
                "write the name itself into the script",
                line,
            )
        variable = self.env_name(name)
        return Text("${" + variable + "}", (variable,))

    def env_name(self, argument: str) -> str:
        """The flow file's variable for job argument `argument` (its own name unless it was split per job)."""
        return self.namespace.get(argument, argument)

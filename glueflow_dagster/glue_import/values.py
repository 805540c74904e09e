"""The values the importer gives a script's expressions, read statically (never by running the script).

A string is `Text` (with the job arguments it holds, as `${X}`), a list remembers each element's line,
a DynamicFrame is the `Frame` of the step that made it, and Glue's set-up objects are `Opaque`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Bounds on what evaluation may build. A script is at most 5 MiB, so no literal reaches MAX_VALUE_SIZE
# (characters, plus one per list or dict element): only evaluation that multiplies values does
# (`p = p + p` sixty times, a list of a million references to one long string). Real values (paths,
# mapping lists, option dicts) are a few levels deep; a name bound to a list of itself, again and again,
# is not, and every walk over a value (its size, `plain`, json.dumps) would recurse that deep.
MAX_VALUE_SIZE = 8 * 1024 * 1024
MAX_VALUE_DEPTH = 32
# The sum of the sizes of every value a script's expressions evaluate to: bounds the time of values
# rebuilt statement by statement (`l = l + [x]`), each copy as long as the last.
MAX_EVALUATION_WORK = 64 * 1024 * 1024


class ValueTooLarge(Exception):
    """Evaluation would build a value over MAX_VALUE_SIZE or nested over MAX_VALUE_DEPTH; one line."""


@dataclass(frozen=True)
class Text:
    """A string from the script; `${X}` marks a Glue job argument (`args['X']`)."""

    text: str
    variables: tuple[str, ...] = ()

    def __add__(self, other: Text) -> Text:
        if len(self.text) + len(other.text) > MAX_VALUE_SIZE:
            raise ValueTooLarge(f"a string grows past {MAX_VALUE_SIZE:,} characters; the importer stops evaluating")
        return Text(self.text + other.text, tuple(dict.fromkeys(self.variables + other.variables)))


def concat(parts: list[Text]) -> Text:
    """The parts as one Text, built once (a join of many parts never copies the growing prefix)."""
    if sum(len(part.text) for part in parts) > MAX_VALUE_SIZE:
        raise ValueTooLarge(f"a string grows past {MAX_VALUE_SIZE:,} characters; the importer stops evaluating")
    variables = dict.fromkeys(name for part in parts for name in part.variables)
    return Text("".join(part.text for part in parts), tuple(variables))


def measure(value: Any) -> tuple[int, int]:
    """A value's size (characters plus elements) and depth, from what its containers recorded when built."""
    if isinstance(value, Text):
        return len(value.text), 0
    if isinstance(value, str):  # a dict key
        return len(value), 0
    if isinstance(value, LineList | DictValue):
        return value.size, value.depth
    return 1, 0


def _measured(elements: list[Any]) -> tuple[int, int]:
    """Size and depth of a container of `elements`; raises ValueTooLarge over the bounds."""
    size, depth = len(elements), 1
    for element in elements:
        element_size, element_depth = measure(element)
        size, depth = size + element_size, max(depth, element_depth + 1)
    if size > MAX_VALUE_SIZE:
        raise ValueTooLarge(f"a list or dict grows past {MAX_VALUE_SIZE:,} characters and elements; not evaluated")
    if depth > MAX_VALUE_DEPTH:
        raise ValueTooLarge(f"a list or dict nested over {MAX_VALUE_DEPTH} deep; not evaluated")
    return size, depth


class LineList(list):  # type: ignore[type-arg]
    """A list literal that remembers the script line of each element (for mapping errors), and its measure."""

    def __init__(self, values: Iterable[Any] = (), lines: list[int] | None = None) -> None:
        super().__init__(values)
        self.lines = lines if lines is not None else []
        self.size, self.depth = _measured(self)


class TupleValue(LineList):
    """A tuple literal (kept distinct from lists only so mapping entries print as written)."""


class DictValue(dict):  # type: ignore[type-arg]
    """A dict literal with string keys, and its measure."""

    def __init__(self, items: dict[str, Any]) -> None:
        super().__init__(items)
        self.size, self.depth = _measured([*self.keys(), *self.values()])


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


def dotted(node: ast.AST) -> str:
    """`glueContext.create_dynamic_frame.from_options` for an attribute chain; `?` for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{dotted(node.func)}()"
    return "?"


def plain(value: Any) -> Any:
    """Text -> str, lists recursively; for json.dumps and for the flow entry."""
    if isinstance(value, Text):
        return value.text
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value

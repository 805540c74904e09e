"""The values the importer gives a script's expressions, read statically (never by running the script).

A string is `Text` (with the job arguments it holds, as `${X}`), a list remembers each element's line,
a DynamicFrame is the `Frame` of the step that made it, and Glue's set-up objects are `Opaque`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


class TupleValue(LineList):
    """A tuple literal (kept distinct from lists only so mapping entries print as written)."""

    def __init__(self, values: list[Any], lines: list[int]) -> None:
        super().__init__(values)
        self.lines = lines


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

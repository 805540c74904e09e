"""Script shapes around the steps: the `--JOB_NAME` guard, a job inside one function, try/except that re-raises.

People rarely write a Glue job as a flat list of statements. These shapes are read as Glue runs them:
- `if '--JOB_NAME' in sys.argv:` (and `if __name__ == "__main__":`): Glue always passes `--JOB_NAME` and
  runs the script as `__main__`, so the branch Glue takes is read and the other (a local test run) is
  reported as not taken.
- `def main(): ...` called at module level with no arguments (`main()`, also under the `__main__`
  guard): the function's body is read where it is called, as if written there.
- `try: ... except ...: raise`: the body is read; a handler that only logs and re-raises fails the run
  as glueflow's would. A handler that swallows the error (the Glue run succeeds with part of its work)
  is reported.
Any other `if`, loop or `try` is reported with its lines, as before.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from glueflow_dagster.glue_import.evaluate import Evaluator
from glueflow_dagster.glue_import.report import DEFAULT, NEEDS_USER, ReportItem
from glueflow_dagster.glue_import.values import LineList, dotted

MAX_INLINED = 8  # functions inlined into one another; a Glue job's main() calls a helper or two at most


def _lines(node: ast.stmt) -> str:
    end = node.end_lineno or node.lineno
    return f"line {node.lineno}" if end == node.lineno else f"lines {node.lineno}-{end}"


def _span(statements: Sequence[ast.stmt]) -> str:
    first, last = statements[0], statements[-1]
    end = last.end_lineno or last.lineno
    return f"line {first.lineno}" if end == first.lineno else f"lines {first.lineno}-{end}"


def glue_branch(test: ast.expr) -> bool | None:
    """True when Glue takes an `if` with this test, False when it never does, None when it depends on the run."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and len(test.comparators) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if (
            isinstance(left, ast.Constant)
            and left.value == "--JOB_NAME"
            and dotted(right) == "sys.argv"
            and isinstance(op, ast.In | ast.NotIn)
        ):
            return isinstance(op, ast.In)  # Glue passes --JOB_NAME to every run
        names = {dotted(left), dotted(right)}
        constants = [n.value for n in (left, right) if isinstance(n, ast.Constant)]
        if "__name__" in names and constants == ["__main__"] and isinstance(op, ast.Eq | ast.NotEq):
            return isinstance(op, ast.Eq)  # Glue runs the script as __main__
    return None


def _is_reraise(handler: ast.ExceptHandler) -> bool:
    """A handler that only logs and then raises again (or exits non-zero): the run fails, as glueflow's would."""
    *before, last = handler.body
    raises = isinstance(last, ast.Raise) or (
        isinstance(last, ast.Expr)
        and isinstance(last.value, ast.Call)
        and dotted(last.value.func) in ("sys.exit", "exit")
        and not (
            last.value.args and isinstance(last.value.args[0], ast.Constant) and last.value.args[0].value in (0, None)
        )
    )
    logs_only = all(
        isinstance(s, ast.Expr)
        and isinstance(s.value, ast.Call)
        and (dotted(s.value.func) == "print" or dotted(s.value.func).rsplit(".", 1)[-1] in _LOG_METHODS)
        for s in before
    )
    return raises and logs_only


_LOG_METHODS = ("info", "warn", "warning", "error", "exception", "debug", "critical")


class ShapeReader(Evaluator):
    """The shapes around a script's steps; `GlueScript` reads the steps themselves."""

    label: str
    items: list[ReportItem]

    def _init_shapes(self) -> None:
        self._functions: dict[str, ast.FunctionDef] = {}
        self._inlined: dict[str, int] = {}  # function name -> line of the call that ran it
        self._inlining: list[str] = []

    def _statements(self, statements: Sequence[ast.stmt]) -> None:  # implemented by GlueScript
        raise NotImplementedError

    def _shape(self, node: ast.stmt) -> bool:
        """Read `node` if it is one of the shapes above; False leaves it to the caller."""
        if isinstance(node, ast.If):
            return self._if(node)
        if isinstance(node, ast.Try) and not node.orelse and not node.finalbody and node.handlers:
            if all(_is_reraise(handler) for handler in node.handlers):
                self._statements(node.body)
                self._note(
                    DEFAULT, f"try/except ({_lines(node)}): the handlers re-raise; the run fails as glueflow's", node
                )
                return True
            return False
        if isinstance(node, ast.FunctionDef) and not node.decorator_list and node.name not in self._inlining:
            self._functions[node.name] = node
            return False  # still reported as a definition, unless a call runs it (see `finish_shapes`)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            return self._call_shape(node.value)
        if isinstance(node, ast.Return) and self._inlining and node.value is None:
            return True  # `return` at the end of main(): nothing follows it in the job
        return isinstance(node, ast.Global | ast.Nonlocal)

    def _if(self, node: ast.If) -> bool:
        taken = glue_branch(node.test)
        if taken is None:
            return False
        body, other = (node.body, node.orelse) if taken else (node.orelse, node.body)
        self._statements(body)
        if other:
            self._note(
                DEFAULT,
                f"if {ast.unparse(node.test)} ({_span(other)}): the branch Glue never takes (a local run), "
                "not converted",
                other[0],
            )
        return True

    def _call_shape(self, call: ast.Call) -> bool:
        func = call.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "append"
            and isinstance(func.value, ast.Name)
            and isinstance(self._env.get(func.value.id), list)
            and len(call.args) == 1
            and not call.keywords
        ):
            # `params.append("JOB_NAME")` before getResolvedOptions(sys.argv, params).
            current = self._env[func.value.id]
            lines = [*getattr(current, "lines", [call.lineno] * len(current)), call.lineno]
            self._env[func.value.id] = LineList([*current, self.evaluate(call.args[0])], lines)
            return True
        if not (isinstance(func, ast.Name) and func.id in self._functions and not call.args and not call.keywords):
            return False
        definition = self._functions[func.id]
        arguments = definition.args
        if arguments.args or arguments.posonlyargs or arguments.kwonlyargs or arguments.vararg or arguments.kwarg:
            return False
        if len(self._inlining) >= MAX_INLINED or func.id in self._inlining:
            return False
        self._inlining.append(func.id)
        try:
            self._statements(definition.body)
        finally:
            self._inlining.pop()
        self._inlined.setdefault(func.id, call.lineno)
        return True

    def finish_shapes(self) -> None:
        """Definitions: the ones a call ran are read where called; the others are reported."""
        for name, node in self._functions.items():
            where = f"def {name} (lines {node.lineno}-{node.end_lineno})"
            if name in self._inlined:
                self._note(
                    DEFAULT,
                    f"{where}: the job's steps, read where {name}() runs them (line {self._inlined[name]})",
                    node,
                )
            else:
                self._note(NEEDS_USER, f"{where}: not converted; calls to it are reported", node)

    def _note(self, status: str, message: str, node: ast.stmt) -> None:
        self.items.append(ReportItem(status, "step", message, source=self.label, line=node.lineno))

"""Transforms that are mapping steps: SelectFields, DropFields, RenameField, ResolveChoice, DropNullFields.

glueflow runs one ApplyMapping per job. A transform on the way from the source to the sink is folded
into that mapping only when the records the flow writes are exactly the ones Glue writes; otherwise it
is reported at its line. Glue's semantics, and what each becomes (compared exactly, then
case-insensitively: a path that matches a field only by case is reported, Glue's field names are
case-sensitive there, ApplyMapping's sources are not):

- `SelectFields(paths)` / `DropFields(paths)` before ApplyMapping: a mapping tuple whose source is not
  selected (or is dropped) reads a missing field, which Glue maps to null and its JSON writer leaves
  out: the tuple is removed (the flow then has no such column). After ApplyMapping the same on the
  targets. A path inside a mapped struct (`user.id` when `user` is mapped whole) changes the struct:
  reported.
- `RenameField(old, new)` after ApplyMapping: the target `old` (or a struct holding targets) is
  renamed, if `new` keeps the parent path and names no other target. Before ApplyMapping: reported
  (the data may already hold a field named `new`).
- `ResolveChoice(specs=[(path, "cast:T")])`: Glue casts the field's values to T. When T is the
  target type of the tuple that reads (before) or writes (after) that path, the cast is the one
  ApplyMapping does anyway (Spark's CAST, which glueflow follows): folded. A path no tuple reads or
  writes has no effect on the result: folded. Other T, other actions (`make_cols`, `make_struct`,
  `project:`, `match_catalog`) and `choice=`: reported.
- `DropNullFields`: Glue drops fields of NullType (null in every record). ApplyMapping gives each
  target its type and reads a dropped source as null, which Glue's JSON writer leaves out: the
  records are the same with or without it; folded, said so. (CSV and Parquet keep a null column:
  before ApplyMapping in a job writing them it is reported, `formats.null_fields_columns`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from glueflow_dagster.core.mapping import MappingError
from glueflow_dagster.core.mapping.parse import parse_glue_type, parse_path
from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.report import CONVERTED, UNSUPPORTED, short
from glueflow_dagster.glue_import.script import GlueScript, Step
from glueflow_dagster.glue_import.values import Text, plain

Row = list[str]  # [source, source type, target, target type]
TRANSFORMS = ("SelectFields", "DropFields", "RenameField", "ResolveChoice", "DropNullFields")


class NotFaithful(Exception):
    """The transform cannot be folded into the mapping with exactly Glue's result; the message says why."""


def compose(
    draft: Draft, script: GlueScript, rows: list[Row], before: Sequence[Step], after: Sequence[Step], job: str
) -> list[Row] | None:
    """The mapping rows with each transform folded in, in order; None when one is reported instead."""
    folded = [list(row) for row in rows]
    for step, side in [*((s, "source") for s in before), *((s, "target") for s in after)]:
        try:
            folded = _fold(step, folded, side)
        except NotFaithful as why:
            draft.add(
                UNSUPPORTED,
                f"{job}.mappings",
                f"{step.name}: {'before' if side == 'source' else 'after'} ApplyMapping, {why}",
                script=script,
                line=step.line,
            )
            return None
        draft.add(CONVERTED, f"{job}.mappings", f"{step.name}: {_folded_note(step, side)}", None, script, step.line)
    if not folded:
        draft.add(UNSUPPORTED, f"{job}.mappings", "the transforms leave no mapped field", script=script, line=None)
        return None
    return folded


def _folded_note(step: Step, side: str) -> str:
    kind = step.name.split(".")[0]
    where = "sources" if side == "source" else "targets"
    return {
        "SelectFields": f"folded into the mapping (tuples whose {where} are not selected removed)",
        "DropFields": f"folded into the mapping (tuples whose {where} are dropped removed)",
        "RenameField": "folded into the mapping (the target renamed)",
        "ResolveChoice": "folded into the mapping (each cast is the one ApplyMapping does, or touches no mapped field)",
        "DropNullFields": "no effect on the records written (NullType fields only; ApplyMapping types every target, "
        "a missing field is left out of Glue's JSON)",
    }[kind]


def _path(value: Any) -> tuple[str, ...]:
    if not isinstance(value, Text) or value.variables:
        raise NotFaithful(f"path {short(plain(value))!r} is not a literal string")
    try:
        parts = parse_path(value.text)
    except MappingError as err:
        raise NotFaithful(str(err)) from None
    if any(isinstance(part, int) for part in parts):
        raise NotFaithful(f"path {value.text!r}: array elements are not converted")
    return tuple(str(part) for part in parts)


def _paths(value: Any) -> list[tuple[str, ...]]:
    if not isinstance(value, list):
        raise NotFaithful(f"paths {short(plain(value))!r} is not a literal list")
    return [_path(item) for item in value]


def _row_path(row: Row, side: str) -> tuple[str, ...]:
    text = row[0] if side == "source" else row[2]
    return tuple(str(part) for part in parse_path(text))


def _relation(path: tuple[str, ...], field: tuple[str, ...]) -> str:
    """How a transform's path relates to a mapped field: same | holds (path is a parent) | inside | none.

    Raises when they match only by case: Glue's DynamicFrame field names are case-sensitive there.
    """
    lower = tuple(p.lower() for p in path), tuple(f.lower() for f in field)
    exact = path == field[: len(path)] if len(path) <= len(field) else field == path[: len(field)]
    folded = lower[0] == lower[1][: len(path)] if len(path) <= len(field) else lower[1] == lower[0][: len(field)]
    if folded and not exact:
        raise NotFaithful(f"path {'.'.join(path)!r} matches {'.'.join(field)!r} only by case")
    if not exact:
        return "none"
    if len(path) == len(field):
        return "same"
    return "holds" if len(path) < len(field) else "inside"


def _fold(step: Step, rows: list[Row], side: str) -> list[Row]:
    kind = step.name.split(".")[0]
    for key in ("stageThreshold", "totalThreshold"):
        if plain(step.args.get(key, 0)) not in (0, None):
            raise NotFaithful(f"{key} is not converted")
    if kind in ("SelectFields", "DropFields"):
        return _select_or_drop(rows, _paths(step.args.get("paths")), side, keep=kind == "SelectFields")
    if kind == "RenameField":
        if side == "source":
            raise NotFaithful("renaming a source field is not converted (the data may hold a field of the new name)")
        return _rename(rows, _path(step.args.get("old_name")), _path(step.args.get("new_name")))
    if kind == "ResolveChoice":
        _resolve_choice(rows, step, side)
        return rows
    return rows  # DropNullFields: see the module's docstring


def _select_or_drop(rows: list[Row], paths: list[tuple[str, ...]], side: str, keep: bool) -> list[Row]:
    result = []
    for row in rows:
        relations = [_relation(path, _row_path(row, side)) for path in paths]
        if "inside" in relations:
            raise NotFaithful(f"a path inside {row[0 if side == 'source' else 2]!r} changes a mapped struct")
        matched = any(r in ("same", "holds") for r in relations)
        if matched == keep:
            result.append(row)
    return result


def _rename(rows: list[Row], old: tuple[str, ...], new: tuple[str, ...]) -> list[Row]:
    if old[:-1] != new[:-1]:
        raise NotFaithful("the new name moves the field to another struct")
    renamed = []
    for row in rows:
        target = _row_path(row, "target")
        relation = _relation(old, target)
        if relation == "inside":
            raise NotFaithful(f"{'.'.join(old)!r} is inside the mapped struct {row[2]!r}")
        if relation == "none" and _relation(new, target) != "none":
            raise NotFaithful(f"the new name {'.'.join(new)!r} is already a mapped target")
        if relation in ("same", "holds"):
            row = [row[0], row[1], ".".join(_quoted(p) for p in (*new, *target[len(old) :])), row[3]]
        renamed.append(row)
    return renamed


def _quoted(part: str) -> str:
    return f"`{part}`" if "." in part or "`" in part or "[" in part else part


def _resolve_choice(rows: list[Row], step: Step, side: str) -> None:
    if plain(step.args.get("choice")) not in (None, ""):
        raise NotFaithful(f"choice={short(plain(step.args['choice']))!r} applies to every choice field: not converted")
    for key in ("database", "table_name", "catalog_id"):
        if plain(step.args.get(key)) not in (None, ""):
            raise NotFaithful(f"{key}= (match_catalog) is not converted")
    specs = step.args.get("specs")
    if not isinstance(specs, list) or not specs:
        raise NotFaithful("specs is not a literal list of (path, action) pairs")
    for spec in specs:
        if not isinstance(spec, list) or len(spec) != 2 or not isinstance(spec[1], Text):
            raise NotFaithful(f"spec {short(plain(spec))!r} is not a (path, action) pair")
        path, action = _path(spec[0]), spec[1].text
        if not action.lower().startswith("cast:"):
            raise NotFaithful(f"action {action!r}: only cast:<type> is converted")
        try:
            cast = parse_glue_type(action[5:])
        except MappingError as err:
            raise NotFaithful(f"action {action!r}: {err}") from None
        for row in rows:
            relation = _relation(path, _row_path(row, side))
            if relation == "none":
                continue
            if relation != "same":
                raise NotFaithful(f"{action} on {'.'.join(path)!r} changes a struct mapped by {row[0]!r}")
            if parse_glue_type(row[3]) != cast:
                raise NotFaithful(
                    f"{action} on {'.'.join(path)!r} then ApplyMapping to {row[3]!r} casts twice (glueflow casts once)"
                )

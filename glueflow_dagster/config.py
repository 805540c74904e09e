"""Flow declarations: the `glueflow.yaml` file that names every flow's locations, jobs and mappings.

Plain Python (no Dagster import): the Dagster shell builds its definitions from what this returns.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from glueflow_dagster.mapping import FieldMapping, MappingError, parse_mappings
from glueflow_dagster.stage import DEFAULT_TARGET_FILE_BYTES, GZIP_LEVELS

CONFIG_ENV_VAR = "GLUEFLOW_CONFIG"
DEFAULT_CONFIG_NAME = "glueflow.yaml"

BOOKMARK_OPTIONS = ("enable", "disable", "pause")
ON_MODIFIED_OPTIONS = ("reprocess", "ignore")
ON_LATE_OPTIONS = ("process", "report")
COMPRESSIONS = ("gzip", "none")
_FLOW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_CRON_FIELDS = 5


class ConfigError(ValueError):
    """A flow file that cannot be used; the message names the file, the flow and the field."""


@dataclass(frozen=True)
class Location:
    """Where one stage's objects live: a local folder or `s3://bucket/prefix`."""

    uri: str
    recurse: bool = True
    exclusions: tuple[str, ...] = ()
    compression: str = "none"
    compression_level: int | None = None  # gzip level 1-9; None: the stage's default

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")


@dataclass(frozen=True)
class JobConfig:
    """One job's mapping and options (Glue's job arguments)."""

    mappings: tuple[FieldMapping, ...]
    raw_mappings: tuple[tuple[str, str, str, str], ...]
    schedule: str | None = None
    bookmark: str = "disable"
    transformation_ctx: str = "bookmark_ctx"
    max_error_records: int = 0
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES
    max_band_ms: int = 900_000
    max_files_per_run: int | None = None
    max_bytes_per_run: int | None = None
    on_modified: str = "reprocess"
    on_late: str = "process"
    flow_ratio_band: tuple[float, float] = (0.5, 2.0)


@dataclass(frozen=True)
class FlowConfig:
    """A chained Input -> Output flow: raw input, staging and output locations and the two jobs."""

    name: str
    input: Location
    staging: Location
    output: Location
    input_job: JobConfig
    output_job: JobConfig


@dataclass(frozen=True)
class GlueflowConfig:
    path: Path
    flows: dict[str, FlowConfig] = field(default_factory=dict)
    # The folder local `uri`s resolve against and the demo's DAGSTER_HOME sits in: the flow file's
    # folder, or the project root for a component instance (`defs/<name>/defs.yaml`).
    root: Path | None = None

    @property
    def project_dir(self) -> Path:
        return self.root if self.root is not None else self.path.parent


def default_config_path() -> Path:
    """`$GLUEFLOW_CONFIG`, else `glueflow.yaml` in the working directory."""
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_NAME).resolve()


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand `${VAR}` and `${VAR:-default}`; an unset `${VAR}` without default is an error."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] != "" or default is None):
            return env[name]
        if default is not None:
            return default
        raise KeyError(name)

    return _ENV_REF.sub(substitute, text)


def load_config(path: Path | str | None = None) -> GlueflowConfig:
    """Read and validate a flow file; raises ConfigError naming the file, flow and field."""
    config_path = Path(path).resolve() if path is not None else default_config_path()
    if not config_path.is_file():
        raise ConfigError(f"{config_path}: flow file not found (set {CONFIG_ENV_VAR} or pass --config)")
    try:
        document = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{config_path}:{where} not valid YAML: {getattr(err, 'problem', err)}") from err
    if is_component_instance(document):
        # The component door (`defs/<name>/defs.yaml`): the same schema under `attributes:`, local
        # paths against the project root, so the CLI reads the instance `dg` loads.
        return parse_config(document.get("attributes"), config_path, base_dir=find_project_root(config_path))
    return parse_config(document, config_path)


COMPONENT_TYPE = "glueflow_dagster.GlueFlows"


def is_component_instance(document: Any) -> bool:
    """A `defs.yaml` of the GlueFlows component type (`type:` + `attributes:`) rather than a flow file."""
    return isinstance(document, dict) and document.get("type") == COMPONENT_TYPE


def find_project_root(path: Path) -> Path:
    """The nearest folder above `path` holding pyproject.toml (the dg project root), else path's folder."""
    for folder in path.resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    return path.resolve().parent


def parse_config(document: Any, config_path: Path, base_dir: Path | None = None) -> GlueflowConfig:
    """Validate a parsed `{flows: ...}` document: the one parser behind both doors.

    `config_path` is the file errors name; `base_dir` the folder local `uri`s resolve against
    (default: that file's folder).
    """
    reader = _Reader(config_path, base_dir)
    if not isinstance(document, dict) or not isinstance(document.get("flows"), dict) or not document["flows"]:
        raise ConfigError(f"{config_path}: expected a top-level 'flows:' mapping with at least one flow")
    reader.no_unknown(document, {"flows"}, "")
    flows = {name: reader.flow(name, body) for name, body in document["flows"].items()}
    return GlueflowConfig(path=config_path, flows=flows, root=base_dir)


class _Reader:
    """Validates one document, so every error can say which file, flow and field it is about."""

    def __init__(self, config_path: Path, base_dir: Path | None = None) -> None:
        self.path = config_path
        self.base_dir = base_dir if base_dir is not None else config_path.parent

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {message}")

    def no_unknown(self, body: Mapping[str, Any], allowed: set[str], where: str) -> None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise self.fail(
                where or "top level", f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
            )

    def section(self, body: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        value = body.get(key)
        if not isinstance(value, dict):
            raise self.fail(f"{where}.{key}", "missing or not a mapping")
        return value

    def flow(self, name: Any, body: Any) -> FlowConfig:
        where = f"flow {name!r}"
        if not isinstance(name, str) or not _FLOW_NAME.match(name):
            raise self.fail(where, "flow names must be identifiers (letters, digits, underscore)")
        if not isinstance(body, dict):
            raise self.fail(where, "expected a mapping with input, staging, output, input_job, output_job")
        self.no_unknown(body, {"input", "staging", "output", "input_job", "output_job"}, where)
        return FlowConfig(
            name=name,
            input=self.location(self.section(body, "input", where), f"{where}.input", compression_allowed=False),
            staging=self.location(self.section(body, "staging", where), f"{where}.staging"),
            output=self.location(self.section(body, "output", where), f"{where}.output"),
            input_job=self.job(self.section(body, "input_job", where), f"{where}.input_job", scheduled=True),
            output_job=self.job(self.section(body, "output_job", where), f"{where}.output_job", scheduled=False),
        )

    def location(self, body: Mapping[str, Any], where: str, compression_allowed: bool = True) -> Location:
        written = {"compression", "compression_level"}  # options of locations a job writes
        allowed = {"uri", "recurse", "exclusions"} | (written if compression_allowed else set())
        self.no_unknown(body, allowed, where)
        uri = self.text(body.get("uri"), f"{where}.uri")
        if not uri.startswith("s3://"):
            local = Path(uri.removeprefix("file://"))
            uri = str(local if local.is_absolute() else (self.base_dir / local).resolve())
        elif not uri.removeprefix("s3://").split("/", 1)[0]:
            raise self.fail(f"{where}.uri", f"{uri!r} names no bucket")
        recurse = body.get("recurse", True)
        if not isinstance(recurse, bool):
            raise self.fail(f"{where}.recurse", f"expected true or false, got {recurse!r}")
        exclusions = body.get("exclusions", [])
        if not isinstance(exclusions, list) or not all(isinstance(e, str) and e for e in exclusions):
            raise self.fail(f"{where}.exclusions", "expected a list of glob strings")
        compression = self.choice(body.get("compression", "none"), COMPRESSIONS, f"{where}.compression")
        level = self.whole(body, "compression_level", None, where, minimum=1)
        if level is not None and (level not in GZIP_LEVELS or compression != "gzip"):
            expected = f"expected {GZIP_LEVELS[0]}-{GZIP_LEVELS[-1]} with compression: gzip, got {level}"
            raise self.fail(f"{where}.compression_level", expected)
        return Location(
            uri=uri, recurse=recurse, exclusions=tuple(exclusions), compression=compression, compression_level=level
        )

    def job(self, body: Mapping[str, Any], where: str, scheduled: bool) -> JobConfig:
        allowed = {"mappings", "max_error_records", "target_file_bytes"} | (
            {"schedule"}
            if scheduled
            else {
                "bookmark",
                "transformation_ctx",
                "max_band_ms",
                "max_files_per_run",
                "max_bytes_per_run",
                "on_modified",
                "on_late",
                "flow_ratio_band",
            }
        )
        self.no_unknown(body, allowed, where)
        raw = body.get("mappings")
        if not isinstance(raw, list) or not raw:
            raise self.fail(f"{where}.mappings", "expected a non-empty list of [source, type, target, type]")
        try:
            mappings = parse_mappings(raw)
        except MappingError as err:
            raise self.fail(f"{where}.mappings", str(err)) from err
        schedule = None
        if scheduled:
            schedule = self.text(body.get("schedule", "*/30 * * * *"), f"{where}.schedule")
            if len(schedule.split()) != _CRON_FIELDS and not schedule.startswith("@"):
                raise self.fail(f"{where}.schedule", f"{schedule!r} is not a 5-field cron expression")
            problem = cron_problem(schedule)
            if problem is not None:
                raise self.fail(f"{where}.schedule", f"{schedule!r} is not a valid cron expression: {problem}")
        ctx = self.text(body.get("transformation_ctx", "bookmark_ctx"), f"{where}.transformation_ctx")
        return JobConfig(
            mappings=mappings,
            raw_mappings=tuple(tuple(str(part) for part in m) for m in raw),  # type: ignore[misc]
            schedule=schedule,
            bookmark=self.choice(body.get("bookmark", "disable"), BOOKMARK_OPTIONS, f"{where}.bookmark"),
            transformation_ctx=ctx,
            max_error_records=self.whole(body, "max_error_records", 0, where, minimum=0),
            target_file_bytes=self.whole(body, "target_file_bytes", DEFAULT_TARGET_FILE_BYTES, where, minimum=1),
            max_band_ms=self.whole(body, "max_band_ms", 900_000, where, minimum=0),
            max_files_per_run=self.whole(body, "max_files_per_run", None, where, minimum=1),
            max_bytes_per_run=self.whole(body, "max_bytes_per_run", None, where, minimum=1),
            on_modified=self.choice(body.get("on_modified", "reprocess"), ON_MODIFIED_OPTIONS, f"{where}.on_modified"),
            on_late=self.choice(body.get("on_late", "process"), ON_LATE_OPTIONS, f"{where}.on_late"),
            flow_ratio_band=self.band(body.get("flow_ratio_band", [0.5, 2.0]), f"{where}.flow_ratio_band"),
        )

    def band(self, value: Any, where: str) -> tuple[float, float]:
        numbers = isinstance(value, list) and len(value) == 2
        numbers = numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        if not numbers or not 0 <= value[0] < value[1]:
            raise self.fail(where, f"expected [low, high] with 0 <= low < high, got {value!r}")
        return float(value[0]), float(value[1])

    def whole(self, body: Mapping[str, Any], key: str, default: int | None, where: str, minimum: int) -> Any:
        value = body.get(key, default)
        if value is None and default is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(f"{where}.{key}", f"expected a whole number >= {minimum}, got {value!r}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {value!r}")
        try:
            return expand_env(value)
        except KeyError as err:
            raise self.fail(where, f"environment variable {err.args[0]} is not set and has no default") from err

    def choice(self, value: Any, options: Sequence[str], where: str) -> str:
        if value not in options:
            raise self.fail(where, f"expected one of {', '.join(options)}, got {value!r}")
        return str(value)


# --- cron expressions ---------------------------------------------------------------------------
# Checked in full when the flow file loads, so `61 * * * *` is one line naming the field instead of
# a traceback from the schedule later. The grammar is the common subset Dagster's schedules accept.

_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (field name, lowest, highest, names for lowest..)
_CRON_SPEC: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTH_NAMES),
    ("day of week", 0, 7, _DAY_NAMES),
)


def cron_problem(expression: str) -> str | None:
    """None for a valid 5-field cron expression (or @daily-style macro), else what is wrong, briefly."""
    text = expression.strip()
    if text.startswith("@"):
        return None if text.lower() in _CRON_MACROS else f"unknown macro (allowed: {', '.join(_CRON_MACROS)})"
    fields = text.split()
    if len(fields) != _CRON_FIELDS:
        return f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    values: list[set[int] | None] = []
    for field_text, (name, low, high, names) in zip(fields, _CRON_SPEC, strict=True):
        try:
            values.append(_cron_field(field_text, low, high, names))
        except ValueError as err:
            return f"{name} {field_text[:20]!r}: {err}"
    days, months = values[2], values[3]
    if months == {2} and days is not None and days <= {30, 31}:
        return "February has no 30th or 31st"
    return None


def _cron_field(text: str, low: int, high: int, names: tuple[str, ...]) -> set[int] | None:
    """The values one field selects (None for `*`); ValueError says what is wrong."""
    if text == "*":
        return None
    selected: set[int] = set()
    for item in text.split(","):
        body, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"step {step_text!r} is not a whole number >= 1")
            step = int(step_text)
        if body == "*":
            start, end = low, high
        else:
            first, dash, last = body.partition("-")
            start = _cron_value(first, low, high, names)
            end = _cron_value(last, low, high, names) if dash else (high if step_text else start)
            if end < start:
                raise ValueError(f"range {body!r} runs backwards")
        selected.update(range(start, end + 1, step))
    return selected


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text.lower() in names:
        return low + names.index(text.lower())
    if not text.isdigit():
        raise ValueError(f"{text[:20]!r} is not a number" + (f" or a name ({names[0]}, ...)" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{value} is outside {low}-{high}")
    return value

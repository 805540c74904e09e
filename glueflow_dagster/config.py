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

from glueflow_dagster.commits import DEFAULT_ORPHAN_GRACE_S
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
# Asset owners and tags (Dagster's rules): an e-mail or `team:<name>`; tag keys `[prefix/]name` and values of
# at most 63 letters, digits, `_`, `.`, `-`.
_OWNER = re.compile(r"^(team:.+|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7})$")
_TAG_KEY = re.compile(r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")
# F_output_sensor requests a failed run's manifest again this many times in all, then plans afresh.
DEFAULT_MAX_MANIFEST_ATTEMPTS = 3


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
    orphan_grace_s: int = DEFAULT_ORPHAN_GRACE_S  # written locations: age before uncommitted objects are removed

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
    max_manifest_attempts: int = DEFAULT_MAX_MANIFEST_ATTEMPTS


@dataclass(frozen=True)
class FlowConfig:
    """A chained Input -> Output flow: raw input, staging and output locations and the two jobs."""

    name: str
    input: Location
    staging: Location
    output: Location
    input_job: JobConfig
    output_job: JobConfig
    owners: tuple[str, ...] = ()  # Dagster asset owners of the flow's assets
    tags: Mapping[str, str] = field(default_factory=dict)  # Dagster asset tags of the flow's assets
    config_path: Path | None = None  # the file that declares the flow (the assets' code reference)


@dataclass(frozen=True)
class GlueflowConfig:
    path: Path
    flows: dict[str, FlowConfig] = field(default_factory=dict)


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
    return parse_config(document, config_path)


def parse_config(document: Any, config_path: Path) -> GlueflowConfig:
    reader = _Reader(config_path)
    if not isinstance(document, dict) or not isinstance(document.get("flows"), dict) or not document["flows"]:
        raise ConfigError(f"{config_path}: expected a top-level 'flows:' mapping with at least one flow")
    reader.no_unknown(document, {"flows"}, "")
    flows = {name: reader.flow(name, body) for name, body in document["flows"].items()}
    return GlueflowConfig(path=config_path, flows=flows)


class _Reader:
    """Validates one document, so every error can say which file, flow and field it is about."""

    def __init__(self, config_path: Path) -> None:
        self.path = config_path
        self.base_dir = config_path.parent

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
        self.no_unknown(body, {"input", "staging", "output", "input_job", "output_job", "owners", "tags"}, where)
        return FlowConfig(
            name=name,
            input=self.location(self.section(body, "input", where), f"{where}.input", compression_allowed=False),
            staging=self.location(self.section(body, "staging", where), f"{where}.staging"),
            output=self.location(self.section(body, "output", where), f"{where}.output"),
            input_job=self.job(self.section(body, "input_job", where), f"{where}.input_job", scheduled=True),
            output_job=self.job(self.section(body, "output_job", where), f"{where}.output_job", scheduled=False),
            owners=self.owners(body.get("owners", []), f"{where}.owners"),
            tags=self.tags(body.get("tags", {}), f"{where}.tags"),
            config_path=self.path,
        )

    def owners(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list like [team:data, someone@example.com], got {value!r:.80}")
        for owner in value:
            if not isinstance(owner, str) or not _OWNER.match(owner):
                raise self.fail(where, f"{owner!r:.80} is not an e-mail address or team:<name>")
        return tuple(value)

    def tags(self, value: Any, where: str) -> dict[str, str]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping like {{domain: sales}}, got {value!r:.80}")
        for key, tag in value.items():
            if not isinstance(key, str) or not _TAG_KEY.match(key):
                expected = "expected [prefix/]name of letters, digits, _ . - (<= 63 each)"
                raise self.fail(where, f"key {key!r:.80}: {expected}")
            if not isinstance(tag, str) or not _TAG_VALUE.match(tag):
                raise self.fail(f"{where}.{key}", f"expected up to 63 letters, digits, _ . -, got {tag!r:.80}")
        return dict(value)

    def location(self, body: Mapping[str, Any], where: str, compression_allowed: bool = True) -> Location:
        written = {"compression", "compression_level", "orphan_grace_s"}  # options of locations a job writes
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
            uri=uri,
            recurse=recurse,
            exclusions=tuple(exclusions),
            compression=compression,
            compression_level=level,
            orphan_grace_s=self.whole(body, "orphan_grace_s", DEFAULT_ORPHAN_GRACE_S, where, minimum=0),
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
                "max_manifest_attempts",
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
            if len(schedule.split()) != _CRON_FIELDS:
                raise self.fail(f"{where}.schedule", f"{schedule!r} is not a 5-field cron expression")
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
            max_manifest_attempts=self.whole(
                body, "max_manifest_attempts", DEFAULT_MAX_MANIFEST_ATTEMPTS, where, minimum=1
            ),
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

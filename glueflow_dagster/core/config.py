"""Flow declarations: the `glueflow.yaml` file that names every flow's locations, jobs and mappings.

Plain Python (no Dagster import): the Dagster shell builds its definitions from what this returns.
Everything that would make a flow fail later, or duplicate records, is refused here, at load, with one
line naming the file, the flow and the field: a cron Dagster would reject, two locations that overlap
(records would mix across flows or be read again every cycle), YAML aliases (a 584-byte "billion
laughs" file would expand to gigabytes). Messages show values cut to a few dozen characters, with URL
credentials redacted, so a message never embeds an unbounded value or a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from glueflow_dagster.core.commits import DEFAULT_ORPHAN_GRACE_S
from glueflow_dagster.core.compression import GZIP_LEVELS
from glueflow_dagster.core.formats import iceberg as iceberg_keys
from glueflow_dagster.core.formats.options import (
    CSV_READ_OPTIONS,
    CSV_SHARED_OPTIONS,
    CSV_WRITE_OPTIONS,
    FORMATS,
    JSON_OPTIONS,
    PARQUET_COMPRESSIONS,
    CsvOptions,
    DataFormat,
    compressions_of,
    csv_options,
    default_compression,
    format_problem,
)
from glueflow_dagster.core.json_reader import JsonFormat, JsonPathError, parse_json_path
from glueflow_dagster.core.mapping import FieldMapping, MappingError, parse_mappings
from glueflow_dagster.core.stage import DEFAULT_TARGET_FILE_BYTES
from glueflow_dagster.core.storage import SHOWN_CHARS, redact, shorten, shown

CONFIG_ENV_VAR = "GLUEFLOW_CONFIG"
DEFAULT_CONFIG_NAME = "glueflow.yaml"

BOOKMARK_OPTIONS = ("enable", "disable", "pause")
ON_MODIFIED_OPTIONS = ("reprocess", "ignore")
ON_LATE_OPTIONS = ("process", "report")
COMPRESSIONS = ("gzip", "none")  # JSON and CSV parts
ALL_COMPRESSIONS = PARQUET_COMPRESSIONS  # Parquet's codecs too (snappy, zstd): each format checks its own
ENGINES = ("polars", "spark")  # per job: where the stage's data path runs (see spark_stage.py)
SPARK_LAUNCHERS = ("local", "glue", "emr_serverless")
# Launchers this build can run; the others are refused at load rather than failing every run.
SPARK_LAUNCHERS_AVAILABLE = SPARK_LAUNCHERS
GLUE_WORKER_TYPES = ("G.1X", "G.2X", "G.4X", "G.8X")
# Whole-value patterns, used with fullmatch: `$` would also match before a trailing newline ("local[2]\n").
# local, local[N], local[*], or a standalone cluster's master (spark://host:port)
_SPARK_MASTER = re.compile(r"local(\[(\*|[1-9][0-9]{0,2})\])?|spark://[A-Za-z0-9.-]+:[1-9][0-9]{0,4}")
_JVM_MEMORY = re.compile(r"[1-9][0-9]{0,5}[kmgtKMGT]")
_FLOW_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Asset owners and tags (Dagster's rules): an e-mail or `team:<name>`; tag keys `[prefix/]name` and values of
# at most 63 letters, digits, `_`, `.`, `-`.
_OWNER = re.compile(r"team:.+|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")
_TAG_KEY = re.compile(r"([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}")
_TAG_VALUE = re.compile(r"[A-Za-z0-9_.-]{0,63}")
# F_output_sensor requests a failed run's manifest again this many times in all, then plans afresh.
DEFAULT_MAX_MANIFEST_ATTEMPTS = 3
_QUOTED = re.compile("'[^'\\n]{" + str(SHOWN_CHARS + 1) + ",}'")  # a long quoted value in another module's message
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LOCATION_ROLES = ("input", "staging", "output")
# The keys of each section (the component's typed attributes mirror them; a test keeps the two equal).
FLOW_KEYS = ("input", "staging", "output", "input_job", "output_job", "owners", "tags", "spark")
LOCATION_KEYS = ("uri", "recurse", "exclusions", "format", *CSV_SHARED_OPTIONS)
# Locations a job writes: compression, Hive partition columns (Glue's partitionKeys), CSV's writeHeader.
WRITTEN_LOCATION_KEYS = ("compression", "compression_level", "orphan_grace_s", "partition_keys", *CSV_WRITE_OPTIONS)
# Glue's reader options, on locations a job reads: JSON's multiline / jsonPath, CSV's multiLine, withHeader, skipFirst.
READ_LOCATION_KEYS = (*JSON_OPTIONS, *CSV_READ_OPTIONS)
OUTPUT_LOCATION_KEYS = iceberg_keys.ICEBERG_OPTIONS  # format: iceberg (table, catalog): the Output's only
_PARTITION_KEY = re.compile(r"[^/=\x00-\x1f]{1,128}")  # a column name that can be a Hive folder's name
JOB_KEYS = ("mappings", "max_error_records", "target_file_bytes", "engine")
INPUT_JOB_KEYS = (*JOB_KEYS, "schedule")
OUTPUT_JOB_KEYS = (
    *JOB_KEYS,
    "bookmark",
    "transformation_ctx",
    "max_band_ms",
    "max_files_per_run",
    "max_bytes_per_run",
    "on_modified",
    "on_late",
    "flow_ratio_band",
    "max_manifest_attempts",
)
SPARK_LOCAL_KEYS = ("launcher", "master", "driver_memory", "timeout_s")
# Keys each remote launcher takes: (required, optional); the local launcher takes none of them.
SPARK_REMOTE_KEYS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "glue": (
        ("job_name", "script_uri", "iam_role"),
        ("glue_version", "worker_type", "number_of_workers", "python_modules"),
    ),
    "emr_serverless": (("application_id", "script_uri", "iam_role"), ()),
}
_SEPARATE = "every input, staging and output location must be separate (records would mix or be read again)"


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
    # Glue's JSON reader options (locations a job reads): a record may span lines / records at a path.
    multiline: bool = False
    json_path: str | None = None  # the YAML key is Glue's `jsonPath`
    format: str = "json"  # json | csv | parquet (see core.formats)
    csv: CsvOptions = CsvOptions()  # Glue's CSV options (format: csv)
    partition_keys: tuple[str, ...] = ()  # written locations: Hive-style column=value/ folders
    # format: iceberg (the output only): `namespace.name` and pyiceberg's catalog properties (`type`, ...)
    table: str | None = None
    catalog: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    @property
    def json_format(self) -> JsonFormat:
        return JsonFormat(multiline=self.multiline, json_path=self.json_path)

    @property
    def data_format(self) -> DataFormat:
        return DataFormat(self.format, self.csv, self.partition_keys)


@dataclass(frozen=True)
class SparkConfig:
    """A flow's `spark:` section: how a job with `engine: spark` launches its stage script."""

    launcher: str = "local"
    master: str = "local[2]"  # local launcher: spark-submit's --master (local[N] or spark://host:port)
    driver_memory: str = "1g"  # local launcher: the JVM's heap (in local mode the driver does all the work)
    timeout_s: int = 3600  # a stage script running longer is ended and the run fails
    # glue launcher: the Glue job running the stage script (created or updated by the launcher)
    job_name: str | None = None
    script_uri: str | None = None  # s3:// key the stage script is uploaded to; Pipes' messages go beside it
    iam_role: str | None = None
    glue_version: str = "5.0"
    worker_type: str = "G.1X"
    number_of_workers: int = 2
    python_modules: str | None = None  # Glue's --additional-python-modules (glueflow_dagster and its deps)
    application_id: str | None = None  # emr_serverless launcher: the EMR Serverless (Spark) application


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
    engine: str = "polars"  # polars | spark
    spark: SparkConfig = field(default_factory=SparkConfig)  # the flow's `spark:` section, copied for the stage


@dataclass(frozen=True)
class FlowConfig:
    """A chained Input -> Output flow: raw input, staging and output locations and the two jobs."""

    name: str
    input: Location
    staging: Location
    output: Location
    input_job: JobConfig
    output_job: JobConfig
    spark: SparkConfig = field(default_factory=SparkConfig)
    owners: tuple[str, ...] = ()  # Dagster asset owners of the flow's assets
    tags: Mapping[str, str] = field(default_factory=dict)  # Dagster asset tags of the flow's assets
    config_path: Path | None = None  # the file that declares the flow (the assets' code reference)


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
    return parse_config(read_yaml_document(config_path), config_path)


def read_yaml_document(path: Path, kind: str = "flow file") -> Any:
    """The YAML document at ``path``, without aliases; ConfigError (one line naming the file) if it
    is missing, not valid YAML, or uses an alias. ``kind`` names the file in messages."""
    if not path.is_file():
        raise ConfigError(f"{path}: {kind} not found (set {CONFIG_ENV_VAR} or pass --config)")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_FlowFileLoader)  # noqa: S506
    except _AliasRefused as err:
        raise ConfigError(
            f"{path}: line {err.line}: YAML aliases (*{shorten(err.name)}) are not allowed in a {kind} "
            "(write the value out)"
        ) from None  # the YAML error's own text holds the document's lines
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = _bounded(str(getattr(err, "problem", None) or err))
        raise ConfigError(f"{path}:{where} not valid YAML: {problem}") from err


class _AliasRefused(Exception):
    def __init__(self, name: str, line: int) -> None:
        super().__init__(name)
        self.name, self.line = name, line


class _FlowFileLoader(yaml.SafeLoader):
    """yaml's SafeLoader without aliases: an alias is refused where it appears, before anything expands.

    A flow file has no use for them, and a "billion laughs" file (aliases of aliases) would otherwise
    become a structure of a billion elements the moment anything walks it.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(str(event.anchor), event.start_mark.line + 1)
        return super().compose_node(parent, index)


def _bounded(message: str) -> str:
    """Another module's message (YAML, ApplyMapping) made safe for ours: one line, credentials redacted,
    every long quoted value cut, and the whole bounded."""
    message = " ".join(redact(message).split())
    message = _QUOTED.sub(lambda m: m.group(0)[: SHOWN_CHARS + 1] + "'...", message)
    return shorten(message, 6 * SHOWN_CHARS)


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
    check_separate_locations(flows.values())
    return GlueflowConfig(path=config_path, flows=flows, root=base_dir)


# --------------------------------------------------------------------------------------------------
# Cron: validated here, in plain Python (the core imports no Dagster), as Dagster's schedules read it.

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: name, lowest, highest, names (their index + lowest is the value)
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTH_NAMES),
    ("day of week", 0, 7, _DAY_NAMES),  # 0 and 7 are both Sunday
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DIGITS = re.compile(r"[0-9]{1,4}")


class _CronProblem(Exception):
    pass


def cron_problem(expression: str) -> str | None:
    """None when ``expression`` is a valid five-field cron, else what is wrong in a few words.

    Fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-7 or
    SUN-SAT; each a ``*``, a value, a range ``a-b`` (not reversed), any of them with a step ``/n``, or a
    comma list of those. Stricter than croniter where it is lenient (no ``L``, ``#``, ``?``, ``@hourly``,
    wrap-around ranges or steps larger than the field), so whatever passes here Dagster accepts too.
    A day of month that never occurs in the months given (``0 0 30 2 *``) is refused, as Dagster does.
    """
    fields = expression.split()
    if len(fields) != len(_CRON_FIELDS):
        return f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    values: list[set[int]] = []
    try:
        for text, spec in zip(fields, _CRON_FIELDS, strict=True):
            values.append(_cron_field(text, *spec))
    except _CronProblem as err:
        return str(err)
    days, months = values[2], values[3]
    if not any(day <= _DAYS_IN_MONTH[month - 1] for day in days for month in months):
        return "the day of month never occurs in the months given"
    return None


def _cron_field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    allowed: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not _DIGITS.fullmatch(step_text) or not 1 <= int(step_text) <= high:
                raise _CronProblem(f"{name} step {shown(step_text)} is not 1-{high}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        else:
            first, dash, last = base.partition("-")
            start = _cron_value(first, name, low, high, names)
            end = _cron_value(last, name, low, high, names) if dash else (high if slash else start)
            if names is _DAY_NAMES and end == 0 < start:
                end = 7  # FRI-SUN: Sunday ends a week as 7
            if start > end:
                raise _CronProblem(f"{name} range {shown(base)} runs backwards")
        allowed.update(range(start, end + 1, step))
    return allowed


def _cron_value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if _DIGITS.fullmatch(text) and low <= int(text) <= high:
        return int(text)
    if text.upper() in names:
        return names.index(text.upper()) + low
    if not text:
        raise _CronProblem(f"{name} has an empty value")
    spelled = f" or {names[0]}-{names[-1]}" if names else ""
    raise _CronProblem(f"{name} {shown(text)} is not {low}-{high}{spelled}")


# --------------------------------------------------------------------------------------------------
# Locations that must not overlap


def _segments(location: Location) -> tuple[str, tuple[str, ...]]:
    """(kind, path segments) of a location: S3 bucket + prefix segments, or the local folder's real path
    (os.path.realpath: symlinks in the path itself are resolved; nothing under it is read)."""
    if location.is_s3:
        return "s3", tuple(part for part in location.uri.removeprefix("s3://").split("/") if part)
    return "local", Path(os.path.realpath(location.uri)).parts


def _location_shown(uri: str) -> str:
    """A location for a message: credentials redacted; a long one keeps its start and its end."""
    uri = redact(uri)
    return uri if len(uri) <= 60 else f"{uri[:20]}...{uri[-37:]}"


def check_separate_locations(flows: Iterable[FlowConfig]) -> None:
    """Refuse any two locations, across all ``flows``, that are the same or one inside the other.

    The flows may come from several files (every flow of a code location, however many component
    instances declare them): one flow's cleanup would otherwise delete another's committed data. The
    message names each flow with the file that declares it, once when both share one file.

    Compared on whole path segments (``s3://b/stag`` is not inside ``s3://b/staging``). No exclusion
    makes an overlap safe: a flow's input excludes nothing by default, and staging or output inside
    an input would be read again every cycle.
    """
    places = [
        (flow.config_path, f"flow {shown(flow.name)}.{role}.uri", location.uri, _segments(location))
        for flow in flows
        for role in _LOCATION_ROLES
        for location in (getattr(flow, role),)
    ]
    for index, (path_a, where_a, uri_a, (kind_a, parts_a)) in enumerate(places):
        for path_b, where_b, uri_b, (kind_b, parts_b) in places[index + 1 :]:
            if kind_a != kind_b:
                continue
            # One file: "FILE: flow a... and flow b..."; two: "FILE_A: flow a... and FILE_B: flow b...".
            named_b = where_b if path_b == path_a else f"{path_b}: {where_b}"
            if parts_a == parts_b:
                same = f"{where_a} and {named_b} are the same location {_location_shown(uri_a)}"
                raise ConfigError(f"{path_a}: {same}: {_SEPARATE}")
            if parts_b[: len(parts_a)] == parts_a or parts_a[: len(parts_b)] == parts_b:
                outer, inner = (where_a, uri_a), (named_b, uri_b)
                if len(parts_a) > len(parts_b):
                    outer, inner = inner, outer
                inside = f"{inner[0]} {_location_shown(inner[1])} is inside {outer[0]} {_location_shown(outer[1])}"
                raise ConfigError(f"{path_a}: {inside}: {_SEPARATE}")


class _Reader:
    """Validates one document, so every error can say which file, flow and field it is about."""

    def __init__(self, config_path: Path, base_dir: Path | None = None) -> None:
        self.path = config_path
        self.base_dir = base_dir if base_dir is not None else config_path.parent

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {message}")

    def no_unknown(self, body: Mapping[str, Any], allowed: set[str], where: str) -> None:
        unknown = sorted((key for key in body if key not in allowed), key=str)
        if unknown:
            raise self.fail(
                where or "top level", f"unknown field {shown(unknown[0])} (allowed: {', '.join(sorted(allowed))})"
            )

    def section(self, body: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        value = body.get(key)
        if not isinstance(value, dict):
            raise self.fail(f"{where}.{key}", "missing or not a mapping")
        return value

    def flow(self, name: Any, body: Any) -> FlowConfig:
        where = f"flow {shown(name)}"
        if not isinstance(name, str) or not _FLOW_NAME.fullmatch(name):
            raise self.fail(where, "flow names must be identifiers (letters, digits, underscore)")
        if not isinstance(body, dict):
            raise self.fail(where, "expected a mapping with input, staging, output, input_job, output_job")
        self.no_unknown(body, set(FLOW_KEYS), where)
        # In the file's order: locations, jobs, then what spans them.
        input_location = self.location(
            self.section(body, "input", where), f"{where}.input", compression_allowed=False, read=True
        )
        staging = self.location(self.section(body, "staging", where), f"{where}.staging", read=True)
        output = self.location(self.section(body, "output", where), f"{where}.output", output=True)
        input_job = self.job(self.section(body, "input_job", where), f"{where}.input_job", scheduled=True)
        output_job = self.job(self.section(body, "output_job", where), f"{where}.output_job", scheduled=False)
        spark = self.spark(body.get("spark", {}), f"{where}.spark")
        # The Spark stage reads JSON lines only: refuse what it would misread rather than run it.
        for job, role, read in (("input_job", "input", input_location), ("output_job", "staging", staging)):
            chosen = input_job if job == "input_job" else output_job
            written_role, written = ("staging", staging) if job == "input_job" else ("output", output)
            self.written_columns(chosen, written, f"{where}.{written_role}", f"{where}.{job}")
            if chosen.engine == "spark":
                self.spark_formats(((role, read), (written_role, written)), f"{where}.{job}.engine")
            if chosen.engine == "spark" and (read.multiline or read.json_path is not None):
                option = "multiline" if read.multiline else "jsonPath"
                raise self.fail(
                    f"{where}.{job}.engine",
                    f"spark reads JSON lines only: not with {role}.{option} (use engine: polars)",
                )
        return FlowConfig(
            name=name,
            input=input_location,
            staging=staging,
            output=output,
            # Each job carries the launcher settings, so the stage needs nothing but its job.
            input_job=replace(input_job, spark=spark),
            output_job=replace(output_job, spark=spark),
            spark=spark,
            owners=self.owners(body.get("owners", []), f"{where}.owners"),
            tags=self.tags(body.get("tags", {}), f"{where}.tags"),
            config_path=self.path,
        )

    def spark(self, body: Any, where: str) -> SparkConfig:
        """The flow's `spark:` section (launcher settings for jobs with `engine: spark`)."""
        if not isinstance(body, dict):
            raise self.fail(where, f"expected a mapping, got {shown(body)}")
        remote = SPARK_REMOTE_KEYS
        remote_keys = {key for required, optional in remote.values() for key in (*required, *optional)}
        self.no_unknown(body, {*SPARK_LOCAL_KEYS, *remote_keys}, where)
        launcher = self.choice(body.get("launcher", "local"), SPARK_LAUNCHERS, f"{where}.launcher")
        if launcher not in SPARK_LAUNCHERS_AVAILABLE:
            available = ", ".join(SPARK_LAUNCHERS_AVAILABLE)
            raise self.fail(f"{where}.launcher", f"{launcher!r} is not available yet (available: {available})")
        master = body.get("master", "local[2]")
        if not isinstance(master, str) or not _SPARK_MASTER.fullmatch(master):
            expected = "local, local[N], local[*] or spark://host:port"
            raise self.fail(f"{where}.master", f"expected {expected}, got {shown(master)}")
        memory = body.get("driver_memory", "1g")
        if not isinstance(memory, str) or not _JVM_MEMORY.fullmatch(memory):
            raise self.fail(f"{where}.driver_memory", f"expected a JVM size such as 512m or 2g, got {shown(memory)}")
        glue: dict[str, Any] = {}
        required, optional = remote.get(launcher, ((), ()))
        stray = sorted(key for key in body if key in remote_keys and key not in (*required, *optional))
        if stray:
            users = " or ".join(name for name, keys in remote.items() if stray[0] in (*keys[0], *keys[1]))
            raise self.fail(f"{where}.{stray[0]}", f"only with launcher: {users} (launcher is {launcher!r})")
        for key in required:
            if key not in body:
                raise self.fail(f"{where}.{key}", f"required with launcher: {launcher}")
            glue[key] = self.text(body[key], f"{where}.{key}", expand=False)
        if "script_uri" in glue:
            self.script_uri(glue["script_uri"], f"{where}.script_uri")
        if launcher == "glue":
            glue["glue_version"] = self.text(body.get("glue_version", "5.0"), f"{where}.glue_version", expand=False)
            glue["worker_type"] = self.choice(
                body.get("worker_type", "G.1X"), GLUE_WORKER_TYPES, f"{where}.worker_type"
            )
            glue["number_of_workers"] = self.whole(body, "number_of_workers", 2, where, minimum=2)
            if "python_modules" in body:
                glue["python_modules"] = self.text(body["python_modules"], f"{where}.python_modules", expand=False)
        return SparkConfig(
            launcher=launcher,
            master=master,
            driver_memory=memory,
            timeout_s=self.whole(body, "timeout_s", 3600, where, minimum=1),
            **glue,
        )

    def owners(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list like [team:data, someone@example.com], got {shown(value)}")
        for owner in value:
            if not isinstance(owner, str) or not _OWNER.fullmatch(owner):
                raise self.fail(where, f"{shown(owner)} is not an e-mail address or team:<name>")
        return tuple(value)

    def tags(self, value: Any, where: str) -> dict[str, str]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping like {{domain: sales}}, got {shown(value)}")
        for key, tag in value.items():
            if not isinstance(key, str) or not _TAG_KEY.fullmatch(key):
                expected = "expected [prefix/]name of letters, digits, _ . - (<= 63 each)"
                raise self.fail(where, f"key {shown(key)}: {expected}")
            if not isinstance(tag, str) or not _TAG_VALUE.fullmatch(tag):
                raise self.fail(f"{where}.{key}", f"expected up to 63 letters, digits, _ . -, got {shown(tag)}")
        return dict(value)

    def location(
        self,
        body: Mapping[str, Any],
        where: str,
        compression_allowed: bool = True,
        read: bool = False,
        output: bool = False,
    ) -> Location:
        allowed = {
            *LOCATION_KEYS,
            *(WRITTEN_LOCATION_KEYS if compression_allowed else ()),
            *(READ_LOCATION_KEYS if read else ()),
            *(OUTPUT_LOCATION_KEYS if output else ()),
        }
        self.no_unknown(body, allowed, where)
        uri = self.text(body.get("uri"), f"{where}.uri")
        if not uri.startswith("s3://"):
            local = Path(uri.removeprefix("file://"))
            uri = str(local if local.is_absolute() else (self.base_dir / local).resolve())
        elif not uri.removeprefix("s3://").split("/", 1)[0]:
            raise self.fail(f"{where}.uri", f"{shown(uri)} names no bucket")
        elif not _BUCKET.fullmatch(uri.removeprefix("s3://").split("/", 1)[0]):
            # Also catches s3://key:secret@bucket: an S3 URI carries no credentials.
            raise self.fail(f"{where}.uri", f"{shown(uri)} names no valid bucket (letters, digits, '.', '-', '_')")
        recurse = body.get("recurse", True)
        if not isinstance(recurse, bool):
            raise self.fail(f"{where}.recurse", f"expected true or false, got {shown(recurse)}")
        exclusions = body.get("exclusions", [])
        if not isinstance(exclusions, list) or not all(isinstance(e, str) and e for e in exclusions):
            raise self.fail(f"{where}.exclusions", "expected a list of glob strings")
        data_format = self.data_format(body, where, read_back=read and compression_allowed)
        if data_format.partition_keys and read and not recurse:
            raise self.fail(f"{where}.recurse", "partitioned staging is read from its folders: recurse must be true")
        compressions = compressions_of(data_format.name)
        compression = self.choice(
            body.get("compression", default_compression(data_format.name)), compressions, f"{where}.compression"
        )
        level = self.whole(body, "compression_level", None, where, minimum=1)
        if level is not None and (level not in GZIP_LEVELS or compression != "gzip"):
            expected = f"expected {GZIP_LEVELS[0]}-{GZIP_LEVELS[-1]} with compression: gzip, got {level}"
            raise self.fail(f"{where}.compression_level", expected)
        multiline = body.get("multiline", False)
        if not isinstance(multiline, bool):
            raise self.fail(f"{where}.multiline", f"expected true or false, got {shown(multiline)}")
        json_path = body.get("jsonPath")
        if json_path is not None:
            try:
                parse_json_path(json_path)
            except JsonPathError as err:
                raise self.fail(f"{where}.jsonPath", _bounded(str(err))) from None
        return Location(
            uri=uri,
            recurse=recurse,
            exclusions=tuple(exclusions),
            compression=compression,
            compression_level=level,
            orphan_grace_s=self.whole(body, "orphan_grace_s", DEFAULT_ORPHAN_GRACE_S, where, minimum=0),
            multiline=multiline,
            json_path=json_path,
            format=data_format.name,
            csv=data_format.csv,
            partition_keys=data_format.partition_keys,
            **(self.iceberg(body, where) if data_format.name == iceberg_keys.ICEBERG else {}),
        )

    def iceberg(self, body: Mapping[str, Any], where: str) -> dict[str, Any]:
        """An Iceberg output's `table` and `catalog`, `${VAR}` expanded in the catalog's values."""
        try:
            table, catalog = iceberg_keys.table_options(body, self.base_dir)
        except ValueError as err:
            key, _, message = str(err).partition(": ")
            raise self.fail(f"{where}.{key}", message) from None
        return {"table": table, "catalog": {k: self.text(v, f"{where}.catalog.{k}") for k, v in catalog.items()}}

    def data_format(self, body: Mapping[str, Any], where: str, read_back: bool = False) -> DataFormat:
        """The location's ``format``, its options (an option of another format refused, naming the key) and
        its ``partition_keys``. Staging (``read_back``: the Output job reads what the Input job wrote) reads a
        CSV header when it writes one: ``withHeader`` follows ``writeHeader`` unless set, and may not differ."""
        name = self.choice(body.get("format", "json"), (*FORMATS, iceberg_keys.ICEBERG), f"{where}.format")
        if name == iceberg_keys.ICEBERG and not where.endswith(".output"):
            raise self.fail(f"{where}.format", "iceberg is an output format only (the Output job writes the table)")
        problem = format_problem(body, name)
        if problem is not None:
            raise self.fail(f"{where}.{problem[0]}", problem[1])
        try:
            options = csv_options(body) if name == "csv" else CsvOptions()
        except ValueError as err:
            key, _, message = str(err).partition(": ")
            raise self.fail(f"{where}.{key}", message) from None
        if read_back and name == "csv" and options.with_header != options.write_header:
            if "withHeader" in body:
                expected = str(options.write_header).lower()
                written = "writes a header line" if options.write_header else "writes no header line"
                raise self.fail(f"{where}.withHeader", f"must be {expected}: staging {written}")
            options = replace(options, with_header=options.write_header)
        keys = body.get("partition_keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, str) and _PARTITION_KEY.fullmatch(k) for k in keys):
            raise self.fail(f"{where}.partition_keys", f"expected a list of column names, got {shown(keys)}")
        if len(set(keys)) != len(keys):
            raise self.fail(f"{where}.partition_keys", "a column is named twice")
        return DataFormat(name, options, tuple(keys))

    def spark_formats(self, locations: Sequence[tuple[str, Location]], where: str) -> None:
        """The Spark stage reads and writes JSON lines only, unpartitioned: anything else refused at load."""
        for role, location in locations:
            if location.format != "json":
                raise self.fail(where, f"spark reads and writes JSON lines only: not {role}.format: {location.format}")
            if location.partition_keys:
                raise self.fail(where, f"spark writes no Hive partitions yet: not with {role}.partition_keys")

    def written_columns(self, job: JobConfig, written: Location, where: str, job_where: str) -> None:
        """A written location's partition columns are mapped top-level columns (not all of them); CSV holds
        no nested column (a struct or array value has no CSV form)."""
        targets = list(dict.fromkeys(fm.target[0] for fm in job.mappings))
        if written.format == iceberg_keys.ICEBERG:  # the partition spec: columns stay in the data files
            problem = iceberg_keys.partition_problem(written.partition_keys, targets)
            if problem is not None:
                raise self.fail(f"{where}.partition_keys", f"{problem} ({job_where}.mappings)")
            return
        for key in written.partition_keys:
            if key not in targets:
                raise self.fail(f"{where}.partition_keys", f"{shown(key)} is not a column {job_where} maps to")
        if written.partition_keys and len(set(written.partition_keys)) == len(targets):
            raise self.fail(f"{where}.partition_keys", "every column would be a folder: keep one in the records")
        if written.format == "csv":
            for fm in job.mappings:
                if len(fm.target) > 1 or isinstance(fm.target_type, pl.Struct | pl.List | pl.Array):
                    column = ".".join(map(str, fm.target))
                    raise self.fail(f"{job_where}.mappings", f"{shown(column)} is nested: csv holds no nested column")

    def job(self, body: Mapping[str, Any], where: str, scheduled: bool) -> JobConfig:
        allowed = set(INPUT_JOB_KEYS if scheduled else OUTPUT_JOB_KEYS)
        self.no_unknown(body, allowed, where)
        raw = body.get("mappings")
        if not isinstance(raw, list) or not raw:
            raise self.fail(f"{where}.mappings", "expected a non-empty list of [source, type, target, type]")
        for index, mapping in enumerate(raw):
            # Shape first, so a message never has to show (or walk) a huge nested value.
            if not isinstance(mapping, list) or len(mapping) != 4 or not all(isinstance(p, str) for p in mapping):
                expected = "expected [source, source_type, target, target_type] (4 strings)"
                raise self.fail(f"{where}.mappings", f"mapping #{index}: {expected}, got {shown(mapping)}")
        try:
            mappings = parse_mappings(raw)
        except MappingError as err:
            raise self.fail(f"{where}.mappings", _bounded(str(err))) from err
        schedule = None
        if scheduled:
            schedule = self.text(body.get("schedule", "*/30 * * * *"), f"{where}.schedule")
            if len(schedule.split()) != len(_CRON_FIELDS):
                expected = "is not a 5-field cron expression (minute hour day-of-month month day-of-week)"
                raise self.fail(f"{where}.schedule", f"{shown(schedule)} {expected}")
            problem = cron_problem(schedule)
            if problem is not None:
                raise self.fail(f"{where}.schedule", f"{shown(schedule)} is not a valid cron expression: {problem}")
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
            engine=self.choice(body.get("engine", "polars"), ENGINES, f"{where}.engine"),
        )

    def band(self, value: Any, where: str) -> tuple[float, float]:
        numbers = isinstance(value, list) and len(value) == 2
        numbers = numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        if not numbers or not 0 <= value[0] < value[1]:
            raise self.fail(where, f"expected [low, high] with 0 <= low < high, got {shown(value)}")
        return float(value[0]), float(value[1])

    def whole(self, body: Mapping[str, Any], key: str, default: int | None, where: str, minimum: int) -> Any:
        value = body.get(key, default)
        if value is None and default is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(f"{where}.{key}", f"expected a whole number >= {minimum}, got {shown(value)}")
        return value

    def script_uri(self, uri: str, where: str) -> None:
        """The Spark stage script's S3 key: `s3://bucket/key.py`, with no credentials in it (botocore's
        errors would carry them into the run's event log)."""
        bucket = uri.removeprefix("s3://").split("/", 1)[0]
        if not uri.startswith("s3://") or not uri.endswith(".py") or not bucket:
            raise self.fail(where, f"expected s3://bucket/key.py, got {shown(uri)}")
        if not _BUCKET.fullmatch(bucket):
            # s3://key:secret@bucket/x.py: shown() redacts the userinfo, so the secret is never echoed.
            problem = "an S3 URI carries no credentials" if "@" in bucket else "letters, digits, '.', '-', '_'"
            raise self.fail(where, f"{shown(uri)} names no valid bucket ({problem})")

    def text(self, value: Any, where: str, expand: bool = True) -> str:
        """A non-empty string; `${VAR}` and `${VAR:-default}` expanded when ``expand`` (uri, schedule and
        transformation_ctx only, as documented), else refused rather than kept as literal text."""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {shown(value)}")
        if not expand:
            if _ENV_REF.search(value):
                refused = "${VAR} is expanded only in uri, schedule and transformation_ctx (write the value out)"
                raise self.fail(where, refused)
            return value
        try:
            return expand_env(value)
        except KeyError as err:
            raise self.fail(
                where, f"environment variable {shorten(err.args[0])} is not set and has no default"
            ) from err

    def choice(self, value: Any, options: Sequence[str], where: str) -> str:
        if value not in options:
            raise self.fail(where, f"expected one of {', '.join(options)}, got {shown(value)}")
        return str(value)

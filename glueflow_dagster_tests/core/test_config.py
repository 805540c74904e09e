"""The flow file: schema, defaults, env expansion, path resolution and one-line errors."""

from pathlib import Path

import pytest
import yaml

from glueflow_dagster.core.config import ConfigError, cron_problem, expand_env, load_config, parse_config
from glueflow_dagster_tests.conftest import write_flow_file


def test_loads_the_shipped_demo_flow() -> None:
    config = load_config(Path(__file__).parents[2] / "glueflow.yaml")
    flow = config.flows["events"]
    assert flow.staging.compression == "gzip"
    assert flow.input.exclusions == ("**.tmp", "**/_SUCCESS")
    assert flow.input_job.schedule == "*/30 * * * *"
    assert flow.output_job.transformation_ctx == "bookmark_ctx"
    assert Path(flow.input.uri).is_absolute()


def test_relative_uris_resolve_against_the_file_and_s3_uris_stay(tmp_path: Path) -> None:
    path = write_flow_file(tmp_path / "p", staging_uri="s3://bucket/staging/", output_uri="/abs/out")
    flow = load_config(path).flows["events"]
    assert flow.input.uri == str((tmp_path / "p" / "data" / "input").resolve())
    assert flow.staging.uri == "s3://bucket/staging/"
    assert flow.staging.is_s3 and not flow.input.is_s3
    assert flow.output.uri == "/abs/out"


def test_defaults_for_optional_fields(tmp_path: Path) -> None:
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    body = document["flows"]["events"]
    body["input"] = {"uri": "in"}
    del (
        body["output_job"]["bookmark"],
        body["output_job"]["transformation_ctx"],
        body["input_job"]["schedule"],
    )
    path.write_text(yaml.safe_dump(document))
    flow = load_config(path).flows["events"]
    assert (flow.input.recurse, flow.input.exclusions, flow.input.compression) == (True, (), "none")
    assert flow.output_job.bookmark == "disable"
    assert flow.output_job.transformation_ctx == "bookmark_ctx"
    assert flow.input_job.schedule == "*/30 * * * *"
    assert flow.input_job.max_error_records == 0
    assert flow.staging.compression_level is None  # the stage's default level


def test_compression_level_of_a_gzip_location(tmp_path: Path) -> None:
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["flows"]["events"]["staging"]["compression_level"] = 9
    path.write_text(yaml.safe_dump(document))
    assert load_config(path).flows["events"].staging.compression_level == 9


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}/x", {"A": "s3://b"}, "s3://b/x"),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": ""}, "fallback"),
        ("${A:-fallback}", {"A": "set"}, "set"),
        ("${A}", {"A": ""}, ""),
        ("no refs $HOME", {}, "no refs $HOME"),
        ("${A}-${B:-b}", {"A": "a"}, "a-b"),
    ],
)
def test_expand_env(text: str, env: dict[str, str], expected: str) -> None:
    assert expand_env(text, env) == expected


def test_env_expansion_in_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GF_BUCKET", "my-bucket")
    path = write_flow_file(tmp_path, staging_uri="s3://${GF_BUCKET}/staging", output_uri="${GF_UNSET:-out}")
    flow = load_config(path).flows["events"]
    assert flow.staging.uri == "s3://my-bucket/staging"
    assert flow.output.uri == str((tmp_path / "out").resolve())


def test_glueflow_config_env_var_names_the_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_flow_file(tmp_path, flow="orders")
    monkeypatch.setenv("GLUEFLOW_CONFIG", str(path))
    assert list(load_config().flows) == ["orders"]


def _mutate(body: dict, dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        body = body[part]
    if value is _DELETE:
        del body[leaf]
    else:
        body[leaf] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "output_job.bookmark",
            "on",
            "flow 'events'.output_job.bookmark: expected one of enable, disable, pause",
        ),
        ("staging.compression", "zip", "flow 'events'.staging.compression: expected one of gzip, none"),
        ("input.uri", "", "flow 'events'.input.uri: expected a non-empty string"),
        ("input.uri", "${NOPE_NOT_SET}", "environment variable NOPE_NOT_SET is not set"),
        ("staging.uri", "s3:///x", "flow 'events'.staging.uri: 's3:///x' names no bucket"),
        ("input.recurse", "yes", "flow 'events'.input.recurse: expected true or false"),
        ("input.exclusions", "**.tmp", "flow 'events'.input.exclusions: expected a list"),
        ("input.colour", "red", "flow 'events'.input: unknown field 'colour'"),
        ("input.compression", "gzip", "flow 'events'.input: unknown field 'compression'"),
        ("input.compression_level", 4, "flow 'events'.input: unknown field 'compression_level'"),
        ("staging.compression_level", 10, "flow 'events'.staging.compression_level: expected 1-9 with compression"),
        ("staging.compression_level", "fast", "flow 'events'.staging.compression_level: expected a whole number"),
        ("output.compression_level", 6, "flow 'events'.output.compression_level: expected 1-9 with compression: gzip"),
        ("input_job.schedule", "every 30 minutes", "is not a 5-field cron expression"),
        ("input_job.mappings", [], "flow 'events'.input_job.mappings: expected a non-empty list"),
        ("input_job.mappings", [["id", "long", "event_id"]], "flow 'events'.input_job.mappings: mapping #0"),
        ("input_job.mappings", [["id", "lung", "x", "long"]], "lung"),
        (
            "input_job.max_error_records",
            -1,
            "flow 'events'.input_job.max_error_records: expected a whole number",
        ),
        ("output_job.schedule", "* * * * *", "flow 'events'.output_job: unknown field 'schedule'"),
        ("staging", _DELETE, "flow 'events'.staging: missing or not a mapping"),
        ("output_job", "x", "flow 'events'.output_job: missing or not a mapping"),
    ],
)
def test_bad_fields_give_one_line_errors_naming_file_flow_and_field(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    _mutate(document["flows"]["events"], field, value)
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = str(raised.value)
    assert text.startswith(str(path)), text
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("flows: [1, 2", "not valid YAML"),
        ("flows: {}", "at least one flow"),
        ("something: else", "top-level 'flows:'"),
        ("flows: {events: 3}", "flow 'events': expected a mapping"),
        ("flows: {bad-name: {}}", "flow names must be identifiers"),
        ("flows: {events: {}}\nextra: 1", "unknown field 'extra'"),
    ],
)
def test_bad_documents(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "glueflow.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_file_names_the_path_and_the_env_var(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: flow file not found \(set GLUEFLOW_CONFIG"):
        load_config(tmp_path / "nope.yaml")


# --- Locations that cannot duplicate: overlaps across all flows are refused at load -------------


def _two_flows(directory: Path, a: dict[str, str], b: dict[str, str] | None) -> Path:
    """A flow file with flow `a` (and `b`, when given); each dict overrides input/staging/output uris."""
    path = write_flow_file(directory)
    document = yaml.safe_load(path.read_text())
    template = document["flows"].pop("events")
    for name, uris in (("a", a), ("b", b)):
        if uris is None:
            continue
        body = yaml.safe_load(yaml.safe_dump(template))
        for role in ("input", "staging", "output"):
            body[role]["uri"] = uris.get(role, f"{name}/{role}")
        document["flows"][name] = body
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (
            {"staging": "s3://b/staging"},
            {"staging": "s3://b/staging/"},
            "flow 'a'.staging.uri and flow 'b'.staging.uri are the same location s3://b/staging",
        ),
        (
            {"input": "s3://b/in", "staging": "s3://b/in/staging"},
            None,
            "flow 'a'.staging.uri s3://b/in/staging is inside flow 'a'.input.uri s3://b/in",
        ),
        (
            {"output": "s3://b/out/x"},
            {"input": "s3://b"},
            "flow 'a'.output.uri s3://b/out/x is inside flow 'b'.input.uri s3://b",
        ),
        ({"staging": "data/s"}, {"output": "data/s/out"}, "flow 'b'.output.uri"),
        ({"input": "data"}, None, "flow 'a'.input.uri"),  # the input holds a's staging and output? no: sibling
    ],
)
def test_overlapping_locations_are_refused_in_one_line(
    tmp_path: Path, a: dict[str, str], b: dict[str, str] | None, message: str
) -> None:
    path = _two_flows(tmp_path, a, b)
    if a == {"input": "data"}:  # staging and output default to a/..., outside data/: accepted
        assert set(load_config(path).flows) == {"a"}
        return
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = str(raised.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text
    assert "must be separate" in text and "\n" not in text


def test_overlap_of_local_folders_is_found_after_resolving_them(tmp_path: Path) -> None:
    project = tmp_path / "project"
    path = _two_flows(project, {"staging": "data/staging"}, {"staging": str(project / "data" / "x" / ".." / "staging")})
    with pytest.raises(ConfigError, match=r"flow 'a'.staging.uri and flow 'b'.staging.uri are the same location"):
        load_config(path)
    # A symlink naming the same folder is the same location (os.path.realpath).
    (project / "real").mkdir()
    (project / "alias").symlink_to(project / "real", target_is_directory=True)
    path = _two_flows(project, {"output": "real"}, {"input": str(project / "alias" / "sub")})  # kept as given
    with pytest.raises(ConfigError, match=r"flow 'b'.input.uri .*alias/sub is inside flow 'a'.output.uri .*real"):
        load_config(path)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"staging": "s3://b/stag"}, {"staging": "s3://b/staging"}),  # segment boundaries, not string prefixes
        ({"staging": "s3://b/staging"}, {"staging": "s3://other/staging"}),
        ({"staging": "data/stag"}, {"staging": "data/staging"}),
        ({"staging": "s3://b/data/staging"}, {"staging": "data/staging"}),  # S3 and local never overlap
    ],
)
def test_separate_locations_are_accepted(tmp_path: Path, a: dict[str, str], b: dict[str, str]) -> None:
    assert set(load_config(_two_flows(tmp_path, a, b)).flows) == {"a", "b"}


# --- Bounded messages, no credentials ----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("output_job.bookmark", "x" * 100_000),
        ("input.recurse", list(range(10_000))),
        ("output_job.flow_ratio_band", [[1] * 100 for _ in range(100)]),
        ("input_job.mappings", [["`" + "id" * 10_000, "long", "event_id", "long"]]),
        ("input_job.mappings", [["id", "l" * 10_000, "event_id", "long"]]),
        ("input_job.schedule", "9" * 10_000 + " * * * *"),
        ("input_job.max_error_records", {"k" * 1000: "v" * 1000}),
        ("input.colour" + "r" * 10_000, 1),
    ],
    ids=lambda value: str(value)[:20],  # the values themselves are the huge part
)
def test_errors_never_embed_an_unbounded_value(tmp_path: Path, field: str, value: object) -> None:
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    _mutate(document["flows"]["events"], field, value)
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = str(raised.value)
    assert "\n" not in text
    assert len(text) < len(str(path)) + 400, text
    assert "..." in text


@pytest.mark.parametrize(
    "field",
    ["input.recurse", "input_job.schedule", "output_job.flow_ratio_band", "input_job.mappings", "output.uri"],
)
def test_a_huge_shared_value_given_to_parse_config_fails_fast_and_small(tmp_path: Path, field: str) -> None:
    # What the alias bomb becomes once loaded (9**9 leaves, shared): the message must not walk it.
    bomb: object = ["lol"] * 9
    for _ in range(8):
        bomb = [bomb] * 9
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    _mutate(document["flows"]["events"], field, bomb)
    with pytest.raises(ConfigError) as raised:
        parse_config(document, path)
    text = str(raised.value)
    assert f"flow 'events'.{field}" in text and len(text) < len(str(path)) + 300, text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("staging.uri", "s3://AKIAEXAMPLE:wJalrSECRETKEY@/staging"),  # names no bucket
        ("output_job.bookmark", "http://AKIAEXAMPLE:wJalrSECRETKEY@minio:9000"),
        ("input_job.schedule", "https://AKIAEXAMPLE:wJalrSECRETKEY@x * * * *"),
    ],
)
def test_errors_never_show_url_credentials(tmp_path: Path, field: str, value: str) -> None:
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    _mutate(document["flows"]["events"], field, value)
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = str(raised.value)
    assert "SECRET" not in text and "AKIA" not in text, text
    assert "://***@" in text, text


def test_overlap_errors_redact_credentials_and_cut_long_locations(tmp_path: Path) -> None:
    long = "s3://key:SECRET@b/" + "/".join(["segment"] * 50)
    path = _two_flows(tmp_path, {"staging": long}, {"staging": long})
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = str(raised.value)
    assert "SECRET" not in text and "s3://***@b/" in text
    assert len(text) < len(str(path)) + 300, text


# --- YAML aliases ------------------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
flows: {events: {input: {uri: *i}}}
"""


def test_a_yaml_alias_bomb_fails_at_its_first_alias(tmp_path: Path) -> None:
    path = tmp_path / "glueflow.yaml"
    path.write_text(BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 600
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    # Refused at the first alias (line 2), before anything expands: fast and small by construction.
    assert (
        str(raised.value) == f"{path}: line 2: YAML aliases (*a) are not allowed in a flow file (write the value out)"
    )


def test_aliases_and_merge_keys_are_refused_anchors_alone_are_harmless(tmp_path: Path) -> None:
    path = write_flow_file(tmp_path)
    text = path.read_text()
    shared = "x-maps: &maps [[id, long, id, long]]\n"
    path.write_text(shared + text.replace("flows:", "flows:", 1))
    with pytest.raises(ConfigError, match="unknown field 'x-maps'"):  # the anchor parses; the key is unknown
        load_config(path)
    path.write_text("base: &base {uri: x}\nflows:\n  events:\n    input: {<<: *base}\n")
    with pytest.raises(ConfigError, match=r"line 4: YAML aliases \(\*base\) are not allowed"):
        load_config(path)


# --- Cron, validated fully at load ---------------------------------------------------------------

VALID_CRONS = [
    "* * * * *",
    "*/30 * * * *",
    "0 0 * * 7",
    "0 0 * * 0-7",
    "0 0 * * SUN-SAT",
    "0 0 * JAN-DEC *",
    "0 0 * jan *",
    "0 0 * * mon-fri",
    "0 0 * * FRI-SUN",
    "5/15 * * * *",
    "1-5/2 * * * *",
    "0,15,30,45 * * * *",
    "0-59/15 * * * *",
    "* * * * SUN,SAT",
    "0 0 1-31/2 * *",
    "0 0 29 2 *",
    "00 00 01 01 *",
    "0  0  * * *",
    "0 0 * 1/2 *",
    "*/59 23 31 12 6",
]
INVALID_CRONS = [
    "61 * * * *",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 32 * *",
    "0 0 1 13 *",
    "0 0 * * 8",
    "0 0 30 2 *",
    "0 0 30 2 MON",
    "*/0 * * * *",
    "H * * * *",
    "* * * * * *",
    "* * * *",
    "0, * * * *",
    ",0 * * * *",
    "1-60 * * * *",
    "*/15/2 * * * *",
    "0 0 * * sunday",
    "-1 * * * *",
    "*-5 * * * *",
    "2-5/0 * * * *",
]
# Dagster (croniter) accepts these; glueflow refuses them on purpose (README: "Flows").
STRICTER_THAN_DAGSTER = [
    "@hourly",
    "0 0 L * *",
    "0 0 * * 1#2",
    "0 0 ? * *",
    "5-1 * * * *",
    "*/61 * * * *",
    "0 0 31 4 *",
    "0 0 * FEB-JAN *",
]


@pytest.mark.parametrize("expression", VALID_CRONS + INVALID_CRONS + STRICTER_THAN_DAGSTER)
def test_cron_validation_agrees_with_dagster(expression: str) -> None:
    from dagster._utils.schedules import is_valid_cron_string

    ours = cron_problem(expression) is None
    assert ours == (expression in VALID_CRONS)
    if expression in STRICTER_THAN_DAGSTER:
        assert is_valid_cron_string(expression)
    else:
        assert is_valid_cron_string(expression) == ours


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("61 * * * *", "'61 * * * *' is not a valid cron expression: minute '61' is not 0-59"),
        ("0 0 * FOO *", "month 'FOO' is not 1-12 or JAN-DEC"),
        ("0 0 31 2 *", "the day of month never occurs in the months given"),
        ("* * * *", "is not a 5-field cron expression"),
    ],
)
def test_a_bad_cron_fails_at_load_in_one_line(tmp_path: Path, schedule: str, message: str) -> None:
    path = write_flow_file(tmp_path, schedule=schedule)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = str(raised.value)
    assert text.startswith(f"{path}: flow 'events'.input_job.schedule: "), text
    assert message in text and "\n" not in text


# --- The spark section and bounded messages (issue 22 items 10, 12) ----------------------------------


def _with_spark(tmp_path: Path, spark: dict[str, object]) -> Path:
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["flows"]["events"]["spark"] = spark
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize(
    ("spark", "field"),
    [
        ({"master": "local[2]\n"}, "master"),
        ({"driver_memory": "2g\n"}, "driver_memory"),
    ],
)
def test_spark_values_with_a_trailing_newline_are_refused(tmp_path: Path, spark: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"flow 'events'.spark.{field}: expected"):
        load_config(_with_spark(tmp_path, spark))


def test_a_flow_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["flows"]["events\n"] = document["flows"].pop("events")
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="flow names must be identifiers"):
        load_config(path)


_GLUE = {"launcher": "glue", "job_name": "j", "iam_role": "arn:aws:iam::1:role/r", "script_uri": "s3://b/x.py"}


def test_spark_script_uri_with_credentials_is_refused_without_echoing_them(tmp_path: Path) -> None:
    path = _with_spark(tmp_path, {**_GLUE, "script_uri": "s3://AKIAEXAMPLE:wJalrSECRETKEY@bucket/x.py"})
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = str(raised.value)
    assert "flow 'events'.spark.script_uri" in text and "carries no credentials" in text, text
    assert "SECRET" not in text and "AKIA" not in text, text


def test_env_references_are_not_expanded_in_the_spark_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GF_JOB", "expanded")
    with pytest.raises(ConfigError, match=r"spark.job_name: \$\{VAR\} is expanded only in uri, schedule"):
        load_config(_with_spark(tmp_path, {**_GLUE, "job_name": "${GF_JOB}"}))
    assert load_config(_with_spark(tmp_path, _GLUE)).flows["events"].spark.job_name == "j"


@pytest.mark.parametrize("field", ["input.multiline", "input.jsonPath", "owners", "tags"])
def test_a_100_kb_value_is_cut_in_the_message(tmp_path: Path, field: str) -> None:
    path = write_flow_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    huge = "$" + "x" * 100_000 if field == "input.jsonPath" else "x" * 100_000
    value: object = {"k": huge} if field == "tags" else [huge] if field == "owners" else huge
    _mutate(document["flows"]["events"], field, value)
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = str(raised.value)
    assert len(text) < len(str(path)) + 400, text[:500]

"""The flow file: schema, defaults, env expansion, path resolution and one-line errors."""

from pathlib import Path

import pytest
import yaml

from glueflow_dagster.config import ConfigError, expand_env, load_config
from glueflow_dagster_tests.conftest import write_flow_file


def test_loads_the_shipped_demo_flow() -> None:
    config = load_config(Path(__file__).parents[1] / "glueflow.yaml")
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


CRON_CASES = [
    "*/30 * * * *", "0 0 * * 7", "0 0 * * sun", "0 0 * jan-mar mon-fri", "5,10-20/3 * * * *", "5/15 * * * *",
    "0 0 1-31/2 * *", "@daily", "@hourly", "0 12 29 2 *",
    "61 * * * *", "0 24 * * *", "0 0 0 * *", "0 0 30 2 *", "*/0 * * * *", "a * * * *", "* * * *", "@often",
    "10-5 * * * *", "0 0 L * *", "0 0 ? * *", "0 0 * 13 *", "0 0 * * 8",
]  # fmt: skip


@pytest.mark.parametrize("expression", CRON_CASES)
def test_cron_validation_never_accepts_what_dagster_rejects(expression: str) -> None:
    from dagster._utils.schedules import is_valid_cron_string

    from glueflow_dagster.config import cron_problem

    if cron_problem(expression) is None:
        assert is_valid_cron_string(expression), expression
    elif not is_valid_cron_string(expression):
        assert cron_problem(expression)  # both reject; ours says why, in one line
    else:
        # Stricter than Dagster only for wrap-around ranges and croniter's L/? extensions.
        assert expression in ("10-5 * * * *", "0 0 L * *", "0 0 ? * *")

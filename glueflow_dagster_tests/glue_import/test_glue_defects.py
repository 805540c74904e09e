"""Issue 26's defects: each construct converts faithfully or is reported with its line, never exit 0 on a wrong flow."""

from __future__ import annotations

from glueflow_dagster.glue_import import CONVERTED, DEFAULT, NEEDS_USER, UNSUPPORTED
from glueflow_dagster_tests.glue_import.glue_scripts import SINK, convert, input_script, items, line_of

SOURCE = (
    'src = glueContext.create_dynamic_frame.from_options(connection_type="s3", '
    'connection_options={"paths": [PATH]}, format="json"FORMAT)\n'
)


def script(mapping: str, path: str = '"s3://raw/o"', fmt: str = "") -> str:
    return input_script(SOURCE.replace("PATH", path).replace("FORMAT", fmt) + mapping + "\n") + SINK


def test_an_empty_json_path_is_no_path() -> None:
    text = script(
        'mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "id", "long")])',
        fmt=', format_options={"jsonPath": "", "multiline": False}',
    )
    report = convert(text)
    assert report.complete, report.table()
    assert "jsonPath" not in report.entry["input"] and "multiline" not in report.entry["input"]
    [empty] = items(report, DEFAULT, "input (format_options jsonPath)")
    assert "no path" in empty.message and empty.line == line_of(text, "create_dynamic_frame")


def test_positional_apply_mapping_arguments_follow_awsglue_order() -> None:
    text = script('mapped = ApplyMapping.apply(src, [("id", "long", "id", "long")], True, "ctx", "", 10)')
    report = convert(text)
    line = line_of(text, "ApplyMapping.apply")
    [case] = [i for i in items(report, UNSUPPORTED, "input_job.mappings") if "case_sensitive" in i.message]
    assert case.line == line
    [stage] = [i for i in items(report, NEEDS_USER, "input_job.max_error_records") if "stageThreshold" in i.message]
    assert stage.value == 10 and "max_error_records" not in report.entry["input_job"]


def test_f_string_format_specs_and_conversions_are_reported() -> None:
    for field in ("{args['bucket']:0>2}", "{args['bucket']!r}"):
        text = script(
            'mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "id", "long")])',
            path='f"s3://' + field + '/raw"',
        )
        report = convert(text)
        [refused] = [i for i in items(report, UNSUPPORTED) if "format specs" in i.message]
        assert refused.line == line_of(text, "create_dynamic_frame"), report.table()
    # `!s` of a string is the string itself: converted.
    text = script(
        'mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "id", "long")])',
        path="f\"s3://{args['bucket']!s}/raw\"",
    )
    assert convert(text).entry["input"]["uri"] == "s3://${bucket}/raw"


def test_a_binary_target_is_reported_at_its_tuple() -> None:
    text = script(
        'mapped = ApplyMapping.apply(frame=src, mappings=[\n    ("id", "long", "id", "long"),\n'
        '    ("blob", "string", "blob", "binary"),\n])'
    )
    report = convert(text)
    [binary] = items(report, UNSUPPORTED, "input_job.mappings")
    assert binary.line == line_of(text, '("blob"') and "binary target" in binary.message
    assert "mappings" not in report.entry["input_job"]


def test_script_bookmarks_need_the_jobs_bookmark_option() -> None:
    # PLAIN_OUTPUT has a transformation_ctx, job.init and job.commit; Glue's default option is disable.
    report = convert(script('mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "id", "long")])'))
    assert report.entry["output_job"]["bookmark"] == "enable"
    assert not items(report, CONVERTED, "output_job.bookmark")
    [bookmark] = items(report, NEEDS_USER, "output_job.bookmark")
    assert "--job-bookmark-option job-bookmark-enable" in bookmark.message and "--from-aws" in bookmark.message


def test_a_path_naming_one_object_is_reported() -> None:
    mapping = 'mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "id", "long")])'
    text = script(mapping, path='"s3://b/sensor-data/readings-2024-01-01.json"')
    report = convert(text)
    [refused] = items(report, UNSUPPORTED, "input.uri")
    assert refused.line == line_of(text, "create_dynamic_frame") and "names one object" in refused.message
    assert "uri" not in report.entry["input"]
    # A folder, with or without its slash, and a path ending in an argument, still convert.
    for path in ('"s3://b/sensor-data/"', '"s3://b/sensor-data"', "\"s3://b/\" + args['env']"):
        assert convert(script(mapping, path=path)).complete, path

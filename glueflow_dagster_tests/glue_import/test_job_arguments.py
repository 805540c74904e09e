"""Each Glue job's arguments are its own: two jobs that take the same argument names keep their own values.

Glue passes each job its own `--X`; the flow file reads one environment. A name both jobs use for
different locations becomes `${INPUT_X}` / `${OUTPUT_X}`; a name in the path the Output job reads
exactly as the Input job writes it (the chain) stays shared.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from glueflow_dagster.core.config import parse_config
from glueflow_dagster.glue_import import (
    CONVERTED,
    NEEDS_USER,
    UNSUPPORTED,
    AwsFacts,
    AwsJob,
    ImportGlueError,
    convert_scripts,
)
from glueflow_dagster_tests.glue_import.glue_scripts import (
    GLUE_HEADER,
    PLAIN_OUTPUT,
    SINK,
    convert,
    import_glue,
    input_script,
    items,
    line_of,
    write,
)

# One script for both jobs, as in the issue: each job reads --source_bucket_uri and writes --target_bucket_uri.
SOURCE_TO_TARGET = (
    GLUE_HEADER
    + """
args = getResolvedOptions(sys.argv, ["JOB_NAME", "source_bucket_uri", "target_bucket_uri"])
glueContext = GlueContext(SparkContext.getOrCreate())
job = Job(glueContext)
job.init(args["JOB_NAME"], args)
src = glueContext.create_dynamic_frame.from_options(
    connection_type="s3", connection_options={"paths": [args["source_bucket_uri"]], "recurse": True}, format="json"
)
mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "id", "long")])
glueContext.write_dynamic_frame.from_options(
    frame=mapped, connection_type="s3", connection_options={"path": args["target_bucket_uri"]}, format="json"
)
job.commit()
"""
)


def test_same_argument_names_in_both_jobs_become_one_variable_per_job() -> None:
    report = convert_scripts("orders", SOURCE_TO_TARGET, SOURCE_TO_TARGET)
    assert report.complete, report.table()
    assert report.entry["input"]["uri"] == "${INPUT_SOURCE_BUCKET_URI}"
    assert report.entry["staging"]["uri"] == "${INPUT_TARGET_BUCKET_URI}"
    assert report.entry["output"]["uri"] == "${OUTPUT_TARGET_BUCKET_URI}"
    assert report.variables == {
        "INPUT_SOURCE_BUCKET_URI": None,
        "INPUT_TARGET_BUCKET_URI": None,
        "OUTPUT_TARGET_BUCKET_URI": None,
    }
    # The Output job's --source_bucket_uri is where it reads staging: the user checks it is the Input's target.
    [chain] = items(report, NEEDS_USER, "staging.uri")
    assert "${OUTPUT_SOURCE_BUCKET_URI}" in chain.message and "${INPUT_TARGET_BUCKET_URI}" in chain.message
    assert chain.line == line_of(SOURCE_TO_TARGET, "create_dynamic_frame")
    [target] = [i for i in items(report, NEEDS_USER, "argument target_bucket_uri") if i.source == "output.py"]
    assert "${OUTPUT_TARGET_BUCKET_URI}" in target.message and "both jobs take --target_bucket_uri" in target.message
    [read] = [i for i in items(report, NEEDS_USER, "argument source_bucket_uri") if i.source == "output.py"]
    assert "reads staging through it" in read.message
    # Distinct values load as a flow: staging and output are separate locations.
    filled = {"INPUT_SOURCE_BUCKET_URI": "s3://a/raw", "INPUT_TARGET_BUCKET_URI": "s3://a/stage"}
    filled["OUTPUT_TARGET_BUCKET_URI"] = "s3://a/out"
    entry = yaml.safe_load(yaml.safe_dump(report.entry))
    for section in ("input", "staging", "output"):
        entry[section]["uri"] = filled[entry[section]["uri"][2:-1]]
    parse_config({"flows": {"orders": entry}}, Path("glueflow.yaml"))


def test_the_command_writes_the_per_job_variables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inp = write(tmp_path, "input.py", SOURCE_TO_TARGET)
    out = write(tmp_path, "output.py", SOURCE_TO_TARGET)
    flow_file = tmp_path / "glueflow.yaml"
    code, stdout, stderr = import_glue(
        capsys, "--input-script", str(inp), "--output-script", str(out), "--flow", "f", "--out", str(flow_file)
    )
    assert code == 0, stdout + stderr
    flow = yaml.safe_load(flow_file.read_text())["flows"]["f"]
    assert flow["staging"]["uri"] != flow["output"]["uri"]
    assert "glueflow-import" not in stdout + stderr


def test_with_from_aws_each_variable_defaults_to_its_own_jobs_value() -> None:
    def job(name: str, source: str, target: str) -> AwsJob:
        arguments = {"--source_bucket_uri": source, "--target_bucket_uri": target}
        return AwsJob(name, f"s3://scripts/{name}.py", arguments)

    facts = AwsFacts(job("In", "s3://b/raw/", "s3://b/stage/"), job("Out", "s3://b/stage/", "s3://b/out/"))
    report = convert_scripts("orders", SOURCE_TO_TARGET, SOURCE_TO_TARGET, aws=facts)
    assert report.complete, report.table()
    assert report.variables == {
        "INPUT_SOURCE_BUCKET_URI": "s3://b/raw/",
        "INPUT_TARGET_BUCKET_URI": "s3://b/stage/",
        "OUTPUT_TARGET_BUCKET_URI": "s3://b/out/",
    }
    # The jobs' own values show the Output job reads what the Input job writes.
    [chain] = [i for i in items(report, CONVERTED, "staging.uri") if i.source == "output.py"]
    assert "DefaultArguments" in chain.message
    # Values that do not chain: the Output job reads another location than staging, so nothing converts.
    facts = AwsFacts(job("In", "s3://b/raw/", "s3://b/stage/"), job("Out", "s3://b/other/", "s3://b/out/"))
    report = convert_scripts("orders", SOURCE_TO_TARGET, SOURCE_TO_TARGET, aws=facts)
    [refused] = items(report, UNSUPPORTED, "staging.uri")
    assert not report.complete and refused.line == line_of(SOURCE_TO_TARGET, "create_dynamic_frame")


def test_arguments_in_the_chained_staging_path_stay_shared() -> None:
    # PLAIN_OUTPUT reads s3://${bucket}/${env}/staging/, exactly what SINK writes: one bucket, one env.
    text = (
        input_script(
            """
        src = glueContext.create_dynamic_frame.from_options(
            connection_type="s3", connection_options={"paths": ["s3://" + args["bucket"] + "/raw/"]}, format="json"
        )
        mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "id", "long")])
        """
        )
        + SINK
    )
    report = convert(text, PLAIN_OUTPUT)
    assert report.complete, report.table()
    assert report.entry["output"]["uri"] == "s3://${bucket}/out"
    assert report.entry["staging"]["uri"] == "s3://${bucket}/${env}/staging/"
    assert set(report.variables) == {"bucket", "env"}
    [chain] = [i for i in items(report, CONVERTED, "staging.uri") if i.source == "output.py"]
    assert "bucket, env" in chain.message


def test_a_refused_flow_names_the_variable_not_a_stand_in_folder() -> None:
    # Output written inside staging: refused as a flow, and the message shows ${...}, not a local stand-in.
    text = input_script(
        """
        src = glueContext.create_dynamic_frame.from_options(
            connection_type="s3", connection_options={"paths": ["s3://b/raw/"]}, format="json"
        )
        mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "id", "long")])
        glueContext.write_dynamic_frame.from_options(
            frame=mapped, connection_type="s3", connection_options={"path": args["bucket"]}, format="json"
        )
        """
    )
    output = PLAIN_OUTPUT.replace("f\"s3://{args['bucket']}/{args['env']}/staging/\"", 'args["bucket"]').replace(
        '"s3://" + args["bucket"] + "/out"', 'args["bucket"]'
    )
    with pytest.raises(ImportGlueError) as refused:
        convert(text, output)
    assert "${bucket}" in str(refused.value) and "glueflow-import" not in str(refused.value)

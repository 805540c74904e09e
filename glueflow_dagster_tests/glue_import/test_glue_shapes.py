"""Script shapes (issue 26 item 5): the `--JOB_NAME` guard, a job inside one function, try/except that re-raises.

Each shape converts to the same flow as the flat script, and what Glue never runs is reported where it is.
"""

from __future__ import annotations

import textwrap

from glueflow_dagster.glue_import import DEFAULT, NEEDS_USER, UNSUPPORTED
from glueflow_dagster_tests.glue_import.glue_scripts import GLUE_HEADER, convert, items, line_of

STEPS = """\
src = glueContext.create_dynamic_frame.from_options(
    connection_type="s3", connection_options={"paths": ["s3://" + args["bucket"] + "/raw/"]}, format="json"
)
mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "id", "long")])
glueContext.write_dynamic_frame.from_options(
    frame=mapped,
    connection_type="s3",
    connection_options={"path": "s3://" + args["bucket"] + "/" + args["env"] + "/staging/", "compression": "gzip"},
    format="json",
)
job.commit()
"""
SETUP = """\
glueContext = GlueContext(SparkContext.getOrCreate())
job = Job(glueContext)
job.init(args["JOB_NAME"], args)
"""
ARGS = 'args = getResolvedOptions(sys.argv, ["JOB_NAME", "bucket", "env"])\n'
FLAT = GLUE_HEADER + ARGS + SETUP + STEPS


def indent(text: str) -> str:
    return textwrap.indent(text, "    ")


def test_the_flat_script_converts() -> None:
    report = convert(FLAT)
    assert report.complete, report.table()


def test_the_job_name_guard_reads_the_branch_glue_takes() -> None:
    guarded = (
        GLUE_HEADER
        + "if '--JOB_NAME' in sys.argv:\n"
        + indent(ARGS)
        + "else:\n"
        + indent('args = {"JOB_NAME": "local", "bucket": "dev-bucket", "env": "dev"}\n')
        + SETUP
        + STEPS
    )
    report = convert(guarded)
    assert report.complete, report.table()
    assert report.entry == convert(FLAT).entry
    [local] = [i for i in items(report, DEFAULT, "step") if "never takes" in i.message]
    assert local.line == line_of(guarded, '"local"')
    # `not in`: the else branch is Glue's.
    negated = guarded.replace("if '--JOB_NAME' in sys.argv:", "if '--JOB_NAME' not in sys.argv:")
    negated = negated.replace("    " + ARGS, "    PLACEHOLDER\n").replace(
        '    args = {"JOB_NAME": "local", "bucket": "dev-bucket", "env": "dev"}\n', "    " + ARGS
    )
    negated = negated.replace("PLACEHOLDER", 'args = {"JOB_NAME": "local"}')
    assert convert(negated).entry == convert(FLAT).entry


def test_a_params_list_appended_under_the_guard() -> None:
    script = (
        GLUE_HEADER
        + 'params = ["bucket", "env"]\n'
        + "if '--JOB_NAME' in sys.argv:\n"
        + indent('params.append("JOB_NAME")\n')
        + "args = getResolvedOptions(sys.argv, params)\n"
        + SETUP
        + STEPS
    )
    report = convert(script)
    assert report.complete, report.table()
    assert report.entry == convert(FLAT).entry


def test_a_job_inside_one_function_called_at_module_level() -> None:
    for call in ("main()\n", 'if __name__ == "__main__":\n    main()\n'):
        script = GLUE_HEADER + "\n\ndef main():\n" + indent(ARGS + SETUP + STEPS + "return\n") + "\n\n" + call
        report = convert(script)
        assert report.complete, report.table()
        assert report.entry == convert(FLAT).entry
        [definition] = [i for i in items(report, DEFAULT, "step") if "def main" in i.message]
        assert definition.line == line_of(script, "def main") and "main() runs them" in definition.message
    # Never called: nothing runs, nothing converts, and the definition is reported.
    uncalled = GLUE_HEADER + "\n\ndef main():\n" + indent(ARGS + SETUP + STEPS)
    report = convert(uncalled)
    assert not report.complete
    assert [i for i in items(report, NEEDS_USER, "step") if "def main" in i.message]
    # A function taking arguments is not read: its call is reported.
    with_parameters = GLUE_HEADER + "\n\ndef main(argv):\n" + indent(ARGS + SETUP + STEPS) + "\nmain(sys.argv)\n"
    report = convert(with_parameters)
    assert not report.complete
    assert [i for i in items(report, UNSUPPORTED, "step") if i.line == line_of(with_parameters, "main(sys.argv)")]


def test_a_recursive_function_is_not_read_forever() -> None:
    script = GLUE_HEADER + "\n\ndef main():\n" + indent(ARGS + "main()\n") + "\nmain()\n"
    report = convert(script)
    assert not report.complete


def test_try_except_that_reraises_is_read_and_one_that_swallows_is_reported() -> None:
    body = ARGS + SETUP + STEPS
    reraise = GLUE_HEADER + "try:\n" + indent(body) + "except Exception as err:\n    print(err)\n    raise\n"
    report = convert(reraise)
    assert report.complete, report.table()
    assert report.entry == convert(FLAT).entry
    swallow = GLUE_HEADER + "try:\n" + indent(body) + "except Exception as err:\n    print(err)\n"
    report = convert(swallow)
    [refused] = [i for i in items(report, UNSUPPORTED, "step") if "Try" in i.message]
    assert refused.line == line_of(swallow, "try:")

"""Job bookmarks: what the Glue jobs' `transformation_ctx`, `job.init`/`job.commit` and bookmark option
become in the flow.

glueflow's Input job always keeps its own bookmark (it reads each raw object once); the Output job's
`bookmark` follows the Glue Output job: a bookmark exists only with a transformation_ctx on the source,
`job.init` and `job.commit`, and the job's `--job-bookmark-option` decides whether it is used.
"""

from __future__ import annotations

from glueflow_dagster.glue_import.draft import Draft
from glueflow_dagster.glue_import.report import CONVERTED, DEFAULT, NEEDS_USER, short
from glueflow_dagster.glue_import.script import JobShape
from glueflow_dagster.glue_import.values import Text, plain


def bookmarks(draft: Draft, input_shape: JobShape, output_shape: JobShape) -> None:
    """Set the Output job's bookmark and transformation_ctx; report what the Input job's bookmark becomes."""
    _output_bookmark(draft, output_shape)
    _input_bookmark(draft, input_shape)


def _output_bookmark(draft: Draft, output_shape: JobShape) -> None:
    out = draft.out
    ctx_value = output_shape.source.args.get("transformation_ctx") if output_shape.source else None
    ctx = None
    if isinstance(ctx_value, Text) and ctx_value.text:
        ctx = draft.text(ctx_value, "output_job.transformation_ctx", out, output_shape.source.line, expandable=True)
    committed = out.job_init is not None and out.job_commit is not None
    option = None
    if draft.aws is not None:
        option = draft.aws.output_job.default_arguments.get("--job-bookmark-option", "job-bookmark-disable")
    line = output_shape.source.line if output_shape.source else None
    if ctx is None:
        draft.set(
            "output_job.bookmark",
            "disable",
            CONVERTED,
            "no transformation_ctx on the Output source: every run reads all of staging (the guide before its fix)",
            out,
            line,
        )
    elif not committed:
        missing = "job.init()" if out.job_init is None else "job.commit()"
        draft.set(
            "output_job.bookmark",
            "disable",
            CONVERTED,
            f"transformation_ctx but no {missing}: Glue never saves that bookmark",
            out,
            line,
        )
    elif option is None:
        # The script asks for a bookmark; the job's --job-bookmark-option (disabled by default) decides.
        why = (
            "transformation_ctx + job.init/job.commit: used only if the Glue job runs with --job-bookmark-option "
            "job-bookmark-enable (Glue's default is disable: then set bookmark: disable); --from-aws reads it"
        )
        draft.set("output_job.bookmark", "enable", NEEDS_USER, why, out, line)
    elif option == "job-bookmark-enable":
        why = "transformation_ctx + job.init/job.commit + --job-bookmark-option job-bookmark-enable"
        draft.set("output_job.bookmark", "enable", CONVERTED, why, out, line)
    elif option == "job-bookmark-pause":
        draft.set("output_job.bookmark", "pause", CONVERTED, "--job-bookmark-option job-bookmark-pause", out, line)
    else:
        draft.set(
            "output_job.bookmark",
            "disable",
            CONVERTED,
            f"--job-bookmark-option {short(option)} (the script has a transformation_ctx)",
            out,
            line,
        )
    if ctx is not None:
        draft.set("output_job.transformation_ctx", ctx, CONVERTED, "the Output source's transformation_ctx", out, line)
    else:
        draft.add(
            DEFAULT,
            "output_job.transformation_ctx",
            "glueflow's default (used if the bookmark is enabled later)",
            "bookmark_ctx",
            out,
            line,
        )


def _input_bookmark(draft: Draft, input_shape: JobShape) -> None:
    # glueflow's Input job always keeps its own bookmark (it reads each raw object once).
    inp = draft.inp
    in_ctx = input_shape.source.args.get("transformation_ctx") if input_shape.source else None
    in_option = (
        draft.aws.input_job.default_arguments.get("--job-bookmark-option", "job-bookmark-disable")
        if draft.aws
        else None
    )
    bookmarked = (
        isinstance(in_ctx, Text)
        and in_ctx.text
        and inp.job_commit is not None
        and in_option in (None, "job-bookmark-enable")
    )
    if bookmarked:
        known = in_option is not None  # without --from-aws the job's bookmark option is not known
        draft.add(
            CONVERTED if known else NEEDS_USER,
            "input_job (bookmark)",
            "the Input job reads each raw object once (its own bookmark), as the script's transformation_ctx did"
            + (
                ""
                if known
                else " if the Glue job runs with --job-bookmark-option job-bookmark-enable (--from-aws "
                "reads it; Glue's default, disable, rereads all input each run)"
            ),
            plain(in_ctx),
            inp,
            input_shape.source.line if input_shape.source else None,
        )
    else:
        draft.add(
            NEEDS_USER,
            "input_job (bookmark)",
            "glueflow's Input job always reads only raw objects no earlier successful run read; the Glue job "
            "rereads all input each run (no transformation_ctx/job.commit or bookmark option)",
            None,
            inp,
            input_shape.source.line if input_shape.source else None,
        )

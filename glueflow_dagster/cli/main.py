"""The `glueflow` command: `glueflow demo`, `glueflow bookmark show|reset|rewind|set-to-current`, `import-glue`."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from glueflow_dagster.cli.maintain import add_maintain
from glueflow_dagster.components.flow_source import load_flows
from glueflow_dagster.core.config import ConfigError, FlowConfig, GlueflowConfig, default_config_path
from glueflow_dagster.core.storage import StorageError

_BATCH = re.compile(r"(?:^|/)batch=(\d+)/")


_CONFIG_HELP = (
    "flow file or component instance (defs/<name>/defs.yaml); default $GLUEFLOW_CONFIG, else glueflow.yaml "
    "in the working directory"
)
_FLOW_HELP = "flow to use (default: the first in the file)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glueflow",
        description="Chained incremental S3 ETL flows on Dagster, with Glue's bookmarks and data-flow monitoring.",
        epilog="Run `glueflow COMMAND --help` for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, details: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {details}")

    _add_demo(command)
    _add_bookmark(command)
    add_maintain(command, _CONFIG_HELP)

    report = command(
        "report",
        "the guide's charts from the instance's history",
        "Prints the guide's windows (Input bytes written, Output bytes read, their ratio) from DAGSTER_HOME's "
        "runs, as a table or JSON, and draws the chart as a PNG.",
    )
    report.add_argument("--flow", default=None, help=_FLOW_HELP)
    report.add_argument("--json", action="store_true", help="print the windows as JSON")
    report.add_argument("--png", type=Path, default=None, metavar="FILE", help="draw the chart into FILE")
    report.add_argument("--config", type=Path, default=None, metavar="FILE", help=_CONFIG_HELP)

    simulate = command(
        "simulate",
        "replay the Glue guide's timeline in virtual time",
        "Runs the guide's Input and Output runs through the real assets, sensor and bookmark code on a "
        "temporary instance and prints the windows.",
    )
    simulate.add_argument(
        "--bookmarks",
        choices=["enable", "disable"],
        required=True,
        help="job bookmarks for the Output job (disable: the guide's picture before its fix)",
    )
    simulate.add_argument("--json", action="store_true", help="print the windows as JSON")
    simulate.add_argument("--png", type=Path, default=None, metavar="FILE", help="draw the chart into FILE")

    glue = command(
        "import-glue",
        "turn AWS Glue scripts, jobs and triggers into a flow",
        "Reads Glue PySpark scripts with Python's ast (never running them), or the jobs, scripts and triggers of "
        "an AWS account with --from-aws, writes the flow (flow file or component defs.yaml) and prints a "
        "migration report: what converted, what came from defaults, what needs you. Exits 1 when a step "
        "does not convert (unless --allow-partial), 2 on input it cannot read.",
    )
    glue.add_argument("--input-script", type=Path, default=None, help="the Input job's Glue PySpark script")
    glue.add_argument("--output-script", type=Path, default=None, help="the Output job's Glue PySpark script")
    glue.add_argument("--flow", required=True, help="name of the flow to write")
    where = glue.add_mutually_exclusive_group()
    where.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="write (or add) the flow to this flow file"
    )
    where.add_argument(
        "--component", type=Path, default=None, metavar="DIR", help="write DIR/defs.yaml (glueflow_dagster.GlueFlows)"
    )
    glue.add_argument("--allow-partial", action="store_true", help="write what converts even if some steps do not")
    glue.add_argument("--json", action="store_true", help="print the migration report as JSON")
    glue.add_argument("--from-aws", action="store_true", help="read the jobs, scripts and triggers from AWS Glue")
    glue.add_argument("--input-job", default=None, help="--from-aws: the Input job's name")
    glue.add_argument("--output-job", default=None, help="--from-aws: the Output job's name")
    glue.add_argument(
        "--catalog-location",
        action="append",
        default=[],
        metavar="DB.TABLE=URI",
        help="S3 location of a Data Catalog table read or written with from_catalog (repeatable; --from-aws "
        "reads the tables with Glue GetTable)",
    )
    glue.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the Output job's --conf job parameter (Spark settings, e.g. spark.sql.catalog.glue_catalog.warehouse="
        "s3://...; repeatable, or Glue's chained 'k=v --conf k2=v2') for its Iceberg write; --from-aws reads it",
    )
    glue.add_argument(
        "--datalake-formats",
        default=None,
        metavar="LIST",
        help="the Output job's --datalake-formats job parameter (iceberg) for write_data_frame.from_catalog",
    )
    return parser


_Command = Callable[[str, str, str], argparse.ArgumentParser]


def _add_demo(command: _Command) -> None:
    demo = command(
        "demo",
        "write sample data and run Input -> sensor -> Output cycles",
        "Each cycle writes a batch of sample raw JSON, runs the Input job, ticks the Output sensor and runs the "
        "Output job it requests, through the real definitions against DAGSTER_HOME (default "
        ".glueflow/dagster_home beside the flow file), and prints one row per cycle. Progress goes to stderr.",
    )
    demo.add_argument("--cycles", type=int, default=4, help="trigger periods to run (default 4)")
    demo.add_argument("--config", type=Path, default=None, metavar="FILE", help=_CONFIG_HELP)
    demo.add_argument("--flow", default=None, help=_FLOW_HELP)
    demo.add_argument(
        "--bookmarks",
        choices=["enable", "disable", "pause"],
        default=None,
        help="override output_job.bookmark for this demo (disable shows the guide's growing ratio)",
    )
    demo.add_argument(
        "--fresh",
        action="store_true",
        help="start the flow over first: delete its runs, asset history and sensor cursor from DAGSTER_HOME and "
        "the objects glueflow wrote in its input, staging and output locations (other flows keep theirs; "
        "other objects, excluded ones, the flow file and DAGSTER_HOME stay)",
    )
    demo.add_argument(
        "--fresh-outside-project",
        action="store_true",
        help="with --fresh: also clear locations outside the project folder (S3, other folders), still only "
        "the objects glueflow wrote there",
    )


def _add_bookmark(command: _Command) -> None:
    bookmark = command(
        "bookmark",
        "show or change an Output job's bookmark",
        "show: the committed bookmark and what the next run would read; reset: the next run reads everything; "
        "rewind --to-run RUN_ID: back to the state after that successful Output run; set-to-current: mark "
        "everything now in staging as read without running.",
    )
    bookmark.add_argument(
        "action", choices=["show", "reset", "rewind", "set-to-current"], help="what to do with the bookmark"
    )
    bookmark.add_argument("--to-run", default=None, metavar="RUN_ID", help="rewind: the successful Output run")
    bookmark.add_argument("--flow", default=None, help=_FLOW_HELP)
    bookmark.add_argument("--ctx", default=None, help="transformation_ctx (default: the flow file's)")
    bookmark.add_argument("--dry-run", action="store_true", help="list what the next run would read; change nothing")
    bookmark.add_argument("--json", action="store_true", help="print JSON instead of text")
    bookmark.add_argument("--config", type=Path, default=None, metavar="FILE", help=_CONFIG_HELP)


def _progress(line: str) -> None:
    """Progress of a long command: stderr, so stdout stays the table or JSON a script reads."""
    print(line, file=sys.stderr, flush=True)


def _pick_flow(config: GlueflowConfig, name: str | None) -> FlowConfig:
    if name is None:
        return next(iter(config.flows.values()))
    if name not in config.flows:
        raise ConfigError(f"{config.path}: no flow named {name!r} (flows: {', '.join(config.flows)})")
    return config.flows[name]


def _next_batch(flow: FlowConfig) -> int:
    """Continue after the batches an earlier demo wrote, so no raw object is ever overwritten."""
    from glueflow_dagster.components.resources import StorageResource

    batches = [int(m.group(1)) for o in StorageResource().open(flow.input.uri).list() if (m := _BATCH.search(o.key))]
    return max(batches, default=-1) + 1


def demo(args: argparse.Namespace) -> int:
    from glueflow_dagster.cli.demo import CycleFigures, run_demo
    from glueflow_dagster.cli.home import open_instance
    from glueflow_dagster.definitions import build_definitions

    if args.cycles < 1:
        raise ConfigError("--cycles must be at least 1")
    config = load_flows(args.config or default_config_path())
    flow = _pick_flow(config, args.flow)
    if args.bookmarks:
        flow = replace(flow, output_job=replace(flow.output_job, bookmark=args.bookmarks))
        config = replace(config, flows={**config.flows, flow.name: flow})
    instance = open_instance(config.project_dir)
    home = instance.root_directory
    if args.fresh:
        from glueflow_dagster.cli.fresh import start_fresh

        fresh = start_fresh(
            instance,
            flow,
            progress=_progress,
            project_dir=config.project_dir,
            outside_project=args.fresh_outside_project,
        )
        for line in fresh.lines():
            _progress(line)
    print(f"flow {flow.name}: output bookmark {flow.output_job.bookmark}; DAGSTER_HOME={home}")
    print(f"{'cycle':>5}  {'input bytes written':>20}  {'output bytes read':>18}  {'ratio':>6}")

    def report(row: CycleFigures) -> None:
        ratio = "n/a" if row.ratio is None else f"{row.ratio:.2f}"
        print(
            f"{row.cycle:>5}  {row.input_bytes_written:>20,}  {row.output_bytes_read:>18,}  {ratio:>6}",
            flush=True,
        )

    first = _next_batch(flow)
    defs = build_definitions(config)
    run_demo(defs, instance, flow, args.cycles, report=report, first_cycle=first, progress=_progress)
    print(f"Browse the runs, lineage and metadata: DAGSTER_HOME={instance.root_directory} dagster dev")
    return 0


def bookmark(args: argparse.Namespace) -> int:
    import json

    from glueflow_dagster.cli.home import open_instance
    from glueflow_dagster.components.bookmark_admin import run_admin_action
    from glueflow_dagster.components.resources import StorageResource

    config = load_flows(args.config or default_config_path())
    flow = _pick_flow(config, args.flow)
    instance = open_instance(config.project_dir)
    if args.action != "rewind" or args.to_run:  # a rewind without --to-run fails at once, with one line
        _progress(f"bookmark {args.action}: flow {flow.name}, listing staging at {flow.staging.uri} ...")
    report = run_admin_action(
        instance,
        flow,
        StorageResource().open(flow.staging.uri),
        args.action,
        ctx=args.ctx,
        to_run=args.to_run,
        dry_run=args.dry_run,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else "\n".join(report.lines()))
    return 0


def report(args: argparse.Namespace) -> int:
    from glueflow_dagster.cli.home import open_instance
    from glueflow_dagster.cli.report import report_command

    config = load_flows(args.config or default_config_path())
    flow = _pick_flow(config, args.flow)
    instance = open_instance(config.project_dir)
    _progress(f"report: reading flow {flow.name}'s runs from DAGSTER_HOME={instance.root_directory} ...")
    return report_command(instance, flow.name, args.json, args.png)


def maintain(args: argparse.Namespace) -> int:
    from glueflow_dagster.cli.home import open_instance
    from glueflow_dagster.cli.maintain import maintain_command

    config = load_flows(args.config or default_config_path())
    flow = _pick_flow(config, args.flow)
    return maintain_command(open_instance(config.project_dir), flow, args.older_than, args.dry_run, _progress)


def simulate(args: argparse.Namespace) -> int:
    from glueflow_dagster.cli.simulate import simulate_command

    return simulate_command(args.bookmarks, args.json, args.png)


def import_glue(args: argparse.Namespace) -> int:
    """`glueflow import-glue`: exit 0 converted, 1 something not converted (without --allow-partial), 2 bad input."""
    from glueflow_dagster.glue_import import ImportGlueError

    try:
        return _import_glue(args)
    except ImportGlueError as err:  # caught here so main() stays as it was
        print(f"glueflow: {err}", file=sys.stderr)
        return 2


def _import_glue(args: argparse.Namespace) -> int:
    import json

    from glueflow_dagster import glue_import

    catalog = {}
    for item in args.catalog_location:
        table, sep, uri = item.partition("=")
        if not sep or not table or not uri:
            raise glue_import.ImportGlueError(f"--catalog-location {item!r}: expected DATABASE.TABLE=URI")
        catalog[table] = uri
    parameters = {"--conf": " --conf ".join(args.conf)} if args.conf else {}
    if args.datalake_formats is not None:
        parameters["--datalake-formats"] = args.datalake_formats
    scripts = args.input_script is not None or args.output_script is not None
    if args.from_aws:
        if scripts or not (args.input_job and args.output_job):
            raise glue_import.ImportGlueError("--from-aws takes --input-job and --output-job (and no --*-script)")
        result = glue_import.convert_aws(args.flow, args.input_job, args.output_job, catalog, job_parameters=parameters)
    else:
        if args.input_job or args.output_job or not (args.input_script and args.output_script):
            raise glue_import.ImportGlueError(
                "give --input-script and --output-script, or --from-aws with --input-job and --output-job"
            )
        result = glue_import.convert_files(args.flow, args.input_script, args.output_script, catalog, parameters)
    written: Path | None = None
    writable = result.complete or args.allow_partial
    unusable = None  # with --allow-partial, what converted may still lack a required field
    if writable:
        try:
            glue_import.validate_entry(result.flow, result.entry, result.variables)
        except glue_import.ImportGlueError as err:
            writable, unusable = False, str(err)
    if writable and args.out is not None:
        written = glue_import.write_flow_file(result, args.out)
    elif writable and args.component is not None:
        written = glue_import.write_component(result, args.component)
    if args.json:
        print(json.dumps({**result.to_dict(), "written": None if written is None else str(written)}, indent=2))
    elif writable and written is None:
        # No destination: the flow file goes to stdout (redirect it), the report to stderr.
        print(glue_import.dump_yaml(glue_import.flow_document(result)), end="")
        print(result.table(), file=sys.stderr)
    else:
        print(result.table())
        if written is not None:
            print(f"flow {result.flow!r} written to {written}")
    if unusable is not None:
        print(f"glueflow: nothing written: {unusable}", file=sys.stderr)
        return 1
    if not writable:
        count = len(result.of(glue_import.UNSUPPORTED))
        print(
            f"glueflow: {count} construct(s) not converted; nothing written (--allow-partial writes the rest)",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from glueflow_dagster.components.bookmark_admin import BookmarkAdminError

    args = _parser().parse_args(argv)
    handlers = {"demo": demo, "bookmark": bookmark, "report": report, "simulate": simulate}
    handlers["import-glue"] = import_glue
    handlers["maintain"] = maintain
    try:
        return handlers[args.command](args)
    except (ConfigError, StorageError, BookmarkAdminError) as err:
        print(f"glueflow: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

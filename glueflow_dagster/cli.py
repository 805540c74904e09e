"""The `glueflow` command: `glueflow demo [--cycles N] [--config FILE]`."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from glueflow_dagster.config import ConfigError, FlowConfig, GlueflowConfig, default_config_path, load_config
from glueflow_dagster.storage import StorageError

_BATCH = re.compile(r"(?:^|/)batch=(\d+)/")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glueflow", description="Chained incremental S3 ETL flows on Dagster."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="write sample data and run Input -> sensor -> Output cycles")
    demo.add_argument("--cycles", type=int, default=4, help="trigger periods to run (default 4)")
    demo.add_argument(
        "--config", type=Path, default=None, help="flow file (default $GLUEFLOW_CONFIG or glueflow.yaml)"
    )
    demo.add_argument("--flow", default=None, help="flow to run (default: the first in the file)")
    return parser


def _pick_flow(config: GlueflowConfig, name: str | None) -> FlowConfig:
    if name is None:
        return next(iter(config.flows.values()))
    if name not in config.flows:
        raise ConfigError(f"{config.path}: no flow named {name!r} (flows: {', '.join(config.flows)})")
    return config.flows[name]


def _next_batch(flow: FlowConfig) -> int:
    """Continue after the batches an earlier demo wrote, so no raw object is ever overwritten."""
    from glueflow_dagster.resources import StorageResource

    batches = [
        int(m.group(1)) for o in StorageResource().open(flow.input.uri).list() if (m := _BATCH.search(o.key))
    ]
    return max(batches, default=-1) + 1


def demo(args: argparse.Namespace) -> int:
    from glueflow_dagster.definitions import build_definitions
    from glueflow_dagster.demo import CycleFigures, run_demo
    from glueflow_dagster.home import open_instance

    if args.cycles < 1:
        raise ConfigError("--cycles must be at least 1")
    config = load_config(args.config or default_config_path())
    flow = _pick_flow(config, args.flow)
    instance = open_instance(config.path.parent)
    home = instance.root_directory
    print(f"flow {flow.name}: output bookmark {flow.output_job.bookmark}; DAGSTER_HOME={home}")
    print(f"{'cycle':>5}  {'input bytes written':>20}  {'output bytes read':>18}  {'ratio':>6}")

    def report(row: CycleFigures) -> None:
        ratio = "n/a" if row.ratio is None else f"{row.ratio:.2f}"
        print(
            f"{row.cycle:>5}  {row.input_bytes_written:>20,}  {row.output_bytes_read:>18,}  {ratio:>6}",
            flush=True,
        )

    run_demo(
        build_definitions(config), instance, flow, args.cycles, report=report, first_cycle=_next_batch(flow)
    )
    print(f"Browse the runs, lineage and metadata: DAGSTER_HOME={instance.root_directory} dagster dev")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"demo": demo}
    try:
        return handlers[args.command](args)
    except (ConfigError, StorageError) as err:
        print(f"glueflow: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

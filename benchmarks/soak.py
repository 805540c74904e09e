"""Soak: many Input -> sensor -> Output cycles of one real flow with operator faults, then the exactly-once verdict.

    python -m benchmarks.soak --cycles 200 --faults random [--seed N] [--s3]

Each cycle writes new raw input, maybe injects a fault, runs the Input job, then sensor ticks with the runs
they request (the daemon's part). Faults (``--faults random`` picks one per cycle with probability
``--fault-rate``; ``--faults none`` injects none; or a comma list of kinds):

    sigkill        SIGKILL an Input or Output run's worker at a random point (then what run monitoring does)
    reexecute      re-execute an earlier Input or Output run (ReexecutionOptions, the parent's config and tags)
    concurrent     the UI's Materialize of F/output in another process while the sensor's run goes
    delete_staging delete a committed staging part by hand (its undelivered records are explained losses)
    late           a raw object older than the watermark minus the band (local folders only)
    rewrite        an outside producer rewrites a raw object in place (its new version must appear once)
    s3_outage      the S3 endpoint is lost mid-write of an Output run (with --s3)

At the end the flow is driven to quiescence and checked (see glueflow_dagster_tests.support.flow_driver):
every record of every current raw version exactly once, superseded versions at most once, nothing committed
deleted, records_read == records_written + error_records on every run. Exit status 1 on any duplicate or
unexplained loss (or any other broken invariant). With --s3 a moto server is started on a free port and stopped
at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from glueflow_dagster_tests.support.cuttable_proxy import CuttableProxy
from glueflow_dagster_tests.support.flow_driver import INPUT_JOB, OUTPUT_JOB, FlowDriver, S3Target

FAULTS = ("sigkill", "reexecute", "concurrent", "delete_staging", "late", "rewrite", "s3_outage")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--faults", default="random", help="random | none | comma list of " + ",".join(FAULTS))
    parser.add_argument("--fault-rate", type=float, default=0.5, help="chance of a fault per cycle (random)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--s3", action="store_true", help="run the flow on a moto S3 server (started here)")
    parser.add_argument("--records", type=int, default=200, help="records per new raw object")
    parser.add_argument("--max-ticks", type=int, default=12, help="ticks allowed to reach quiescence")
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles: expected a positive number")
    if args.faults not in ("random", "none"):
        unknown = [f for f in args.faults.split(",") if f not in FAULTS]
        if unknown:
            parser.error(f"--faults: unknown kind {unknown[0][:40]!r}; expected random, none or {', '.join(FAULTS)}")
    return args


def allowed_faults(args: argparse.Namespace) -> list[str]:
    if args.faults == "none":
        return []
    kinds = list(FAULTS) if args.faults == "random" else args.faults.split(",")
    if not args.s3:
        kinds = [k for k in kinds if k != "s3_outage"]
    else:
        kinds = [k for k in kinds if k != "late"]  # S3 sets last-modified itself
    return kinds


def inject(flow: FlowDriver, fault: str, rng: random.Random, args: argparse.Namespace) -> str:
    """Inject one fault; returns a short description."""
    if fault == "sigkill":
        job = rng.choice([INPUT_JOB, OUTPUT_JOB])
        if job == INPUT_JOB:
            flow.add_raw(args.records * 10)
        delay = rng.uniform(0.0, 3.0)
        run_id, outcome = flow.kill_run(job, when="delay", delay_s=delay)
        return f"SIGKILL {job} after {delay:.1f}s: {outcome}"
    if fault == "reexecute":
        runs = [
            r.dagster_run.run_id
            for r in flow.instance.get_run_records(limit=30)
            if r.dagster_run.job_name in (INPUT_JOB, OUTPUT_JOB)
        ]
        if not runs:
            return "re-execute: no run yet"
        run_id, ok = flow.reexecute(rng.choice(runs))
        return f"re-execute: {run_id[:8]} success={ok}"
    if fault == "concurrent":
        ui = flow.child_run("asset", "events/output")
        results = flow.tick_and_run()
        ui.communicate(timeout=600)
        return f"concurrent UI materialization with {len(results)} sensor run(s); UI exit {ui.returncode}"
    if fault == "delete_staging":
        key = flow.delete_staging_part()
        return f"deleted staging part {key}"
    if fault == "late":
        key = flow.add_raw(args.records, late_s=2 * 3600)
        return f"late object {key}"
    if fault == "rewrite":
        key = flow.rewrite_raw(records=args.records)
        return f"rewrote {key}"
    if fault == "s3_outage":
        flow.add_raw(args.records * 5)
        flow.input_run()
        requests = flow.tick()
        result, cut = flow.output_run_with_outage(requests[0] if requests else None)
        return f"S3 endpoint lost mid-write: cut={cut} run success={result.success}"
    raise ValueError(fault)


def soak(args: argparse.Namespace, root: Path, s3: S3Target | None) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    rng = random.Random(seed)
    # Small parts so SIGKILLs and outages land mid-write; grace 0 so orphans are collected by the next run.
    flow = FlowDriver(root, s3=s3, seed=seed, input_target_file_bytes=200_000, output_target_file_bytes=200_000)
    kinds = allowed_faults(args)
    injected: Counter[str] = Counter()
    deleted_committed: list[str] = []
    started = time.monotonic()
    print(f"soak: {args.cycles} cycles, faults {args.faults} {kinds}, seed {seed}, {'S3 (moto)' if s3 else 'local'}")
    try:
        for cycle in range(1, args.cycles + 1):
            flow.add_raw(args.records)
            fault = rng.choice(kinds) if kinds and rng.random() < args.fault_rate else None
            what = ""
            if fault:
                injected[fault] += 1
                what = inject(flow, fault, rng, args)
            flow.input_run()
            for _ in range(3):  # the sensor's ticks of this cycle (the rest catches up next cycle)
                if not flow.tick_and_run():
                    break
            deleted_committed += flow.snapshot()
            print(
                f"cycle {cycle:4d} {time.monotonic() - started:7.1f}s records in {len(current(flow)):7d} "
                f"{fault or '-':14s} {what}",
                flush=True,
            )
        ticks = flow.quiesce(max_ticks=args.max_ticks)
        verdict = flow.verdict()
    finally:
        flow.close()
    deleted_committed += verdict.deleted_committed
    rows: list[tuple[str, Any]] = [
        ("cycles", args.cycles),
        ("seed", seed),
        ("storage", "S3 (moto)" if s3 else "local"),
        *((f"faults: {kind}", injected[kind]) for kind in FAULTS if kind in kinds),
        ("records in (current raw versions)", verdict.records_in),
        ("records out (committed output)", verdict.records_out),
        ("records out of superseded raw versions (at most once)", verdict.superseded_out),
        ("duplicates", verdict.duplicates),
        ("losses", verdict.losses),
        ("  explained by deleted staging parts", verdict.explained_losses),
        ("  unexplained", verdict.unexplained_losses),
        ("event log vs commit manifests differ", verdict.manifest_view_differs),
        ("committed objects deleted", len(deleted_committed)),
        ("runs with records_read != written + errors", len(verdict.figure_mismatches)),
        ("orphans left", verdict.orphans_left),
        ("ticks to quiescence", ticks),
        ("wall time (s)", round(time.monotonic() - started, 1)),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    print(f"| {'figure':{width}s} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name:{width}s} | {value} |")
    broken = verdict.duplicates or verdict.unexplained_losses or deleted_committed or not verdict.clean
    if broken:
        print(f"FAILED: {verdict}", file=sys.stderr)
        for line in deleted_committed[:10]:
            print(f"deleted committed object: {line}", file=sys.stderr)
    return 1 if broken else 0


def current(flow: FlowDriver) -> set[int]:
    return {i for ids in flow.truth.current.values() for i in ids}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="glueflow-soak-") as tmp:
        if not args.s3:
            return soak(args, Path(tmp), None)
        import logging

        import boto3
        from botocore.config import Config
        from moto.server import ThreadedMotoServer

        # Fake keys for the moto server only: a real token or profile must not be mixed in or sent anywhere.
        os.environ.update(
            {"AWS_ACCESS_KEY_ID": "soak", "AWS_SECRET_ACCESS_KEY": "soak", "AWS_DEFAULT_REGION": "us-east-1"}
        )
        for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
            os.environ.pop(name, None)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        proxy = None
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            client = boto3.client(
                "s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(s3={"addressing_style": "path"})
            )
            client.create_bucket(Bucket="glueflow-soak")
            proxy = CuttableProxy(endpoint)
            return soak(args, Path(tmp), S3Target("glueflow-soak", proxy, client))
        finally:
            if proxy is not None:
                proxy.close()
            server.stop()


if __name__ == "__main__":
    sys.exit(main())

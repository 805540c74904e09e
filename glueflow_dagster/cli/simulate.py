"""`glueflow simulate`: the Glue guide's timeline replayed in virtual time through the real code.

Input runs start every 30 minutes from 12:00 and take 10 minutes, except the third, which takes 17,
so its Output run starts late (13:17) and the fourth Input run overlaps it. An Output run starts
when its Input run succeeded and the previous Output run is done (max concurrency 1), and takes
3 minutes plus 14 minutes per batch it reads. Each run really executes, through the real assets,
sensor ticks and bookmark code, on temporary folders and a temporary Dagster instance; only the
clock is virtual: events happen in virtual-time order, so an Output run lists exactly the staging
objects that existed when it began.

The replay is deterministic: the sample batches are seeded by their batch number (`write_batch`), the
timeline is fixed, and the staging parts' bytes depend only on the records (gzip without a name or a
time in its header), so the same installed versions print the same figures every time. The README's
pictures `docs/simulate_disable.png` and `docs/simulate_enable.png` are drawn by
`glueflow simulate --bookmarks disable|enable --png docs/simulate_<option>.png`; the tables checked in
beside `glueflow_dagster_tests/cli/test_simulate.py` pin their figures.
"""

import heapq
import json
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml
from dagster import DagsterInstance, Definitions, build_sensor_context

from glueflow_dagster.components.jobs import (
    input_job_name,
    output_job_name,
    output_key,
    output_sensor_name,
    staging_key,
)
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core.chart import draw_flow_chart, flow_table_json, flow_table_markdown
from glueflow_dagster.core.flow_accounting import (
    InputRun,
    OutputRun,
    Slot,
    Window,
    flow_slots,
    total_bytes_read,
    total_bytes_written,
)
from glueflow_dagster.core.sample_data import write_batch
from glueflow_dagster.definitions import load_definitions

FLOW = "guide"
PERIOD_S = 30 * 60
GUIDE_START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp()
INPUT_MINUTES = [10, 10, 17, 10, 10, 10]  # the third Input run is slow
OUTPUT_BASE_MINUTES, OUTPUT_MINUTES_PER_BATCH = 3, 14
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
_MAPPINGS = {
    "input_job": [
        ["id", "long", "event_id", "long"],
        ["type", "string", "event_type", "string"],
        ["ts", "string", "event_time", "timestamp"],
        ["user.id", "int", "user_id", "long"],
        ["amount", "string", "amount", "double"],
    ],
    "output_job": [
        ["event_id", "long", "event_id", "long"],
        ["event_type", "string", "event_type", "string"],
        ["user_id", "long", "user_id", "long"],
        ["amount", "double", "amount", "double"],
    ],
}


@dataclass(frozen=True)
class Simulation:
    bookmarks: str
    input_runs: list[InputRun]
    output_runs: list[OutputRun]
    slots: list[Slot]  # the windows, and the Output runs that started after the last window closed

    @property
    def windows(self) -> list[Window]:
        return [slot.window for slot in self.slots if slot.window is not None]

    @property
    def total_bytes_written(self) -> int:
        return total_bytes_written(self.slots)

    @property
    def total_bytes_read(self) -> int:
        return total_bytes_read(self.slots)


def _flow_file(root: Path, bookmarks: str) -> Path:
    flow = {
        "input": {"uri": "data/input"},
        "staging": {"uri": "data/staging", "compression": "gzip"},
        "output": {"uri": "data/output"},
        "input_job": {"mappings": _MAPPINGS["input_job"]},
        "output_job": {"bookmark": bookmarks, "mappings": _MAPPINGS["output_job"]},
    }
    path = root / "glueflow.yaml"
    path.write_text(yaml.safe_dump({"flows": {FLOW: flow}}), encoding="utf-8")
    return path


class _Replay:
    """The virtual clock and the real runs it drives."""

    def __init__(self, defs: Definitions, instance: DagsterInstance, input_uri: str, events_per_batch: int) -> None:
        self.defs, self.instance = defs, instance
        self.raw = StorageResource().open(input_uri)
        self.events_per_batch = events_per_batch
        self.cursor: str | None = None
        self.input_runs: list[InputRun] = []
        self.output_runs: list[OutputRun] = []

    def input_run(self, batch: int, start_s: float, end_s: float) -> None:
        write_batch(self.raw, batch, files=2, events_per_file=self.events_per_batch // 2)
        result = self.defs.resolve_job_def(input_job_name(FLOW)).execute_in_process(
            instance=self.instance, run_config=_QUIET
        )
        written = run_materialization_metadata(self.instance, result.run_id, staging_key(FLOW))["bytes_written"]
        self.input_runs.append(InputRun(result.run_id, start_s, end_s, int(written)))

    def output_run(self, start_s: float) -> float | None:
        """One sensor tick at `start_s` and the Output run it requests; returns its virtual end."""
        with build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=self.defs, resources=self.defs.resources
        ) as context:
            tick = self.defs.resolve_sensor_def(output_sensor_name(FLOW)).evaluate_tick(context)
        self.cursor = tick.cursor or self.cursor
        if not tick.run_requests:
            return None
        [request] = tick.run_requests
        result = self.defs.resolve_job_def(output_job_name(FLOW)).execute_in_process(
            instance=self.instance, run_config={**_QUIET, **(request.run_config or {})}, tags=request.tags
        )
        read = int(run_materialization_metadata(self.instance, result.run_id, output_key(FLOW))["bytes_read"])
        batch_bytes = max(sum(r.bytes_written for r in self.input_runs) / len(self.input_runs), 1)
        minutes = OUTPUT_BASE_MINUTES + OUTPUT_MINUTES_PER_BATCH * read / batch_bytes
        end_s = start_s + minutes * 60
        self.output_runs.append(OutputRun(result.run_id, start_s, end_s, read))
        return end_s


def simulate(bookmarks: str, *, events_per_batch: int = 4_000, input_minutes: list[int] | None = None) -> Simulation:
    """Replay the guide's timeline with `output_job.bookmark: <bookmarks>`."""
    durations = input_minutes or INPUT_MINUTES
    with tempfile.TemporaryDirectory(prefix="glueflow-simulate-") as tmp:
        root = Path(tmp)
        defs = load_definitions(_flow_file(root, bookmarks))
        home = root / "dagster_home"
        home.mkdir()
        with DagsterInstance.local_temp(str(home), overrides={"telemetry": {"enabled": False}}) as instance:
            replay = _Replay(defs, instance, str(root / "data" / "input"), events_per_batch)
            # (virtual time, order, kind, batch): an Input run's objects appear when it ends.
            events = [(GUIDE_START + i * PERIOD_S + m * 60, 0, "input", i) for i, m in enumerate(durations)]
            heapq.heapify(events)
            slot_free_s, waiting = GUIDE_START, 0
            while events:
                now, _, kind, batch = heapq.heappop(events)
                if kind == "input":
                    replay.input_run(batch, GUIDE_START + batch * PERIOD_S, now)
                    waiting += 1
                    if waiting == 1:
                        heapq.heappush(events, (max(now, slot_free_s), 1, "output", -1))
                else:
                    end = replay.output_run(now)
                    waiting -= 1
                    slot_free_s = end if end is not None else now
                    if waiting:
                        heapq.heappush(events, (slot_free_s, 1, "output", -1))
        return Simulation(
            bookmarks,
            replay.input_runs,
            replay.output_runs,
            flow_slots(replay.input_runs, replay.output_runs, period_s=PERIOD_S),
        )


def chart_title(bookmarks: str) -> str:
    return f"Glue guide timeline replayed, job bookmarks {bookmarks}"


def simulate_command(bookmarks: str, json_out: bool, png: Path | None) -> int:
    """`glueflow simulate --bookmarks B [--json] [--png FILE]`: the table (or JSON) on stdout, progress and
    where the chart went on stderr."""
    print(f"replaying the guide's timeline with bookmarks {bookmarks} ...", file=sys.stderr, flush=True)
    result = simulate(bookmarks)
    runs = f"{len(result.input_runs)} Input and {len(result.output_runs)} Output runs"
    print(f"replayed {runs}", file=sys.stderr, flush=True)
    if png is not None:
        draw_flow_chart(result.slots, png, chart_title(bookmarks))
        print(f"chart written to {png}", file=sys.stderr)
    print(json.dumps(flow_table_json(result.slots), indent=2) if json_out else flow_table_markdown(result.slots))
    return 0

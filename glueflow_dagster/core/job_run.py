"""What the Input and the Output runs share between their stage and their commit.

Both jobs run the same sequence (plan -> stage -> account -> commit, `input_run.py` and `output_run.py`);
the pieces here are the ones they have in common: the stage request a run makes and the stage as a
callable that takes it (polars in this process, or Spark through Dagster Pipes, chosen by the shell), the
claim before the commit, and the figures a committed run records. Publishing and aborting are
`core.commits`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from glueflow_dagster.core.claims import ClaimTable, take_claim
from glueflow_dagster.core.commits import (
    COMMIT_KEY,
    Attempt,
    ClaimLost,
    CommitRecord,
    CommittedParts,
    GarbageReport,
    collect_garbage,
)
from glueflow_dagster.core.config import JobConfig, Location
from glueflow_dagster.core.intents import RepairReport, repair_intents
from glueflow_dagster.core.quarantine import QUARANTINE_DIR
from glueflow_dagster.core.stage import StageRequest, StageResult, stage_pending
from glueflow_dagster.core.storage import ObjectInfo, Storage, location_uri

# Dagster's standard metadata keys, plain strings (the shell passes them through).
URI_KEY, ROW_COUNT_KEY = "dagster/uri", "dagster/row_count"
SUMMARY_KEY = "summary"  # markdown; the shell shows it as such


class RunRefused(Exception):
    """The run stops with this one-line reason; nothing was committed and its own pending objects are gone."""


class Stage(Protocol):
    """One stage (polars here, or Spark through Dagster Pipes, chosen by the shell): pending parts only."""

    def __call__(self, request: StageRequest) -> StageResult: ...


Log = Callable[[str], None]


def quarantine_prefix(run_id: str) -> str:
    """Where a run's bad records go, inside the location it writes."""
    return f"{QUARANTINE_DIR}/{run_id}/"


def refused_by(source: Storage) -> tuple[tuple[str, str], ...]:
    """Objects the listing refused (local symlinks out of the location): quarantined and counted."""
    return tuple((source.uri_for(r.key), r.cause) for r in getattr(source, "refused", ()))


def stage_request(
    job: JobConfig,
    manifest: Sequence[ObjectInfo],
    attempt: Attempt,
    *,
    reads: tuple[Storage, Location],
    writes: tuple[Storage, Location],
) -> StageRequest:
    """The stage a job run asks for: its frozen manifest from the location it ``reads`` (with that
    location's reader options) into pending parts named after the attempt in the location it ``writes``
    (with its output settings), the job's mappings and error threshold, bad records quarantined under the
    run's prefix."""
    (source, source_location), (target, target_location) = reads, writes
    return StageRequest(
        source=source,
        objects=tuple(manifest),
        target=target,
        name_prefix=attempt.part_prefix,
        mappings=job.raw_mappings,
        compression=target_location.compression,
        compression_level=target_location.compression_level,
        max_error_records=job.max_error_records,
        target_file_bytes=job.target_file_bytes,
        quarantine_prefix=quarantine_prefix(attempt.run_id),
        refused=refused_by(source),
        json_format=source_location.json_format,
        read_format=source_location.data_format,
        write_format=target_location.data_format,
    )


def polars_stage(log: Log) -> Stage:
    """The polars stage as both jobs run it (``stage.stage_pending``): pending parts only, the commit
    publishes them."""

    def stage(request: StageRequest) -> StageResult:
        return stage_pending(request, log=log)

    return stage


@dataclass(frozen=True)
class RunOutcome:
    """A committed run: the metadata its materialization records (plain values: ints, floats, strings,
    dicts and lists, which Dagster records as JSON) and the checks' verdicts (Output runs only)."""

    metadata: dict[str, Any]
    verdicts: tuple[Any, ...] = ()


def claim_or_refuse(
    target: Storage,
    fence: str,
    attempt: Attempt,
    settled: Callable[[Attempt], bool],
    *,
    claims: ClaimTable | None = None,
    log: Log = lambda _m: None,
) -> None:
    """The right to commit after the planned version (`claims.take_claim`: in the location when its store
    honours conditional writes, else in ``claims``, the Dagster instance), or a refused run."""
    try:
        take_claim(target, fence, attempt, settled=settled, table=claims, log=log)
    except ClaimLost as err:
        raise RunRefused(str(err)) from err


@dataclass(frozen=True)
class Housekeeping:
    """What a run did to its location before writing: the repair of ended attempts' commit intents and
    garbage collection; both are recorded in its materialization (docs/metadata.md)."""

    garbage: GarbageReport
    repair: RepairReport = RepairReport()

    def metadata(self) -> dict[str, int]:
        return {**self.garbage.metadata(), **self.repair.metadata()}


def garbage_collection(
    target: Storage,
    committed: CommittedParts,
    *,
    now_ms: int,
    grace_s: int,
    log: Log,
    settled: Callable[[Attempt], bool] | None = None,
    attempt: Attempt | None = None,
) -> Housekeeping:
    """Repair the commit intents of ended attempts (`intents.repair_intents`, when ``settled`` is given),
    then count and (after the grace period) remove the orphans of the location this step alone writes."""
    repair = RepairReport() if settled is None else repair_intents(target, committed, settled, current=attempt, log=log)
    garbage = collect_garbage(
        target, target.list(), committed, now_ms=now_ms, grace_s=grace_s, log=log, settled=settled
    )
    return Housekeeping(garbage, repair)


def stage_figures(result: StageResult) -> dict[str, Any]:
    """The figures Dagster plots (plain ints/floats become Int/Float entries)."""
    return {
        "bytes_read": result.bytes_read,
        "bytes_written": result.bytes_written,
        "records_read": result.records_read,
        "records_written": result.records_written,
        "files_read": result.files_read,
        "files_written": result.files_written,
        "error_records": result.error_records,
        "error_files": result.error_files,
        "cast_errors": result.cast_errors,
        "duration_s": round(result.duration_s, 3),
    }


def commit_figures(result: StageResult, record: CommitRecord, garbage: Housekeeping | GarbageReport) -> dict[str, Any]:
    """The stage's figures as committed, the commit record, orphans and vanished objects."""
    return {
        **stage_figures(replace(result, written=record.parts)),
        "vanished_files": len(result.vanished),
        "vanished_bytes": sum(obj.size for obj in result.vanished),
        **garbage.metadata(),
        COMMIT_KEY: record.to_dict(),
    }


def location_figures(uri: str, records_written: int) -> dict[str, Any]:
    """Per materialization: the records written (`dagster/row_count`) and where (`dagster/uri`)."""
    return {ROW_COUNT_KEY: records_written, URI_KEY: location_uri(uri)}


def summary_markdown(title: str, metadata: dict[str, Any]) -> str:
    """The run's plotted figures (its ints and floats) as a small markdown table."""
    figures = {k: v for k, v in metadata.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    rows = "\n".join(
        f"| {name} | {value:,} |" if isinstance(value, int) else f"| {name} | {value} |"
        for name, value in figures.items()
    )
    return f"**{title}**\n\n| figure | value |\n|---|---|\n{rows}"


def conflict_on_location(uri: str) -> str:
    return (
        f"commit conflict on {uri}: another run committed there since this run planned; "
        "nothing was committed and this attempt's objects were discarded, a later run reads these objects"
    )

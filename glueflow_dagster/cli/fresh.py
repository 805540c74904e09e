"""`glueflow demo --fresh`: start one flow over, with no history and no data.

Why: the demo continues where the last one stopped (new batches, the same bookmark, the same flow
accounting), so a second `glueflow demo --bookmarks disable` rereads everything earlier demos
staged and prints other numbers than the README. `--fresh` removes this flow's history from the
instance (its runs with their event logs, and its assets' materializations and observations, where
the committed bookmarks live) and the objects glueflow wrote in its input, staging and output locations.
Other flows in the same DAGSTER_HOME keep theirs. Works on any instance (SQLite or PostgreSQL).

What it deletes (a location may hold anyone's data: a folder of documents, a shared bucket): only names
glueflow makes (:func:`glueflow_written`): the demo's sample batches (``batch=NNNNN/events-NNN.json[.gz]``),
parts named by a run's attempt (``run-<id>-attempt-<n>-part-r-NNNNN...``), quarantine objects
(``_errors/<run>/errors-NNNNN.json``) and glueflow's bookkeeping (``_glueflow/``), never an object the
location's ``exclusions`` exclude, never the flow file, never anything in DAGSTER_HOME. Only in local
folders inside the project folder without asking: a location elsewhere (S3, another folder, the project
folder itself) is refused before anything is deleted unless ``--fresh-outside-project`` confirms it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance, RunsFilter

from glueflow_dagster.components.jobs import (
    FLOW_TAG,
    bookmark_admin_job_name,
    flow_report_key,
    input_job_name,
    output_job_name,
    output_key,
    output_sensor_name,
    raw_input_key,
    staging_key,
)
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core.commits import attempt_of
from glueflow_dagster.core.config import ConfigError, FlowConfig, Location
from glueflow_dagster.core.storage import RESERVED_DIR, LocalStorage, Storage

_PAGE = 1000
#: The confirmation `glueflow demo --fresh` needs for locations outside the project folder.
OUTSIDE_FLAG = "--fresh-outside-project"
_SAMPLE_BATCH = re.compile(r"(?:.*/)?batch=\d{5}/events-\d{3}\.json(?:\.gz)?")
_QUARANTINE_OBJECT = re.compile(r"(?:.*/)?_errors/[^/]+/errors-\d{5}\.json")


@dataclass(frozen=True)
class FreshReport:
    runs_deleted: int
    objects_deleted: dict[str, int]  # location uri -> objects removed
    sensor_cursors_cleared: int = 0

    def lines(self) -> list[str]:
        data = ", ".join(f"{count:,} objects under {uri}" for uri, count in self.objects_deleted.items())
        return [f"fresh start: deleted {self.runs_deleted:,} runs and their history; {data}"]


def _flow_run_ids(instance: DagsterInstance, flow: FlowConfig) -> set[str]:
    """Every run of this flow: tagged with it, of its jobs, or having materialized one of its assets
    (a UI "Materialize" runs outside the flow's jobs)."""
    run_ids = set(instance.get_run_ids(RunsFilter(tags={FLOW_TAG: flow.name})))
    jobs = [input_job_name(flow.name), output_job_name(flow.name), bookmark_admin_job_name(flow.name)]
    for job in jobs:
        run_ids.update(instance.get_run_ids(RunsFilter(job_name=job)))
    for key in _asset_keys(flow):
        for fetch in (instance.fetch_materializations, instance.fetch_observations):
            cursor = None
            while True:
                page = fetch(key, limit=_PAGE, cursor=cursor)
                run_ids.update(record.run_id for record in page.records if record.run_id)
                if not page.has_more:
                    break
                cursor = page.cursor
    return run_ids


def _asset_keys(flow: FlowConfig) -> list:
    name = flow.name
    return [raw_input_key(name), staging_key(name), output_key(name), flow_report_key(name)]


def glueflow_written(key: str) -> bool:
    """Whether a key is one glueflow makes: a sample batch, an attempt's part, a quarantine object or its
    bookkeeping under ``_glueflow/``."""
    return bool(
        _SAMPLE_BATCH.fullmatch(key)
        or attempt_of(key) is not None
        or _QUARANTINE_OBJECT.fullmatch(key)
        or RESERVED_DIR in key.split("/")
    )


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_locations(flow: FlowConfig, project: Path, home: Path | None, outside_project: bool) -> None:
    """Refuse, before anything is deleted, a location that is not a folder of the project's own."""
    if outside_project:
        return
    for role, location in (("input", flow.input), ("staging", flow.staging), ("output", flow.output)):
        storage = StorageResource().open(location.uri)
        root = storage.root.resolve() if isinstance(storage, LocalStorage) else None
        own = root is not None and root != project and project in root.parents
        if own and root is not None and home is not None and (_inside(root, home) or _inside(home, root)):
            own = False
        if not own:
            raise ConfigError(
                f"--fresh refused: flow {flow.name!r} {role} location {location.uri[:200]} is not a folder inside "
                f"the project folder {project}; nothing was deleted (pass {OUTSIDE_FLAG} to delete the objects "
                "glueflow wrote there)"
            )


def _delete_written(storage: Storage, location: Location, protected: Callable[[Path], bool]) -> int:
    """Delete the objects glueflow wrote under a location (not excluded, not protected); returns the count."""
    local = storage if isinstance(storage, LocalStorage) else None
    deleted = 0
    folders: set[Path] = set()
    for info in list(storage.list(exclusions=location.exclusions)):
        if not glueflow_written(info.key):
            continue
        if local is not None:
            path = (local.root / info.key).resolve()
            if protected(path):
                continue
            folders.update(p for p in path.parents if local.root in p.parents)
        storage.delete(info.key)
        deleted += 1
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with suppress(OSError):  # not empty: someone else's files, or a write in progress
            folder.rmdir()
    return deleted


def start_fresh(
    instance: DagsterInstance,
    flow: FlowConfig,
    *,
    progress: Callable[[str], None] = lambda _line: None,
    project_dir: Path | None = None,
    outside_project: bool = False,
) -> FreshReport:
    """Delete the flow's runs, asset history and the objects glueflow wrote; nothing of other flows.

    ``project_dir`` (default: the flow file's folder) holds the locations --fresh may clear without
    ``outside_project``; any other location raises a one-line :class:`ConfigError` before anything goes.
    """
    project = (project_dir or (flow.config_path.parent if flow.config_path else Path.cwd())).resolve()
    home = Path(instance.root_directory).resolve() if instance.root_directory else None
    flow_file = flow.config_path.resolve() if flow.config_path else None
    if flow.output.format == "iceberg":
        raise ConfigError(
            f"--fresh refused: flow {flow.name!r} writes the Iceberg table {flow.output.uri[:200]}; deleting its "
            "data files would leave the table's metadata pointing at them; nothing was deleted (drop the table "
            "from its catalog first)"
        )
    _check_locations(flow, project, home, outside_project)

    def protected(path: Path) -> bool:
        return path == flow_file or (home is not None and _inside(path, home))

    run_ids = sorted(_flow_run_ids(instance, flow))
    progress(f"fresh: deleting {len(run_ids):,} runs of flow {flow.name} and its asset history")
    for run_id in run_ids:
        instance.delete_run(run_id)
    instance.wipe_assets(_asset_keys(flow))
    cleared = _clear_sensor_cursor(instance, flow)
    deleted: dict[str, int] = {}
    for location in (flow.input, flow.staging, flow.output):
        progress(f"fresh: deleting the objects glueflow wrote under {location.uri}")
        storage = StorageResource().open(location.uri)
        deleted[location.uri] = _delete_written(storage, location, protected) if storage.exists() else 0
    return FreshReport(len(run_ids), deleted, cleared)


def _clear_sensor_cursor(instance: DagsterInstance, flow: FlowConfig) -> int:
    """Forget what the daemon's F_output_sensor followed and planned from (its stored cursor names
    deleted runs and the wiped bookmark), so `dagster dev` afterwards starts over with the flow."""
    # Not in dagster's public API: the daemon's stored sensor state.
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import SensorInstigatorData

    cleared = 0
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        data = state.instigator_data
        ours = state.instigator_name == output_sensor_name(flow.name)
        if ours and isinstance(data, SensorInstigatorData) and data.cursor is not None:
            instance.update_instigator_state(state.with_data(data._replace(cursor=None)))
            cleared += 1
    return cleared

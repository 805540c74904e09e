"""The same flows on a production instance: Dagster's PostgreSQL storage on a real server.

Why: the event log is glueflow's commit log (committed bookmarks, frozen manifests and per-run
figures are read back from it), and production Dagster runs on PostgreSQL, not SQLite. The SQLite
tests of the sensor, the bookmark commits, the commit fence and the admin controls run here again,
unchanged, on a DagsterInstance built from the shipped `glueflow_dagster/dagster_postgres.yaml`:
this module's `instance` fixture replaces conftest's SQLite one for them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from dagster import DagsterInstance

from glueflow_dagster_tests.components import test_bookmark_admin as admin
from glueflow_dagster_tests.components import test_bookmark_store as store
from glueflow_dagster_tests.components import test_sensors as sensors
from glueflow_dagster_tests.conftest import write_flow_file


@pytest.fixture
def instance(postgres_instance: DagsterInstance) -> DagsterInstance:
    """Every test below runs on PostgreSQL storage (runs, event log, schedules)."""
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    assert isinstance(postgres_instance.run_storage, PostgresRunStorage)
    assert isinstance(postgres_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(postgres_instance.schedule_storage, PostgresScheduleStorage)
    return postgres_instance


# The scenarios of the SQLite tests, collected here with the PostgreSQL `instance` above.
flow = store.flow

# Input -> sensor tick -> Output, and max concurrency 1 seen through the run storage.
test_sensor_follows_every_input_success_once = (
    sensors.test_follows_every_input_success_once_oldest_first_including_runs_finished_while_off
)
test_sensor_waits_while_an_output_run_is_in_flight = sensors.test_no_request_while_an_output_run_is_queued_or_running

# Bookmark commits, retries of a frozen manifest, and the commit fence (`bookmark conflict for context`).
test_bookmark_commits = store.test_each_output_run_reads_a_frozen_manifest_of_new_objects_and_commits_on_success
test_bookmark_failed_run_is_retried = (
    store.test_a_failed_runs_manifest_is_requested_again_and_nothing_is_lost_or_duplicated
)
test_bookmark_hand_launched_run = store.test_run_launched_by_hand_plans_from_the_committed_bookmark_and_commits
test_bookmark_conflict = store.test_a_stale_manifest_fails_clearly_and_commits_nothing

# The admin controls: reset, rewind, set-to-current, and the admin job.
test_admin_reset = admin.test_reset_makes_the_next_run_read_everything
test_admin_rewind = admin.test_rewind_restores_the_state_after_an_earlier_run
test_admin_set_to_current = admin.test_set_to_current_marks_staging_read_without_running
test_admin_job = admin.test_admin_job_in_dagster_runs_the_same_controls


def test_the_commit_log_is_in_postgres(flow: store.Flow) -> None:
    """The committed bookmark is read back from rows in PostgreSQL, not from anything local."""
    from glueflow_dagster.components.bookmark_store import committed_bookmark

    flow.input_run()
    result = flow.output_run()
    assert result.success
    url = (
        f"postgresql://{os.environ['DAGSTER_PG_USERNAME']}:{os.environ['DAGSTER_PG_PASSWORD']}"
        f"@{os.environ['DAGSTER_PG_HOST']}:{os.environ['DAGSTER_PG_PORT']}/{os.environ['DAGSTER_PG_DB']}"
    )
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs")
        assert cursor.fetchone()[0] == flow.instance.get_runs_count() == 2
        cursor.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'"
            " AND asset_key = %s",
            (result.run_id, '["events", "output"]'),
        )
        assert cursor.fetchone()[0] == 1
    assert committed_bookmark(flow.instance, "events", "bookmark_ctx").bookmark.version == 1


def test_glueflow_demo_on_a_postgres_dagster_home(tmp_path: Path, postgres_instance: DagsterInstance) -> None:
    """`glueflow demo` as a user runs it, with DAGSTER_HOME holding the PostgreSQL dagster.yaml."""
    flow_file = write_flow_file(tmp_path / "project", bookmark="enable")
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if k != "GLUEFLOW_CONFIG"}
    env["DAGSTER_HOME"] = postgres_instance.root_directory
    done = subprocess.run(
        [sys.executable, "-m", "glueflow_dagster.cli", "demo", "--cycles", "2", "--config", str(flow_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^\s+(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)$", done.stdout, re.M)
    assert [(r[0], r[3]) for r in rows] == [("0", "1.00"), ("1", "1.00")]
    # The runs are in the PostgreSQL instance the test holds (4: two Input and two Output runs).
    assert postgres_instance.get_runs_count() == 4

"""Bookmark controls: show, reset, rewind, set-to-current and dry runs, from the CLI and the admin job."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance

from glueflow_dagster.components.bookmark_admin import BookmarkAdminError, run_admin_action
from glueflow_dagster.components.bookmark_store import committed_bookmark
from glueflow_dagster.core.config import load_config
from glueflow_dagster_tests.components.test_bookmark_store import Flow


@pytest.fixture
def flow(tmp_path: Path, instance: DagsterInstance) -> Flow:
    return Flow(tmp_path / "project", instance)


def admin(flow: Flow, action: str, **options):
    config = load_config(flow.path).flows["events"]
    return run_admin_action(
        flow.instance, config, flow.raw.__class__(flow.root / "data" / "staging"), action, **options
    )


def version(flow: Flow) -> int:
    return committed_bookmark(flow.instance, "events", "bookmark_ctx").bookmark.version


def three_committed_runs(flow: Flow) -> list[str]:
    runs = []
    for _ in range(3):
        flow.input_run()
        runs.append(flow.output_run().run_id)
    return runs


def test_show_and_dry_runs_change_nothing(flow: Flow) -> None:
    three_committed_runs(flow)
    flow.input_run()
    shown = admin(flow, "show")
    assert (shown.after.version, len(shown.next_manifest)) == (3, 1)
    for action in ("reset", "set-to-current"):
        dry = admin(flow, action, dry_run=True)
        assert not dry.changed and version(flow) == 3
    assert len(admin(flow, "reset", dry_run=True).next_manifest) == 4
    assert len(admin(flow, "set-to-current", dry_run=True).next_manifest) == 0
    assert "dry run, nothing changed" in admin(flow, "reset", dry_run=True).lines()[0]


def test_reset_makes_the_next_run_read_everything(flow: Flow) -> None:
    three_committed_runs(flow)
    report = admin(flow, "reset")
    assert report.changed and version(flow) == 4  # versions only move forward
    result = flow.output_run()
    assert flow.output_metadata(result.run_id)["files_read"] == 3


def test_rewind_restores_the_state_after_an_earlier_run(flow: Flow) -> None:
    runs = three_committed_runs(flow)
    admin(flow, "rewind", to_run=runs[0])
    result = flow.output_run()
    assert flow.output_metadata(result.run_id)["files_read"] == 2  # what runs 2 and 3 had read
    with pytest.raises(BookmarkAdminError, match="needs --to-run"):
        admin(flow, "rewind")
    with pytest.raises(BookmarkAdminError, match="committed no bookmark"):
        admin(flow, "rewind", to_run="not-a-run")


def test_set_to_current_marks_staging_read_without_running(flow: Flow) -> None:
    flow.input_run()
    flow.input_run()
    admin(flow, "set-to-current")
    result = flow.output_run()
    assert flow.output_metadata(result.run_id)["files_read"] == 0
    assert flow.output_objects() == [] or all("part-r" in k for k in flow.output_objects())


def test_admin_job_in_dagster_runs_the_same_controls(flow: Flow) -> None:
    three_committed_runs(flow)
    job = flow.defs.resolve_job_def("events_bookmark_admin_job")
    config = {"ops": {"events_bookmark_admin": {"config": {"action": "reset"}}}}
    assert job.execute_in_process(instance=flow.instance, run_config=config).success
    assert version(flow) == 3  # dry_run is on by default in the UI job
    config["ops"]["events_bookmark_admin"]["config"]["dry_run"] = False
    assert job.execute_in_process(instance=flow.instance, run_config=config).success
    assert version(flow) == 4
    bad = {"ops": {"events_bookmark_admin": {"config": {"action": "rewind", "dry_run": False}}}}
    assert not job.execute_in_process(instance=flow.instance, run_config=bad, raise_on_error=False).success


def test_cli_bookmark_commands(flow: Flow) -> None:
    three_committed_runs(flow)
    home = flow.instance.root_directory

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "glueflow_dagster.cli", "bookmark", *args, "--config", str(flow.path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**__import__("os").environ, "DAGSTER_HOME": home},
        )

    shown = cli("show", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (data["transformation_ctx"], data["after"]["version"], data["changed"]) == ("bookmark_ctx", 3, False)
    dry = cli("reset", "--dry-run")
    assert dry.returncode == 0 and "dry run, nothing changed" in dry.stdout
    assert "next Output run reads 3 objects" in dry.stdout
    missing = cli("rewind")
    assert missing.returncode == 2 and missing.stderr.startswith("glueflow: rewind needs --to-run")
    assert cli("reset").returncode == 0
    assert version(flow) == 4


# Admin actions and runs take the same commit claim and fence (issue 22 item 5, 12).


def test_an_admin_action_during_a_runs_publish_is_refused_not_lost(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glueflow_dagster.components import bookmark_admin
    from glueflow_dagster.core import output_run

    monkeypatch.setattr(bookmark_admin, "CLAIM_WAIT_S", 0.2, raising=False)
    flow.input_run()
    outcomes: list[object] = []
    real_publish = output_run.publish

    def publish_with_an_admin_action(*args, **kwargs):
        try:
            outcomes.append(admin(flow, "reset"))
        except BookmarkAdminError as err:
            outcomes.append(err)
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(output_run, "publish", publish_with_an_admin_action)
    result = flow.output_run()
    assert result.success
    [outcome] = outcomes
    # Not a reset the run's commit then silently replaces: a one-line refusal naming the run.
    assert isinstance(outcome, BookmarkAdminError), outcome
    message = str(outcome)
    assert "\n" not in message and result.run_id in message and "nothing was changed" in message
    assert version(flow) == 1 and committed_bookmark(flow.instance, "events", "bookmark_ctx").action == "commit"
    monkeypatch.setattr(output_run, "publish", real_publish)
    assert admin(flow, "reset").changed and version(flow) == 2  # once the run has committed, it goes through


def test_a_run_does_not_commit_while_an_admin_action_holds_the_claim(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glueflow_dagster.components import bookmark_admin

    flow.input_run()
    runs = []
    real_record = bookmark_admin.record_admin_action

    def record_after_a_run(*args, **kwargs):
        runs.append(flow.output_run())  # planned from the version the admin action claimed after
        return real_record(*args, **kwargs)

    monkeypatch.setattr(bookmark_admin, "record_admin_action", record_after_a_run)
    admin(flow, "set-to-current")
    [run] = runs
    assert not run.success
    failure = run.get_run_failure_event().event_specific_data.error.message
    assert "bookmark set-to-current" in failure and "nothing was committed" in failure, failure
    assert committed_bookmark(flow.instance, "events", "bookmark_ctx").action == "set-to-current"
    assert flow.output_objects() == []


def test_after_set_to_current_a_conflict_message_tells_the_truth(flow: Flow) -> None:
    flow.input_run()
    [request] = flow.tick().run_requests  # planned from version 0
    admin(flow, "set-to-current")
    loser = flow.output_run(request)
    assert not loser.success
    failure = loser.get_run_failure_event().event_specific_data.error.message
    assert "a later run reads these objects" not in failure
    assert "set-to-current" in failure and "no later run reads them" in failure, failure
    # And it is so: the next run reads nothing.
    assert flow.output_metadata(flow.output_run().run_id)["files_read"] == 0


def test_a_long_run_id_is_cut_in_messages(flow: Flow) -> None:
    three_committed_runs(flow)
    with pytest.raises(BookmarkAdminError) as raised:
        admin(flow, "rewind", to_run="r" * 100_000)
    assert len(str(raised.value)) < 300 and "100,000 characters" in str(raised.value)


def test_garbage_collection_keeps_the_claim_an_admin_action_holds(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the two-instance property test: with ``orphan_grace_s: 0`` an Output run's garbage collection
    removed the claim a bookmark action held (every claim "older than the grace period"), took it itself and
    committed after the version the action was recording after. A claim whose holder is live stays."""
    import yaml

    from glueflow_dagster.components import bookmark_admin
    from glueflow_dagster.definitions import load_definitions

    document = yaml.safe_load(flow.path.read_text(encoding="utf-8"))
    for name in ("staging", "output"):
        document["flows"]["events"][name]["orphan_grace_s"] = 0
    flow.path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    flow.defs = load_definitions(flow.path)
    flow.input_run()
    runs = []
    real_record = bookmark_admin.record_admin_action

    def record_after_a_run(*args, **kwargs):
        runs.append(flow.output_run())  # its garbage collection runs while the action holds the claim
        return real_record(*args, **kwargs)

    monkeypatch.setattr(bookmark_admin, "record_admin_action", record_after_a_run)
    admin(flow, "reset")
    [run] = runs
    assert not run.success, "the run committed after the version the reset holds the claim for"
    failure = run.get_run_failure_event().event_specific_data.error.message
    assert "bookmark reset" in failure and "nothing was committed" in failure, failure
    assert flow.output_objects() == []

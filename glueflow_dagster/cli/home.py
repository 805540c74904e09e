"""The project-local Dagster instance: DAGSTER_HOME and its dagster.yaml (run concurrency limits)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dagster import DagsterInstance

PACKAGED_DAGSTER_YAML = Path(__file__).parents[1] / "dagster.yaml"
DEFAULT_HOME = Path(".glueflow") / "dagster_home"


def prepare_home(config_dir: Path) -> Path:
    """Use $DAGSTER_HOME, else `<config dir>/.glueflow/dagster_home`; create it with our dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or config_dir / DEFAULT_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        shutil.copyfile(PACKAGED_DAGSTER_YAML, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def open_instance(config_dir: Path) -> DagsterInstance:
    prepare_home(config_dir)
    return DagsterInstance.get()

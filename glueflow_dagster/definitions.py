"""The code location (`glueflow_dagster.definitions:defs`): it only loads, the component builds.

Two doors, one parser (`config.parse_config`):
- `GLUEFLOW_CONFIG` set: the code location loads that flow file only (existing users, and the CLI's
  `--config`; a component instance's `defs.yaml` is accepted too), and ignores `defs/`, so one flow is
  never defined twice.
- otherwise: `dg.load_from_defs_folder` loads every component instance under `glueflow_dagster/defs/`
  (the demo flow `events` ships as `defs/events/defs.yaml`, naming `glueflow.yaml`; `dg scaffold defs`
  adds more). Each `GlueFlows` instance builds its own definitions (components/glue_flows.py).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg
from dagster import Definitions, definitions

from glueflow_dagster.components.flow_source import load_flows, refuse_yaml_aliases
from glueflow_dagster.components.glue_flows import build_definitions
from glueflow_dagster.core.config import CONFIG_ENV_VAR, default_config_path

# The dg project root (pyproject.toml with [tool.dg]) when the package runs from its source tree.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFS_FOLDER = Path(__file__).resolve().parent / "defs"


def load_definitions(config_path: Path | str | None = None) -> Definitions:
    """The definitions of one flow file (or component instance): `config_path`, else `$GLUEFLOW_CONFIG`,
    else `glueflow.yaml` in the working directory."""
    return build_definitions(load_flows(config_path if config_path is not None else default_config_path()))


def load_component_definitions() -> Definitions:
    """Every component instance of the package's defs folder (refused at once if one uses a YAML alias)."""
    refuse_yaml_aliases(DEFS_FOLDER)
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return dg.load_from_defs_folder(path_within_project=PROJECT_ROOT)
    # Installed without its source tree (a wheel in site-packages): no pyproject.toml to name the
    # defs module, so load the packaged defs folder directly; local uris resolve against the cwd.
    import glueflow_dagster.defs

    with warnings.catch_warnings():
        # Dagster's own preview/beta notices from its component loader: load_from_defs_folder (the
        # source tree's door) suppresses the same ones, so both doors load as quietly.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.ComponentTree(defs_module=glueflow_dagster.defs, project_root=Path.cwd()).build_defs()


def load_project_definitions() -> Definitions:
    """The code location's definitions: the flow file when GLUEFLOW_CONFIG is set, else the defs folder."""
    if os.environ.get(CONFIG_ENV_VAR):
        return load_definitions()
    return load_component_definitions()


@definitions
def defs() -> Definitions:
    return load_project_definitions()


# Scripts and tests build a parsed config's definitions through this module (as before the component
# owned them): the same function the component's build_defs calls.
__all__ = ["build_definitions", "defs", "load_definitions", "load_project_definitions"]

"""Where a code location's flows come from: a flow file, or a `GlueFlows` component instance (`defs.yaml`).

The flow file's format is the core's (`core/config.py`); the component instance's format (dg's
`defs.yaml`: `type:` + `attributes:`) is the Dagster shell's, so it is read here, beside the component
type, and not in the core. This module imports no Dagster: the CLI reads a `defs.yaml` with it
(`glueflow demo --config glueflow_dagster/defs/events/defs.yaml`) without loading Dagster.

A `GlueFlows` instance declares its flows in one of two ways (exactly one):
- `flows: {name: {...}}`: the flow file's schema inline; local `uri`s resolve against the dg project
  root (where pyproject.toml is);
- `flow_file: PATH`: a flow file, PATH relative to the `defs.yaml`'s folder; the file keeps its own
  rules (local `uri`s against its folder), so it gives the same flows through `GLUEFLOW_CONFIG`, the
  CLI's `--config` and the component. The demo instance names the repository's `glueflow.yaml`: the
  demo flow is declared once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from glueflow_dagster.core.config import (
    ConfigError,
    GlueflowConfig,
    load_config,
    parse_config,
    read_yaml_document,
)
from glueflow_dagster.core.storage import shorten, shown

COMPONENT_TYPE = "glueflow_dagster.GlueFlows"
ATTRIBUTES = ("flows", "flow_file")


def is_component_instance(document: Any) -> bool:
    """A `defs.yaml` of the GlueFlows component type (`type:` + `attributes:`) rather than a flow file."""
    return isinstance(document, dict) and document.get("type") == COMPONENT_TYPE


def find_project_root(path: Path) -> Path:
    """The nearest folder above `path` holding pyproject.toml (the dg project root); else, for an instance
    installed in a package (site-packages), the working directory, as the code location loads it
    (definitions.py); else path's folder."""
    for folder in path.resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    if _import_root(path) != path.resolve().parent:
        return Path.cwd()
    return path.resolve().parent


def instance_flows(attributes: Any, instance_file: Path, project_root: Path) -> GlueflowConfig:
    """The flows a GlueFlows instance declares: its `flows:` (uris against `project_root`) or the flow
    file its `flow_file:` names (relative to `instance_file`'s folder). One-line ConfigError otherwise."""
    if not isinstance(attributes, Mapping):
        raise ConfigError(f"{instance_file}: attributes: expected a mapping with flows or flow_file")
    unknown = sorted((key for key in attributes if key not in ATTRIBUTES), key=str)
    if unknown:
        raise ConfigError(f"{instance_file}: attributes: unknown field {shown(unknown[0])} (allowed: flow_file, flows)")
    given = [key for key in ATTRIBUTES if attributes.get(key) is not None]
    if len(given) != 1:
        raise ConfigError(f"{instance_file}: attributes: give exactly one of flows (inline) or flow_file (a path)")
    if given == ["flows"]:
        return parse_config({"flows": attributes["flows"]}, instance_file, base_dir=project_root)
    flow_file = attributes["flow_file"]
    if not isinstance(flow_file, str) or not flow_file.strip():
        raise ConfigError(f"{instance_file}: attributes.flow_file: expected a path, got {shown(flow_file)}")
    path = flow_file_path(instance_file, flow_file, project_root)
    packaged = packaged_flow_file(instance_file, flow_file)
    if not path.exists() and packaged is not None:
        # Installed, and the project has no copy of its own: the wheel's, its local uris against the
        # project (the working directory), never site-packages.
        base_dir = Path.cwd() if _is_within(instance_file, project_root) else project_root
        return parse_config(read_yaml_document(packaged), packaged, base_dir=base_dir)
    return load_config(path)


def packaged_flow_file(instance_file: Path, flow_file: str) -> Path | None:
    """The copy of an instance's flow file that a wheel ships beside the installed `defs.yaml` (setup.py's
    build step copies the demo's `glueflow.yaml` to `defs/events/glueflow.yaml`), if there is one. The
    source tree has none: there the flow file named by `flow_file` is the one source."""
    copy = instance_file.parent / Path(flow_file).name
    return copy if copy.is_file() and copy.resolve() != (instance_file.parent / flow_file).resolve() else None


def flow_file_path(instance_file: Path, flow_file: str, project_root: Path) -> Path:
    """Where an instance's relative `flow_file` is: beside the `defs.yaml` as written in the source tree.

    Installed from a wheel, the instance sits in site-packages while the flow file it names stayed in the
    project (the demo's `../../../glueflow.yaml` is the project root's file). So when the path does not
    exist beside the installed instance, it is taken from the instance's place in the project instead:
    the same path under `project_root` (the working directory when there is no pyproject.toml), as
    Dagster resolves the instance's local paths there too."""
    beside = instance_file.parent / flow_file
    if beside.exists() or Path(flow_file).is_absolute():
        return beside
    if _is_within(instance_file, project_root):
        return beside  # already in the project: the path as written is the answer (missing: said by the loader)
    # Missing here too: the loader's error then names the project's path, the one to create.
    in_package = instance_file.resolve().parent.relative_to(_import_root(instance_file))
    return (project_root / in_package / flow_file).resolve()


def _is_within(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _import_root(instance_file: Path) -> Path:
    """The folder the instance's top package is imported from (site-packages for a wheel): the parent of
    the first package folder above the instance whose own parent is not a package (an instance's folder,
    `defs/<name>/`, is not a package itself)."""
    for folder in instance_file.resolve().parents:
        if (folder / "__init__.py").is_file() and not (folder.parent / "__init__.py").is_file():
            return folder.parent
    return instance_file.resolve().parent


def load_flows(path: Path | str) -> GlueflowConfig:
    """A flow file or a GlueFlows component instance (`defs/<name>/defs.yaml`): what `--config` and
    `GLUEFLOW_CONFIG` accept. A component instance gives exactly the flows `dg` loads from it."""
    config_path = Path(path).resolve()
    document = read_yaml_document(config_path)
    if is_component_instance(document):
        return instance_flows(document.get("attributes"), config_path, find_project_root(config_path))
    return parse_config(document, config_path)


def demo_flow_file() -> Path:
    """The flow file the packaged demo instance (`defs/events/defs.yaml`) names: the demo flow's one source."""
    instance = Path(__file__).resolve().parents[1] / "defs" / "events" / "defs.yaml"
    document = read_yaml_document(instance, kind="component instance")
    attributes = document.get("attributes") if is_component_instance(document) else None
    flow_file = attributes.get("flow_file") if isinstance(attributes, Mapping) else None
    if not isinstance(flow_file, str):
        raise ConfigError(f"{instance}: attributes.flow_file: the demo instance must name its flow file")
    named = (instance.parent / flow_file).resolve()
    packaged = packaged_flow_file(instance, flow_file)
    return packaged if not named.is_file() and packaged is not None else named  # installed: the wheel's copy


def refuse_yaml_aliases(folder: Path) -> None:
    """Refuse any YAML alias in the component instances under ``folder`` (`defs.yaml`/`defs.yml`, every
    document), reading parser events only: nothing is composed, so a 700-byte "billion laughs" file
    costs its own size. Dagster's component loader expands aliases (a bomb keeps it busy for minutes)
    and runs before the component sees its attributes, so the code location scans first."""
    for path in sorted((*folder.rglob("defs.yaml"), *folder.rglob("defs.yml"))):
        try:
            for event in yaml.parse(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader):
                if isinstance(event, yaml.AliasEvent):
                    raise ConfigError(
                        f"{path}: line {event.start_mark.line + 1}: YAML aliases (*{shorten(str(event.anchor))}) "
                        "are not allowed in a component instance (write the value out)"
                    )
        except yaml.YAMLError:
            continue  # not valid YAML: Dagster's loader reports it, naming the file and line

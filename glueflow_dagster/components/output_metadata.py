"""`F/output`'s materialization metadata in the order that tells the story: the flow ratio first.

Dagster's UI shows a materialization's entries in the order they are recorded, and its Plots view plots
every Int and Float entry in alphabetical order of the label, each y-axis labelled "Value". So:

- the entries are recorded in `OUTPUT_KEY_ORDER` first (the flow ratio, then what it is made of, then
  what can go wrong), then every other entry in the core's order; no key is renamed or dropped (the keys
  are a contract, docs/metadata.md);
- six headline entries repeat the figures that matter most under labels that sort first and carry their
  unit (`HEADLINES`: "1. flow ratio (bytes read / bytes written)" ... "6. ..."), so the Plots view opens
  on them in order of importance. A headline whose figure is absent (no `flow_ratio` in a window with
  nothing to compare, n/a) is absent too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The first entries of an Output run's metadata, most important first; the others follow in the core's order.
OUTPUT_KEY_ORDER = (
    "flow_ratio",
    "flow_ratio_note",
    "bytes_read",
    "input_bytes_written",
    "records_read",
    "records_written",
    "error_records",
    "backlog_bytes",
    "bytes_written",
    "input_run_id",
)

# (source key, headline label): the Plots view sorts labels alphabetically, so the digit carries the order
# and the parenthesis the unit.
HEADLINES = (
    ("flow_ratio", "1. flow ratio (bytes read / bytes written)"),
    ("bytes_read", "2. bytes read by this Output run (bytes)"),
    ("input_bytes_written", "3. bytes written by the window's Input run (bytes)"),
    ("records_written", "4. records written (records)"),
    ("backlog_bytes", "5. staging backlog not yet read (bytes)"),
    ("error_records", "6. records quarantined (records)"),
)


def ordered_output_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """`metadata` with the keys of `OUTPUT_KEY_ORDER` first, then the others as they were, then the
    headline entries (same values, labels from `HEADLINES`) for the figures present."""
    first = {key: metadata[key] for key in OUTPUT_KEY_ORDER if key in metadata}
    rest = {key: value for key, value in metadata.items() if key not in first}
    headlines = {label: metadata[key] for key, label in HEADLINES if key in metadata}
    return {**first, **rest, **headlines}

"""One job stage: read JSON-lines objects, apply the mapping, write JSON lines to the target as pending parts.

Plain Python/polars (no Dagster import). A stage is asked with a :class:`StageRequest` and answers with a
:class:`StageResult` whose parts are *pending*: written, invisible, until the commit (``core.commits``)
publishes or aborts them. Its rooms:

- ``read.py``: fetch the objects into bounded local groups, small objects concatenated into group files
  (Glue's groupFiles), large ones read as line-aligned pieces, and the tolerant read that inspects
  objects the fast query cannot read (bad records to the quarantine). The reader seam: one
  :class:`~glueflow_dagster.core.stage.read.Reader` per input format.
- ``plan.py``: the one streaming polars query (scan -> ApplyMapping -> sink, with the figures), planned
  from samples of the first objects (read schema, records per part) and the spellings of mapped names.
- ``write.py``: the parts as pending objects. The writer seam: one
  :class:`~glueflow_dagster.core.stage.write.Writer` per output format.
- ``run.py``: :func:`stage_pending` ties them together (read -> map -> write) and returns pending parts only;
  :func:`run_stage` is the same stage with its parts completed at once, for callers outside the protocol.
- ``request.py``: the request and result values every engine (polars, Spark) shares.
"""

from glueflow_dagster.core.quarantine import QUARANTINE_DIR, READ_ERRORS, list_stage_inputs
from glueflow_dagster.core.stage.plan import field_names, merged_schemas, sample_schema, spelling_regex
from glueflow_dagster.core.stage.request import (
    DEFAULT_TARGET_FILE_BYTES,
    StageError,
    StageRequest,
    StageResult,
    threshold_message,
)
from glueflow_dagster.core.stage.run import run_stage, stage_pending
from glueflow_dagster.core.stage.write import output_object_key

__all__ = [
    "DEFAULT_TARGET_FILE_BYTES",
    "QUARANTINE_DIR",
    "READ_ERRORS",
    "StageError",
    "StageRequest",
    "StageResult",
    "field_names",
    "list_stage_inputs",
    "merged_schemas",
    "output_object_key",
    "run_stage",
    "sample_schema",
    "spelling_regex",
    "stage_pending",
    "threshold_message",
]

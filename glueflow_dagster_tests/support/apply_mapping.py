"""Apply a mapping to a frame for the mapping tests: the output rows and the per-row cast error counts."""

from __future__ import annotations

from typing import Any

import polars as pl

from glueflow_dagster.core.mapping import ApplyMapping, cast_error_count


def run(frame: pl.DataFrame | pl.LazyFrame, mappings: Any, case_sensitive: bool = False) -> pl.DataFrame:
    """Apply the mappings and collect on the streaming engine (the engine the jobs use)."""
    result = ApplyMapping.apply(frame, mappings, case_sensitive=case_sensitive)
    assert isinstance(result, pl.LazyFrame)
    return result.collect(engine="streaming")


def errors(frame: pl.DataFrame | pl.LazyFrame, mappings: Any, case_sensitive: bool = False) -> list[int]:
    """Per-row cast error counts, evaluated over the original frame."""
    expr = cast_error_count(frame, mappings, case_sensitive=case_sensitive)
    out = frame.lazy().select(expr).collect(engine="streaming")
    assert out.dtypes == [pl.UInt32]
    return out.to_series().to_list()

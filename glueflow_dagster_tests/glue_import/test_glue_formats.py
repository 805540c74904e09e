"""CSV, Parquet and partitionKeys behind `glue_import.formats.FLOW_FILE_FORMATS` (issue 26 item 2, prepared).

Until the flow file takes issue 23's keys the switch is off and these are reported (the corpus and the
unsupported list check that). With it on, the emitted entry is checked here; the flow-file schema on
this branch does not know the keys yet, so the final validation is stood in for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from glueflow_dagster.glue_import import UNSUPPORTED, ImportReport, builder, convert_scripts, formats

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture
def formats_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "FLOW_FILE_FORMATS", True)
    monkeypatch.setattr(builder, "validate_entry", lambda *args: None)


def corpus(case: str, **replace: str) -> ImportReport:
    texts = [(CORPUS / case / f"{role}.py.txt").read_text(encoding="utf-8") for role in ("input", "output")]
    for old, new in replace.items():
        texts = [text.replace(old, new) for text in texts]
    return convert_scripts("flow", texts[0], texts[1])


def unsupported(report: ImportReport) -> list[tuple[Any, ...]]:
    return [(i.source, i.field) for i in report.of(UNSUPPORTED)]


def test_switched_off_csv_and_parquet_are_reported() -> None:
    assert not corpus("09_csv_source").complete
    assert not corpus("10_parquet_sink").complete


@pytest.mark.usefixtures("formats_on")
def test_a_csv_source_keeps_glues_option_names() -> None:
    report = corpus("09_csv_source")
    assert report.complete, report.table()
    assert report.entry["input"] == {
        "uri": "${landing}",
        "recurse": True,
        "format": "csv",
        "withHeader": True,
        "separator": ";",
        "quoteChar": '"',
    }
    report = corpus("09_csv_source", **{'"withHeader": True': '"withHeader": "true", "optimizePerformance": True'})
    assert report.entry["input"]["withHeader"] is True
    assert unsupported(report) == [("input.py", "input (format_options optimizePerformance)")]


@pytest.mark.usefixtures("formats_on")
def test_a_glueparquet_sink_and_its_compression() -> None:
    report = corpus("10_parquet_sink")
    assert report.complete, report.table()
    assert report.entry["output"] == {"uri": "${curated}", "format": "parquet", "compression": "snappy"}
    report = corpus("10_parquet_sink", **{'{"compression": "snappy"}': '{"compression": "uncompressed"}'})
    assert report.entry["output"]["compression"] == "none"
    report = corpus("10_parquet_sink", **{', format_options={"compression": "snappy"}': ""})
    assert report.entry["output"]["compression"] == "snappy"  # Glue's default for Parquet
    report = corpus("10_parquet_sink", **{'{"compression": "snappy"}': '{"compression": "lzo"}'})
    assert unsupported(report) == [("output.py", "output.compression")]


@pytest.mark.usefixtures("formats_on")
def test_partition_keys_on_output_and_refused_on_staging() -> None:
    report = corpus("11_partitioned_sink")
    assert report.complete, report.table()
    assert report.entry["output"]["partition_keys"] == ["year", "month"]
    staged = '{"path": "s3://fleet-staging/trips/", "partitionKeys": ["year"]}'
    report = corpus("11_partitioned_sink", **{'{"path": "s3://fleet-staging/trips/"}': staged})
    assert ("input.py", "staging (partitionKeys)") in unsupported(report)

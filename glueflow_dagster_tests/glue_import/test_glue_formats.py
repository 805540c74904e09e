"""CSV, Parquet/glueparquet, partitionKeys and Glue Studio's getSink convert to the flow file's format keys
(issue 26 item 2); staging is read as written or the difference is reported at its line.

Each converted entry is written as a flow file and loaded with the project's own loader (`load_config`),
so what converts is what the flow file takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from glueflow_dagster.core.config import load_config
from glueflow_dagster.glue_import import NEEDS_USER, UNSUPPORTED, ImportReport, convert_scripts, write_flow_file

CORPUS = Path(__file__).parent / "corpus"


def corpus(case: str, output: dict[str, str] | None = None, **replace: str) -> ImportReport:
    """A corpus pair with `replace` applied to both scripts (`output`: to the Output script only)."""
    texts = [(CORPUS / case / f"{role}.py.txt").read_text(encoding="utf-8") for role in ("input", "output")]
    for old, new in replace.items():
        assert any(old in text for text in texts), old
        texts = [text.replace(old, new) for text in texts]
    for old, new in (output or {}).items():
        assert old in texts[1], old
        texts[1] = texts[1].replace(old, new)
    return convert_scripts("flow", texts[0], texts[1])


def unsupported(report: ImportReport) -> list[tuple[Any, ...]]:
    return [(i.source, i.line, i.field) for i in report.of(UNSUPPORTED)]


def loaded(report: ImportReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The converted flow as the project's loader reads it from the written flow file."""
    assert report.complete, report.table()
    for name in report.variables:
        monkeypatch.setenv(name, f"s3://bucket-{name.lower().replace('_', '-')}/data/")
    path = write_flow_file(report, tmp_path / "glueflow.yaml")
    return load_config(path).flows[report.flow]


def test_a_csv_source_keeps_glues_option_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = corpus("09_csv_source")
    assert report.entry["input"] == {
        "uri": "${landing}",
        "recurse": True,
        "format": "csv",
        "withHeader": True,
        "separator": ";",
        "quoteChar": '"',
    }
    flow = loaded(report, tmp_path, monkeypatch)
    assert flow.input.format == "csv" and flow.input.csv.separator == ";" and flow.input.csv.with_header
    report = corpus("09_csv_source", **{'"withHeader": True': '"withHeader": "true", "optimizePerformance": True'})
    assert report.entry["input"]["withHeader"] is True
    assert unsupported(report) == [("input.py", 12, "input (format_options optimizePerformance)")]
    # Glue Studio writes optimizePerformance False into every CSV source: Glue's default reader.
    report = corpus("09_csv_source", **{'"withHeader": True': '"withHeader": True, "optimizePerformance": False'})
    assert report.complete, report.table()
    report = corpus("09_csv_source", **{'"separator": ";"': '"separator": ";;"'})
    assert unsupported(report) == [("input.py", 12, "input.separator")]  # one character, as Glue's


def test_a_glueparquet_sink_and_its_compression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = corpus("10_parquet_sink")
    assert report.entry["output"] == {"uri": "${curated}", "format": "parquet", "compression": "snappy"}
    flow = loaded(report, tmp_path, monkeypatch)
    assert (flow.output.format, flow.output.compression) == ("parquet", "snappy")
    report = corpus("10_parquet_sink", **{'{"compression": "snappy"}': '{"compression": "uncompressed"}'})
    assert report.entry["output"]["compression"] == "none"
    report = corpus("10_parquet_sink", **{', format_options={"compression": "snappy"}': ""})
    assert report.entry["output"]["compression"] == "snappy"  # Glue's default for Parquet
    report = corpus("10_parquet_sink", **{'{"compression": "snappy"}': '{"compression": "lzo"}'})
    assert unsupported(report) == [("output.py", 18, "output.compression")]


def test_partition_keys_on_output_and_staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = corpus("11_partitioned_sink")
    assert report.entry["output"]["partition_keys"] == ["year", "month"]
    flow = loaded(report, tmp_path, monkeypatch)
    assert flow.output.partition_keys == ("year", "month")
    # Staging partitioned by a column the Output job does not map: the records are the same.
    staged = '{"path": "s3://fleet-staging/trips/", "partitionKeys": ["month"]}'
    unmapped = corpus(
        "11_partitioned_sink",
        output={'("month", "int", "month", "int"),': ""},
        **{
            '{"path": "s3://fleet-staging/trips/"}': staged,
            '"partitionKeys": ["year", "month"]': '"partitionKeys": []',
        },
    )
    assert unmapped.entry["staging"]["partition_keys"] == ["month"]
    assert loaded(unmapped, tmp_path / "b", monkeypatch).staging.partition_keys == ("month",)
    # ... read without recurse, Glue reads only staging's top level: none of the partition folders.
    flat = corpus(
        "11_partitioned_sink",
        output={'("month", "int", "month", "int"),': "", '"recurse": True}, format="json"': '}, format="json"'},
        **{
            '{"path": "s3://fleet-staging/trips/"}': staged,
            '"partitionKeys": ["year", "month"]': '"partitionKeys": []',
        },
    )
    assert unsupported(flat) == [("output.py", 12, "staging.recurse")]
    # ... and by one it maps: Glue's from_options reader leaves it out (the files do not hold it).
    report = corpus("11_partitioned_sink", **{'{"path": "s3://fleet-staging/trips/"}': staged})
    assert unsupported(report) == [("output.py", 21, "output_job.mappings")]
    # A partition key the job does not map: Glue fails the run.
    report = corpus("11_partitioned_sink", **{'["year", "month"]': '["year", "day"]'})
    assert unsupported(report) == [("output.py", 24, "output.partition_keys")]
    assert "'day' is not a column output_job maps to" in report.of(UNSUPPORTED)[0].message
    # Not a folder name, or a column twice: refused at the sink's line (the flow file refuses both).
    for keys in ('["year", "a/b"]', '["year", "year"]'):
        report = corpus("11_partitioned_sink", **{'["year", "month"]': keys})
        assert unsupported(report) == [("output.py", 24, "output (partitionKeys)")]


CSV_STAGING = {
    '{"path": args["staging"]}, format="json"': '{"path": args["staging"]}, format="csv"',
    'connection_options={"paths": [args["staging"]], "recurse": True}, format="json"': (
        'connection_options={"paths": [args["staging"]], "recurse": True}, format="csv", '
        'format_options={"withHeader": True}'
    ),
}


def test_staging_is_read_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = corpus("10_parquet_sink", **CSV_STAGING)
    assert report.entry["staging"] == {
        "uri": "${staging}",
        "recurse": True,
        "format": "csv",
        "withHeader": True,
        "compression": "none",
    }
    flow = loaded(report, tmp_path, monkeypatch)
    assert flow.staging.format == "csv" and flow.staging.csv.with_header and flow.staging.csv.write_header
    # The Output job reads without withHeader (Glue's default) what the Input job writes with a header line.
    report = corpus("10_parquet_sink", **{**CSV_STAGING, ', format_options={"withHeader": True}': ""})
    assert unsupported(report) == [("output.py", 12, "staging.withHeader")]
    assert "Glue would read the header line as a record" in report.of(UNSUPPORTED)[0].message
    # Another separator, another format.
    report = corpus(
        "10_parquet_sink", **{**CSV_STAGING, '{"withHeader": True}': '{"withHeader": True, "separator": "|"}'}
    )
    assert unsupported(report) == [("output.py", 12, "staging.separator")]
    report = corpus(
        "10_parquet_sink", **{'{"path": args["staging"]}, format="json"': '{"path": args["staging"]}, format="parquet"'}
    )
    assert unsupported(report) == [("output.py", 12, "staging.format")]
    message = report.of(UNSUPPORTED)[0].message
    assert message.startswith(
        "the Input job writes staging with format 'parquet' but the Output job reads it with 'json'"
    )


def test_a_csv_sink_with_nested_targets_is_refused() -> None:
    report = corpus(
        "10_parquet_sink",
        **{'("email", "string", "email", "string")]': '("email", "string", "contact.email", "string")]'},
        output={'format="glueparquet", format_options={"compression": "snappy"}': 'format="csv"'},
    )
    assert ("output.py", 18, "output.format") in unsupported(report)


def test_glue_studio_get_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = corpus("04_studio_getsink")
    assert report.entry["output"] == {"uri": "s3://shop-curated/returns/", "format": "parquet", "compression": "snappy"}
    needs = {(i.line, i.field) for i in report.of(NEEDS_USER)}
    assert {(23, "output (updateBehavior)"), (23, "output (enableUpdateCatalog)"), (24, "catalog")} <= needs
    flow = loaded(report, tmp_path, monkeypatch)
    assert flow.output.format == "parquet"
    two = '[("order_id", "string", "order_id", "string"), ("total", "decimal(12,2)", "total", "decimal(12,2)")]'
    report = corpus(
        "04_studio_getsink",
        output={
            'mappings=[("order_id", "string", "order_id", "string")]': f"mappings={two}",
            "partitionKeys=[]": 'partitionKeys=["order_id"]',
            'setFormat("glueparquet", compression="snappy")': 'setFormat("csv", separator="|", writeHeader=False)',
        },
    )
    assert report.complete, report.table()
    assert report.entry["output"] == {
        "uri": "s3://shop-curated/returns/",
        "format": "csv",
        "compression": "none",
        "partition_keys": ["order_id"],
        "separator": "|",
        "writeHeader": False,
    }
    # An option getSink's writer has and glueflow has not: reported at the getSink line.
    report = corpus("04_studio_getsink", output={'compression="snappy"': 'compression="snappy", blockSize=1024'})
    assert unsupported(report) == [("output.py", 23, "output (format_options blockSize)")]


def test_drop_null_fields_before_the_mapping_is_folded_for_json_only() -> None:
    mapping = "mapped = ApplyMapping.apply(\n    frame=staged,"
    drop = {mapping: "kept = DropNullFields.apply(frame=staged)\n" + mapping.replace("staged", "kept")}
    assert corpus("09_csv_source", output=drop).complete  # JSON output: a null field is left out either way
    report = corpus("10_parquet_sink", output=drop)
    assert unsupported(report) == [("output.py", 15, "output.format")]
    assert "Glue's parquet files of that run lack its column" in report.of(UNSUPPORTED)[0].message


def test_a_converted_parquet_staging_and_partitioned_csv_output_run_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guide's jobs with glueparquet staging and a `;`-separated CSV output partitioned by country:
    converted by the real command, loaded by the real definitions, run for an Input -> sensor -> Output cycle."""
    from glueflow_dagster.cli.demo import run_cycle
    from glueflow_dagster.definitions import build_definitions
    from glueflow_dagster_tests.glue_import.glue_scripts import GUIDE_INPUT, guide_output, import_glue, write

    staging_sink = 'connection_options = {"path": staging_path, "compression": "gzip"}, format = "json")'
    inp = GUIDE_INPUT.replace(
        staging_sink,
        'connection_options = {"path": staging_path}, format = "glueparquet", '
        'format_options = {"compression": "zstd"})',
    )
    out = (
        guide_output(fixed=True)
        .replace('"recurse":True}, format="json"', '"recurse":True}, format="parquet"')
        .replace(
            'connection_options = {"path": output_path}, format = "json")',
            'connection_options = {"path": output_path, "partitionKeys": ["country"]}, format = "csv", '
            'format_options = {"separator": ";"})',
        )
    )
    assert inp != GUIDE_INPUT and "partitionKeys" in out
    flow_file = tmp_path / "glueflow.yaml"
    code, stdout, stderr = import_glue(
        capsys,
        "--input-script", str(write(tmp_path, "input.py", inp)),
        "--output-script", str(write(tmp_path, "output.py", out)),
        "--flow", "events", "--out", str(flow_file),
    )  # fmt: skip
    assert code == 0, stdout + stderr
    data = tmp_path / "data"
    for name in ("input", "staging", "output"):
        monkeypatch.setenv(f"{name}_path", str(data / name))
    config = load_config(flow_file)
    flow = config.flows["events"]
    assert (flow.staging.format, flow.staging.compression) == ("parquet", "zstd")
    assert (flow.output.format, flow.output.csv.separator, flow.output.partition_keys) == ("csv", ";", ("country",))
    figures, _ = run_cycle(build_definitions(config), instance, flow, 0, None, files=2, events_per_file=300)
    assert len(figures.output_run_ids) == 1
    assert list((data / "staging").rglob("*.parquet")), "staging is Parquet"
    parts = sorted((data / "output").rglob("*.csv"))
    assert parts and all(part.parent.name.startswith("country=") for part in parts)
    rows = pl.concat([pl.read_csv(part, separator=";") for part in parts])
    assert rows.height == 600 and "country" not in rows.columns  # the partition column is the folder
    assert sorted(rows["event_id"].to_list()) == list(range(600))


def test_a_staging_table_of_unknown_format_takes_the_written_format() -> None:
    """The Output job reads staging from the catalog with --catalog-location (format unknown): no mismatch is
    claimed; staging keeps the format the Input job writes, and the table's format needs the user."""
    texts = [
        (CORPUS / "10_parquet_sink" / f"{role}.py.txt").read_text(encoding="utf-8") for role in ("input", "output")
    ]
    texts[0] = texts[0].replace('format="json"\n)', 'format="parquet"\n)')
    texts[1] = (
        texts[1]
        .replace(
            'connection_type="s3", connection_options={"paths": [args["staging"]], "recurse": True}, format="json"',
            'database="crm", table_name="staged_customers"',
        )
        .replace("create_dynamic_frame.from_options", "create_dynamic_frame.from_catalog")
    )
    report = convert_scripts("flow", *texts, catalog_locations={"crm.staged_customers": "s3://crm/staging/"})
    assert report.entry["staging"]["format"] == "parquet"
    assert ("output.py", 12, "staging (format)") in [(i.source, i.line, i.field) for i in report.of(NEEDS_USER)]
    assert not [i for i in report.of(UNSUPPORTED) if i.field.startswith("staging.format")]

"""The docs' list of constructs not converted is the importer's own (issue 26 item 7), and each is refused.

docs/from-glue.md, section "Not converted", lists `- **name**: why`; the names must be exactly
`UNSUPPORTED_CONSTRUCTS`, and a script using each construct must be reported at a line, never converted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from glueflow_dagster.glue_import import UNSUPPORTED, AwsFacts, AwsJob, convert_scripts
from glueflow_dagster.glue_import.constructs import UNSUPPORTED_CONSTRUCTS
from glueflow_dagster_tests.glue_import.glue_scripts import PLAIN_OUTPUT, SINK, input_script

DOC = Path(__file__).resolve().parents[2] / "docs" / "from-glue.md"
SOURCE_LINE = (
    'src = glueContext.create_dynamic_frame.from_options(connection_type="s3", '
    'connection_options={"paths": ["s3://raw/orders/"]}, format="json")'
)
MAPPING_LINE = (
    'mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "id", "long"), '
    '("user", "struct", "user", "struct")])'
)
BASE = input_script(SOURCE_LINE + "\n" + MAPPING_LINE + "\n") + SINK
BEFORE_MAPPING = "mapped = ApplyMapping.apply(frame=src,"


def before_mapping(statement: str) -> tuple[str, str]:
    return BEFORE_MAPPING, statement + "\n" + BEFORE_MAPPING.replace("frame=src", "frame=kept")


# construct -> (text of the base script, what replaces it)
EXAMPLES: dict[str, tuple[str, str]] = {
    "Filter.apply": before_mapping('kept = Filter.apply(frame=src, f=lambda r: r["id"] > 0)'),
    "Join.apply": before_mapping(
        SOURCE_LINE.replace("src =", "other =").replace("orders", "users") + "\n"
        'kept = Join.apply(src, other, "id", "id")'
    ),
    "Map.apply": before_mapping("kept = Map.apply(frame=src, f=lambda r: r)"),
    "Relationalize.apply": before_mapping(
        'kept = Relationalize.apply(frame=src, staging_path="s3://tmp/", name="root")'
    ),
    "Spark DataFrame code": before_mapping('kept = DynamicFrame.fromDF(src.toDF(), glueContext, "df")'),
    "Spark settings that change what is read or written": (
        "job = Job(glueContext)",
        'spark = SparkSession.builder.config("spark.sql.caseSensitive", "true").getOrCreate()\njob = Job(glueContext)',
    ),
    "ResolveChoice other than a cast": before_mapping('kept = ResolveChoice.apply(frame=src, choice="make_cols")'),
    "RenameField before ApplyMapping": before_mapping('kept = RenameField.apply(src, "uid", "id")'),
    "a path inside a mapped struct": before_mapping('kept = DropFields.apply(src, ["user.secret"])'),
    "ORC, Avro and other formats": ('format="json")', 'format="orc")'),
    "CSV and Parquet options glueflow does not have": (
        'format="json")',
        'format="csv", format_options={"withHeader": True, "optimizePerformance": True})',
    ),
    "staging read other than written": (
        ', "compression": "gzip"},\n    format="json",',
        '},\n    format="parquet",',
    ),
    "partitionKeys that are not mapped columns": (
        '"compression": "gzip"}',
        '"compression": "gzip", "partitionKeys": ["day"]}',
    ),
    "a staging partition column the Output job maps": (
        '"compression": "gzip"}',
        '"compression": "gzip", "partitionKeys": ["id"]}',
    ),
    "Iceberg, Hudi and Delta sinks": ('format="json",\n)', 'format="iceberg",\n)'),
    "Iceberg writes other than append": (
        SINK,
        'mapped.toDF().writeTo("glue_catalog.db.t").overwritePartitions()\njob.commit()\n',
    ),
    "push_down_predicate": ('format="json")', 'format="json", push_down_predicate="dt=\'2024\'")'),
    "connection types other than S3": (
        'connection_type="s3", connection_options={"paths"',
        'connection_type="dynamodb", connection_options={"paths"',
    ),
    "getSource": (
        SOURCE_LINE,
        'src = glueContext.getSource("s3", paths=["s3://raw/orders/"]).getFrame()',
    ),
    "a second source or sink": (
        "job.commit()",
        "glueContext.write_dynamic_frame.from_options(frame=mapped, "
        'connection_type="s3", connection_options={"path": "s3://copy/"}, format="json")\n'
        "job.commit()",
    ),
    "loops and run-time branches": ("job.commit()", "for attempt in range(2):\n    pass\njob.commit()"),
    "case_sensitive=True": ('"struct")])', '"struct")], case_sensitive=True)'),
    "a path naming one object": ('"s3://raw/orders/"', '"s3://raw/orders/o.json"'),
    "a glob in a read path": ('"s3://raw/orders/"', '"s3://raw/orders/2024-*/"'),
    "a binary target type": ('("id", "long", "id", "long")', '("id", "string", "id", "binary")'),
    "f-string format specs": ('"s3://raw/orders/"', "f\"s3://raw/{args['env']:>3}/\""),
    "from_catalog without a location": (
        SOURCE_LINE,
        'src = glueContext.create_dynamic_frame.from_catalog(database="db", table_name="t")',
    ),
    "a mapped partition column": (
        SOURCE_LINE,
        'src = glueContext.create_dynamic_frame.from_catalog(database="db", table_name="by_id")',
    ),
    "a partitioned catalog sink without partitionKeys": (
        SINK,
        'glueContext.write_dynamic_frame.from_catalog(frame=mapped, database="db", table_name="by_id")\njob.commit()',
    ),
}


class StubGlue:
    """GetTable of a JSON table partitioned by `id` (the mapping reads `id`)."""

    def get_table(self, DatabaseName: str, Name: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        storage = {
            "Location": "s3://lake/by_id/",
            "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
        }
        return {"Table": {"StorageDescriptor": storage, "PartitionKeys": [{"Name": "id"}]}}


NEEDS_GET_TABLE = ("a mapped partition column", "a partitioned catalog sink without partitionKeys")
# constructs whose example also changes the Output script (old, new)
OUTPUT_CHANGES: dict[str, tuple[str, str]] = {
    "a staging partition column the Output job maps": (
        '("order_id", "long", "order_id", "long")',
        '("id", "long", "order_id", "long"), ("user", "struct", "user", "struct")',
    ),
}


def documented() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Not converted\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^- \*\*(.+?)\*\*:", section, flags=re.MULTILINE)


def test_the_docs_list_the_importers_unsupported_constructs() -> None:
    assert documented() == list(UNSUPPORTED_CONSTRUCTS)
    assert set(EXAMPLES) == set(UNSUPPORTED_CONSTRUCTS)


@pytest.mark.parametrize("construct", list(UNSUPPORTED_CONSTRUCTS))
def test_each_listed_construct_is_reported_at_a_line(construct: str) -> None:
    assert convert_scripts("orders", BASE, PLAIN_OUTPUT).complete
    old, new = EXAMPLES[construct]
    assert old in BASE, construct
    script = BASE.replace(old, new, 1)
    output = PLAIN_OUTPUT
    if construct in OUTPUT_CHANGES:
        assert OUTPUT_CHANGES[construct][0] in output
        output = output.replace(*OUTPUT_CHANGES[construct])
        assert convert_scripts("orders", BASE, output).complete  # the Output change alone converts
    aws = AwsFacts(AwsJob("In", "s3://s/in.py"), AwsJob("Out", "s3://s/out.py"), glue=StubGlue())
    report = convert_scripts("orders", script, output, aws=aws if construct in NEEDS_GET_TABLE else None)
    assert not report.complete
    # reported at a line of the script that uses it (staging's reader is the Output script)
    lines = [i for i in report.of(UNSUPPORTED) if i.source in ("input.py", "output.py") and i.line is not None]
    assert lines, report.table()

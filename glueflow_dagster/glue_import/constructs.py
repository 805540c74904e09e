"""The constructs found in real Glue scripts that the importer does not convert, as the docs list them.

Everything the importer does not recognise is reported with its line; this is the list of the
common ones, named the way docs/from-glue.md ("Not converted") names them. A test checks that the
docs list exactly these names and that a script using each one is reported (never converted).
"""

from __future__ import annotations

UNSUPPORTED_CONSTRUCTS: dict[str, str] = {
    "Filter.apply": "keeps records by a Python function; glueflow maps every record",
    "Join.apply": "a second source; a glueflow job reads one location",
    "Map.apply": "a Python function per record",
    "Relationalize.apply": "splits nested data into several frames",
    "Spark DataFrame code": "spark.sql, DynamicFrame.fromDF, DataFrame transforms, toDF() other than for an Iceberg "
    "write: SQL and DataFrame code is not ApplyMapping",
    "Spark settings that change what is read or written": "SparkConf/SparkSession.builder.config/spark.conf.set other "
    "than Iceberg catalog and resource settings (spark.sql.caseSensitive, time zones, parsers, ...)",
    "ResolveChoice other than a cast": "choice=, make_cols, make_struct, project:, match_catalog, or a cast to another "
    "type than the mapping's (Glue would cast twice)",
    "RenameField before ApplyMapping": "the data may already hold a field of the new name",
    "a path inside a mapped struct": "SelectFields/DropFields/RenameField on user.id when user is mapped whole",
    "ORC, Avro and other formats": "glueflow reads and writes JSON lines, CSV and Parquet",
    "CSV and Parquet options glueflow does not have": "optimizePerformance true, strictCheckingOfValues, blockSize, "
    "pageSize, a Parquet codec other than snappy, gzip, zstd or none, ...",
    "staging read other than written": "the Output job reads staging in another format, separator, quote, escaper "
    "or header than the Input job writes; glueflow reads staging as written",
    "partitionKeys that are not mapped columns": "Glue fails the run on a column the frame lacks (or on every column)",
    "a staging partition column the Output job maps": "Glue's from_options does not add it from the folder; "
    "glueflow would",
    "Iceberg, Hudi and Delta sinks": (
        "table formats other than an Iceberg table in Glue's catalog appended to by the Output job (`format: "
        'iceberg`, see above): Iceberg staging, `format="iceberg"` in from_options, Hudi, Delta, other catalogs'
    ),
    "Iceberg writes other than append": "writeTo(...).overwritePartitions(), overwrite, create, replace, "
    "createOrReplace, saveAsTable in another mode than append, insertInto, write options and table properties: "
    "glueflow appends each run as one snapshot",
    "push_down_predicate": "partition pruning of a catalog table",
    "connection types other than S3": "JDBC, DynamoDB, Kafka, Redshift, ...",
    "getSource": "Glue's reader builder; use create_dynamic_frame.from_options",
    "a second source or sink": "a glueflow job reads one location and writes one",
    "loops and run-time branches": "for/while, an if on anything but --JOB_NAME or __main__, try that swallows errors",
    "case_sensitive=True": "glueflow matches ApplyMapping sources case-insensitively (Glue's default)",
    "a path naming one object": "glueflow reads folders (prefixes)",
    "a glob in a read path": "Glue expands * ? [ ] { } in a path; glueflow reads one folder (prefix)",
    "a binary target type": "JSON lines have no binary type",
    "f-string format specs": "{day:0>2} and !r/!a depend on values known only when the job runs",
    "from_catalog without a location": "give --catalog-location DB.TABLE=s3://... or read the table with --from-aws",
    "a mapped partition column": "Glue adds a catalog table's partition columns from the key=value/ path",
    "a partitioned catalog sink without partitionKeys": "Glue then writes no partition folders into the table; "
    "pass additional_options={'partitionKeys': [...]}",
}

"""Data formats beside JSON lines: CSV and Parquet, each one reader and one writer at the stage's seams.

``options`` holds the plain values a flow file sets (checked at load by ``core.config``); ``csv`` and
``parquet`` the readers and writers; ``convert`` turns CSV and Parquet objects into the JSON lines the
stage's query scans; ``partitions`` Hive-style ``column=value/`` folders; ``seams`` picks the reader and
writer of a stage request. This package module imports only the options, so the config can import them
without the stage. See docs/formats.md.
"""

from glueflow_dagster.core.formats.options import CsvOptions, DataFormat

__all__ = ["CsvOptions", "DataFormat"]

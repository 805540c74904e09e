"""Data formats beside JSON lines: CSV and Parquet, each one reader and one writer at the stage's seams.

``options`` holds the plain values a flow file sets (checked at load by ``core.config``); ``csv`` and
``parquet`` the readers and writers; ``partitions`` Hive-style ``column=value/`` folders; ``seams`` picks
the reader and writer of a stage request. Kept free of the stage here, so the config can import the options.
"""

from glueflow_dagster.core.formats.options import CsvOptions, DataFormat

__all__ = ["CsvOptions", "DataFormat"]

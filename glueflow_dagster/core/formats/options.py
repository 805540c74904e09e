"""A location's data format and its options, with Glue's names: plain values, checked at load.

``format: json | csv | parquet`` on every location (default ``json``). CSV takes Glue's CSV options
(``separator``, ``quoteChar``, ``escaper``, ``multiLine``, ``withHeader``, ``writeHeader``, ``skipFirst``);
Parquet its ``compression`` (``snappy`` by default, as Glue); JSON keeps ``multiline`` / ``jsonPath``.
An option of another format than the location's is refused with one line naming the key
(:func:`format_problem`), so a flow file never carries an option that silently does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CSV_OPTIONS",
    "FORMATS",
    "JSON_OPTIONS",
    "PARQUET_COMPRESSIONS",
    "TEXT_COMPRESSIONS",
    "CsvOptions",
    "DataFormat",
    "compressions_of",
    "csv_options",
    "default_compression",
    "format_problem",
]

FORMATS = ("json", "csv", "parquet")
TEXT_COMPRESSIONS = ("gzip", "none")  # JSON and CSV parts
PARQUET_COMPRESSIONS = ("snappy", "gzip", "zstd", "none")  # Parquet's codecs (snappy: Glue's default)
JSON_OPTIONS = ("multiline", "jsonPath")  # Glue's JSON reader options
# Glue's CSV options, as Glue spells them; which of them a location takes depends on its role (read/written).
CSV_READ_OPTIONS = ("multiLine", "withHeader", "skipFirst")
CSV_WRITE_OPTIONS = ("writeHeader",)
CSV_SHARED_OPTIONS = ("separator", "quoteChar", "escaper")
CSV_OPTIONS = (*CSV_SHARED_OPTIONS, *CSV_READ_OPTIONS, *CSV_WRITE_OPTIONS)
# The Iceberg keys (``table``, ``catalog``; see ``formats.iceberg``) are the output location's only.
_OPTIONS_OF = {"json": JSON_OPTIONS, "csv": CSV_OPTIONS, "parquet": (), "iceberg": ("table", "catalog")}
_PARQUET_FILES = ("parquet", "iceberg")  # formats whose objects are Parquet files (an Iceberg table's data)
_NO_QUOTING = "-1"  # Glue's quoteChar value that turns quoting off


@dataclass(frozen=True)
class CsvOptions:
    """Glue's CSV options. Defaults are Glue's: no header line read (columns ``col0``, ``col1``, ...),
    a header line written, ``"`` quotes (None: no quoting, Glue's ``quoteChar: "-1"``), no escaper (a
    quote inside a quoted value is doubled)."""

    separator: str = ","
    quote_char: str | None = '"'
    escaper: str | None = None
    multiline: bool = False
    with_header: bool = False
    write_header: bool = True
    skip_first: bool = False


@dataclass(frozen=True)
class DataFormat:
    """How a location's objects are stored: the format, its CSV options and its Hive partition columns."""

    name: str = "json"
    csv: CsvOptions = CsvOptions()
    partition_keys: tuple[str, ...] = ()

    @property
    def is_json(self) -> bool:
        return self.name == "json"


def compressions_of(name: str) -> tuple[str, ...]:
    return PARQUET_COMPRESSIONS if name in _PARQUET_FILES else TEXT_COMPRESSIONS


def default_compression(name: str) -> str:
    return "snappy" if name in _PARQUET_FILES else "none"


def format_problem(body: Mapping[str, Any], name: str) -> tuple[str, str] | None:
    """(key, message) for the first option in ``body`` that belongs to another format than ``name``."""
    for other, options in _OPTIONS_OF.items():
        if other == name:
            continue
        for key in options:
            if key in body and key not in _OPTIONS_OF[name]:
                article = "an" if other[0] in "aeiou" else "a"
                return key, f"{key} is {article} {other} option, but the location's format is {name}"
    if name in _PARQUET_FILES and "compression_level" in body:
        return "compression_level", f"compression_level is for gzip JSON or CSV, not {name}"
    return None


def _one_char(value: Any, key: str) -> str:
    if not isinstance(value, str) or len(value) != 1:
        raise ValueError(f"{key}: expected one character, got {_short(value)}")
    return value


def _flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def csv_options(body: Mapping[str, Any]) -> CsvOptions:
    """The CSV options in ``body`` (Glue's keys); ValueError "key: problem" for a bad value."""
    separator = _one_char(body.get("separator", ","), "separator")
    quote = body.get("quoteChar", '"')
    quote_char = None if quote == _NO_QUOTING else _one_char(quote, "quoteChar")
    escaper = body.get("escaper")
    if escaper is not None:
        escaper = _one_char(escaper, "escaper")
    if separator in (quote_char, escaper) or separator in "\r\n":
        raise ValueError(f"separator: {separator!r} cannot also be the quote, the escaper or a line break")
    if quote_char is None and escaper is not None:
        raise ValueError('escaper: only with quoting (quoteChar is "-1")')
    return CsvOptions(
        separator=separator,
        quote_char=quote_char,
        escaper=None if escaper == quote_char else escaper,  # escaping the quote with itself: doubled quotes
        multiline=_flag(body, "multiLine", False),
        with_header=_flag(body, "withHeader", False),
        write_header=_flag(body, "writeHeader", True),
        skip_first=_flag(body, "skipFirst", False),
    )

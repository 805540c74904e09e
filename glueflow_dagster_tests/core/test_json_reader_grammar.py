"""The JSON reader's byte-pattern checker against Python's json module, on any value cut at any chunk size.

The reader checks JSON's grammar with byte patterns and a bracket walker instead of decoding (issue 22
item 7): these properties hold it to Python's decoder as the reference. Valid documents give exactly the
records json.loads finds (objects written, other values quarantined by kind, in order); a document that
json.loads refuses ends in one "malformed JSON" entry after a prefix of the records, never a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glueflow_dagster.core import json_reader
from glueflow_dagster.core.json_reader import JsonFormat, convert_object

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=25,
)
_layouts = st.sampled_from([None, 0, 1, 2, "\t"])
_KINDS = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def _kind(value: object) -> str:
    return _KINDS.get(type(value), "number")


def _dump(value: object, indent: int | str | None, ascii_only: bool) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ascii_only)


def _run(tmp_path: Path, data: bytes, fmt: JsonFormat) -> tuple[Any, list[Any], list[dict[str, Any]]]:
    path = tmp_path / "object.json"
    path.write_bytes(data)
    report = convert_object(path, "o", tmp_path, fmt)
    good = [json.loads(line) for line in report.clean_path.read_text().split("\n")[:-1]] if report.clean_path else []
    bad = [json.loads(line) for line in report.entries_path.read_text().split("\n")[:-1]] if report.entries_path else []
    return report, good, bad


def _small_chunks(monkeypatch: pytest.MonkeyPatch, chunk: int, batch: int) -> None:
    monkeypatch.setattr(json_reader, "_CHUNK", chunk)
    monkeypatch.setattr(json_reader, "_BATCH", batch)


def _expected(records: list[Any]) -> tuple[list[Any], list[tuple[int, str]]]:
    good = [r for r in records if isinstance(r, dict)]
    bad = [(n, f"not a JSON object ({_kind(r)})") for n, r in enumerate(records, 1) if not isinstance(r, dict)]
    return good, bad


_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(
    records=st.lists(_values, max_size=8),
    layout=_layouts,
    ascii_only=st.booleans(),
    chunk=st.integers(1, 40),
    batch=st.integers(1, 200),
    as_documents=st.booleans(),
)
def test_valid_json_gives_the_records_json_loads_finds(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    records: list[Any],
    layout: int | str | None,
    ascii_only: bool,
    chunk: int,
    batch: int,
    as_documents: bool,
) -> None:
    _small_chunks(monkeypatch, chunk, batch)
    if as_documents:  # documents one after another; a top-level array is a document of records
        records = [r for r in records if not isinstance(r, list)]
        text = "\n".join(_dump(r, layout, ascii_only) for r in records)
    else:
        text = _dump(records, layout, ascii_only)
    report, good, bad = _run(tmp_path, text.encode(), JsonFormat(multiline=True))
    want_good, want_bad = _expected(records)
    assert report.error is None, report.error
    assert good == want_good
    assert [(e["record"], e["error"]) for e in bad] == want_bad


@_SETTINGS
@given(
    records=st.lists(_values, max_size=6),
    siblings=st.dictionaries(st.sampled_from(["a", "rec", "records2", "r\\u0065cords"]), _values, max_size=3),
    layout=_layouts,
    chunk=st.integers(1, 40),
)
def test_json_path_skips_any_sibling_and_finds_the_records(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    records: list[Any],
    siblings: dict[str, Any],
    layout: int | str | None,
    chunk: int,
) -> None:
    _small_chunks(monkeypatch, chunk, 64)
    document = {**siblings, "records": records, "z": siblings}
    report, good, bad = _run(tmp_path, _dump(document, layout, False).encode(), JsonFormat(json_path="$.records[*]"))
    want_good, want_bad = _expected(records)
    assert report.error is None and good == want_good
    assert [(e["record"], e["error"]) for e in bad] == want_bad


_MUTATIONS = st.tuples(
    st.integers(0, 10**6), st.sampled_from(["drop", "insert", "swap"]), st.sampled_from(' ,:[]{}"\\0e.-tnx')
)


@_SETTINGS
@given(
    records=st.lists(_values, min_size=1, max_size=6), layout=_layouts, chunk=st.integers(1, 40), mutation=_MUTATIONS
)
def test_malformed_json_ends_the_records_in_one_entry_never_a_crash(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    records: list[Any],
    layout: int | str | None,
    chunk: int,
    mutation: tuple[int, str, str],
) -> None:
    _small_chunks(monkeypatch, chunk, 64)
    original = _dump(records, layout, True)
    at, how, byte = mutation
    at %= len(original)
    mutated = original[:at] + byte + original[at + 1 :] if how == "swap" else original[:at] + original[at + 1 :]
    text = original[:at] + byte + original[at:] if how == "insert" else mutated
    try:
        reference = json.loads(text)
    except json.JSONDecodeError:
        reference = None
    report, good, bad = _run(tmp_path, text.encode(), JsonFormat(multiline=True))
    assert report.error is None, report.error
    if reference is not None:  # the change kept it valid JSON
        want_good, want_bad = _expected(reference if isinstance(reference, list) else [reference])
        assert good == want_good and [(e["record"], e["error"]) for e in bad] == want_bad
        return
    assert bad and bad[-1]["error"].startswith("malformed JSON ("), bad
    assert all(not e["error"].startswith("malformed") for e in bad[:-1])
    # The records that end before the change are written as they were.
    before = [r for r, end in zip(records, _ends(original), strict=True) if end <= at and isinstance(r, dict)]
    assert good[: len(before)] == (before if at else [])


def _ends(text: str) -> list[int]:
    """Where each element of the JSON array ``text`` ends."""
    decoder, ends, at = json.JSONDecoder(), [], text.index("[") + 1
    while True:
        at = len(text) - len(text[at:].lstrip(" \t\r\n,"))
        if text[at] == "]":
            return ends
        _, at = decoder.raw_decode(text, at)
        ends.append(at)

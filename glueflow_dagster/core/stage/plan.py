"""Planning a stage's query: the polars query itself, the samples it is planned from, and the spellings.

The data path of a stage is one lazy polars query on the streaming engine, from scan to sink
(:func:`query`): the read schema comes from the mappings (unmapped fields are never materialized), the
output is split into parts of about ``target_file_bytes`` of JSON each (the writer's sink, see write.py),
and the record and cast-error counts come from the same query.

:func:`make_plan` plans it from samples of the first objects: the schema polars infers from their first
lines (:func:`sample_schema`: the spellings of field names and the JSON types kept) and the JSON size of
one output record (records per part). Source names match case-insensitively over the whole run, not just
the sample: :func:`respelled` extends a plan with spellings first seen later (:func:`spelling_regex`).
The Spark stage script plans from the same samples and spellings, so both engines read the same fields
with the same types.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from glueflow_dagster.core.mapping import (
    ApplyMapping,
    FieldMapping,
    PlainTimestamps,
    presence_mapping,
    source_read_schema,
)
from glueflow_dagster.core.mapping.casts import may_need_general, zone_named
from glueflow_dagster.core.quarantine import READ_ERRORS
from glueflow_dagster.core.stage.write import Writer, attempt_folder, clear

__all__ = [
    "READ_ERRORS",
    "QueryPlan",
    "field_names",
    "make_plan",
    "merged_schemas",
    "polars_settings",
    "query",
    "respelled",
    "sample_schema",
    "spelling_regex",
]

# Schema inference for case-insensitive name matching reads only this many lines per stage.
_SCHEMA_SAMPLE_LINES = 100
# Lines mapped up front to estimate the JSON size of one output record (for splitting into parts).
_SIZE_SAMPLE_LINES = 1000
_DEFAULT_RECORD_BYTES = 256
_SAMPLE_BLOCK = 1024**2  # the size sample reads the head of an object in blocks of this size
_SAMPLE_BYTES = 1024**2  # and stops at about this much (fewer lines where lines are long) once it holds a line
_SAMPLE_MAX_BYTES = 16 * 1024**2  # but reads at most this much to find one whole line
_PROBE_FILES = 3  # objects tried for the schema sample before giving up on it
# polars' CSV reader reads an object in chunks of this many bytes (its default: 32 MiB). A parsed chunk's
# text columns keep the chunk alive, and the sink's queue holds several, so with 32 MiB chunks the peak RSS
# grew with the objects of a group: 95 MB of CSV (4 objects) -> JSON 351 MB, 380 MB of CSV 478 MB. With
# 512 KiB: 180-200 MB at 95 MB and 190-205 at 380 (docs/performance.md, "Memory"); 256 KiB and less cost
# CPU seconds on CSV -> Parquet (smaller morsels), 1 MiB still grew (219-259 MB at 380 MB).
CSV_CHUNK_BYTES = 512 * 1024
# polars reads its settings from the environment when a query starts (the CSV chunk above, the sink's
# morsel rows of a JSON writer: write.JsonLinesWriter): the stage sets them for its queries, one lock for
# every stage of the process; a value the process sets itself wins.
_SETTINGS_LOCK = threading.Lock()
_SETTINGS_HELD: dict[str, int] = {}  # name -> stages running with the stage's value


@dataclass(frozen=True)
class QueryPlan:
    """What every query of one run shares."""

    mappings: tuple[FieldMapping, ...]
    read_schema: pl.Schema
    records_per_part: int
    writer: Writer  # the output format (see write.py)
    # Map text to timestamps in the plain form only (ApplyMapping's speculative fast form): chosen when
    # the sample holds no other form; a group where it leaves a value null is mapped again in full.
    plain_timestamps: bool = False
    # Map text by the casts' fast paths only (ApplyMapping's "fast" form, mapping/fast.py): chosen when
    # the sample maps with no cast error and the same values; a group where a present value comes out
    # null is mapped again in full (only then does the general parser run, and pay its per-row cost).
    fast_casts: bool = False
    # With fast_casts: text -> timestamp by the ISO Z form without a fraction only (ApplyMapping's "zulu"),
    # chosen when the sample holds no other form; a value in another fixed form counts as a miss.
    zulu_timestamps: bool = False
    # The sample's schema, and every mapped leaf read as String: read_schema keeps the JSON types the
    # sample shows; where later data holds another type (a number here, an object there), the mapped
    # fields that differ are read as text (see read.query_tolerant). text_schema is None when read_schema
    # is all text already.
    observed: pl.Schema | None = None
    text_schema: pl.Schema | None = None
    # Every spelling of a mapped name known so far (see respelled): source names match
    # case-insensitively over the whole run, not just the sample.
    spellings: frozenset[str] = frozenset()


@contextmanager
def polars_settings(writer: Writer) -> Iterator[None]:
    """The polars settings of a stage's queries (see CSV_CHUNK_BYTES), in the environment while the block
    runs: the CSV chunk, and the sink's morsel rows where ``writer`` names them (``sink_morsel_rows``: a
    Parquet writer's row groups follow the morsels, so only text writers do). A name the environment holds
    already keeps its value; stages of one process share the values and the last one out removes them."""
    wanted = {"POLARS_CSV_CHUNK_SIZE": str(CSV_CHUNK_BYTES)}
    rows = getattr(writer, "sink_morsel_rows", None)
    if rows is not None:
        wanted["POLARS_IDEAL_SINK_MORSEL_SIZE_ROWS"] = str(rows)
    held: list[str] = []
    with _SETTINGS_LOCK:
        for name, value in wanted.items():
            if _SETTINGS_HELD.get(name):
                _SETTINGS_HELD[name] += 1
            elif name not in os.environ:
                os.environ[name] = value
                _SETTINGS_HELD[name] = 1
            else:
                continue
            held.append(name)
    try:
        yield
    finally:
        with _SETTINGS_LOCK:
            for name in held:
                _SETTINGS_HELD[name] -= 1
                if not _SETTINGS_HELD[name]:
                    del _SETTINGS_HELD[name]
                    os.environ.pop(name, None)


def _target_expr(path: tuple[str, ...]) -> pl.Expr:
    expr = pl.col(path[0])
    for name in path[1:]:
        expr = expr.struct.field(name)
    return expr


def _mapped_with_cast_errors(
    scan: pl.LazyFrame, plan: QueryPlan, plain_timestamps: PlainTimestamps
) -> tuple[pl.LazyFrame, list[str], pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """ApplyMapping plus, in the same projection, each cast-failing mapping's source.

    A cast error is a source that is present but whose mapped value is null (as ``cast_error_count``
    counts it). A mapped value is never present without its source, so per mapping the errors are the
    present sources minus the present targets: two validity counts, no per-row work. Carrying the source
    through the mapping (``presence_mapping``: an identity cast of its read type, free) lets the count
    read it beside the mapped values. Every JSON value (text, number, boolean, object, array) has a text
    form, so a mapping to String never fails and needs no check. The last expression counts the cast
    errors of timestamp mappings: with ``plain_timestamps`` any of them means the speculation missed.
    The last counts the text values with a zone name (``zone_named``): with ``"nozones"`` any of them
    means the query must run again with the zone branches. With ``"fast"`` the last counts the text values
    the fast paths left null that the general path may read (``may_need_general``): any of them means the
    speculation missed; malformed values the fast paths decide do not.
    """
    extra: list[FieldMapping] = []
    errors: list[pl.Expr] = []
    timestamp_errors: list[pl.Expr] = []
    named: list[pl.Expr] = []
    needed: list[pl.Expr] = []
    for index, fm in enumerate(plan.mappings):
        if isinstance(fm.target_type, pl.Null | pl.String):
            continue
        name = f"__glueflow_source_{index}"
        extra.append(presence_mapping(fm, plan.read_schema, name))  # the source, identity-cast
        error = pl.col(name).count().cast(pl.Int64) - _target_expr(fm.target).count()
        errors.append(error)
        # A null slot keeps its text, and a regex reads every slot of a batch that is not null throughout:
        # the counts read "" in the slots of the values that did not fail (masked). (drop_nulls would
        # read less, but the streaming engine holds the whole column for it: peak RSS grew with the input.)
        failed = _target_expr(fm.target).is_null() & pl.col(name).is_not_null()
        failed_text = pl.when(failed).then(pl.col(name)).otherwise(pl.lit(""))
        if plain_timestamps in ("fast", "zulu") and isinstance(extra[-1].target_type, pl.String):  # text
            maybe = may_need_general(failed_text, fm.target_type, zulu=plain_timestamps == "zulu")
            needed.append((failed & maybe).sum().cast(pl.Int64))
        if isinstance(fm.target_type, pl.Datetime):
            timestamp_errors.append(error)
            if plain_timestamps == "nozones" and isinstance(extra[-1].target_type, pl.String):  # text
                # Only a value that came out null can hold a zone name the query left out.
                named.append((failed & zone_named(failed_text)).sum().cast(pl.Int64))
    mapped = ApplyMapping.apply(scan, [*plan.mappings, *extra], plain_timestamps=plain_timestamps)
    columns = list(dict.fromkeys(fm.target[0] for fm in plan.mappings))
    return mapped, columns, _total(errors), _total(timestamp_errors), _total(named), _total(needed)


def _total(terms: list[pl.Expr]) -> pl.Expr:
    return pl.sum_horizontal(terms) if terms else pl.lit(0, pl.Int64)


def query(
    paths: Sequence[Path],
    plan: QueryPlan,
    out_dir: Path | None,
    first_part: int,
    *,
    ignore_errors: bool,
    frame: pl.LazyFrame | None = None,
) -> tuple[int, int, bool, int]:
    """Scan -> map -> sink parts into ``out_dir`` (None: count only).

    The scan reads ``paths`` as JSON lines with the plan's read schema, or is ``frame`` when given: a
    format scanned natively into the read schema's columns (``formats.native``).

    Returns (records, cast errors, whether a speculation missed, null mapped values not cast errors). With
    ``plan.plain_timestamps`` a query whose timestamp mappings leave a present value null is run again
    with the full timestamp parser, and with ``plan.fast_casts`` one with any cast error is run again with
    every cast in full, so the result is always the full mapping's.
    """
    speculated = plan.plain_timestamps or plan.fast_casts
    if speculated:
        mode: PlainTimestamps = "zulu" if plan.zulu_timestamps else "fast"
        if plan.plain_timestamps:
            mode = _plain_mode(plan)
        records, casts, timestamp_casts, missing, _, needed = _query_once(
            paths, plan, out_dir, first_part, ignore_errors, mode, frame
        )
        if not (timestamp_casts if plan.plain_timestamps else needed):
            return records, casts, False, missing
        if out_dir is not None:
            clear(out_dir)
    # In full, first without the zone branches (a pass per zone over every value): rarely needed.
    records, casts, _, missing, named, _ = _query_once(
        paths, plan, out_dir, first_part, ignore_errors, "nozones", frame
    )
    if named:
        if out_dir is not None:
            clear(out_dir)
        records, casts, _, missing, _, _ = _query_once(paths, plan, out_dir, first_part, ignore_errors, False, frame)
    return records, casts, speculated, missing


def after_miss(plan: QueryPlan) -> QueryPlan:
    """The plan for the groups after one whose speculation missed: a miss of the ``zulu`` form falls back
    to every fast path (other ISO forms are common in the same data and the fast paths read them), any
    other miss to the full casts."""
    if plan.zulu_timestamps:
        return replace(plan, zulu_timestamps=False)
    return replace(plan, plain_timestamps=False, fast_casts=False)


def _plain_mode(plan: QueryPlan) -> PlainTimestamps:
    """The plain form's timestamps go out as their source text (the JSON writer would write the same
    bytes); writers of typed timestamps (CSV, Parquet: core.formats) take the plain form parsed instead."""
    return True if getattr(plan.writer, "typed_timestamps", False) else "text"


def _query_once(
    paths: Sequence[Path],
    plan: QueryPlan,
    out_dir: Path | None,
    first_part: int,
    ignore_errors: bool,
    mode: PlainTimestamps,
    frame: pl.LazyFrame | None = None,
) -> tuple[int, int, int, int, int, int]:
    """One query in ``mode`` (ApplyMapping's ``plain_timestamps``); returns (records, cast errors, cast errors
    of timestamp mappings, null mapped values that are no cast errors, text values with a zone name, text
    values the fast paths left null that the general path may read)."""
    scan = frame
    if scan is None:
        scan = pl.scan_ndjson([str(p) for p in paths], schema=plan.read_schema, ignore_errors=ignore_errors)
    mapped, columns, cast_errors, timestamp_errors, named, needed = _mapped_with_cast_errors(scan, plan, mode)
    missing = _total([_target_expr(fm.target).null_count().cast(pl.Int64) for fm in plan.mappings])
    figures = [
        pl.len().alias("records"),
        cast_errors.alias("casts"),
        timestamp_errors.alias("timestamp_casts"),
        missing.alias("missing"),
        named.alias("named"),
        needed.alias("needed"),
    ]
    if out_dir is None:
        # Nothing to write: still parse every line (a bare len() only counts lines) to find bad ones.
        parse_all = [pl.col(name).null_count().alias(f"__glueflow_nulls_{i}") for i, name in enumerate(columns)]
        totals = mapped.select(*figures, *parse_all).collect(engine="streaming")
    else:
        # A folder of the query's own: a failed query's late writers never reach a rerun's parts (write.py).
        with attempt_folder(out_dir) as folder, ExitStack() as files:
            sink = plan.writer.sink(mapped.select(columns), folder, first_part, plan.records_per_part, files)
            _, totals = pl.collect_all([sink, mapped.select(figures)], engine="streaming")
    return (
        int(totals["records"][0]),
        int(totals["casts"][0] or 0),
        int(totals["timestamp_casts"][0] or 0),
        # A cast error is a present source: only the other nulls can hide an unseen spelling (respelled).
        int(totals["missing"][0] or 0) - int(totals["casts"][0] or 0),
        int(totals["named"][0] or 0),
        int(totals["needed"][0] or 0),
    )


def make_plan(
    paths: Sequence[Path], mappings: tuple[FieldMapping, ...], target_file_bytes: int, writer: Writer
) -> QueryPlan:
    """Read schema (spellings observed in a sample of the first readable object) and records per part."""
    observed = sample_schema(paths)
    read_schema = source_read_schema(mappings, observed)
    text_schema = source_read_schema(mappings, observed, typed=False)
    record_bytes = float(_DEFAULT_RECORD_BYTES)
    speculate = any(isinstance(fm.target_type, pl.Datetime) for fm in mappings)
    fast = any(_has_general_path(fm.target_type) for fm in mappings)
    plain_sample = fast_sample = zulu_sample = False
    for path in paths[:_PROBE_FILES]:
        try:
            # Read once, mapped in memory: each lazy frame over the scan would parse the sample again.
            rows = pl.scan_ndjson(_sample_source(path), schema=read_schema, n_rows=_SIZE_SAMPLE_LINES).collect().lazy()
            plain = ApplyMapping.apply(rows, mappings, plain_timestamps=True) if speculate else None
            probe = QueryPlan(mappings, read_schema, 1, writer)
            sample, fast_only, zulu, plain_sample = _mapped_sample(rows, probe, plain)
        except READ_ERRORS:
            continue
        if sample.height:
            record_bytes = max(1.0, len(sample.write_ndjson().encode()) / sample.height)
            fast_sample = fast and not plain_sample and fast_only
            zulu_sample = fast_sample and zulu
            break
    records_per_part = max(1, int(target_file_bytes // record_bytes))
    return QueryPlan(
        mappings,
        read_schema,
        records_per_part,
        writer,
        plain_timestamps=plain_sample,
        fast_casts=fast_sample,
        zulu_timestamps=zulu_sample,
        observed=observed,
        text_schema=None if text_schema == read_schema else text_schema,
        spellings=frozenset(field_names(observed or {})),
    )


def _mapped_sample(
    rows: pl.LazyFrame, probe: QueryPlan, plain: pl.LazyFrame | None
) -> tuple[pl.DataFrame, bool, bool, bool]:
    """The sample (in memory) mapped as the full casts map it, whether the fast paths alone map it so,
    whether the ISO Z form alone does too (``zulu``: no timestamp of the sample in another fixed form), and
    whether ``plain`` (the plain-timestamps mapping, if any) maps it so.

    The fast paths first: where no value they left null may read on the general path, they map exactly as
    the full casts do, and the full mapping (whose general parsers cost more to plan than to run on 1,000
    lines) is skipped. Malformed values the fast paths decide (null in the general path too) do not count.
    The regexes that tell run only when some value came out null (a cast error), on the mapped sample.
    The candidate mappings run in one ``collect_all``: the plan runs before the stage's query, and each
    query on a sample costs more to start than to run.
    """
    mapped, columns, casts, _, _, needed = _mapped_with_cast_errors(rows, probe, "fast")
    timestamps = any(isinstance(fm.target_type, pl.Datetime) for fm in probe.mappings)
    candidates = [mapped.with_columns(casts.alias("__glueflow_casts"), needed.alias("__glueflow_needed"))]
    if timestamps:
        candidates.append(ApplyMapping.apply(rows, probe.mappings, plain_timestamps="zulu"))
    if plain is not None:
        candidates.append(plain)
    frames = pl.collect_all(candidates)
    frame = frames[0]
    plain_frame = frames[-1] if plain is not None else None
    fast_only = not frame.height or not frame["__glueflow_casts"][0] or not frame["__glueflow_needed"][0]
    if fast_only:
        sample = frame.select(columns)
        zulu = timestamps and frames[1].equals(sample)
    else:
        # The full casts (zone names aside: this only sizes the parts and chooses a speculation).
        sample = ApplyMapping.apply(rows, probe.mappings, plain_timestamps="nozones").collect()
        zulu = False
    return sample, fast_only, zulu, plain_frame is not None and plain_frame.equals(sample)


def _has_general_path(dtype: pl.DataType) -> bool:
    """Whether a cast from text to ``dtype`` has a general path beside its fast one (mapping/fast.py)."""
    return isinstance(dtype, pl.Datetime | pl.Date | pl.Decimal | pl.Boolean) or dtype.is_integer()


def sample_schema(paths: Sequence[Path]) -> pl.Schema | None:
    """The schema polars infers from the first lines of the first readable of the first few objects.

    The sample the stage's read schema comes from (:func:`mapping.source_read_schema`): the spellings of
    field names and the JSON types kept. The Spark stage script samples with this function too, so both
    engines read the same fields with the same types.
    """
    for path in paths[:_PROBE_FILES]:
        try:
            schema = pl.scan_ndjson(str(path), infer_schema_length=_SCHEMA_SAMPLE_LINES).collect_schema()
        except READ_ERRORS:
            continue  # a bad object: it will be inspected (and quarantined) later
        if len(schema):
            return schema
    return None


def _sample_source(path: Path) -> str | bytes:
    """What the size sample reads: the bytes of about the first _SIZE_SAMPLE_LINES lines of an uncompressed
    JSON-lines object, or of its whole lines within about _SAMPLE_BYTES where lines are long (120-field
    records: the sample's read and mapping cost in proportion), else the object itself (compressed,
    another format). A scan of a whole object
    sets up its reading over the whole file, tens of milliseconds before the first record; these run
    before the stage's query and on one core. Blank lines are no records, so where the head holds some
    the sample is a little shorter (it only estimates a record's output size)."""
    with open(path, "rb") as src:
        head = src.read(_SAMPLE_BLOCK)
        if not head.lstrip(b" \t\r\n").startswith(b"{"):
            return str(path)
        blocks = [head]
        newlines = head.count(b"\n")
        while len(blocks) * _SAMPLE_BLOCK < _SAMPLE_MAX_BYTES:
            if newlines and (newlines > _SIZE_SAMPLE_LINES or len(blocks) * _SAMPLE_BLOCK >= _SAMPLE_BYTES):
                break
            block = src.read(_SAMPLE_BLOCK)
            if not block:
                return b"".join(blocks)  # the whole object: fewer lines than the sample
            blocks.append(block)
            newlines += block.count(b"\n")
    head = b"".join(blocks)
    end = -1
    for _ in range(_SIZE_SAMPLE_LINES):  # the reader parses every line it is given, n_rows or not
        found = head.find(b"\n", end + 1)
        if found < 0:
            break
        end = found
    return head[: end + 1] if end >= 0 else str(path)


def field_names(schema: Mapping[str, pl.DataType]) -> Iterator[str]:
    """Every field name of a schema, at every level."""
    for name, dtype in schema.items():
        yield name
        if isinstance(dtype, pl.Struct):
            yield from field_names({f.name: f.dtype for f in dtype.fields})


def merged_schemas(a: Mapping[str, pl.DataType], b: Mapping[str, pl.DataType]) -> dict[str, pl.DataType]:
    """Union of two inferred schemas, struct fields merged level by level (``a``'s types win)."""
    fields = dict(a)
    for name, dtype in b.items():
        mine = fields.get(name)
        if mine is None:
            fields[name] = dtype
        elif isinstance(mine, pl.Struct) and isinstance(dtype, pl.Struct):
            inner = merged_schemas({f.name: f.dtype for f in mine.fields}, {f.name: f.dtype for f in dtype.fields})
            fields[name] = pl.Struct(inner)
    return fields


def spelling_regex(mappings: Sequence[FieldMapping]) -> str | None:
    """A regex matching a JSON key that spells a mapped source name in any case (``"Id":``), or None.

    Field names only: array element indices (items[0]) have no spelling. The Spark stage script scans
    with the same regex (Java's, with Unicode case folding).
    """
    wanted = sorted({name.lower() for fm in mappings for name in fm.source if isinstance(name, str)})
    if not wanted:
        return None
    keys = "|".join(re.escape(name) for name in wanted)
    return f'(?i)"(?:{keys})"\\s*:'


def respelled(paths: Sequence[Path], plan: QueryPlan, workdir: Path) -> QueryPlan | None:
    """A plan that also reads spellings of mapped names first seen in these objects, or None if there are none.

    Glue matches source names case-insensitively over every record; the read schema comes from a sample,
    so a spelling that first appears later (``ID`` after ``id``) would be read as missing. Called only for
    a group whose mapped values came out null somewhere (the only place such a spelling can hide): one
    regex pass over the group's lines finds the keys that spell a mapped name; lines holding new ones
    extend the observed schema.
    """
    regex = spelling_regex(plan.mappings)
    if regex is None:
        return None
    lines = pl.scan_lines([str(p) for p in paths])
    found = (
        lines.select(pl.col("line").str.extract_all(regex).explode().drop_nulls().unique())
        .collect(engine="streaming")
        .to_series()
        .to_list()
    )
    new = {key.split('"')[1] for key in found} - plan.spellings
    if not new:
        return None
    pattern = "|".join(re.escape(f'"{name}"') for name in sorted(new))
    sample = workdir / f"spellings-{uuid.uuid4().hex}.json"
    lines.filter(pl.col("line").str.contains(pattern)).head(_SIZE_SAMPLE_LINES).collect().write_csv(
        sample, include_header=False, quote_style="never"
    )
    try:
        extra = pl.scan_ndjson(str(sample), infer_schema_length=None).collect_schema()
    except READ_ERRORS:
        extra = pl.Schema()
    finally:
        sample.unlink(missing_ok=True)
    observed = pl.Schema(merged_schemas(plan.observed or {}, extra))
    read_schema = source_read_schema(plan.mappings, observed)
    text_schema = source_read_schema(plan.mappings, observed, typed=False)
    return replace(
        plan,
        read_schema=read_schema,
        text_schema=None if text_schema == read_schema else text_schema,
        observed=observed,
        spellings=plan.spellings | new,
    )

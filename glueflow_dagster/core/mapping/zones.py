"""Zone names in timestamps (``2026-03-29 02:30 Europe/Paris``, ``PST``) as native polars expressions.

Spark resolves a zone name with java.time's ``ZoneId.of`` and its ``SHORT_IDS`` (``PST`` is
America/Los_Angeles; ``EST``, ``MST`` and ``HST`` are fixed offsets). polars converts a column from one
zone at a time, so the conversion is one branch per zone, each seeing only the values that name it:
``replace_strict`` numbers the names, and a branch's input is null everywhere else (its kernel skips
nulls, so a batch without zone names costs a comparison per zone). No Python runs per batch or per
value, and the query stays on the streaming engine.

A local time in a daylight-saving overlap takes the earlier offset (as java.time does); one in a gap
gives null (java.time would move it forward). A name that is no zone gives null.
"""

from __future__ import annotations

import functools

import polars as pl

# java.time's ZoneId.SHORT_IDS, which Spark resolves zone names with.
SHORT_ZONE_IDS = {
    "ACT": "Australia/Darwin", "AET": "Australia/Sydney", "AGT": "America/Argentina/Buenos_Aires",
    "ART": "Africa/Cairo", "AST": "America/Anchorage", "BET": "America/Sao_Paulo", "BST": "Asia/Dhaka",
    "CAT": "Africa/Harare", "CNT": "America/St_Johns", "CST": "America/Chicago", "CTT": "Asia/Shanghai",
    "EAT": "Africa/Addis_Ababa", "ECT": "Europe/Paris", "IET": "America/Indiana/Indianapolis",
    "IST": "Asia/Kolkata", "JST": "Asia/Tokyo", "MIT": "Pacific/Apia", "NET": "Asia/Yerevan",
    "NST": "Pacific/Auckland", "PLT": "Asia/Karachi", "PNT": "America/Phoenix", "PRT": "America/Puerto_Rico",
    "PST": "America/Los_Angeles", "SST": "Pacific/Guadalcanal", "VST": "Asia/Ho_Chi_Minh",
}  # fmt: skip
SHORT_ZONE_OFFSETS = {"EST": -5 * 3600, "MST": -7 * 3600, "HST": -10 * 3600}


def _accepted(zone: str) -> bool:
    """Whether polars knows ``zone`` (its zone database; ``Factory`` and the like are not zones)."""
    try:
        pl.lit(None, pl.Datetime("us")).dt.replace_time_zone(zone)
    except pl.exceptions.ComputeError:
        return False
    return True


@functools.cache
def zone_table() -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    """(every name Spark resolves, its zone's index, the zones): the names of the zone database, and the
    short ids pointing at the zone they stand for. Fixed-offset short ids are not in it."""
    import zoneinfo

    zones = tuple(sorted(z for z in zoneinfo.available_timezones() if _accepted(z)))
    index = {zone: i for i, zone in enumerate(zones)}
    names = {zone: i for i, zone in enumerate(zones)}
    for short, zone in SHORT_ZONE_IDS.items():
        if zone in index:
            names[short] = index[zone]
    for short in SHORT_ZONE_OFFSETS:
        names.pop(short, None)
    return tuple(names), tuple(names.values()), zones


def named_zone_to_utc(local: pl.Expr, zone: pl.Expr) -> pl.Expr:
    """Naive local times (``local``) in the zones ``zone`` names, as naive UTC; null where a name is no zone.

    ``local`` should be null wherever ``zone`` is not a zone name (offsets are converted elsewhere). The
    names are numbered by a cast to an Enum of every name (``replace_strict`` would leave the streaming
    engine in polars 2.1).
    """
    names, indices, zones = zone_table()
    aliases: dict[int, list[int]] = {}
    for number, index in enumerate(indices):
        aliases.setdefault(index, []).append(number)
    fixed = pl.lit(None, pl.Int64)
    for short, seconds in SHORT_ZONE_OFFSETS.items():
        fixed = pl.when(zone == short).then(pl.lit(seconds, pl.Int64)).otherwise(fixed)
    number = zone.cast(pl.Enum(list(names)), strict=False).to_physical()
    f = pl.field
    steps = pl.struct(local.alias("local"), number.alias("number"), fixed.alias("fixed"))

    def named(index: int) -> pl.Expr:
        numbers = aliases[index]
        return f("number") == numbers[0] if len(numbers) == 1 else f("number").is_in(numbers)

    # Each branch ends in UTC (one dtype for all), made naive once after the coalesce.
    by_zone = [
        pl.when(named(i))
        .then(f("local"))
        .dt.replace_time_zone(name, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
        for i, name in enumerate(zones)
        if i in aliases  # EST, MST, HST: fixed offsets in Spark, not the zones of the same name
    ]
    by_offset = (f("local") - pl.duration(seconds=f("fixed"))).dt.replace_time_zone("UTC")
    utc = pl.coalesce(by_offset, *by_zone).dt.replace_time_zone(None)
    return steps.struct.with_fields(out=utc).struct.field("out")

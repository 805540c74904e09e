"""Bookmark state size and tick time at 100,000 already-processed objects on local storage.

    python -m benchmarks.bookmarks [--objects 100000] [--new 100]

Writes the objects as small files under a temp dir (directly with os, on threads), lists them through
``LocalStorage.list``, commits them all into a bookmark, then measures what one sensor tick costs:
list + select over the objects plus ``--new`` new ones. The state is compared with the 64 KB target
and with a naive "set of every processed key" state (what Auto Loader / Spark-style full state
keeps). Two more ticks show the digest at work: a few deletions and late files (decoded exactly,
no lookup), and a mass deletion that overflows the digest (answered through ``known``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from glueflow_dagster.core.bookmarks import Bookmark, BookmarkPolicy, Selection, commit, select_objects
from glueflow_dagster.core.storage import LocalStorage, ObjectInfo

TARGET_STATE_BYTES = 64 * 1024
TARGET_TICK_S = 2.0
PREFIX = "events"
T = TypeVar("T")
PAYLOAD = b'{"event_id":1,"user_id":2}\n'


def _key(run: str, part: int) -> str:
    # Glue-style object names, as the Input job writes them: long keys, the worst case for the band.
    return f"{PREFIX}/run-{run}-part-r-{part:05d}.json.gz"


def write_files(root: Path, keys: Sequence[str], *, mtime_ns: int | None = None) -> None:
    def write(chunk: Sequence[str]) -> None:
        for key in chunk:
            path = root / key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, PAYLOAD)
            finally:
                os.close(fd)
            if mtime_ns is not None:
                os.utime(path, ns=(mtime_ns, mtime_ns))

    (root / PREFIX).mkdir(parents=True, exist_ok=True)
    step = max(1, len(keys) // 32)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, [keys[i : i + step] for i in range(0, len(keys), step)]))


def new_keys(count: int, per_run: int = 100) -> list[str]:
    keys: list[str] = []
    while len(keys) < count:
        run = str(uuid.uuid4())
        keys += [_key(run, part) for part in range(min(per_run, count - len(keys)))]
    return keys


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


@dataclass(frozen=True)
class Measured:
    """What one benchmark run measured: the set-up, the states' sizes, and each tick's time and selection."""

    tmp: str
    write_s: float
    list_s: float
    build_s: float
    state: Bookmark
    cursor: str
    naive_keys: str
    naive_versions: str
    tick_s: float
    list_only_s: float
    select_only_s: float
    commit_s: float
    selection: Selection
    churn_s: float
    churn: Selection
    overflow_s: float
    overflow: Selection
    known_calls: int
    clean_s: float
    clean: Selection


def measure(objects: int, new: int, ticks: int, policy: BookmarkPolicy) -> Measured:
    """Set up ``objects`` processed objects and ``new`` new ones in a temp dir, then time the ticks."""
    with tempfile.TemporaryDirectory(prefix="glueflow-bench-") as tmp:
        root = Path(tmp)
        storage = LocalStorage(root)
        old = new_keys(objects)
        write_s, _ = timed(lambda: write_files(root, old))

        def tick(state: Bookmark, known: Callable[[Sequence[ObjectInfo]], set[str]] | None = None) -> Selection:
            return select_objects(storage.list(), state, option="enable", policy=policy, known=known)

        list_s, listing = timed(lambda: list(storage.list()))
        assert len(listing) == objects, len(listing)
        build_s, state = timed(
            lambda: commit(Bookmark(), select_objects(listing, Bookmark(), option="enable", policy=policy))
        )

        write_files(root, new_keys(new))
        times, selection = [], None
        for _ in range(ticks):
            seconds, selection = timed(lambda: tick(state))
            times.append(seconds)
        assert selection is not None
        list_only = statistics.median(timed(lambda: sum(1 for _ in storage.list()))[0] for _ in range(ticks))
        listed_now = list(storage.list())
        select_only = statistics.median(
            timed(lambda: select_objects(listed_now, state, option="enable", policy=policy))[0] for _ in range(ticks)
        )
        commit_s, after = timed(lambda: commit(state, selection))

        # Churn the digest has to decode: 200 deletions and 50 late files (mtime a day old).
        for key in old[:200]:
            os.unlink(root / key)
        day_ago = time.time_ns() - 86_400 * 10**9
        write_files(root, new_keys(50), mtime_ns=day_ago)
        churn_s, churn = timed(lambda: tick(after))
        after_churn = commit(after, churn)

        # A mass deletion (5,000 objects) overflows the digest: `known` answers from the run history.
        for key in old[200:5_200]:
            os.unlink(root / key)
        # The run history: every committed manifest so far.
        history = {(o.key, o.etag) for o in (*listing, *selection.manifest, *churn.manifest)}
        calls: list[int] = []

        def known(candidates: Sequence[ObjectInfo]) -> set[str]:
            calls.append(len(candidates))
            return {o.key for o in candidates if (o.key, o.etag) in history}

        overflow_s, overflow = timed(lambda: tick(after_churn, known))
        rebased = commit(after_churn, overflow)
        clean_s, clean = timed(lambda: tick(rebased, known))
    return Measured(
        tmp=tmp,
        write_s=write_s,
        list_s=list_s,
        build_s=build_s,
        state=state,
        cursor=state.to_json(),
        naive_keys=json.dumps(sorted(o.key for o in listing), separators=(",", ":")),
        naive_versions=json.dumps({o.key: [o.last_modified_ms, o.etag] for o in listing}, separators=(",", ":")),
        tick_s=statistics.median(times),
        list_only_s=list_only,
        select_only_s=select_only,
        commit_s=commit_s,
        selection=selection,
        churn_s=churn_s,
        churn=churn,
        overflow_s=overflow_s,
        overflow=overflow,
        known_calls=len(calls),
        clean_s=clean_s,
        clean=clean,
    )


def report(m: Measured, objects: int, new: int, ticks: int, policy: BookmarkPolicy) -> bool:
    """Print the figures beside the targets and the naive states; whether every target holds."""
    state, selection, churn, overflow, clean = m.state, m.selection, m.churn, m.overflow, m.clean
    print(f"bookmark benchmark: {objects:,} already-processed objects on local storage ({m.tmp})")
    print(f"  setup: wrote {objects:,} files in {m.write_s:.1f} s; listed them in {m.list_s:.2f} s;")
    print(f"         committed them all into one bookmark in {m.build_s:.2f} s")
    print()
    print(f"  {'state (cursor JSON)':<44}{'bytes':>12}{'vs 64 KB target':>18}")
    rows = [
        ("glueflow bookmark (mark + band + digest)", len(m.cursor.encode())),
        ("naive: set of all processed keys", len(m.naive_keys.encode())),
        ("naive: every key with (lm, etag)", len(m.naive_versions.encode())),
    ]
    for label, size in rows:
        verdict = "OK" if size < TARGET_STATE_BYTES else "over"
        print(f"  {label:<44}{size:>12,}{size / TARGET_STATE_BYTES:>12.2f}x {verdict:>4}")
    print(
        f"  band: {len(state.band)} objects (max_band_files={policy.max_band_files}); "
        f"digest: {state.retired_files:,} objects in {state.retired.cells if state.retired else 0} cells; "
        f"naive keys / bookmark = {len(m.naive_keys) / len(m.cursor):.0f}x"
    )
    print()
    print(f"  {'tick (list + select)':<44}{'seconds':>12}{'vs 2 s target':>18}")
    verdict = "OK" if m.tick_s < TARGET_TICK_S else "over"
    print(
        f"  {f'{objects:,} read + {new} new (median of {ticks})':<44}{m.tick_s:>12.3f}"
        f"{m.tick_s / TARGET_TICK_S:>12.2f}x {verdict:>4}"
    )
    print(f"  {'  listing alone (LocalStorage.list)':<44}{m.list_only_s:>12.3f}")
    print(f"  {'  select_objects alone (listing in memory)':<44}{m.select_only_s:>12.3f}")
    print(f"  {'  commit after the tick':<44}{m.commit_s:>12.3f}")
    print(
        f"  {'200 deleted + 50 late (digest decodes)':<44}{m.churn_s:>12.3f}"
        f"   late={churn.late_files} new={churn.new_files} lookups={churn.digest_lookups}"
    )
    print(
        f"  {'5,000 deleted (digest overflows -> known)':<44}{m.overflow_s:>12.3f}"
        f"   lookups={overflow.digest_lookups:,} in {m.known_calls} call, manifest={len(overflow.manifest)}"
    )
    print(
        f"  {'next tick after the re-baselining commit':<44}{m.clean_s:>12.3f}"
        f"   lookups={clean.digest_lookups} manifest={len(clean.manifest)}"
    )
    print()
    print(
        f"  selection of the measured tick: new={selection.new_files} "
        f"already_read={selection.already_read_files:,} late={selection.late_files} "
        f"modified={selection.modified_files} skipped={selection.skipped_files}"
    )
    ok = len(m.cursor.encode()) < TARGET_STATE_BYTES and m.tick_s < TARGET_TICK_S
    ok = ok and churn.late_files == 50 and churn.digest_lookups == 0 and not overflow.manifest
    return ok and clean.digest_lookups == 0 and not clean.manifest and selection.new_files == new


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bookmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=100_000, help="already-processed objects")
    parser.add_argument("--new", type=int, default=100, help="new objects in the measured tick")
    parser.add_argument("--ticks", type=int, default=3, help="ticks measured (the median is reported)")
    args = parser.parse_args(argv)
    policy = BookmarkPolicy()
    ok = report(measure(args.objects, args.new, args.ticks, policy), args.objects, args.new, args.ticks, policy)
    print(f"  result: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

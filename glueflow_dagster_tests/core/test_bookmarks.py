"""Bookmark selection and commit: high-water mark, consistency band, digest, states, caps, ranges."""

import itertools
import json
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glueflow_dagster.core.bookmarks import (
    DEFAULT_MAX_BAND_MS,
    REPORT_LIMIT,
    Bookmark,
    BookmarkError,
    BookmarkPolicy,
    Digest,
    ObjectState,
    Selection,
    commit,
    covers,
    select_objects,
    select_range,
)
from glueflow_dagster.core.storage import ObjectInfo

BAND = 1_000
POLICY = BookmarkPolicy(max_band_ms=BAND)


def obj(key: str, lm: int, etag: str = "e", size: int = 10) -> ObjectInfo:
    return ObjectInfo(key=key, size=size, last_modified_ms=lm, etag=etag)


def keys(selection) -> list[str]:
    return [o.key for o in selection.manifest]


def run(listing, state, policy=POLICY, known=None):
    """One successful enable run: (selection, state after its commit)."""
    selection = select_objects(listing, state, option="enable", policy=policy, known=known)
    return selection, commit(state, selection)


def history_known(*selections):
    """A `known` callback answering from committed selections, as the shell does from run history."""
    read = {(o.key, o.etag) for s in selections for o in (*s.manifest, *s.acknowledged)}
    return lambda candidates: {o.key for o in candidates if (o.key, o.etag) in read}


# --------------------------------------------------------------------------------------------------
# The original behaviour (Glue's high-water mark and band)


def test_disable_reads_everything_even_with_a_bookmark() -> None:
    listing = [obj("a", 10), obj("b", 20)]
    state = commit(Bookmark(), listing, max_band_ms=BAND)
    selection = select_objects(listing, state, option="disable", max_band_ms=BAND)
    assert keys(selection) == ["a", "b"]
    assert commit(state, selection) == state  # disable never changes the state


def test_enable_reads_only_what_no_committed_run_read() -> None:
    first = [obj("a", 10_000), obj("b", 20_000)]
    state = commit(Bookmark(), first, max_band_ms=BAND)
    listing = [*first, obj("c", 30_000)]
    selection = select_objects(listing, state, option="enable", max_band_ms=BAND)
    assert keys(selection) == ["c"]
    assert (selection.listed_files, selection.already_read_files, selection.manifest_bytes) == (3, 2, 10)


def test_late_object_inside_the_band_is_still_picked_up() -> None:
    state = commit(Bookmark(), [obj("b", 20_000)], max_band_ms=BAND)
    # Written before the watermark but listed only now (a slow upload), inside the band.
    listing = [obj("b", 20_000), obj("a", 19_500)]
    selection = select_objects(listing, state, option="enable", max_band_ms=BAND)
    assert keys(selection) == ["a"]
    assert (selection.new_files, selection.late_files) == (1, 0)  # a straggler in the band is new


def test_rewritten_object_in_the_band_is_read_again() -> None:
    state = commit(Bookmark(), [obj("a", 20_000, "v1")], max_band_ms=BAND)
    listing = [obj("a", 20_000, "v2")]
    assert keys(select_objects(listing, state, option="enable", max_band_ms=BAND)) == ["a"]


def test_manifest_is_oldest_first_and_commit_keeps_only_the_band() -> None:
    listing = [obj("z", 5_000), obj("y", 9_500), obj("x", 10_000)]
    selection = select_objects(listing, Bookmark(), option="enable", max_band_ms=BAND)
    assert keys(selection) == ["z", "y", "x"]
    state = commit(Bookmark(), selection.manifest, max_band_ms=BAND)
    assert state.watermark_ms == 10_000
    assert sorted(state.band) == ["x", "y"]
    assert state.retired_files == 1  # z left the band for the digest
    assert (state.run_number, state.version) == (1, 1)


def test_commit_of_an_empty_run_keeps_the_watermark_and_counts_the_run() -> None:
    state = commit(Bookmark(), [obj("a", 10_000)], max_band_ms=BAND)
    after = commit(state, [], max_band_ms=BAND)
    assert (after.watermark_ms, after.band, after.run_number) == (state.watermark_ms, state.band, 2)


def test_state_round_trips_through_json_and_dict() -> None:
    state = commit(Bookmark(), [obj("a/b=c d.json", 10_000, "xyz")], max_band_ms=BAND)
    assert Bookmark.from_json(state.to_json()) == state
    assert Bookmark.from_dict(state.to_dict()) == state
    assert Bookmark.from_json(None) == Bookmark()


@pytest.mark.parametrize("text", ["{not json", '{"band": 3}', '{"band": {"a": [1]}}'])
def test_corrupt_state_raises_bookmark_error(text: str) -> None:
    with pytest.raises(BookmarkError):
        Bookmark.from_json(text)


# --------------------------------------------------------------------------------------------------
# Every state


def test_new_and_already_read_are_counted() -> None:
    selection, state = run([obj("a", 10_000), obj("b", 10_001)], Bookmark())
    assert selection.states[ObjectState.NEW] == 2 and selection.new_files == 2
    again = select_objects([obj("a", 10_000), obj("b", 10_001)], state, option="enable", policy=POLICY)
    assert (keys(again), again.states[ObjectState.ALREADY_READ], again.already_read_files) == ([], 2, 2)
    assert sum(again.states.values()) == again.listed_files == 2


def test_modified_in_the_band_reprocess_and_ignore() -> None:
    _, state = run([obj("a", 10_000, "v1")], Bookmark())
    listing = [obj("a", 10_500, "v2")]
    reprocess = select_objects(listing, state, option="enable", policy=POLICY)
    assert keys(reprocess) == ["a"] and reprocess.states[ObjectState.MODIFIED] == 1
    assert reprocess.modified_files == 1 and reprocess.skipped_files == 0

    ignore = replace(POLICY, on_modified="ignore")
    ignored = select_objects(listing, state, option="enable", policy=ignore)
    assert keys(ignored) == [] and ignored.states[ObjectState.IGNORED] == 1
    assert (ignored.modified_files, ignored.skipped_files) == (1, 1)
    assert [o.key for o in ignored.acknowledged] == ["a"] == [o.key for o in ignored.ignored]
    after = commit(state, ignored)  # acknowledged: counts as read from now on
    assert select_objects(listing, after, option="enable", policy=ignore).already_read_files == 1


def test_rewrite_of_an_object_read_long_ago_is_modified_through_the_digest() -> None:
    _, state = run([obj("old", 1_000, "v1"), obj("other", 1_001)], Bookmark())
    _, state = run([obj("old", 1_000, "v1"), obj("other", 1_001), obj("x", 50_000)], state)
    assert "old" not in state.band and state.retired_files == 2  # only the digest remembers it
    listing = [obj("old", 60_000, "v2"), obj("other", 1_001), obj("x", 50_000)]
    selection = select_objects(listing, state, option="enable", policy=POLICY)
    assert keys(selection) == ["old"] and selection.modified_files == 1 and selection.new_files == 0
    ignored = select_objects(listing, state, option="enable", policy=replace(POLICY, on_modified="ignore"))
    assert keys(ignored) == [] and ignored.states[ObjectState.IGNORED] == 1
    after = commit(state, ignored)
    assert select_objects(listing, after, option="enable", policy=POLICY).already_read_files == 3


def test_late_object_below_the_band_is_processed_and_counted() -> None:
    _, state = run([obj("a", 100_000)], Bookmark())
    listing = [obj("a", 100_000), obj("slow-upload", 50_000)]  # lm far below watermark - band
    selection = select_objects(listing, state, option="enable", policy=POLICY)
    assert keys(selection) == ["slow-upload"]
    assert selection.states[ObjectState.LATE] == 1 and selection.late_files == 1
    assert [o.key for o in selection.late] == ["slow-upload"] and selection.digest_lookups == 0
    after = commit(state, selection)
    assert after.watermark_ms == 100_000  # a late object never moves the mark back
    assert keys(select_objects(listing, after, option="enable", policy=POLICY)) == []


def test_late_object_with_report_is_reported_by_every_run_until_processed() -> None:
    _, state = run([obj("a", 100_000)], Bookmark())
    listing = [obj("a", 100_000), obj("late", 50_000), obj("b", 100_100)]
    report = replace(POLICY, on_late="report")
    first = select_objects(listing, state, option="enable", policy=report)
    assert keys(first) == ["b"]
    assert (first.late_files, first.skipped_files, first.states[ObjectState.IGNORED]) == (1, 1, 1)
    state = commit(state, first)
    second = select_objects(listing, state, option="enable", policy=report)
    assert keys(second) == [] and second.late_files == 1  # still reported: never marked read
    assert keys(select_objects(listing, state, option="enable", policy=POLICY)) == ["late"]


def test_files_cap_takes_the_oldest_and_defers_the_rest_without_passing_them() -> None:
    listing = [obj(f"k{i}", 10_000 + i) for i in range(5)]
    capped = replace(POLICY, max_files_per_run=2)
    state, order = Bookmark(), []
    for _ in range(3):
        selection, state = run(listing, state, capped)
        order.append(keys(selection))
        assert state.watermark_ms == max(o.last_modified_ms for o in selection.manifest)
    assert order == [["k0", "k1"], ["k2", "k3"], ["k4"]]
    first = select_objects(listing, Bookmark(), option="enable", policy=capped)
    assert first.states[ObjectState.DEFERRED] == 3 and first.skipped_files == 3
    assert first.new_files == 5 and first.deferred_bytes == 30
    assert [o.key for o in first.deferred] == ["k2", "k3", "k4"]


def test_cap_splitting_objects_with_the_same_last_modified_uses_the_key() -> None:
    listing = [obj(k, 10_000) for k in "dcba"]
    capped = replace(POLICY, max_files_per_run=3, max_band_files=0)  # no band: the digest alone decides
    selection, state = run(listing, Bookmark(), capped)
    assert keys(selection) == ["a", "b", "c"] and (state.watermark_ms, state.watermark_key) == (10_000, "c")
    selection, state = run(listing, state, capped)
    assert keys(selection) == ["d"] and selection.new_files == 1


def test_bytes_cap_and_an_object_bigger_than_the_cap() -> None:
    listing = [obj("a", 1, size=4), obj("b", 2, size=4), obj("huge", 3, size=100), obj("c", 4, size=1)]
    capped = replace(POLICY, max_bytes_per_run=10)
    state, order = Bookmark(), []
    for _ in range(3):
        selection, state = run(listing, state, capped)
        order.append(keys(selection))
    assert order == [["a", "b"], ["huge"], ["c"]]  # the huge object is taken alone, never stuck


def test_deferred_late_and_modified_objects_are_picked_up_later() -> None:
    _, state = run([obj("a", 100_000, "v1")], Bookmark())
    listing = [obj("a", 100_500, "v2"), obj("late1", 10), obj("late2", 20), obj("n", 100_600)]
    capped = replace(POLICY, max_files_per_run=1)
    seen = []
    for _ in range(5):
        selection, state = run(listing, state, capped)
        seen.append((keys(selection), selection.late_files, selection.modified_files))
    assert seen[:4] == [(["late1"], 2, 1), (["late2"], 1, 1), (["a"], 0, 1), (["n"], 0, 0)]
    assert seen[4] == ([], 0, 0)


def test_pause_selects_like_enable_and_never_advances() -> None:
    _, state = run([obj("a", 10_000)], Bookmark())
    listing = [obj("a", 10_000), obj("b", 20_000)]
    paused = select_objects(listing, state, option="pause", policy=POLICY)
    assert keys(paused) == ["b"]
    assert commit(state, paused) == state  # the caller does not commit; if it does, nothing changes
    assert keys(select_objects(listing, state, option="pause", policy=POLICY)) == ["b"]


def test_select_range_reads_exactly_what_the_runs_after_from_up_to_to_read() -> None:
    states = [Bookmark()]
    batches = [[obj("a", 10_000)], [obj("b", 20_000), obj("c", 21_000)], [obj("d", 30_000)]]
    listing: list[ObjectInfo] = []
    for batch in batches:
        listing += batch
        states.append(run(listing, states[-1])[1])
    listing.append(obj("e", 40_000))  # never read: later input is excluded
    selection = select_range(listing, states[1], states[2], policy=POLICY)
    assert keys(selection) == ["b", "c"]
    assert selection.states[ObjectState.ALREADY_READ] == 1 and selection.states[ObjectState.IGNORED] == 2
    assert commit(states[3], selection) == states[3]
    assert keys(select_range(listing, Bookmark(), states[3], policy=POLICY)) == ["a", "b", "c", "d"]
    with pytest.raises(BookmarkError):
        select_range(listing, states[3], states[1], policy=POLICY)


def test_select_range_includes_a_late_object_read_inside_the_range() -> None:
    _, s1 = run([obj("a", 100_000)], Bookmark())
    listing = [obj("a", 100_000), obj("late", 5)]
    _, s2 = run(listing, s1)
    assert keys(select_range(listing, s1, s2, policy=POLICY)) == ["late"]


def test_counts_partition_the_listing() -> None:
    _, state = run([obj("a", 100_000, "v1"), obj("b", 100_001)], Bookmark())
    listing = [
        obj("a", 100_002, "v2"),
        obj("b", 100_001),
        obj("l", 3),
        obj("n1", 100_003),
        obj("n2", 100_004),
    ]
    selection = select_objects(listing, state, option="enable", policy=replace(POLICY, max_files_per_run=2))
    assert sum(selection.states.values()) == selection.listed_files == 5
    found = selection.new_files + selection.modified_files + selection.late_files + selection.already_read_files
    assert found == selection.listed_files
    assert selection.counts()["skipped_files"] == 2 and selection.counts()["manifest_files"] == 2


def test_reported_lists_are_capped_but_counts_are_complete() -> None:
    listing = [obj(f"k{i:05d}", i) for i in range(REPORT_LIMIT + 5)]
    selection = select_objects(listing, Bookmark(), option="enable", policy=replace(POLICY, max_files_per_run=1))
    assert len(selection.deferred) == REPORT_LIMIT and selection.states[ObjectState.DEFERRED] == REPORT_LIMIT + 4


# --------------------------------------------------------------------------------------------------
# The digest: deletions, overflow, band cap, compatibility


def test_a_deletion_costs_one_decode_then_the_commit_rebaselines_the_digest() -> None:
    listing = [obj(f"k{i}", i) for i in range(50)]
    _, state = run(listing, Bookmark(), replace(POLICY, max_band_files=0))
    assert state.retired_files == 50
    survivors = listing[10:]
    selection = select_objects(survivors, state, option="enable", policy=POLICY)
    assert keys(selection) == [] and selection.digest_lookups == 0
    after = commit(state, selection)
    assert after.retired_files == 40


def test_a_bare_manifest_commit_adds_without_rebaselining() -> None:
    listing = [obj(f"k{i}", i) for i in range(10)]
    state = commit(Bookmark(), listing, policy=replace(POLICY, max_band_files=0))
    state = commit(state, [obj("n", 20)], policy=replace(POLICY, max_band_files=0))
    assert state.retired_files == 11
    assert keys(select_objects([*listing[5:], obj("n", 20)], state, option="enable", policy=POLICY)) == []


def test_digest_overflow_falls_back_to_known_and_stays_exact() -> None:
    tiny = Bookmark(retired=Digest(cells=6))  # decodes almost nothing: every tick overflows
    listing = [obj(f"k{i}", 10_000 + i) for i in range(30)]
    policy = replace(POLICY, max_band_files=0)
    first, state = run(listing, tiny, policy)
    late = [obj(f"late{i}", 1) for i in range(5)]
    calls: list[int] = []
    known = history_known(first)

    def counting(candidates):
        calls.append(len(candidates))
        return known(candidates)

    selection = select_objects([*listing[10:], *late], state, option="enable", policy=policy, known=counting)
    assert sorted(keys(selection)) == sorted(o.key for o in late) and selection.late_files == 5
    assert calls and selection.digest_lookups == calls[0]
    # Without a callback the candidates count as unread: reprocessed, never skipped.
    blind = select_objects([*listing[10:], *late], state, option="enable", policy=policy)
    assert set(keys(blind)) >= {o.key for o in late}


def test_band_is_capped_and_the_rest_goes_to_the_digest() -> None:
    listing = [obj(f"k{i:03d}", 10_000 + i) for i in range(100)]
    _, state = run(listing, Bookmark(), replace(POLICY, max_band_files=10))
    assert sorted(state.band) == [f"k{i:03d}" for i in range(90, 100)] and state.retired_files == 90
    assert keys(select_objects(listing, state, option="enable", policy=POLICY)) == []


def test_state_from_before_the_digest_is_read_as_glue_reads_it_then_made_exact() -> None:
    legacy = {"watermark_ms": 20_000, "band": {"b": [19_500, "e"]}, "run_number": 3, "version": 3}
    state = Bookmark.from_dict(legacy)
    assert state.retired is None and Bookmark.from_dict(state.to_dict()) == state
    listing = [obj("a", 5_000), obj("b", 19_500), obj("c", 25_000)]
    selection = select_objects(listing, state, option="enable", policy=POLICY)
    assert keys(selection) == ["c"]  # "a" is below the band: assumed read, as Glue does
    after = commit(state, selection)
    assert after.retired is not None and after.retired_files == 2  # "a" re-baselined, "b" left the band
    assert keys(select_objects(listing, after, option="enable", policy=POLICY)) == []


def test_covers_is_exact_in_the_band_and_above_the_mark() -> None:
    _, state = run([obj("a", 5_000), obj("b", 10_000)], Bookmark())
    assert covers(state, obj("b", 10_000), POLICY) and not covers(state, obj("b", 10_000, "v2"), POLICY)
    assert not covers(state, obj("c", 10_001), POLICY)
    assert covers(state, obj("a", 5_000), POLICY) and state.covers(obj("a", 5_000), BAND)
    assert not covers(Bookmark(), obj("a", 5_000))


def test_commit_of_a_selection_planned_from_another_version_is_refused() -> None:
    listing = [obj("a", 10_000)]
    selection = select_objects(listing, Bookmark(), option="enable", policy=POLICY)
    state = commit(Bookmark(), selection)
    with pytest.raises(BookmarkError, match="version mismatch"):
        commit(state, selection)


def test_digest_round_trip_and_corruption() -> None:
    listing = [obj(f"k{i}", i, f"e{i}") for i in range(300)]
    _, state = run(listing, Bookmark(), replace(POLICY, max_band_files=3))
    data = json.loads(state.to_json())
    assert Bookmark.from_dict(data) == state and data["retired"]["files"] == 297
    for broken in (
        {**data["retired"], "data": "!!!"},
        {**data["retired"], "data": data["retired"]["data"][:-8]},
        {**data["retired"], "files": 5},
        {**data["retired"], "cells": 7},
        "nope",
    ):
        with pytest.raises(BookmarkError):
            Bookmark.from_dict({**data, "retired": broken})
    for field_name, value in (("watermark_ms", True), ("run_number", -1), ("watermark_key", 3)):
        with pytest.raises(BookmarkError):
            Bookmark.from_dict({**data, field_name: value})
    with pytest.raises(BookmarkError):
        Bookmark.from_dict({"band": {"a": [1, "e"]}})  # read objects without a watermark
    with pytest.raises(BookmarkError):
        Bookmark.from_json("[1, 2]")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"on_modified": "skip"},
        {"on_late": "drop"},
        {"max_files_per_run": 0},
        {"max_bytes_per_run": -1},
        {"max_band_ms": -5},
        {"max_band_files": -1},
    ],
)
def test_invalid_policy_raises(kwargs) -> None:
    with pytest.raises(BookmarkError):
        BookmarkPolicy(**kwargs)


def test_unknown_option_raises() -> None:
    with pytest.raises(BookmarkError):
        select_objects([], Bookmark(), option="job-bookmark-enable")


def test_hand_built_selection_commits_like_a_manifest() -> None:
    state = commit(Bookmark(), Selection(manifest=(obj("a", 10_000),)), policy=POLICY)
    assert state.band == {"a": (10_000, "e")} and state.run_number == 1


def test_a_selection_survives_json_and_commits_the_same() -> None:
    _, state = run([obj("a", 10_000, "v1"), obj("gone", 10_001)], Bookmark(), replace(POLICY, max_band_files=0))
    policy = replace(POLICY, on_modified="ignore", max_files_per_run=1)
    listing = [obj("a", 20_000, "v2"), obj("n1", 20_001), obj("n2", 20_002)]
    selection = select_objects(listing, state, option="enable", policy=policy)
    frozen = Selection.from_dict(json.loads(json.dumps(selection.to_dict())))
    assert frozen.counts() == selection.counts() and frozen.acknowledged == selection.acknowledged
    assert commit(state, frozen) == commit(state, selection)
    with pytest.raises(BookmarkError):
        Selection.from_dict({"manifest": [["a", "big", 1, "e"]]})


def test_defaults_match_glue() -> None:
    assert BookmarkPolicy().max_band_ms == DEFAULT_MAX_BAND_MS == 900_000
    assert (BookmarkPolicy().on_modified, BookmarkPolicy().on_late) == ("reprocess", "process")


# --------------------------------------------------------------------------------------------------
# Property-based proof: exactly once under random interleavings


class Staging:
    """A model of the staging location: one version per key, a monotonic-ish clock."""

    def __init__(self) -> None:
        self.objects: dict[str, ObjectInfo] = {}
        self.clock = 1_000_000
        self._ids = itertools.count()

    def put(self, key: str, lm: int, size: int) -> None:
        self.objects[key] = ObjectInfo(key=key, size=size, last_modified_ms=lm, etag=f"e{next(self._ids)}")

    def mutate(self, op: tuple[str, int, int]) -> None:
        kind, a, b = op
        existing = sorted(self.objects)
        if kind == "write":
            self.clock += b
            for _ in range(a):
                self.put(f"obj-{next(self._ids)}", self.clock, 1 + b % 7)
        elif kind == "rewrite" and existing:
            self.clock += b
            self.put(existing[a % len(existing)], self.clock, 1 + a % 5)
        elif kind == "late":  # 1-3 objects whose last-modified is far in the past (slow uploads)
            for i in range(1 + a % 3):
                self.put(f"late-{next(self._ids)}", max(0, self.clock - b - i), 1 + a % 3)
        elif kind == "delete":
            for i in range(min(1 + a % 3, len(existing))):
                self.objects.pop(existing[(a + 7 * i) % len(existing)], None)

    def listing(self) -> list[ObjectInfo]:
        return sorted(self.objects.values(), key=lambda o: o.key)

    def versions(self) -> set[tuple[str, int, str]]:
        return {(o.key, o.last_modified_ms, o.etag) for o in self.objects.values()}


MUTATIONS = st.one_of(
    st.tuples(st.just("write"), st.integers(1, 4), st.integers(0, 1_500)),
    st.tuples(st.just("rewrite"), st.integers(0, 1_000), st.integers(0, 1_500)),
    st.tuples(st.just("late"), st.integers(0, 10), st.integers(BAND, 30 * BAND)),
    st.tuples(st.just("delete"), st.integers(0, 1_000), st.just(0)),
)
RUNS = st.tuples(st.just("run"), st.sampled_from(["ok", "ok", "fail", "retry"]), st.integers(0, 3))
# Producer steps and runs interleave; runs come in bursts often enough that late objects and rewrites
# arrive after a watermark exists.
STEPS = st.lists(
    st.one_of(MUTATIONS, RUNS, st.tuples(st.just("write"), st.just(3), st.just(400))),
    min_size=12,
    max_size=60,
)
POLICIES = st.builds(
    BookmarkPolicy,
    max_band_ms=st.just(BAND),
    max_files_per_run=st.one_of(st.none(), st.integers(1, 3)),
    max_bytes_per_run=st.one_of(st.none(), st.integers(1, 12)),
    max_band_files=st.one_of(st.none(), st.integers(0, 4)),
)
CELLS = st.sampled_from([3, 12, 48, 1032])  # tiny digests overflow all the time: the fallback is tested


class Flow:
    """Output runs of one flow: select, then succeed and commit, fail before commit, or retry."""

    def __init__(self, policy: BookmarkPolicy, cells: int, use_known: bool) -> None:
        self.policy, self.use_known = policy, use_known
        self.state = Bookmark(retired=Digest(cells=cells))
        self.reads: Counter[tuple[str, int, str]] = Counter()
        self.accounted: set[tuple[str, str]] = set()  # (key, etag) of committed manifests + acknowledged
        self.max_json = 0

    def known(self, candidates):
        return {o.key for o in candidates if (o.key, o.etag) in self.accounted}

    def select(self, staging: Staging) -> Selection:
        known = self.known if self.use_known else None
        return select_objects(staging.listing(), self.state, option="enable", policy=self.policy, known=known)

    def succeed(self, selection: Selection) -> None:
        files, size, lifted = len(selection.manifest), selection.manifest_bytes, selection.digest_guessed
        assert lifted or self.policy.max_files_per_run is None or files <= self.policy.max_files_per_run
        cap = self.policy.max_bytes_per_run
        assert lifted or cap is None or size <= cap or files == 1
        self.state = commit(self.state, selection)
        self.reads.update((o.key, o.last_modified_ms, o.etag) for o in selection.manifest)
        self.accounted |= {(o.key, o.etag) for o in (*selection.manifest, *selection.acknowledged)}
        self.max_json = max(self.max_json, len(self.state.to_json()))

    def step(self, staging: Staging, outcome: str, extra: int, during) -> None:
        selection = self.select(staging)
        if outcome == "fail":
            return
        if outcome == "retry":  # the first attempt fails; the producer keeps writing; the retry commits
            for op in during[:extra]:
                staging.mutate(op)
        self.succeed(selection)

    def drain(self, staging: Staging) -> Selection:
        for _ in range(500):
            selection = self.select(staging)
            self.succeed(selection)
            if not (selection.manifest or selection.acknowledged or selection.states[ObjectState.DEFERRED]):
                return selection
        raise AssertionError("the backlog never drained")


def play(steps, policy: BookmarkPolicy, cells: int, use_known: bool) -> tuple[Staging, Flow, Selection]:
    staging, flow = Staging(), Flow(policy, cells, use_known)
    pending_mutations = [s for s in steps if s[0] != "run"]
    for step in steps:
        if step[0] == "run":
            flow.step(staging, step[1], step[2], pending_mutations)
        else:
            staging.mutate(step)
    return staging, flow, flow.drain(staging)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS, policy=POLICIES, cells=CELLS)
def test_enable_reads_every_object_version_exactly_once(steps, policy, cells) -> None:
    staging, flow, last = play(steps, policy, cells, use_known=True)
    assert all(n == 1 for n in flow.reads.values()), "a version was read by two successful runs"
    assert staging.versions() <= set(flow.reads), "a version was never read"
    assert last.listed_files == last.already_read_files
    # The multiset of output records equals the mapped input records (3 records per version).
    records_out = Counter(
        (key, etag, i) for (key, _, etag), n in flow.reads.items() for _ in range(n) for i in range(3)
    )
    records_in = Counter((key, etag, i) for key, _, etag in flow.reads for i in range(3))
    assert records_out == records_in


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS, policy=POLICIES, cells=CELLS)
def test_without_a_known_callback_nothing_is_ever_missed(steps, policy, cells) -> None:
    staging, flow, _ = play(steps, policy, cells, use_known=False)
    assert staging.versions() <= set(flow.reads)
    if cells == 1032:
        assert all(n == 1 for n in flow.reads.values())  # no overflow with a few dozen objects


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS, policy=POLICIES, on_modified=st.sampled_from(["reprocess", "ignore"]))
def test_policies_never_read_twice_and_account_for_every_version(steps, policy, on_modified) -> None:
    policy = replace(policy, on_modified=on_modified, on_late="report")
    staging, flow, last = play(steps, policy, 1032, use_known=True)
    assert all(n == 1 for n in flow.reads.values())
    unread = {(k, e) for k, _, e in staging.versions()} - {(k, e) for k, _, e in flow.reads}
    reported = {(o.key, o.etag) for o in last.ignored}
    # Every current version was read, acknowledged (an ignored rewrite) or is still reported as late.
    assert unread <= flow.accounted | reported
    if on_modified == "ignore":  # a key read once is never read again: its rewrites are acknowledged
        assert Counter(key for key, _, _ in flow.reads).most_common(1)[0][1] <= 1 if flow.reads else True
    assert last.states[ObjectState.IGNORED] == len(reported) == last.late_files


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.integers(1, 400), min_size=1, max_size=12),
    spread=st.integers(0, 5_000),
    band_files=st.integers(0, 64),
)
def test_state_size_stays_bounded_however_much_was_committed(batches, spread, band_files) -> None:
    policy = BookmarkPolicy(max_band_files=band_files)
    state, listing, clock = Bookmark(), [], 1_700_000_000_000
    for size in batches:
        for _ in range(size):
            clock += spread
            listing.append(obj(f"staging/run-{len(listing):08d}-part-r-00000.json.gz", clock, "0" * 32))
        state = commit(state, select_objects(listing, state, option="enable", policy=policy))
    assert len(state.band) <= band_files
    assert state.retired_files + len(state.band) == len(listing)
    # Digest: at most 1032 cells of 26 bytes, base64; band: at most band_files entries of ~100 bytes.
    assert len(state.to_json()) <= 4 * (1032 * 26 + 2) // 3 + 300 + band_files * 110

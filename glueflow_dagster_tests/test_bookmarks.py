"""Bookmark selection and commit: Glue's high-water mark plus the consistency band."""

import pytest

from glueflow_dagster.bookmarks import Bookmark, BookmarkError, commit, select_objects
from glueflow_dagster.storage import ObjectInfo

BAND = 1_000


def obj(key: str, lm: int, etag: str = "e", size: int = 10) -> ObjectInfo:
    return ObjectInfo(key=key, size=size, last_modified_ms=lm, etag=etag)


def keys(selection) -> list[str]:
    return [o.key for o in selection.manifest]


def test_disable_reads_everything_even_with_a_bookmark() -> None:
    listing = [obj("a", 10), obj("b", 20)]
    state = commit(Bookmark(), listing, max_band_ms=BAND)
    assert keys(select_objects(listing, state, option="disable", max_band_ms=BAND)) == ["a", "b"]


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
    assert keys(select_objects(listing, state, option="enable", max_band_ms=BAND)) == ["a"]


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

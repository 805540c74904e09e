"""The guide's flow ratio per Input trigger window, and which Input run produced each staging object."""

from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glueflow_dagster.core.flow_accounting import (
    BEFORE_FIRST_WINDOW,
    NO_WINDOW,
    InputRun,
    OutputRun,
    Slot,
    Window,
    bytes_by_input_run,
    flow_slots,
    parse_bytes_by_input_run,
    producing_run_id,
    total_bytes_read,
    total_bytes_written,
    windows,
)
from glueflow_dagster.core.storage import ObjectInfo

MB = 1_000_000


def at(hhmm: str) -> float:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(2024, 5, 1, hours, minutes, tzinfo=UTC).timestamp()


def inputs(*rows: tuple[str, str, int]) -> list[InputRun]:
    return [InputRun(f"in{i}", at(start), at(end), size) for i, (start, end, size) in enumerate(rows, 1)]


def outputs(*rows: tuple[str, str, int]) -> list[OutputRun]:
    return [OutputRun(f"out{i}", at(start), at(end), size) for i, (start, end, size) in enumerate(rows, 1)]


# The guide's story with bookmarks off: Input every 30 min; Output after each Input success; the third
# Input run has a long tail, so the third Output run starts late (13:17) and overlaps the fourth Input
# run; the fourth Output run is the longest and overlaps the whole fifth Input run.
GUIDE_INPUTS = inputs(
    ("12:00", "12:07", 120 * MB),
    ("12:30", "12:36", 80 * MB),
    ("13:00", "13:16", 120 * MB),
    ("13:30", "13:36", 80 * MB),
    ("14:00", "14:06", 100 * MB),
)
GUIDE_OUTPUTS = outputs(
    ("12:08", "12:14", 120 * MB),
    ("12:37", "12:48", 200 * MB),
    ("13:17", "13:41", 100 * MB),
    ("13:42", "14:20", 220 * MB),
    ("14:21", "14:35", 120 * MB),
)


def test_the_guides_windows_and_ratios() -> None:
    result = windows(GUIDE_INPUTS, GUIDE_OUTPUTS, period_s=1800)
    assert [(w.input_run_id, w.input_bytes_written, w.output_bytes_read) for w in result] == [
        ("in1", 120 * MB, 120 * MB),
        ("in2", 80 * MB, 200 * MB),
        ("in3", 120 * MB, 100 * MB),
        ("in4", 80 * MB, 220 * MB),
        ("in5", 100 * MB, 120 * MB),
    ]
    assert [w.ratio for w in result] == pytest.approx([1.0, 2.5, 0.8333, 2.75, 1.2], abs=1e-4)
    assert [(w.start_s, w.end_s) for w in result] == [
        (at("12:00"), at("12:30")),
        (at("12:30"), at("13:00")),
        (at("13:00"), at("13:30")),
        (at("13:30"), at("14:00")),
        (at("14:00"), at("14:30")),  # the last window: start + period
    ]


@pytest.mark.parametrize(
    ("case", "input_runs", "output_runs", "period_s", "expected"),
    [
        ("no Input run: no window", [], outputs(("12:05", "12:06", 5)), 1800, []),
        (
            "an Output run before the first Input run belongs to no window",
            inputs(("12:00", "12:01", 100)),
            outputs(("11:59", "12:02", 999), ("12:02", "12:03", 100)),
            1800,
            [("in1", 100, 100, 1.0)],
        ),
        (
            "an Output run starting exactly at the next Input start counts for the next window",
            inputs(("12:00", "12:01", 100), ("12:30", "12:31", 50)),
            outputs(("12:30", "12:40", 100)),
            1800,
            [("in1", 100, 0, None), ("in2", 50, 100, 2.0)],  # nothing read in the first: n/a
        ),
        (
            "Output runs that started in one window add up",
            inputs(("12:00", "12:01", 100)),
            outputs(("12:02", "12:03", 60), ("12:10", "12:11", 40), ("12:20", "12:40", 150)),
            1800,
            [("in1", 100, 250, 2.5)],
        ),
        (
            "the last window closes after the period",
            inputs(("12:00", "12:01", 100)),
            outputs(("12:02", "12:03", 100), ("12:30", "12:31", 70)),
            1800,
            [("in1", 100, 100, 1.0)],
        ),
        (
            "period None: the last window stays open",
            inputs(("12:00", "12:01", 100)),
            outputs(("12:02", "12:03", 100), ("15:30", "15:31", 70)),
            None,
            [("in1", 100, 170, 1.7)],
        ),
        (
            "nothing written, nothing read: n/a, not balanced",
            inputs(("12:00", "12:01", 0)),
            [],
            1800,
            [("in1", 0, 0, None)],
        ),
        (
            "nothing written but something read: undefined",
            inputs(("12:00", "12:01", 0)),
            outputs(("12:02", "12:03", 10)),
            1800,
            [("in1", 0, 10, None)],
        ),
        (
            "Input runs are taken in start order, whatever order they come in",
            list(reversed(inputs(("12:00", "12:01", 100), ("12:30", "12:31", 200)))),
            outputs(("12:31", "12:35", 300), ("12:02", "12:03", 50)),
            1800,
            [("in1", 100, 50, 0.5), ("in2", 200, 300, 1.5)],
        ),
    ],
)
def test_windows(
    case: str,
    input_runs: list[InputRun],
    output_runs: list[OutputRun],
    period_s: float | None,
    expected: list[tuple[str, int, int, float | None]],
) -> None:
    result = windows(input_runs, output_runs, period_s)
    assert [(w.input_run_id, w.input_bytes_written, w.output_bytes_read, w.ratio) for w in result] == expected


def test_window_bounds_and_open_last_window() -> None:
    result = windows(inputs(("12:00", "12:01", 1), ("12:30", "12:31", 1)), [], period_s=None)
    assert result == [
        Window(at("12:00"), at("12:30"), "in1", 1, 0, None),
        Window(at("12:30"), None, "in2", 1, 0, None),
    ]
    assert result[0].contains(at("12:00")) and not result[0].contains(at("12:30"))
    assert result[1].contains(at("23:59"))


@pytest.mark.parametrize("period_s", [0, -1800])
def test_a_period_must_be_positive(period_s: float) -> None:
    with pytest.raises(ValueError, match="period_s"):
        windows([], [], period_s)


def _slot_rows(slots: list[Slot]) -> list[tuple[str, list[str], int, int]]:
    return [
        (slot.window.input_run_id if slot.window else slot.outside, [r.run_id for r in slot.output_runs],
         slot.input_bytes_written, slot.output_bytes_read)
        for slot in slots
    ]  # fmt: skip


def test_output_runs_outside_every_window_get_labelled_slots_so_the_totals_add_up() -> None:
    """`glueflow simulate --bookmarks disable`'s case: the last window closes after the period, and the Output
    runs that start later are in a "no window" slot; one that started before the first Input run is first."""
    input_runs = inputs(("12:00", "12:10", 100), ("12:30", "12:40", 100))
    output_runs = outputs(
        ("11:50", "11:55", 7), ("12:10", "12:20", 100), ("13:10", "13:20", 200), ("14:00", "14:05", 200)
    )  # fmt: skip
    slots = flow_slots(input_runs, output_runs, period_s=1800)
    assert _slot_rows(slots) == [
        (BEFORE_FIRST_WINDOW, ["out1"], 0, 7),
        ("in1", ["out2"], 100, 100),
        ("in2", [], 100, 0),
        (NO_WINDOW, ["out3", "out4"], 0, 400),
    ]
    assert [slot.window for slot in slots if slot.window] == windows(input_runs, output_runs, 1800)
    assert [slot.ratio for slot in slots] == [None, 1.0, None, None]  # n/a: nothing read, and outside windows
    assert (total_bytes_written(slots), total_bytes_read(slots)) == (200, 507)


def test_an_output_run_recording_a_window_no_longer_in_the_history_is_in_no_window() -> None:
    input_runs = inputs(("12:00", "12:10", 100))
    recorded = OutputRun("late", at("12:20"), at("12:21"), 50, window_input_run_id="an-older-input-run")
    slots = flow_slots(input_runs, [recorded, *outputs(("12:11", "12:12", 100))], period_s=None)
    assert _slot_rows(slots) == [("in1", ["out1"], 100, 100), (NO_WINDOW, ["late"], 0, 50)]
    assert flow_slots([], [recorded], period_s=None) == [Slot(None, (recorded,), NO_WINDOW)]  # no Input run yet
    assert flow_slots([], [], period_s=None) == []


_MINUTE = 60.0


@st.composite
def _histories(draw: st.DrawFn) -> tuple[list[InputRun], list[OutputRun], float | None]:
    """Arbitrary run histories: Input runs at any minutes (ties too), Output runs before, inside, between
    and after them, some recording a window (an Input run of the history or one that is not in it)."""
    noon = at("12:00")
    input_runs = [
        InputRun(f"in{i}", noon + start * _MINUTE, noon + (start + 5) * _MINUTE, draw(st.integers(0, 10**9)))
        for i, start in enumerate(draw(st.lists(st.integers(0, 300), max_size=8)))
    ]
    known = [run.run_id for run in input_runs] or ["gone"]
    recorded_choices = st.one_of(st.none(), st.just("gone"), st.sampled_from(known))
    output_runs = [
        OutputRun(
            f"out{i}",
            noon + start * _MINUTE,
            noon + (start + 3) * _MINUTE,
            draw(st.integers(0, 10**9)),
            window_input_run_id=draw(recorded_choices),
        )
        for i, start in enumerate(draw(st.lists(st.integers(-60, 420), max_size=10)))
    ]
    period = draw(st.one_of(st.none(), st.integers(1, 120).map(lambda minutes: minutes * _MINUTE)))
    return input_runs, output_runs, period


@settings(max_examples=300, deadline=None)
@given(_histories())
def test_the_slots_of_any_history_hold_every_run_once_and_add_up_to_the_totals(
    history: tuple[list[InputRun], list[OutputRun], float | None],
) -> None:
    input_runs, output_runs, period_s = history
    slots = flow_slots(input_runs, output_runs, period_s)
    # Every Output run in exactly one slot, every Input run's window once: nothing left out, nothing twice.
    assert Counter(r.run_id for slot in slots for r in slot.output_runs) == Counter(r.run_id for r in output_runs)
    assert [slot.window for slot in slots if slot.window is not None] == windows(input_runs, output_runs, period_s)
    assert total_bytes_written(slots) == sum(run.bytes_written for run in input_runs)
    assert total_bytes_read(slots) == sum(run.bytes_read for run in output_runs)
    for slot in slots:
        if slot.window is not None:
            assert slot.output_bytes_read == slot.window.output_bytes_read and slot.outside == ""
        else:  # labelled, never empty, no ratio
            assert slot.outside in (BEFORE_FIRST_WINDOW, NO_WINDOW) and slot.output_runs and slot.ratio is None
    # The labelled slots sit before and after the windows.
    labels = [slot.outside for slot in slots]
    assert labels.count(BEFORE_FIRST_WINDOW) <= 1 and labels.count(NO_WINDOW) <= 1
    assert BEFORE_FIRST_WINDOW not in labels[1:] and NO_WINDOW not in labels[:-1]
    first_start = min((run.start_s for run in input_runs), default=None)
    for slot in slots:
        if slot.outside == BEFORE_FIRST_WINDOW:
            assert first_start is not None and all(run.start_s < first_start for run in slot.output_runs)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            "run-4f3c2a1e-8b7d-4c6e-9f0a-1b2c3d4e5f60-part-r-00000.json.gz",
            "4f3c2a1e-8b7d-4c6e-9f0a-1b2c3d4e5f60",
        ),
        ("run-1714564800000-part-r-00003", "1714564800000"),  # Glue's own epoch-millisecond names
        ("batch=0/run-abc-part-r-00012.json", "abc"),
        ("run-4f3c2a1e-8b7d-4c6e-attempt-2-part-r-00001.json.gz", "4f3c2a1e-8b7d-4c6e"),
        ("a/run-x-y-attempt-1-part-r-00000.json", "x-y"),
        ("a/b/run-x-y-part-r-00000.json", "x-y"),
        ("part-r-00000.json", None),
        ("run--part-r-00000.json", None),
        ("run-abc-part-r-.json", None),
        ("xrun-abc-part-r-00000.json", None),
        ("run-abc-part-r-00000.json/other.json", None),
        ("run-abc.json", None),
    ],
)
def test_producing_run_id(key: str, expected: str | None) -> None:
    assert producing_run_id(key) == expected


def test_bytes_by_input_run_sums_per_producing_run_and_skips_other_names() -> None:
    objects = [
        ObjectInfo("run-aaaa-1111-part-r-00000.json.gz", 100, 0, "e"),
        ObjectInfo("run-bbbb-2222-part-r-00000.json.gz", 40, 0, "e"),
        ObjectInfo("run-aaaa-1111-part-r-00001.json.gz", 25, 0, "e"),
        ObjectInfo("_SUCCESS", 0, 0, "e"),
        ObjectInfo("notes.txt", 7, 0, "e"),
    ]
    assert bytes_by_input_run(objects) == {"aaaa-1111": 125, "bbbb-2222": 40}
    assert bytes_by_input_run([]) == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": 1, "b": "2"}, {"a": 1, "b": 2}),
        (
            [{"run_id": "a", "bytes": 1}, {"run_id": "a", "bytes": 2}, {"run_id": "b", "bytes": 5}],
            {"a": 3, "b": 5},
        ),
        (None, {}),
        ("not a mapping", {}),
    ],
)
def test_parse_bytes_by_input_run(value: object, expected: dict[str, int]) -> None:
    assert parse_bytes_by_input_run(value) == expected

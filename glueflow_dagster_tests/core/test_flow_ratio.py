import pytest

from glueflow_dagster.core.flow_ratio import flow_ratio


@pytest.mark.parametrize(
    ("read", "written", "expected"),
    [(100, 100, 1.0), (250, 100, 2.5), (83, 100, 0.83), (1, 4, 0.25)],
)
def test_flow_ratio_is_bytes_read_over_bytes_written(read: int, written: int, expected: float) -> None:
    assert flow_ratio(read, written) == expected


@pytest.mark.parametrize(
    ("case", "read", "written"),
    [
        ("nothing written, nothing read: not a balanced 1.00", 0, 0),
        ("written but nothing read yet: not 0.00", 0, 100),
        ("read with nothing written", 5, 0),
    ],
)
def test_a_window_with_nothing_to_compare_has_no_ratio(case: str, read: int, written: int) -> None:
    assert flow_ratio(read, written) is None, case

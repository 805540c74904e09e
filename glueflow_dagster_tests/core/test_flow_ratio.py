import pytest

from glueflow_dagster.core.flow_ratio import flow_ratio


@pytest.mark.parametrize(
    ("read", "written", "expected"),
    [(100, 100, 1.0), (250, 100, 2.5), (83, 100, 0.83), (0, 100, 0.0), (0, 0, 1.0), (5, 0, None)],
)
def test_flow_ratio_is_bytes_read_over_bytes_written(read: int, written: int, expected: float | None) -> None:
    assert flow_ratio(read, written) == expected

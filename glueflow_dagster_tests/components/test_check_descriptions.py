"""The checks' descriptions read right beside a passing check: the condition that passes, then the failure."""

from glueflow_dagster.components.assets import CHECK_DESCRIPTIONS
from glueflow_dagster.core.checks import evaluate


def test_every_check_has_a_description_worded_as_what_passes() -> None:
    names = {verdict.name for verdict in evaluate({}, [], (0.5, 2.0))}
    assert set(CHECK_DESCRIPTIONS) == names
    for name, text in CHECK_DESCRIPTIONS.items():
        assert text.startswith("Passes "), (name, text)
        assert not text.startswith(("WARN", "ERROR")), (name, text)
        assert "(" in text and text.endswith(").")  # the failure condition, in parentheses

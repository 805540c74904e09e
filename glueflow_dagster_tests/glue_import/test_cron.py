"""Glue cron -> five-field cron: converted where an equivalent exists, refused in one line otherwise."""

from __future__ import annotations

import pytest
from dagster._utils.schedules import is_valid_cron_string

from glueflow_dagster.glue_import import GlueCronError, glue_cron_to_dagster

# --- Glue cron -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glue", "cron"),
    [
        ("cron(0/30 * * * ? *)", "*/30 * * * *"),
        ("cron(15 12 * * ? *)", "15 12 * * *"),
        ("cron(5/10 * * * ? *)", "5-59/10 * * * *"),
        ("cron(0 8 ? * MON-FRI *)", "0 8 * * 1-5"),
        ("cron(0 18 ? * 2-6 *)", "0 18 * * 1-5"),  # Glue's 1-7 is SUN-SAT; cron's is 0-6
        ("cron(0 0 ? * 1,7 *)", "0 0 * * 0,6"),
        ("cron(0 10 1/5 * ? *)", "0 10 */5 * *"),
        ("cron(30 6 1 JAN,JUL ? *)", "30 6 1 1,7 *"),
    ],
)
def test_glue_cron_converts_to_five_fields(glue: str, cron: str) -> None:
    assert glue_cron_to_dagster(glue) == cron
    assert is_valid_cron_string(cron)


@pytest.mark.parametrize(
    ("glue", "reason"),
    [
        ("cron(0 12 L * ? *)", "uses L/W/#"),
        ("cron(0 12 15W * ? *)", "uses L/W/#"),
        ("cron(0 12 ? * 6#3 *)", "uses L/W/#"),
        ("cron(0 12 ? * 6L *)", "uses L/W/#"),
        ("cron(0 12 * * ? 2027)", "Year field '2027'"),
        ("cron(0 12 * * ?)", "6 fields"),
        ("rate(5 minutes)", "not a Glue cron"),
        ("cron(61 * * * ? *)", "not in 0-59"),
    ],
)
def test_glue_cron_without_a_five_field_equivalent_is_refused_in_one_line(glue: str, reason: str) -> None:
    with pytest.raises(GlueCronError) as caught:
        glue_cron_to_dagster(glue)
    assert reason in str(caught.value) and "\n" not in str(caught.value)

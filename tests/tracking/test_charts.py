"""Charts compute coordinates and labels; these check what a reader of the chart relies on."""

from datetime import date, timedelta

import pytest

from migrations_audit.tracking.charts import versions_chart


@pytest.mark.parametrize("days", [1, 5, 14, 15, 30, 90])
def test_the_last_bar_always_has_its_date_and_about_six_are_labelled(days):
    first = date(2026, 11, 1)
    rows = [{"day": first + timedelta(days=i), "versions": {"2023-06-01": i + 1}} for i in range(days)]
    chart = versions_chart(days=rows, target_version="2026-10-21")
    labels = [tick["label"] for tick in chart["ticks"]]
    assert labels[-1] == (first + timedelta(days=days - 1)).isoformat()[5:]
    assert 1 <= len(labels) <= 8

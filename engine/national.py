"""England's published share of new EHC plans issued within 20 weeks, by calendar year, for the
reports to compare a council with (docs/reports.md).

From the Department for Education's "Education, health and care plans" statistics
(explore-education-statistics.service.gov.uk). A release called "Reporting year N" covers plans
issued in calendar year N-1:

- 2015 to 2021: Reporting year 2022, ``sen2_mi.csv`` (``IncExc20weekRate``, ``NoExc20weekRate``),
  the England row.
- 2019 to 2024: Reporting year 2025, ``timeliness_20_week.csv``
  (``pc_plans_issued_within_20_weeks``, ``PC_plans_issued_20_weeks_ex``).
- 2025: Reporting year 2026, the same data set.

The collection became person-level for 2022, and the Department warns of a break in the series
there; 2022 was first published as 50.7% excluding exceptions and later revised to 49.2%, which
is the figure here. Check a new year's figure against the Department's release before adding it.
"""

from __future__ import annotations

# calendar year -> (% including exceptions, % excluding exceptions)
WITHIN_20_WEEKS: dict[int, tuple[float, float]] = {
    2015: (54.6, 59.2),
    2016: (55.7, 58.6),
    2017: (61.3, 64.9),
    2018: (58.0, 60.1),
    2019: (58.7, 60.4),
    2020: (55.6, 58.0),
    2021: (57.9, 59.9),
    2022: (47.7, 49.2),
    2023: (49.1, 50.3),
    2024: (45.9, 46.4),
    2025: (45.5, 46.1),
}


def latest(before: int | None = None) -> tuple[int, float, float] | None:
    """The latest year published (before ``before``, if given): (year, including, excluding)."""
    years = [y for y in WITHIN_20_WEEKS if before is None or y < before]
    if not years:
        return None
    year = max(years)
    return (year, *WITHIN_20_WEEKS[year])

"""The charts of the reports (engine.reports), for the web's Reports page and `ehcp report --chart`:
each is a picture of a table shown beside it, never the only place a figure is."""

from __future__ import annotations

from ..charts import bar_chart
from ..config import ReportSettings
from ..reports import Timeliness


def timeliness_charts(found: Timeliness, settings: ReportSettings) -> list[str]:
    national = (
        (f"{settings.national_label}", settings.national_percent) if settings.national_percent is not None else None
    )
    by_month = [(m["month"], m["percent"]) for m in found.by_month]
    charts = [
        bar_chart(
            "New plans within 20 weeks, by month issued",
            "The share of new EHC plans issued within 20 weeks of the request, for each month, including "
            "exceptions" + (f"; the line is {national[0]}'s share" if national else "") + ". The table beside it "
            "gives the same figures.",
            by_month or [("none issued", None)],
            unit="%",
            top=100,
            reference=national,
            chart_id="chart-months",
        ),
        bar_chart(
            "Weeks from request to plan",
            "How many new plans took each number of weeks from the request to the final plan. The table beside "
            "it gives the same figures.",
            [(f"{band} weeks", float(n)) for band, n in found.bands],
            chart_id="chart-weeks",
        ),
        bar_chart(
            "Where the weeks go: median days in each stage",
            "The median number of days the new plans spent in each stage of the assessment. The table beside it "
            "gives the same figures.",
            [(s["words"], float(s["median_days"])) for s in found.stages] or [("no plans", None)],
            unit=" days",
            chart_id="chart-stages",
        ),
    ]
    return charts

"""The charts of the reports (engine.reports, engine.outlook), for the web's Reports pages and
`ehcp report ... --chart`: each is a picture of a table shown beside it, never the only place a
figure is."""

from __future__ import annotations

from datetime import date

from .. import national
from ..charts import bar_chart, grouped_bar_chart
from ..config import ReportSettings
from ..outlook import AtRisk, Forecast
from ..reports import Timeliness


def comparison(settings: ReportSettings, until: date) -> tuple[str, float] | None:
    """The figure the monthly chart is drawn against: the configured one, or England's latest year
    published up to ``until`` (including exceptions, as the monthly bars are)."""
    if settings.national_percent is not None:
        return (settings.national_label, settings.national_percent)
    found = national.latest(before=until.year + 1)
    return (f"England {found[0]}", found[1]) if found else None


def timeliness_charts(found: Timeliness, settings: ReportSettings) -> list[str]:
    line = comparison(settings, found.until)
    by_month = [(m["month"], m["percent"]) for m in found.by_month]
    years = found.by_year
    return [
        bar_chart(
            "New plans within 20 weeks, by month issued",
            "The share of new EHC plans issued within 20 weeks of the request, for each month, including "
            "exceptions" + (f"; the line is {line[0]}'s share, including exceptions" if line else "") + ". The "
            "table beside it gives the same figures.",
            by_month or [("none issued", None)],
            unit="%",
            top=100,
            reference=line,
            chart_id="chart-months",
        ),
        grouped_bar_chart(
            "New plans within 20 weeks, by year, beside England",
            "For each calendar year, the share of this council's new EHC plans issued within 20 weeks, "
            "including exceptions, beside England's published share for the same year. The table beside it "
            "gives the same figures.",
            [str(y["year"]) for y in years] or ["none issued"],
            [
                ("This council", [y["percent"] for y in years] or [None]),
                ("England", [y["england"] for y in years] or [None]),
            ],
            unit="%",
            top=100,
            chart_id="chart-years",
        ),  # fmt: skip
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


def forecast_charts(found: Forecast) -> list[str]:
    return [
        bar_chart(
            "Work falling due, by week",
            "How many council time limits, annual reviews, phase transfers and advice requests fall due in each "
            "of the next weeks. The table beside it gives the same figures, by kind.",
            [(f"w/c {week_label(w)}", float(row["total"])) for w, row in zip(found.weeks, found.by_week, strict=True)],
            chart_id="chart-forecast",
        ),
        grouped_bar_chart(
            "Annual reviews at the current pace, by team",
            "For each team, the annual reviews due in the next weeks or overdue now, beside those that will be "
            "late if the team goes on holding reviews at the pace of the last 12 weeks. The table beside it "
            "gives the same figures.",
            [r["team"] for r in found.reviews] or ["no reviews"],
            [
                ("Due or overdue", [float(r["due_in_period"] + r["overdue_now"]) for r in found.reviews] or [None]),
                ("Late at this pace", [float(r["late_at_this_pace"]) for r in found.reviews] or [None]),
            ],
            chart_id="chart-pace",
        ),  # fmt: skip
    ]


BY_WEEKS_LEFT = (("this week", 0, 6), ("1 to 2 weeks", 7, 20), ("3 to 4 weeks", 21, 34), ("5 to 8 weeks", 35, 62),
                 ("later", 63, 10**6))  # fmt: skip


def at_risk_charts(found: AtRisk) -> list[str]:
    flagged = found.flagged
    return [
        bar_chart(
            "Time limits at risk, by time left",
            f"How many open time limits have a {found.threshold}% or greater chance of being missed, by how long "
            "is left until they are due. The table beside it lists each one.",
            [
                (words, float(sum(1 for r in flagged if low <= r["days_left"] <= high)))
                for words, low, high in BY_WEEKS_LEFT
            ],
            chart_id="chart-at-risk",
        ),  # fmt: skip
    ]


def week_label(monday: date) -> str:
    return f"{monday.day} {monday.strftime('%b %Y')}"

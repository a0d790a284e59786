"""Timeliness from the record: what the history and the deadline rows say happened, counted as the
Department for Education counts it (docs/reports.md).

- **New plans within 20 weeks** (the published measure): every EHC needs assessment whose final plan
  was issued in the period, and the share issued by its last day; then the same without the cases
  with an exception recorded, which leave both the count and the share ("excluding exceptions").
- **Weeks taken**: from the day the request was received (the limit's first day) to the day the plan
  was issued; the median, and how many fell in each band.
- **Where the weeks go**: the days each of those assessments spent in each stage (each state of the
  workflow, from the step that entered it to the step that left it), and the median of each.
- **Every other time limit** the council must keep, closed in the period: how many on time, late,
  and late with an exception; the title and the law are the deadline's own, from its workflow file.
- **Advice by adviser**: each advice request answered in the period, on time or not (reg 8(1)).

Everything is by team and caseworker too (the case's caseworker now). A report reads only the cases
its reader may see (``visible``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from . import national
from .store.repository import as_date

if TYPE_CHECKING:
    from .app import App

NEW_PLANS = ("needs_assessment", "final_plan")  # the limit the published measure counts
# Weeks taken, in bands: (words, more than, up to). "16 to 20" is more than 15 weeks and up to 20.
BANDS = (
    ("up to 10", -1.0, 10.0),
    ("11 to 15", 10.0, 15.0),
    ("16 to 20", 15.0, 20.0),
    ("21 to 25", 20.0, 25.0),
    ("26 to 30", 25.0, 30.0),
    ("31 to 40", 30.0, 40.0),
    ("over 40", 40.0, float("inf")),
)


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


@dataclass
class Share:
    """How many, how many on time, and the share."""

    count: int = 0
    on_time: int = 0

    @property
    def percent(self) -> float | None:
        return _pct(self.on_time, self.count)

    def add(self, on_time: bool) -> None:
        self.count += 1
        self.on_time += on_time

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "on_time": self.on_time, "percent": self.percent}


@dataclass
class Timeliness:
    since: date
    until: date
    all_plans: Share = field(default_factory=Share)
    excluding_exceptions: Share = field(default_factory=Share)
    with_exception: int = 0
    weeks: list[float] = field(default_factory=list)
    bands: list[tuple[str, int]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    by_month: list[dict[str, Any]] = field(default_factory=list)
    by_year: list[dict[str, Any]] = field(default_factory=list)  # calendar years, beside England's
    by_team: list[dict[str, Any]] = field(default_factory=list)
    by_caseworker: list[dict[str, Any]] = field(default_factory=list)
    limits: list[dict[str, Any]] = field(default_factory=list)
    advice: list[dict[str, Any]] = field(default_factory=list)

    @property
    def median_weeks(self) -> float | None:
        return round(statistics.median(self.weeks), 1) if self.weeks else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.since.isoformat(),
            "to": self.until.isoformat(),
            "new_plans": {
                "issued": self.all_plans.count,
                "within_20_weeks": self.all_plans.on_time,
                "percent": self.all_plans.percent,
                "with_exception": self.with_exception,
                "excluding_exceptions": self.excluding_exceptions.as_dict(),
                "median_weeks": self.median_weeks,
                "weeks_bands": [{"weeks": b, "plans": n} for b, n in self.bands],
            },
            "stages": self.stages,
            "by_month": self.by_month,
            "by_year": self.by_year,
            "by_team": self.by_team,
            "by_caseworker": self.by_caseworker,
            "limits": self.limits,
            "advice": self.advice,
        }


def timeliness(core: App, since: date, until: date, visible: Callable[[str | None], bool] | None = None) -> Timeliness:
    """The timeliness report for limits closed from ``since`` to ``until`` (both included)."""
    seen = visible or (lambda _caseworker: True)
    report = Timeliness(since, until)
    directory = core.directory
    with core.store.unit() as unit:
        rows = unit.fetch(
            "SELECT d.instance_id, d.case_id, i.workflow, d.name, d.title, d.source, d.starts_on, d.due_on, "
            "d.closed_on, d.status, d.exception_head, c.caseworker FROM deadline d "
            "JOIN workflow_instance i ON i.id = d.instance_id JOIN ehc_case c ON c.id = d.case_id "
            "WHERE d.status IN ('met', 'breached') AND d.closed_on IS NOT NULL AND d.closed_on >= :since "
            "AND d.closed_on <= :until AND d.party = 'council' ORDER BY d.closed_on, d.id",
            {"since": since, "until": until},
        )
        rows = [r for r in rows if seen(r[11])]
        plans = [r for r in rows if (r[2], r[3]) == NEW_PLANS]
        history = _history(unit, sorted({r[0] for r in plans}))
        advice = unit.fetch(
            "SELECT a.requested_on, a.due_on, a.received_on, t.role, c.caseworker FROM advice_request a "
            "JOIN contact t ON t.id = a.contact_id JOIN ehc_case c ON c.id = a.case_id "
            "WHERE a.received_on IS NOT NULL AND a.received_on >= :since AND a.received_on <= :until",
            {"since": since, "until": until},
        )
    months: dict[str, Share] = {}
    years: dict[int, tuple[Share, Share]] = {}
    teams: dict[str, Share] = {}
    workers: dict[str, Share] = {}
    for r in plans:
        starts, due, closed = as_date(r[6]), as_date(r[7]), as_date(r[8])
        on_time = closed <= due
        report.all_plans.add(on_time)
        if r[10] is None:
            report.excluding_exceptions.add(on_time)
        else:
            report.with_exception += 1
        report.weeks.append((closed - starts).days / 7)
        months.setdefault(closed.strftime("%Y-%m"), Share()).add(on_time)
        year = years.setdefault(closed.year, (Share(), Share()))
        year[0].add(on_time)
        if r[10] is None:
            year[1].add(on_time)
        holder = directory.find(r[11]) if r[11] else None
        teams.setdefault(_team(directory, holder), Share()).add(on_time)
        workers.setdefault(holder.id if holder else (r[11] or "Not allocated"), Share()).add(on_time)
    report.bands = [(words, sum(1 for w in report.weeks if low < w <= high)) for words, low, high in BANDS]
    report.by_month = [{"month": m, **s.as_dict()} for m, s in sorted(months.items())]
    report.by_year = [
        {"year": y, **a.as_dict(), "percent_excluding_exceptions": b.percent,
         "england": national.WITHIN_20_WEEKS.get(y, (None, None))[0],
         "england_excluding_exceptions": national.WITHIN_20_WEEKS.get(y, (None, None))[1]}
        for y, (a, b) in sorted(years.items())
    ]  # fmt: skip
    report.by_team = [{"team": t, **s.as_dict()} for t, s in sorted(teams.items())]
    report.by_caseworker = [{"caseworker": w, **s.as_dict()} for w, s in sorted(workers.items())]
    report.stages = _stages(core, history)
    report.limits = _limits(rows)
    report.advice = _advice([a for a in advice if seen(a[4])])
    return report


def _team(directory: Any, holder: Any) -> str:
    """A team in words: its manager's ("Morgan Demo's team"), as config.yaml's managers make teams."""
    if holder is None:
        return "Not allocated"
    team = holder.team_name()
    manager = directory.member(team)
    return f"{manager.name}'s team" if manager is not None else team


def _history(unit: Any, instances: list[int]) -> dict[int, list[tuple[date, str | None, str]]]:
    """Each instance's changes of state, in order: (date, from, to)."""
    found: dict[int, list[tuple[date, str | None, str]]] = {}
    for start in range(0, len(instances), 500):
        chunk = instances[start : start + 500]
        marks = ", ".join(f":i{n}" for n in range(len(chunk)))
        for iid, on, before, after in unit.fetch(
            f"SELECT instance_id, occurred_on, from_state, to_state FROM history WHERE instance_id IN ({marks}) "
            "ORDER BY instance_id, seq",
            {f"i{n}": v for n, v in enumerate(chunk)},
        ):
            if before != after:
                found.setdefault(iid, []).append((as_date(on), before, after))
    return found


def _stages(core: App, history: dict[int, list[tuple[date, str | None, str]]]) -> list[dict[str, Any]]:
    """The days spent in each state before the plan was issued, over the assessments counted."""
    days: dict[str, list[int]] = {}
    order: list[str] = []
    for changes in history.values():
        for (entered, _before, state), (left, _b, _a) in zip(changes, changes[1:], strict=False):
            if state not in days:
                order.append(state)
            days.setdefault(state, []).append((left - entered).days)
    definition = core.catalogue.latest(NEW_PLANS[0])
    out = []
    for state in sorted(order, key=lambda s: list(definition.states).index(s) if s in definition.states else 99):
        values = days[state]
        out.append(
            {
                "stage": state,
                "words": state.replace("_", " ").capitalize(),
                "assessments": len(values),
                "median_days": statistics.median(values),
                "longest_days": max(values),
            }
        )
    return out


def _limits(rows: list[Any]) -> list[dict[str, Any]]:
    """Each of the council's limits closed in the period: on time, late, late with an exception."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        entry = found.setdefault(
            (r[2], r[3]),
            {"workflow": r[2], "deadline": r[3], "title": r[4], "source": r[5], "closed": 0, "on_time": 0,
             "late": 0, "late_with_exception": 0},
        )  # fmt: skip
        entry["closed"] += 1
        if as_date(r[8]) <= as_date(r[7]):
            entry["on_time"] += 1
        elif r[10] is not None:
            entry["late_with_exception"] += 1
        else:
            entry["late"] += 1
    out = sorted(found.values(), key=lambda e: (e["workflow"], e["deadline"]))
    for e in out:
        e["percent"] = _pct(e["on_time"], e["closed"])
    return out


def _advice(rows: list[Any]) -> list[dict[str, Any]]:
    by_role: dict[str, list[tuple[int, bool]]] = {}
    for requested, due, received, role, _caseworker in rows:
        got = as_date(received)
        by_role.setdefault(role, []).append(((got - as_date(requested)).days, got <= as_date(due)))
    return [
        {"adviser": role, "words": role.replace("_", " ").capitalize(), "answered": len(v),
         "on_time": sum(ok for _, ok in v), "percent": _pct(sum(ok for _, ok in v), len(v)),
         "median_days": statistics.median(d for d, _ in v)}
        for role, v in sorted(by_role.items())
    ]  # fmt: skip

"""What is coming: the time limits at risk of being missed, and the work falling due in the next
weeks (docs/reports.md, "At risk" and "Workload forecast").

The shell around ``engine.risk``: it reads the deadline rows and the history, asks the model, and
gives plain rows for the command line, the JSON and the web pages. A reader sees only the cases
``visible`` says they may.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from . import risk
from .reports import _team
from .store.repository import as_date

if TYPE_CHECKING:
    from .app import App

Visible = Callable[[str | None], bool]
PACE_WEEKS = 12  # the weeks whose finished reviews set "the current pace"


@dataclass
class Known:
    """The limits the model learns from and asks about, with what the pages show of each."""

    limits: list[risk.Limit]
    about: dict[int, dict[str, Any]]  # limit id -> case, caseworker, workflow, title, source, party


def load(core: App) -> Known:
    """Every limit the council or another body must keep (a family's periods are theirs), with its
    instance's changes of state: one pass over the deadline rows and one over the history."""
    with core.store.unit() as unit:
        rows = unit.fetch(
            "SELECT d.id, d.case_id, d.instance_id, i.workflow, d.name, d.title, d.source, d.party, d.starts_on, "
            "d.due_on, d.closed_on, c.caseworker, c.name FROM deadline d "
            "JOIN workflow_instance i ON i.id = d.instance_id JOIN ehc_case c ON c.id = d.case_id "
            "WHERE d.party != 'family' ORDER BY d.id",
            {},
        )
        changes: dict[int, list[tuple[date, str]]] = {}
        for iid, on, before, after in unit.fetch(
            "SELECT instance_id, occurred_on, from_state, to_state FROM history ORDER BY instance_id, seq", {}
        ):
            if before != after:
                changes.setdefault(iid, []).append((as_date(on), after))
    limits, about = [], {}
    for r in rows:
        limits.append(
            risk.Limit(
                r[0],
                (r[3], r[4]),
                as_date(r[8]),
                as_date(r[9]),
                as_date(r[10]) if r[10] is not None else None,
                tuple(changes.get(r[2], ())),
                r[1],
            )
        )
        about[r[0]] = {"case": r[1], "workflow": r[3], "deadline": r[4], "title": r[5], "source": r[6],
                       "party": r[7], "caseworker": r[11], "case_name": r[12]}  # fmt: skip
    return Known(limits, about)


@dataclass
class AtRisk:
    day: date
    threshold: int  # percent
    rows: list[dict[str, Any]] = field(default_factory=list)  # every open limit not yet due, riskiest first

    @property
    def flagged(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["at_risk"]]

    def as_dict(self, names: bool = False) -> dict[str, Any]:
        keep = [{k: v for k, v in r.items() if names or k != "case_name"} for r in self.flagged]
        return {
            "day": self.day.isoformat(),
            "threshold_percent": self.threshold,
            "open_limits": len(self.rows),
            "at_risk": len(keep),
            "no_estimate": sum(1 for r in self.rows if r["percent"] is None),
            "limits": keep,
        }


def at_risk(core: App, today: date, visible: Visible | None = None, known: Known | None = None) -> AtRisk:
    """The chance each open limit not yet past its day will be missed, for the cases ``visible``;
    those at or above ``reports.at_risk_percent`` are at risk."""
    seen = visible or (lambda _caseworker: True)
    known = known or load(core)
    threshold = core.settings.reports.at_risk_percent
    model = risk.learn(known.limits, today)
    out = AtRisk(today, threshold)
    for lim in known.limits:
        about = known.about[lim.id]
        if not lim.open_on(today) or lim.due_on < today or not seen(about["caseworker"]):
            continue
        found = model.chance(lim)
        out.rows.append(
            {**about, "limit": lim.id, "due_on": lim.due_on.isoformat(), "days_left": (lim.due_on - today).days,
             "percent": found.percent, "basis": found.basis, "why": found.why, "from_limits": found.from_limits,
             "at_risk": found.chance is not None and found.chance >= threshold / 100}
        )  # fmt: skip
    out.rows.sort(key=lambda r: (-(r["percent"] if r["percent"] is not None else -1), r["days_left"], r["limit"]))
    return out


def measure(core: App, since: date, until: date, lead_days: int = 28) -> risk.Backtest:
    """How well the model would have warned about the limits due from ``since`` to ``until``."""
    threshold = core.settings.reports.at_risk_percent / 100
    return risk.backtest(load(core).limits, since, until, lead_days=lead_days, threshold=threshold)


# -- the workload forecast ------------------------------------------------------------------------

KINDS = (
    ("reviews", "Annual reviews"),
    ("transfers", "Phase transfers"),
    ("advice", "Advice requests"),
    ("other", "Other council time limits"),
)


def _kind_of(workflow: str, name: str) -> str:
    if (workflow, name) == ("annual_review", "review"):
        return "reviews"
    if name == "phase_transfer":
        return "transfers"
    return "other"


@dataclass
class Forecast:
    day: date
    weeks: list[date]  # the Monday of each week
    by_week: list[dict[str, Any]] = field(default_factory=list)
    by_team: list[dict[str, Any]] = field(default_factory=list)
    overdue_now: dict[str, int] = field(default_factory=dict)
    reviews: list[dict[str, Any]] = field(default_factory=list)  # by team: pace, due, late at that pace

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "weeks": [w.isoformat() for w in self.weeks],
            "overdue_now": self.overdue_now,
            "by_week": self.by_week,
            "by_team": self.by_team,
            "reviews_at_current_pace": self.reviews,
        }


def forecast(core: App, today: date, visible: Visible | None = None, weeks: int = 12) -> Forecast:
    """What falls due in each of the next ``weeks`` weeks (from this week's Monday), by kind and by
    team; and, for annual reviews, which will be late if each team keeps holding them at the pace of
    the last ``PACE_WEEKS`` weeks, taking the earliest due first."""
    seen = visible or (lambda _caseworker: True)
    monday = today - timedelta(days=today.weekday())
    starts = [monday + timedelta(weeks=n) for n in range(weeks)]
    end = starts[-1] + timedelta(days=6)
    directory = core.directory
    with core.store.unit() as unit:
        limits = unit.fetch(
            "SELECT i.workflow, d.name, d.due_on, c.caseworker, d.case_id FROM deadline d "
            "JOIN workflow_instance i ON i.id = d.instance_id JOIN ehc_case c ON c.id = d.case_id "
            "WHERE d.closed_on IS NULL AND d.party = 'council' AND d.due_on <= :end",
            {"end": end},
        )
        advice = unit.fetch(
            "SELECT a.due_on, c.caseworker FROM advice_request a JOIN ehc_case c ON c.id = a.case_id "
            "WHERE a.received_on IS NULL AND a.withdrawn_on IS NULL AND a.due_on <= :end",
            {"end": end},
        )
        held = unit.fetch(
            "SELECT d.closed_on, c.caseworker FROM deadline d JOIN workflow_instance i ON i.id = d.instance_id "
            "JOIN ehc_case c ON c.id = d.case_id WHERE i.workflow = 'annual_review' AND d.name = 'review' "
            "AND d.status IN ('met', 'breached') AND d.closed_on IS NOT NULL AND d.closed_on > :since "
            "AND d.closed_on <= :today",
            {"since": today - timedelta(weeks=PACE_WEEKS), "today": today},
        )
        reviews_open = unit.fetch(
            "SELECT d.due_on, c.caseworker, d.case_id FROM deadline d JOIN workflow_instance i "
            "ON i.id = d.instance_id JOIN ehc_case c ON c.id = d.case_id WHERE i.workflow = 'annual_review' "
            "AND d.name = 'review' AND d.closed_on IS NULL ORDER BY d.due_on, d.id",
            {},
        )
    team_of: dict[str | None, str] = {}

    def team(caseworker: str | None) -> str:
        if caseworker not in team_of:
            team_of[caseworker] = _team(directory, directory.find(caseworker) if caseworker else None)
        return team_of[caseworker]

    items = [(_kind_of(w, n), as_date(due), cw) for w, n, due, cw, _case in limits if seen(cw)]
    items += [("advice", as_date(due), cw) for due, cw in advice if seen(cw)]
    out = Forecast(today, starts)
    out.overdue_now = {kind: sum(1 for k, due, _ in items if k == kind and due < today) for kind, _ in KINDS}
    teams = sorted({team(cw) for _, due, cw in items if due >= monday})
    for start in starts:
        week = [(k, cw) for k, due, cw in items if start <= due <= start + timedelta(days=6) and due >= today]
        out.by_week.append(
            {"week": start.isoformat(), **{kind: sum(1 for k, _ in week if k == kind) for kind, _ in KINDS},
             "total": len(week)}
        )  # fmt: skip
    for name in teams:
        out.by_team.append(
            {
                "team": name,
                "weeks": [
                    sum(
                        1
                        for _k, due, cw in items
                        if team(cw) == name and start <= due <= start + timedelta(days=6) and due >= today
                    )
                    for start in starts
                ],
            }
        )
    out.reviews = _reviews_at_pace(
        today,
        end,
        [(as_date(due), team(cw), case) for due, cw, case in reviews_open if seen(cw)],
        [team(cw) for _closed, cw in held if seen(cw)],
    )
    return out


def _reviews_at_pace(
    today: date, end: date, waiting: list[tuple[date, str, int]], held: list[str]
) -> list[dict[str, Any]]:
    """For each team: reviews held a week lately, those overdue now, those due by ``end``, and the
    ones that will be late if the team goes on at that pace, earliest due first."""
    out = []
    for name in sorted({t for _, t, _ in waiting} | set(held)):
        pace = sum(1 for t in held if t == name) / PACE_WEEKS
        queue = [(due, case) for due, t, case in waiting if t == name and due <= end]
        late: list[dict[str, Any]] = []
        for n, (due, case) in enumerate(queue):
            # The (n+1)th review in the queue is done after (n+1)/pace weeks at this pace.
            done = today + timedelta(days=7 * (n + 1) / pace) if pace > 0 else None
            if done is None or done > due:
                late.append({"case": case, "due_on": due.isoformat(),
                             "held_about": done.isoformat() if done is not None and done <= end else None})  # fmt: skip
        out.append(
            {
                "team": name,
                "held_a_week": round(pace, 1),
                "overdue_now": sum(1 for due, _ in queue if due < today),
                "due_in_period": sum(1 for due, _ in queue if due >= today),
                "late_at_this_pace": len(late),
                "late": late,
            }
        )
    return out

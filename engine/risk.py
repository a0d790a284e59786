"""Breach prediction: the chance that an open time limit will be missed, learnt from how long this
council's own limits and stages have taken (docs/reports.md, "At risk").

Pure: it decides from plain records (:class:`Limit`) and a day, and reads nothing itself. The shell
(``engine.outlook``) loads the records and shows the answers.

**The model.** A limit is *missed* when it is still open at the end of its last day. For a limit
open on day ``X``:

1. **Stage.** The instance has been in its current state ``s`` for ``τ`` days, and ``L`` days
   separate the day it entered ``s`` from the limit's last day. Take every past limit of the same
   kind (workflow and limit name) whose instance stayed in ``s`` for ``τ`` days or more; from the
   time each took from entering ``s`` to the limit closing, ``R``, a survival curve
   ``S(t) = P(R > t)`` gives the chance ``S(L)``: of the cases that were stuck as long as this
   one, the share that took longer than this one has left.
2. **Limit.** Without enough history of the stage, from the limit's first day: elapsed ``e``,
   allowed ``L``, over every past limit of the kind, ``P(T > L | T > e - 1)``.
3. **Any limit.** Without enough of either, the share of the limit used, over every kind:
   ``P(T/L > 1 | T/L > e/L)``.

Curves are Kaplan–Meier estimates: limits still open are counted as far as they have got
(censored), so slow cases still running are not forgotten, which would make the council look
quicker than it is. A closing by any means (met, cancelled) ends a limit; a limit is missed only if
it is still open after its last day. An answer needs at least ``MIN_AT_RISK`` limits that had got
as far as this one and whose outcome is known: finished, or still open past this one's last day (one
still open but short of that day says nothing either way). With fewer there is no estimate, and the
page says so, rather than a guess: a new service's first weeks flag nothing.

:func:`backtest` measures the model honestly: for each limit that fell due in a past period, it
asks the model as it would have answered ``lead`` days before the due date, knowing only what was
recorded by then, and counts the breaches flagged, the breaches missed and the false alarms.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

MIN_AT_RISK = 8  # past limits that had got as far as this one, for any estimate
Kind = tuple[str, str]  # (workflow, limit name)


@dataclass(frozen=True)
class Limit:
    """One time limit as the model sees it; ``stages`` are its instance's changes of state,
    (day entered, state), in order."""

    id: int
    kind: Kind
    starts_on: date
    due_on: date
    closed_on: date | None
    stages: tuple[tuple[date, str], ...] = ()
    case_id: int = 0

    def open_on(self, day: date) -> bool:
        """Open at the end of ``day``: started by then and not closed by then."""
        return self.starts_on <= day and (self.closed_on is None or self.closed_on > day)

    def missed_by(self, today: date) -> bool | None:
        """Missed (still open after its last day), as known at the end of ``today``; None if not yet known."""
        if self.closed_on is not None and self.closed_on <= today:
            return self.closed_on > self.due_on
        return True if today > self.due_on else None

    def stage_on(self, day: date) -> tuple[date, str] | None:
        """The state the instance was in at the end of ``day``, and the day it entered it."""
        current = None
        for entered, state in self.stages:
            if entered > day:
                break
            current = (entered, state)
        return current

    def stays_while_open(self, day: date) -> list[tuple[date, str, date | None]]:
        """The states the instance was in while this limit was open, as recorded by the end of
        ``day``: (entered, state, left), the first being the one it was in when the limit started;
        ``left`` is None for a state it had not left by then."""
        end = min(day, self.closed_on - timedelta(days=1)) if self.closed_on else day
        found: list[tuple[date, str, date | None]] = []
        for entered, state in self.stages:
            if entered > day:
                break
            if found:
                found[-1] = (found[-1][0], found[-1][1], entered)
            if entered > end:
                break
            if entered <= self.starts_on:
                found = [(entered, state, None)]
            else:
                found.append((entered, state, None))
        return found


class Survival:
    """A Kaplan–Meier curve from (time, ended) pairs: ``S(t)``, the share still going after ``t``."""

    def __init__(self, samples: Iterable[tuple[float, bool]]):
        tally: dict[float, list[int]] = {}  # time -> [ended there, samples there]
        for t, ended in samples:
            _count(tally, t, ended)
        self._build(tally)

    @classmethod
    def of_tally(cls, tally: dict[float, list[int]]) -> Survival:
        """The curve of samples counted by time: time -> [ended there, samples there]."""
        curve = cls.__new__(cls)
        curve._build(tally)
        return curve

    def _build(self, tally: dict[float, list[int]]) -> None:
        # Every sample's time, in order, once: the curve steps where some ended; how many samples
        # ended, and went on, up to each time, for the counts past a time.
        self._keys = sorted(tally)
        self._times: list[float] = []
        self._survival: list[float] = []
        self._upto_all = [0]
        self._upto_ended = [0]
        self.count = sum(n for _e, n in tally.values())
        at_risk, s, all_, ended_ = self.count, 1.0, 0, 0
        for t in self._keys:
            ended, left = tally[t]
            if ended:
                s *= 1.0 - ended / at_risk
                self._times.append(t)
                self._survival.append(s)
            at_risk -= left
            all_ += left
            ended_ += ended
            self._upto_all.append(all_)
            self._upto_ended.append(ended_)

    def at(self, t: float) -> float:
        """S(t) = P(T > t)."""
        n = bisect.bisect_right(self._times, t)
        return self._survival[n - 1] if n else 1.0

    def beyond(self, t: float) -> int:
        """How many samples got further than ``t`` (ended later, or still going when last seen)."""
        return self.count - self._upto_all[bisect.bisect_right(self._keys, t)]

    def known(self, reached: float, limit: float) -> tuple[int, int]:
        """Of the samples that got further than ``reached``: how many are known to have ended by
        ``limit`` or gone past it (ended at any time, or still going beyond ``limit``), and how many
        of those ended. A sample still going but not yet at ``limit`` says nothing either way."""
        ended = self._upto_ended[-1] - self._upto_ended[bisect.bisect_right(self._keys, reached)]
        n = bisect.bisect_right(self._keys, max(reached, limit))
        past = (self.count - self._upto_ended[-1]) - (self._upto_all[n] - self._upto_ended[n])
        return ended + past, ended


@dataclass(frozen=True)
class Risk:
    """The chance a limit will be missed, and why, in words a manager can check."""

    limit_id: int
    chance: float | None  # 0..1, or None: not enough history
    basis: str  # "stage", "limit", "any limit" or "none"
    why: str
    from_limits: int  # how many limits the answer rests on: finished, or still open past this one's last day

    @property
    def percent(self) -> int | None:
        return None if self.chance is None else round(100 * self.chance)


@dataclass
class Model:
    """The curves learnt from every limit as recorded at the end of ``day``."""

    day: date
    # (kind, state) -> (time spent there, time from entering it to the limit closing, closed)
    by_stage: dict[tuple[Kind, str], list[tuple[int, int, bool]]] = field(default_factory=dict)
    by_kind: dict[Kind, Survival] = field(default_factory=dict)
    by_share: Survival | None = None
    # Each stage's samples, longest stay first, with their stays negated (ascending, for bisect), and
    # their tallies (``Survival.of_tally``) at every ``_EVERY``-th; and the curve of each stage's
    # longest n stays: limits that have spent as long at a stage share one. A curve is made from the
    # nearest tally before it and the few samples after, not from all its samples again (a county's
    # 806 curves of thousands of samples each took 3.3 s).
    _stays: dict[tuple[Kind, str], tuple[list[tuple[int, int, bool]], list[int], list[dict[float, list[int]]]]] = field(
        default_factory=dict, repr=False
    )
    _curves: dict[tuple[Kind, str, int], Survival] = field(default_factory=dict, repr=False)
    _EVERY = 64

    def _stayed(self, kind: Kind, state: str, spent: int) -> tuple[Survival, int]:
        """The curve of the limits that stayed at ``state`` at least ``spent`` days, and how many they are."""
        found = self._stays.get((kind, state))
        if found is None:
            longest = sorted(self.by_stage.get((kind, state), ()), key=lambda sample: -sample[0])
            tallies: list[dict[float, list[int]]] = []
            tally: dict[float, list[int]] = {}
            for i, (_stay, r, ended) in enumerate(longest):
                if i % self._EVERY == 0:
                    tallies.append(_copied(tally))
                _count(tally, r, ended)
            found = self._stays[(kind, state)] = (longest, [-stay for stay, _r, _e in longest], tallies)
        longest, negated, tallies = found
        n = bisect.bisect_right(negated, -spent)  # every stay >= spent
        curve = self._curves.get((kind, state, n))
        if curve is None:
            start = min(n // self._EVERY, len(tallies) - 1) if tallies else 0
            tally = _copied(tallies[start]) if tallies else {}
            for _stay, r, ended in longest[start * self._EVERY : n]:
                _count(tally, r, ended)
            curve = self._curves[(kind, state, n)] = Survival.of_tally(tally)
        return curve, n

    def chance(self, limit: Limit, words: dict[str, str] | None = None, *, stages: bool = True) -> Risk:
        """The chance ``limit``, open when ``day`` began, will still be open after its due day
        (``stages=False``: from the limit's own days alone, to measure what the stage adds)."""
        words = words or {}
        day = self.day
        left = (limit.due_on - day).days
        stage = limit.stage_on(day) if stages else None
        if stage is not None:
            entered, state = stage
            base = max(entered, limit.starts_on)
            spent = max((day - base).days, 0)
            # The limits that stayed at this stage at least as long as this one has, so far.
            curve, like = self._stayed(limit.kind, state, spent)
            allowed = (limit.due_on - base).days
            known, finished = curve.known(spent - 1, allowed)
            if known >= MIN_AT_RISK:
                chance = curve.at(allowed)
                name = words.get(state, state.replace("_", " ").capitalize())
                return Risk(
                    limit.id,
                    chance,
                    "stage",
                    f"{spent} days at “{name}” so far, {left} days left. Of {like} limits like this one "
                    f"that stayed at that stage {spent} days or more ({finished} finished), "
                    f"{round(100 * chance)}% took longer than this one has left.",
                    known,
                )
        elapsed = (day - limit.starts_on).days
        allowed = (limit.due_on - limit.starts_on).days
        # A limit due the day it starts has no days to learn from.
        kind_curve = self.by_kind.get(limit.kind) if allowed > 0 else None
        known, finished = kind_curve.known(elapsed - 1, allowed) if kind_curve is not None else (0, 0)
        if kind_curve is not None and known >= MIN_AT_RISK:
            curve = kind_curve
            chance = _conditional(curve, elapsed - 1, allowed)
            return Risk(
                limit.id,
                chance,
                "limit",
                f"Day {elapsed} of {allowed}. Of {curve.beyond(elapsed - 1)} limits like this one still open on "
                f"day {elapsed} ({finished} finished since), {round(100 * chance)}% were still open after their "
                "last day.",
                known,
            )
        if self.by_share is not None and allowed > 0:
            used = max(elapsed - 1, 0) / allowed
            known, finished = self.by_share.known(used, 1.0)
            if known >= MIN_AT_RISK:
                chance = _conditional(self.by_share, used, 1.0)
                return Risk(
                    limit.id,
                    chance,
                    "any limit",
                    f"{round(100 * used)}% of the time used. Of {self.by_share.beyond(used)} limits of any kind "
                    f"that had used as much ({finished} finished since), {round(100 * chance)}% ran past their "
                    "last day.",
                    known,
                )
        return Risk(limit.id, None, "none", "Not enough finished limits like this one to tell yet.", 0)


def _count(tally: dict[float, list[int]], t: float, ended: bool) -> None:
    found = tally.get(t)
    if found is None:
        tally[t] = [int(ended), 1]
    else:
        found[0] += ended
        found[1] += 1


def _copied(tally: dict[float, list[int]]) -> dict[float, list[int]]:
    return {t: list(c) for t, c in tally.items()}


def _conditional(curve: Survival, reached: float, limit: float) -> float:
    """P(T > limit | T > reached)."""
    if limit <= reached:
        return 1.0
    still = curve.at(reached)
    return min(1.0, curve.at(limit) / still) if still > 0 else 1.0


def learn(limits: Sequence[Limit], day: date) -> Model:
    """The curves from what was recorded by the end of ``day``: limits closed by then are ended at
    their closing; limits open then are counted as far as they had got."""
    stage_samples: dict[tuple[Kind, str], list[tuple[int, int, bool]]] = {}
    kind_samples: dict[Kind, list[tuple[float, bool]]] = {}
    share_samples: list[tuple[float, bool]] = []
    for limit in limits:
        if limit.starts_on > day:
            continue
        ended = limit.closed_on is not None and limit.closed_on <= day
        end = limit.closed_on if ended and limit.closed_on is not None else day
        taken = (end - limit.starts_on).days
        kind_samples.setdefault(limit.kind, []).append((taken, ended))
        allowed = (limit.due_on - limit.starts_on).days
        if allowed > 0:
            share_samples.append((taken / allowed, ended))
        for entered, state, left in limit.stays_while_open(day):
            base = max(entered, limit.starts_on)
            stay = ((left or end) - base).days  # still there: as far as it has got
            stage_samples.setdefault((limit.kind, state), []).append((stay, (end - base).days, ended))
    return Model(
        day,
        stage_samples,
        {k: Survival(v) for k, v in kind_samples.items()},
        Survival(share_samples) if share_samples else None,
    )


@dataclass
class Backtest:
    """How the model would have done: each limit that fell due in the period, asked about ``lead``
    days before its due date (to within a week) with only what was recorded by then."""

    lead_days: int
    threshold: float
    asked: int = 0
    flagged_and_missed: int = 0  # breaches flagged ahead: caught
    missed_unflagged: int = 0  # breaches it did not flag
    false_alarms: int = 0  # flagged, but met in time
    quiet_and_met: int = 0
    no_estimate: int = 0
    no_estimate_missed: int = 0
    too_short: int = 0  # due in the period, but started after the day it would be asked about
    brier: list[float] = field(default_factory=list)
    base_brier: list[float] = field(default_factory=list)
    by_kind: dict[Kind, list[int]] = field(default_factory=dict)  # asked, missed, flagged and missed, false alarms

    @property
    def breaches(self) -> int:
        return self.flagged_and_missed + self.missed_unflagged

    def as_dict(self) -> dict[str, object]:
        flagged = self.flagged_and_missed + self.false_alarms
        return {
            "lead_days": self.lead_days,
            "threshold_percent": round(100 * self.threshold),
            "limits_asked": self.asked,
            "breaches": self.breaches,
            "breaches_flagged": self.flagged_and_missed,
            "breaches_not_flagged": self.missed_unflagged,
            "false_alarms": self.false_alarms,
            "met_and_not_flagged": self.quiet_and_met,
            "no_estimate": self.no_estimate,
            "no_estimate_then_missed": self.no_estimate_missed,
            "not_asked_started_too_late": self.too_short,
            "share_of_breaches_flagged": round(self.flagged_and_missed / self.breaches, 3) if self.breaches else None,
            "share_of_flags_right": round(self.flagged_and_missed / flagged, 3) if flagged else None,
            "brier_score": round(statistics.fmean(self.brier), 3) if self.brier else None,
            "brier_score_of_past_rate": round(statistics.fmean(self.base_brier), 3) if self.base_brier else None,
            "by_limit": [
                {"workflow": k[0], "deadline": k[1], "asked": v[0], "missed": v[1], "flagged_and_missed": v[2],
                 "false_alarms": v[3]}
                for k, v in sorted(self.by_kind.items())
            ],
        }  # fmt: skip


def backtest(
    limits: Sequence[Limit],
    since: date,
    until: date,
    *,
    lead_days: int = 28,
    threshold: float = 0.5,
    stages: bool = True,
) -> Backtest:
    """Ask the model about every limit due from ``since`` to ``until`` (whose outcome is known by
    ``until``), once, on the week's day ``lead_days`` to ``lead_days + 6`` before it fell due.

    The Brier score (mean squared error of the chance, lower is better) is compared with a plain
    guess: the share of limits of the same kind missed so far."""
    result = Backtest(lead_days, threshold)
    day = since - timedelta(days=lead_days + 6)
    while day <= until - timedelta(days=lead_days):
        window = (day + timedelta(days=lead_days), day + timedelta(days=lead_days + 6))
        due = [lim for lim in limits if window[0] <= lim.due_on <= window[1] and since <= lim.due_on <= until]
        targets = [lim for lim in due if lim.open_on(day)]
        result.too_short += sum(1 for lim in due if lim.starts_on > day)
        if targets:
            model = learn(limits, day)
            past_rate = _past_rates(limits, day)
            for lim in targets:
                outcome = lim.missed_by(until)
                if outcome is None:
                    continue
                risk = model.chance(lim, stages=stages)
                result.asked += 1
                if risk.chance is None:
                    result.no_estimate += 1
                    result.no_estimate_missed += outcome
                    continue
                result.brier.append((risk.chance - outcome) ** 2)
                result.base_brier.append((past_rate.get(lim.kind, 0.0) - outcome) ** 2)
                flagged = risk.chance >= threshold
                tally = result.by_kind.setdefault(lim.kind, [0, 0, 0, 0])
                tally[0] += 1
                tally[1] += outcome
                tally[2] += flagged and outcome
                tally[3] += flagged and not outcome
                if flagged and outcome:
                    result.flagged_and_missed += 1
                elif outcome:
                    result.missed_unflagged += 1
                elif flagged:
                    result.false_alarms += 1
                else:
                    result.quiet_and_met += 1
        day += timedelta(days=7)
    return result


def _past_rates(limits: Sequence[Limit], day: date) -> dict[Kind, float]:
    """The share of each kind's limits closed by ``day`` that were missed."""
    counts: dict[Kind, list[int]] = {}
    for lim in limits:
        if lim.closed_on is not None and lim.closed_on <= day:
            c = counts.setdefault(lim.kind, [0, 0])
            c[0] += lim.closed_on > lim.due_on
            c[1] += 1
    return {k: missed / n for k, (missed, n) in counts.items()}

"""The caseworker's read views (``case show``, ``case list``, ``due``) in plain SQL on a DBAPI connection.

One implementation for both databases: ``store.queries`` runs these on SQLAlchemy's raw connection
(PostgreSQL, or SQLite in a long-running process), and the command line runs them on a standard
library ``sqlite3`` connection (``database.open_sqlite``), so that reading a SQLite database imports
neither SQLAlchemy nor SQLModel (bench/startup.py). The tables are those of ``store.models``.

SQLite hands back dates and moments as the text SQLAlchemy stored (``2026-03-13``,
``2026-03-13 12:00:00.000001``, UTC without its zone); PostgreSQL's driver as ``date`` and ``datetime``.
Either way a view holds dates as ISO text and moments as ISO text with their offset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFound
from ..standing import is_overdue, standing

if TYPE_CHECKING:
    from sqlalchemy import Engine

_PLAIN_SQLITE = re.compile(r"sqlite(?:\+pysqlite)?:///([^?#%]+)")


def sqlite_file(database_url: str, base_dir: Path) -> tuple[str, Path] | None:
    """The URL (as ``Settings.database`` gives it) and file of a plain ``sqlite:///path`` URL, a relative
    path taken from ``base_dir`` as ``Settings.database`` takes it, read without SQLAlchemy. None for
    anything else (another database, in memory, a query string or escapes): that goes the long way."""
    found = _PLAIN_SQLITE.fullmatch(database_url)
    if found is None or found.group(1) == ":memory:":
        return None
    path = Path(found.group(1))
    if not path.is_absolute():
        path = (base_dir / path).resolve()
        return f"sqlite:///{path}", path
    return database_url, path


Run = Callable[[str, Any], Iterable[Sequence[Any]]]


class Sql:
    """How to run a statement: ``run(sql, params)`` gives its rows, ``paramstyle`` is that of the driver
    (``qmark`` for sqlite3, ``format``/``pyformat`` for psycopg: SQLAlchemy's ``engine.dialect.paramstyle``).
    ``Sql(sqlite3_connection.execute)``, or ``Sql(connection.exec_driver_sql, engine.dialect.paramstyle)``
    on a SQLAlchemy connection (its errors then come as SQLAlchemy's, as every other read's do)."""

    def __init__(self, run: Run, paramstyle: str = "qmark"):
        self.run = run
        self.format = paramstyle in ("format", "pyformat")

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.run(sql.replace("?", "%s") if self.format else sql, params)]

    def day(self, value: date) -> Any:
        """A date as a parameter: SQLite compares the ISO text SQLAlchemy stored; PostgreSQL a date."""
        return value if self.format else value.isoformat()


@contextmanager
def on_engine(engine: Engine) -> Iterator[Sql]:
    """The views on a connection of SQLAlchemy's ``engine`` (any database it serves)."""
    with engine.connect() as conn:
        yield Sql(conn.exec_driver_sql, engine.dialect.paramstyle)


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _day(value: Any) -> str | None:
    day = _as_date(value)
    return day.isoformat() if day is not None else None


def _moment(value: Any) -> str | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:  # SQLite keeps the stored UTC moment without its zone
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


_DEADLINE = (
    "d.name, d.title, d.starts_on, d.due_on, d.status, d.source, d.basis, d.party, d.closed_on, "
    "d.exception_head, d.exception_reason, d.exception_by, d.exception_on, d.instance_id, d.case_id"
)


def _deadline(r: tuple[Any, ...], as_of: date | None) -> dict[str, Any]:
    (name, title, starts_on, due_on, status, source, basis, party, closed_on, head, reason, by, on) = r[:13]
    due_day, closed_day = _as_date(due_on), _as_date(closed_on)
    assert due_day is not None
    out: dict[str, Any] = {
        "name": name,
        "title": title,
        "starts": _day(starts_on),
        "due": due_day.isoformat(),
        "status": status,
        "regulation": source,
        "basis": basis,
        "party": party,
        "closed": _day(closed_on),
        "excused": head is not None,
        "exception": {"head": head, "reason": reason, "by": by, "on": _day(on)} if head else None,
    }
    if as_of is not None:
        if closed_day is None:
            out["days_left"] = (due_day - as_of).days
        now = standing(
            status=status, due_on=due_day, closed_on=closed_day, party=party, as_of=as_of, excused=head is not None
        )
        out["standing"] = {"state": now.state, "days": now.days, "label": now.label}
    return out


def case_view(db: Sql, case_id: int, as_of: date | None = None) -> dict[str, Any]:
    """One case with its contacts, workflows, history, deadlines, messages and documents."""
    found = db.rows(
        "SELECT id, name, date_of_birth, caseworker, year_group_offset, school_pattern, created_at "
        "FROM ehc_case WHERE id = ?",
        (case_id,),
    )
    if not found:
        raise NotFound(f"no case {case_id}")
    case = found[0]
    contacts = db.rows(
        "SELECT role, name, email, address, prefers, interpreter, accessible_format FROM contact "
        "WHERE case_id = ? ORDER BY id",
        (case_id,),
    )
    instances = db.rows(
        "SELECT id, parent_id, workflow, definition_version, state, version, opened_on, closed_on, facts "
        "FROM workflow_instance WHERE case_id = ? ORDER BY id",
        (case_id,),
    )
    ids = [i[0] for i in instances]
    history = (  # through the instances' (instance_id, seq) index
        db.rows(
            'SELECT seq, instance_id, at, occurred_on, actor, actor_role, "trigger", from_state, to_state, '
            "inputs, note, recorded_by "
            f"FROM history WHERE instance_id IN ({', '.join('?' * len(ids))}) ORDER BY id",
            tuple(ids),
        )
        if ids
        else []
    )
    deadlines = db.rows(f"SELECT {_DEADLINE} FROM deadline d WHERE d.case_id = ? ORDER BY d.due_on, d.id", (case_id,))
    outbox = db.rows(
        'SELECT "key", template, recipient_email, recipient_name, recipient_role, channel, status, last_error '
        "FROM outbox WHERE case_id = ? ORDER BY id",
        (case_id,),
    )
    documents = db.rows(
        "SELECT kind, status, created_at, sha256 FROM document WHERE case_id = ? ORDER BY id", (case_id,)
    )
    names = {i[0]: i[2] for i in instances}
    workflows = [
        {
            "instance": iid,
            "parent": parent,
            "workflow": workflow,
            "definition_version": definition_version,
            "state": state,
            "version": version,
            "opened": _day(opened),
            "closed": _day(closed),
            "facts": json.loads(facts),
        }
        for iid, parent, workflow, definition_version, state, version, opened, closed, facts in instances
    ]
    current = next((w for w in reversed(workflows) if w["closed"] is None), workflows[-1] if workflows else None)
    return {
        "id": case[0],
        "name": case[1],
        "date_of_birth": _day(case[2]),
        "caseworker": case[3],
        "year_group_offset": case[4],
        "school_pattern": case[5],
        "created": _moment(case[6]),
        "contacts": [
            {
                "role": role,
                "name": name,
                "email": email,
                "address": address,
                "prefers": prefers,
                "interpreter": interpreter,
                "accessible_format": accessible_format,
            }
            for role, name, email, address, prefers, interpreter, accessible_format in contacts
        ],
        "workflow": current["workflow"] if current else None,
        "state": current["state"] if current else None,
        "version": current["version"] if current else None,
        "workflows": workflows,
        "history": [
            {
                "seq": seq,
                "workflow": names.get(iid),
                "at": _moment(at),
                "on": _day(on),
                "by": actor,
                "role": role,
                "recorded_by": recorded_by,
                "trigger": trigger,
                "from": from_state,
                "to": to_state,
                "inputs": json.loads(inputs),
                "note": note,
            }
            for seq, iid, at, on, actor, role, trigger, from_state, to_state, inputs, note, recorded_by in history
        ],
        "deadlines": [dict(_deadline(d, as_of), workflow=names.get(d[13]), instance=d[13]) for d in deadlines],
        "outbox": [
            {
                "key": key,
                "template": template,
                "to": email or name,
                "role": role,
                "channel": channel,
                "status": status,
                "note": error,
            }
            for key, template, email, name, role, channel, status, error in outbox
        ],
        "documents": [
            {"kind": kind, "status": status, "created": _moment(created), "sha256": sha256}
            for kind, status, created, sha256 in documents
        ],
    }


_NEXT_DUE = (  # each workflow's next council time limit, as n.next_due
    "LEFT OUTER JOIN (SELECT instance_id, min(due_on) AS next_due FROM deadline "
    "WHERE closed_on IS NULL AND party = 'council' GROUP BY instance_id) n ON n.instance_id = i.id "
)
_WORKFLOW_ROW = "c.id, c.name, c.date_of_birth, i.workflow, i.state, i.closed_on, n.next_due, c.caseworker"


def _workflow_rows(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows of ``_WORKFLOW_ROW`` as the case lists show them."""
    return [
        {
            "id": case_id,
            "name": name,
            "date_of_birth": _day(born),
            "workflow": wf,
            "state": st,
            "open": closed is None,
            "next_due": _day(next_due),
            "caseworker": caseworker,
        }
        for case_id, name, born, wf, st, closed, next_due, caseworker in rows
    ]


def list_cases(db: Sql, state: str | None = None, workflow: str | None = None) -> list[dict[str, Any]]:
    """Every case's workflows (open or closed) with their state and next council deadline."""
    where, params = [], []
    if state:
        where.append("i.state = ?")
        params.append(state)
    if workflow:
        where.append("i.workflow = ?")
        params.append(workflow)
    rows = db.rows(
        f"SELECT {_WORKFLOW_ROW} FROM ehc_case c JOIN workflow_instance i ON i.case_id = c.id {_NEXT_DUE}"
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + "ORDER BY c.id, i.id",
        tuple(params),
    )
    return _workflow_rows(rows)


def caseworkers(db: Sql) -> list[str | None]:
    """Every value a case holds as its caseworker (a staff id, an email address, or none): few, so
    what a person may see is decided for each in Python and the list then asked for by them."""
    return [r[0] for r in db.rows("SELECT DISTINCT caseworker FROM ehc_case")]


@dataclass(frozen=True)
class Narrowing:
    """What a list of open workflows is narrowed to (each None: not narrowed by it): a workflow, a
    stage, cases among ``ids``, a council time limit (``n.next_due``) before ``overdue_on``, and
    (``flagged``) the cases given for each workflow."""

    workflow: str | None = None
    state: str | None = None
    ids: Iterable[int] | None = None
    overdue_on: date | None = None
    flagged: Mapping[str, Iterable[int]] | None = None


def _open_where(
    db: Sql, holders: Sequence[str | None] | None, narrowing: Narrowing = Narrowing()
) -> tuple[str, tuple[Any, ...]]:
    """The conditions on open workflows (``i``) of cases (``c``) held by ``holders`` (None: anyone's;
    a None among them: cases no one holds), narrowed by ``narrowing``."""
    where, params = ["i.closed_on IS NULL"], []
    if holders is not None:
        named = [h for h in holders if h is not None]
        held = [f"c.caseworker IN ({', '.join('?' * len(named))})"] if named else []
        if None in holders:
            held.append("c.caseworker IS NULL")
        where.append(f"({' OR '.join(held)})" if held else "1 = 0")
        params += named
    if narrowing.workflow:
        where.append("i.workflow = ?")
        params.append(narrowing.workflow)
    if narrowing.state:
        where.append("i.state = ?")
        params.append(narrowing.state)
    if narrowing.ids is not None:  # integers, written in: a search can match thousands
        chosen = sorted({int(i) for i in narrowing.ids})
        where.append(f"c.id IN ({', '.join(map(str, chosen))})" if chosen else "1 = 0")
    if narrowing.overdue_on is not None:
        where.append("n.next_due < ?")
        params.append(db.day(narrowing.overdue_on))
    if narrowing.flagged is not None:
        either = []
        for name, cases in sorted(narrowing.flagged.items()):
            chosen = sorted({int(i) for i in cases})
            if chosen:
                either.append(f"(i.workflow = ? AND c.id IN ({', '.join(map(str, chosen))}))")
                params.append(name)
        where.append(f"({' OR '.join(either)})" if either else "1 = 0")
    return " AND ".join(where), tuple(params)


def open_workflows(
    db: Sql,
    holders: Sequence[str | None] | None,
    narrowing: Narrowing = Narrowing(),
    *,
    per_page: int | None = None,
    page: int = 1,
    clamp: bool = True,
) -> tuple[list[dict[str, Any]], int, int]:
    """The open workflows of the cases ``holders`` hold (as ``_open_where`` chooses them), the next
    council time limit first and those with none last, then by case: all of them, or page ``page`` of
    ``per_page`` (the last, if there are fewer, unless ``clamp`` is false: then none); with how many
    there are in all and the page given.
    The database does the choosing, ordering and counting: a county's list is thousands long."""
    where, params = _open_where(db, holders, narrowing)
    tables = "FROM workflow_instance i JOIN ehc_case c ON c.id = i.case_id " + _NEXT_DUE
    limit = ""
    total = 0
    if per_page is not None:
        # The join costs most: counted without it unless a time limit narrows the list.
        counted = tables if narrowing.overdue_on is not None else tables.removesuffix(_NEXT_DUE)
        total = int(db.rows(f"SELECT count(*) {counted}WHERE {where}", params)[0][0])
        page = max(1, min(page, -(-total // per_page)) if clamp else page)
        limit = f" LIMIT {int(per_page)} OFFSET {(page - 1) * int(per_page)}"
    rows = db.rows(
        f"SELECT {_WORKFLOW_ROW} {tables}"
        f"WHERE {where} ORDER BY CASE WHEN n.next_due IS NULL THEN 1 ELSE 0 END, n.next_due, c.id, i.id{limit}",
        params,
    )
    return _workflow_rows(rows), total if per_page is not None else len(rows), page


def open_kinds(db: Sql, holders: Sequence[str | None] | None) -> list[tuple[str, str, str | None]]:
    """The (workflow, stage, caseworker) of the open workflows of the cases ``holders`` hold: what a
    list of them can be narrowed by."""
    where, params = _open_where(db, holders)
    return [
        (wf, st, worker)
        for wf, st, worker in db.rows(
            "SELECT DISTINCT i.workflow, i.state, c.caseworker FROM workflow_instance i "
            f"JOIN ehc_case c ON c.id = i.case_id WHERE {where}",
            params,
        )
    ]


def names(db: Sql, holders: Sequence[str | None] | None) -> list[tuple[int, str]]:
    """The id and name of each case ``holders`` hold with a workflow open (for a search by name, made
    in Python: SQLite's ``lower`` knows only ASCII)."""
    where, params = _open_where(db, holders)
    return [
        (int(i), str(name))
        for i, name in db.rows(
            f"SELECT DISTINCT c.id, c.name FROM workflow_instance i JOIN ehc_case c ON c.id = i.case_id WHERE {where}",
            params,
        )
    ]


def failed_messages(db: Sql) -> int:
    """How many messages could not be delivered (shown where people look, not only sent by email)."""
    return int(db.rows("SELECT COUNT(*) FROM outbox WHERE status = 'failed'")[0][0])


def due(db: Sql, as_of: date, today: date | None = None) -> list[dict[str, Any]]:
    """Open deadlines due on or before ``as_of``, soonest first (uses the open deadlines' due index);
    each stands as it does ``today`` (``as_of`` when not given)."""
    today = today or as_of
    rows = db.rows(
        f"SELECT {_DEADLINE}, c.name, i.workflow, i.state FROM deadline d "
        "JOIN ehc_case c ON c.id = d.case_id JOIN workflow_instance i ON i.id = d.instance_id "
        "WHERE d.status IN ('open', 'breached') AND d.closed_on IS NULL "
        "AND d.party != 'family' "  # the family's periods are theirs, not the council's to meet
        "AND d.due_on <= ? ORDER BY d.due_on, d.id",
        (db.day(as_of),),
    )
    out = []
    for r in rows:
        due_day = _as_date(r[3])
        assert due_day is not None
        out.append(
            dict(
                _deadline(r, today),
                case_id=r[14],
                case_name=r[15],
                workflow=r[16],
                state=r[17],
                overdue=is_overdue(due_day, today),
            )
        )
    return out

"""``ehcp``: the command line for caseworkers and scripts. Parse, call the service, print.

Every listing has ``--json``; dates are YYYY-MM-DD; errors are one line on stderr, with exit 1 for a
refused or invalid step and exit 2 for bad usage or a database that cannot be used (a bad URL, no
such file, a server down, a schema to upgrade); ``--debug`` shows the traceback instead.
Libraries a command may not need (WeasyPrint, the mail clients, APScheduler, rich) are imported
where they are used: ``bench/startup.py``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from .actor import Actor
from .app import App, build
from .clock import FixedClock, SystemClock
from .config import Settings, load_settings
from .errors import DatabaseError, DefinitionError, EhcpError, InvalidInput, NotAuthorised, NotFound
from .identity import command_line_actor, operator
from .store import database, reading

# What a command may not need is imported when it is used: `case show`, `case list` and `due` read
# a SQLite database with sqlite3 alone (store.reading) and never load SQLAlchemy, SQLModel, Jinja or,
# but for `case show`, the workflow definitions (bench/startup.py measures them).
if TYPE_CHECKING:
    from . import diagram
    from .cases import parse_contact
    from .catalogue import workflow_files
    from .definition.load import check_files
    from .inputs import parse_date
    from .messages import long_date
    from .store import queries
else:

    class _Later:
        """A module imported at its first use."""

        def __init__(self, name: str):
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            return getattr(importlib.import_module(self._name), attr)

    diagram = _Later("engine.diagram")
    queries = _Later("engine.store.queries")

    def parse_contact(*args: Any, **kwargs: Any) -> Any:
        return _Later("engine.cases").parse_contact(*args, **kwargs)

    def workflow_files(*args: Any, **kwargs: Any) -> Any:
        return _Later("engine.catalogue").workflow_files(*args, **kwargs)

    def check_files(*args: Any, **kwargs: Any) -> Any:
        return _Later("engine.definition.load").check_files(*args, **kwargs)

    def parse_date(*args: Any, **kwargs: Any) -> Any:
        return _Later("engine.inputs").parse_date(*args, **kwargs)

    def long_date(*args: Any, **kwargs: Any) -> Any:
        return _Later("engine.messages").long_date(*args, **kwargs)


app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="EHC plan casework: statutory workflows and deadlines.",
    # A traceback (--debug, or a bug) must not print local variables: a database URL holds its password.
    pretty_exceptions_show_locals=False,
)
workflows_app = typer.Typer(no_args_is_help=True, help="Check and read the workflow definitions.")
case_app = typer.Typer(no_args_is_help=True, help="Open, step and read cases.")
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
plan_app = typer.Typer(no_args_is_help=True, help="EHC plans: edit the draft, read any version, check its quality.")
docs_app = typer.Typer(no_args_is_help=True, help="Documents: plans, notices and letters as accessible PDFs.")
scheduler_app = typer.Typer(no_args_is_help=True, help="The sweep that sends reminders and escalations.")
app.add_typer(workflows_app, name="workflows")
app.add_typer(case_app, name="case")
app.add_typer(db_app, name="db")
app.add_typer(scheduler_app, name="scheduler")
app.add_typer(plan_app, name="plan")
app.add_typer(docs_app, name="docs")

T = TypeVar("T")
_state: dict[str, Any] = {"config": None, "debug": False}

JsonOpt = typer.Option(False, "--json", help="Print JSON instead of text.")
OnOpt = typer.Option(None, "--on", help="The date of the step (YYYY-MM-DD); default today.")


@app.callback()
def _main(
    config: Path | None = typer.Option(None, "--config", help="config.yaml to use (or EHCP_CONFIG)."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error (for a bug report)."),
) -> None:
    _state["config"] = config
    _state["debug"] = debug
    # Every file a command makes (the database, documents, messages, --out) is the service account's
    # alone: 0600 files, 0700 folders, whatever the account's own umask (ehcp doctor checks the rest).
    os.umask(0o077)


ByOpt = typer.Option(
    None,
    "--by",
    help="For an administrator only: the staff id of the person on whose behalf this is recorded "
    "(history records both). Otherwise the command acts for your operating-system account.",
)


def _date_arg(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return parse_date(text)
    except ValueError as exc:
        raise InvalidInput(f"{option}: {exc}") from None


def _settings(operator_for: str | None = None) -> Settings:
    """The configuration, warning on stderr when the file holds a secret; ``operator_for`` names
    work on the whole installation, allowed only to the service's account or an administrator."""
    settings = load_settings(_state["config"])
    if settings.secrets_in_file:
        typer.echo(
            f"warning: the configuration file holds {', '.join(settings.secrets_in_file)}: put secrets in the "
            "environment (EHCP_SMTP_PASSWORD, EHCP_NOTIFY_API_KEY, EHCP_DATABASE_URL); ehcp doctor checks",
            err=True,
        )
    if operator_for is not None:
        from .directory import Directory

        operator(settings, Directory(list(settings.staff)), operator_for)
    return settings


def _app(on: str | None = None, option: str = "--on", operator_for: str | None = None) -> App:
    day = _date_arg(on, option)
    settings = _settings(operator_for)
    app_ = build(settings, FixedClock(day) if day else SystemClock())
    _state.setdefault("apps", []).append(app_)
    return app_


def _actor(a: App, by: str | None = None) -> Actor:
    """Who the command acts for: the operating-system account running it, mapped in config.yaml
    (``--by`` only for an administrator recording a step on someone's behalf)."""
    return command_line_actor(a.settings, a.directory, by)


_ADDRESS = re.compile(r"[^\s<>@,;:\"']+@[^\s<>@,;:\"']+")


def _no_addresses(text: str | None) -> str | None:
    """A relay's error without the email addresses it quotes (the output of tick goes to logs)."""
    return _ADDRESS.sub("<address>", text) if text else text


def _not_over_the_service(settings: Settings, out: Path) -> None:
    """An --out file is never one of the service's own: the database and its logs, the
    configuration, or anything in the folders of documents, messages, workflows or templates."""
    from .store.database import sqlite_file

    target = out.resolve()
    files = [settings.config_file] if settings.config_file else []
    database_file = sqlite_file(settings.database())
    if database_file is not None:
        files += [Path(f"{database_file}{suffix}").resolve() for suffix in ("", "-wal", "-shm", "-journal")]
    folders = [
        settings.outbox_path(),
        settings.workflows_path(),
        settings.templates_path(),
        Path(settings.documents_dir)
        if Path(settings.documents_dir).is_absolute()
        else settings.base_dir / settings.documents_dir,
    ]
    if target in files or any(target.is_relative_to(f.resolve()) for f in folders):
        raise InvalidInput(f"--out: {out} is one of the service's own files or folders; choose another place")


def _warn_broken_workflows() -> None:
    """A broken workflow file is not fatal to other commands (the cases on it run on their stored
    version), but every command says so, once, on stderr."""
    for app_ in _state.pop("apps", []):
        catalogue = app_.__dict__.get("catalogue")  # only if the command loaded the workflows
        problems = catalogue.problems if catalogue is not None else []
        if problems:
            files = sorted({p.file for p in problems})
            typer.echo(
                f"warning: {len(problems)} problem(s) in {', '.join(files)} (first: {problems[0]}); cases on "
                "those workflows run on the version stored with them; see 'ehcp workflows check'",
                err=True,
            )


PARTY_WORDS = {
    "council": "the council",
    "adviser": "an adviser",
    "school": "the school or college",
    "health": "the health body",
    "family": "the family",
}


def _sets(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--set '{item}': write key=value")
        out[key.strip()] = value.strip()
    return out


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _run(fn: Callable[[], T]) -> T:
    """Run a command's work; a person's mistake or a service that cannot be reached is one line on
    stderr and an exit status (1: refused or invalid; 2: bad usage, or a database that cannot be used), never a
    traceback unless --debug asks for it. Anything else is a bug and shows its traceback."""
    try:
        return fn()
    except Exception as exc:
        lost = _lost(exc)
        if not isinstance(exc, EhcpError) and lost is None:
            raise
        if _state["debug"]:
            raise
        if isinstance(exc, DefinitionError):
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
            raise typer.Exit(1) from None
        if lost is not None:
            # The database went away after it was opened (a server restarted, a file locked too long).
            typer.echo(f"error: the database stopped answering: {lost}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, DatabaseError) else 1) from None
    finally:
        _warn_broken_workflows()


def _lost(exc: BaseException) -> str | None:
    """Why, if ``exc`` says the database stopped answering (SQLAlchemy's OperationalError or InterfaceError,
    or sqlite3's when a read view reads a SQLite file directly); None for any other error."""
    if isinstance(exc, (sqlite3.OperationalError, sqlite3.InterfaceError)):
        orig: BaseException | None = exc
    elif "sqlalchemy" in sys.modules:  # not imported: no SQLAlchemy error can have been raised
        from sqlalchemy.exc import InterfaceError, OperationalError

        if not isinstance(exc, (OperationalError, InterfaceError)):
            return None
        orig = exc.orig
    else:
        return None
    return " ".join(str(orig).split("\n")[0].split()) or type(orig).__name__


def _table(rows: list[list[Any]], header: list[str], indent: str = "") -> None:
    widths = [max(len(str(r[i])) for r in [*rows, header]) for i in range(len(header))]
    typer.echo(indent + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for r in rows:
        typer.echo(indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# -- workflows ---------------------------------------------------------------------------------


@workflows_app.command("check")
def workflows_check(
    paths: list[Path] | None = typer.Argument(None, help="Files or folders; default the configured workflows folder."),
    as_json: bool = JsonOpt,
) -> None:
    """Validate workflow definitions: every mistake with file:line: field, exit 1 if any."""

    def go() -> None:
        targets = paths or [load_settings(_state["config"]).workflows_path()]
        files: list[Path] = []
        for p in targets:
            files += workflow_files(p) if p.is_dir() else [p]
        loaded, problems = check_files(files)
        if as_json:
            _print_json(
                {
                    "ok": not problems,
                    "workflows": [{"name": d.name, "version": d.version, "file": d.file} for d in loaded],
                    "problems": [
                        {"file": p.file, "line": p.line, "field": p.field, "message": p.message} for p in problems
                    ],
                }
            )
        else:
            for d in loaded:
                typer.echo(
                    f"ok  {d.file}: {d.name} v{d.version}, {len(d.states)} states, "
                    f"{len(d.transitions)} transitions, {len(d.deadlines)} deadlines"
                )
            for problem in problems:
                typer.echo(str(problem), err=True)
        if problems or not files:
            if not files:
                typer.echo("error: no workflow files found", err=True)
            raise typer.Exit(1)

    _run(go)


@workflows_app.command("list")
def workflows_list(as_json: bool = JsonOpt) -> None:
    """The installed workflows and their versions."""

    def go() -> None:
        defs = _app().catalogue.all()
        rows = [{"name": d.name, "version": d.version, "title": d.title, "source": d.source} for d in defs]
        if as_json:
            _print_json(rows)
        else:
            _table([[r["name"], r["version"], r["title"]] for r in rows], ["NAME", "VERSION", "TITLE"])

    _run(go)


@workflows_app.command("show")
def workflows_show(
    name: str,
    as_json: bool = JsonOpt,
    diagram_out: str | None = typer.Option(
        None, "--diagram", help="Write a Mermaid state diagram to this file ('-' for standard output)."
    ),
) -> None:
    """A workflow's states, transitions and deadlines (and its diagram)."""

    def go() -> None:
        d = _app().catalogue.latest(name)
        if diagram_out:
            text = diagram.mermaid(d)
            if diagram_out == "-":
                typer.echo(text, nl=False)
            else:
                Path(diagram_out).write_text(text, encoding="utf-8")
                typer.echo(f"wrote {diagram_out}")
            return
        if as_json:
            _print_json(d.model_dump(mode="json", by_alias=True))
            return
        typer.echo(f"{d.title} ({d.name} v{d.version})\nSource: {d.source}\n")
        typer.echo("STATES")
        for sname, s in d.states.items():
            mark = " (final)" if s.final else (" (start)" if sname == d.initial else "")
            typer.echo(f"  {sname}{mark}: {' '.join(s.description.split())}")
        typer.echo("\nTRANSITIONS")
        _table(
            [[t.trigger, ", ".join(t.source), t.dest, ", ".join(t.roles), ", ".join(t.inputs)] for t in d.transitions],
            ["TRIGGER", "FROM", "TO", "ROLES", "INPUTS"],
            "  ",
        )
        typer.echo("\nDEADLINES")
        from .guide import how_long

        _table(
            [[dl.name, how_long(dl), dl.basis.value, dl.source] for dl in d.deadlines],
            ["NAME", "TIME LIMIT", "BASIS", "SOURCE"],
            "  ",
        )

    _run(go)


PROCESS_ORDER = ("needs_assessment", "annual_review", "cease", "disagreement")


@workflows_app.command("guide")
def workflows_guide(
    out: Path = typer.Option(Path("guide"), "--out", help="Folder to write guide.md, guide.html and diagrams/ into."),
) -> None:
    """Write the caseworker's guide (Markdown and HTML, with a diagram of each workflow)."""
    from . import guide

    def go() -> None:
        a = _app()
        names = sorted(a.catalogue.names(), key=lambda n: (PROCESS_ORDER + (n,)).index(n))
        written = guide.write([a.catalogue.latest(n) for n in names], a.settings.council.name, out)
        for path in written:
            typer.echo(f"wrote {path}")

    _run(go)


# -- cases -------------------------------------------------------------------------------------


@case_app.command("open")
def case_open(
    name: str = typer.Option(..., "--name", help="The child's or young person's name."),
    dob: str = typer.Option(..., "--dob", help="Date of birth, YYYY-MM-DD."),
    workflow: str = typer.Option("needs_assessment", "--workflow", help="The workflow to start."),
    on: str | None = OnOpt,
    by: str | None = ByOpt,
    sets: list[str] | None = typer.Option(None, "--set", help="An input, key=value (repeatable)."),
    caseworker: str | None = typer.Option(None, "--caseworker", help="The caseworker's email or staff id."),
    contacts: list[str] | None = typer.Option(None, "--contact", help="ROLE:NAME:EMAIL (repeatable)."),
    note: str | None = typer.Option(None, "--note"),
    year_group_offset: int = typer.Option(
        0, "--year-group-offset", help="Years ahead (+1) of or behind (-1) the year group the date of birth gives."
    ),
    school_pattern: str = typer.Option(
        "primary_secondary", "--school-pattern", help="primary_secondary, infant_junior or three_tier."
    ),
) -> None:
    """Open a case and start its workflow; prints the new case id."""

    def go() -> None:
        a = _app()
        dob_date = _date_arg(dob, "--dob")
        assert dob_date is not None
        opened = a.cases.open_case(
            name=name,
            date_of_birth=dob_date,
            workflow=workflow,
            actor=_actor(a, by),
            inputs=_sets(sets),
            contacts=[parse_contact(c) for c in contacts or []],
            caseworker=caseworker,
            note=note,
            year_group_offset=year_group_offset,
            school_pattern=school_pattern,
            on=_date_arg(on, "--on"),
        )
        typer.echo(str(opened.case_id))

    _run(go)


@case_app.command("start")
def case_start(
    case_id: int,
    workflow: str,
    on: str | None = OnOpt,
    by: str | None = ByOpt,
    sets: list[str] | None = typer.Option(None, "--set", help="An input, key=value (repeatable)."),
    about: int | None = typer.Option(
        None, "--about", help="The workflow instance this one is about (a disagreement about its decision)."
    ),
    note: str | None = typer.Option(None, "--note"),
) -> None:
    """Start another workflow for a case (a disagreement, a cease, a review); prints its instance id."""

    def go() -> None:
        a = _app()
        opened = a.cases.start_workflow(
            case_id,
            workflow,
            actor=_actor(a, by),
            inputs=_sets(sets),
            note=note,
            parent_id=about,
            on=_date_arg(on, "--on"),
        )
        typer.echo(str(opened.instance_id))
        _print_follow_ons(opened.follow_ons)

    _run(go)


@case_app.command("exception")
def case_exception(
    case_id: int,
    deadline: str,
    head: str = typer.Option(..., "--head", help="Which exception the regulations allow (see the deadline)."),
    reason: str = typer.Option(..., "--reason", help="Why, in a sentence (kept on the record)."),
    on: str | None = OnOpt,
    by: str | None = ByOpt,
    workflow: str | None = typer.Option(None, "--workflow", help="Which workflow, if several have this deadline."),
) -> None:
    """Record an exception to a time limit: the due date is kept, the limit is marked excused."""

    def go() -> None:
        a = _app()
        excused = a.cases.record_exception(
            case_id, deadline, head, reason, actor=_actor(a, by), workflow=workflow, on=_date_arg(on, "--on")
        )
        typer.echo(f"case {case_id}: '{deadline}' (due {excused.due_on.isoformat()}, {excused.status}) excused: {head}")

    _run(go)


@case_app.command("contact")
def case_contact(
    case_id: int,
    contact: str = typer.Argument(..., help="ROLE:NAME:EMAIL (the email may be empty: letters by post)."),
    address: str | None = typer.Option(None, "--address", help="Postal address; separate lines with '|' or ','."),
    prefers: str = typer.Option("", "--prefers", help="email or post (default: as before; email for a new one)."),
    interpreter: str | None = typer.Option(None, "--interpreter", help="A language they need, e.g. Polish."),
    accessible_format: str | None = typer.Option(None, "--format", help="e.g. large print, braille, easy read."),
    by: str | None = ByOpt,
) -> None:
    """Add a contact to a case (or update one of the same role and name: what is not given is kept);
    messages that were waiting for a contact in this role, or for this contact's postal address, are
    sent to it (held messages go to the first contact recorded in a role)."""

    def go() -> None:
        a = _app()
        base = parse_contact(contact)
        lines = [p.strip() for p in (address or "").replace("|", "\n").replace(",", "\n").splitlines() if p.strip()]
        record = replace(
            base,
            address="\n".join(lines) or None,
            prefers=prefers,
            interpreter=interpreter,
            accessible_format=accessible_format,
        )
        released = a.cases.add_contact(case_id, record, actor=_actor(a, by))
        typer.echo(f"case {case_id}: contact recorded ({base.role}: {base.name})")
        for template in released:
            typer.echo(f"  queued {template} (it was waiting for this contact)")

    _run(go)


@case_app.command("reassign")
def case_reassign(
    case_id: int,
    to: str = typer.Option(..., "--to", help="The caseworker's staff id."),
    reason: str = typer.Option(..., "--reason", help="Why the case moves (kept in its history)."),
    by: str | None = ByOpt,
) -> None:
    """Give a case to another caseworker (a team manager or head of service); history keeps who and why."""

    def go() -> None:
        a = _app()
        before = a.cases.reassign(case_id, to, reason, actor=_actor(a, by))
        typer.echo(f"case {case_id}: {before or 'not allocated'} -> {to}")

    _run(go)


@case_app.command("details")
def case_details(
    case_id: int,
    surname: str | None = typer.Option(None, "--surname", help="Surname for the return, if the name does not split."),
    forename: str | None = typer.Option(None, "--forename", help="Forename for the return."),
    sex: str | None = typer.Option(None, "--sex", help="M or F, as the school census records it."),
    ethnicity: str | None = typer.Option(None, "--ethnicity", help="The census code, e.g. WBRI (REFU, NOBT)."),
    upn: str | None = typer.Option(
        None, "--upn", help="Unique pupil number (13 characters; its check letter is checked)."
    ),
    uln: str | None = typer.Option(None, "--uln", help="Unique learner number (10 digits)."),
    upn_unknown: str | None = typer.Option(None, "--upn-unknown", help="Why there is no UPN or ULN: UN1 ... UN10."),
    postcode: str | None = typer.Option(None, "--postcode", help="Home postcode."),
    primary_need: str | None = typer.Option(None, "--primary-need", help="Primary type of need, e.g. SLCN, ASD."),
    secondary_need: str | None = typer.Option(None, "--secondary-need", help="Secondary type of need."),
    setting_urn: str | None = typer.Option(None, "--setting-urn", help="URN of the setting named (6 digits)."),
    setting_ukprn: str | None = typer.Option(None, "--setting-ukprn", help="UKPRN of the provider named (8 digits)."),
    setting_code: str | None = typer.Option(
        None, "--setting-code", help="Kind of arrangement: OLA, OPA, EHE, EYP, OTH ..."
    ),
    setting_other: str | None = typer.Option(None, "--setting-other", help="Details of that arrangement."),
    transferred_from_la: str | None = typer.Option(None, "--transferred-from-la", help="The old council's code."),
    cease_reason: str | None = typer.Option(
        None, "--cease-reason", help="Why the plan ended, 1 to 9 (the return's codes)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Show, or record, what the SEN2 return asks about the child that casework does not (an empty
    value clears one); each change is kept in the case's history."""
    from . import sen2
    from .web.access import may_see

    given = {k: v for k, v in locals().items() if k in sen2.BY_NAME and v is not None}

    def go() -> None:
        a = _app()
        actor = _actor(a)
        with a.store.unit() as unit:
            try:
                info = unit.case_info(case_id)
            except NotFound:
                info = None
            if info is None or not may_see(actor, info.caseworker, a.directory):  # the same for both
                raise InvalidInput(f"case {case_id}: not found among the cases you may see")
            found = sen2.details(unit, case_id)
        if given:
            found = sen2.record(a, case_id, given, actor=actor)
        if as_json:
            _print_json(found)
            return
        for f in sen2.FIELDS:
            typer.echo(f"  {f.option[2:]:20} {found.get(f.name) or '-'}")

    _run(go)


@case_app.command("correct")
def case_correct(
    case_id: int,
    reason: str = typer.Option(..., "--reason", help="Why the step was a mistake (kept on the record)."),
    steps: int = typer.Option(1, "--steps", min=1, help="How many of the workflow's last steps to reverse."),
    workflow: str | None = typer.Option(None, "--workflow", help="Which workflow; default the case's last step's."),
    tell_family: bool = typer.Option(False, "--tell-family", help="Queue a message saying the record was corrected."),
    by: str | None = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Reverse a step recorded by mistake: the history keeps both; state, deadlines and unsent messages go back."""

    def go() -> None:
        a = _app()
        done = a.corrections.correct(
            case_id,
            steps=steps,
            reason=reason,
            actor=_actor(a, by),
            workflow=workflow,
            tell_family=tell_family,
        )
        if as_json:
            _print_json(
                {
                    "case": case_id,
                    "reversals": [
                        {
                            "instance": r.instance_id,
                            "workflow": r.workflow,
                            "reversed": [{"seq": s, "step": t, "on": d} for s, t, d in r.reversed],
                            "from": r.from_state,
                            "to": r.to_state,
                            "closed": r.closed,
                        }
                        for r in done.reversals
                    ],
                    "deadlines_reopened": done.deadlines_reopened,
                    "deadlines_cancelled": done.deadlines_cancelled,
                    "messages_cancelled": done.cancelled_messages,
                    "already_sent": [{"template": t, "to": to, "status": st} for t, to, st in done.already_sent],
                    "documents_cancelled": done.documents_cancelled,
                    "told_family": done.told_family,
                }
            )
            return
        for r in done.reversals:
            steps_text = ", ".join(f"{t} ({d})" for _, t, d in r.reversed)
            if r.closed:
                typer.echo(
                    f"case {case_id}: {r.workflow} (instance {r.instance_id}) closed: it was started by the step"
                )
            else:
                typer.echo(f"case {case_id}: {r.workflow} reversed {steps_text}: {r.from_state} -> {r.to_state}")
        if done.deadlines_reopened:
            typer.echo(f"  open again: {', '.join(done.deadlines_reopened)}")
        if done.deadlines_cancelled:
            typer.echo(f"  cancelled: {', '.join(done.deadlines_cancelled)}")
        if done.cancelled_messages or done.documents_cancelled:
            typer.echo(
                f"  not sent: {len(done.cancelled_messages)} message(s); not made: {len(done.documents_cancelled)} "
                "document(s)"
            )
        for template, to, status in done.already_sent:
            typer.echo(f"  already {status}, cannot be unsent: {template} to {to}")
        if done.already_sent and not tell_family:
            typer.echo("  the family may have read it: contact them (--tell-family queues a message when correcting)")
        if done.told_family:
            typer.echo(f"  queued a message to the family saying the record was corrected ({done.told_family})")

    _run(go)


def _print_follow_ons(follow_ons: Any) -> None:
    for f in follow_ons:
        if f.kind == "started":
            typer.echo(f"  started {f.workflow} (instance {f.instance_id})")
        elif f.kind == "signalled":
            typer.echo(f"  {f.workflow} (instance {f.instance_id}): {f.trigger} -> {f.detail}")
        else:
            typer.echo(f"  {f.workflow} (instance {f.instance_id}) did not take {f.trigger}: {f.detail}")


@case_app.command("list")
def case_list(
    state: str | None = typer.Option(None, "--state"),
    workflow: str | None = typer.Option(None, "--workflow"),
    caseworker: str | None = typer.Option(None, "--caseworker", help="Only this caseworker's cases (staff id)."),
    overdue: bool = typer.Option(False, "--overdue", help="Only workflows with a council deadline past its date."),
    open_only: bool = typer.Option(False, "--open", help="Only workflows still open."),
    unallocated: bool = typer.Option(False, "--unallocated", help="Only cases with no caseworker."),
    as_json: bool = JsonOpt,
) -> None:
    """Cases with their workflows (open or closed), state and next council deadline."""

    def go() -> None:
        a = _app()
        _actor(a)
        today = a.clock.today()
        with a.read() as db:
            rows = reading.list_cases(db, state, workflow)
        if caseworker:
            member = a.directory.find(caseworker)
            ids = {caseworker, *((member.id, member.email) if member else ())}
            rows = [r for r in rows if r["caseworker"] in ids]
        if unallocated:
            rows = [r for r in rows if not r["caseworker"]]
        if open_only:
            rows = [r for r in rows if r["open"]]
        for r in rows:
            r["overdue"] = bool(r["open"] and r["next_due"] and date.fromisoformat(r["next_due"]) < today)
        if overdue:
            rows = [r for r in rows if r["overdue"]]
        if as_json:
            _print_json(rows)
        else:
            _table(
                [
                    [
                        r["id"],
                        r["name"],
                        r["workflow"],
                        r["state"],
                        "open" if r["open"] else "closed",
                        (r["next_due"] or "-") + (" (overdue)" if r["overdue"] else ""),
                        r["caseworker"] or "unallocated",
                    ]
                    for r in rows
                ],
                ["ID", "NAME", "WORKFLOW", "STATE", "", "NEXT DUE", "CASEWORKER"],
            )

    _run(go)


@case_app.command("show")
def case_show(case_id: int, as_json: bool = JsonOpt, as_of: str | None = typer.Option(None, "--as-of")) -> None:
    """One case: its state, the steps open now, deadlines and history."""

    def go() -> None:
        a = _app(as_of, "--as-of")
        actor = _actor(a)
        with a.read() as db:
            view = reading.case_view(db, case_id, a.clock.today())
        # As Cases.allowed_by_instance, from the view's own rows: no second read, no SQLAlchemy.
        for w in view["workflows"]:
            definition = a.catalogue.get(w["workflow"], w["definition_version"]) if w["closed"] is None else None
            w["allowed"] = definition.allowed(w["state"], actor.role) if definition is not None else []
        current = next((w for w in reversed(view["workflows"]) if w["closed"] is None), None)
        view["allowed"] = current["allowed"] if current else []
        open_limits = [d for d in view["deadlines"] if d["closed"] is None]
        view["next_due"] = next((d for d in open_limits if d["party"] != "family"), None)
        view["family_periods"] = [d for d in open_limits if d["party"] == "family"]
        if as_json:
            _print_json(view)
            return
        typer.echo(f"Case {view['id']}: {view['name']} (born {view['date_of_birth']})")
        nxt = view["next_due"]
        if nxt:
            who = PARTY_WORDS.get(nxt["party"], nxt["party"])
            typer.echo(
                f"Next: {nxt['title']}, by {long_date(date.fromisoformat(nxt['due']))} ({nxt['regulation']}; "
                f"for {who}): {nxt['standing']['label']}"
            )
        else:
            typer.echo("Next: nothing is due from the council")
        for d in view["family_periods"]:
            until = long_date(date.fromisoformat(d["due"]))
            typer.echo(f"The family's own: {d['title']}, until {until} ({d['standing']['label']})")
        typer.echo(f"Caseworker: {view['caseworker'] or 'none (unallocated)'}")
        for c in view["contacts"]:
            how = c["email"] if c["email"] and c["prefers"] != "post" else "by post"
            where = (
                " (" + ", ".join((c["address"] or "no postal address").splitlines()) + ")" if how == "by post" else ""
            )
            needs = [f"interpreter: {c['interpreter']}"] if c["interpreter"] else []
            needs += [f"format: {c['accessible_format']}"] if c["accessible_format"] else []
            typer.echo(f"Contact: {c['role']}: {c['name']}, {how}{where}" + (f"; {'; '.join(needs)}" if needs else ""))
        for w in view["workflows"]:
            definition = a.catalogue.get(w["workflow"], w["definition_version"])
            state = definition.states[w["state"]]
            desc = " ".join((state.for_staff or state.description).split())
            ended = f" (ended {w['closed']})" if w["closed"] else ""
            typer.echo(f"\n[{w['instance']}] {definition.title}: {w['state']}{ended}")
            typer.echo(f"  {desc}")
            if w["closed"]:
                continue
            typer.echo("  Steps you can take now:" if w["allowed"] else "  Steps you can take now: none")
            for trig in w["allowed"]:
                spec = definition.transition(trig, w["state"])
                title = f": {spec.title}" if spec and spec.title else ""
                needs = [n for n, i in spec.inputs.items() if i.required and i.default is None] if spec else []
                typer.echo(f"    {trig}{title}" + (f" (needs {', '.join(needs)})" if needs else ""))
        held = [m for m in view["outbox"] if m["status"] == "to_address"]
        if held:
            typer.echo("\nNOTICES THE LAW REQUIRES, WAITING FOR A CONTACT")
            typer.echo(f"  (add one with: ehcp case contact {case_id} ROLE:NAME:EMAIL, and they are sent to it)")
            for m in held:
                typer.echo(f"  {m['template']}: to {m['role'].replace('|', ' or ')}")
        typer.echo("\nDEADLINES")
        _table(
            [[d["due"], d["standing"]["label"], d["workflow"], d["title"], d["regulation"]] for d in view["deadlines"]],
            ["DUE", "STANDING", "WORKFLOW", "WHAT", "SOURCE"],
            "  ",
        )
        typer.echo("\nHISTORY (in date order)")
        _table(
            [
                [
                    h["on"],
                    h["by"] + (f" (recorded by {h['recorded_by']})" if h["recorded_by"] else ""),
                    h["workflow"],
                    h["trigger"],
                    f"{h['from'] or '-'} -> {h['to']}",
                    h["note"] or "",
                ]
                for h in sorted(view["history"], key=lambda h: h["on"])
            ],
            ["ON", "BY", "WORKFLOW", "STEP", "STATE", "NOTE"],
            "  ",
        )

    _run(go)


@case_app.command("fire")
def case_fire(
    case_id: int,
    trigger: str,
    on: str | None = OnOpt,
    by: str | None = ByOpt,
    note: str | None = typer.Option(None, "--note", help="Why, in a sentence (kept in the history)."),
    sets: list[str] | None = typer.Option(None, "--set", help="An input, key=value (repeatable)."),
    workflow: str | None = typer.Option(None, "--workflow", help="Which workflow, if the case has several open."),
    expect_version: int | None = typer.Option(None, "--expect-version", help="Refuse if the case moved on."),
    accept_quality: str | None = typer.Option(
        None, "--accept-quality", help="Issue a plan despite its quality check's errors, for this reason (kept)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Take a step in a case's workflow."""

    def go() -> None:
        a = _app()
        fired = a.cases.fire(
            case_id,
            trigger,
            actor=_actor(a, by),
            inputs=_sets(sets),
            note=note,
            workflow=workflow,
            expected_version=expect_version,
            accept_quality=accept_quality,
            on=_date_arg(on, "--on"),
        )
        o = fired.outcome
        if as_json:
            _print_json(
                {
                    "case": case_id,
                    "trigger": o.trigger,
                    "from": o.from_state,
                    "to": o.to_state,
                    "on": o.on.isoformat(),
                    "met": o.met,
                    "met_standing": {name: now.state for name, now in fired.met},
                    "cancelled": o.cancelled,
                    "opened": [{"name": d.name, "due": d.due_on.isoformat(), "regulation": d.source} for d in o.opened],
                    "messages": [m.template for m in o.messages],
                    "documents": o.documents,
                    "follow_ons": [
                        {
                            "kind": f.kind,
                            "workflow": f.workflow,
                            "instance": f.instance_id,
                            "trigger": f.trigger,
                            "detail": f.detail,
                        }
                        for f in fired.follow_ons
                    ],
                }
            )
            return
        typer.echo(f"case {case_id}: {o.from_state} -> {o.to_state} ({o.trigger}, {o.on.isoformat()})")
        for name, now in fired.met:
            typer.echo(f"  {now.label}: {name}")
        for name in o.cancelled:
            typer.echo(f"  closed: {name}")
        for d in o.opened:
            typer.echo(f"  due {d.due_on.isoformat()}: {d.title} ({d.source})")
        if o.messages or o.documents:
            typer.echo(f"  queued: {len(o.messages)} message(s), {len(o.documents)} document(s)")
        _print_follow_ons(fired.follow_ons)

    _run(go)


@app.command("due")
def due(
    as_of: str | None = typer.Option(None, "--as-of", help="The date to look from; default today."),
    within: int = typer.Option(0, "--within", min=0, help="Also list deadlines due in the next N days."),
    as_json: bool = JsonOpt,
) -> None:
    """Open deadlines due or overdue, soonest first."""

    def go() -> None:
        a = _app(as_of, "--as-of")
        _actor(a)
        today = a.clock.today()
        horizon = today + timedelta(days=within)
        with a.read() as db:
            rows = reading.due(db, horizon, today)
            failed = reading.failed_messages(db)
        if failed:  # on stderr: --json stays the list; a failure is seen where people look, not only mailed
            typer.echo(
                f"{failed} message(s) could not be delivered: ehcp outbox --status failed, then ehcp outbox retry",
                err=True,
            )
        if as_json:
            _print_json(rows)
            return
        window = f"due by {horizon.isoformat()}" + (f" (today and the next {within} days)" if within else " (today)")
        if not rows:
            typer.echo(f"nothing overdue or {window}")
            return
        typer.echo(f"Council deadlines overdue or {window}, as of {today.isoformat()}:")
        _table(
            [
                [r["due"], r["standing"]["label"], r["case_id"], r["case_name"], r["title"], r["regulation"]]
                for r in rows
            ],
            ["DUE", "STANDING", "CASE", "NAME", "WHAT", "SOURCE"],
        )

    _run(go)


@app.command("transfers")
def transfers(
    academic_year: str | None = typer.Option(
        None, "--academic-year", help="e.g. 2026/27: children moving on at its end; default the current year."
    ),
    apply: bool = typer.Option(False, "--apply", help="Record each move on the child's open annual review."),
    on: str | None = OnOpt,
    by: str | None = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Children moving between phases of education, and their reg 18 dates (15 February / 31 March)."""
    from . import phases

    def go() -> None:
        a = _app(on)
        try:
            year = phases.parse_academic_year(academic_year) if academic_year else None
        except ValueError as exc:
            raise InvalidInput(f"--academic-year: {exc}") from None
        if year is None:
            year = phases.academic_year_starting(a.clock.today())
        rows = a.cases.phase_transfers(year, actor=_actor(a, by), apply=apply)
        if as_json:
            _print_json(rows)
            return
        typer.echo(f"Moves between phases at the end of {year}/{(year + 1) % 100:02d}: {len(rows)}")
        _table(
            [[r["case"], r["name"], r["year_group"], r["transfer"], r["deadline"], r["action"]] for r in rows],
            ["CASE", "NAME", "NOW IN", "MOVE", "AMEND BY", "REVIEW"],
        )

    _run(go)


report_app = typer.Typer(
    help="Reports: one limit's timeliness (no subcommand), or 'timeliness' for the whole picture.",
    invoke_without_command=True,
)
app.add_typer(report_app, name="report")


@report_app.callback()
def report(
    ctx: typer.Context,
    deadline: str = typer.Option("final_plan", "--deadline", help="Which limit to count (default the 20 weeks)."),
    since: str | None = typer.Option(None, "--since", help="Closed on or after this date."),
    until: str | None = typer.Option(None, "--until", help="Closed on or before this date."),
    as_json: bool = JsonOpt,
) -> None:
    """Timeliness of one time limit, with and without exceptions, as the DfE's SEN2 return counts it."""
    if ctx.invoked_subcommand is not None:
        return

    def go() -> None:
        a = _app()
        _actor(a)
        result = queries.timeliness(a.engine, deadline, _date_arg(since, "--since"), _date_arg(until, "--until"))
        if as_json:
            _print_json(result)
            return
        ex = result["excluding_exceptions"]
        typer.echo(
            f"{deadline}: {result['on_time']} of {result['closed']} on time "
            f"({result['on_time_percent'] if result['on_time_percent'] is not None else '-'}%); "
            f"excluding {result['with_exception']} with an exception: {ex['on_time']} of {ex['closed']} "
            f"({ex['on_time_percent'] if ex['on_time_percent'] is not None else '-'}%)"
        )

    _run(go)


@report_app.command("timeliness")
def report_timeliness(
    from_: str | None = typer.Option(None, "--from", help="Limits closed on or after this date (default: a year ago)."),
    to: str | None = typer.Option(None, "--to", help="Limits closed on or before this date (default: today)."),
    chart: Path | None = typer.Option(None, "--chart", help="Write the charts to this SVG file (or folder)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the chart file."),
    as_json: bool = JsonOpt,
) -> None:
    """New plans within 20 weeks (with and without exceptions, as the DfE counts them), the weeks they
    took and where those weeks went, every other time limit kept, and advice by adviser."""
    from datetime import timedelta

    from .reports import timeliness

    def go() -> None:
        a = _app()
        _actor(a)
        until = _date_arg(to, "--to") or a.clock.today()
        since = _date_arg(from_, "--from") or until - timedelta(days=365)
        if since > until:
            raise InvalidInput(f"--from: {since.isoformat()} is after --to ({until.isoformat()})")
        found = timeliness(a, since, until)
        if chart is not None:
            from .web.report_pages import timeliness_charts

            target = _write_charts(a, chart, "timeliness", timeliness_charts(found, a.settings.reports), force)
        if as_json:
            _print_json(found.as_dict())
            return
        for line in timeliness_lines(found):
            typer.echo(line)
        if chart is not None:
            typer.echo(f"charts written to {target}")

    _run(go)


@report_app.command("sen2")
def report_sen2(
    out: Path | None = typer.Option(None, "--out", help="Write the return (XML) to this file."),
    reference_date: str | None = typer.Option(
        None, "--reference-date", help="The census day (default: the next, the third Thursday of January)."
    ),
    check_file: Path | None = typer.Option(None, "--check", help="Instead, check a SEN2 file made elsewhere."),
    draft: bool = typer.Option(False, "--draft", help="Write the file even if it would fail (not for sending)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the file."),
    as_json: bool = JsonOpt,
) -> None:
    """The SEN2 return for the Department for Education: built from the record, checked against the
    schema and the rules, with each field the record cannot supply yet and the cases concerned.
    Exits 1 if the return would fail. For the head of service (it holds every child's details)."""
    from . import sen2_return as sen2r
    from .sen2 import schema_path

    def go() -> None:
        a = _app()
        actor = _actor(a)
        if check_file is not None:
            if actor.role == "administrator":
                raise NotAuthorised("checking a return reads children's details: it is for staff who work with cases")
            try:
                if check_file.stat().st_size > sen2r.MAX_BYTES:
                    raise InvalidInput(f"--check: {check_file} is larger than any council's return")
                data = check_file.read_bytes()
            except OSError as exc:
                raise InvalidInput(f"--check: cannot read {check_file}: {exc.strerror}") from None
            problems = sen2r.check(data)
            _print_problems(problems, as_json)
            if problems:
                raise typer.Exit(1)
            return
        if actor.role != "head_of_service":
            raise NotAuthorised(
                f"the SEN2 return holds every child's details: it is for the head of service; you are {actor.role}"
            )
        day = _date_arg(reference_date, "--reference-date") or sen2r.next_census_day(a.clock.today())
        found = sen2r.build(a, day)
        data = sen2r.to_xml(found)
        problems = sen2r.needed(found) + sen2r.check(data, day.year)
        written = None
        if out is not None and (not problems or draft):
            _not_over_the_service(a.settings, out)
            if out.exists() and not force:
                raise InvalidInput(f"--out: {out} exists; add --force to overwrite it")
            from notifications.folder import write_atomically

            write_atomically(out, data)  # readable by this account alone (0600)
            written = out
        gaps = [g for g in found.gaps.values()]
        if as_json:
            _print_json({
                "reference_date": day.isoformat(), "period": [found.period[0].isoformat(), found.period[1].isoformat()],
                "schema": schema_path(day.year).name, "counts": found.counts(), "valid": not problems,
                "written": str(written) if written else None,
                "problems": [p.__dict__ for p in problems],
                "gaps": [{"field": g.name, "why": g.why, "required": g.required, "cases": g.cases} for g in gaps],
            })  # fmt: skip
        else:
            c = found.counts()
            period = f"{found.period[0]} to {found.period[1]}"
            typer.echo(
                f"SEN2 return, reference date {day}, period {period}; checked against {schema_path(day.year).name}"
            )
            typer.echo(f"  {c['persons']} children and young people; {c['requests']} requests, {c['assessments']} "
                       f"assessments, {c['plans_issued']} plans issued, {c['active_plans']} plans in force, "
                       f"{c['plans_ceased']} ended")  # fmt: skip
            if gaps:
                typer.echo("What the record cannot supply yet (record it on each case: ehcp case details):")
                for g in sorted(gaps, key=lambda g: (not g.required, g.name)):
                    shown = ", ".join(str(n) for n in g.cases[:20]) + (
                        f" and {len(g.cases) - 20} more" if len(g.cases) > 20 else ""
                    )
                    typer.echo(f"  {g.name}{' (needed)' if g.required else ''}: {g.why}"
                               + (f"; cases {shown}" if g.cases else ""))  # fmt: skip
            _print_problems(problems, False)
            if written is not None:
                typer.echo(f"written to {written}" + (" (a draft that would fail: do not send it)" if problems else ""))
            elif out is not None:
                typer.echo(f"not written to {out}: the return would fail (--draft writes it to look at)")
        if problems:
            raise typer.Exit(1)

    _run(go)


def _print_problems(problems: list[Any], as_json: bool) -> None:
    if as_json:
        _print_json([p.__dict__ for p in problems])
        return
    if not problems:
        typer.echo("The return passes the schema and every rule.")
        return
    typer.echo(f"The return would fail: {len(problems)} problems")
    for p in problems[:200]:
        typer.echo(f"  {p.rule:7} {p.where}: {p.what}")
    if len(problems) > 200:
        typer.echo(f"  ... and {len(problems) - 200} more (--json lists them all)")


def _write_charts(a: App, chart: Path, name: str, svgs: list[str], force: bool) -> Path:
    """Charts stacked into one SVG file (``chart``, or ``NAME.svg`` in the folder ``chart``)."""
    target = chart if chart.suffix == ".svg" else chart / f"{name}.svg"
    _not_over_the_service(a.settings, target)
    if target.exists() and not force:
        raise InvalidInput(f"--chart: {target} exists; add --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_stack(svgs), encoding="utf-8")
    return target


def _sees(a: App) -> Callable[[str | None], bool]:
    """The cases the person running the command may see, as on the web's pages."""
    from .web.access import may_see

    actor = _actor(a)
    return lambda caseworker: may_see(actor, caseworker, a.directory)


@report_app.command("forecast")
def report_forecast(
    weeks: int = typer.Option(12, "--weeks", min=1, max=52, help="How many weeks ahead, from this week."),
    chart: Path | None = typer.Option(None, "--chart", help="Write the charts to this SVG file (or folder)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the chart file."),
    as_json: bool = JsonOpt,
) -> None:
    """Time limits, annual reviews, phase transfers and advice requests falling due each week, by
    team; and the reviews that will be late at each team's current pace."""
    from .outlook import KINDS, PACE_WEEKS, forecast

    def go() -> None:
        a = _app()
        found = forecast(a, a.clock.today(), _sees(a), weeks)
        if chart is not None:
            from .web.report_pages import forecast_charts

            target = _write_charts(a, chart, "forecast", forecast_charts(found), force)
        if as_json:
            _print_json(found.as_dict())
            return
        typer.echo(f"Falling due from the week of {found.weeks[0].isoformat()}, {weeks} weeks")
        over = found.overdue_now
        typer.echo("Overdue now: " + ", ".join(f"{words.lower()} {over[kind]}" for kind, words in KINDS))
        _table(
            [[row["week"], *[row[kind] for kind, _ in KINDS], row["total"]] for row in found.by_week],
            ["WEEK OF", "REVIEWS", "TRANSFERS", "ADVICE", "OTHER", "TOTAL"],
        )
        typer.echo("")
        typer.echo(f"Annual reviews at each team's pace (reviews held a week over the last {PACE_WEEKS} weeks):")
        _table(
            [[r["team"], r["held_a_week"], r["overdue_now"], r["due_in_period"], r["late_at_this_pace"]]
             for r in found.reviews],
            ["TEAM", "HELD A WEEK", "OVERDUE NOW", "DUE", "LATE AT THIS PACE"],
        )  # fmt: skip
        if chart is not None:
            typer.echo(f"charts written to {target}")

    _run(go)


@report_app.command("at-risk")
def report_at_risk(
    measure: bool = typer.Option(
        False, "--measure", help="Instead, measure how well the warnings would have done over --from to --to."
    ),
    from_: str | None = typer.Option(None, "--from", help="With --measure: limits due from this date (a year ago)."),
    to: str | None = typer.Option(None, "--to", help="With --measure: limits due up to this date (yesterday)."),
    lead: int = typer.Option(28, "--lead", min=1, max=365, help="With --measure: days ahead the warning is asked."),
    chart: Path | None = typer.Option(None, "--chart", help="Write the chart to this SVG file (or folder)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the chart file."),
    as_json: bool = JsonOpt,
) -> None:
    """Open time limits likely to be missed, learnt from how long this council's own stages have
    taken, with why; --measure tests the warnings on the past (breaches flagged, missed, false alarms)."""
    from .outlook import at_risk
    from .outlook import measure as measured

    def go() -> None:
        a = _app()
        sees = _sees(a)
        today = a.clock.today()
        if measure:
            if _actor(a).role not in ("team_manager", "head_of_service", "auditor"):  # as the web's Reports
                raise NotAuthorised("--measure counts over every case's history: it is for managers and auditors")
            until = _date_arg(to, "--to") or today - timedelta(days=1)
            since = _date_arg(from_, "--from") or until - timedelta(days=365)
            if since > until or until >= today:
                raise InvalidInput("--from must be before --to, and --to before today (outcomes must be known)")
            result = measured(a, since, until, lead).as_dict()
            if as_json:
                _print_json({"from": since.isoformat(), "to": until.isoformat(), **result})
                return
            typer.echo(
                f"Warnings {lead} to {lead + 6} days ahead, for limits due {since} to {until}, "
                f"at {result['threshold_percent']}% or more:"
            )
            for key, value in result.items():
                typer.echo(f"  {key.replace('_', ' '):32} {value if value is not None else '-'}")
            return
        found = at_risk(a, today, sees)
        if chart is not None:
            from .web.report_pages import at_risk_charts

            target = _write_charts(a, chart, "at-risk", at_risk_charts(found), force)
        if as_json:
            _print_json(found.as_dict())
            return
        typer.echo(
            f"{len(found.flagged)} of {len(found.rows)} open time limits at risk "
            f"({found.threshold}% or more likely to be missed) on {today.isoformat()}"
        )
        _table(
            [[r["case"], r["due_on"], r["days_left"], f"{r['percent']}%", r["title"][:60]] for r in found.flagged],
            ["CASE", "DUE", "DAYS LEFT", "CHANCE", "TIME LIMIT"],
        )
        for r in found.flagged:
            typer.echo(f"  case {r['case']}, {r['deadline']}: {r['why']}")
        if chart is not None:
            typer.echo(f"chart written to {target}")

    _run(go)


def _stack(svgs: list[str]) -> str:
    """Several charts as one SVG file, one under another."""
    import re

    heights = [int(re.search(r'height="(\d+)"', s).group(1)) for s in svgs]  # type: ignore[union-attr]
    width = max(int(re.search(r'width="(\d+)"', s).group(1)) for s in svgs)  # type: ignore[union-attr]
    parts, y = [], 0
    for svg, h in zip(svgs, heights, strict=True):
        parts.append(f'<g transform="translate(0,{y})">{svg.split(">", 1)[1].rsplit("</svg>", 1)[0]}</g>')
        y += h + 20
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" viewBox="0 0 {width} {y}">' + (
        "".join(parts) + "</svg>\n"
    )


def timeliness_lines(found: Any) -> list[str]:
    """The report as text a manager reads."""
    d = found.as_dict()
    new = d["new_plans"]

    def pc(value: float | None) -> str:
        return "-" if value is None else f"{value}%"

    ex = new["excluding_exceptions"]
    lines = [
        f"Timeliness, limits closed {d['from']} to {d['to']}",
        "",
        f"New EHC plans issued: {new['issued']}; within 20 weeks: {new['within_20_weeks']} ({pc(new['percent'])})",
        f"  excluding the {new['with_exception']} with an exception: {ex['on_time']} of {ex['count']} "
        f"({pc(ex['percent'])})",
        f"  median weeks from request to plan: {new['median_weeks'] if new['median_weeks'] is not None else '-'}",
        "  weeks taken: " + ", ".join(f"{b['weeks']}: {b['plans']}" for b in new["weeks_bands"]),
        "",
        "Where the weeks go (median days in each stage, for the plans above):",
    ]
    lines += [f"  {s['words']:28} {s['median_days']:>6} days (longest {s['longest_days']})" for s in d["stages"]]
    lines += ["", "By team:"]
    lines += [
        f"  {t['team']:28} {t['on_time']} of {t['count']} within 20 weeks ({pc(t['percent'])})" for t in d["by_team"]
    ]
    lines += ["", "Every time limit closed in the period (on time / late / late with an exception):"]
    for limit in d["limits"]:
        lines.append(
            f"  {limit['title'][:70]:70} {limit['on_time']:>4} / {limit['late']:>3} / {limit['late_with_exception']:>3}"
            f"  {pc(limit['percent']):>6}  ({limit['source']})"
        )
    if d["advice"]:
        lines += ["", "Advice returned by its due date, by adviser (SEND Regulations 2014 reg 8(1)):"]
        lines += [
            f"  {a['words']:28} {a['on_time']} of {a['answered']} ({pc(a['percent'])}), median {a['median_days']} days"
            for a in d["advice"]
        ]
    return lines


# -- database and demo -------------------------------------------------------------------------


@app.command("doctor")
def doctor(as_json: bool = JsonOpt) -> None:
    """Check the installation for what would expose children's data; exit 1 if there is a problem."""
    from . import doctor as checks

    def go() -> None:
        settings = load_settings(_state["config"])
        config_file = Path(_state["config"] or os.environ.get("EHCP_CONFIG") or "config.yaml")
        found = checks.check(settings, config_file)
        if as_json:
            _print_json([{"severity": f.severity, "where": f.where, "what": f.what} for f in found])
        else:
            for f in found:
                typer.echo(str(f))
            if not found:
                typer.echo("no problems found: data files private, no secrets in files, no plain-text logins")
        if any(f.severity == "problem" for f in found):
            raise typer.Exit(1)

    _run(go)


@db_app.command("init")
def db_init() -> None:
    """Create the database (a SQLite file, and its folder) at the newest schema; one that exists is upgraded."""

    def go() -> None:
        settings = _settings("creating the database")
        typer.echo(_initialised(database.initialise(settings.owner_database(), settings.database())))

    _run(go)


def _initialised(done: database.Initialised) -> str:
    granted = _granted(done)
    if done.created:
        return f"created the database at {done.url} (schema {done.after}){granted}"
    if done.before == done.after:
        return f"the database at {done.url} already exists; its schema is up to date ({done.after}){granted}"
    return (
        f"the database at {done.url} already exists; upgraded its schema from {done.before} to {done.after}" + granted
    )


def _granted(done: database.Initialised) -> str:
    if done.granted is None:
        return ""
    return f"; the service's login {done.granted} may read and write rows only (history: add only)"


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the newest migration."""

    def go() -> None:
        settings = _settings("upgrading the database")
        done = database.upgrade(settings.owner_database(), settings.database())
        was = f" (was {done.before or 'empty'})" if done.before != done.after else " (already)"
        typer.echo(f"schema at {done.after}{was}{_granted(done)}")

    _run(go)


@db_app.command("downgrade")
def db_downgrade(
    revision: str = typer.Argument(..., help="The migration to go back to, e.g. 0006."),
    allow_data_loss: bool = typer.Option(
        False, "--allow-data-loss", help="Go ahead although the database holds data a downgrade may drop."
    ),
) -> None:
    """Take the schema back to an earlier migration; refused while the database holds a council's data."""

    def go() -> None:
        engine, _ = database.reach(_settings("downgrading the database").owner_database())
        try:
            database.downgrade(engine, revision, allow_data_loss=allow_data_loss)
        finally:
            engine.dispose()
        typer.echo(f"schema at {revision}")

    _run(go)


@app.command("backup")
def backup_command(
    out: Path = typer.Option(..., "--out", help="Where to write the backup (a file only you can read)."),
    force: bool = typer.Option(False, "--force", help="Write over an existing file."),
) -> None:
    """Copy the whole database, consistently, while the service runs (SQLite's online backup; pg_dump)."""
    from .store.backup import backup

    def go() -> None:
        settings = _settings("a backup (a copy of every child's record)")
        _not_over_the_service(settings, out)
        written = backup(settings.database(), out, force=force)
        typer.echo(f"backed up to {written} ({written.stat().st_size:,} bytes)")

    _run(go)


@app.command("restore")
def restore_command(
    source: Path = typer.Argument(..., help="A file 'ehcp backup' wrote."),
    yes: bool = typer.Option(False, "--yes", help="Replace the current database: nothing in it is kept."),
) -> None:
    """Put the database back as a backup holds it (stop the scheduler and workers first)."""
    from .store.backup import restore

    def go() -> None:
        if not yes:
            raise InvalidInput("restoring replaces every case in the database with the backup's: add --yes")
        settings = _settings("restoring the database")
        restore(settings.owner_database(), source)
        engine, _ = database.reach(settings.owner_database())
        try:
            database.grant_rows(engine, settings.database())
        finally:
            engine.dispose()
        typer.echo(f"restored from {source}")

    _run(go)


staff_app = typer.Typer(help="Staff accounts for the web application's own sign-in (password and TOTP).")
app.add_typer(staff_app, name="staff")


@staff_app.command("password")
def staff_password(staff_id: str = typer.Argument(..., help="A staff id from config.yaml.")) -> None:
    """Set your own password (asked twice, never echoed) and a new authenticator secret."""
    from .web.accounts import Accounts

    def go() -> None:
        a = _app()
        who = _actor(a)
        if who.id != staff_id:
            raise InvalidInput(
                "a password is set by its owner only; an administrator sends a set-up link instead: "
                f"ehcp staff setup {staff_id}"
            )
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
        accounts = Accounts(a.engine, a.directory, a.clock, a.settings.web)
        secret = accounts.set_password(staff_id, password)
        typer.echo(f"password set for {staff_id}; add this to their authenticator app:")
        typer.echo(accounts.provisioning_uri(staff_id, secret, a.settings.council.name))

    _run(go)


@staff_app.command("setup")
def staff_setup(staff_id: str = typer.Argument(..., help="A staff id from config.yaml.")) -> None:
    """Reset a member of staff's sign-in (an administrator): they are signed out everywhere and sent a
    link, to their own address, to set a new password and authenticator key."""
    from .web.accounts import send_setup_link

    def go() -> None:
        a = _app()
        who = _actor(a)
        if who.role != "administrator":
            raise InvalidInput(f"resetting a sign-in is for an administrator; you are {who.id} ({who.role})")
        sent_to = send_setup_link(a, staff_id)
        typer.echo(f"{staff_id} is signed out everywhere; a set-up link goes to {sent_to} with the next sweep")

    _run(go)


@staff_app.command("code")
def staff_code(staff_id: str = typer.Argument(..., help="A demo account's staff id.")) -> None:
    """The current sign-in code of a demo account (made by 'ehcp demo'); no other account's."""
    from .web.accounts import Accounts

    def go() -> None:
        a = _app()
        typer.echo(Accounts(a.engine, a.directory, a.clock, a.settings.web).demo_code(staff_id))

    _run(go)


portal_app = typer.Typer(help="The online service for families and advisers (links and codes by email).")
app.add_typer(portal_app, name="portal")


@portal_app.command("code")
def portal_code(email: str = typer.Argument(..., help="A demo person's email address.")) -> None:
    """A sign-in code for a person the demo made (after their link was used); no real person's."""
    from .portal import Portal

    def go() -> None:
        typer.echo(Portal(_app()).demo_code(email))

    _run(go)


@app.command("serve")
def serve(
    host: str | None = typer.Option(None, "--host", help="Default: web.host in config.yaml (127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Default: web.port in config.yaml (8080)."),
    threads: int = typer.Option(8, "--threads", min=1, help="Requests served at once."),
    scheduler: bool = typer.Option(True, "--scheduler/--no-scheduler", help="Also run the sweep (one per database)."),
) -> None:
    """Serve the staff web application (waitress), with the sweep-and-send scheduler beside it."""
    import logging

    from waitress import serve as waitress_serve  # type: ignore[import-untyped]

    from .scheduler import SchedulerLock, scheduler_for
    from .web.views import create_app

    def go() -> None:
        a = _app(operator_for="serving the web application and its scheduler")
        a.background_checkpoints = True
        flask = create_app(a.settings, a.clock, engine_app=a)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for noisy in ("fontTools", "weasyprint"):  # a line per font table: not what an operator reads
            logging.getLogger(noisy).setLevel(logging.WARNING)
        running = None
        if scheduler:
            lock = SchedulerLock(a)
            if lock.acquire():
                running = scheduler_for(a, background=True)
                running.start()
            else:
                typer.echo("another process runs the scheduler for this database: this one only serves", err=True)
        where_host, where_port = host or a.settings.web.host, port or a.settings.web.port
        typer.echo(f"serving {a.settings.council.name}'s SEND casework at http://{where_host}:{where_port}/", err=True)
        try:
            waitress_serve(flask, host=where_host, port=where_port, threads=threads, ident="ehcp")
        finally:
            if running is not None:
                running.shutdown(wait=False)

    _run(go)


audit_app = typer.Typer(help="Is the record as the service wrote it? (history's hash chain, and seals)")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    seal: Path | None = typer.Option(None, "--seal", help="Also check the entries a seal ('audit seal') names."),
    as_json: bool = JsonOpt,
) -> None:
    """Check every history entry against the chain; exit 1 and name each break if there is one."""
    from .audit import read_seal, verify
    from .progress import Progress

    def go() -> None:
        a = _app()
        _actor(a)
        sealed = read_seal(seal) if seal is not None else None
        with Progress().phase("history entries checked") as advance:
            done = verify(a.engine, sealed, progress=advance)
        if as_json:
            _print_json(done.__dict__ | {"intact": done.intact})
        else:
            checked = f"{done.entries:,} history entries of {done.instances:,} workflow instances"
            if seal is not None:
                checked += f", and {done.sealed_checked:,} entries named in the seal"
            if done.intact:
                typer.echo(f"intact: {checked}; every entry follows the one before it")
            else:
                typer.echo(f"BROKEN: {len(done.breaks)} break(s) in {checked}:")
                for line in done.breaks:
                    typer.echo(f"  {line}")
        if not done.intact:
            raise typer.Exit(1)

    _run(go)


@audit_app.command("seal")
def audit_seal(
    out: Path = typer.Option(
        ..., "--out", help="The seal file: keep it where the database's administrators cannot write."
    ),
    force: bool = typer.Option(False, "--force", help="Write over an existing file."),
) -> None:
    """Write the latest hash of every workflow instance, so that 'audit verify --seal' shows later changes."""
    from .audit import write_seal

    def go() -> None:
        a = _app()
        _actor(a)
        _not_over_the_service(a.settings, out)
        if out.exists() and not force:
            raise InvalidInput(f"--out: {out} exists; choose another name, or add --force to write over it")
        count = write_seal(a.engine, out, a.clock.now())
        typer.echo(f"sealed {count:,} workflow instances in {out}")

    _run(go)


@db_app.command("status")
def db_status() -> None:
    """The schema version of the database and of the code."""

    def go() -> None:
        engine, current = database.reach(_settings().database())
        engine.dispose()
        typer.echo(f"database {current or 'empty'}; code {database.head_revision()}")

    _run(go)


@app.command("simulate")
def simulate_year(
    plans: int = typer.Option(8000, "--plans", min=0, max=1_000_000, help="EHC plans in force at the start."),
    requests: int = typer.Option(1500, "--requests", min=0, max=1_000_000, help="New requests a year."),
    from_: str | None = typer.Option(None, "--from", help="The first day (default: a year ago)."),
    days: int = typer.Option(365, "--days", min=1, max=3660, help="How many days to run."),
    seed: int = typer.Option(2014, "--seed", help="The same seed gives the same county."),
    as_json: bool = JsonOpt,
) -> None:
    """Run a generated county through a year, day by day, in an empty database: reviews held, requests
    assessed at varied paces, every sweep run and its messages sent to a counting sink (no real people).
    Prints where the time went, the messages and breaches per week, and the timeliness that resulted."""
    from .progress import Progress
    from .reports import timeliness
    from .simulate import simulate

    def go() -> None:
        settings = _settings("the simulated county")
        today = SystemClock().today()
        start = _date_arg(from_, "--from") or today - timedelta(days=days)
        made = database.initialise(settings.owner_database(), settings.database())
        if made.created or made.before != made.after:
            typer.echo(_initialised(made))
        clock = FixedClock(start)
        a = build(settings, clock)
        started = time.perf_counter()
        progress = Progress()
        with progress.phase("simulating days", days) as advance:
            year = simulate(a, clock, plans=plans, requests=requests, start=start, days=days, seed=seed,
                            on_day=lambda _day, _year: advance(1))  # fmt: skip
        wall = time.perf_counter() - started
        last = start + timedelta(days=days - 1)
        clock.set(last)
        found = timeliness(a, start, last).as_dict()
        if as_json:
            seconds = {k: round(v, 1) for k, v in year.seconds.items()}
            _print_json({"from": start.isoformat(), "days": days, "plans": year.plans, "requests": year.requests,
                         "steps": year.steps, "breaches": year.breaches, "messages": year.messages,
                         "wall_seconds": round(wall, 1), "seconds": seconds, "refused": dict(year.refused),
                         "by_week": year.by_week, "timeliness": found["new_plans"]})  # fmt: skip
            return
        typer.echo(f"\n{year.plans:,} plans in force and {year.requests:,} requests, {start} to {last}: "
                   f"{year.steps:,} steps, {year.breaches:,} breaches recorded, {year.messages:,} messages sent, "
                   f"in {wall:.1f} s")  # fmt: skip
        for phase, took in year.seconds.items():
            typer.echo(f"  {phase:28} {took:7.1f} s")
        if year.refused:
            typer.echo("Steps a case could not take then: " + ", ".join(f"{k} ({n})" for k, n in year.refused.items()))
        _table([[w["week_of"], w.get("steps", 0), w.get("messages", 0), w.get("breaches", 0)] for w in year.by_week],
               ["WEEK OF", "STEPS", "MESSAGES", "BREACHES"])  # fmt: skip
        new = found["new_plans"]
        percent = new["percent"] if new["percent"] is not None else "-"
        median = new["median_weeks"] if new["median_weeks"] is not None else "-"
        typer.echo(f"\nNew plans issued: {new['issued']}; within 20 weeks: {new['within_20_weeks']} ({percent}%); "
                   f"median weeks {median} (ehcp report timeliness)")  # fmt: skip

    _run(go)


def _demo_reports(a: App, today: date) -> None:
    """What the reports say of the demo caseload, in a few lines, and where to see the rest."""
    from . import sen2_return as sen2r
    from .outlook import at_risk

    risky = at_risk(a, today)
    typer.echo(
        f"\nAt risk of being missed: {len(risky.flagged)} of {len(risky.rows)} open time limits "
        "(ehcp report at-risk; ehcp report forecast; ehcp report timeliness)"
    )
    if a.settings.council.la_code is None:
        return
    day = sen2r.next_census_day(today)
    found = sen2r.build(a, day)
    problems = sen2r.needed(found) + sen2r.check(sen2r.to_xml(found), day.year)
    needed = sum(len(g.cases) for g in found.gaps.values() if g.required)
    typer.echo(
        f"The SEN2 return for {day.isoformat()}: {len(found.persons)} children and young people; "
        + ("it passes the schema and every rule" if not problems else f"it would fail ({len(problems)} problems)")
        + (f"; {needed} needed details missing" if needed else "")
        + " (robin.demo: Reports, SEN2 return; or ehcp report sen2 as the head of service)"
    )


@app.command("demo")
def demo(
    cases: int = typer.Option(
        80, "--cases", min=1, max=100000, help="How many generated cases (at least one per stage of each workflow)."
    ),
    seed: int = typer.Option(2014, "--seed", help="Random seed: the same seed gives the same caseload."),
    as_of: str | None = typer.Option(None, "--as-of", help="The date the caseload is seen from; default today."),
) -> None:
    """Seed a generated demo caseload (no real people) and show what is due."""
    from .demo import seed_caseload

    def go() -> None:
        settings = _settings("the demo caseload")
        today = _date_arg(as_of, "--as-of") or SystemClock().today()
        # as 'ehcp db init': the demo makes its database
        made = database.initialise(settings.owner_database(), settings.database())
        if made.created or made.before != made.after:
            typer.echo(_initialised(made))
        a = build(settings, FixedClock(today))
        created = seed_caseload(a, cases, seed, today)
        if created:
            typer.echo(f"seeded {created} generated cases into {settings.database()}")
        else:
            typer.echo(f"the database already has cases: {settings.database()}")
        counts: dict[str, int] = {}
        for row in queries.list_cases(a.engine):
            counts[f"{row['workflow']}: {row['state']}"] = counts.get(f"{row['workflow']}: {row['state']}", 0) + 1
        typer.echo("\nCases by stage")
        for stage, n in sorted(counts.items()):
            typer.echo(f"  {n:4}  {stage}")
        typer.echo(f"\nDue or overdue on {today.isoformat()} (ehcp due --as-of {today.isoformat()}):")

    _run(go)
    due(as_of=as_of, within=0, as_json=False)

    def send() -> None:
        from .progress import Progress
        from .scheduler import run_once

        settings = _settings()
        today = _date_arg(as_of, "--as-of") or SystemClock().today()
        if settings.notifications.transport != "folder":
            typer.echo(f"\nTo send the reminders and escalations due: ehcp tick --as-of {today.isoformat()}")
            return
        a = build(settings, FixedClock(today))
        ticked = run_once(a, documents=False, progress=Progress())  # documents stay queued: the demo is quick
        swept, sent = ticked.swept, ticked.sent
        typer.echo(
            f"\nThe sweep (ehcp tick --as-of {today.isoformat()}): breaches recorded {len(swept.breaches)}, "
            f"reminders and escalations queued {swept.count('queued')}, skipped {swept.count('skipped')}"
        )
        if sent is not None:
            typer.echo(
                f"Sent {sent.count('sent')} messages to {settings.outbox_path()} (.eml files; letters for "
                "printing in letters/); ehcp outbox lists them"
            )
        queued = sum(1 for _ in queries.queued_documents(a.engine))
        if queued:
            typer.echo(
                f"{queued} documents (plans, notices, letters) are queued: ehcp docs process renders them as PDFs"
            )
        _demo_reports(a, today)

    _run(send)

    def sign_ins() -> None:
        from .web.accounts import Accounts

        settings = _settings()
        a = build(settings, SystemClock())
        accounts = Accounts(a.engine, a.directory, a.clock, settings.web)
        typer.echo(
            f"\nThe web application (ehcp serve): http://{settings.web.host}:{settings.web.port}/ "
            "Demo sign-ins (the code: ehcp staff code STAFF_ID, or the secret in an authenticator app):"
        )
        for member in settings.staff:
            password = f"{member.id}-sign-in"
            if not accounts.exists(member.id):
                accounts.set_password(member.id, password, demo=True)
            typer.echo(f"  {member.id:13} {member.role:16} password {password}")
        from .demo import portal_sign_ins

        found = portal_sign_ins(a)
        if settings.notifications.transport == "folder":
            a.dispatcher().dispatch()  # the adviser's invitation, beside the day's other messages
        if found:
            typer.echo(
                "\nThe online service for families and advisers (each link works once; after it, the code is "
                f"emailed (in the demo: a .eml file in {settings.outbox_path()}) or printed by ehcp portal code EMAIL):"
            )
            for who, email, link in found:
                typer.echo(f"  {who}: {email}\n    {link}")

    _run(sign_ins)


# -- reminders, escalations and sending -------------------------------------------------------


@app.command("tick")
def tick(
    as_of: str | None = typer.Option(None, "--as-of", help="Sweep as on this date (YYYY-MM-DD); default today."),
    no_send: bool = typer.Option(False, "--no-send", help="Queue what is due, but do not send."),
    as_json: bool = JsonOpt,
) -> None:
    """Render queued documents, record breaches, queue due reminders and escalations, then send the outbox.

    Progress goes to stderr (a bar on a terminal, a line of counts otherwise); what was done, to stdout."""
    from .progress import Progress
    from .scheduler import run_once

    def go() -> None:
        # The service's own work, as the scheduler's: its account's or an administrator's, never ahead of today.
        a = _app(as_of, "--as-of", operator_for="the sweep")
        if a.clock.today() > SystemClock().today():
            raise InvalidInput("--as-of: the sweep never runs ahead of today (it would record breaches not yet due)")
        ticked = run_once(a, send=not no_send, progress=Progress())
        swept, sent = ticked.swept, ticked.sent
        if as_json:
            _print_json(
                {
                    "as_of": swept.as_of.isoformat(),
                    "documents_rendered": ticked.rendered,
                    "documents_not_rendered": ticked.not_rendered,
                    "deadlines_examined": swept.examined,
                    "swept_elsewhere": swept.elsewhere,  # another process was sweeping: this one did not
                    "breaches": [{**b, "breached_on": b["breached_on"].isoformat()} for b in swept.breaches],
                    # No names, addresses or subjects: this output goes to the service's logs.
                    "queued": [
                        {k: v for k, v in m.__dict__.items() if k not in ("to", "reason")} for m in swept.messages
                    ],
                    "problems": swept.problems,
                    "sent": [
                        {"id": x.id, "key": x.key, "status": x.status, "error": _no_addresses(x.error)}
                        for x in (sent.attempts if sent else [])
                    ],
                    "requeued_after_crash": sent.recovered if sent else 0,
                }
            )
            return
        from .sweep import describe

        if ticked.rendered or ticked.not_rendered:
            typer.echo(
                f"rendered {ticked.rendered} document(s)"
                + (f"; {ticked.not_rendered} not rendered (ehcp docs list says why)" if ticked.not_rendered else "")
            )
        for line in describe(swept):
            typer.echo(line)
        for b in swept.breaches:
            typer.echo(f"  breach   case {b['case']}: {b['deadline']} (due {b['due']})")
        for m in swept.messages:
            # A reason can name a contact: 'ehcp outbox --case N' shows it to staff.
            extra = " (ehcp outbox says why)" if m.reason else ""
            whose = f" for case {m.case_id}" if m.case_id is not None else ""
            typer.echo(f"  {m.status:8} {m.kind:10} {m.template}{whose}{extra}")
        for p in swept.problems:
            typer.echo(f"  problem  {p}")
        if sent is not None:
            typer.echo(
                f"sent {sent.count('sent')}, to retry {sent.count('retry')}, failed {sent.count('failed')}"
                + (f", re-queued after a stopped dispatcher {sent.recovered}" if sent.recovered else "")
            )
            for x in sent.attempts:
                extra = f": {_no_addresses(x.error)}" if x.error else ""
                typer.echo(f"  {x.status:8} message {x.id}{extra}")
        typer.echo(
            f"done: {ticked.rendered} document(s) rendered, {len(swept.breaches)} breach(es) recorded, "
            f"{swept.count('queued')} message(s) queued, "
            + (f"{sent.count('sent')} sent" if sent is not None else "none sent (--no-send)")
        )

    _run(go)


outbox_app = typer.Typer(
    invoke_without_command=True, help="Messages in the outbox (and sending failed ones again: outbox retry)."
)
app.add_typer(outbox_app, name="outbox")


@outbox_app.callback()
def outbox(
    ctx: typer.Context,
    status: str | None = typer.Option(None, "--status", help="queued, sending, sent, failed or skipped."),
    case_id: int | None = typer.Option(None, "--case", help="Only this case's messages."),
    limit: int = typer.Option(200, "--limit", min=1, help="At most this many, newest first."),
    as_json: bool = JsonOpt,
) -> None:
    """Messages in the outbox: what was queued, sent, skipped or could not be delivered."""
    if ctx.invoked_subcommand is not None:
        return

    def go() -> None:
        a = _app()
        _actor(a)
        rows = queries.outbox(a.engine, status=status, case_id=case_id, limit=limit)
        if len(rows) == limit:  # on stderr, so that --json stays a list
            typer.echo(f"(stopped at the limit of {limit} messages, newest first: --limit N shows more)", err=True)
        if as_json:
            _print_json(rows)
            return
        if not rows:
            typer.echo("the outbox is empty" if status is None else f"no {status} messages")
            return
        _table(
            [
                [r["id"], r["status"], r["kind"], r["case_id"] or "", r["to"], (r["subject"] or r["template"])[:70]]
                for r in rows
            ],
            ["ID", "STATUS", "KIND", "CASE", "TO", "SUBJECT"],
        )

    _run(go)


@outbox_app.command("retry")
def outbox_retry(
    ids: list[int] | None = typer.Argument(None, help="The failed messages' ids (ehcp outbox --status failed)."),
    all_failed: bool = typer.Option(False, "--all", help="Every failed message."),
    by: str | None = ByOpt,
) -> None:
    """Queue failed messages again, to go on the next send with the same key and Message-ID."""

    def go() -> None:
        if not ids and not all_failed:
            raise InvalidInput("name the failed messages' ids, or give --all")
        a = _app()
        queued = a.dispatcher().retry_failed(None if all_failed else ids, actor=_actor(a, by))
        typer.echo(f"queued again: {len(queued)} message(s); 'ehcp tick' or the scheduler sends them")

    _run(go)


@scheduler_app.command("run")
def scheduler_run(
    interval: float | None = typer.Option(None, "--interval", help="Minutes between sweeps (config: scheduler)."),
) -> None:
    """Sweep and send every few minutes until stopped (Ctrl-C)."""
    from .scheduler import run_forever

    def go() -> None:
        a = _app(operator_for="the scheduler")
        a.background_checkpoints = True  # run_forever copies the log back on a thread of its own
        run_forever(a, interval)

    _run(go)


# -- plans and documents -----------------------------------------------------------------------


def _read_sections(section: str | None, file: Path | None, source: Path | None) -> dict[str, str]:
    from .definition.source import read_yaml
    from .plans import section_letter

    out: dict[str, str] = {}
    if source is not None:
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"--from {source}: cannot read it ({type(exc).__name__})") from None
        # As a workflow file is read (JSON is YAML too): a section written twice, or an alias, is
        # reported with its line rather than one silently winning or expanding.
        data, _, problems = read_yaml(text, str(source))
        if problems:
            raise InvalidInput("; ".join(str(p) for p in problems[:5]))
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise InvalidInput(f"--from {source}: write a mapping of section letters to text, e.g. F: |")
        out.update({section_letter(str(k)): v for k, v in data.items()})
    if section is not None or file is not None:
        if section is None or file is None:
            raise InvalidInput("give --section and --file together")
        try:
            out[section_letter(section)] = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"--file {file}: cannot read it ({exc.strerror})") from None
    return out


@plan_app.command("edit")
def plan_edit(
    case_id: int,
    section: str | None = typer.Option(None, "--section", help="A, B, C, D, E, F, G, H1, H2, I, J or K."),
    file: Path | None = typer.Option(None, "--file", help="The section's new text (plain text or Markdown)."),
    source: Path | None = typer.Option(None, "--from", help="A YAML or JSON file of sections: {F: text, ...}."),
    by: str | None = ByOpt,
) -> None:
    """Write sections into the case's draft plan (a new draft, based on the last version, if none is open)."""

    def go() -> None:
        a = _app()
        sections = _read_sections(section, file, source)
        plan = a.plans.edit(case_id, sections, actor=_actor(a, by))
        typer.echo(f"case {case_id}: draft plan version {plan.version} saved ({', '.join(sorted(sections))})")
        from .quality import check

        findings = check(plan.sections, final=False)
        for f in findings:
            typer.echo(f"  {f.severity:7} section {f.section}: {f.message}")

    _run(go)


@plan_app.command("show")
def plan_show(
    case_id: int,
    version: int | None = typer.Option(None, "--version", help="A version number; default the latest."),
    as_json: bool = JsonOpt,
) -> None:
    """A version of the case's plan, section by section."""
    from .plans import SECTION_TITLES, SECTIONS

    def go() -> None:
        a = _app()
        plan = a.plans.get(case_id, version, actor=_actor(a))
        if as_json:
            _print_json(plan.to_json())
            return
        issued = f", {plan.status} {plan.issued_on.isoformat()}" if plan.issued_on else f", {plan.status}"
        typer.echo(f"Case {case_id}: EHC plan version {plan.version}{issued}")
        for s in SECTIONS:
            typer.echo(f"\nSection {s}: {SECTION_TITLES[s]}")
            typer.echo(plan.sections.get(s, "").rstrip() or "  (empty)")

    _run(go)


@plan_app.command("history")
def plan_history(case_id: int, as_json: bool = JsonOpt) -> None:
    """Every version of the case's plan and every edit: who changed which section, when."""

    def go() -> None:
        a = _app()
        versions = a.plans.versions(case_id, actor=_actor(a))
        edits = a.plans.edits(case_id, actor=_actor(a))
        if as_json:
            _print_json({"versions": [v.to_json() for v in versions], "edits": edits})
            return
        for v in versions:
            when = v.issued_on.isoformat() if v.issued_on else ""
            typer.echo(f"version {v.version}  {v.status:7} {when:10}  by {v.issued_by or v.created_by}")
        for e in edits:
            typer.echo(f"  v{e['version']} section {e['section']:2} edited by {e['by']} at {e['at'][:19]}")

    _run(go)


@plan_app.command("check")
def plan_check(
    case_id: int,
    version: int | None = typer.Option(None, "--version"),
    final: bool = typer.Option(True, "--final/--draft", help="Check as a final plan (section I named)."),
    as_json: bool = JsonOpt,
) -> None:
    """The quality check run before a plan is issued: needs met by provision, specific and quantified
    provision, outcomes with time frames, a named placement. Exit 1 when it finds errors."""
    from .quality import check

    def go() -> None:
        a = _app()
        plan = a.plans.get(case_id, version, actor=_actor(a))
        findings = check(plan.sections, final=final)
        if as_json:
            _print_json([f.__dict__ for f in findings])
        else:
            for f in findings:
                typer.echo(f"{f.severity:7} section {f.section} ({f.rule}): {f.message}")
            if not findings:
                typer.echo(f"case {case_id}, plan version {plan.version}: no problems found")
        if any(f.severity == "error" for f in findings):
            raise typer.Exit(1)

    _run(go)


@docs_app.command("render")
def docs_render(
    case_id: int,
    kind: str = typer.Argument(
        ..., help="draft-plan, final-plan, amendment-notice, decision-letter or advice-request."
    ),
    decision: str | None = typer.Option(
        None,
        "--decision",
        help="For decision-letter: considering-assessment, to-assess, not-to-assess, to-issue, not-to-issue, "
        "review-keep, review-amend, review-cease, not-to-amend, to-cease, plan-ceased, to-reassess, "
        "not-to-reassess, consultation-request or mediation-agreement.",
    ),
    version: int | None = typer.Option(None, "--version", help="The plan version; default the latest."),
    adviser: str | None = typer.Option(
        None, "--adviser", help="For advice-request: educational, psychological, health or social-care."
    ),
    out: Path | None = typer.Option(None, "--out", help="Also write the PDF here (never over a file, unless --force)."),
    force: bool = typer.Option(False, "--force", help="Write --out even over an existing file."),
    by: str | None = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Make a document now (a PDF/UA file), record it, and print where it is."""

    def go() -> None:
        a = _app()
        if out is not None:
            _not_over_the_service(a.settings, out)
        if out is not None and out.exists() and not force:
            raise InvalidInput(f"--out: {out} exists; choose another name, or add --force to write over it")
        record, _ = a.documents.render(
            case_id, kind, actor=_actor(a, by), decision=decision, version=version, adviser=adviser
        )
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            from .documents import read_stored

            out.write_bytes(read_stored(record.path, record.sha256))
        if as_json:
            _print_json({**record.to_json(), "out": str(out) if out else None, "reused": record.reused})
            return
        how = "unchanged since it was last made: the same file" if record.reused else "rendered"
        typer.echo(f"{kind} for case {case_id}: {record.bytes:,} bytes, sha256 {record.sha256[:16]}…, {how}")
        typer.echo(str(out or record.path))

    _run(go)


@docs_app.command("list")
def docs_list(case_id: int, as_json: bool = JsonOpt) -> None:
    """The case's documents: kind, plan version, SHA-256, size, when made."""

    def go() -> None:
        a = _app()
        rows = a.documents.list(case_id, actor=_actor(a))
        if as_json:
            _print_json(rows)
            return
        if not rows:
            typer.echo(f"case {case_id} has no documents")
            return
        _table(
            [
                [
                    r["id"],
                    r["kind"],
                    r["decision"] or "",
                    r["status"],
                    r["plan_version"] or "",
                    r["bytes"] or "",
                    (r["sha256"] or "")[:12],
                    r["created"][:19],
                ]
                for r in rows
            ],
            ["ID", "KIND", "DECISION", "STATUS", "PLAN", "BYTES", "SHA256", "CREATED"],
        )

    _run(go)


@docs_app.command("process")
def docs_process(
    workers: int = typer.Option(1, "--workers", min=0, help="Processes to render with; 0 means one per core."),
) -> None:
    """Render the documents that steps have queued (ehcp tick and the scheduler do this too)."""

    def go() -> None:
        a = _app()
        _actor(a)
        count = workers or (os.cpu_count() or 1)
        if count > 1:
            typer.echo(f"rendered {a.documents.process_in_parallel(count)} document(s) with {count} processes")
            return
        done = a.documents.process()
        typer.echo(f"rendered {len(done)} document(s)")
        for d in done:
            typer.echo(f"  case {d.case_id}: {d.kind} ({d.bytes:,} bytes) {d.path}")

    _run(go)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

"""The staff web application: server-rendered GOV.UK Design System pages over the service layer.

The web adds no second way of changing a case: every change is a call to ``engine.cases`` with the
Actor the sign-in proved. Every request is checked in ``_guard`` (signed in, not idle, the session's
person still on the staff list) and every case in ``_case`` (``access.may_see``: a case the person
may not see is a 404). Every view of a case and every change is written to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from datetime import date, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Request,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError, CSRFProtect  # type: ignore[import-untyped]
from jinja2 import ChoiceLoader, PackageLoader, PrefixLoader
from sqlalchemy import text
from werkzeug.wrappers import Response

from ..actor import Actor
from ..app import App
from ..clock import LONDON, Clock, SystemClock
from ..config import Settings
from ..definition.model import InputSpec, InputType
from ..errors import ConflictError, EhcpError, InvalidInput, NotAuthorised, NotFound, TransitionRefused
from ..messages import long_date
from ..store import reading
from .access import holders_seen, may_change, may_see, team_of
from .accounts import Accounts

bp = Blueprint("staff", __name__)

ROLE_WORDS = {
    "caseworker": "Caseworker",
    "team_manager": "Team manager",
    "head_of_service": "Head of service",
    "administrator": "Administrator",
    "auditor": "Auditor",
}


def create_app(settings: Settings, clock: Clock | None = None, engine_app: App | None = None) -> Flask:
    """The web application on the configured database (made by 'ehcp db init' beforehand)."""
    core = engine_app or App(settings, clock or SystemClock())
    flask = Flask(__name__, static_folder="static", static_url_path="/static")
    flask.request_class = _Request
    flask.jinja_loader = ChoiceLoader(
        [
            PackageLoader("engine.web", "templates"),
            PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")}),
        ]
    )
    flask.jinja_env.trim_blocks = True
    flask.jinja_env.lstrip_blocks = True
    with core.store.unit() as unit:
        secret = unit.secret
    web = settings.web
    flask.config.update(
        # Signed with a key derived from the installation's secret: every worker agrees, none is configured.
        SECRET_KEY=hmac.new(secret, b"ehcp web session", hashlib.sha256).hexdigest(),
        SESSION_COOKIE_NAME="ehcp_session",
        SESSION_COOKIE_SECURE=web.secure_cookies,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=web.idle_minutes),
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session, which idles out
        MAX_CONTENT_LENGTH=1_000_000,
    )
    flask.extensions["ehcp"] = core
    flask.extensions["ehcp_accounts"] = Accounts(core.engine, core.directory, core.clock, web)
    flask.before_request(_unreadable_form)  # before the CSRF check, which cannot take such a form
    CSRFProtect(flask)
    if web.oidc is not None:
        from authlib.integrations.flask_client import OAuth  # type: ignore[import-untyped]

        oauth = OAuth(flask)
        oauth.register(
            "council",
            client_id=web.oidc.client_id,
            client_secret=web.oidc.client_secret,
            server_metadata_url=web.oidc.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email profile"},
        )
        flask.extensions["ehcp_oauth"] = oauth
    from ..portal import Portal
    from .portal import bp as portal_bp

    flask.extensions["ehcp_portal"] = Portal(core)
    flask.register_blueprint(bp)
    flask.register_blueprint(portal_bp)
    flask.after_request(_headers)
    for code in (403, 404, 405, 413, 500):
        flask.register_error_handler(code, _error_page)
    flask.register_error_handler(CSRFError, _csrf_error)
    flask.jinja_env.filters["first_upper"] = lambda text: str(text)[:1].upper() + str(text)[1:]
    flask.jinja_env.globals.update(council=settings.council.name, role_words=ROLE_WORDS, long_date=_long)
    return flask


_FILE_FORMS = re.compile(r"^/portal/(cases/[A-Za-z0-9_-]{1,40}/(views|comments|review)|advice/[A-Za-z0-9_-]{1,40})$")


class _Request(Request):
    """Forms are small (1 MB); a form of the online service may carry files (engine.uploads' limit each)."""

    @property
    def max_content_length(self) -> int | None:
        from ..portal import MAX_FILES

        # Only a signed-in person's form that takes files; every other form, and anyone not signed in: 1 MB.
        if self.method == "POST" and _FILE_FORMS.match(self.path) and "portal" in session:
            return (core().settings.uploads.max_megabytes * MAX_FILES + 1) * 1024 * 1024
        return 1_000_000

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        pass


def _long(value: Any) -> str:
    if not value:
        return ""
    return long_date(value if isinstance(value, date) else date.fromisoformat(str(value)[:10]))


def _headers(response: Response) -> Response:
    response.headers.setdefault(  # a download's own policy (a sandbox) is kept
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Strict-Transport-Security"] = "max-age=31536000"  # ignored over http (a local demo)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(exc: Any) -> Any:
    code = getattr(exc, "code", 500) or 500
    headers = {"Allow": ", ".join(exc.valid_methods)} if code == 405 and getattr(exc, "valid_methods", None) else {}
    if code == 413:
        limit = core().settings.uploads.max_megabytes
        reason = f"The files were too big to send together. Each file can be up to {limit} MB: send fewer at a time."
        page = "portal/error.html" if request.path.startswith("/portal") else "error.html"
        return render_template(page, code=413, reason=reason), 413
    if request.path.startswith("/api/"):
        words = {403: "forbidden", 404: "not found", 405: "method not allowed", 500: "error"}
        return jsonify({"error": words.get(code, "error")}), code, headers
    page = "portal/error.html" if request.path.startswith("/portal") else "error.html"
    return render_template(page, code=code), code, headers


def _csrf_error(exc: CSRFError) -> tuple[str, int]:
    page = "portal/error.html" if request.path.startswith("/portal") else "error.html"
    return render_template(page, code=400, reason="The form had expired. Go back and try again."), 400


def _unreadable_form() -> tuple[str, int] | None:
    """A form with a part that has no name (a multipart header Werkzeug cannot read gives the name None):
    refused as unreadable. Flask-WTF's CSRF check looks through the form's names for a prefixed token
    and fails on None with an AttributeError, a 500 anyone could cause without signing in."""
    if request.method == "POST" and None in request.form:
        page = "portal/error.html" if request.path.startswith("/portal") else "error.html"
        return render_template(page, code=400, reason="The form could not be read. Go back and try again."), 400
    return None


def core() -> App:
    return current_app.extensions["ehcp"]  # type: ignore[no-any-return]


def accounts() -> Accounts:
    return current_app.extensions["ehcp_accounts"]  # type: ignore[no-any-return]


RISK_REFRESH_SECONDS = 60


def _risks() -> tuple[Any, str]:
    """Every open limit's chance of being missed (engine.outlook.at_risk), for every case; the pages
    keep what each reader may see. Learning reads all the history, so it is kept for the day and
    made again when the record has changed and the last answer is a minute old. Returns the answer
    and the time it was made."""
    import time as _time

    from ..outlook import at_risk

    today = core().clock.today()
    with core().engine.connect() as conn:
        mark = conn.execute(text("SELECT MAX(id) FROM history")).scalar()
    kept = current_app.extensions.get("ehcp_risks")
    fresh = (
        kept is not None
        and kept[0] == today
        and (kept[1] == mark or _time.monotonic() - kept[2] < RISK_REFRESH_SECONDS)
    )
    if not fresh:
        made = _long(today) + ", " + core().clock.now().astimezone(LONDON).strftime("%H:%M")
        kept = (today, mark, _time.monotonic(), at_risk(core(), today), made)
        current_app.extensions["ehcp_risks"] = kept
    assert kept is not None
    return kept[3], kept[4]


def _risks_seen() -> Any:
    """The at-risk answer with only the limits this person may see."""
    from ..outlook import AtRisk

    found, _made = _risks()
    directory = core().directory
    # Who holds each case, and its name, as they are now: the answer may be a minute old, and a case
    # reassigned since must not show to its old team.
    with core().engine.connect() as conn:
        now = {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT id, caseworker, name FROM ehc_case"))}
    rows = [
        {**r, "caseworker": now[r["case"]][0], "case_name": now[r["case"]][1]} for r in found.rows if r["case"] in now
    ]
    return AtRisk(found.day, found.threshold, [r for r in rows if may_see(g.actor, r["caseworker"], directory)])


def audit(action: str, case_id: int | None = None, detail: str | None = None, who: Actor | None = None) -> None:
    """One line in the audit log: who, what, when, from where (never a name from the case)."""
    actor = who or g.actor
    with core().engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_event (at, actor, role, action, case_id, detail, address) "
                "VALUES (:at, :actor, :role, :action, :case, :detail, :address)"
            ),
            {
                "at": core().clock.now(),
                "actor": actor.id,
                "role": actor.role,
                "action": action,
                "case": case_id,
                "detail": detail,
                "address": (request.remote_addr or "")[:64],
            },
        )


# -- signing in ----------------------------------------------------------------------------------

OPEN = {
    "staff.sign_in",
    "staff.sign_in_code",
    "staff.sign_in_council",
    "staff.sign_in_council_return",
    "staff.sign_in_setup",
    "static",
}


@bp.before_app_request
def _guard() -> Response | None:
    g.actor = None
    if request.endpoint in OPEN or request.blueprint == "portal":
        return None  # the online service for families and advisers signs its own people in
    token = session.get("token")
    staff_id = accounts().session(token) if isinstance(token, str) else None
    member = core().directory.member(staff_id) if staff_id else None  # removed from the list: out
    if member is None:
        if token:  # a session that has ended (only then: a stray request must not drop a form's token)
            session.clear()
        if request.path.startswith("/api/"):
            return jsonify({"error": "sign in first"}), 401  # type: ignore[return-value]
        return redirect(url_for("staff.sign_in", timed_out=1) if token else url_for("staff.sign_in"))
    g.actor = Actor(member.id, member.role)
    g.member = member
    return None


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    errors: dict[str, str] = {}
    login = ""
    if request.method == "POST":
        login = request.form.get("login", "")[:254]
        password = request.form.get("password", "")[:1000]
        if not login.strip():
            errors["login"] = "Enter your staff id or email address"
        if not password:
            errors["password"] = "Enter your password"
        if not errors:
            checked = accounts().check_password(login, password)
            if checked.staff_id is not None:
                session.clear()
                session.update(staff_id=checked.staff_id, stage="password", at=core().clock.now().timestamp())
                return redirect(url_for("staff.sign_in_code"))
            # The same words whatever was wrong, and whether or not the account exists or is locked.
            errors["login"] = NOT_RIGHT
            audit("sign_in_refused", detail="password", who=NOBODY)
    return _sign_in_page(errors, login, timed_out=bool(request.args.get("timed_out"))), (400 if errors else 200)


def _sign_in_page(errors: dict[str, str], login: str, timed_out: bool = False) -> str:
    oidc = core().settings.web.oidc
    return render_template(
        "sign_in.html",
        errors=errors,
        login=login,
        timed_out=timed_out,
        council_sign_in=oidc.label if oidc is not None else None,
    )


@bp.route("/sign-in/council")
def sign_in_council() -> Any:
    """Off to the council's identity provider (OpenID Connect: code flow, state and nonce)."""
    oauth = current_app.extensions.get("ehcp_oauth")
    if oauth is None:
        abort(404)
    session.clear()
    return oauth.council.authorize_redirect(core().settings.web.address() + url_for("staff.sign_in_council_return"))


@bp.route("/sign-in/council/return")
def sign_in_council_return() -> Any:
    """Back from the identity provider: the ID token is checked (signature, issuer, audience, nonce),
    and its claim names a member of staff on this service's list, or no one is signed in."""
    from authlib.common.errors import AuthlibBaseError  # type: ignore[import-untyped]

    oauth = current_app.extensions.get("ehcp_oauth")
    oidc = core().settings.web.oidc
    if oauth is None or oidc is None:
        abort(404)
    try:
        token = oauth.council.authorize_access_token()  # with the return address it was sent
    except (AuthlibBaseError, OSError, ValueError, KeyError) as exc:
        return _council_refused(f"did not complete ({type(exc).__name__})")
    except Exception as exc:  # noqa: BLE001 - a token that fails any check (joserfc's claims errors) signs no one in
        return _council_refused(f"token refused ({type(exc).__name__})")
    claims = token.get("userinfo") or {}
    value = str(claims.get(oidc.claim) or "").strip().lower()
    if oidc.claim == "email":
        # An address the provider has not verified names no one; and an email claim matches an email only.
        member = core().directory.find(value) if "@" in value and claims.get("email_verified") is not False else None
        member = member if member is not None and member.email.strip().lower() == value else None
    else:
        member = core().directory.member(value)
    if member is None:
        return _council_refused("not on the staff list")
    _signed_in(member, "council")
    return redirect(url_for("staff.home"))


def _council_refused(why: str) -> tuple[str, int]:
    session.clear()
    audit("sign_in_refused", detail=f"council sign-in: {why}", who=NOBODY)
    refused = "You could not be signed in with your council account. If you should be, ask your team manager."
    return _sign_in_page({"login": refused}, ""), 403


NOT_RIGHT = (
    "The staff id, email address or password is not right. After 5 tries in a row an account is locked for 15 minutes."
)
NOBODY = Actor("-", "none")  # the audit log's actor for a sign-in that proved no one


@bp.route("/sign-in/code", methods=["GET", "POST"])
def sign_in_code() -> Any:
    staff_id, at = session.get("staff_id"), session.get("at")
    fresh = isinstance(at, int | float) and core().clock.now().timestamp() - at < core().settings.web.idle_minutes * 60
    if not staff_id or session.get("stage") != "password" or not fresh:
        session.clear()
        return redirect(url_for("staff.sign_in"))
    errors: dict[str, str] = {}
    if request.method == "POST":
        code = request.form.get("code", "")[:20]
        checked = accounts().check_code(staff_id, code)
        if checked.staff_id is not None:
            member = core().directory.member(staff_id)
            assert member is not None
            _signed_in(member, "password")
            return redirect(url_for("staff.home"))
        audit("sign_in_refused", detail=f"code for {staff_id}", who=NOBODY)
        errors["code"] = "The code is not right: enter the 6 numbers your authenticator app shows now"
    return render_template("sign_in_code.html", errors=errors), (400 if errors else 200)


def _signed_in(member: Any, how: str) -> None:
    """A new session on the server, and a new cookie naming it (nothing from before carries over)."""
    token = accounts().start_session(member.id, how)
    session.clear()
    session.permanent = True
    session["token"] = token
    audit("signed_in", detail=how, who=Actor(member.id, member.role))


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> Response:
    audit("signed_out")
    accounts().end_session(session.get("token", ""))
    session.clear()
    return redirect(url_for("staff.sign_in"))


@bp.route("/sign-in/setup/<token>", methods=["GET", "POST"])
def sign_in_setup(token: str) -> Any:
    """A set-up link sent after a reset: the person chooses their password and gets a new key."""
    token = token[:100]
    if accounts().setup_for(token) is None:
        return render_template("error.html", code=404, reason="This link has been used, or is out of date."), 404
    errors: dict[str, str] = {}
    if request.method == "POST":
        password, again = request.form.get("password", "")[:1000], request.form.get("again", "")[:1000]
        if password != again:
            errors["again"] = "The two passwords are not the same"
        else:
            try:
                done = accounts().use_setup(token, password)
            except InvalidInput as exc:
                errors["password"] = _plain(str(exc))
            else:
                if done is None:
                    abort(404)
                staff_id, secret = done
                audit("set_up_sign_in", who=Actor(staff_id, "-"))
                uri = accounts().provisioning_uri(staff_id, secret, core().settings.council.name)
                return render_template("setup_done.html", secret=secret, uri=uri)
    return render_template("setup.html", errors=errors), (400 if errors else 200)


# -- cases ---------------------------------------------------------------------------------------


PAGE_SIZE = 50  # open workflows a page of the case list shows
API_PAGE, API_PAGE_MOST = 100, 1000  # /api/cases: rows a page unless asked, and at most


def _holders(db: reading.Sql) -> list[str | None] | None:
    """The caseworker values of the cases this person may see (None: every case)."""
    return holders_seen(g.actor, reading.caseworkers(db), core().directory)


def _visible_cases() -> list[dict[str, Any]]:
    """Every open workflow of the cases this person may see (the team board)."""
    with core().read() as db:
        rows, _total, _page = reading.open_workflows(db, _holders(db))
    return rows


@bp.route("/")
def home() -> Response:
    return redirect(url_for("staff.admin_staff" if g.actor.role == "administrator" else "staff.cases"))


@bp.route("/cases")
def cases() -> Any:
    """The open workflows of the cases this person may see, a page at a time, the next time limit
    first; narrowed by name or number, workflow, stage, team, overdue or at risk. The database
    chooses, orders and counts them (a county's list is thousands long)."""
    if g.actor.role == "administrator":
        abort(403)
    today = core().clock.today()
    query = request.args.get("q", "").strip()[:100]
    workflow = request.args.get("workflow", "")[:100]
    overdue_only = request.args.get("overdue") == "yes"
    at_risk_only = request.args.get("at_risk") == "yes"
    stage = request.args.get("stage", "")[:100]
    team_ = request.args.get("team", "")[:200]
    number = request.args.get("page", "1")[:6]
    page = int(number) if number.isascii() and number.isdigit() and int(number) > 0 else 1
    directory = core().directory
    with core().read() as db:
        holders = _holders(db)
        kinds = reading.open_kinds(db, holders)
        workflows = sorted({wf for wf, _st, _w in kinds})
        stages = sorted({st for wf, st, _w in kinds if not workflow or wf == workflow})
        team_of_holder = {worker: team_of(directory, worker) or "" for _wf, _st, worker in kinds}
        teams = directory.team_choices(t for t in team_of_holder.values() if t)
        chosen = holders
        if team_:
            chosen = [w for w, t in team_of_holder.items() if t == team_]
        ids = None
        if query:
            needle = query.casefold().removeprefix("case ").strip()
            ids = [i for i, name in reading.names(db, chosen) if needle in name.casefold() or needle == str(i)]
        risky: dict[tuple[int, str], dict[str, Any]] = {}
        for found in _risks()[0].flagged:  # the riskiest first: one per workflow of a case
            risky.setdefault((found["case"], found["workflow"]), found)
        flagged: dict[str, set[int]] | None = None
        if at_risk_only:
            flagged = {}
            for case_id, name in risky:
                flagged.setdefault(name, set()).add(case_id)
        narrowing = reading.Narrowing(workflow or None, stage or None, ids, today if overdue_only else None, flagged)
        rows, total, page = reading.open_workflows(db, chosen, narrowing, per_page=PAGE_SIZE, page=page)
    pages = max(1, -(-total // PAGE_SIZE))
    for r in rows:
        due = date.fromisoformat(r["next_due"]) if r["next_due"] else None
        r["days_left"] = (due - today).days if due else None
        r["risk"] = risky.get((r["id"], r["workflow"]))
    titles = {name: core().catalogue.latest(name).title for name in workflows}
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    audit("listed_cases", detail=f"{total} found, page {page} of {pages}")
    return render_template(
        "cases.html",
        rows=rows,
        total=total,
        first=(page - 1) * PAGE_SIZE + 1,
        pagination=_pagination(page, pages, args),
        workflows=workflows,
        titles=titles,
        query=query,
        workflow=workflow,
        overdue_only=overdue_only,
        at_risk_only=at_risk_only,
        stages=stages,
        stage=stage,
        teams=teams if len(teams) > 1 else [],
        team=team_,
    )


def _pagination(page: int, pages: int, args: dict[str, str]) -> dict[str, Any] | None:
    """The GOV.UK pagination component's parameters: the first and last pages, this one and those
    beside it, with an ellipsis for the rest; every link keeps the filters."""
    if pages < 2:
        return None

    def href(n: int) -> str:
        values: dict[str, Any] = {**args, "page": n}
        return url_for("staff.cases", **values)

    items: list[dict[str, Any]] = []
    for n in range(1, pages + 1):
        if n in (1, pages) or abs(n - page) <= 1:
            items.append({"number": n, "href": href(n), "current": n == page})
        elif items and not items[-1].get("ellipsis"):
            items.append({"ellipsis": True})
    found: dict[str, Any] = {"items": items, "landmarkLabel": "Pages of cases"}
    if page > 1:
        found["previous"] = {"href": href(page - 1)}
    if page < pages:
        found["next"] = {"href": href(page + 1)}
    return found


def _case(case_id: int) -> dict[str, Any]:
    """The case, if this person may see it; otherwise 404, as for a case that does not exist."""
    if g.actor.role == "administrator":
        abort(404)
    try:
        with core().read() as db:
            view = reading.case_view(db, case_id, core().clock.today())
    except (NotFound, OverflowError):  # a number too big for the database is no case either
        abort(404)
    if not may_see(g.actor, view["caseworker"], core().directory):
        abort(404)
    if request.method == "GET":  # every page showing a case is a view of it, on the record
        audit("viewed_case", case_id, (request.endpoint or "").removeprefix("staff."))
    return view


def _case_for_casework(case_id: int) -> dict[str, Any]:
    """The case, for a caseworker's or team manager's change to it (exceptions, corrections, advice
    requests, online access): 404 for a case this person may not see, 403 for another role."""
    view = _case(case_id)
    if g.actor.role not in ("caseworker", "team_manager"):
        abort(403)
    return view


def _describe(view: dict[str, Any]) -> None:
    """Plain words for each workflow's state, and the steps this person may take now."""
    catalogue = core().catalogue
    for w in view["workflows"]:
        definition = catalogue.get(w["workflow"], w["definition_version"])
        w["title"] = definition.title
        spec = definition.states.get(w["state"])
        w["where"] = (spec.for_staff or spec.description) if spec else w["state"]
        allowed = definition.allowed(w["state"], g.actor.role) if w["closed"] is None and may_change(g.actor) else []
        w["steps"] = [(t, _step_title(definition, t, w["state"])) for t in allowed]


def _step_title(definition: Any, trigger: str, state: str) -> str:
    spec = definition.transition(trigger, state)
    title = spec.title if spec is not None and spec.title else trigger.replace("_", " ")
    return title[:1].upper() + title[1:]


@bp.route("/cases/<int:case_id>")
def case(case_id: int) -> Any:
    view = _case(case_id)
    _describe(view)
    today = core().clock.today()
    versions = {w["instance"]: (w["workflow"], w["definition_version"]) for w in view["workflows"]}
    for d in view["deadlines"]:
        d["days_left"] = (date.fromisoformat(d["due"]) - today).days
        name, version = versions[d["instance"]]
        try:
            d["excusable"] = bool(core().catalogue.get(name, version).deadline(d["name"]).exceptions)
        except KeyError:
            d["excusable"] = False
    online = portal_service().for_case(case_id)
    from .. import sen2

    with core().store.unit() as unit:
        details = sen2.details(unit, case_id)
    return render_template(
        "case.html",
        case=view,
        details=[
            (
                f.short,
                f"{details[f.name]}: {sen2.words(f.codes).get(details[f.name], '')}" if f.codes else details[f.name],
            )
            for f in sen2.FIELDS
            if details[f.name]
        ],
        today=today,
        online=online,
        advice=portal_service().advice_requests(case_id),
        online_error=session.pop("online_error", None),
    )


# -- steps ---------------------------------------------------------------------------------------


def _step_spec(view: dict[str, Any], instance_id: int, trigger: str) -> tuple[dict[str, Any], Any, Any]:
    workflow = next((w for w in view["workflows"] if w["instance"] == instance_id), None)
    if workflow is None:
        abort(404)
    definition = core().catalogue.get(workflow["workflow"], workflow["definition_version"])
    spec = definition.transition(trigger, workflow["state"])
    return workflow, definition, spec


def _read_inputs(specs: dict[str, InputSpec], form: Any) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """The step's inputs as the service takes them, errors by field, and the values to show again."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    shown: dict[str, Any] = {}
    for name, spec in specs.items():
        label = spec.label or name.replace("_", " ")
        if spec.type is InputType.DATE:
            day, shown[name] = _date_field(form, name)
            if day is None and not any(shown[name].values()):
                if spec.required and spec.default != "today":
                    errors[name] = f"Enter {label.lower()}"
            elif day is None:
                errors[name] = f"{label.capitalize()} must be a real date, like 27 3 2026"
            else:
                values[name] = day.isoformat()
            continue
        raw = form.get(name, "").strip()
        shown[name] = raw
        if not raw:
            if spec.required and spec.default is None:
                errors[name] = (
                    f"{'Select' if spec.type in (InputType.CHOICE, InputType.YES_NO) else 'Enter'} {label.lower()}"
                )
            continue
        values[name] = raw
    return values, errors, shown


def _date_field(form: Any, name: str) -> tuple[date | None, dict[str, str]]:
    """A GOV.UK date input's day, month and year as a date (None when empty or not a real date),
    and the parts as typed, to show again."""
    parts = {k: form.get(f"{name}-{k}", "").strip() for k in ("day", "month", "year")}
    try:
        return date(int(parts["year"]), int(parts["month"]), int(parts["day"])), parts
    except (ValueError, OverflowError):
        return None, parts


def _read_on(form: Any) -> tuple[date | None, str | None, dict[str, str]]:
    on, parts = _date_field(form, "on")
    if on is None and any(parts.values()):
        return None, "The date it happened must be a real date, like 27 3 2026", parts
    return on, None, parts


@bp.route("/cases/<int:case_id>/workflows/<int:instance_id>/steps/<trigger>", methods=["GET", "POST"])
def step(case_id: int, instance_id: int, trigger: str) -> Any:
    view = _case(case_id)
    if not may_change(g.actor):
        abort(403)
    _describe(view)
    workflow, definition, spec = _step_spec(view, instance_id, trigger)
    allowed = [t for t, _ in workflow["steps"]]
    if spec is None or trigger not in allowed:
        # Not possible now (or not for this role): say why, and what is.
        return render_template(
            "refused.html",
            case=view,
            workflow=workflow,
            reason=_refusal(definition, workflow, trigger),
            allowed=workflow["steps"],
        ), 409
    errors: dict[str, str] = {}
    shown: dict[str, Any] = {}
    on_parts: dict[str, str] = {}
    note = ""
    if request.method == "POST":
        values, errors, shown = _read_inputs(spec.inputs, request.form)
        on, on_error, on_parts = _read_on(request.form)
        if on_error:
            errors["on"] = on_error
        note = request.form.get("note", "").strip()
        version = request.form.get("version", "")
        if not errors:
            try:
                fired = core().cases.fire(
                    case_id,
                    trigger,
                    actor=g.actor,
                    inputs=values,
                    note=note or None,
                    workflow=workflow["workflow"],
                    expected_version=_number(version),
                    on=on,
                )
            except (TransitionRefused, NotAuthorised, ConflictError, InvalidInput) as exc:
                message = str(exc)
                field = next((n for n in spec.inputs if f"'{n}'" in message or f"{n}:" in message), None)
                for option in ("on", "note"):  # the service names the command line's option: the form's field
                    if field is None and message.startswith(f"--{option}:"):
                        field, message = option, message.removeprefix(f"--{option}:").strip()
                errors[field or "form"] = _plain(message)
            except OverflowError:  # a time limit counted from a date near the calendar's end (the year 9999)
                given = {n: date.fromisoformat(values[n]) for n, i in spec.inputs.items()
                         if i.type is InputType.DATE and n in values}  # fmt: skip
                if on is not None:
                    given["on"] = on
                today = core().clock.today()
                far = max(given, key=lambda n: abs((given[n] - today).days), default="form")
                errors[far] = "This date is too far from today to count the time limits from: check the year"
            else:
                return _done(
                    case_id,
                    f"{_step_title(definition, trigger, workflow['state'])}: done",
                    "took_step",
                    f"{workflow['workflow']}: {trigger} -> {fired.outcome.to_state}",
                )
    return render_template(
        "step.html",
        case=view,
        workflow=workflow,
        trigger=trigger,
        title=_step_title(definition, trigger, workflow["state"]),
        inputs=spec.inputs,
        errors=errors,
        shown=shown,
        on_parts=on_parts,
        note=note,
        input_types=InputType,
        date_fields=["on", *(n for n, i in spec.inputs.items() if i.type is InputType.DATE)],
    ), (400 if errors else 200)


def _refusal(definition: Any, workflow: dict[str, Any], trigger: str) -> str:
    if trigger not in definition.triggers():
        return f"There is no step called ‘{trigger}’ in this workflow."
    if definition.transition(trigger, workflow["state"]) is None:
        return f"This step is not possible while the case is here: {workflow['where']}"
    return f"Your role ({ROLE_WORDS.get(g.actor.role, g.actor.role).lower()}) may not take this step."


def _done(case_id: int, message: str, action: str, detail: str | None = None) -> Response:
    """A change made: on the audit log, said on the case page it goes back to."""
    audit(action, case_id, detail)
    session["done"] = message
    return redirect(url_for("staff.case", case_id=case_id))


_RANDOM_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")  # engine.portal's ids: secrets.token_urlsafe
_SHA256 = re.compile(r"[0-9a-f]{64}")


def random_id(value: str) -> str:
    """An id the service made, from an address: its characters only, or the page is not found (any other
    is no record; and PostgreSQL refuses a query holding a NUL, which was a 500)."""
    if not _RANDOM_ID.fullmatch(value):
        abort(404)
    return value


def sha256_id(value: str) -> str:
    """A document's SHA-256 from an address, in lower-case hexadecimal, or the page is not found."""
    if not _SHA256.fullmatch(value):
        abort(404)
    return value


def _number(text: str) -> int | None:
    """A record's number as a form or an address gives it: ASCII digits, and few enough for the database
    to hold (str.isdigit alone lets through '²', which int() refuses, and numbers no column can store)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _plain(message: str) -> str:
    message = message.removeprefix("error: ")
    return message[:1].upper() + message[1:]


@bp.app_template_global()
def flash_done() -> str | None:
    done = session.pop("done", None)
    return str(done) if done is not None else None


# -- the plan, documents and exceptions ----------------------------------------------------------


@bp.route("/cases/<int:case_id>/plan")
def plan(case_id: int) -> Any:
    """The case's latest plan version, section by section, with the quality check's findings."""
    from ..plandiff import SECTION_TITLES
    from ..plans import SECTIONS
    from ..quality import check

    view = _case(case_id)
    try:
        record = core().plans.get(case_id, actor=g.actor)
    except NotFound:
        record = None
    findings = check(record.sections, final=False) if record is not None else []
    by_section: dict[str, list[Any]] = {}
    for f in findings:
        by_section.setdefault(f.section, []).append(f)
    return render_template(
        "plan.html",
        case=view,
        plan=record,
        sections=SECTIONS,
        titles=SECTION_TITLES,
        findings=by_section,
        editable=may_change(g.actor),
    )


@bp.route("/cases/<int:case_id>/plan/<section>", methods=["GET", "POST"])
def plan_section(case_id: int, section: str) -> Any:
    """Write one section of the draft (a new draft, based on the latest version, if there is none)."""
    from ..plandiff import SECTION_TITLES
    from ..plans import SECTIONS

    view = _case(case_id)
    if not may_change(g.actor):
        abort(403)
    if section not in SECTIONS:
        abort(404)
    try:
        record = core().plans.get(case_id, actor=g.actor)
        current = record.sections.get(section, "")
    except NotFound:
        current = ""
    errors: dict[str, str] = {}
    text_ = current
    if request.method == "POST":
        text_ = request.form.get("text", "")
        try:
            saved = core().plans.edit(case_id, {section: text_}, actor=g.actor)
        except (InvalidInput, NotAuthorised, ConflictError) as exc:
            errors["text"] = _plain(str(exc))
        else:
            audit("edited_plan", case_id, f"version {saved.version}, section {section}")
            session["done"] = f"Section {section} saved in draft version {saved.version}"
            return redirect(url_for("staff.plan", case_id=case_id) + f"#section-{section}")
    return render_template(
        "plan_section.html",
        case=view,
        section=section,
        title=SECTION_TITLES[section],
        text=text_,
        errors=errors,
    ), (400 if errors else 200)


@bp.route("/cases/<int:case_id>/documents/<sha256>.pdf")
def document(case_id: int, sha256: str) -> Any:
    """A document of the case, as a download: never shown inline from this site, named by case and kind."""
    from ..documents import WORKFLOW_KINDS, read_stored

    _case(case_id)
    sha256 = sha256_id(sha256)
    with core().engine.connect() as conn:
        row = conn.execute(
            text("SELECT kind, path FROM document WHERE case_id = :c AND sha256 = :h AND status = 'ready' LIMIT 1"),
            {"c": case_id, "h": sha256},
        ).first()
    if row is None:
        abort(404)
    try:
        data = read_stored(row[1], sha256)
    except EhcpError:
        abort(404)
    kind = WORKFLOW_KINDS.get(row[0], (row[0], None))[0]
    audit("downloaded_document", case_id, kind)
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="case-{case_id}-{kind}.pdf"'
    return response


@bp.route("/cases/<int:case_id>/workflows/<int:instance_id>/deadlines/<name>/exception", methods=["GET", "POST"])
def exception(case_id: int, instance_id: int, name: str) -> Any:
    """Record that a time limit need not be met, for one of the reasons the regulations allow."""
    from ..definition.model import EXCEPTION_HEADS

    view = _case_for_casework(case_id)
    _describe(view)
    workflow = next((w for w in view["workflows"] if w["instance"] == instance_id), None)
    deadline = next(
        (d for d in view["deadlines"] if d["instance"] == instance_id and d["name"] == name and d["closed"] is None),
        None,
    )
    if workflow is None or deadline is None:
        abort(404)
    spec = core().catalogue.get(workflow["workflow"], workflow["definition_version"]).deadline(name)
    heads = [(h.value, EXCEPTION_HEADS.get(h.value, h.value)) for h in spec.exceptions]
    errors: dict[str, str] = {}
    head, reason = "", ""
    if request.method == "POST":
        head = request.form.get("head", "")
        reason = request.form.get("reason", "").strip()
        if head not in {h for h, _ in heads}:
            errors["head"] = "Select the reason the regulations allow"
        if not reason:
            errors["reason"] = "Enter what happened"
        if not errors:
            try:
                core().cases.record_exception(case_id, name, head, reason, actor=g.actor, workflow=workflow["workflow"])
            except (InvalidInput, NotAuthorised, ConflictError) as exc:
                errors["reason"] = _plain(str(exc))
            else:
                return _done(
                    case_id,
                    f"Exception recorded: {deadline['title']}",
                    "recorded_exception",
                    f"{workflow['workflow']}: {name} ({head})",
                )
    return render_template(
        "exception.html", case=view, deadline=deadline, heads=heads, head=head, reason=reason, errors=errors
    ), (400 if errors else 200)


# -- the online service, seen from the case ----------------------------------------------------------


def portal_service() -> Any:
    return current_app.extensions["ehcp_portal"]


@bp.route("/cases/<int:case_id>/online/invite", methods=["POST"])
def online_invite(case_id: int) -> Any:
    """Invite a parent or young person on the case's contacts to the online service."""
    _case_for_casework(case_id)
    contact = request.form.get("contact", "")
    try:
        sent_to = portal_service().invite(case_id, _number(contact) or -1, actor=g.actor)
    except NotFound:
        abort(404)
    except (InvalidInput, NotAuthorised) as exc:
        session["done"] = None
        session["online_error"] = _plain(str(exc))
        return redirect(url_for("staff.case", case_id=case_id) + "#online")
    return _done(case_id, f"Invitation sent to {sent_to}", "invited_online", "family")


@bp.route("/cases/<int:case_id>/online/<access_id>/end", methods=["POST"])
def online_end(case_id: int, access_id: str) -> Any:
    _case_for_casework(case_id)
    reason = request.form.get("reason", "").strip() or "ended by the caseworker"
    try:
        portal_service().end_access(case_id, random_id(access_id), reason, actor=g.actor)
    except NotFound:
        abort(404)
    except (InvalidInput, NotAuthorised, ValueError) as exc:  # a reason the record cannot keep (a control character)
        session["online_error"] = _plain(str(exc))
        return redirect(url_for("staff.case", case_id=case_id) + "#online")
    return _done(case_id, "Their access to the case has ended", "ended_online_access")


@bp.route("/cases/<int:case_id>/advice", methods=["GET", "POST"])
def ask_advice(case_id: int) -> Any:
    """Ask an adviser on the case's contacts for advice: online when they have an email address."""
    view = _case_for_casework(case_id)
    online = portal_service().for_case(case_id)
    errors: dict[str, str] = {}
    chosen = ""
    on_parts: dict[str, str] = {}
    if request.method == "POST":
        # Everyone at once: the advice has arrived when every adviser asked has answered.
        picked = [n for n in map(_number, request.form.getlist("contact")) if n is not None]
        chosen = ",".join(map(str, picked))
        on, on_error, on_parts = _read_on(request.form)
        if not picked:
            errors["contact"] = "Select who to ask for advice"
        elif on_error:
            errors["on"] = on_error
        else:
            asked, due = 0, ""
            for contact in picked:
                try:
                    due = portal_service().request_advice(case_id, contact, actor=g.actor, requested_on=on)
                    asked += 1
                except NotFound:
                    abort(404)
                except (InvalidInput, NotAuthorised) as exc:
                    errors["contact"] = _plain(str(exc))
                    break
            if asked and not errors:
                return _done(case_id, f"Advice asked of {asked}: due by {_long(due)}", "asked_for_advice")
    return render_template(
        "ask_advice.html", case=view, advisers=online["advisers"], chosen=chosen, errors=errors, on_parts=on_parts,
        date_fields=["on"],
    ), (400 if errors else 200)  # fmt: skip


@bp.route("/cases/<int:case_id>/advice/<request_id>/received", methods=["POST"])
def advice_received(case_id: int, request_id: str) -> Any:
    _case_for_casework(case_id)
    try:
        portal_service().record_advice_outside(case_id, random_id(request_id), actor=g.actor)
    except NotFound:
        abort(404)
    return _done(case_id, "Advice recorded as received today", "recorded_advice")


@bp.route("/cases/<int:case_id>/advice/<request_id>/withdraw", methods=["POST"])
def advice_withdraw(case_id: int, request_id: str) -> Any:
    _case_for_casework(case_id)
    try:
        portal_service().withdraw_advice_request(case_id, random_id(request_id), actor=g.actor)
    except NotFound:
        abort(404)
    return _done(case_id, "The advice request was withdrawn; the adviser's access has ended", "withdrew_advice_request")


@bp.route("/cases/<int:case_id>/files/<file_id>")
def online_file(case_id: int, file_id: str) -> Any:
    """A file sent through the online service: a download only, sandboxed, never shown from this site."""
    _case(case_id)
    try:
        extension, data = portal_service().upload(case_id, random_id(file_id))
    except (NotFound, EhcpError):
        abort(404)
    audit("downloaded_file", case_id)
    response = Response(data, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="case-{case_id}-file.{extension}"'
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


# -- the API: the same people, the same checks, as JSON ----------------------------------------------


@bp.route("/api/cases")
def api_cases() -> Any:
    """The open workflows of the cases this person may see, the next time limit first, a page at a
    time (``page``, ``per_page``): the links to the next, previous, first and last pages in a Link
    header (RFC 8288), the number in all in X-Total-Count. A page past the last is empty."""
    if g.actor.role == "administrator":
        abort(403)
    wanted: dict[str, int] = {}
    for name, default, most in (("page", 1, 10**6), ("per_page", API_PAGE, API_PAGE_MOST)):
        given = request.args.get(name, str(default))
        if not (given.isascii() and given.isdigit() and len(given) <= 8 and 1 <= int(given) <= most):
            return jsonify({"error": f"{name}: a whole number from 1 to {most:,}"}), 400
        wanted[name] = int(given)
    page, per_page = wanted["page"], wanted["per_page"]
    with core().read() as db:
        rows, total, _page = reading.open_workflows(db, _holders(db), per_page=per_page, page=page, clamp=False)
    last = max(1, -(-total // per_page))
    links = {"first": 1, "last": last}
    if page < last:
        links["next"] = page + 1
    if 1 < page <= last + 1:
        links["prev"] = page - 1
    response = jsonify(rows)
    response.headers["Link"] = ", ".join(
        f'<{url_for("staff.api_cases", page=n, per_page=per_page)}>; rel="{rel}"' for rel, n in links.items()
    )
    response.headers["X-Total-Count"] = str(total)
    audit("listed_cases", detail=f"api: {len(rows)} shown, page {page} of {last}")
    return response


@bp.route("/api/cases/<int:case_id>")
def api_case(case_id: int) -> Any:
    """One case, as `ehcp case show --json` gives it; 404 for a case this person may not see."""
    return jsonify(_case(case_id))


@bp.route("/api/openapi.yaml")
def openapi() -> Response:
    """This application's HTTP interface in OpenAPI 3 (engine/web/openapi.yaml), for staff and their tools.

    Behind the sign-in like every other address (401 without it): it holds no personal data, and the same
    file is in the published source, but a council's internal service need not list its addresses and
    forms to anyone on the internet, and no address is opened that was not open before."""
    from importlib.resources import files

    return Response(files("engine.web").joinpath("openapi.yaml").read_bytes(), mimetype="application/yaml")


# -- managers ------------------------------------------------------------------------------------


def _team_members() -> list[Any]:
    """The caseworkers a manager allocates to: their team's (a head of service: every one)."""
    directory = core().directory
    workers = directory.with_role("caseworker")
    if g.actor.role == "head_of_service":
        return workers
    mine = g.member.team_name()
    return [w for w in workers if w.team_name() == mine]


@bp.route("/team")
def team() -> Any:
    """A team manager's board for their team; a head of service's for every team, or (``team``) one."""
    from ..outlook import AtRisk

    if g.actor.role not in ("team_manager", "head_of_service"):
        abort(403)
    today = core().clock.today()
    members = _team_members()
    directory = core().directory
    teams = directory.team_choices(m.team_name() for m in members) if g.actor.role == "head_of_service" else []
    team_ = request.args.get("team", "")[:200]
    team_ = team_ if team_ in dict(teams) else ""
    visible = {r["id"]: r for r in _visible_cases() if r["open"]}
    if team_:  # the cases its members (and its manager) hold; a case no one holds is no team's
        ours = {w for w in {r["caseworker"] for r in visible.values()} if team_of(directory, w) == team_}
        visible = {i: r for i, r in visible.items() if r["caseworker"] in ours}
        members = [m for m in members if m.team_name() == team_]
    with core().read() as db:
        due = [d for d in reading.due(db, today + timedelta(days=7), today) if d["case_id"] in visible]
    for d in due:
        d["caseworker"] = visible[d["case_id"]]["caseworker"]
    overdue = [d for d in due if d["days_left"] < 0]
    this_week = [d for d in due if d["days_left"] >= 0]
    escalated = [d for d in overdue if d["status"] == "breached"]
    unallocated = sorted({r["id"]: r for r in visible.values() if not r["caseworker"]}.values(), key=lambda r: r["id"])
    held = Counter(r["caseworker"] for r in visible.values())
    late = Counter(worker for _case, worker in {(d["case_id"], d["caseworker"]) for d in overdue})
    load = [{"member": m, "cases": held[m.id], "overdue": late[m.id]} for m in members]
    with core().engine.connect() as conn:
        failed = [
            dict(r)
            for r in conn.execute(
                text(
                    "SELECT id, case_id, template, recipient_role, channel, last_error FROM outbox "
                    "WHERE status = 'failed' ORDER BY id DESC LIMIT 500"
                )
            ).mappings()
            if r["case_id"] in visible or (r["case_id"] is None and g.actor.role == "head_of_service" and not team_)
        ]
    risks = _risks_seen()
    if team_:
        risks = AtRisk(risks.day, risks.threshold, [r for r in risks.rows if r["case"] in visible])
    audit("viewed_team_board", detail=f"team {team_}" if team_ else None)
    return render_template(
        "team.html",
        teams=teams,
        team=team_,
        team_label=dict(teams).get(team_, ""),
        found=risks,
        failed=failed,
        overdue=overdue,
        this_week=this_week,
        escalated=escalated,
        unallocated=unallocated,
        load=load,
    )


@bp.route("/cases/<int:case_id>/reassign", methods=["GET", "POST"])
def reassign(case_id: int) -> Any:
    view = _case(case_id)
    if g.actor.role not in ("team_manager", "head_of_service"):
        abort(403)
    workers = _team_members()
    errors: dict[str, str] = {}
    chosen, reason = view["caseworker"] or "", ""
    if request.method == "POST":
        chosen = request.form.get("to", "")
        reason = request.form.get("reason", "").strip()
        if chosen not in {w.id for w in workers}:
            errors["to"] = "Select a caseworker from your team"
        if not reason:
            errors["reason"] = "Enter why the case is moving"
        if not errors:
            try:
                before = core().cases.reassign(case_id, chosen, reason, actor=g.actor)
            except (InvalidInput, NotAuthorised, ConflictError) as exc:
                errors["to"] = _plain(str(exc))
            else:
                return _done(
                    case_id,
                    f"Case {case_id} is now {chosen}'s",
                    "reassigned_case",
                    f"{before or 'not allocated'} -> {chosen}",
                )
    return render_template("reassign.html", case=view, workers=workers, chosen=chosen, reason=reason, errors=errors), (
        400 if errors else 200
    )


@bp.route("/cases/<int:case_id>/details", methods=["GET", "POST"])
def details(case_id: int) -> Any:
    """What the SEN2 return asks about the child that casework does not record (engine.sen2)."""
    from .. import sen2

    view = _case_for_casework(case_id)
    with core().store.unit() as unit:
        values = sen2.details(unit, case_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        given = {f.name: request.form.get(f.name, "").strip()[:300] for f in sen2.FIELDS}
        for f in sen2.FIELDS:
            if given[f.name]:
                try:
                    given[f.name] = sen2.check(f, given[f.name])
                except InvalidInput as exc:
                    errors[f.name] = _plain(str(exc).split(": ", 1)[-1])
        values = {**values, **given}
        if not errors:
            try:
                sen2.record(core(), case_id, given, actor=g.actor)
            except (InvalidInput, NotAuthorised, ConflictError) as exc:
                message = str(exc)
                field = next((f.name for f in sen2.FIELDS if message.startswith(f.option + ":")), "upn")
                errors[field] = _plain(message.split(": ", 1)[-1])
            else:
                return _done(case_id, "The details for the SEN2 return are saved", "recorded_details")
    choices = {f.name: sen2.words(f.codes) for f in sen2.FIELDS if f.codes}
    return render_template(
        "details.html", case=view, fields=sen2.FIELDS, values=values, choices=choices, errors=errors
    ), (400 if errors else 200)


@bp.route("/cases/<int:case_id>/correct", methods=["GET", "POST"])
def correct(case_id: int) -> Any:
    """Reverse the case's last step, as `ehcp case correct` does (the service decides who may)."""
    from ..corrections import NOT_STEPS
    from ..roles import WORKFLOW_ROLE

    view = _case_for_casework(case_id)
    steps = [h for h in view["history"] if h["trigger"] not in NOT_STEPS and h["role"] != WORKFLOW_ROLE]
    last = max(steps, key=lambda h: h["at"]) if steps else None
    errors: dict[str, str] = {}
    reason = ""
    if request.method == "POST":
        reason = request.form.get("reason", "").strip()
        if not reason:
            errors["reason"] = "Enter why the step was a mistake"
        else:
            try:
                done = core().corrections.correct(case_id, reason=reason, actor=g.actor)
            except (InvalidInput, NotAuthorised, ConflictError, TransitionRefused) as exc:
                errors["reason"] = _plain(str(exc))
            else:
                return _done(
                    case_id,
                    "The step was reversed; the history keeps both",
                    "corrected_step",
                    f"instance {done.instance_id}: entry {done.seq}",
                )
    return render_template("correct.html", case=view, last=last, reason=reason, errors=errors), (400 if errors else 200)


# -- reports -------------------------------------------------------------------------------------


@bp.route("/reports")
def reports() -> Any:
    """Timeliness from the record, for the cases this person may see, with charts beside their tables."""
    from markupsafe import Markup

    from ..reports import timeliness
    from .report_pages import comparison, timeliness_charts

    if g.actor.role not in ("team_manager", "head_of_service", "auditor"):
        abort(403)
    today = core().clock.today()
    errors: dict[str, str] = {}
    since_parts = {k: request.args.get(f"from-{k}", "") for k in ("day", "month", "year")}
    until_parts = {k: request.args.get(f"to-{k}", "") for k in ("day", "month", "year")}
    since, _ = _date_field(request.args, "from")
    until, _ = _date_field(request.args, "to")
    if any(since_parts.values()) and since is None:
        errors["from"] = "The first day must be a real date, like 1 4 2026"
    if any(until_parts.values()) and until is None:
        errors["to"] = "The last day must be a real date, like 31 3 2027"
    until = until or today
    since = since or _year_before(until)
    if since > until:
        errors["from"] = "The first day must be before the last day"
        since = _year_before(until)
    directory = core().directory
    found = timeliness(core(), since, until, lambda caseworker: may_see(g.actor, caseworker, directory))
    charts = [Markup(svg) for svg in timeliness_charts(found, core().settings.reports)]  # our own escaped SVG
    compared = comparison(core().settings.reports, until)
    audit("viewed_report", detail=f"timeliness {since.isoformat()} to {until.isoformat()}")
    return render_template(
        "reports.html",
        report=found.as_dict(),
        charts=charts,
        since=since,
        until=until,
        errors=errors,
        since_parts=since_parts,
        until_parts=until_parts,
        date_fields=["from", "to"],
        compared=compared,
    ), (400 if errors else 200)


def _year_before(day: date) -> date:
    """365 days before ``day``, or the first day there is (a report asked to end in the year 1)."""
    return day - timedelta(days=365) if day - date.min > timedelta(days=365) else date.min


@bp.route("/reports/forecast")
def report_forecast() -> Any:
    """The work falling due in the next 12 weeks, by kind and team, and reviews late at the current pace."""
    from markupsafe import Markup

    from ..outlook import KINDS, PACE_WEEKS, forecast
    from .report_pages import forecast_charts, week_label

    if g.actor.role not in ("team_manager", "head_of_service", "auditor"):
        abort(403)
    directory = core().directory
    found = forecast(core(), core().clock.today(), lambda caseworker: may_see(g.actor, caseworker, directory))
    audit("viewed_report", detail="forecast")
    return render_template(
        "report_forecast.html",
        forecast=found,
        kinds=KINDS,
        pace_weeks=PACE_WEEKS,
        week_label=week_label,
        charts=[Markup(svg) for svg in forecast_charts(found)],  # our own escaped SVG
    )


@bp.route("/reports/at-risk")
def report_at_risk() -> Any:
    """Open time limits likely to be missed, with the chance and why."""
    from markupsafe import Markup

    from .report_pages import BY_WEEKS_LEFT, at_risk_charts

    if g.actor.role not in ("team_manager", "head_of_service", "auditor"):
        abort(403)
    found = _risks_seen()
    made = _risks()[1]
    flagged = found.flagged
    audit("viewed_report", detail="at risk")
    return render_template(
        "report_at_risk.html",
        found=found,
        made_at=made,
        no_estimate=sum(1 for r in found.rows if r["percent"] is None),
        by_weeks_left=[(w, sum(1 for r in flagged if lo <= r["days_left"] <= hi)) for w, lo, hi in BY_WEEKS_LEFT],
        charts=[Markup(svg) for svg in at_risk_charts(found)],  # our own escaped SVG
    )


@bp.route("/reports/sen2")
def report_sen2() -> Any:
    """The SEN2 return for a census day: what it will hold, whether it would pass, what the record
    cannot supply yet (linked to each case's details), and the file itself for the head of service."""
    from .. import sen2_return as sen2r
    from ..sen2 import schema_path

    if g.actor.role != "head_of_service":
        abort(403)
    errors: dict[str, str] = {}
    parts = {k: request.args.get(f"day-{k}", "") for k in ("day", "month", "year")}
    day, _ = _date_field(request.args, "day")
    if any(parts.values()) and day is None:
        errors["day"] = "The census day must be a real date, like 21 1 2027"
    day = day or sen2r.next_census_day(core().clock.today())
    try:
        found = sen2r.build(core(), day)
    except InvalidInput as exc:
        return render_template("error.html", code=400, reason=_plain(str(exc))), 400
    data = sen2r.to_xml(found)
    problems = sen2r.needed(found) + sen2r.check(data, day.year)
    if request.args.get("download") == "xml" and not errors:
        audit("downloaded_sen2", detail=f"reference date {day.isoformat()}, {len(found.persons)} people")
        response = Response(data, mimetype="application/xml")
        name = f"sen2-{core().settings.council.la_code}-{day.year}{'-would-fail' if problems else ''}.xml"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    audit("viewed_report", detail=f"sen2 {day.isoformat()}")
    gaps = sorted(found.gaps.values(), key=lambda g_: (not g_.required, g_.name))
    return render_template(
        "report_sen2.html",
        found=found,
        counts=found.counts(),
        problems=problems,
        gaps=gaps,
        day=day,
        parts=parts,
        errors=errors,
        date_fields=["day"],
        schema=schema_path(day.year).name,
        rules=sen2r.RULES,
    ), (400 if errors else 200)


# -- administrators: staff accounts, no case content ----------------------------------------------


@bp.route("/admin/staff")
def admin_staff() -> Any:
    if g.actor.role != "administrator":
        abort(403)
    states = accounts().states()
    audit("viewed_staff")
    return render_template("admin_staff.html", staff=core().settings.staff, states=states, made=None)


@bp.route("/admin/staff/<staff_id>/unlock", methods=["POST"])
def admin_unlock(staff_id: str) -> Any:
    if g.actor.role != "administrator":
        abort(403)
    if core().directory.member(staff_id) is None:
        abort(404)
    accounts().unlock(staff_id)
    audit("unlocked_account", detail=staff_id)
    return redirect(url_for("staff.admin_staff"))


@bp.route("/admin/staff/<staff_id>/reset", methods=["POST"])
def admin_reset(staff_id: str) -> Any:
    """End a member of staff's password and sessions, and send them a link to set up their sign-in
    again: the administrator never sees or chooses it (nor can use it to act as them)."""
    from .accounts import send_setup_link

    if g.actor.role != "administrator":
        abort(403)
    if core().directory.member(staff_id) is None:
        abort(404)
    sent_to = send_setup_link(core(), staff_id)
    audit("reset_sign_in", detail=f"{staff_id}: set-up link sent")
    session["done"] = f"{staff_id} is signed out everywhere; a link to set up their sign-in was sent to {sent_to}"
    return redirect(url_for("staff.admin_staff"))


# -- the audit log -------------------------------------------------------------------------------


@bp.route("/audit")
def audit_log() -> Any:
    if g.actor.role not in ("auditor", "head_of_service"):
        abort(403)
    case_id = request.args.get("case", "").strip()[:100]
    case_number = _number(case_id)
    # No staff id holds a NUL, and PostgreSQL refuses a query (or the audit log's line) holding one.
    who = request.args.get("who", "").strip()[:100].replace("\x00", "\ufffd")
    sql = "SELECT at, actor, role, action, case_id, detail, address FROM audit_event"
    where: list[str] = []
    params: dict[str, object] = {}
    if case_number is not None:
        where.append("case_id = :c")
        params["c"] = case_number
    if who:
        where.append("actor = :w")
        params["w"] = who
    sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT 200"
    with core().engine.connect() as conn:
        events = [dict(r) for r in conn.execute(text(sql), params).mappings()]
    audit("searched_audit", case_number, f"who={who}" if who else None)
    return render_template("audit.html", events=events, case_id=case_id, who=who)


__all__ = ["EhcpError", "create_app"]

"""The online service's pages for families and the professionals who give advice, over
``engine.portal``: sign-in by an emailed link then an emailed code, a family's case in plain English,
their forms, and an adviser's answer to an advice request.

Every page after sign-in checks the person's access to the case it names (``Portal.access``): a case
that is not theirs, an ended access and a made-up id get the same "Page not found". Ids in addresses
are random (144 bits), never counts. Files go out as downloads only, with a sandboxing policy.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ..actor import Actor
from ..app import App
from ..documents import read_stored
from ..errors import ConflictError, EhcpError, InvalidInput, NotAuthorised, NotFound
from ..portal import FIELDS, KIND_WORDS, MAX_FILES, Access, Portal
from .views import random_id, sha256_id

bp = Blueprint("portal", __name__, url_prefix="/portal")
log = logging.getLogger(__name__)
OWN_KEYS = ("portal", "portal_pending", "at", "portal_done")  # the staff side's keys are left alone


def _forget() -> None:
    for key in OWN_KEYS:
        session.pop(key, None)


OPEN = {"portal.sign_in", "portal.link", "portal.code", "portal.sent_link"}


def core() -> App:
    return current_app.extensions["ehcp"]  # type: ignore[no-any-return]


def portal() -> Portal:
    return current_app.extensions["ehcp_portal"]  # type: ignore[no-any-return]


def _audit(action: str, case_id: int | None = None, detail: str | None = None, who: Actor | None = None) -> None:
    from .views import audit

    audit(action, case_id, detail, who=who or g.portal_actor)


def _send(message_id: int | None) -> None:
    """Send a sign-in link or code now: it cannot wait for the next sweep. A failure is retried by the
    sweep, as any message is; the person sees the same page either way."""
    if message_id is None:
        return
    app = core()

    def send() -> None:
        try:
            app.dispatcher().send_now(message_id)
        except Exception:  # noqa: BLE001 - the sweep sends it again; the page has already answered
            log.warning("a sign-in message could not be sent now; the sweep will retry it")

    # Off the request: the page answers as fast whether or not the address is known.
    threading.Thread(target=send, name="send-sign-in", daemon=True).start()


@bp.before_request
def _guard() -> Response | None:
    g.person = None
    g.portal_actor = Actor("-", "none")
    if request.endpoint in OPEN:
        return None
    token = session.get("portal")
    who = current_app.extensions["ehcp_accounts"].session(token) if isinstance(token, str) else None
    if not who or not who.startswith("portal:"):
        session.pop("portal", None)
        return redirect(url_for("portal.sign_in", timed_out=1 if token else None))
    g.person = int(who.removeprefix("portal:"))
    g.portal_actor = Actor(who, "family or adviser")
    return None


def _access(public_id: str, kind: str | None = "family") -> Access:
    try:
        found = portal().access(g.person, random_id(public_id), kind)
    except NotFound:
        abort(404)
    g.portal_actor = found.actor
    return found


# -- signing in ----------------------------------------------------------------------------------


@bp.route("", methods=["GET", "POST"])
def sign_in() -> Any:
    errors: dict[str, str] = {}
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "").strip()[:320]
        # (A control character is no address either: and PostgreSQL refuses a query holding a NUL.)
        if "@" not in email or "." not in email.partition("@")[2] or not email.isprintable() or " " in email:
            errors["email"] = "Enter an email address in the correct format, like name@example.com"
        else:
            _send(portal().ask_for_link(email))
            _audit("portal_link_asked", who=Actor("-", "none"))
            return redirect(url_for("portal.sent_link"))
    return render_template(
        "portal/sign_in.html", errors=errors, email=email, timed_out=bool(request.args.get("timed_out"))
    ), (400 if errors else 200)


@bp.route("/check-your-email")
def sent_link() -> str:
    return render_template("portal/sent_link.html")


@bp.route("/link/<token>", methods=["GET", "POST"])
def link(token: str) -> Any:
    """A link from an email. Opening it changes nothing (mail scanners open links); the button uses it."""
    token = token[:100]
    if request.method == "GET":
        if not portal().link_is_live(token):
            return _dead_link()
        return render_template("portal/link.html")
    person = portal().use_link(token)
    if person is None:
        return _dead_link()
    _forget()
    session.update(portal_pending=person, at=core().clock.now().timestamp())
    _send(portal().send_code(person))
    return redirect(url_for("portal.code"))


def _dead_link() -> tuple[str, int]:
    _audit("portal_link_refused", who=Actor("-", "none"))
    return render_template("portal/dead_link.html"), 404


@bp.route("/code", methods=["GET", "POST"])
def code() -> Any:
    person, at = session.get("portal_pending"), session.get("at")
    limit = core().settings.portal.code_minutes * 60
    if not isinstance(person, int) or not isinstance(at, int | float) or core().clock.now().timestamp() - at > limit:
        _forget()
        return redirect(url_for("portal.sign_in", timed_out=1))
    errors: dict[str, str] = {}
    if request.method == "POST":
        checked = portal().check_code(person, request.form.get("code", "")[:20])
        if checked is None:
            _forget()
            _audit("portal_code_refused", detail="no tries left or out of date", who=Actor(f"portal:{person}", "-"))
            return redirect(url_for("portal.sign_in", start_again=1))
        if checked:
            token = current_app.extensions["ehcp_accounts"].start_session(f"portal:{person}", "portal")
            _forget()
            session.permanent = True
            session["portal"] = token
            _audit("portal_signed_in", who=Actor(f"portal:{person}", "family or adviser"))
            return redirect(url_for("portal.home"))
        _audit("portal_code_refused", who=Actor(f"portal:{person}", "-"))
        errors["code"] = "The code is not right. Enter the 6 numbers in the email we just sent you"
    return render_template("portal/code.html", errors=errors), (400 if errors else 200)


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> Response:
    _audit("portal_signed_out")
    current_app.extensions["ehcp_accounts"].end_session(session.get("portal", ""))
    _forget()
    return redirect(url_for("portal.sign_in"))


# -- a person's cases and requests ---------------------------------------------------------------


@bp.route("/home")
def home() -> str:
    accesses = portal().accesses(g.person)
    family = [a for a in accesses if a.kind == "family" and a.closed is None]
    passed = [a for a in accesses if a.kind == "family" and a.closed == "rights passed"]
    requests = portal().adviser_requests(g.person)
    _audit("portal_home", detail=f"{len(family)} cases, {len(requests)} requests")
    return render_template("portal/home.html", family=family, passed=passed, requests=requests)


@bp.route("/cases/<public_id>")
def case(public_id: str) -> str:
    access = _access(public_id)
    view = portal().family_case(access)
    _audit("portal_viewed_case", access.case_id)
    return render_template("portal/case.html", view=view, access=access)


def _files() -> list[tuple[str, bytes]]:
    out = []
    for item in request.files.getlist("files"):
        if item and item.filename:
            out.append((item.filename, item.read(core().settings.uploads.max_megabytes * 1024 * 1024 + 1)))
    return out


def _form(access: Access, kind: str, template: str, **extra: Any) -> Any:
    errors: dict[str, str] = {}
    answers = {name: "" for name, _ in FIELDS[kind]}
    if request.method == "POST":
        answers = {name: request.form.get(name, "") for name in answers}
        if kind == "comments" and request.form.get("meeting_wanted") == "yes" and not answers["meeting"].strip():
            answers["meeting"] = "Yes, I would like a meeting"
        files = _files()
        try:
            try:
                done = portal().contribute(access, kind, answers, files, request_id=extra.get("request_id"))
            except ConflictError:  # a caseworker's step on the case at the same moment: once more, on top
                done = portal().contribute(access, kind, answers, files, request_id=extra.get("request_id"))
        except NotFound:
            abort(404)
        except ConflictError:
            errors[next(iter(answers))] = (
                "The case changed just as you sent this, so it was not saved. "
                "Your words are still here: send it again, with any files"
            )
        except (InvalidInput, NotAuthorised) as exc:
            field, _, message = str(exc).removeprefix("error: ").partition(": ")
            if field not in answers and field not in ("files", "answers"):
                field, message = "answers", str(exc)
            errors["files" if field == "files" else (next(iter(answers)) if field == "answers" else field)] = (
                message[:1].upper() + message[1:]
            )
        else:
            _audit("portal_sent", access.case_id, kind)
            session["portal_done"] = {
                "kind": done["kind"],
                "received_on": done["received_on"].isoformat(),
                "late": done["late"],
                "due_on": done["due_on"].isoformat() if done["due_on"] else None,
                "files": done["files"],
                "back": url_for("portal.case", public_id=access.public_id) if access.kind == "family" else None,
            }
            return redirect(url_for("portal.sent"))
    return render_template(
        template,
        access=access,
        errors=errors,
        answers=answers,
        labels=dict(FIELDS[kind]),
        max_files=MAX_FILES,
        max_mb=core().settings.uploads.max_megabytes,
        **extra,
    ), (400 if errors else 200)


@bp.route("/cases/<public_id>/views", methods=["GET", "POST"])
def views(public_id: str) -> Any:
    access = _access(public_id)
    return _form(access, "views", "portal/views.html", view=portal().family_case(access))


@bp.route("/cases/<public_id>/comments", methods=["GET", "POST"])
def comments(public_id: str) -> Any:
    access = _access(public_id)
    view = portal().family_case(access)
    if view.comment_period is None:
        abort(404)
    return _form(access, "comments", "portal/comments.html", view=view)


@bp.route("/cases/<public_id>/review", methods=["GET", "POST"])
def review(public_id: str) -> Any:
    access = _access(public_id)
    view = portal().family_case(access)
    if not view.review_open:
        abort(404)
    return _form(access, "review", "portal/review.html", view=view)


@bp.route("/cases/<public_id>/contact", methods=["GET", "POST"])
def contact(public_id: str) -> Any:
    """How the family hears from the council: email or post."""
    access = _access(public_id)
    errors: dict[str, str] = {}
    chosen = portal().contact_preference(access)
    if request.method == "POST":
        chosen = {"prefers": request.form.get("prefers", ""), "address": request.form.get("address", "")[:600]}
        try:
            portal().set_contact_preference(access, chosen["prefers"], chosen["address"])
        except (InvalidInput, NotAuthorised) as exc:
            field, _, message = str(exc).partition(": ")
            errors[field if field in ("prefers", "address") else "prefers"] = message[:1].upper() + message[1:]
        else:
            _audit("portal_contact_preference", access.case_id, chosen["prefers"])
            return redirect(url_for("portal.case", public_id=public_id))
    return render_template("portal/contact.html", access=access, chosen=chosen, errors=errors), (400 if errors else 200)


@bp.route("/sent")
def sent() -> Any:
    """What was just sent, and the day it arrived (an adviser's access may have ended with it)."""
    done = session.pop("portal_done", None)
    if not isinstance(done, dict):
        return redirect(url_for("portal.home"))
    return render_template("portal/sent.html", done=done)


def _download(data: bytes, name: str, media_type: str = "application/octet-stream") -> Response:
    """A file as a download only: never shown inline from this site, and sandboxed if it is."""
    response = Response(data, mimetype=media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


@bp.route("/cases/<public_id>/documents/<sha256>.pdf")
def document(public_id: str, sha256: str) -> Response:
    access = _access(public_id)
    try:
        kind, data = portal().document_for(access, sha256_id(sha256))
    except (NotFound, EhcpError):
        abort(404)
    _audit("portal_downloaded_document", access.case_id, kind)
    return _download(data, f"case-{access.case_id}-{kind}.pdf", "application/pdf")


@bp.route("/cases/<public_id>/files/<file_id>")
def own_file(public_id: str, file_id: str) -> Response:
    access = _access(public_id, None)
    try:
        extension, data = portal().upload(access.case_id, random_id(file_id), access)
    except (NotFound, EhcpError):
        abort(404)
    _audit("portal_downloaded_file", access.case_id)
    return _download(data, f"case-{access.case_id}-file.{extension}")


# -- advisers ------------------------------------------------------------------------------------


def _request(request_id: str) -> tuple[dict[str, Any], Access]:
    """The advice request waiting for this person, and their access to its case; 404 for any other."""
    try:
        found = portal().advice_request(g.person, random_id(request_id))
    except NotFound:
        abort(404)
    access: Access = found["access"]
    g.portal_actor = access.actor
    return found, access


@bp.route("/advice/<request_id>", methods=["GET", "POST"])
def advice(request_id: str) -> Any:
    found, access = _request(request_id)
    if request.method == "GET":
        _audit("portal_viewed_request", access.case_id)
    return _form(access, "advice", "portal/advice.html", request_id=found["id"], found=found, kind_words=KIND_WORDS)


ADVISER_LETTER = {  # the letter asking each kind of adviser (engine.documents.ADVISERS)
    "educational_psychologist": "psychological",
    "health": "health",
    "social_care": "social-care",
}


@bp.route("/advice/<request_id>/letter.pdf")
def advice_letter(request_id: str) -> Response:
    """The council's letter asking this adviser for advice (it says what the advice is for)."""
    found, access = _request(request_id)
    adviser = ADVISER_LETTER.get(found["role"], "educational")
    try:  # made on demand, as staff make it: not a document sent to the family
        record, _ = core().documents.render(
            access.case_id, "advice-request", adviser=adviser, actor=Actor("online-service", "caseworker")
        )
        data = read_stored(record.path, record.sha256)
    except EhcpError:
        abort(404)
    _audit("portal_downloaded_document", access.case_id, "advice-request")
    return _download(data, f"case-{access.case_id}-advice-request.pdf", "application/pdf")

"""Documents for families and professionals: EHC plans, notices and letters as accessible PDFs.

Jinja templates in ``templates/documents/`` (a shared ``base.html``) become HTML, and WeasyPrint
turns the HTML into a tagged PDF/UA-1 file: real text, a title, the language (en-GB), headings as
tagged structure and bookmarks, "Page N of M", and "DRAFT" on every page of a draft.

A document is made in one of two ways, and stored the same way:

- **queued by a step** (the workflow file's ``documents:``), in the step's transaction, then
  rendered right after the commit by ``ehcp docs process`` (and by every ``ehcp tick`` and
  scheduler run), so no caseworker waits on a PDF and none is lost: a row stays ``queued`` until
  its file is written, and a render that dies is picked up again;
- **on demand**, ``ehcp docs render CASE KIND``.

Each document records its kind, plan version, the history entry that produced it, the SHA-256 of
its bytes and its size. The file is named by that hash. The same inputs give byte-identical
output (fonts' timestamps are pinned with SOURCE_DATE_EPOCH), and the hash of the inputs (the
context, the templates, WeasyPrint's version) finds an earlier rendering, so an unchanged
document is never rendered twice.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from . import plans
from .actor import Actor, may_change_cases
from .calendar import Duration, Unit, add, tribunal_appeal_day
from .catalogue import Catalogue
from .clock import Clock
from .config import Settings
from .directory import Directory
from .errors import DamagedFile, InvalidInput, NotFound
from .messages import long_date
from .rendering import RenderFailed
from .store.repository import Store, as_date
from .store.repository import Unit as StoreUnit

log = logging.getLogger(__name__)

# Fonts are subset into each PDF with a timestamp; pinning it makes the same inputs give the same bytes.
os.environ.setdefault("SOURCE_DATE_EPOCH", "1420070400")

RENDERER_VERSION = "1"  # bump when the rendering code changes what a document looks like


@dataclass(frozen=True)
class Kind:
    name: str  # as the command line says it
    template: str
    title: str
    decision: str | None = None


DECISIONS: dict[str, str] = {
    "considering-assessment": "We are considering an EHC needs assessment",
    "to-assess": "Our decision: we will carry out an EHC needs assessment",
    "to-reassess": "Our decision: we will re-assess the needs in the EHC plan",
    "not-to-reassess": "Our decision: we will not re-assess the needs in the EHC plan",
    "not-to-assess": "Our decision: we will not carry out an EHC needs assessment",
    "to-issue": "Our decision after the assessment: we will issue an EHC plan",
    "not-to-issue": "Our decision after the assessment: we will not issue an EHC plan",
    "review-keep": "Annual review: we will keep the EHC plan as it is",
    "review-amend": "Annual review: we propose to change the EHC plan",
    "review-cease": "Annual review: we are considering ending the EHC plan",
    "not-to-amend": "Annual review: we will not make the proposed changes",
    "to-cease": "Our decision: we will stop maintaining the EHC plan",
    "plan-ceased": "The EHC plan has ended",
    "consultation-request": "Consultation about naming your school or setting in an EHC plan",
    "mediation-agreement": "What we agreed at mediation",
}

ADVISERS: dict[str, str] = {
    "educational": "educational",
    "psychological": "psychological",
    "health": "health",
    "social-care": "social care",
}

CLI_KINDS = ("draft-plan", "final-plan", "amendment-notice", "decision-letter", "advice-request")

# The documents the workflow files name, as (command-line kind, decision).
WORKFLOW_KINDS: dict[str, tuple[str, str | None]] = {
    "draft_plan": ("draft-plan", None),
    "final_plan": ("final-plan", None),
    "final_amended_plan": ("final-plan", None),
    "amendment_notice": ("amendment-notice", None),
    "advice_request": ("advice-request", None),
    "notice_of_consideration": ("decision-letter", "considering-assessment"),
    "decision_to_assess": ("decision-letter", "to-assess"),
    "decision_to_reassess": ("decision-letter", "to-reassess"),
    "decision_not_to_reassess": ("decision-letter", "not-to-reassess"),
    "decision_not_to_assess": ("decision-letter", "not-to-assess"),
    "decision_to_issue": ("decision-letter", "to-issue"),
    "decision_not_to_issue": ("decision-letter", "not-to-issue"),
    "review_decision_amend": ("decision-letter", "review-amend"),
    "review_decision_cease": ("decision-letter", "review-cease"),
    "review_decision_keep": ("decision-letter", "review-keep"),
    "decision_not_to_amend": ("decision-letter", "not-to-amend"),
    "decision_to_cease": ("decision-letter", "to-cease"),
    "plan_ceased_notice": ("decision-letter", "plan-ceased"),
    "consultation_request": ("decision-letter", "consultation-request"),
    "mediation_agreement_letter": ("decision-letter", "mediation-agreement"),
}


@dataclass(frozen=True)
class DocumentRecord:
    id: int
    case_id: int
    kind: str
    decision: str | None
    plan_version: int | None
    sha256: str
    bytes: int
    path: str
    created: datetime
    reused: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "kind": self.kind,
            "decision": self.decision,
            "plan_version": self.plan_version,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "path": self.path,
            "created": self.created.isoformat(),
        }


@dataclass(frozen=True)
class Rendered:
    title: str
    html: str
    inputs_sha256: str
    plan_version: int | None


class _ByName(dict[str, Any]):
    """Deadlines by name for the templates: one the case does not have is None, not an error."""

    def __missing__(self, key: str) -> None:
        return None


# -- plain text to HTML -----------------------------------------------------------------------


def text_html(text: str) -> Markup:
    """A section's text as HTML: ``### `` headings, ``- `` bullets, paragraphs (lines joined, as
    Markdown does), ``**bold**``."""
    out: list[str] = []
    items: list[str] = []
    para: list[str] = []

    def flush(items: list[str], para: list[str]) -> None:
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()
        if para:
            out.append("<p>" + " ".join(_inline(p) for p in para) + "</p>")
            para.clear()

    for block in re.split(r"\n\s*\n", text.strip()):
        for line in (raw.strip() for raw in block.splitlines()):
            if not line:
                continue
            if line.startswith("### "):
                flush(items, para)
                out.append(f"<h3>{_inline(line[4:])}</h3>")
            elif line.startswith(("- ", "* ")):
                if para:
                    flush(items, para)
                items.append(line[2:])
            else:
                if items:
                    flush(items, para)
                para.append(line)
        flush(items, para)
    return Markup("\n".join(out))


def _inline(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def _project_only_fetcher(allowed: tuple[Path, ...]) -> Any:
    """A WeasyPrint URL fetcher that loads only ``allowed`` files (and data: URLs): never the network,
    never another file, whatever a value in a document tries (a url() smuggled into a name)."""
    from weasyprint.urls import URLFetcher

    class ProjectOnly(URLFetcher):  # type: ignore[misc]  # WeasyPrint has no type information
        def fetch(self, url: str, headers: Any = None) -> Any:
            scheme = url.split(":", 1)[0].lower()
            if scheme == "file":
                path = Path(unquote(urlparse(url).path)).resolve()
                if any(path == root or path.is_relative_to(root) for root in allowed):
                    return super().fetch(url, headers)
            elif scheme == "data":
                return super().fetch(url, headers)
            raise ValueError(f"a document may load only the project's templates and the council's logo, not {url!r}")

    return ProjectOnly(allowed_protocols=("file", "data"))


_CSS_PLAIN = frozenset(" ,.:-'()/")


def read_stored(path: str | Path, sha256: str) -> bytes:
    """A stored document's bytes, once they are shown to be the ones recorded when it was made.

    Raises:
        DamagedFile: the file is missing, or it has been changed since (its hash differs).
    """
    name = Path(path).name
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DamagedFile(f"the stored document {name} is missing: restore the documents folder from backup") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise DamagedFile(
            f"the stored document {name} has been changed or damaged since it was made (its hash differs): "
            "restore it from backup, or render the document again"
        )
    return data


def _intact(path: Path, sha256: str) -> bool:
    try:
        read_stored(path, sha256)
    except DamagedFile:
        return False
    return True


def _css(text: Any) -> Markup:
    """A value inside a double-quoted CSS string (the page's running header and footer), escaped once,
    for CSS: anything but letters, digits and a few harmless marks becomes a CSS escape, so
    a quote, a backslash, a brace or a line break cannot end the string or the rule, and '<' cannot
    end the style element. It is Markup, so the HTML escaping of the page does not escape it twice
    (which showed "O'Brien" as "O&#39;Brien")."""
    # Each escape ends with a space, which CSS takes as its end (and so keeps a real space after it).
    return Markup("".join(ch if ch.isalnum() or ch in _CSS_PLAIN else f"\\{ord(ch):x} " for ch in str(text)))


# -- the service ------------------------------------------------------------------------------


class Documents:
    def __init__(self, store: Store, catalogue: Catalogue, directory: Directory, clock: Clock, settings: Settings):
        self.store = store
        self.catalogue = catalogue
        self.directory = directory
        self.clock = clock
        self.settings = settings
        self.templates = settings.templates_path() / "documents"

    @cached_property
    def _env(self) -> Environment:
        env = Environment(
            loader=FileSystemLoader(str(self.templates)),
            autoescape=select_autoescape(enabled_extensions=("html",), default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["long_date"] = long_date
        env.filters["short_date"] = lambda d: f"{d.day} {d:%B %Y}"
        env.filters["css"] = _css
        return env

    @cached_property
    def _templates_digest(self) -> str:
        import weasyprint

        digest = hashlib.sha256(f"{RENDERER_VERSION}:{weasyprint.__version__}".encode())
        for path in sorted(self.templates.glob("*.html")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def folder(self) -> Path:
        path = Path(self.settings.documents_dir)
        return path if path.is_absolute() else self.settings.base_dir / path

    # -- building the HTML ---------------------------------------------------------------------

    def html(
        self,
        case_id: int,
        kind: str,
        *,
        decision: str | None = None,
        version: int | None = None,
        adviser: str | None = None,
        step: tuple[int, int] | None = None,
    ) -> Rendered:
        """The document's HTML and the hash of everything that went into it."""
        if kind not in CLI_KINDS:
            raise InvalidInput(f"'{kind}' is not a kind of document; kinds: {', '.join(CLI_KINDS)}")
        if kind == "decision-letter":
            if decision not in DECISIONS:
                raise InvalidInput(f"--decision: say which letter; one of {', '.join(DECISIONS)}")
        elif decision is not None:
            raise InvalidInput("--decision goes only with decision-letter")
        with self.store.unit() as unit:
            context, plan_version = self._context(unit, case_id, kind, decision, version, adviser, step)
        template = {
            "draft-plan": "plan.html",
            "final-plan": "plan.html",
            "amendment-notice": "amendment_notice.html",
            "decision-letter": "decision_letter.html",
            "advice-request": "advice_request.html",
        }[kind]
        inputs = json.dumps({"template": template, **context}, default=str, sort_keys=True)
        digest = hashlib.sha256((self._templates_digest + inputs).encode()).hexdigest()
        page = self._env.get_template(template).render(**context)
        return Rendered(context["title"], page, digest, plan_version)

    def _context(
        self,
        unit: StoreUnit,
        case_id: int,
        kind: str,
        decision: str | None,
        version: int | None,
        adviser: str | None,
        step: tuple[int, int] | None,
    ) -> tuple[dict[str, Any], int | None]:
        rows = unit.fetch("SELECT name, date_of_birth, caseworker FROM ehc_case WHERE id = :c", {"c": case_id})
        if not rows:
            raise NotFound(f"no case {case_id}")
        name, dob, caseworker = rows[0][0], as_date(rows[0][1]), rows[0][2]
        contacts = unit.contacts_of({case_id}).get(case_id, [])
        family = next((c for c in contacts if c.role in ("parent", "young_person")), None)
        member = self.directory.find(caseworker)
        dated = self.clock.today()
        reasons = None
        entry = (
            unit.fetch(
                "SELECT occurred_on, inputs FROM history WHERE instance_id = :i AND seq = :s",
                {"i": step[0], "s": step[1]},
            )
            if step is not None
            else []
        )
        if entry:
            dated = as_date(entry[0][0])
            reasons = json.loads(entry[0][1]).get("reasons")
        deadlines = self._deadlines(unit, case_id, step if entry else None, dated)
        context: dict[str, Any] = {
            "council": {"name": self.settings.council.name, "logo": self._logo()},
            "case": {"id": case_id, "name": name, "date_of_birth": dob},
            "recipient": {
                "name": family.name if family else "The parent or young person",
                "role": family.role if family else None,
            },
            "contact": {"name": member.name if member else "the SEND team", "email": member.email if member else None},
            "signed_by": member.name if member else "The SEND team",
            "deadlines": deadlines,
            "decision": decision.replace("-", "_") if decision else None,
            "reasons": reasons,
            "draft": kind == "draft-plan",
            "footer": "",
        }
        plan_version: int | None = None
        if kind in ("draft-plan", "final-plan"):
            plan = self._plan(unit, case_id, version, kind)
            if kind == "final-plan" and plan.status != "issued":
                # A plan not yet issued is never printed as if it were final, without a DRAFT mark.
                issued = plans.latest_issued(unit, case_id, before=plan.version + 1) if version is None else None
                if issued is None:
                    raise InvalidInput(
                        f"plan version {plan.version} of case {case_id} has not been issued ({plan.status}): "
                        f"a final plan is made when it is issued; render the draft with 'ehcp docs render {case_id} "
                        "draft-plan'"
                    )
                plan = issued
            plan_version = plan.version
            if kind == "final-plan" and plan.issued_on:
                dated = plan.issued_on
            context["plan"] = {
                "version": plan.version,
                "based_on": plan.based_on,
                "status": plan.status,
                "sections": [
                    {
                        "letter": s,
                        "title": plans.SECTION_TITLES[s],
                        "html": text_html(plan.sections.get(s, "")) if plan.sections.get(s, "").strip() else "",
                        "empty_text": _empty_text(s, kind),
                    }
                    for s in plans.SECTIONS
                    if not (kind == "draft-plan" and s == "I")
                ],
            }
            context["title"] = (
                "Draft education, health and care plan" if kind == "draft-plan" else ("Education, health and care plan")
            )
            context["footer"] = f"EHC plan version {plan.version}" + (" (draft)" if kind == "draft-plan" else "")
        elif kind == "amendment-notice":
            proposed = self._plan(unit, case_id, version, kind)
            current = plans.latest_issued(unit, case_id, before=proposed.version)
            if current is None:
                raise InvalidInput(f"case {case_id} has no issued plan to amend")
            from .plandiff import diff_plan, to_html

            plan_version = proposed.version
            context["current"] = {"version": current.version, "issued_on": current.issued_on}
            context["proposed"] = {"version": proposed.version}
            context["changes_html"] = Markup(to_html(diff_plan(current.sections, proposed.sections)))
            context["title"] = "Notice of proposed changes to the EHC plan"
            context["footer"] = f"Proposed changes: plan version {current.version} to {proposed.version}"
        elif kind == "advice-request":
            label = ADVISERS.get((adviser or "educational").replace("_", "-"))
            if label is None:
                raise InvalidInput(f"--adviser: one of {', '.join(ADVISERS)}")
            context["adviser"] = {"label": label}
            context["title"] = f"Request for {label} advice for an EHC needs assessment"
            context["recipient"] = {"name": f"The {label} adviser", "role": None}
        else:
            context["title"] = DECISIONS[decision or ""]
        appeal = deadlines.get("appeal_window")
        # The appeal window's last day as its deadline counted it (TPR 2008 r.20(1)(c), then r.12);
        # a document made with no disagreement open gives the two months from its date, by the same rule.
        context["appeal_by"] = appeal["due_on"] if appeal else tribunal_appeal_day(add(dated, Duration(2, Unit.MONTHS)))
        mediation = deadlines.get("contact_mediation_adviser")
        context["mediation_by"] = mediation["due_on"] if mediation else None
        context["dated"] = dated
        return context, plan_version

    def _deadlines(
        self, unit: StoreUnit, case_id: int, step: tuple[int, int] | None, on: date
    ) -> dict[str, dict[str, Any]]:
        """The case's deadlines by name, the newest of each name; for a step's document, those the step
        opened (and the workflows it started) win, so a letter gives the dates of its own decision."""
        rows = unit.fetch(
            "SELECT name, due_on, source, title FROM deadline WHERE case_id = :c ORDER BY id", {"c": case_id}
        )
        found = {r[0]: {"due_on": as_date(r[1]), "source": r[2], "title": r[3]} for r in rows}
        if step is not None:
            found.update({d["name"]: d for d in unit.step_deadlines(step[0], step[1], on)})
        return _ByName(found)

    def _plan(self, unit: StoreUnit, case_id: int, version: int | None, kind: str) -> plans.PlanRecord:
        plan = plans.load(unit, case_id, version)
        if plan is None:
            raise NotFound(
                f"case {case_id} has no plan version {version}"
                if version
                else f"case {case_id} has no plan yet: write it with ehcp plan edit {case_id} --section A --file ..."
            )
        return plan

    def _logo(self) -> str | None:
        logo = self.settings.council.logo
        if not logo:
            return None
        path = Path(logo)
        path = path if path.is_absolute() else self.settings.base_dir / path
        return path.resolve().as_uri() if path.exists() else None

    # -- rendering and storing -----------------------------------------------------------------

    def pdf(self, page: str) -> bytes:
        """The PDF of a page, rendered in a child process within the council's time and memory limits
        (config.yaml: render_timeout_seconds, render_memory_megabytes); raises RenderFailed."""
        from weasyprint import HTML

        from .rendering import render_limited

        fetcher = _project_only_fetcher(self._allowed_files())

        def render() -> bytes:
            data: bytes = HTML(string=page, base_url=str(self.templates), url_fetcher=fetcher).write_pdf(
                pdf_variant="pdf/ua-1"
            )
            return data

        return render_limited(
            render, seconds=self.settings.render_timeout_seconds, megabytes=self.settings.render_memory_megabytes
        )

    def _allowed_files(self) -> tuple[Path, ...]:
        """What a document may load: the project's templates (and their assets) and the council's logo."""
        logo = self._logo()
        allowed = [self.templates.resolve()]
        if logo:
            allowed.append(Path(unquote(urlparse(logo).path)).resolve())
        return tuple(allowed)

    def _store_file(self, data: bytes) -> tuple[str, Path]:
        digest = hashlib.sha256(data).hexdigest()
        folder = self.folder()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{digest}.pdf"
        if not _intact(path, digest):  # not there, or damaged: written (again) whole
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            # 0600 whatever the process's umask (the command line sets one; a web worker may not).
            with os.fdopen(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        return digest, path

    def _produce(self, rendered: Rendered) -> tuple[str, int, Path, bool]:
        """(sha256, bytes, file, reused): the file made before from the same inputs, or a new one."""
        with self.store.unit() as unit:
            rows = unit.fetch(
                "SELECT sha256, bytes, path FROM document WHERE inputs_sha256 = :h AND status = 'ready' "
                "ORDER BY id LIMIT 1",
                {"h": rendered.inputs_sha256},
            )
        if rows and _intact(Path(rows[0][2]), rows[0][0]):
            return rows[0][0], rows[0][1], Path(rows[0][2]), True
        digest, path = self._store_file(self.pdf(rendered.html))
        return digest, path.stat().st_size, path, False

    def render(
        self,
        case_id: int,
        kind: str,
        *,
        actor: Actor,
        decision: str | None = None,
        version: int | None = None,
        adviser: str | None = None,
    ) -> tuple[DocumentRecord, Rendered]:
        """Make a document on demand (or find the same one made before) and record it."""
        may_change_cases(actor, "make a document")
        step = self._step_of(case_id, kind, decision) if version is None else None
        rendered = self.html(case_id, kind, decision=decision, version=version, adviser=adviser, step=step)
        now = self.clock.now()
        digest, size, path, reused = self._produce(rendered)
        with self.store.unit() as unit:
            rows = unit.fetch(
                "INSERT INTO document (case_id, instance_id, history_seq, kind, decision, status, created_at, "
                "plan_version, sha256, bytes, path, inputs_sha256) VALUES (:c, NULL, NULL, :kind, :decision, 'ready', "
                ":now, :pv, :sha, :bytes, :path, :inputs) RETURNING id",
                {
                    "c": case_id,
                    "kind": kind,
                    "decision": decision,
                    "now": now,
                    "pv": rendered.plan_version,
                    "sha": digest,
                    "bytes": size,
                    "path": str(path),
                    "inputs": rendered.inputs_sha256,
                },
            )
        record = DocumentRecord(
            rows[0][0], case_id, kind, decision, rendered.plan_version, digest, size, str(path), now, reused
        )
        return record, rendered

    def _step_of(self, case_id: int, kind: str, decision: str | None) -> tuple[int, int] | None:
        """The step that last produced this kind of document for the case, if one did: a letter made
        again on demand is dated as the decision was, with the dates that decision started."""
        names = [name for name, (k, d) in WORKFLOW_KINDS.items() if k == kind and d == decision]
        if not names or kind in ("draft-plan", "final-plan"):
            return None
        marks = ", ".join(f":k{i}" for i in range(len(names)))
        with self.store.unit() as unit:
            rows = unit.fetch(
                f"SELECT instance_id, history_seq FROM document WHERE case_id = :c AND kind IN ({marks}) "
                "AND instance_id IS NOT NULL ORDER BY id DESC LIMIT 1",
                {"c": case_id, **{f"k{i}": n for i, n in enumerate(names)}},
            )
        return (rows[0][0], rows[0][1]) if rows else None

    def process(
        self, limit: int | None = None, lease_seconds: float = 600, on_each: Callable[[], None] | None = None
    ) -> list[DocumentRecord]:
        """Render the documents steps have queued (oldest first); each is claimed, so two workers
        never render the same one, and one left half-done by a stopped worker is taken up again.
        ``on_each`` hears of every document tried, rendered or not (a progress bar counts them)."""
        done: list[DocumentRecord] = []
        now = self.clock.now()
        with self.store.unit() as unit:
            unit.execute(
                "UPDATE document SET status = 'queued' WHERE status = 'rendering' AND claimed_at < :t",
                {"t": now - timedelta(seconds=lease_seconds)},
            )
        while limit is None or len(done) < limit:
            with self.store.unit() as unit:
                rows = unit.fetch(
                    "SELECT id, case_id, instance_id, history_seq, kind, plan_version FROM document "
                    "WHERE status = 'queued' ORDER BY id LIMIT 20",
                    {},
                )
            if not rows:
                break
            progressed = False
            for doc_id, case_id, instance_id, seq, kind, plan_version in rows:
                with self.store.unit() as unit:
                    if not unit.execute(
                        "UPDATE document SET status = 'rendering', claimed_at = :now "
                        "WHERE id = :id AND status = 'queued'",
                        {"id": doc_id, "now": self.clock.now()},
                    ):
                        continue
                progressed = True
                cli_kind, decision = WORKFLOW_KINDS.get(kind, (None, None))
                try:
                    if cli_kind is None:
                        raise InvalidInput(f"no template for the document '{kind}'")
                    step = (instance_id, seq) if instance_id is not None and seq is not None else None
                    rendered = self.html(case_id, cli_kind, decision=decision, version=plan_version, step=step)
                    digest, size, path, _ = self._produce(rendered)
                except (InvalidInput, NotFound, RenderFailed) as exc:
                    self._failed(doc_id, kind, exc)
                    if on_each is not None:
                        on_each()
                    continue
                with self.store.unit() as unit:
                    unit.execute(
                        "UPDATE document SET status = 'ready', decision = :d, sha256 = :sha, bytes = :b, path = :p, "
                        "inputs_sha256 = :h, plan_version = :pv, error = NULL WHERE id = :id",
                        {
                            "d": decision,
                            "sha": digest,
                            "b": size,
                            "p": str(path),
                            "h": rendered.inputs_sha256,
                            "pv": rendered.plan_version,
                            "id": doc_id,
                        },
                    )
                done.append(
                    DocumentRecord(
                        doc_id,
                        case_id,
                        kind,
                        decision,
                        rendered.plan_version,
                        digest,
                        size,
                        str(path),
                        self.clock.now(),
                    )
                )
                if on_each is not None:
                    on_each()
            if not progressed:
                break
        return done

    def _failed(self, doc_id: int, kind: str, exc: Exception) -> None:
        """A document that could not be made within its limits is tried once more, then marked
        failed (listed by 'ehcp docs list' with why, and in the log); one whose data is wrong is
        failed at once, since trying again cannot help."""
        retry = isinstance(exc, RenderFailed)
        with self.store.unit() as unit:
            unit.execute(
                "UPDATE document SET attempts = attempts + 1, error = :e, status = CASE WHEN :retry "
                "AND attempts < 1 THEN 'queued' ELSE 'failed' END WHERE id = :id",
                {"e": str(exc)[:1000], "retry": retry, "id": doc_id},
            )
            status = unit.fetch("SELECT status FROM document WHERE id = :id", {"id": doc_id})[0][0]
        log.warning("document %s (%s) not rendered, %s: %s", doc_id, kind, status, exc)

    def process_in_parallel(self, workers: int) -> int:
        """Render the queue with ``workers`` processes (every core by default on the command line); the
        claims keep any two from rendering the same document. Returns how many were rendered."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if workers <= 1:
            return len(self.process())
        # Not a multiprocessing.Pool: its workers are daemonic, and a daemonic process may not start
        # the child each document renders in (engine.rendering). The executor's workers are not.
        job = (self.settings.model_dump(), str(self.settings.base_dir))
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            counts = list(pool.map(_process_worker, [job] * workers))
        return sum(counts)

    def list(self, case_id: int, *, actor: Actor) -> list[dict[str, Any]]:
        with self.store.unit() as unit:
            unit.instances(case_id)
            rows = unit.fetch(
                "SELECT id, kind, decision, status, plan_version, sha256, bytes, path, created_at, history_seq, "
                "instance_id, error FROM document WHERE case_id = :c ORDER BY id",
                {"c": case_id},
            )
        return [
            {
                "id": r[0],
                # One vocabulary: the command line's kinds; the workflow file's name is kept beside it.
                "kind": WORKFLOW_KINDS.get(r[1], (r[1], None))[0],
                "decision": r[2] or WORKFLOW_KINDS.get(r[1], (None, None))[1],
                "made_by": "step" if r[10] is not None else "on demand",
                "workflow_kind": r[1] if r[1] in WORKFLOW_KINDS else None,
                "status": r[3],
                "plan_version": r[4],
                "sha256": r[5],
                "bytes": r[6],
                "path": r[7],
                "created": str(r[8]),
                "history_seq": r[9],
                "instance": r[10],
                "error": r[11],
            }
            for r in rows
        ]


def _process_worker(job: tuple[dict[str, Any], str]) -> int:
    from .app import App
    from .clock import SystemClock

    settings = Settings.model_validate(job[0]).model_copy(update={"base_dir": Path(job[1])})
    app = App(settings, SystemClock())
    try:
        return len(app.documents.process())
    finally:
        app.engine.dispose()


def _empty_text(letter: str, kind: str) -> str:
    if letter == "J":
        return "No personal budget has been requested."
    if letter == "I" and kind == "final-plan":
        return "No school or setting is named yet."
    return "Nothing is recorded in this section."

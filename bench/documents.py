"""Rendering EHC plans to PDF: the product beside bare WeasyPrint on the same HTML, in one run.

    .venv/bin/python bench/documents.py                 # a 10-15 page plan; 5 warm renders; a batch of 200
    .venv/bin/python bench/documents.py --batch 40 --warm 3

Figures:
- first render: a fresh process's first plan (fonts found and loaded, templates compiled);
- warm renders: the same plan again (median), product (context from the database, Jinja, WeasyPrint
  with PDF/UA-1 tagging) and bare WeasyPrint on the very same HTML, untagged and tagged;
- batch: 200 different plans queued as a step queues them, rendered by ``Documents.process`` in
  one process, then by ``process_in_parallel`` across every core; pages per second;
- an unchanged document asked for again: found by the hash of its inputs, not rendered.
Peak RSS is the largest of this process and its workers.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import weasyprint  # noqa: E402
from pypdf import PdfReader  # noqa: E402
from weasyprint import HTML  # noqa: E402

from engine.actor import Actor  # noqa: E402
from engine.app import App  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.config import Settings, StaffMember  # noqa: E402
from engine.store.repository import ContactRecord  # noqa: E402

STAFF = [
    StaffMember(id="cw", name="Casey Worker", email="cw@example.org", role="caseworker"),
    StaffMember(id="tm", name="Team Manager", email="tm@example.org", role="team_manager"),
]
AREAS = ["Communication and interaction", "Cognition and learning", "Social, emotional and mental health",
         "Sensory and/or physical needs"]  # fmt: skip
DIFFICULTIES = [
    "follow spoken instructions of more than two steps",
    "start a task without an adult",
    "stay regulated during transitions between lessons",
    "record ideas in writing",
    "move safely around the school site",
    "join in games at break time",
]
GOALS = [
    "read a short passage aloud",
    "ask an adult for help when stuck",
    "use a visual timetable independently",
    "write three connected sentences",
    "take part in a group game for 10 minutes",
]
HOW = ["finds it hard to", "needs help to", "is working towards being able to"]
WHO = ["a speech and language therapist", "a trained teaching assistant", "the SENCo", "a specialist teacher",
       "an occupational therapist"]  # fmt: skip


WORKER = Actor("cw", "caseworker")  # as the shell establishes a caseworker


def long_plan(rng: random.Random, name: str) -> dict[str, str]:
    """A generated plan of the length real ones run to (10 to 15 pages): no real child."""

    def needs(area: str) -> str:
        return "\n".join(
            f"- {name} {rng.choice(HOW)} "
            f"{rng.choice(DIFFICULTIES)}; "
            "the advice in section K describes how this shows at home and at school, and what has helped so far, "
            "including the strategies the class teacher has tried over the last two terms."
            for _ in range(rng.randint(5, 7))
        )

    def provision() -> str:
        return "\n".join(
            f"- {rng.choice(['Individual teaching', 'A structured programme', 'Small-group work', 'Direct therapy'])} "
            f"from {rng.choice(WHO)}: {rng.randint(2, 5)} sessions of {rng.choice([20, 30, 45])} minutes each week, "
            "planned with the class teacher, reviewed each half term against the outcomes in section E, with the "
            "programme and progress shared with the family at the end of each term."
            for _ in range(rng.randint(5, 7))
        )

    outcomes = "\n".join(
        f"- By July {rng.choice([2026, 2027])}, {name} will {rng.choice(GOALS)}, "
        "as measured by the class teacher and the therapist at the half-termly review."
        for _ in range(12)
    )
    advice = "\n\n".join(
        f"### {who.capitalize()}\n" + " ".join(
            f"{name} was seen in class and at home. Progress has been {rng.choice(['steady', 'uneven', 'slow'])} "
            "and the recommendations below build on what has worked. The adviser recommends that provision is "
            "specific, delivered by trained staff, and reviewed termly with the family."
            for _ in range(6)
        )
        for who in ["educational psychologist", "speech and language therapist", "paediatrician",
                    "occupational therapist", "school", "parents"]
    )  # fmt: skip
    return {
        "A": " ".join(f"{name} enjoys drawing, music and being outside, and wants to have friends." for _ in range(12)),
        "B": "\n\n".join(f"### {area}\n{needs(area)}" for area in AREAS),
        "C": " ".join(f"{name} has glue ear, monitored by the audiology service every six months." for _ in range(6)),
        "D": "No social care needs related to special educational needs have been identified.",
        "E": outcomes,
        "F": "\n\n".join(f"### {area}\n{provision()}" for area in AREAS),
        "G": "\n".join("- Review by the audiology service every 6 months, with a hearing test." for _ in range(4)),
        "H1": "None.",
        "H2": "None.",
        "I": "Demo Primary School (a maintained mainstream primary school)",
        "J": "",
        "K": advice,
    }


def median_time(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--warm", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(2014)
    with tempfile.TemporaryDirectory(prefix="ehcp-docs-") as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/cases.sqlite",
            workflows_dir=str(ROOT / "workflows"),
            templates_dir=str(ROOT / "templates"),
            documents_dir=f"{tmp}/documents",
            staff=STAFF,
        )
        clock = FixedClock(date(2026, 1, 5))
        app = App(settings, clock, create=True)
        cases = []
        for i in range(args.batch + 1):
            case_id = app.cases.open_case(
                name=f"Child {i} Example",
                date_of_birth=date(2017, 9, 14),
                workflow="needs_assessment",
                actor=WORKER,
                contacts=[ContactRecord("parent", f"Parent {i}", None)],
                caseworker="cw",
            ).case_id
            app.plans.edit(case_id, long_plan(rng, f"Child {i}"), actor=WORKER)
            cases.append(case_id)
        one = cases[0]

        started = time.perf_counter()
        record, rendered = app.documents.render(one, "draft-plan", actor=WORKER)
        first = time.perf_counter() - started
        page_count = len(PdfReader(record.path).pages)
        page = rendered.html

        def product() -> None:
            app.documents.pdf(app.documents.html(one, "draft-plan").html)

        product_s = median_time(product, args.warm)
        bare_s = median_time(
            lambda: HTML(string=page, base_url=str(ROOT / "templates" / "documents")).write_pdf(), args.warm
        )
        tagged_s = median_time(
            lambda: HTML(string=page, base_url=str(ROOT / "templates" / "documents")).write_pdf(pdf_tags=True),
            args.warm,
        )
        started = time.perf_counter()
        again, _ = app.documents.render(one, "draft-plan", actor=WORKER)
        cached = time.perf_counter() - started
        assert again.reused

        # The batch, queued as steps queue them.
        def queue() -> None:
            with app.store.unit() as unit:
                unit.execute("DELETE FROM document WHERE kind = 'draft_plan'", {})
                for case_id in cases[1:]:
                    unit.execute(
                        "INSERT INTO document (case_id, kind, status, created_at) "
                        "VALUES (:c, 'draft_plan', 'queued', :n)",
                        {"c": case_id, "n": clock.now()},
                    )

        queue()
        started = time.perf_counter()
        done = len(app.documents.process())
        serial = time.perf_counter() - started
        with app.store.unit() as unit:
            batch_pages = sum(
                len(PdfReader(r[0]).pages)
                for r in unit.fetch("SELECT path FROM document WHERE kind = 'draft_plan' AND status = 'ready'", {})
            )
        # The same plans again: the queue finds each unchanged, so render them with a fresh store.
        for path in Path(settings.documents_dir).glob("*.pdf"):
            path.unlink()
        queue()
        cores = os.cpu_count() or 1
        started = time.perf_counter()
        parallel_done = app.documents.process_in_parallel(cores)
        parallel = time.perf_counter() - started

    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    print(f"plan: {page_count} pages, {len(page) / 1024:.0f} KB of HTML; WeasyPrint {weasyprint.__version__}")
    print(f"first render (cold process)          {first:7.2f} s")
    print(f"warm render, product (PDF/UA-1)      {product_s:7.2f} s  {page_count / product_s:5.1f} pages/s")
    print(f"warm render, bare WeasyPrint         {bare_s:7.2f} s  {page_count / bare_s:5.1f} pages/s")
    print(f"warm render, bare, tagged            {tagged_s:7.2f} s  {page_count / tagged_s:5.1f} pages/s")
    print(f"product / bare: {product_s / bare_s:.2f}   product / bare tagged: {product_s / tagged_s:.2f}")
    print(f"unchanged document asked for again   {cached * 1e3:7.1f} ms (found by its inputs' hash, not rendered)")
    print(f"batch of {done} plans, 1 process       {serial:7.1f} s  {batch_pages / serial:5.1f} pages/s")
    rate = batch_pages / parallel
    print(f"batch of {parallel_done} plans, {cores} processes      {parallel:7.1f} s  {rate:5.1f} pages/s", end="")
    print(f"  ({serial / parallel:.2f}x)")
    print(f"peak RSS {peak / 1024:.0f} MB; Python {sys.version.split()[0]}; {cores} cores")


if __name__ == "__main__":
    main()

"""The caseworker's guide, written from the workflow files: each stage, what happens, its time
limits and their sources, the council's readings of open points, and a diagram of each workflow.

Markdown for the repository and the intranet, HTML (self-contained, diagrams as inline SVG) for
reading offline.
"""

from __future__ import annotations

import html
import math
from collections import deque
from pathlib import Path

from .calendar import Duration
from .definition.model import START, DeadlineSpec, Direction, WorkflowDefinition
from .diagram import mermaid

PARTY = {
    "council": "the council",
    "family": "the family (their period)",
    "adviser": "the adviser",
    "school": "the school or college",
    "health": "the health body (ICB)",
}


def _words(text: str) -> str:
    return " ".join(text.split())


def how_long(d: DeadlineSpec) -> str:
    """A deadline's rule in words: '20 weeks from request_received_on'."""
    rule = _how_long(d)
    if d.adjusted_by is not None:
        rule += ", then the tribunal's rule 12 (5pm; a weekend, bank holiday, 25 Dec-1 Jan or August moves it on)"
    return rule


def _how_long(d: DeadlineSpec) -> str:
    if d.end_of_academic_year_at_age is not None:
        return f"31 July ending the academic year in which the young person turns {d.end_of_academic_year_at_age}"
    if d.fixed is not None:
        month = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ][d.fixed.month - 1]
        return f"{d.fixed.day} {month} in the calendar year of {d.fixed.year_of}"
    if d.later_of:
        parts = [f"{p.duration} from {p.counted_from or 'the step'}" for p in d.later_of]
        return "the later of " + " and ".join(parts)
    duration = str(d.duration) if d.duration is not None else f"the council's '{d.duration_from}'"
    origin = d.counted_from or "the step that opens it"
    if d.direction is Direction.BEFORE:
        return f"{duration} before {origin}"
    if isinstance(d.duration, Duration) and d.duration.amount == 0:
        return f"on {origin}"
    return f"{duration} from {origin}"


def _opened_by(d: DeadlineSpec) -> str:
    return ", ".join("the start" if t == START else t for t in d.opened_by)


def markdown(definitions: list[WorkflowDefinition], council: str) -> str:
    out = [f"# Caseworker's guide to the EHC process ({council})", ""]
    out += [
        "Written from the workflow files the engine runs, so it says exactly what the engine does. "
        "Every time limit names its source: CFA = Children and Families Act 2014; Regs = the Special "
        "Educational Needs and Disability Regulations 2014; CoP = SEND Code of Practice 2015; TPR = "
        "Tribunal Procedure (First-tier Tribunal) (HESC) Rules 2008. *Statutory* limits are the law; "
        "*guidance* comes from the Code or the tribunal; *local* targets are the council's own.",
        "",
        "A date is the last day on which the step is still on time. Statutory dates are never moved to a working day.",
        "",
    ]
    out += ["## Contents", ""] + [f"- [{d.title}](#{d.name})" for d in definitions] + [""]
    for d in definitions:
        out += [f'<a id="{d.name}"></a>', "", f"## {d.title}", "", _words(d.description), "", f"Source: {d.source}", ""]
        out += [f"Diagram: `diagrams/{d.name}.svg` (Mermaid source `diagrams/{d.name}.mmd`).", ""]
        if d.parameters:
            out += ["### Points the council has decided", ""]
            for name, p in d.parameters.items():
                src = f" ({p.source})" if p.source else ""
                out.append(f"- **{name}** = `{p.default}`: {_words(p.label)}{src}")
            out.append("")
        out += ["### Time limits", "", "| limit | how long | basis | who acts | source |", "|---|---|---|---|---|"]
        seen: set[tuple[str, str]] = set()
        for dl in d.deadlines:
            key = (dl.name, how_long(dl))
            if key in seen:
                continue
            seen.add(key)
            extra = " Exceptions: " + ", ".join(h.value for h in dl.exceptions) + "." if dl.exceptions else ""
            out.append(
                f"| {dl.title} | {how_long(dl)} | {dl.basis.value} | {PARTY[dl.party.value]} | {dl.source}.{extra} |"
            )
        out += ["", "### Stages", ""]
        for name, state in d.states.items():
            tag = " (the start)" if name == d.initial else (" (the end)" if state.final else "")
            out += [f"#### {name}{tag}", "", _words(state.description), ""]
            steps = d.transitions_from(name)
            if steps:
                out.append("What can happen next:")
                out.append("")
                for t in steps:
                    who = " or ".join(r.replace("_", " ") for r in t.roles)
                    inputs = f" You give: {', '.join(t.inputs)}." if t.inputs else ""
                    limits = _limits_of(d, t.trigger)
                    out.append(f"- `{t.trigger}` ({who}): {t.title or t.trigger} → {t.dest}.{inputs}{limits}")
                out.append("")
            starts = [s.workflow for s in state.on_enter.start]
            if starts:
                out += [f"Starts: {', '.join(starts)}.", ""]
    return "\n".join(out) + "\n"


def _limits_of(d: WorkflowDefinition, trigger: str) -> str:
    opened = sorted({x.name for x in d.deadlines if trigger in x.opened_by})
    met = sorted({x.name for x in d.deadlines if trigger in x.met_by})
    parts = []
    if opened:
        parts.append("opens " + ", ".join(opened))
    if met:
        parts.append("meets " + ", ".join(met))
    return (" It " + "; ".join(parts) + ".") if parts else ""


# -- HTML --------------------------------------------------------------------------------------


def _inline(text: str) -> str:
    """The little Markdown the guide uses (`code`, **bold**, *italic*) as HTML."""
    out = html.escape(text)
    for mark, tag in (("`", "code"), ("**", "strong"), ("*", "em")):
        pieces = out.split(mark)
        if len(pieces) % 2 == 1 and len(pieces) > 1:
            out = "".join(p if i % 2 == 0 else f"<{tag}>{p}</{tag}>" for i, p in enumerate(pieces))
    return out


def to_html(md: str, title: str, svgs: dict[str, str]) -> str:
    body: list[str] = []
    table: list[str] = []
    in_list = False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            tag = "th" if not table else "td"
            table.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if table:
            body.append("<table>" + "".join(table) + "</table>")
            table = []
        if line.startswith("- "):
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{_inline(line[2:])}</li>")
            continue
        if in_list:
            body.append("</ul>")
            in_list = False
        if line.startswith('<a id="'):
            body.append(line)
            name = line.split('"')[1]
            if name in svgs:
                body.append(f'<figure class="diagram">{svgs[name]}</figure>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    if table:
        body.append("<table>" + "".join(table) + "</table>")
    if in_list:
        body.append("</ul>")
    style = (
        "body{font-family:Arial,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
        "line-height:1.5;color:#0b0c0c}"
        "table{border-collapse:collapse;width:100%;margin:1rem 0}"
        "th,td{border:1px solid #b1b4b6;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}"
        "th{background:#f3f2f1}code{background:#f3f2f1;padding:0 .2rem}"
        "h2{border-top:4px solid #1d70b8;padding-top:1rem;margin-top:3rem}"
        "figure.diagram{overflow-x:auto;margin:1rem 0}"
    )
    return (
        f'<!doctype html>\n<html lang="en-GB"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


# -- diagrams ----------------------------------------------------------------------------------


def svg(d: WorkflowDefinition) -> str:
    """A layered state diagram: states in rows by their distance from the start, steps as arrows."""
    depth = {d.initial: 0}
    queue = deque([d.initial])
    while queue:
        here = queue.popleft()
        for t in d.transitions_from(here):
            if t.dest not in depth:
                depth[t.dest] = depth[here] + 1
                queue.append(t.dest)
    for name in d.states:
        depth.setdefault(name, max(depth.values()) + 1)
    rows: dict[int, list[str]] = {}
    for name in d.states:
        rows.setdefault(depth[name], []).append(name)
    box_w, box_h, gap_x, gap_y = 190, 34, 40, 80
    width = max(len(r) for r in rows.values()) * (box_w + gap_x) + gap_x
    height = len(rows) * (box_h + gap_y) + gap_y
    pos: dict[str, tuple[float, float]] = {}
    for level, names in rows.items():
        span = len(names) * (box_w + gap_x) - gap_x
        x0 = (width - span) / 2
        for i, name in enumerate(names):
            pos[name] = (x0 + i * (box_w + gap_x), gap_y / 2 + level * (box_h + gap_y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{html.escape(d.title)} state diagram">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#505a5f"/></marker></defs>',
        "<style>text{font-family:Arial,sans-serif}.s{font-size:12px}.t{font-size:10px;fill:#505a5f}</style>",
    ]
    drawn: set[tuple[str, str]] = set()
    for t in d.transitions:
        for src in t.source:
            if (src, t.dest) in drawn:
                continue
            drawn.add((src, t.dest))
            (x1, y1), (x2, y2) = pos[src], pos[t.dest]
            cx1, cy1, cx2, cy2 = x1 + box_w / 2, y1 + box_h / 2, x2 + box_w / 2, y2 + box_h / 2
            if src == t.dest:
                parts.append(
                    f'<path d="M{x1 + box_w:.0f},{cy1 - 8:.0f} c30,-20 30,36 0,16" fill="none" stroke="#505a5f" '
                    'marker-end="url(#arrow)"/>'
                )
                parts.append(
                    f'<text class="t" x="{x1 + box_w + 26:.0f}" y="{cy1 + 4:.0f}">{html.escape(t.trigger)}</text>'
                )
                continue
            ex, ey = _edge(cx1, cy1, cx2, cy2, box_w, box_h)
            sx, sy = _edge(cx2, cy2, cx1, cy1, box_w, box_h)
            parts.append(
                f'<line x1="{sx:.0f}" y1="{sy:.0f}" x2="{ex:.0f}" y2="{ey:.0f}" stroke="#505a5f" '
                'marker-end="url(#arrow)"/>'
            )
            mx, my = (sx + ex) / 2, (sy + ey) / 2
            parts.append(f'<text class="t" x="{mx + 3:.0f}" y="{my - 3:.0f}">{html.escape(t.trigger)}</text>')
    for name, (x, y) in pos.items():
        state = d.states[name]
        fill = "#cce2d8" if state.final else ("#d2e2f1" if name == d.initial else "#ffffff")
        parts.append(
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" stroke="#0b0c0c"/>'
        )
        parts.append(
            f'<text class="s" x="{x + box_w / 2:.0f}" y="{y + box_h / 2 + 4:.0f}" text-anchor="middle">'
            f"{html.escape(name)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _edge(cx: float, cy: float, tx: float, ty: float, w: float, h: float) -> tuple[float, float]:
    """Where the line from the box centred at (tx, ty) towards (cx, cy) leaves that box."""
    dx, dy = cx - tx, cy - ty
    if dx == 0 and dy == 0:
        return tx, ty
    scale = min((w / 2) / abs(dx) if dx else math.inf, (h / 2) / abs(dy) if dy else math.inf)
    return tx + dx * scale, ty + dy * scale


def write(definitions: list[WorkflowDefinition], council: str, folder: Path) -> list[Path]:
    """Write guide.md, guide.html and diagrams/NAME.svg and .mmd into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "diagrams").mkdir(exist_ok=True)
    written: list[Path] = []
    svgs: dict[str, str] = {}
    for d in definitions:
        svgs[d.name] = svg(d)
        for suffix, text in ((".svg", svgs[d.name]), (".mmd", mermaid(d))):
            path = folder / "diagrams" / f"{d.name}{suffix}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    md = markdown(definitions, council)
    title = f"Caseworker's guide to the EHC process ({council})"
    for name, text in (("guide.md", md), ("guide.html", to_html(md, title, svgs))):
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written

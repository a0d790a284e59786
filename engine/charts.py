"""Charts as SVG, small and accessible: a title and a description a screen reader announces, text
escaped for XML, colours with enough contrast, and always a table beside it on the page (the chart
is a picture of the table, never the only place a figure is)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

BAR = "#1d70b8"  # GOV.UK blue on white: 5.2:1
REFERENCE = "#d4351c"  # GOV.UK red: the line a figure is compared with
TEXT = "#0b0c0c"


def _opening(title: str, description: str, width: int, height: int, chart_id: str) -> list[str]:
    """The start of a chart: its size, and the title and description a screen reader announces."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" class="app-chart" '
        'font-family="system-ui, &quot;Segoe UI&quot;, Roboto, Helvetica, Arial, sans-serif">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
        f'<text x="0" y="18" font-size="16" font-weight="bold" fill="{TEXT}">{escape(title)}</text>',
    ]


def bar_chart(
    title: str,
    description: str,
    items: Sequence[tuple[str, float | None]],
    *,
    unit: str = "",
    top: float | None = None,
    reference: tuple[str, float] | None = None,
    chart_id: str = "chart",
) -> str:
    """Horizontal bars, one per item, labelled with its value; ``reference`` draws a labelled line (a
    national figure, say) across them. An item with no value is drawn as "no data"."""
    label_width, bar_width, row, gap = 190, 360, 26, 6
    values = [v for _, v in items if v is not None]
    scale_top = top or max([*values, reference[1] if reference else 0, 1])
    height = 40 + len(items) * (row + gap) + (24 if reference else 0)
    width = label_width + bar_width + 80
    parts = _opening(title, description, width, height, chart_id)
    for n, (label, value) in enumerate(items):
        y = 34 + n * (row + gap)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + row * 0.68:.1f}" font-size="14" text-anchor="end" '
            f'fill="{TEXT}">{escape(label)}</text>'
        )
        if value is None:
            parts.append(
                f'<text x="{label_width}" y="{y + row * 0.68:.1f}" font-size="14" fill="{TEXT}">no data</text>'
            )
            continue
        length = max(0.0, min(1.0, value / scale_top)) * bar_width
        parts.append(f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{row}" fill="{BAR}"/>')
        shown = f"{value:g}{unit}"
        parts.append(
            f'<text x="{label_width + length + 6:.1f}" y="{y + row * 0.68:.1f}" font-size="14" '
            f'fill="{TEXT}">{escape(shown)}</text>'
        )
    if reference is not None:
        x = label_width + max(0.0, min(1.0, reference[1] / scale_top)) * bar_width
        bottom = 34 + len(items) * (row + gap)
        parts.append(
            f'<line x1="{x:.1f}" y1="28" x2="{x:.1f}" y2="{bottom}" stroke="{REFERENCE}" stroke-width="3" '
            'stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 18}" font-size="14" text-anchor="middle" fill="{REFERENCE}">'
            f"{escape(reference[0])}: {reference[1]:g}{escape(unit)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


SECOND = "#505a5f"  # GOV.UK dark grey: 7:1 on white, and apart from the blue


def grouped_bar_chart(
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    unit: str = "",
    top: float | None = None,
    chart_id: str = "chart",
) -> str:
    """Horizontal bars in groups: for each label, one bar per series (at most two: blue, then grey),
    each labelled with its value and, in a key, its series. A missing value is drawn as "no data"."""
    colours = (BAR, SECOND)
    label_width, bar_width, bar, gap = 190, 360, 18, 12
    values = [v for _, vs in series for v in vs if v is not None]
    scale_top = top or max([*values, 1])
    group = len(series) * bar + gap
    key_height = 24
    height = 34 + key_height + len(labels) * group + 8
    width = label_width + bar_width + 80
    parts = _opening(title, description, width, height, chart_id)
    x = label_width
    for (name, _), colour in zip(series, colours, strict=False):
        parts.append(f'<rect x="{x}" y="30" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{x + 20}" y="42" font-size="14" fill="{TEXT}">{escape(name)}</text>')
        x += 20 + 9 * len(name) + 24
    for n, label in enumerate(labels):
        y = 34 + key_height + n * group
        parts.append(
            f'<text x="{label_width - 8}" y="{y + len(series) * bar / 2 + 5:.1f}" font-size="14" text-anchor="end" '
            f'fill="{TEXT}">{escape(label)}</text>'
        )
        for m, ((_, vs), colour) in enumerate(zip(series, colours, strict=False)):
            value = vs[n]
            top_y = y + m * bar
            if value is None:
                parts.append(
                    f'<text x="{label_width}" y="{top_y + bar * 0.75:.1f}" font-size="12" fill="{TEXT}">no data</text>'
                )
                continue
            length = max(0.0, min(1.0, value / scale_top)) * bar_width
            parts.append(
                f'<rect x="{label_width}" y="{top_y}" width="{length:.1f}" height="{bar - 2}" fill="{colour}"/>'
            )
            parts.append(
                f'<text x="{label_width + length + 6:.1f}" y="{top_y + bar * 0.75:.1f}" font-size="12" '
                f'fill="{TEXT}">{escape(f"{value:g}{unit}")}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"

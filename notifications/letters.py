"""Letters for contacts with no email address: the rendered HTML page printed to PDF, for the post room.

>>> write_letter(letter, "outbox-files")
PosixPath('outbox-files/letters/case-41.final_plan.pdf')
"""

from __future__ import annotations

from pathlib import Path

from weasyprint import HTML

from notifications.folder import write_atomically
from notifications.message import Letter, TemporaryFailure
from notifications.smtp import safe_key


def render_letter(letter: Letter) -> bytes:
    """The letter as a tagged PDF (readable by screen readers) titled with its subject, in en-GB when the page
    does not say otherwise."""
    document = HTML(string=letter.html).render(pdf_tags=True)
    document.metadata.title = letter.subject
    if not document.metadata.lang:
        document.metadata.lang = "en-GB"
    pdf: bytes = document.write_pdf(pdf_tags=True)
    return pdf


def write_letter(letter: Letter, directory: Path | str) -> Path:
    """Write `<directory>/letters/<key>.pdf` atomically; the same outbox row always gives the same file."""
    path = Path(directory) / "letters" / f"{safe_key(letter.key)}.pdf"
    try:
        write_atomically(path, render_letter(letter))
    except OSError as error:
        raise TemporaryFailure(
            f"letter {letter.key}: cannot write to {path.parent} ({error.strerror or type(error).__name__})"
        ) from None
    return path

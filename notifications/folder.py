"""Sending into a folder of .eml files: for development, for a council that collects mail by file
drop, and for checking by eye what would have gone out.

>>> FolderTransport("outbox-files").send(email)
'case-41.final_plan.eml'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from notifications.message import Email, TemporaryFailure
from notifications.smtp import build_email_or_fail, safe_key


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees the old file or the whole new one, never a part.

    Creates the folder. The temporary file sits in the same folder, so os.replace is a rename.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class FolderTransport:
    """Writes each message as `<directory>/<key>.eml`; a repeat of the same outbox row overwrites its file."""

    name = "folder"

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def send(self, message: Email) -> str:
        email = build_email_or_fail(message)
        path = self.directory / f"{safe_key(message.key)}.eml"
        try:
            write_atomically(path, email.as_bytes())
        except OSError as error:
            raise TemporaryFailure(
                f"message {message.key}: cannot write to {self.directory} ({error.strerror or type(error).__name__})"
            ) from None
        return path.name

"""Long work shown as it goes, on stderr: a progress bar on a terminal, otherwise a line of counts.

Standard output stays for what a command reports (and for ``--json``), so ``ehcp tick --json | jq``
is never mixed with progress.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

Advance = Callable[[int], None]


class Progress:
    """Phases of long work (rendering documents, sweeping deadlines, sending messages), each counted.

    On a terminal a phase is a rich progress bar, left on the screen when it ends. Elsewhere (a log
    file, a pipe, cron's mail) a line of counts when the phase ends, and every ``every`` seconds
    while a long one runs, so a stuck run can be told from a slow one.
    """

    def __init__(self, stream: TextIO | None = None, *, terminal: bool | None = None, every: float = 10.0):
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.every = every

    @contextmanager
    def phase(self, label: str, total: int | None = None) -> Iterator[Advance]:
        """Count a phase's work: ``with progress.phase("rendering documents", 121) as advance: advance(1)``."""
        if self.terminal:
            with self._bar(label, total) as advance_bar:
                yield advance_bar
            return
        done = 0
        started = last = time.monotonic()

        def advance(n: int = 1) -> None:
            nonlocal done, last
            done += n
            if time.monotonic() - last >= self.every:
                last = time.monotonic()
                self._line(label, done, total, last - started)

        yield advance
        self._line(label, done, total, time.monotonic() - started)

    def _line(self, label: str, done: int, total: int | None, seconds: float) -> None:
        of = f" of {total}" if total is not None else ""
        self.stream.write(f"{label}: {done}{of} ({seconds:.1f} s)\n")
        self.stream.flush()

    @contextmanager
    def _bar(self, label: str, total: int | None) -> Iterator[Advance]:
        # rich is imported only here: most commands never draw a bar.
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        bar = Bar(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=self.stream),
        )
        task: Any = bar.add_task(label, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        with bar:
            yield advance
            bar.update(task, total=bar.tasks[0].completed if total is None else total)


class Silent(Progress):
    """No progress shown: for the scheduler's runs and for callers that only want the result."""

    def __init__(self) -> None:
        super().__init__(sys.stderr, terminal=False)

    @contextmanager
    def phase(self, label: str, total: int | None = None) -> Iterator[Advance]:
        def advance(n: int = 1) -> None:
            pass

        yield advance

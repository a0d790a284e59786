"""Rendering a PDF in a child process with a time and a memory limit, so that one document that is
too big or too slow (a 10 MB plan section) cannot stall the process that renders it, nor, since
the scheduler renders after it sweeps and sends, any reminder.

The child is forked from the renderer (WeasyPrint is imported once, in the parent, and shared);
it sets its own address-space limit, renders, sends the bytes back through a pipe and leaves
without running the parent's exit handlers. A child that runs out of time is killed.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
from collections.abc import Callable
from multiprocessing.connection import Connection


class RenderFailed(Exception):
    """A document could not be rendered within its limits (the message says which)."""


def _vsize() -> int:
    """This process's virtual memory size in bytes (Linux), or 0 when it cannot be read."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _child(render: Callable[[], bytes], extra_bytes: int, out: Connection) -> None:
    try:
        if extra_bytes > 0 and _vsize():
            limit = _vsize() + extra_bytes
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        data = render()
        out.send(("ok", data))
    except MemoryError:
        out.send(("error", "it needed more memory than the limit"))
    except Exception as exc:  # the document's own error: told to the parent, which decides
        out.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        out.close()
        os._exit(0)  # not the parent's atexit handlers, connections or threads


def render_limited(render: Callable[[], bytes], *, seconds: float, megabytes: int) -> bytes:
    """``render()`` in a forked child given ``seconds`` and ``megabytes`` more than the parent uses."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(render, megabytes * 1024 * 1024, send), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(seconds):
            child.kill()
            raise RenderFailed(f"it took longer than {seconds:g} seconds")
        try:
            status, value = receive.recv()
        except EOFError:
            raise RenderFailed(f"the renderer stopped (memory limit {megabytes} MB)") from None
    finally:
        receive.close()
        child.join(5)
        if child.is_alive():
            child.kill()
    if status != "ok":
        raise RenderFailed(str(value))
    return bytes(value)

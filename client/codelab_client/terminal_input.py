"""Reading the keyboard without stalling the event loop (the WebSocket's heartbeat runs there).

Input is read in a daemon thread: a blocked `input()` then never keeps the process alive after Ctrl-C. A read whose
caller stops waiting (an approval prompt of a turn that was cancelled) cannot be stopped; its thread still takes the
next line. So the next `read_line` does not start a second reader: it shows its own prompt (`reprompt`) and takes
that line.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

_abandoned: asyncio.Future[str | None] | None = None
"""The outcome of a read whose caller stopped waiting while its thread still waits for a line."""


async def read_line(read: Callable[[], str], *, reprompt: Callable[[], object] | None = None) -> str | None:
    """`read()` in a daemon thread; None at end of input (Ctrl-D). `reprompt` shows the prompt alone, for when an
    abandoned read's thread takes the line instead."""
    global _abandoned
    loop = asyncio.get_running_loop()
    waiting, _abandoned = _abandoned, None
    if waiting is not None and not waiting.done() and waiting.get_loop() is loop:
        future = waiting
        if reprompt is not None:
            reprompt()
    else:
        future = _start(read, loop)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if not future.done():
            _abandoned = future
        raise


def _start(read: Callable[[], str], loop: asyncio.AbstractEventLoop) -> asyncio.Future[str | None]:
    future: asyncio.Future[str | None] = loop.create_future()

    def settle(value: str | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def worker() -> None:
        try:
            value: str | None = read()
            error: BaseException | None = None
        except EOFError:
            value, error = None, None
        except BaseException as exc:
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this line any more
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=worker, daemon=True, name="codelab-input").start()
    return future

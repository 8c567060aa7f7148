"""Reading the keyboard without stalling the event loop (the WebSocket's heartbeat runs there).

Input is read in a daemon thread: a blocked `input()` then never keeps the process alive after Ctrl-C.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable


async def read_line(read: Callable[[], str]) -> str | None:
    """`read()` in a daemon thread; None at end of input (Ctrl-D)."""
    loop = asyncio.get_running_loop()
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
        loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=worker, daemon=True, name="codelab-input").start()
    return await future

"""A minimal OTLP/HTTP receiver for benchmarks: accepts `POST /v1/traces`, answers 200, keeps nothing.

Raw asyncio on uvloop like `fast_upstream.py`, so the sink costs next to nothing and what the figures show is the
exporting service's own cost. On SIGINT/SIGTERM it prints how many export requests and bytes it took.

    python bench/otlp_sink.py PORT
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"


class Totals:
    requests = 0
    body_bytes = 0


class _Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            match = _CONTENT_LENGTH.search(self._buffer[:end])
            length = int(match.group(1)) if match else 0
            if len(self._buffer) < end + 4 + length:
                return
            self._buffer = self._buffer[end + 4 + length :]
            Totals.requests += 1
            Totals.body_bytes += length
            assert self._transport is not None
            self._transport.write(OK)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(_Sink, "127.0.0.1", port)
    async with server:
        await stop.wait()
    print(f"otlp sink: {Totals.requests} export requests, {Totals.body_bytes:,} bytes", flush=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))

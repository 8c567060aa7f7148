"""Many Hypothesis-generated WebSocket frames against a real gateway process, with agent-runtime, llm-proxy and a
fast upstream behind it (started by this script, as `session_chain.py` starts them).

    uv run python bench/ws_fuzz.py [--frames 20000] [--ide-share 0.2] [--bursts 20] [--utf8 200] [--oversize 50]

The frames are those of `gateway/tests/test_gateway_ws_fuzz.py` (its strategies and its checks): each goes down
one open connection followed by a probe, and what came back before the probe's error is checked (an unusable frame:
exactly one error frame with the expected code, quoting at most 64 characters of it; a usable one: none or one error
with a documented code). The stream connection then takes `--bursts` pipelined floods of 100-200 refused frames
and must still get a real answer to a real message; `--ide-share` of the frames go down an IDE connection
(`/api/v1/ws/`) after it; then `--utf8` connections each send a text frame that is not UTF-8 (1007 is expected) and
`--oversize` each a frame over the transport's 1 MiB (1009); at the end a new connection to the first session must
get a real answer too. The gateway's frame rate is raised so that nothing is rate-limited.

Prints the frames sent, error frames by code, closes by code, the failed checks (with the first few), the crashes
(the gateway gone, tracebacks or error lines in a service's log, INTERNAL error frames) and the gateway's RSS
before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st
from llm_proxy_bench import ROOT, rss_mb, running
from session_chain import Chain, ask, start_chain

sys.path.insert(0, str(ROOT))
from tests.fixtures.gateway import WsClient, is_final_message

UTF8_LINE = "Invalid UTF-8 sequence received from client"


def load_suite() -> ModuleType:
    path = ROOT / "gateway" / "tests" / "test_gateway_ws_fuzz.py"
    spec = importlib.util.spec_from_file_location("test_gateway_ws_fuzz", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


suite = load_suite()


class Tally:
    def __init__(self) -> None:
        self.stats = suite.Stats()
        self.failed: list[str] = []
        self.closes: Counter[str] = Counter()
        self.internal = 0

    def failure(self, what: str) -> None:
        self.failed.append(what[:400])


async def open_client(http: aiohttp.ClientSession, chain: Chain, session_id: str, ide: bool) -> WsClient:
    path = f"/api/v1/ws/{session_id}" if ide else f"/ws/{session_id}"
    return WsClient(await http.ws_connect(chain.ws_url + path, max_msg_size=0))


def fuzz_one_connection(
    loop: asyncio.AbstractEventLoop, http: aiohttp.ClientSession, chain: Chain, ide: bool, count: int, tally: Tally
) -> WsClient:
    """`count` generated frames down one connection (a new one, to the same session, if it is closed)."""
    run = suite.on_loop(loop)
    session_id = "bench-fuzz-ide" if ide else "bench-fuzz"
    holder = [run(open_client(http, chain, session_id, ide))]

    last = [time.monotonic()]

    async def one(case: Any) -> None:
        client = holder[0]
        try:
            await suite.exchange(client, case, tally.stats)
        except (AssertionError, aiohttp.ClientError, ConnectionError) as exc:
            if not client.ws.closed:
                tally.failure(str(exc))
                await drain(client)  # the probe's answer may still be on its way: read up to quiet
                return
            idle = time.monotonic() - last[0]
            tally.failure(
                f"connection closed ({client.ws.close_code}) after frame {tally.stats.frames}, {idle:.1f} s after the "
                f"last exchange ended: {exc!r}"
            )
            tally.closes[str(client.ws.close_code)] += 1
            holder[0] = await open_client(http, chain, session_id, ide)
        finally:
            last[0] = time.monotonic()

    @settings(suite.FUZZ_SETTINGS, max_examples=count)
    @given(case=suite.frames)
    def fuzz(case: Any) -> None:
        run(one(case))

    fuzz()
    return holder[0]


def floods(loop: asyncio.AbstractEventLoop, client: WsClient, bursts: int, tally: Tally) -> None:
    run = suite.on_loop(loop)

    async def one(burst: list[Any]) -> None:
        try:
            await suite.flood(client, burst, tally.stats)
        except AssertionError as exc:
            tally.failure(str(exc))
            await drain(client)

    @settings(suite.FUZZ_SETTINGS, max_examples=bursts)
    @given(burst=st.lists(suite.refused_frames, min_size=100, max_size=200))
    def fuzz(burst: list[Any]) -> None:
        run(one(burst))

    if bursts:
        fuzz()


async def drain(client: WsClient, quiet: float = 1.0) -> None:
    while True:
        try:
            await client.recv(timeout=quiet)
        except (TimeoutError, AssertionError):
            return


def closing_frames(
    loop: asyncio.AbstractEventLoop, http: aiohttp.ClientSession, chain: Chain, utf8: int, oversize: int, tally: Tally
) -> None:
    """Frames the transport refuses by closing: one connection each."""
    run = suite.on_loop(loop)

    async def one(payload: bytes, opcode: aiohttp.WSMsgType, expected: int) -> None:
        client = await open_client(http, chain, "bench-fuzz-close", ide=False)
        try:
            code = await suite.closed_by(client, payload, opcode)
        except AssertionError as exc:
            tally.failure(f"no close after a frame the transport refuses: {exc}")
            code = None
        finally:
            await client.ws.close()
        tally.stats.frames += 1
        tally.closes[str(code)] += 1
        if code != expected:
            tally.failure(f"closed with {code}, expected {expected}, after {payload[:60]!r}")

    @settings(suite.FUZZ_SETTINGS, max_examples=max(utf8, 1))
    @given(payload=suite.invalid_utf8)
    def not_utf8(payload: bytes) -> None:
        run(one(payload, aiohttp.WSMsgType.TEXT, 1007))

    @settings(suite.FUZZ_SETTINGS, max_examples=max(oversize, 1))
    @given(extra=st.integers(1, 256 << 10), binary=st.booleans())
    def too_big(extra: int, binary: bool) -> None:
        head = b'{"type": "tool_result", "call_id": "c", "result": "'
        payload = head + b"x" * (suite.MAX_TOOL_RESULT + extra) + b'"}'
        run(one(payload, aiohttp.WSMsgType.BINARY if binary else aiohttp.WSMsgType.TEXT, 1009))

    if utf8:
        not_utf8()
    if oversize:
        too_big()


async def a_real_turn(client: WsClient, tally: Tally) -> bool:
    await drain(client)
    await client.say(ask(5))
    try:
        frames = await client.recv_until(is_final_message, timeout=60)
    except (AssertionError, TimeoutError) as exc:
        tally.failure(f"no answer to a real message after the fuzzing: {exc!r}")
        return False
    answer = "".join(f.get("content") or "" for f in frames if f["type"] == "assistant_message")
    if answer != "".join(f"tok{i} " for i in range(5)):
        tally.failure(f"a real message got {answer!r}")
        return False
    return True


def log_findings(workdir: Path) -> tuple[Counter[str], int]:
    """Per service, the lines that are errors or carry a traceback (with their first words); and uvicorn's lines
    for a text frame that is not UTF-8 (one INFO line each, without a traceback, since logs.py's CLIENT_FAULTS)."""
    found: Counter[str] = Counter()
    utf8 = 0
    for name in ("gateway", "agent-runtime", "llm-proxy"):
        path = workdir / f"{name}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                level = str(json.loads(line).get("level", "")).lower()
            except (ValueError, AttributeError):
                level = ""
            if level in ("error", "critical") or "Traceback" in line or "[error" in line:
                found[f"{name}: {line[:90]}"] += 1
            elif UTF8_LINE in line:
                utf8 += 1
    return found, utf8


def keep_logs(workdir: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copy(log, folder / log.name)


async def main(args: argparse.Namespace) -> None:
    for name, value in {"GATEWAY__FRAMES_PER_SECOND": "1000000", "GATEWAY__FRAME_BURST": "1000000"}.items():
        os.environ[name] = value
    loop = asyncio.get_running_loop()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="ws-fuzz-") as folder:
        workdir = Path(folder)
        chain = start_chain(workdir, args.log_level, None, None)
        with running(list(chain.processes.values())):
            gateway = chain.processes["gateway"]
            rss_before = rss_mb(gateway.pid)
            started = time.monotonic()
            async with aiohttp.ClientSession() as http:
                ide = round(args.frames * args.ide_share)
                stream = await asyncio.to_thread(
                    fuzz_one_connection, loop, http, chain, False, args.frames - ide, tally
                )
                await asyncio.to_thread(floods, loop, stream, args.bursts, tally)
                answered = await a_real_turn(stream, tally)  # on the same connection
                await stream.ws.close()  # unread, it would miss the gateway's pings meanwhile
                if ide:
                    ide_client = await asyncio.to_thread(fuzz_one_connection, loop, http, chain, True, ide, tally)
                    await ide_client.ws.close()
                await asyncio.to_thread(closing_frames, loop, http, chain, args.utf8, args.oversize, tally)
                again = await open_client(http, chain, "bench-fuzz", ide=False)
                answered = await a_real_turn(again, tally) and answered  # and on a new one, to the same session
                await again.ws.close()
            seconds = time.monotonic() - started
            await asyncio.sleep(1.0)
            rss_after = rss_mb(gateway.pid)
            alive = gateway.poll() is None
        findings, utf8_lines = log_findings(workdir)
        if args.logs:
            keep_logs(workdir, args.logs)
    stats = tally.stats
    internal = stats.errors.get("INTERNAL", 0)
    print(f"## WebSocket fuzzing: {stats.frames} frames in {seconds:.0f} s (+{stats.probes} probes)")
    print(f"- error frames by code: {dict(stats.errors.most_common())}")
    print(f"- usable frames answered with nothing: {stats.unanswered}")
    print(f"- closes by code: {dict(tally.closes.most_common()) or 'none'}")
    print(f"- failed checks: {len(tally.failed)}")
    for line in tally.failed[:10]:
        print(f"  - {line}")
    crashes = (0 if alive else 1) + internal + sum(findings.values())
    print(
        f"- crashes: {crashes} (gateway {'up' if alive else 'GONE'}; INTERNAL frames {internal}; error or traceback "
        f"lines in the logs: {sum(findings.values())})"
    )
    for line, count in findings.most_common(10):
        print(f"  - {count} x {line}")
    print(f"- lines (below error, no traceback) for a text frame not UTF-8: {utf8_lines}")
    print(
        f"- a real message answered afterwards, on the same connection and on a new one: {'yes' if answered else 'NO'}"
    )
    print(f"- gateway RSS: {rss_before:.0f} MB before, {rss_after:.0f} MB after ({rss_after - rss_before:+.1f} MB)")
    print(f"- command: `{args.command}`")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000, help="generated frames, one at a time (20000)")
    parser.add_argument("--ide-share", type=float, default=0.2, help="the share of them on an IDE connection")
    parser.add_argument("--bursts", type=int, default=20, help="pipelined floods of 100-200 refused frames")
    parser.add_argument("--utf8", type=int, default=200, help="connections each sending a text frame not UTF-8")
    parser.add_argument("--oversize", type=int, default=50, help="connections each sending a frame over 1 MiB")
    parser.add_argument("--log-level", default="WARNING", help="every service's LOG_LEVEL")
    parser.add_argument("--logs", type=Path, help="copy the services' logs into this folder")
    arguments = parser.parse_args()
    arguments.command = shlex.join(["uv", "run", "python", "bench/ws_fuzz.py", *sys.argv[1:]])
    asyncio.run(main(arguments))

"""The gateway under clients that send nothing but bad frames: its memory, its answers, its log.

    uv run python bench/gateway_abuse.py [--sessions 500] [--frames 1000] [--concurrency 50] [--big-every 100]
        [--variants defaults,raised] [--ref REF]

Starts real processes: `fast_upstream.py` (answers at once), llm-proxy, agent-runtime (SQLite in a temporary
folder) and the gateway, every one at its default log level (INFO) with its log in a file; a fresh chain per variant.
Then `--sessions` sessions, `--concurrency` at a time, each connects to `/ws/{id}`, sends `--frames` bad frames as
fast as the socket takes them while a reader counts what comes back, and disconnects. The frames cycle through
invalid JSON, JSON that is not an object, a `type` that is not a string, no `type`, unknown types, fields of the
wrong type, a user_message whose id is too long, JSON nested 100 deep, a switch_agent (ignored: no answer), and
every `--big-every`-th frame a large one: alternately 200 KB of JSON whose type is unknown (within the 256 KiB
frame limit, so it is parsed) and a 300 KB user_message (over it, under the transport's 1 MiB: TOO_LARGE).

Variants: `defaults` (20 frames/s, burst 60, 200 refused frames in a row close the connection with 1008: a flooding
client is cut off after about 260 frames) and `raised` (GATEWAY__FRAMES_PER_SECOND and GATEWAY__FRAME_BURST at
10^9, so every frame is handled and answered).

Prints per variant: the gateway's RSS before (after a warm-up of 20 sessions), after, its growth (target < 20 MB)
and its peak (VmHWM), and both again after a full collection and glibc's malloc_trim in the gateway (SIGUSR1 to a
wrapper around `python -m codelab_gateway`): what live objects hold, as against what the allocator keeps from the
peak. Then the frames sent and the ones the gateway answered, error frames by code, how sockets ended (close codes:
1000 is the client's own close at the end, 1008 the gateway's after `GATEWAY__MAX_REFUSED_FRAMES` dropped in a row),
the time taken, and the gateway log's growth (bytes per session). Then one raw 4 MB text frame of invalid UTF-8 on
a fresh connection: how the socket ended and how much the gateway's log grew (target < 1 KB).
`--ref REF` runs the services as of a commit (`git archive`), so edits in the working tree meanwhile change nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import uvloop
from fast_upstream import MODEL
from llm_proxy_bench import (
    PROXY_KEY,
    _spawn,
    _wait_ready,
    free_port,
    peak_rss_mb,
    rss_mb,
    running,
    start_proxy,
    start_upstream,
)
from session_chain import checkout, describe_tree

AGENT_KEY = "bench-agent-runtime-key"
GATEWAY_KEY = "bench-gateway-key"
VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "raised": {"GATEWAY__FRAMES_PER_SECOND": "1000000000", "GATEWAY__FRAME_BURST": "1000000000"},
}
WARM_UP_SESSIONS = 20
GATEWAY = """
import ctypes, gc, os, signal

def trim(*_):
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    open(os.environ["BENCH_TRIMMED"], "w").close()

signal.signal(signal.SIGUSR1, trim)
from codelab_gateway.__main__ import main
main()
"""
"""`python -m codelab_gateway`, and on SIGUSR1 a full collection and glibc's malloc_trim: what RSS the allocator
keeps from the peak, as against what live objects hold."""
QUIET_S = 2.0
NOT_UTF8_BYTES = 4 << 20


SMALL_FRAMES = [
    '{"type": "user_message", "content": ',  # invalid JSON
    "[1, 2, 3]",
    '"just a string"',
    "null",
    '{"type": 5}',
    '{"content": "no type"}',
    '{"type": "launch_missiles"}',
    '{"type": "' + "u" * 900 + '"}',  # unknown; the error quotes 64 characters of it
    '{"type": "user_message", "content": 5}',
    '{"type": "user_message", "content": ""}',
    '{"type": "user_message", "content": "hi", "message_id": "' + "m" * 300 + '"}',
    '{"type": "tool_result", "call_id": 7, "result": []}',
    '{"type": "approval", "call_id": "c1", "decision": "perhaps"}',
    '{"type": "cancel", "message_id": ["not", "a", "string"]}',
    '{"type": "resume", "last_seq": "yesterday"}',
    "[" * 100 + "]" * 100,
    '{"type": "switch_agent", "agent": "other"}',  # ignored: no answer
]
UNANSWERED = frozenset({len(SMALL_FRAMES) - 1})
BIG_UNKNOWN = orjson.dumps({"type": "bench_unknown", "payload": "p" * (200 << 10)}).decode()
OVERSIZED = orjson.dumps({"type": "user_message", "content": "o" * (300 << 10)}).decode()


@dataclass
class Tally:
    sent: int = 0
    unanswered: int = 0
    """Frames sent that need no answer (switch_agent)."""
    answered: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)


async def one_session(
    http: aiohttp.ClientSession, ws_url: str, frames: int, big_every: int, tally: Tally, timeout: float
) -> None:
    """Send the frames, then an end mark (an unknown type naming this session) whose answer says every frame
    before it was answered; wait for it, for the gateway's close, or for `QUIET_S` without an answer (the
    mark itself dropped over the rate), then close."""
    session_id = f"abuse-{uuid.uuid4().hex[:16]}"
    try:
        ws = await http.ws_connect(f"{ws_url}/ws/{session_id}", max_msg_size=0)
    except aiohttp.ClientError as exc:
        tally.failures[f"connect {type(exc).__name__}"] += 1
        return
    end = asyncio.Event()

    async def read() -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                if session_id in message.data:
                    end.set()
                    continue
                frame = orjson.loads(message.data)
                tally.answered += 1
                tally.codes[str(frame.get("code") if frame.get("type") == "error" else frame.get("type"))] += 1
        end.set()  # the gateway closed the socket

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(timeout):
            for index in range(frames):
                big = big_every and index % big_every == big_every - 1
                which = index % len(SMALL_FRAMES)
                text = (OVERSIZED if (index // big_every) % 2 else BIG_UNKNOWN) if big else SMALL_FRAMES[which]
                try:
                    await ws.send_str(text)
                except (ConnectionError, aiohttp.ClientError):
                    break  # closed by the gateway
                tally.sent += 1
                tally.unanswered += not big and which in UNANSWERED
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await ws.send_str(orjson.dumps({"type": session_id}).decode())
            while not end.is_set():
                answered = tally.answered
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(end.wait(), QUIET_S)
                if tally.answered == answered:
                    break
            await ws.close()
    except TimeoutError:
        tally.failures["timeout"] += 1
    finally:
        reader.cancel()
        tally.closes[str(ws.close_code)] += 1


async def abuse(ws_url: str, sessions: int, frames: int, big_every: int, concurrency: int, timeout: float) -> Tally:
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as http:
        for start in range(0, sessions, concurrency):
            batch = min(concurrency, sessions - start)
            await asyncio.gather(*(one_session(http, ws_url, frames, big_every, tally, timeout) for _ in range(batch)))
    return tally


async def invalid_utf8(ws_url: str, log: Path) -> tuple[str, int]:
    """One raw 4 MB text frame that is not UTF-8: how the socket ended and how many bytes the gateway's log grew."""
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{ws_url}/ws/abuse-utf8-{uuid.uuid4().hex[:8]}") as ws:
        await asyncio.sleep(0.3)
        before = size(log)
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):  # closed (1009) before it was all sent
            await ws.send_frame(b"\xff\xfe" + b"\xc3(" * ((NOT_UTF8_BYTES - 2) // 2), aiohttp.WSMsgType.TEXT)
        async with asyncio.timeout(10):
            while (await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                pass
        code = str(ws.close_code)
    await asyncio.sleep(0.5)
    return code, size(log) - before


def trim(pid: int, done: Path) -> float:
    """The gateway's RSS after a full collection and malloc_trim (see GATEWAY); blocks up to 30 s."""
    done.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return rss_mb(pid)


def size(path: Path) -> int:
    return path.stat().st_size


@dataclass
class Chain:
    processes: list[subprocess.Popen[bytes]]
    """The upstream, llm-proxy, agent-runtime and the gateway, in the order they started."""
    ws_url: str
    gateway_log: Path

    @property
    def gateway_pid(self) -> int:
        return self.processes[-1].pid


def start_chain(workdir: Path, gateway_env: dict[str, str], pythonpath: str | None) -> Chain:
    """Started one by one: each waits for the one it calls. A process that started stays in `processes` even
    when a later one fails, so the caller stops it (see `measure`)."""
    code = {"PYTHONPATH": pythonpath} if pythonpath else {}
    upstream_url, upstream = start_upstream(workdir)
    processes = [upstream]
    proxy = start_proxy(upstream_url, workdir, extra_env={"LLM_PROXY__LOG_LEVEL": "INFO", **code})
    processes.append(proxy.process)
    agent_port = free_port()
    agent_env = {
        "AGENT_RUNTIME__INTERNAL_API_KEY": AGENT_KEY,
        "AGENT_RUNTIME__PORT": str(agent_port),
        "AGENT_RUNTIME__LLM_PROXY_URL": proxy.url.removesuffix("/v1/chat/completions"),
        "AGENT_RUNTIME__LLM_PROXY_API_KEY": PROXY_KEY,
        "AGENT_RUNTIME__MODEL": MODEL,
        "AGENT_RUNTIME__DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'agent-runtime.db'}",
        "AGENT_RUNTIME__WORKSPACE_CONTEXT": "false",
        **code,
    }
    agent = _spawn([sys.executable, "-m", "codelab_agent_runtime"], agent_env, workdir / "agent-runtime.log")
    processes.append(agent)
    _wait_ready(f"http://127.0.0.1:{agent_port}/health", agent, 60, {})
    gateway_port = free_port()
    env = {
        "GATEWAY__INTERNAL_API_KEY": GATEWAY_KEY,
        "GATEWAY__AGENT_RUNTIME_API_KEY": AGENT_KEY,
        "GATEWAY__AGENT_RUNTIME_URL": f"http://127.0.0.1:{agent_port}",
        "GATEWAY__PORT": str(gateway_port),
        **gateway_env,
        **code,
    }
    env["BENCH_TRIMMED"] = str(workdir / "trimmed")
    gateway = _spawn([sys.executable, "-c", GATEWAY], env, workdir / "gateway.log")
    processes.append(gateway)
    _wait_ready(f"http://127.0.0.1:{gateway_port}/health", gateway, 60, {})
    return Chain(processes, f"ws://127.0.0.1:{gateway_port}", workdir / "gateway.log")


def counter_text(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in counter.most_common()) or "none"


async def measure(name: str, args: argparse.Namespace, pythonpath: str | None) -> list[str]:
    with tempfile.TemporaryDirectory(prefix=f"gateway-abuse-{name}-") as folder:
        workdir = Path(folder)
        chain = start_chain(workdir, VARIANTS[name], pythonpath)
        with running(chain.processes):
            await abuse(chain.ws_url, WARM_UP_SESSIONS, args.frames, args.big_every, args.concurrency, args.timeout)
            await asyncio.sleep(1)
            before = rss_mb(chain.gateway_pid)
            trimmed_before = trim(chain.gateway_pid, workdir / "trimmed")
            log_before = size(chain.gateway_log)
            started = time.monotonic()
            tally = await abuse(
                chain.ws_url, args.sessions, args.frames, args.big_every, args.concurrency, args.timeout
            )
            seconds = time.monotonic() - started
            await asyncio.sleep(1)
            after = rss_mb(chain.gateway_pid)
            peak = peak_rss_mb(chain.gateway_pid)
            trimmed_after = trim(chain.gateway_pid, workdir / "trimmed")
            logged = size(chain.gateway_log) - log_before
            utf8_close, utf8_logged = await invalid_utf8(chain.ws_url, chain.gateway_log)
            alive = all(process.poll() is None for process in chain.processes)
    per_session = logged / args.sessions if args.sessions else 0.0
    return [
        f"### {name} ({' '.join(f'{k}={v}' for k, v in VARIANTS[name].items()) or 'the gateway defaults'})",
        "",
        f"- gateway RSS: {before:.1f} MB before, {after:.1f} MB after, growth {after - before:+.1f} MB "
        f"(target < 20 MB), peak (VmHWM) {peak:.1f} MB; after gc and malloc_trim {trimmed_before:.1f} MB "
        f"before and {trimmed_after:.1f} MB after ({trimmed_after - trimmed_before:+.1f} MB)",
        f"- frames sent {tally.sent:,} of {args.sessions * args.frames:,}, answered {tally.answered:,} (of "
        f"{tally.sent - tally.unanswered:,} that call for an answer), in {seconds:.1f} s "
        f"({tally.sent / seconds:,.0f} frames/s sent)",
        f"- error frames by code: {counter_text(tally.codes)}",
        f"- sockets ended with: {counter_text(tally.closes)}; client-side failures: {counter_text(tally.failures)}",
        f"- gateway log: +{logged:,} bytes ({per_session:,.0f} bytes a session)",
        f"- a 4 MB invalid-UTF-8 frame: socket ended {utf8_close}, gateway log +{utf8_logged} bytes (target < 1 KB)",
        f"- every process still running at the end: {alive}",
        "",
    ]


async def run(args: argparse.Namespace) -> None:
    pythonpath = None
    with tempfile.TemporaryDirectory(prefix="gateway-abuse-code-") as code_folder:
        if args.ref:
            pythonpath, commit = checkout(args.ref, Path(code_folder))
            source = f"commit {commit}"
        else:
            source = describe_tree()
        command = " ".join(["uv run python bench/gateway_abuse.py", *sys.argv[1:]])
        print(f"`{command}` on {source}, {os.cpu_count()} CPUs")
        print(
            f"{args.sessions} sessions ({args.concurrency} at a time) x {args.frames} bad frames "
            f"(every {args.big_every}th large: 200 KB parsed / 300 KB TOO_LARGE)\n"
        )
        for name in args.variants.split(","):
            for line in await measure(name, args, pythonpath):
                print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--big-every", type=int, default=100, help="every Nth frame is a large one (0: none)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a session may take to end")
    parser.add_argument("--ref", help="run the services as of this commit")
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

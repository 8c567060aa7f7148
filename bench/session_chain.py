"""The whole chain under session load: real gateway, agent-runtime and llm-proxy processes in front of an upstream
that answers at once, driven over the gateway's WebSocket.

    uv run python bench/session_chain.py [--ref HEAD] [--levels 1,10,100] [--duration 6] [--tokens 50]
        [--burst 1000] [--resume-tries 50] [--resume-frames 200] [--idle 500] [--parts idle,levels,burst,resume]

The upstream is `fast_upstream.py`'s raw-asyncio server (no framework, ~nothing per request) run by this script,
answering each chat completion with as many content chunks as the last `tokens=N` in the request asks for (50
unless said), all at once. agent-runtime keeps its event log in SQLite (its default) in a fresh temporary folder;
every service logs at WARNING (`--log-level`). Clients use `/ws/{session}` (the stream dialect) and name no
tools, so a turn is: user_message → ack, the deltas, final frame. Tokens that arrive faster than agent-runtime
writes its log are joined into one delta frame, so an answer sent at once arrives in a few frames; `--pace-ms`
spaces the tokens as a real model does (each then a frame of its own).
`--ref REF` runs the services as of a commit (`git archive` on PYTHONPATH), so edits in the working tree made
meanwhile do not land in the middle of a run.

Parts, in this order, each on a chain of its own (started, warmed up with 20 turns, stopped after), so a failure in
one part does not carry into the next:
- `idle`: `--idle` connections each have one turn (50 at a time) and stay open, measured once they have been idle
  past the gateway's `follow_idle_s` (1 s by default; they then hold no stream to agent-runtime): the gateway's (and
  agent-runtime's) RSS growth per idle connection (target for the gateway ≤ 50 KB).
- `levels`: for each of `--levels` N, N sessions run closed-loop turns for `--duration` s: time to first token
  (sending user_message → the first assistant_message delta) p50/p99, turns/s, errors (any error frame, BUSY, a
  turn over `--turn-timeout`, a cut or short answer), and each service's CPU time per turn from /proc/PID/stat
  (utime + stime, all threads) around the measured window (target gateway + agent-runtime ≤ 4 ms), split into the
  event loop's thread and the others (agent-runtime runs SQLite on its event loop; its WAL checkpoints in a thread).
- `burst`: `--burst` sessions at once, each connects, sends one message and reads its whole turn: errors, wall time.
- `resume`: `--resume-tries` sessions each send a message asking for `--resume-frames` tokens (paced
  `--resume-pace-ms` apart, so each is a frame of its own) and drop their WebSocket right after the ack; once
  every turn has ended each reconnects with `?last_seq=` the ack's seq, one at a time: time from connect to the
  last replayed frame, p50/p99 (target p99 ≤ 50 ms).

Each service's RSS is printed at the start, after the warm-up and at the end of every part, with its peak.
`--profile SERVICE` runs that service under cProfile and prints its top functions at the end (SQLAlchemy's greenlets
blur cProfile's attribution; the profiler also slows the service, so its figures are then not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import aiohttp
import fast_upstream
import orjson
import uvloop
from fast_upstream import MODEL, _chunked, _event
from llm_proxy_bench import (
    PROXY_KEY,
    ROOT,
    _spawn,
    _tree,
    _wait_ready,
    free_port,
    peak_rss_mb,
    rss_mb,
    running,
    start_proxy,
)

AGENT_KEY = "bench-agent-runtime-key"
GATEWAY_KEY = "bench-gateway-key"
DEFAULT_TOKENS = 50
SERVICES = ("gateway", "agent-runtime", "llm-proxy")
PACKAGES = ("libs/codelab-common", "gateway", "agent-runtime", "llm-proxy")
PARTS = ("idle", "levels", "burst", "resume")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_SETTLE_S = 3.0
"""How long the idle part waits before measuring: past the gateway's `follow_idle_s` (1 s by default)."""

# --- the upstream ---------------------------------------------------------------------------------------------------

_ASKED = re.compile(rb"tokens=(\d+)(?: pace_ms=(\d+))?")
_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
_ANSWERS: dict[int, list[bytes]] = {}


def _answer_parts(tokens: int) -> list[bytes]:
    """fast_upstream's answer with `tokens` content chunks: the head, one part per event, the end."""
    if tokens not in _ANSWERS:
        events = [_event({"role": "assistant", "content": ""})]
        events += [_event({"content": f"tok{i} "}) for i in range(tokens)]
        events += [_event({}, "stop"), b"data: [DONE]\n\n"]
        _ANSWERS[tokens] = [_HEAD, *(_chunked(e) for e in events), b"0\r\n\r\n"]
    return _ANSWERS[tokens]


def _answer_asked(body: bytes) -> fast_upstream.Answer:
    """The answer's length is the last `tokens=N` of the body (the newest user message: the history goes in order);
    with `pace_ms=M` after it, the tokens come M ms apart, as from a real model, instead of all at once."""
    asked = _ASKED.findall(body)
    tokens, pace_ms = (int(asked[-1][0]), int(asked[-1][1] or 0)) if asked else (DEFAULT_TOKENS, 0)
    parts = _answer_parts(tokens)
    if pace_ms:
        return fast_upstream.Paced([parts[0] + parts[1], *parts[2:]], pace_ms / 1000)
    return b"".join(parts)


def ask(tokens: int, pace_ms: int = 0) -> str:
    """What a user_message says to get that answer."""
    return f"tokens={tokens}" + (f" pace_ms={pace_ms}" if pace_ms else "")


async def serve_upstream(port: int) -> None:
    await fast_upstream.serve(port, _answer_asked)


# --- the chain ------------------------------------------------------------------------------------------------------


@dataclass
class Chain:
    processes: dict[str, subprocess.Popen[bytes]]
    ws_url: str
    agent_url: str
    workdir: Path

    def pid(self, name: str) -> int:
        return os.getpid() if name == "bench" else self.processes[name].pid


def checkout(ref: str, target: Path) -> tuple[str, str]:
    """The PYTHONPATH that runs the services and codelab-common as of `ref` (from `git archive`), and its commit."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", commit, *PACKAGES], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return os.pathsep.join(str(target / package) for package in PACKAGES), commit


def describe_tree() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", *PACKAGES], cwd=ROOT, capture_output=True, text=True
    ).stdout
    return f"the working tree (HEAD {head.strip()}{', with uncommitted changes to the services' if dirty else ''})"


def start_chain(workdir: Path, log_level: str, profile: str | None, pythonpath: str | None) -> Chain:
    port = free_port()
    upstream = _spawn([sys.executable, __file__, "--serve-upstream", str(port)], {}, workdir / "upstream.log")
    _wait_ready(f"http://127.0.0.1:{port}/v1/models", upstream, 10, {})
    processes = {"upstream": upstream}

    def command(module: str, name: str) -> list[str]:
        if profile == name:
            return [sys.executable, "-m", "cProfile", "-o", str(workdir / f"{name}.prof"), "-m", module]
        return [sys.executable, "-m", module]

    code = {"PYTHONPATH": pythonpath} if pythonpath else {}
    proxy = start_proxy(f"http://127.0.0.1:{port}/v1", workdir, extra_env={"LLM_PROXY__LOG_LEVEL": log_level, **code})
    processes["llm-proxy"] = proxy.process
    proxy_base = proxy.url.removesuffix("/v1/chat/completions")

    agent_port = free_port()
    agent_env = {
        "AGENT_RUNTIME__INTERNAL_API_KEY": AGENT_KEY,
        "AGENT_RUNTIME__PORT": str(agent_port),
        "AGENT_RUNTIME__LLM_PROXY_URL": proxy_base,
        "AGENT_RUNTIME__LLM_PROXY_API_KEY": PROXY_KEY,
        "AGENT_RUNTIME__MODEL": MODEL,
        "AGENT_RUNTIME__DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'agent-runtime.db'}",
        "AGENT_RUNTIME__WORKSPACE_CONTEXT": "false",
        "AGENT_RUNTIME__LOG_LEVEL": log_level,
        **code,
    }
    agent = _spawn(command("codelab_agent_runtime", "agent-runtime"), agent_env, workdir / "agent-runtime.log")
    processes["agent-runtime"] = agent
    agent_url = f"http://127.0.0.1:{agent_port}"
    _wait_ready(f"{agent_url}/health", agent, 60, {})

    gateway_port = free_port()
    gateway_env = {
        "GATEWAY__INTERNAL_API_KEY": GATEWAY_KEY,
        "GATEWAY__AGENT_RUNTIME_API_KEY": AGENT_KEY,
        "GATEWAY__AGENT_RUNTIME_URL": agent_url,
        "GATEWAY__PORT": str(gateway_port),
        "GATEWAY__LOG_LEVEL": log_level,
        # One closed-loop session with an instant upstream sends more than the default 20 frames a second: the
        # limit would drop its messages (RATE_LIMITED), which is not what this measures.
        "GATEWAY__FRAMES_PER_SECOND": "10000",
        "GATEWAY__FRAME_BURST": "10000",
        **code,
    }
    gateway = _spawn(command("codelab_gateway", "gateway"), gateway_env, workdir / "gateway.log")
    processes["gateway"] = gateway
    _wait_ready(f"http://127.0.0.1:{gateway_port}/health", gateway, 60, {})
    return Chain(processes, f"ws://127.0.0.1:{gateway_port}", agent_url, workdir)


def _ticks(stat: str) -> int:
    """utime + stime from a /proc stat file (0 when it is gone)."""
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int, children: bool = True) -> float:
    """utime + stime of the process (all its threads, ended ones too) and, unless said otherwise, its children."""
    return sum(_ticks(f"/proc/{one}/stat") for one in (_tree(pid) if children else [pid])) / CLOCK_TICKS


def loop_seconds(pid: int) -> float:
    """utime + stime of the process's main thread: the one running its event loop (and agent-runtime's SQLite
    statements; its WAL checkpoints, the OTLP exporter and the like run in threads of their own)."""
    return _ticks(f"/proc/{pid}/task/{pid}/stat") / CLOCK_TICKS


def machine_busy() -> float:
    """Busy seconds of all cores together since boot (/proc/stat: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLOCK_TICKS


def load_average() -> str:
    return Path("/proc/loadavg").read_text().strip()


@dataclass
class Usage:
    """CPU seconds of each process and of the whole machine over a window."""

    start: dict[str, float]
    machine: float
    started: float

    @staticmethod
    def _now(chain: Chain) -> dict[str, float]:
        now = {n: cpu_seconds(chain.pid(n), n != "bench") for n in [*SERVICES, "upstream", "bench"]}
        return now | {f"{n} loop": loop_seconds(chain.pid(n)) for n in SERVICES}

    @classmethod
    def begin(cls, chain: Chain) -> Usage:
        return cls(cls._now(chain), machine_busy(), time.perf_counter())

    def end(self, chain: Chain) -> dict[str, float]:
        now = self._now(chain)
        used = {n: now[n] - s for n, s in self.start.items()}
        busy = machine_busy()
        wall = time.perf_counter() - self.started
        ours = sum(v for n, v in used.items() if not n.endswith(" loop"))
        used["machine busy cores"] = (busy - self.machine) / wall if wall else 0.0
        used["other cores"] = used["machine busy cores"] - ours / wall if wall else 0.0
        return used


# --- a client -------------------------------------------------------------------------------------------------------


@dataclass
class Turn:
    ok: bool = False
    ttft: float | None = None
    seconds: float = 0.0
    frames: int = 0
    """Delta frames: the gateway and agent-runtime join tokens that arrive faster than the log is written."""
    tokens: int = 0
    problem: str = ""


@dataclass
class Tally:
    turns: list[Turn] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)
        if not turn.ok:
            self.errors[turn.problem] += 1

    def fail(self, problem: str) -> None:
        self.errors[problem] += 1

    @property
    def completed(self) -> int:
        return sum(1 for t in self.turns if t.ok)

    def ttft_ms(self, q: float) -> float:
        return percentile([t.ttft for t in self.turns if t.ok and t.ttft is not None], q) * 1000

    def frames_per_turn(self) -> float:
        done = [t.frames for t in self.turns if t.ok]
        return sum(done) / len(done) if done else float("nan")

    def turn_ms(self, q: float) -> float:
        return percentile([t.seconds for t in self.turns if t.ok], q) * 1000


def slowest(values: list[float], count: int) -> list[tuple[float, int]]:
    """The `count` largest values with their 1-based place in the run."""
    return sorted(((value, index + 1) for index, value in enumerate(values)), reverse=True)[:count]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def client_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None, connect=60)
    )


class Socket:
    """A client WebSocket read all the time by a task of its own, so the gateway's pings are answered (aiohttp
    answers them while reading) also while the session waits between turns; uvicorn closes a connection whose pong
    is 20 s late."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._frames: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        self._end: aiohttp.WSMessage | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = await self.ws.receive()
            self._frames.put_nowait(message)
            if message.type != aiohttp.WSMsgType.TEXT:
                self._end = message
                return

    async def receive(self) -> aiohttp.WSMessage:
        if self._end is not None and self._frames.empty():
            return self._end
        return await self._frames.get()

    async def send_str(self, text: str) -> None:
        await self.ws.send_str(text)

    @property
    def open(self) -> bool:
        return self._end is None and not self.ws.closed

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()


async def connect(http: aiohttp.ClientSession, chain: Chain, session_id: str, query: str = "") -> Socket:
    ws = await http.ws_connect(f"{chain.ws_url}/ws/{session_id}{query}", autoping=True, max_msg_size=0)
    return Socket(ws)


async def run_turn(ws: Socket, message_id: str, tokens: int, timeout: float, pace_ms: int = 0) -> Turn:
    """Send one user_message and read frames until the turn's final frame."""
    turn = Turn()
    message = {
        "type": "user_message",
        "content": f"Say {tokens} words. {ask(tokens, pace_ms)}",
        "message_id": message_id,
    }
    sent = time.perf_counter()
    try:
        await ws.send_str(orjson.dumps(message).decode())
        async with asyncio.timeout(timeout):
            while True:
                received = await ws.receive()
                if received.type != aiohttp.WSMsgType.TEXT:
                    turn.problem = f"socket {received.type.name.lower()}"
                    break
                frame = orjson.loads(received.data)
                kind = frame.get("type")
                if kind == "error":
                    turn.problem = turn.problem or f"error {frame.get('code')}"
                    if "seq" not in frame and frame.get("message_id") == message_id:
                        break  # the gateway refused this message (BUSY, AGENT_DOWN): no turn follows
                    continue  # logged errors end with the turn's final frame; the gateway's AGENT_DOWN while
                    # following (no seq, no message_id) is followed by the rest of the turn once it follows again
                if kind != "assistant_message" or frame.get("message_id") != message_id:
                    continue
                if not frame.get("is_final"):
                    turn.frames += 1
                    turn.tokens += frame.get("content", "").count("tok")
                    if turn.ttft is None:
                        turn.ttft = time.perf_counter() - sent
                    continue
                reason = frame.get("stop_reason", "completed")
                if reason != "completed":
                    turn.problem = turn.problem or f"stop_reason {reason}"
                elif turn.tokens < tokens:
                    turn.problem = turn.problem or "short answer"
                break
    except TimeoutError:
        turn.problem = "timeout"
    except aiohttp.ClientError as exc:
        turn.problem = f"socket {type(exc).__name__}"
    turn.seconds = time.perf_counter() - sent
    turn.ok = not turn.problem
    return turn


def describe(error: BaseException) -> str:
    return f"connect {type(error).__name__}"


# --- the parts ------------------------------------------------------------------------------------------------------


@dataclass
class Level:
    sessions: int
    tally: Tally
    wall: float
    usage: dict[str, float]

    @property
    def turns_per_s(self) -> float:
        return self.tally.completed / self.wall if self.wall else 0.0

    def cpu_ms(self, name: str) -> float:
        turns = self.tally.completed
        return self.usage[name] / turns * 1000 if turns else float("nan")


async def run_level(
    chain: Chain, tag: str, sessions: int, duration: float, tokens: int, timeout: float, pace_ms: int
) -> Level:
    tally = Tally()
    async with client_session() as http:
        sockets = await asyncio.gather(*(connect(http, chain, f"{tag}-{i}") for i in range(sessions)))
        # One turn each first (not counted): the sessions' rows exist, every code path is warm.
        warm = await asyncio.gather(
            *(run_turn(ws, f"{tag}-{i}-warm", tokens, timeout, pace_ms) for i, ws in enumerate(sockets))
        )
        tally.errors.update(f"warm-up {turn.problem}" for turn in warm if not turn.ok)
        usage = Usage.begin(chain)
        deadline = time.perf_counter() + duration

        async def closed_loop(index: int, ws: Socket) -> None:
            count = 0
            while time.perf_counter() < deadline:
                turn = await run_turn(ws, f"{tag}-{index}-{count}", tokens, timeout, pace_ms)
                tally.add(turn)
                count += 1
                if turn.problem.startswith("socket"):
                    return

        await asyncio.gather(*(closed_loop(i, ws) for i, ws in enumerate(sockets)))
        wall = time.perf_counter() - usage.started
        used = usage.end(chain)
        await asyncio.gather(*(ws.close() for ws in sockets))
    return Level(sessions, tally, wall, used)


@dataclass
class Burst:
    sessions: int
    tally: Tally
    wall: float
    usage: dict[str, float]


async def run_burst(chain: Chain, tag: str, sessions: int, timeout: float) -> Burst:
    tally = Tally()
    async with client_session() as http:

        async def one(index: int) -> None:
            try:
                async with asyncio.timeout(timeout):
                    ws = await connect(http, chain, f"{tag}-{index}")
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                tally.fail(describe(exc))
                return
            try:
                tally.add(await run_turn(ws, f"{tag}-{index}", DEFAULT_TOKENS, timeout))
            finally:
                await ws.close()

        usage = Usage.begin(chain)
        await asyncio.gather(*(one(i) for i in range(sessions)))
        wall = time.perf_counter() - usage.started
        return Burst(sessions, tally, wall, usage.end(chain))


@dataclass
class Resume:
    tries: int
    frames: list[int] = field(default_factory=list)
    """Frames replayed per try."""
    to_open: list[float] = field(default_factory=list)
    to_first: list[float] = field(default_factory=list)
    to_last: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


async def session_view(http: aiohttp.ClientSession, chain: Chain, session_id: str) -> dict[str, object]:
    url = f"{chain.agent_url}/agent/sessions/{session_id}"
    async with http.get(url, headers={"X-Internal-Auth": AGENT_KEY}) as response:
        return await response.json() if response.status == 200 else {}


async def run_resume(chain: Chain, tag: str, tries: int, tokens: int, timeout: float, pace_ms: int) -> Resume:
    result = Resume(tries)
    ids = [f"{tag}-{i}" for i in range(tries)]
    held: dict[str, int] = {}
    async with client_session() as http:

        async def drop(session_id: str) -> None:
            """Send the message, keep the ack's seq, and leave."""
            story = f"Tell a long story. {ask(tokens, pace_ms)}"
            message = {"type": "user_message", "content": story, "message_id": "m"}
            async with asyncio.timeout(timeout):
                ws = await connect(http, chain, session_id)
                try:
                    await ws.send_str(orjson.dumps(message).decode())
                    while True:
                        received = await ws.receive()
                        if received.type != aiohttp.WSMsgType.TEXT:
                            raise RuntimeError(f"socket {received.type.name.lower()} before the ack")
                        frame = orjson.loads(received.data)
                        if frame.get("type") == "ack":
                            held[session_id] = int(frame["seq"])
                            return
                        if frame.get("type") == "error":
                            raise RuntimeError(f"error {frame.get('code')} before the ack")
                finally:
                    await ws.close()

        for start in range(0, tries, 10):
            outcomes = await asyncio.gather(*(drop(s) for s in ids[start : start + 10]), return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    result.errors[f"drop: {outcome}"] += 1
        # Every dropped turn runs to its end with no client; wait for that, and note where each log ends.
        ends: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        for session_id in held:
            while True:
                view = await session_view(http, chain, session_id)
                if view.get("status") == "idle":
                    ends[session_id] = int(view["last_seq"])  # type: ignore[call-overload]
                    break
                if time.monotonic() > deadline:
                    result.errors["turn did not end"] += 1
                    break
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let the followers of the dropped sockets wind down
        for session_id, last in ends.items():
            after = held[session_id]
            started = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    ws = await connect(http, chain, session_id, f"?last_seq={after}")
                    opened = time.perf_counter()
                    first = 0.0
                    count = 0
                    try:
                        while True:
                            received = await ws.receive()
                            if received.type != aiohttp.WSMsgType.TEXT:
                                raise RuntimeError(f"socket {received.type.name.lower()} during the replay")
                            frame = orjson.loads(received.data)
                            if "seq" not in frame:
                                raise RuntimeError(f"unexpected frame {frame.get('type')} {frame.get('code')}")
                            count += 1
                            first = first or time.perf_counter()
                            if frame["seq"] != after + count:
                                raise RuntimeError(f"seq {frame['seq']} where {after + count} was due")
                            if frame["seq"] >= last:
                                break
                    finally:
                        done = time.perf_counter()
                        await ws.close()
            except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError) as exc:
                result.errors[str(exc) or type(exc).__name__] += 1
                continue
            result.frames.append(count)
            result.to_open.append(opened - started)
            result.to_first.append(first - started)
            result.to_last.append(done - started)
    return result


@dataclass
class Idle:
    connections: int
    before: dict[str, float]
    after: dict[str, float]
    closed: dict[str, float]
    tally: Tally

    def per_connection_kb(self, name: str) -> float:
        return (self.after[name] - self.before[name]) * 1024 / self.connections


def rss_all(chain: Chain) -> dict[str, float]:
    check_alive(chain)
    return {name: rss_mb(chain.pid(name)) for name in SERVICES}


def check_alive(chain: Chain) -> None:
    """Stop the run when a process of the chain has gone (a crash, or a signal from something else on the machine:
    at LOG_LEVEL WARNING a service stopped by SIGTERM or SIGINT leaves nothing in its log)."""
    gone = [f"{name} (exit status {p.returncode})" for name, p in chain.processes.items() if p.poll() is not None]
    if gone:
        raise SystemExit(f"stopped: {', '.join(gone)} exited during the run; see the logs in {chain.workdir}")


async def run_idle(chain: Chain, tag: str, connections: int, timeout: float) -> Idle:
    tally = Tally()
    await asyncio.sleep(1.0)
    before = rss_all(chain)
    async with client_session() as http:
        gate = asyncio.Semaphore(50)

        async def one(index: int) -> Socket | None:
            async with gate:
                try:
                    ws = await connect(http, chain, f"{tag}-{index}")
                except (aiohttp.ClientError, OSError) as exc:
                    tally.fail(describe(exc))
                    return None
                tally.add(await run_turn(ws, f"{tag}-{index}", DEFAULT_TOKENS, timeout))
                return ws

        sockets = [ws for ws in await asyncio.gather(*(one(i) for i in range(connections))) if ws is not None]
        await asyncio.sleep(IDLE_SETTLE_S)  # the turns' last writes done, the connections idle past follow_idle_s
        after = rss_all(chain)
        still_open = sum(ws.open for ws in sockets)
        await asyncio.gather(*(ws.close() for ws in sockets))
    await asyncio.sleep(2.0)
    if still_open < connections:
        tally.fail(f"closed before the measurement: {connections - still_open}")
    return Idle(still_open, before, after, rss_all(chain), tally)


# --- the report -----------------------------------------------------------------------------------------------------


def errors_text(errors: Counter[str]) -> str:
    if not errors:
        return "0"
    return f"{sum(errors.values())} (" + ", ".join(f"{k}: {v}" for k, v in errors.most_common()) + ")"


def level_table(levels: list[Level]) -> list[str]:
    lines = [
        "| sessions | turns | turns/s | TTFT p50 ms | TTFT p99 ms | turn p50 ms | delta frames/turn | errors "
        "| CPU ms/turn: gateway | agent-runtime | llm-proxy | gateway + agent-runtime | cores busy (others) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in levels:
        t = level.tally
        both = level.cpu_ms("gateway") + level.cpu_ms("agent-runtime")
        lines.append(
            f"| {level.sessions} | {t.completed:,} | {level.turns_per_s:,.1f} | {t.ttft_ms(0.5):.1f} | "
            f"{t.ttft_ms(0.99):.1f} | {t.turn_ms(0.5):.1f} | {t.frames_per_turn():.1f} | {errors_text(t.errors)} | "
            f"{level.cpu_ms('gateway'):.2f} | {level.cpu_ms('agent-runtime'):.2f} | {level.cpu_ms('llm-proxy'):.2f} | "
            f"**{both:.2f}** | {level.usage['machine busy cores']:.2f} ({level.usage['other cores']:.2f}) |"
        )
    return lines


def thread_table(levels: list[Level]) -> list[str]:
    head = " | ".join(f"{n}: event loop | other threads" for n in SERVICES)
    lines = [f"| sessions | {head} |", "|---" * (1 + 2 * len(SERVICES)) + "|"]
    for level in levels:
        cells = []
        for name in SERVICES:
            loop = level.cpu_ms(f"{name} loop")
            cells += [f"{loop:.2f}", f"{level.cpu_ms(name) - loop:.2f}"]
        lines.append(f"| {level.sessions} | " + " | ".join(cells) + " |")
    return lines


def print_profile(path: Path, top: int) -> None:
    import pstats

    if not path.exists():
        print(f"(no profile at {path})")
        return
    for key in ("tottime", "cumulative"):
        print(f"\n--- {path.name}: top {top} by {key} ---")
        pstats.Stats(str(path)).sort_stats(key).print_stats(top)


async def warm_up(chain: Chain, tag: str, timeout: float) -> None:
    """A few sessions, a few turns each: every code path of the chain has run once."""
    async with client_session() as http:
        sockets = [await connect(http, chain, f"{tag}-warm-{i}") for i in range(5)]
        for round_ in range(4):
            for i, ws in enumerate(sockets):
                await run_turn(ws, f"warm-{i}-{round_}", DEFAULT_TOKENS, timeout)
        await asyncio.gather(*(ws.close() for ws in sockets))


async def run(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * (args.burst + args.idle + max(args.levels, default=0)) + 1024
    if soft < wanted:  # every session holds a socket here, two in the gateway, one or two in agent-runtime
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    workdir = Path(tempfile.mkdtemp(prefix="session-chain-"))
    tag = f"b{os.getpid()}"
    if args.ref:
        pythonpath, commit = checkout(args.ref, workdir / "code")
        code = f"commit {commit} (`git archive`, on PYTHONPATH)"
    else:
        pythonpath, code = None, describe_tree()
    print(f"code: {code}; load average before: {load_average()}; logs in {workdir}", flush=True)
    sizes = {"idle": args.idle, "levels": len(args.levels), "burst": args.burst, "resume": args.resume_tries}
    levels: list[Level] = []
    burst: Burst | None = None
    resume: Resume | None = None
    idle: Idle | None = None
    memory: list[str] = []
    for part in [p for p in PARTS if p in args.parts and sizes[p]]:
        # A fresh chain per part: a failure in one part does not carry into the next, and each starts from the
        # same heap (the idle figure would otherwise reuse memory the other parts freed).
        partdir = workdir / part
        partdir.mkdir()
        chain = start_chain(partdir, args.log_level, args.profile, pythonpath)
        with running(list(chain.processes.values())):
            rss = [rss_all(chain)]
            await warm_up(chain, f"{tag}-{part}", args.turn_timeout)
            rss.append(rss_all(chain))
            if part == "idle":
                idle = await run_idle(chain, f"{tag}-idle", args.idle, args.turn_timeout)
                rss.append(idle.after)
                print(f"idle: {idle.connections} connections, errors {errors_text(idle.tally.errors)}", flush=True)
            elif part == "levels":
                for sessions in args.levels:
                    check_alive(chain)
                    try:
                        level = await run_level(
                            chain,
                            f"{tag}-n{sessions}",
                            sessions,
                            args.duration,
                            args.tokens,
                            args.turn_timeout,
                            args.pace_ms,
                        )
                    except (aiohttp.ClientError, OSError):
                        check_alive(chain)  # a connection refused because the gateway is gone says so
                        raise
                    levels.append(level)
                    print(level_table([level])[-1], flush=True)
            elif part == "burst":
                burst = await run_burst(chain, f"{tag}-burst", args.burst, args.burst_timeout)
                print(f"burst: {args.burst} sessions in {burst.wall:.1f} s, errors {errors_text(burst.tally.errors)}")
            elif part == "resume":
                resume = await run_resume(
                    chain,
                    f"{tag}-resume",
                    args.resume_tries,
                    args.resume_frames,
                    args.turn_timeout,
                    args.resume_pace_ms,
                )
            rss.append(rss_all(chain))
            for service in SERVICES:
                values = " | ".join(f"{r[service]:.0f}" for r in (rss[0], rss[1], rss[-1]))
                memory.append(f"| {part} | {service} | {values} | {peak_rss_mb(chain.pid(service)):.0f} |")
        if args.profile:
            print_profile(partdir / f"{args.profile}.prof", args.profile_top)
    bench_cpu = resource.getrusage(resource.RUSAGE_SELF)
    report = [
        "| part | service | RSS MB at start | after warm-up | at the end of the part | peak |",
        "|---|---|---|---|---|---|",
        *memory,
    ]
    print()
    if levels:
        pace = f", {args.pace_ms} ms between tokens" if args.pace_ms else ", all tokens at once"
        print(f"Closed-loop sessions, {args.duration:g} s per level, {args.tokens}-token answers{pace}:")
        print("\n".join(level_table(levels)))
        print("\nCPU ms per turn by thread (the event loop's thread runs agent-runtime's SQLite statements too):")
        print("\n".join(thread_table(levels)))
        print()
    if burst is not None:
        t, u = burst.tally, burst.usage
        both = (u["gateway"] + u["agent-runtime"]) / t.completed * 1000 if t.completed else float("nan")
        print(
            f"- burst: {burst.sessions:,} WebSocket sessions at once (connect, one message, its whole turn): "
            f"{t.completed:,} turns completed in {burst.wall:.1f} s, errors {errors_text(t.errors)}; TTFT p50 "
            f"{t.ttft_ms(0.5):.0f} ms, p99 {t.ttft_ms(0.99):.0f} ms; turn p99 {t.turn_ms(0.99):.0f} ms; gateway + "
            f"agent-runtime {both:.2f} CPU ms/turn"
        )
    if resume is not None:
        frames = f"{min(resume.frames)}–{max(resume.frames)}" if resume.frames else "–"
        p99 = percentile(resume.to_last, 0.99) * 1000
        print(
            f"- resume: {len(resume.to_last)} of {resume.tries} sessions reconnected with last_seq after "
            f"{frames} frames were written without them: connect → last replayed frame p50 "
            f"{percentile(resume.to_last, 0.5) * 1000:.1f} ms, p99 {p99:.1f} ms (slowest: "
            f"{', '.join(f'#{i} {t * 1000:.0f} ms' for t, i in slowest(resume.to_last, 3))}) (target ≤ 50 ms: "
            f"{'met' if p99 <= 50 else 'not met'}); connect → socket open p50 "
            f"{percentile(resume.to_open, 0.5) * 1000:.1f} ms, → first frame p50 "
            f"{percentile(resume.to_first, 0.5) * 1000:.1f} ms; errors {errors_text(resume.errors)}"
        )
    if idle is not None:
        gateway_kb = idle.per_connection_kb("gateway")
        print(
            f"- idle connections: {idle.connections} open after one turn each: gateway RSS "
            f"{idle.before['gateway']:.1f} → {idle.after['gateway']:.1f} MB, {gateway_kb:.1f} KB per connection "
            f"(target ≤ 50 KB: {'met' if gateway_kb <= 50 else 'not met'}); agent-runtime "
            f"{idle.per_connection_kb('agent-runtime'):.1f} KB per followed session; after closing them: gateway "
            f"{idle.closed['gateway']:.1f} MB, agent-runtime {idle.closed['agent-runtime']:.1f} MB; errors "
            f"{errors_text(idle.tally.errors)}"
        )
    print("\n".join(["", *report]))
    print(
        f"\n- this load generator used {bench_cpu.ru_utime + bench_cpu.ru_stime:.1f} CPU s; load average after: "
        f"{load_average()}"
    )
    print(f"- services run from {code}")
    print(f"- command: `{args.command}`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--levels", type=_ints, default=[1, 10, 100], help="concurrent sessions per level (1,10,100)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of closed-loop turns per level")
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help="answer length in the levels (tokens)")
    parser.add_argument("--pace-ms", type=int, default=0, help="ms between the tokens in the levels (0: all at once)")
    parser.add_argument("--burst", type=int, default=1000, help="sessions started at once (0: skip)")
    parser.add_argument("--resume-tries", type=int, default=50, help="sessions that drop and resume (0: skip)")
    parser.add_argument("--resume-frames", type=int, default=200, help="tokens of the answer written meanwhile")
    parser.add_argument(
        "--resume-pace-ms", type=int, default=20, help="ms between those tokens (paced, so each is a frame of its own)"
    )
    parser.add_argument("--idle", type=int, default=500, help="idle connections for the memory figure (0: skip)")
    parser.add_argument("--parts", type=lambda v: v.split(","), default=list(PARTS), help="idle,levels,burst,resume")
    parser.add_argument("--turn-timeout", type=float, default=60.0)
    parser.add_argument("--burst-timeout", type=float, default=180.0, help="for one burst session's connect + turn")
    parser.add_argument("--ref", help="run the services as of this git commit (default: the working tree)")
    parser.add_argument("--log-level", default="WARNING", help="every service's LOG_LEVEL")
    parser.add_argument("--profile", choices=["gateway", "agent-runtime"], help="run it under cProfile")
    parser.add_argument("--profile-top", type=int, default=30)
    args = parser.parse_args()
    if args.serve_upstream:
        uvloop.run(serve_upstream(args.serve_upstream))
        return
    args.command = shlex.join(["uv", "run", "python", "bench/session_chain.py", *sys.argv[1:]])
    uvloop.run(run(args))


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


if __name__ == "__main__":
    main()

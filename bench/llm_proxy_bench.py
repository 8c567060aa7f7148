"""llm-proxy against LiteLLM's proxy and against the bare upstream, side by side, on loopback.

Starts `fast_upstream.py` (50 content chunks per answer, no delay), our proxy (`python -m codelab_llm_proxy`, one
worker, LOG_LEVEL=WARNING) and LiteLLM's proxy (`litellm[proxy]==1.108.7` in its own Python 3.12 virtualenv,
bench/.venv-litellm, made on first use). This process is the load generator: closed-loop aiohttp clients on one
session, streaming requests, a fixed duration per concurrency level. Then 10,000 requests through our proxy while
its RSS is sampled, and the time from process start to the first 200 on /health. Prints a table and appends a dated
section to docs/benchmarks.md. Traffic goes to 127.0.0.1 only.

    uv run python bench/llm_proxy_bench.py                 # everything (LiteLLM install: a few minutes, once)
    uv run python bench/llm_proxy_bench.py --no-litellm --duration 3
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop
from fast_upstream import CONTENT_CHUNKS, MODEL

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LITELLM_VENV = BENCH / ".venv-litellm"
LITELLM_SPEC = "litellm[proxy]==1.108.7"
PROXY_KEY = "bench-internal-key"
LITELLM_MASTER_KEY = "sk-bench-master-key-0123456789abcdefghij"
LEVELS = (1, 10, 50)
BODY = b'{"model":"' + MODEL.encode() + b'","messages":[{"role":"user","content":"Say fifty words."}],"stream":true}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids += _tree(int(child))
    return pids


def rss_mb(pid: int) -> float:
    """Current resident memory of the process and its children, MB."""
    return sum(_status_kib(p, "VmRSS") for p in _tree(pid)) / 1024


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of the process and its children, MB."""
    return sum(_status_kib(p, "VmHWM") for p in _tree(pid)) / 1024


@dataclass
class Server:
    name: str
    url: str
    """The chat-completions URL."""
    headers: dict[str, str]
    process: subprocess.Popen[bytes]
    ready_s: float = 0.0
    peak_mb: float = 0.0


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float, headers: dict[str, str]) -> float:
    """Seconds from now until `url` answers 200 (polled every 5 ms)."""
    import urllib.error
    import urllib.request

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


@contextmanager
def running(processes: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def start_upstream(workdir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = _spawn([sys.executable, str(BENCH / "fast_upstream.py"), str(port)], {}, workdir / "upstream.log")
    _wait_ready(f"http://127.0.0.1:{port}/v1/models", process, 10, {})
    return f"http://127.0.0.1:{port}/v1", process


def start_proxy(
    upstream: str, workdir: Path, name: str = "llm-proxy", extra_env: dict[str, str] | None = None
) -> Server:
    """`python -m codelab_llm_proxy` in front of `upstream`; `extra_env` adds to (or overrides) its environment."""
    port = free_port()
    models = workdir / "models.yaml"
    models.write_text(
        f"models:\n  - name: {MODEL}\n    provider: openai-compatible\n    base_url: {upstream}\n"
        "    context_window: 8192\n"
    )
    env = {
        "LLM_PROXY__INTERNAL_API_KEY": PROXY_KEY,
        "LLM_PROXY__HOST": "127.0.0.1",
        "LLM_PROXY__PORT": str(port),
        "LLM_PROXY__MODELS_FILE": str(models),
        "LLM_PROXY__LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    started = time.perf_counter()
    process = _spawn([sys.executable, "-m", "codelab_llm_proxy"], env, workdir / f"{name}.log")
    _wait_ready(f"http://127.0.0.1:{port}/health", process, 30, {})
    base = f"http://127.0.0.1:{port}"
    server = Server(name, f"{base}/v1/chat/completions", {"X-Internal-Auth": PROXY_KEY}, process)
    server.ready_s = time.perf_counter() - started
    return server


def ensure_litellm() -> Path:
    """LiteLLM's CLI in its own Python 3.12 virtualenv (not a project dependency); installed on first use."""
    litellm = LITELLM_VENV / "bin" / "litellm"
    if litellm.exists():
        return litellm
    python312 = shutil.which("python3.12") or sys.executable
    print(f"installing {LITELLM_SPEC} into {LITELLM_VENV} (once; takes a few minutes) ...", flush=True)
    if shutil.which("uv"):
        subprocess.run(["uv", "venv", "--python", python312, str(LITELLM_VENV)], check=True)
        pip = ["uv", "pip", "install", "--python", str(LITELLM_VENV / "bin" / "python")]
    else:
        subprocess.run([python312, "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(LITELLM_VENV / "bin" / "pip"), "install"]
    subprocess.run([*pip, LITELLM_SPEC], check=True)
    return litellm


def start_litellm(upstream: str, workdir: Path) -> Server:
    litellm = ensure_litellm()
    port = free_port()
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream}\n"
        "      api_key: bench-upstream-key\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n"
    )
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY}
    args = [str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    started = time.perf_counter()
    process = _spawn(args, env, workdir / "litellm.log")
    base = f"http://127.0.0.1:{port}"
    _wait_ready(f"{base}/health/liveliness", process, 180, {})
    server = Server(
        "litellm", f"{base}/v1/chat/completions", {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}, process
    )
    server.ready_s = time.perf_counter() - started
    return server


@dataclass
class Result:
    target: str
    concurrency: int
    seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    short: int = 0
    """Answers with fewer than the upstream's content chunks (a proxy must never cut an answer short)."""
    chunks: int = 0
    ttfts: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def ttft_ms(self, q: float) -> float:
        if not self.ttfts:
            return float("nan")
        ordered = sorted(self.ttfts)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _one(session: aiohttp.ClientSession, url: str, headers: dict[str, str], result: Result | None) -> None:
    started = time.perf_counter()
    async with session.post(url, data=BODY, headers=headers) as response:
        if response.status != 200:
            await response.read()
            if result is not None:
                result.errors += 1
            return
        first = 0.0
        events = 0
        async for data in response.content.iter_any():
            if not first:
                first = time.perf_counter()
            events += data.count(b"data:")
    if result is not None:
        result.requests += 1
        result.ttfts.append(first - started)
        result.chunks += events - 1
        if events - 1 < CONTENT_CHUNKS:
            result.short += 1


async def closed_loop(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], concurrency: int, until: float, result: Result
) -> None:
    async def client() -> None:
        while time.perf_counter() < until:
            try:
                await _one(session, url, headers, result)
            except aiohttp.ClientError:
                result.errors += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def measure(name: str, url: str, headers: dict[str, str], concurrency: int, duration: float) -> Result:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        warm = Result(name, concurrency)
        await closed_loop(session, url, headers, concurrency, time.perf_counter() + min(1.0, duration / 3), warm)
        result = Result(name, concurrency)
        started = time.perf_counter()
        await closed_loop(session, url, headers, concurrency, started + duration, result)
        result.seconds = time.perf_counter() - started
        return result


async def soak(server: Server, total: int, concurrency: int) -> list[tuple[int, float]]:
    """`total` streamed requests through the server; its RSS at the start, the middle and the end."""
    samples = [(0, rss_mb(server.process.pid))]
    sent = done = 0
    marks = {total // 2, total}
    result = Result(server.name, concurrency)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def client() -> None:
            nonlocal sent, done
            while sent < total:
                sent += 1
                await _one(session, server.url, server.headers, result)
                done += 1
                if done in marks:
                    samples.append((done, rss_mb(server.process.pid)))

        await asyncio.gather(*(client() for _ in range(concurrency)))
    if result.errors or result.short:
        print(f"  soak: {result.errors} errors, {result.short} short answers", flush=True)
    return sorted(samples)


def _row(result: Result, peak: float | None) -> str:
    peak_text = f"{peak:.0f}" if peak is not None else "–"
    return (
        f"| {result.target} | {result.concurrency} | {result.rps:,.0f} | {result.ttft_ms(0.5):.2f} | "
        f"{result.ttft_ms(0.99):.2f} | {result.chunks / result.seconds:,.0f} | {peak_text} | "
        f"{result.errors + result.short} |"
    )


def report(
    results: list[Result], servers: list[Server], samples: list[tuple[int, float]], soak_total: int, command: str
) -> str:
    peaks = {s.name: s.peak_mb for s in servers}
    by = {(r.target, r.concurrency): r for r in results}
    lines = [
        "| target | concurrency | requests/s | TTFT p50 ms | TTFT p99 ms | chunks/s | peak RSS MB | errors |",
        "|---|---|---|---|---|---|---|---|",
        *(_row(r, peaks.get(r.target)) for r in results),
        "",
    ]
    for server in servers:
        lines.append(f"- {server.name}: ready (first 200 on its health endpoint) {server.ready_s:.2f} s after start")
    if samples:
        base = samples[0][1]
        spread = max(abs(mb - base) / base * 100 for _, mb in samples)
        points = ", ".join(f"{mb:.1f} MB after {n:,}" for n, mb in samples)
        lines.append(f"- llm-proxy RSS over {soak_total:,} streamed requests: {points} (max drift {spread:.1f} %)")
    direct, proxy, litellm = by.get(("direct", 1)), by.get(("llm-proxy", 1)), by.get(("litellm", 50))
    if direct and proxy:
        added = proxy.ttft_ms(0.5) - direct.ttft_ms(0.5)
        lines.append(f"- TTFT added over direct at concurrency 1: {added:.2f} ms p50 (target ≤ 1 ms)")
    proxy50 = by.get(("llm-proxy", 50))
    if proxy50 and litellm and litellm.rps:
        ratio = proxy50.rps / litellm.rps
        lines.append(f"- at concurrency 50: llm-proxy {ratio:.1f}× LiteLLM's requests/s (target ≥ 15×)")
    lines.append(f"- command: `{command}`")
    return "\n".join(lines)


def write_docs(text: str, machine: str) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    existing = docs.read_text(encoding="utf-8") if docs.exists() else "# Benchmarks\n"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"\n## llm-proxy vs LiteLLM, streaming ({stamp})\n\n"
        f"Machine: {machine}. Upstream: bench/fast_upstream.py, {CONTENT_CHUNKS} content chunks per answer, no delay; "
        "load generator, proxies and upstream share the machine's cores. Each level runs closed-loop clients for a "
        "fixed time after a short warm-up; TTFT is the time to the first SSE bytes.\n\n"
        f"{text}\n"
    )
    docs.write_text(existing.rstrip("\n") + "\n" + section, encoding="utf-8")


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="llm-proxy-bench-"))
    upstream, upstream_process = start_upstream(workdir)
    processes = [upstream_process]
    with running(processes):
        servers = [start_proxy(upstream, workdir)]
        processes.append(servers[0].process)
        if args.litellm:
            servers.append(start_litellm(upstream, workdir))
            processes.append(servers[1].process)
        print(f"upstream {upstream}; " + "; ".join(f"{s.name} ready in {s.ready_s:.2f} s" for s in servers), flush=True)
        targets: list[tuple[str, str, dict[str, str]]] = [("direct", f"{upstream}/chat/completions", {})] + [
            (s.name, s.url, s.headers) for s in servers
        ]
        results = []
        for concurrency in LEVELS:
            for name, url, headers in targets:
                duration = args.duration * (2 if name == "litellm" and concurrency == 1 else 1)
                result = await measure(name, url, headers, concurrency, duration)
                results.append(result)
                print(_row(result, None), flush=True)
        for server in servers:
            server.peak_mb = peak_rss_mb(server.process.pid)
        samples = await soak(servers[0], args.soak, 50) if args.soak else []
        servers[0].peak_mb = max(servers[0].peak_mb, peak_rss_mb(servers[0].process.pid))
    text = report(results, servers, samples, args.soak, args.command)
    print("\n" + text)
    if args.write_docs:
        write_docs(text, args.machine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per target and concurrency level")
    parser.add_argument("--soak", type=int, default=10_000, help="requests in the RSS run (0: skip)")
    parser.add_argument("--no-litellm", dest="litellm", action="store_false")
    parser.add_argument("--no-docs", dest="write_docs", action="store_false", help="do not touch docs/benchmarks.md")
    parser.add_argument("--machine", default=f"{os.cpu_count()} cores, {sys.platform}")
    args = parser.parse_args()
    args.command = shlex.join(["uv", "run", "python", "bench/llm_proxy_bench.py", *sys.argv[1:]])
    uvloop.run(run(args))


if __name__ == "__main__":
    main()

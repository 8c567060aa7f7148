"""Does a runaway answer make another session wait? And does a client that leaves free its llama.cpp slot?

Starts the local model (`codelab-local-model --parallel N`, default 2) and llm-proxy on free ports, then measures
through llm-proxy, with the proxy's default `max_tokens` for the model:

1. the short request alone: its time to first token (TTFT) and total time, a few times;
2. a runaway (a request for a 5,000-line listing, which runs until `max_tokens`) started first, then the same short
   request while the runaway generates: its TTFT, and the runaway's own length and duration (one `max_tokens`
   step — the longest a request may wait when every slot is busy);
3. a client that leaves, streaming (after a few tokens) or not (after 3 s): how long until llama.cpp's `/slots`
   shows the slot idle (llm-proxy reads the local model's whole answers as streams too, so both stop at once).

    uv run python bench/fair_sharing.py                    # 0.5B model, 2 slots
    uv run python bench/fair_sharing.py --parallel 1       # the same with one slot, for comparison
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

from codelab_common.testing.servers import wait_for_health

RUNAWAY = (
    "Count from 1 to 5000, one number per line. Write every number as plain text: no code, no explanation, "
    "do not stop early."
)
"""A 5,000-line listing: at temperature 0 the 0.5B model writes it out (asked for a program, it writes a loop)."""
SHORT = "What is the capital of France? Answer in one word."


@dataclass
class Timing:
    ttft: float
    total: float
    tokens: int
    finish: str | None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Chain:
    """The model server and llm-proxy as child processes."""

    def __init__(self, model: str, parallel: int, ctx_size: int, threads: int | None) -> None:
        self.model = model
        self.key = secrets.token_urlsafe(24)
        command = [sys.executable, "-m", "codelab_local_model", "--model", model, "--port", "0"]
        command += ["--parallel", str(parallel), "--ctx-size", str(ctx_size)]
        if threads:
            command += ["--threads", str(threads)]
        self.server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.server.stdout is not None
        ready = self.server.stdout.readline().split()
        if not ready or ready[0] != "ready":
            self.close()
            raise SystemExit("the model server did not start")
        self.model_url = ready[1]
        port = free_port()
        env = {
            **os.environ,
            "LLM_PROXY__INTERNAL_API_KEY": self.key,
            "LLM_PROXY__HOST": "127.0.0.1",
            "LLM_PROXY__PORT": str(port),
            "LLM_PROXY__LOCAL_MODEL": model,
            "LLM_PROXY__LOCAL_MODEL_URL": f"{self.model_url}/v1",
            "LLM_PROXY__LOCAL_MODEL_CONTEXT_WINDOW": str(ctx_size),
            "LLM_PROXY__LOG_LEVEL": "WARNING",
        }
        self.proxy = subprocess.Popen(
            [sys.executable, "-m", "codelab_llm_proxy"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.proxy_url = f"http://127.0.0.1:{port}"

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        try:
            await wait_for_health(self.proxy_url, timeout=60)
        except TimeoutError:
            raise SystemExit("llm-proxy did not start") from None

    def close(self) -> None:
        for process in (getattr(self, "proxy", None), self.server):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


async def ask(
    http: aiohttp.ClientSession, chain: Chain, prompt: str, *, leave_after: int | None = None, **extra: object
) -> Timing:
    """Stream one request through llm-proxy; TTFT is the first content token. `leave_after`: close after that
    many content chunks (a client that goes away)."""
    body = {"model": chain.model, "messages": [{"role": "user", "content": prompt}], "stream": True, **extra}
    headers = {"X-Internal-Auth": chain.key}
    started = time.perf_counter()
    ttft, tokens, finish = 0.0, 0, None
    async with http.post(f"{chain.proxy_url}/v1/chat/completions", data=orjson.dumps(body), headers=headers) as r:
        assert r.status == 200, await r.text()
        async for line in r.content:
            if not line.startswith(b"data: {"):
                continue
            for choice in orjson.loads(line[6:]).get("choices") or ():
                if choice["delta"].get("content"):
                    tokens += 1
                    ttft = ttft or time.perf_counter() - started
                finish = choice.get("finish_reason") or finish
            if leave_after is not None and tokens >= leave_after:
                r.close()
                break
    return Timing(ttft, time.perf_counter() - started, tokens, finish)


async def leave_whole(chain: Chain, after_s: float) -> float:
    """A non-streamed runaway whose client gives up after `after_s`; returns when it left (perf_counter)."""
    body = {"model": chain.model, "messages": [{"role": "user", "content": RUNAWAY}], "temperature": 0}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=after_s)) as impatient:
        try:
            url = f"{chain.proxy_url}/v1/chat/completions"
            await impatient.post(url, data=orjson.dumps(body), headers={"X-Internal-Auth": chain.key})
        except TimeoutError:
            pass
    return time.perf_counter()


async def busy_slots(http: aiohttp.ClientSession, chain: Chain) -> int:
    async with http.get(f"{chain.model_url}/slots") as response:
        return sum(1 for slot in await response.json() if slot.get("is_processing"))


async def until_slots(http: aiohttp.ClientSession, chain: Chain, *, busy: bool) -> None:
    """Poll llama.cpp's `/slots` every 10 ms until some slot is processing (`busy`) or none is."""
    while True:
        if bool(await busy_slots(http, chain)) == busy:
            return
        await asyncio.sleep(0.01)


async def run(args: argparse.Namespace) -> None:
    chain = Chain(args.model, args.parallel, args.ctx_size, args.threads)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
            await chain.wait_ready(http)
            limit = args.runaway_max_tokens or "llm-proxy's default"
            print(f"model {args.model}, {args.parallel} slot(s) of {args.ctx_size} tokens; runaway max_tokens: {limit}")
            await ask(http, chain, SHORT)  # warm-up: template, first allocations
            alone = [await ask(http, chain, SHORT) for _ in range(args.rounds)]
            report("short request alone", alone)

            cap = {"max_tokens": args.runaway_max_tokens} if args.runaway_max_tokens else {}
            during: list[Timing] = []
            runaways: list[Timing] = []
            for _ in range(args.rounds):
                runaway = asyncio.create_task(ask(http, chain, RUNAWAY, temperature=0, **cap))
                await until_slots(http, chain, busy=True)
                await asyncio.sleep(args.lead_s)  # the runaway is generating now
                if runaway.done():
                    print("  (the runaway ended early: round not counted)")
                    continue
                during.append(await ask(http, chain, SHORT))
                runaways.append(await runaway)
            report("short request sent while a runaway generates", during)
            for timing in runaways:
                print(
                    f"  runaway: {timing.tokens} tokens, finish_reason {timing.finish}, {timing.total:.1f} s "
                    f"(TTFT {timing.ttft:.2f} s)"
                )

            left = await ask(http, chain, RUNAWAY, leave_after=5, temperature=0)
            gone = time.perf_counter()
            await until_slots(http, chain, busy=False)
            idle_ms = 1000 * (time.perf_counter() - gone)
            print(f"streaming client left after {left.tokens} tokens: slot idle {idle_ms:.0f} ms later")
            gone = await leave_whole(chain, after_s=3.0)
            await until_slots(http, chain, busy=False)
            idle_ms = 1000 * (time.perf_counter() - gone)
            print(f"non-streaming client left after 3 s: slot idle {idle_ms:.0f} ms later")
            print(f"model server RSS: {rss_mb(chain.server.pid):.0f} MB")
    finally:
        chain.close()


def report(what: str, timings: list[Timing]) -> None:
    if not timings:
        print(f"{what}: no request")
        return
    ttfts = [t.ttft for t in timings]
    totals = [t.total for t in timings]
    print(
        f"{what}: TTFT median {statistics.median(ttfts):.2f} s (max {max(ttfts):.2f} s), "
        f"total median {statistics.median(totals):.2f} s, over {len(timings)} request(s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--ctx-size", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=None, help="model server threads (default: its own)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runaway-max-tokens", type=int, default=None, help="default: llm-proxy's for the model")
    parser.add_argument("--lead-s", type=float, default=2.0, help="how long the runaway generates before the short one")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

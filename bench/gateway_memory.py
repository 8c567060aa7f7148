"""Gateway memory with many sessions that come and go: RSS before and after, per setting, side by side.

    uv run python bench/gateway_memory.py [--sessions 500] [--frames 1000] [--frame-bytes 1000]

Starts real gateway processes (one per variant, no agent-runtime needed): each session connects, sends `--frames`
invalid frames (each answered with an error frame), and disconnects. Prints each gateway's RSS growth and the
sessions it still remembers (their last delivered seq). The gateway keeps no frames for a client that left (the
session's frames are agent-runtime's event log), so what stays is bounded by `GATEWAY__MAX_SESSIONS` small entries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from codelab_common.testing import free_port, wait_for_health

VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "max_sessions 100": {"GATEWAY__MAX_SESSIONS": "100"},
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def load(url: str, sessions: int, frames: int, frame_bytes: int) -> None:
    bad = '{"type": "' + "x" * frame_bytes + '"}'  # an unknown type: its error frame names it
    async with aiohttp.ClientSession() as http:
        for index in range(sessions):
            async with http.ws_connect(f"{url}/ws/mem-{index}?tools=read_file") as ws:
                for _ in range(frames):
                    await ws.send_str(bad)
                for _ in range(frames):
                    await ws.receive()


async def measure(name: str, extra: dict[str, str], args: argparse.Namespace) -> str:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY__INTERNAL_API_KEY": "bench",
        "GATEWAY__AGENT_RUNTIME_API_KEY": "bench",
        "GATEWAY__PORT": str(port),
        "GATEWAY__AGENT_RUNTIME_URL": f"http://127.0.0.1:{free_port()}",  # none: the frames are all refused
        "GATEWAY__LOG_LEVEL": "ERROR",
        **extra,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "codelab_gateway", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_for_health(url)
        before = rss_mb(process.pid)
        started = time.monotonic()
        await load(url.replace("http", "ws"), args.sessions, args.frames, args.frame_bytes)
        seconds = time.monotonic() - started
        after = rss_mb(process.pid)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/internal/sessions", headers={"X-Internal-Auth": "bench"}) as response,
        ):
            held = len((await response.json())["sessions"])
        return f"| {name} | {before:.0f} | {after:.0f} | {after - before:+.0f} | {held} | {seconds:.1f} |"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--frame-bytes", type=int, default=1000)
    args = parser.parse_args()
    print(f"{args.sessions} sessions x {args.frames} invalid frames of {args.frame_bytes} bytes, then disconnected")
    print("| variant | RSS before MB | RSS after MB | growth MB | sessions held | seconds |")
    print("|---|---|---|---|---|---|")
    for name, extra in VARIANTS.items():
        print(await measure(name, extra, args), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

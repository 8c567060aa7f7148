"""Figures for docs/security.md ("llm-proxy: upstream errors and shared fate"): what the body depth check and the
error summary cost. Not a test; run `.venv/bin/python llm-proxy/tests/hardening_figures.py`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson

from codelab_llm_proxy.core.errors import InvalidRequest
from codelab_llm_proxy.core.json_body import MAX_JSON_DEPTH, nested_within, parse_json_object
from codelab_llm_proxy.core.redaction import Redactor

SIXTEEN_MIB = 16 * 1024 * 1024


def best_ms(work: Callable[[], Any], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        with contextlib.suppress(InvalidRequest, orjson.JSONDecodeError):
            work()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def conversation(turns: int = 400) -> bytes:
    """An agent's long conversation: a system prompt, then per turn a request, a write_file call and its result."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a coding agent. " * 50}]
    for turn in range(turns):
        arguments = orjson.dumps({"path": f"src/m{turn}.py", "content": "print(1)\n" * 100}).decode()
        call = {"id": f"c{turn}", "type": "function", "function": {"name": "write_file", "arguments": arguments}}
        messages += [
            {"role": "user", "content": "please edit the file " + "x" * 1000},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{turn}", "content": "ok " * 200},
        ]
    schema = {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "array"}}}}}
    tools = [{"type": "function", "function": {"name": f"t{i}", "parameters": schema}} for i in range(30)]
    return orjson.dumps({"model": "m", "messages": messages, "tools": tools})


def many_containers() -> bytes:
    """The walk's worst case under the body limit: 16 MiB of empty arrays and objects, 4 bytes a container."""
    unit = b"[[],{}],"
    return b'{"metadata": [' + unit * (SIXTEEN_MIB // len(unit) - 4) + b"[]]}"


def chains_at_the_limit() -> bytes:
    """16 MiB of arrays nested exactly `MAX_JSON_DEPTH - 2` deep: accepted, every level walked."""
    depth = MAX_JSON_DEPTH - 2
    unit = b"[" * depth + b"]" * depth + b","
    return b'{"metadata": [' + unit * (SIXTEEN_MIB // len(unit) - 1) + b"[]]}"


def nested(depth: int) -> bytes:
    return b'{"metadata": ' + b"[" * depth + b"]" * depth + b"}"


def main() -> None:
    print("| body | size | orjson.loads | parse_json_object (loads + depth walk) | outcome |")
    print("|---|---|---|---|---|")
    for name, raw in [
        ("a 400-turn agent conversation, 30 tools", conversation()),
        ("nested 300 deep", nested(300)),
        ("nested 100,000 deep", nested(100_000)),
        ("16 MiB of empty containers (worst case)", many_containers()),
        (f"16 MiB of chains nested {MAX_JSON_DEPTH - 2} deep", chains_at_the_limit()),
    ]:
        loads = best_ms(lambda raw=raw: orjson.loads(raw), runs=3)
        checked = best_ms(lambda raw=raw: parse_json_object(raw), runs=3)
        try:
            parse_json_object(raw)
            outcome = "accepted"
        except InvalidRequest as exc:
            outcome = f"400: {exc.message}"
        print(f"| {name} | {len(raw) / 1e6:.2f} MB | {loads:.2f} ms | {checked:.2f} ms | {outcome} |")

    body = orjson.loads(conversation())
    walk = best_ms(lambda: nested_within(body, MAX_JSON_DEPTH))
    print(f"\nthe depth walk alone on the conversation: {walk:.2f} ms")

    chunk = b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
    chunk += b'"delta":{"content":"hello"},"finish_reason":null}]}'
    parsed = orjson.loads(chunk)
    runs = 100_000
    started = time.perf_counter()
    for _ in range(runs):
        orjson.loads(chunk)
    parse_us = (time.perf_counter() - started) / runs * 1e6
    started = time.perf_counter()
    for _ in range(runs):
        nested_within(parsed, MAX_JSON_DEPTH)
    walk_us = (time.perf_counter() - started) / runs * 1e6
    print(f"one stream chunk: parse {parse_us:.1f} µs, depth walk {walk_us:.1f} µs (not done per chunk)")

    keys = [f"sk-configured-key-{i:02d}-0123456789abcdef" for i in range(20)]
    redactor = Redactor(lambda: keys, hosts=[f"vllm-{i}.internal" for i in range(20)])
    message = ("upstream said Bearer sk-live-abc123 at http://vllm-3.internal:8000/v1 " * 60)[:4096]
    started = time.perf_counter()
    for _ in range(2000):
        redactor.summary(message)
    per_error = (time.perf_counter() - started) / 2000 * 1e6
    print(f"one error summary (4 KiB message, 20 keys, 20 hosts): {per_error:.0f} µs")


if __name__ == "__main__":
    main()

"""What the services write to their logs under hostile and normal traffic, as real processes: no secret, and no
client payload beyond a bounded prefix.

llm-proxy, agent-runtime and gateway run as `python -m <package>` at DEBUG (so every level is audited), their
stderr in a file each. llm-proxy's one model is a FakeOpenAI served by this test that wants an API key from
`ACME_API_KEY` (llm-proxy's environment only) and whose error answers echo the request's `Authorization` header,
the bare key and its own URL. The gateway authenticates clients with static tokens.

The traffic: HTTP requests with wrong (and other services') internal keys on every service; WebSocket clients with
valid tokens in each of the three places (header, subprotocol, `?token=`) and wrong ones (`Bearer` and `bearer`);
a normal turn, a turn calling a tool whose result carries a 10,000-character marker, a turn whose upstream answers
an error echoing its key; frames with the marker (unknown type, bad fields, oversized ids, invalid JSON, a
tool_result for no call), the marker in the URL and a header; a 4 MB text frame of invalid UTF-8 and a 200 KB one
(raw frames).

Then every log: no secret value (nor half of one), no credential header's value, at most `MARKER_LIMIT`
characters of the marker on any line (what logs.py leaves of a standard-library record's argument); and the 4 MB
frame grows the gateway's log (its lines at INFO and above, what a deployment writes) by less than 1 KB.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from codelab_common.logs import MAX_ARGUMENT_CHARS
from codelab_common.testing import FakeOpenAI, ScriptedReply, free_port, serve_app
from tests.e2e.processes import Service, service_env

pytestmark = pytest.mark.timeout(120)

MODEL = "audit-model"

UPSTREAM_KEY = secrets.token_hex(16)
"""What `ACME_API_KEY` holds: plain hex, nothing shaped like a credential, so only knowing the value blanks it."""
KEYS = {name: secrets.token_hex(12) for name in ("llm-proxy", "agent-runtime", "gateway")}
TOKENS = {"alice": secrets.token_urlsafe(18), "bob": secrets.token_urlsafe(18), "carol": secrets.token_urlsafe(18)}
WRONG = {f"wrong-{n}": secrets.token_urlsafe(18) for n in range(8)}
"""Credentials no service accepts: a client's mistyped token, or a key of another deployment, is still a secret."""

MARKER = "MARK3R" + ("qzjxQZJX" * 1250)[:9994]
"""A client payload of 10,000 characters: a head to find it by and a body no log line has by chance."""
MARKER_RUN = re.compile(r"[qzjxQZJX]{16,}")
MARKER_LIMIT = MAX_ARGUMENT_CHARS
"""The most of a client's payload a line may hold, at any level."""
MAX_LOG_GROWTH = 1024
"""What the 4 MB frame may add to the gateway's log (it is closed with 1009 before a byte of it is read)."""
MAX_LOG_GROWTH_UTF8 = 2048
"""What a 200 KB invalid-UTF-8 frame may add: uvicorn's ERROR line with its traceback (about 600 bytes, longer with
a longer install path) and the disconnect line; never the frame."""

ERROR_TURN = "please fail now"
TOOL_TURN = "please read a.txt"


# --- processes -----------------------------------------------------------------------------------------------------


@dataclass
class System:
    upstream: FakeOpenAI
    proxy: Service
    agent: Service
    gateway: Service

    @property
    def services(self) -> list[Service]:
        return [self.proxy, self.agent, self.gateway]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway.port}"


def _echoing_upstream() -> FakeOpenAI:
    """Wants `Bearer UPSTREAM_KEY`; its errors repeat the Authorization header, the bare key and its own URL."""
    upstream = FakeOpenAI(model=MODEL)

    def respond(body: dict[str, Any]) -> ScriptedReply:
        meta = upstream.request_meta[-1]
        authorization = meta["headers"].get("authorization", "")
        presented = authorization.removeprefix("Bearer ")
        echo = (
            f"request to {upstream.base_url.removesuffix('/v1')}{meta['path']} refused; you sent "
            f"Authorization: {authorization} (api_key {presented}); check {presented} again"
        )
        if presented != UPSTREAM_KEY:
            return ScriptedReply(status=401, error_message=echo)
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return ScriptedReply(text="The file says what it says.")
        content = str(last.get("content") or "")
        if ERROR_TURN in content:
            return ScriptedReply(status=500, error_message=echo)
        if TOOL_TURN in content:
            arguments = orjson.dumps({"path": "a.txt"}).decode()
            return ScriptedReply(tool_calls=[{"id": "call_audit", "name": "read_file", "arguments": arguments}])
        return ScriptedReply(text="Hello there.")

    upstream.responder = respond
    return upstream


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    upstream = _echoing_upstream()
    async with serve_app(upstream.app) as url:
        upstream.base_url = f"{url}/v1"
        models = [
            {
                "name": MODEL,
                "provider": "openai-compatible",
                "upstream_model": MODEL,
                "base_url": upstream.base_url,
                "api_key_env": "ACME_API_KEY",
                "context_window": 8192,
                "retry": {"max_attempts": 1},
            }
        ]
        models_file = tmp_path / "models.yaml"
        models_file.write_text(yaml.safe_dump({"models": models}))
        logs = {"LOG_LEVEL": "DEBUG", "LOG_JSON": "true"}
        proxy_port, agent_port, gateway_port = free_port(), free_port(), free_port()
        proxy = Service(
            "llm-proxy",
            "codelab_llm_proxy",
            proxy_port,
            {
                **service_env("LLM_PROXY__", logs, internal_api_key=KEYS["llm-proxy"], port=proxy_port),
                "LLM_PROXY__MODELS_FILE": str(models_file),
                "ACME_API_KEY": UPSTREAM_KEY,
            },
            tmp_path,
        )
        agent = Service(
            "agent-runtime",
            "codelab_agent_runtime",
            agent_port,
            service_env(
                "AGENT_RUNTIME__",
                logs,
                internal_api_key=KEYS["agent-runtime"],
                port=agent_port,
                llm_proxy_url=proxy.url,
                llm_proxy_api_key=KEYS["llm-proxy"],
                model=MODEL,
                database_url=f"sqlite+aiosqlite:///{tmp_path / 'agent-runtime.db'}",
                workspace_context="false",
            ),
            tmp_path,
        )
        gateway = Service(
            "gateway",
            "codelab_gateway",
            gateway_port,
            service_env(
                "GATEWAY__",
                logs,
                internal_api_key=KEYS["gateway"],
                port=gateway_port,
                agent_runtime_url=agent.url,
                agent_runtime_api_key=KEYS["agent-runtime"],
                client_auth="token",
                client_tokens=",".join(f"{name}:{token}" for name, token in TOKENS.items()),
            ),
            tmp_path,
        )
        running = System(upstream, proxy, agent, gateway)
        try:
            await asyncio.gather(*(service.start() for service in running.services))
            yield running
        finally:
            await asyncio.gather(*(service.stop() for service in running.services))


# --- traffic -------------------------------------------------------------------------------------------------------


async def wrong_internal_keys(http: aiohttp.ClientSession, system: System) -> None:
    """Every protected endpoint with a wrong key, another service's real key, a bearer and a query-string key."""
    targets = [
        ("GET", f"{system.gateway.url}/internal/sessions", [KEYS["agent-runtime"], KEYS["llm-proxy"]]),
        ("GET", f"{system.agent.url}/agent/sessions/audit-x", [KEYS["gateway"], KEYS["llm-proxy"]]),
        ("POST", f"{system.proxy.url}/v1/chat/completions", [KEYS["agent-runtime"], UPSTREAM_KEY]),
        ("GET", f"{system.proxy.url}/v1/models", [KEYS["gateway"]]),
    ]
    for method, url, others in targets:
        for key in [WRONG["wrong-0"], *others]:
            headers = {"X-Internal-Auth": key, "Authorization": f"Bearer {key}"}
            async with http.request(method, f"{url}?api_key={key}", headers=headers, data=b"{}") as response:
                assert response.status == 401, (url, response.status)


async def refused_handshakes(http: aiohttp.ClientSession, system: System) -> None:
    attempts: list[tuple[str, dict[str, str], tuple[str, ...]]] = [
        ("", {"Authorization": f"Bearer {WRONG['wrong-1']}"}, ()),
        ("", {"Authorization": f"bearer {WRONG['wrong-2']}"}, ()),
        ("", {}, ("codelab", f"bearer.{WRONG['wrong-3']}")),
        (f"?token={WRONG['wrong-4']}", {}, ()),
        (f"?tools=read_file&token={WRONG['wrong-5']}&last_seq=0", {"X-Marker": MARKER[:8000]}, ()),
        ("", {"X-Internal-Auth": WRONG["wrong-6"], "Authorization": f"Basic {WRONG['wrong-7']}"}, ()),
    ]  # (a header line over 8 KiB is never answered: the WebSocket parser's 431 is not sent)
    for query, headers, protocols in attempts:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{system.ws_url}/ws/audit-refused{query}", headers=headers, protocols=protocols)
        assert refused.value.status == 401


async def read_until(ws: aiohttp.ClientWebSocketResponse, message_id: str, seen: list[str]) -> dict[str, Any]:
    """Frames up to the turn's final frame (returned), or a tool_call (returned); every frame's text kept."""
    async with asyncio.timeout(20):
        while True:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data)
            seen.append(message.data)
            frame: dict[str, Any] = orjson.loads(message.data)
            if frame.get("type") == "tool_call":
                return frame
            if (
                frame.get("type") == "assistant_message"
                and frame.get("is_final")
                and frame.get("message_id") == message_id
            ):
                return frame


async def turns(http: aiohttp.ClientSession, system: System, seen: list[str]) -> None:
    """A normal turn (token in the header), a tool turn with the marker as the result (in the subprotocol), an
    upstream error echoing the key (in the query)."""
    session = f"audit-{uuid.uuid4().hex[:12]}"
    async with http.ws_connect(
        f"{system.ws_url}/ws/{session}-a", headers={"Authorization": f"Bearer {TOKENS['alice']}"}
    ) as ws:
        await ws.send_str(orjson.dumps({"type": "user_message", "content": "hi", "message_id": "m1"}).decode())
        final = await read_until(ws, "m1", seen)
        assert final.get("stop_reason", "completed") == "completed", final
        await marker_frames(ws, seen)

    async with http.ws_connect(
        f"{system.ws_url}/ws/{session}-b?tools=read_file", protocols=("codelab", f"bearer.{TOKENS['bob']}")
    ) as ws:
        await ws.send_str(orjson.dumps({"type": "user_message", "content": TOOL_TURN, "message_id": "m2"}).decode())
        call = await read_until(ws, "m2", seen)
        assert call["type"] == "tool_call", call
        result = {"type": "tool_result", "call_id": call["call_id"], "tool_name": "read_file"}
        await ws.send_str(orjson.dumps({**result, "result": {"content": MARKER}}).decode())
        final = await read_until(ws, "m2", seen)
        assert final.get("stop_reason", "completed") == "completed", final
        tool_messages = [m for m in system.upstream.requests[-1]["messages"] if m.get("role") == "tool"]
        assert MARKER in str(tool_messages), "the tool's result reached the model"

    async with http.ws_connect(f"{system.ws_url}/ws/{session}-c?token={TOKENS['carol']}&last_seq=0") as ws:
        await ws.send_str(orjson.dumps({"type": "user_message", "content": ERROR_TURN, "message_id": "m3"}).decode())
        final = await read_until(ws, "m3", seen)
        assert final.get("stop_reason") not in (None, "completed"), final
    assert any(orjson.loads(text).get("type") == "error" for text in seen), "the upstream's error reached the client"
    statuses = [meta["headers"].get("authorization") for meta in system.upstream.request_meta]
    assert statuses and all(auth == f"Bearer {UPSTREAM_KEY}" for auth in statuses)


async def marker_frames(ws: aiohttp.ClientWebSocketResponse, seen: list[str]) -> None:
    """Bad frames carrying the marker, each answered with an error frame; a user message whose content it is."""
    frames = [
        {"type": MARKER},
        {"type": "user_message", "content": MARKER, "message_id": MARKER},
        {"type": "user_message", "content": "x", "model": MARKER},
        {"type": "tool_result", "call_id": MARKER, "result": MARKER},
        {"type": "tool_result", "call_id": "no-such-call", "result": {"content": MARKER}, "error": MARKER},
        {"type": "approval", "call_id": "no-such-call", "decision": MARKER},
        {"type": ["list", MARKER]},
        {MARKER: MARKER},
    ]
    texts = [orjson.dumps(frame).decode() for frame in frames]
    texts += [MARKER, "{" + MARKER, '{"type": "user_message", "content": "' + MARKER]
    for text in texts:
        await ws.send_str(text)
        async with asyncio.timeout(10):
            answer = await ws.receive()
        assert answer.type == aiohttp.WSMsgType.TEXT, answer
        seen.append(answer.data)
        assert orjson.loads(answer.data)["type"] == "error", answer.data
    await ws.send_str(orjson.dumps({"type": "user_message", "content": MARKER, "message_id": "m-marker"}).decode())
    await read_until(ws, "m-marker", seen)


async def marker_in_the_url(http: aiohttp.ClientSession, system: System) -> None:
    """7,000 characters of the marker as the session id (refused after the handshake) and as a query parameter's
    value (a request line over 8 KiB is never answered, like a header line)."""
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    for path in (f"/ws/{MARKER[:7000]}", f"/ws/audit-url?tools={MARKER[:7000]}"):
        async with http.ws_connect(f"{system.ws_url}{path}", headers=headers) as ws:
            answer = await ws.receive(timeout=10)
            assert answer.type == aiohttp.WSMsgType.TEXT and orjson.loads(answer.data)["type"] == "error", answer


async def invalid_utf8_frame(http: aiohttp.ClientSession, system: System, size: int) -> tuple[int, int, int]:
    """One raw text frame of `size` bytes that are not UTF-8; the close code, and how much the gateway's log grew:
    its lines at INFO and above (what a deployment writes), and all of them (DEBUG)."""
    url = f"{system.ws_url}/ws/audit-utf8-{size}"
    async with http.ws_connect(url, headers={"Authorization": f"Bearer {TOKENS['alice']}"}) as ws:
        await asyncio.sleep(0.3)  # the connect's own lines are written
        before = system.gateway.log.stat().st_size
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):  # closed before the frame is all sent
            await ws.send_frame(b"\xff\xfe" + b"\xc3(" * ((size - 2) // 2), aiohttp.WSMsgType.TEXT)
        async with asyncio.timeout(10):
            while (await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                pass
        code = ws.close_code or 0
    await asyncio.sleep(0.5)
    with system.gateway.log.open("rb") as log:
        log.seek(before)
        added = log.read()
    assert b"\xc3(" not in added and b"\\u00c3(" not in added
    return code, sum(len(line) + 1 for line in added.splitlines() if not _is_debug(line)), len(added)


def _is_debug(line: bytes) -> bool:
    try:
        return bool(orjson.loads(line).get("level") == "debug")
    except orjson.JSONDecodeError:
        return False


# --- the audit -----------------------------------------------------------------------------------------------------


def secret_values() -> dict[str, str]:
    found = {"ACME_API_KEY": UPSTREAM_KEY}
    found |= {f"{name} key": key for name, key in KEYS.items()}
    found |= {f"{name}'s token": token for name, token in TOKENS.items()}
    return found | WRONG


_AUTHORIZATION_VALUE = re.compile(
    r"(?i)(?:authorization|x-internal-auth|x-api-key)[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic)\s+)?+(?!\[redacted\])"
    r"[^\s\"',;}\\]+"
)
"""A credential header's value that is not blanked."""


def audit(log: Path) -> list[str]:
    """Every problem with one log file, as lines for an assertion message."""
    text = log.read_text(errors="replace")
    problems = []
    for name, value in secret_values().items():
        for part in (value, value[: len(value) // 2], value[len(value) // 2 :]):
            if part in text:
                problems.append(f"{name} ({'whole' if part == value else 'half'}) at {text.index(part)}")
                break
    problems += [f"a credential header's value: {match.group()!r}" for match in _AUTHORIZATION_VALUE.finditer(text)]
    for number, line in enumerate(text.splitlines(), 1):
        longest = max((len(run) for run in MARKER_RUN.findall(line)), default=0)
        if longest > MARKER_LIMIT:
            problems.append(f"line {number} has {longest} characters of the marker: {line[:300]}")
    return problems


async def test_logs_hold_no_secret_and_no_payload_under_abuse(system: System) -> None:
    started = time.monotonic()
    seen: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        await wrong_internal_keys(http, system)
        await refused_handshakes(http, system)
        await turns(http, system, seen)
        await marker_in_the_url(http, system)
        big_code, big_growth, big_debug = await invalid_utf8_frame(http, system, 4 << 20)
        small_code, small_growth, small_debug = await invalid_utf8_frame(http, system, 200 << 10)
    await asyncio.gather(*(service.stop() for service in system.services))

    for frame, code, growth, debug in (
        ("4 MB", big_code, big_growth, big_debug),
        ("200 KB", small_code, small_growth, small_debug),
    ):
        print(f"{frame} of invalid UTF-8: close {code}, gateway log +{growth} bytes at INFO, +{debug} at DEBUG")
    assert big_code in (1009, 1006), big_code  # 1006: reset while the frame was still being sent
    assert small_code == 1007, small_code
    assert big_growth < MAX_LOG_GROWTH and small_growth < MAX_LOG_GROWTH_UTF8

    client_view = "\n".join(seen)
    assert not [name for name, value in secret_values().items() if value in client_view], "a secret reached a client"
    assert system.upstream.base_url.removesuffix("/v1") not in client_view, "the upstream's address reached a client"

    problems: dict[str, list[str]] = {}
    for service in system.services:
        print(f"{service.name}: {service.log.stat().st_size} bytes of log")
        if found := audit(service.log):
            problems[service.name] = found
    assert not problems, "\n".join(f"{name}: {problem}" for name, found in problems.items() for problem in found)
    print(f"took {time.monotonic() - started:.1f} s")

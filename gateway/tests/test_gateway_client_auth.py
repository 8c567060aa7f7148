"""Who may connect: tokens in each of the three places, JWTs (HS256 and RS256 from a JWKS URL), sessions owned by
the principal that created them, and the handshake limits (Origin, size, connections per principal)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jwt
import orjson
import pytest
import websockets
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from codelab_gateway.core.config import Settings
from tests.fixtures.gateway import RunningGateway, WsClient

ALICE, BOB = "alice-token-0123456789", "bob-token-9876543210"
TOKENS = {"client_auth": "token", "client_tokens": f"alice:{ALICE},bob:{BOB}"}
SECRET = "a-shared-secret-of-at-least-32-bytes!"

MakeGateway = Callable[..., Awaitable[RunningGateway]]


async def refused(url: str, **options: Any) -> tuple[int, dict[str, Any]]:
    """The HTTP status and error envelope of a handshake the gateway turns down."""
    with pytest.raises(websockets.InvalidStatus) as caught:
        async with websockets.connect(url, **options):
            pass
    response = caught.value.response
    return response.status_code, orjson.loads(response.body or b"{}")["error"]


async def a_turn(client: WsClient, gateway: RunningGateway, text: str) -> str:
    gateway.upstream.reply_text(text)
    await client.say("hello")
    frames = await client.turn()
    return "".join(f.get("content") or "" for f in frames if f["type"] == "assistant_message")


def test_none_mode_is_refused_on_a_non_loopback_address() -> None:
    keys = {"internal_api_key": "k", "agent_runtime_api_key": "k"}
    with pytest.raises(ValidationError, match="allowed only on a loopback"):
        Settings(**keys, host="0.0.0.0")
    Settings(**keys, host="0.0.0.0", client_auth="token", client_tokens="t-0123456789")
    for host in ("127.0.0.1", "::1", "localhost"):
        Settings(**keys, host=host)


async def test_a_token_is_taken_from_the_header_the_subprotocol_or_the_query(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(**TOKENS)
    url = gateway.ws_path("tok-1")
    status, error = await refused(url)
    assert (status, error["code"]) == (401, "UNAUTHORIZED") and "Authorization: Bearer" in error["message"]
    status, error = await refused(url, additional_headers={"Authorization": "Bearer not-a-token"})
    assert (status, error["code"]) == (401, "UNAUTHORIZED") and "not-a-token" not in error["message"]

    gateway.upstream.reply_text("via the header")
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {ALICE}"}) as ws:
        await ws.send('{"type": "user_message", "content": "hi"}')
        assert orjson.loads(await ws.recv())["type"] == "ack"
        frames = [orjson.loads(await ws.recv())]
        while not frames[-1].get("is_final"):
            frames.append(orjson.loads(await ws.recv()))
        assert "".join(f.get("content") or "" for f in frames) == "via the header"
    async with websockets.connect(url, subprotocols=["codelab", f"bearer.{ALICE}"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "codelab", "the token is never echoed as the chosen subprotocol"
    async with gateway.connect("tok-1", query=f"token={ALICE}") as client:
        assert await a_turn(client, gateway, "via the query") == "via the query"


async def test_a_session_belongs_to_the_principal_that_created_it(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(**TOKENS)
    async with gateway.connect("owned", query=f"token={ALICE}") as alice:
        assert await a_turn(alice, gateway, "first") == "first"
        status, error = await refused(gateway.ws_path("owned"), additional_headers={"Authorization": f"Bearer {BOB}"})
        assert (status, error["code"]) == (404, "INVALID_SESSION")
        assert await a_turn(alice, gateway, "still mine") == "still mine", "bob's try did not replace alice"
    async with gateway.connect("owned", query=f"token={ALICE}") as again:
        assert await a_turn(again, gateway, "back") == "back"
    async with gateway.connect("bobs", query=f"token={BOB}") as bob:
        assert await a_turn(bob, gateway, "his own") == "his own"


async def test_a_session_made_without_a_principal_is_no_principals(make_gateway: MakeGateway) -> None:
    open_gateway = await make_gateway()
    async with open_gateway.connect("anonymous") as client:
        assert await a_turn(client, open_gateway, "made in none mode") == "made in none mode"
    gateway = await make_gateway(**TOKENS)
    status, error = await refused(gateway.ws_path("anonymous", query=f"token={ALICE}"))
    assert (status, error["code"]) == (404, "INVALID_SESSION")


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, secret, algorithm="HS256")


async def test_jwts_signed_with_the_shared_secret(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(client_auth="jwt", jwt_secret=SECRET, jwt_audience="codelab")
    good = hs256({"sub": "carol", "aud": "codelab"})
    async with gateway.connect("jwt-1", query=f"token={good}") as client:
        assert await a_turn(client, gateway, "signed") == "signed"
    bad = {
        "expired": hs256({"sub": "carol", "aud": "codelab", "exp": int(time.time()) - 10}),
        "wrong secret": hs256({"sub": "carol", "aud": "codelab"}, secret="another-secret-of-at-least-32-bytes"),
        "wrong audience": hs256({"sub": "carol", "aud": "elsewhere"}),
        "no subject": hs256({"aud": "codelab"}),
        "not a jwt": "abc.def",
    }
    for case, token in bad.items():
        status, error = await refused(gateway.ws_path("jwt-1"), additional_headers={"Authorization": f"Bearer {token}"})
        assert (status, error["code"]) == (401, "UNAUTHORIZED"), case
        assert token not in error["message"], case
    other = hs256({"sub": "dave", "aud": "codelab"})
    status, error = await refused(gateway.ws_path("jwt-1", query=f"token={other}"))
    assert (status, error["code"]) == (404, "INVALID_SESSION"), "carol's session is not dave's"


@pytest.fixture
async def jwks() -> AsyncIterator[tuple[str, rsa.RSAPrivateKey]]:
    """A real HTTP server publishing one RSA key as a JWKS."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = orjson.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    document = {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}
    app = web.Application()

    async def publish(_: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/jwks.json", publish)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/jwks.json", key
    finally:
        await runner.cleanup()


async def test_jwts_signed_with_a_key_from_the_jwks_url(
    make_gateway: MakeGateway, jwks: tuple[str, rsa.RSAPrivateKey]
) -> None:
    url, key = jwks
    gateway = await make_gateway(client_auth="jwt", jwt_jwks_url=url, jwt_issuer="https://id.example")
    claims = {"sub": "erin", "iss": "https://id.example", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    async with gateway.connect("rs-1", query=f"token={token}") as client:
        assert await a_turn(client, gateway, "rsa") == "rsa"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": "k1"})
    status, error = await refused(gateway.ws_path("rs-1", query=f"token={forged}"))
    assert (status, error["code"]) == (401, "UNAUTHORIZED")
    unknown_kid = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "nope"})
    status, error = await refused(gateway.ws_path("rs-1", query=f"token={unknown_kid}"))
    assert (status, error["code"]) == (401, "UNAUTHORIZED") and "signing key" in error["message"]
    hs_with_public_key = hs256({"sub": "erin", "iss": "https://id.example"})
    status, _ = await refused(gateway.ws_path("rs-1", query=f"token={hs_with_public_key}"))
    assert status == 401, "only RS256 is accepted with a JWKS"


async def test_origin_allow_list(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(allowed_origins=["https://ide.example.com"])
    status, error = await refused(gateway.ws_path("origin"), origin="https://evil.example")  # type: ignore[arg-type]
    assert (status, error["code"]) == (403, "UNAUTHORIZED") and "Origin" in error["message"]
    async with websockets.connect(gateway.ws_path("origin"), origin="https://ide.example.com") as ws:  # type: ignore[arg-type]
        await ws.send('{"type": "resume", "last_seq": 0}')
    async with gateway.connect("origin") as client:  # no Origin header: a desktop client
        assert await a_turn(client, gateway, "no origin") == "no origin"


async def test_a_handshake_over_the_size_limit_is_refused(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(max_handshake_bytes=4096)
    status, error = await refused(gateway.ws_path("big"), additional_headers={"X-Padding": "p" * 5000})
    assert (status, error["code"]) == (431, "TOO_LARGE")
    port = int(gateway.url.rsplit(":", 1)[1])
    upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    upgrade += "Sec-WebSocket-Version: 13\r\nHost: gateway\r\n"
    for status_line, request in (  # lines the WebSocket parser refuses before the app sees them
        (b"HTTP/1.1 414", f"GET /ws/big?x={'a' * 10_000} HTTP/1.1\r\n{upgrade}\r\n"),
        (b"HTTP/1.1 431", f"GET /ws/big HTTP/1.1\r\n{upgrade}X-Big: {'b' * 9_000}\r\n\r\n"),
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request.encode())
        answer = await asyncio.wait_for(reader.read(), 5)  # answered and closed, not left hanging
        writer.close()
        assert answer.startswith(status_line), answer[:80]
    async with gateway.connect("big") as client:
        assert await a_turn(client, gateway, "small is fine") == "small is fine"


async def test_connections_per_principal_are_capped(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(**TOKENS, max_connections_per_principal=2)
    async with gateway.connect("cap-1", query=f"token={ALICE}"), gateway.connect("cap-2", query=f"token={ALICE}"):
        status, error = await refused(gateway.ws_path("cap-3", query=f"token={ALICE}"))
        assert (status, error["code"]) == (429, "RATE_LIMITED")
        async with gateway.connect("cap-bob", query=f"token={BOB}") as bob:  # another principal is not affected
            assert await a_turn(bob, gateway, "bob is fine") == "bob is fine"
    async with gateway.connect("cap-3", query=f"token={ALICE}") as alice:  # freed when the others closed
        assert await a_turn(alice, gateway, "room again") == "room again"


async def test_frames_over_the_rate_are_dropped_then_the_connection_is_closed(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(frames_per_second=5, frame_burst=5, max_refused_frames=20)
    async with gateway.connect("flood") as client:
        for _ in range(10):
            await client.send('{"type": "resume", "last_seq": 0}')
        error = await client.recv()
        assert error["code"] == "RATE_LIMITED" and "frames a second" in error["content"]
        await client.silent(0.3)  # one error frame for the run, not one per dropped frame
        for _ in range(30):  # the bucket lets one or two through meanwhile: the drops still add up
            await client.send('{"type": "resume", "last_seq": 0}')
        code, reason = await client.closed()
    assert (code, reason) == (1008, "too many frames")


async def test_an_idle_connection_is_closed_and_a_frame_larger_than_the_transport_takes_closes_it(
    make_gateway: MakeGateway,
) -> None:
    gateway = await make_gateway(idle_timeout_s=0.5)
    async with gateway.connect("idle") as client:
        code, reason = await client.closed(timeout=3)
    assert (code, reason) == (1001, "idle")
    gateway = await make_gateway(max_frame_bytes=1024, max_tool_result_bytes=4096)
    async with gateway.connect("huge") as client:
        await client.send('{"type": "tool_result", "call_id": "c", "result": "' + "x" * 5000 + '"}')
        code, _ = await client.closed()
    assert code == 1009


async def test_a_served_app_can_still_be_used_by_the_ide_without_a_token(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway()
    async with gateway.connect("ide-none", ide=True) as client:
        gateway.upstream.reply_text("hello IDE")
        await client.say("hi")
        frames = await client.recv_until(lambda f: f["type"] == "assistant_message")
    assert frames[-1]["content"] == "hello IDE"

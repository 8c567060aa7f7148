"""`GET /metrics`: connections, frames in and out by type, reconnects and resumes, errors by code."""

from __future__ import annotations

import aiohttp
import pytest

from codelab_common.testing import metric_value
from tests.fixtures.agent_runtime import RunningAgentRuntime
from tests.fixtures.gateway import RunningGateway


async def scrape(gateway: RunningGateway, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url}/metrics", headers=gateway.headers if headers is None else headers) as response,
    ):
        return response.status, await response.text()


async def test_frames_reconnects_and_resumes_are_counted(
    gateway: RunningGateway, agent_runtime: RunningAgentRuntime
) -> None:
    gateway.upstream.reply_text("Finished while you were gone.", chunk_delay=0.02)
    async with gateway.connect("counted") as client:
        await client.say("go")
        ack = await client.recv()
    await agent_runtime.wait_until_idle("counted")
    _, away = await scrape(gateway)
    async with gateway.connect("counted", query=f"last_seq={ack['seq']}") as client:
        rest = await client.turn()
        await client.send({"type": "nonsense"})
        assert (await client.recv())["code"] == "INVALID_FORMAT"
        _, text = await scrape(gateway)

    assert metric_value(text, "gateway_connections_total", dialect="stream") == 2
    assert metric_value(text, "gateway_live_connections") == 1
    assert metric_value(text, "gateway_reconnects_total") == 1
    assert metric_value(text, "gateway_resumes_total") == 1
    assert metric_value(text, "gateway_frames_received_total", type="user_message") == 1
    assert metric_value(text, "gateway_frames_sent_total", type="ack") == 1
    assert metric_value(text, "gateway_frames_sent_total", type="error") == 1
    deltas = metric_value(text, "gateway_frames_sent_total", type="assistant_message")
    assert deltas - metric_value(away, "gateway_frames_sent_total", type="assistant_message") == len(rest)
    assert metric_value(text, "gateway_errors_sent_total", code="INVALID_FORMAT") == 1


async def test_the_ide_dialect_counts_the_whole_messages_it_sends(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("One whole message, streamed in many deltas.")
    async with gateway.connect("ide-counted", ide=True) as client:
        await client.say("hi")
        message = await client.recv()
        assert message["is_final"] is True
        _, text = await scrape(gateway)
    assert metric_value(text, "gateway_frames_sent_total", type="assistant_message") == 1
    assert metric_value(text, "gateway_frames_sent_total", type="ack") == 0


@pytest.mark.parametrize("gateway_overrides", [{"metrics_open": True}])
async def test_metrics_open_serves_them_without_the_key(gateway: RunningGateway) -> None:
    status, text = await scrape(gateway, headers={})
    assert status == 200 and "gateway_live_connections" in text
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/internal/sessions") as other:
        assert other.status == 401

import aiohttp

from codelab_common.testing import FakeOpenAI


async def test_fake_upstream_streams_scripted_text(fake_upstream: FakeOpenAI) -> None:
    fake_upstream.reply_text("hello there")
    async with aiohttp.ClientSession() as session:
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        async with session.post(f"{fake_upstream.base_url}/chat/completions", json=body) as response:
            raw = await response.text()
    assert response.status == 200
    assert raw.rstrip().endswith("data: [DONE]")
    assert fake_upstream.requests[0]["messages"][0]["content"] == "hi"

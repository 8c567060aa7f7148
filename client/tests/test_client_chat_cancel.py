"""`codelab chat` and Ctrl-C, against a scripted gateway: the first Ctrl-C of a turn sends `cancel` and the UI says
the turn was cancelled, the second quits; a prompt of the cancelled turn hands its line to the next prompt."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from client.tests.fake_gateway import FakeGateway, ack, delta, final
from codelab_client import approval_prompt, chat, terminal_input


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    async with FakeGateway().serve() as gateway:
        yield gateway


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace


async def test_an_abandoned_read_hands_its_line_to_the_next_prompt() -> None:
    """A prompt of a cancelled turn cannot stop its thread's input(); the next prompt takes that line."""
    typed = asyncio.Event()
    release = threading.Event()
    reads: list[str] = []
    prompts: list[str] = []

    def read() -> str:
        reads.append("approval")
        typed.set()
        release.wait(5)
        return "the next line"

    first = asyncio.create_task(terminal_input.read_line(read, reprompt=lambda: prompts.append("approval")))
    await asyncio.wait_for(typed.wait(), 5)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    def never() -> str:
        raise AssertionError("a second reader must not start")

    second = asyncio.create_task(terminal_input.read_line(never, reprompt=lambda: prompts.append("you>")))
    await asyncio.sleep(0.05)
    release.set()
    assert await asyncio.wait_for(second, 5) == "the next line"
    assert reads == ["approval"] and prompts == ["you>"]


@pytest.fixture
def keyboard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    typed: list[str] = []

    async def read_line(read: Any, **_: Any) -> str | None:
        return typed.pop(0) if typed else None

    monkeypatch.setattr(chat, "read_line", read_line)
    monkeypatch.setattr(approval_prompt, "read_line", read_line)
    yield typed


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out


async def test_chat_ctrl_c_cancels_the_turn_and_the_next_message_works(
    fake: FakeGateway, folder: Path, keyboard: list[str]
) -> None:
    keyboard += ["count slowly", "and now?", "/quit"]
    shown, out = console()
    before = signal.getsignal(signal.SIGINT)
    chatting = asyncio.create_task(chat.chat(folder, fake.url, "chat-cancel-1", console=shown))
    gateway = await fake.accept()
    message = await gateway.recv()
    message_id = message["message_id"]
    await gateway.send(ack(message_id, 1), delta(message_id, 2, "one two "))
    os.kill(os.getpid(), signal.SIGINT)
    assert await gateway.recv() == {"type": "cancel", "message_id": message_id}
    await gateway.send(delta(message_id, 3, "three "), final(message_id, 4, "cancelled"))
    second = await gateway.recv()
    assert second["type"] == "user_message" and second["content"] == "and now?"
    await gateway.send(ack(second["message_id"], 5), delta(second["message_id"], 6, "Done."))
    await gateway.send(final(second["message_id"], 7))
    assert await asyncio.wait_for(chatting, 5) == 0
    text = out.getvalue()
    assert "cancelling the turn… (Ctrl-C again to quit)" in text
    assert "the turn was cancelled" in text and "Done." in text
    assert signal.getsignal(signal.SIGINT) is before, "the handler asyncio had is back"


async def test_chat_a_second_ctrl_c_quits(fake: FakeGateway, folder: Path, keyboard: list[str]) -> None:
    keyboard += ["count slowly", "never read"]
    shown, _ = console()
    chatting = asyncio.create_task(chat.chat(folder, fake.url, "chat-cancel-2", console=shown))
    gateway = await fake.accept()
    message_id = (await gateway.recv())["message_id"]
    await gateway.send(ack(message_id, 1), delta(message_id, 2, "one "))
    os.kill(os.getpid(), signal.SIGINT)
    assert (await gateway.recv())["type"] == "cancel"
    os.kill(os.getpid(), signal.SIGINT)
    assert await asyncio.wait_for(chatting, 5) == chat.INTERRUPTED
    assert keyboard == ["never read"]

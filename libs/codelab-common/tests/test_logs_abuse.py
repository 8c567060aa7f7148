"""Log lines a hostile client shapes: credentials it sends (valid or not) in every spelling the WebSocket library
logs at DEBUG, and long paths and payloads that uvicorn and database drivers log as record arguments."""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import pytest

from codelab_common.logs import MAX_ARGUMENT_CHARS, configure_logging


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_credentials_nobody_configured_are_blanked_in_every_spelling(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("demo", "DEBUG")
    websocket = logging.getLogger("uvicorn.error")
    unknown = "not_a-known.token_" + "9f8e7d6c"  # underscores too: the whole token goes, not only its first part
    websocket.debug("< %s: %s", "authorization", f"bearer {unknown}")
    websocket.debug("< %s: %s", "Authorization", f"Basic {unknown}")
    websocket.debug("< %s: %s", "x-internal-auth", unknown)
    websocket.debug("< %s: %s", "cookie", f"session={unknown}; theme=dark")
    websocket.debug("< %s: %s", "sec-websocket-protocol", f"codelab, bearer.{unknown}")
    websocket.debug("upstream refused Bearer %s", unknown)

    lines = _lines(capsys)
    assert unknown not in json.dumps(lines) and unknown[-8:] not in json.dumps(lines)
    assert [line["event"] for line in lines] == [
        "< authorization: [redacted]",
        "< Authorization: [redacted]",
        "< x-internal-auth: [redacted]",
        "< cookie: [redacted]",
        "< sec-websocket-protocol: codelab, bearer.[redacted]",
        "upstream refused Bearer [redacted]",
    ]


def test_a_long_record_argument_is_logged_as_a_short_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    token = "t0k3n-of-alice-" + "9f8e7d"
    configure_logging("demo", "DEBUG", secrets=(f"alice:{token}",))
    path = "/ws/" + "p" * (MAX_ARGUMENT_CHARS - 10) + token + "q" * 10_000  # the token straddles the cut
    logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", path)
    logging.getLogger("aiosqlite").debug("executing %s", functools.partial(print, "INSERT", ("x" * 50_000,)))
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/health", "1.1", 200)

    access, driver, short = _lines(capsys)
    assert token[:6] not in access["event"]
    assert access["event"].startswith('127.0.0.1:5000 - "WebSocket /ws/ppp')
    assert access["event"].endswith('more characters not logged]" [accepted]')
    assert len(access["event"]) < MAX_ARGUMENT_CHARS + 100
    assert driver["event"].startswith("executing functools.partial(<built-in function print>, 'INSERT', ('xxx")
    assert len(driver["event"]) < MAX_ARGUMENT_CHARS + 100
    assert short["event"] == '127.0.0.1:5000 - "GET /health HTTP/1.1" 200'

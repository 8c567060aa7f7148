"""Fixtures shared by every test folder: the real services on loopback, wired hop by hop."""

import logging
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.fixtures.upstream",
    "tests.fixtures.llm_proxy",
    "tests.fixtures.agent_runtime",
    "tests.fixtures.gateway",
]

_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that configures logging (to stderr that pytest captures, and closes after the test) leaves the root
    logger as it found it, so later threads do not write to a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in _SERVER_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)

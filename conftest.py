"""Fixtures shared by every test folder: the real services on loopback, wired hop by hop."""

pytest_plugins = [
    "tests.fixtures.upstream",
    "tests.fixtures.llm_proxy",
    "tests.fixtures.agent_runtime",
    "tests.fixtures.gateway",
]

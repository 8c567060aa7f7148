"""Helpers for the project's tests: real servers on free loopback ports and a scripted OpenAI upstream."""

from codelab_common.testing.fake_openai import FakeOpenAI, ScriptedReply
from codelab_common.testing.servers import free_port, serve_app, wait_for_health

__all__ = ["FakeOpenAI", "ScriptedReply", "free_port", "serve_app", "wait_for_health"]

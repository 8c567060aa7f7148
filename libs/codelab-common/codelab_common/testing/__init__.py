"""Helpers for the project's tests: real servers on free loopback ports and scripted OpenAI and Anthropic upstreams."""

from codelab_common.testing.fake_anthropic import AnthropicReply, FakeAnthropic
from codelab_common.testing.fake_openai import FakeOpenAI, ScriptedReply
from codelab_common.testing.prometheus import metric_value
from codelab_common.testing.servers import free_port, serve_app, wait_for_health

__all__ = [
    "AnthropicReply",
    "FakeAnthropic",
    "FakeOpenAI",
    "ScriptedReply",
    "free_port",
    "metric_value",
    "serve_app",
    "wait_for_health",
]

"""What a session reports while a turn runs; the terminal UI, the JSON printer and tests each listen to it."""

from __future__ import annotations

from typing import Any

from codelab_common.protocol import PlanUpdate, ToolCall


class SessionListener:
    """No-op base: override what you show. Methods are called in the order frames arrive."""

    def on_frame(self, frame: dict[str, Any]) -> None:
        """Every frame received from the gateway, before it is handled."""

    def on_ack(self, frame: dict[str, Any]) -> None: ...

    def on_delta(self, text: str) -> None:
        """A piece of the assistant's answer."""

    def on_final(self, frame: dict[str, Any]) -> None:
        """The turn's closing `assistant_message` (`is_final: true`)."""

    def on_tool_call(self, call: ToolCall) -> None:
        """A call arrived; approval (when required) and execution follow."""

    def on_tool_result(self, call: ToolCall, result: dict[str, Any] | None, error: str | None) -> None:
        """What goes back to the model for `call`."""

    def on_error(self, frame: dict[str, Any]) -> None: ...

    def on_plan(self, plan: PlanUpdate, frame: dict[str, Any]) -> None:
        """The agent's plan as it stands after `frame` (a `plan_update`, or a `plan_progress` applied to it)."""

    def on_unknown(self, frame: dict[str, Any]) -> None:
        """A frame type this client does not know (a newer gateway's extension)."""

    def on_reconnecting(self, attempt: int, reason: str) -> None: ...

    def on_reconnected(self) -> None: ...

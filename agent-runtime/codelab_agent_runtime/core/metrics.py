"""Prometheus metrics of one agent-runtime app (own registry, so several apps can live in one process, as in tests).

Counted per turn, per model call and per tool call, never per token. A tool call's outcome: `ok`, `error` (from its
result), `rejected` (the user's typed decision), `timeout`. Every decision on a call that needed approval counts too,
by its kind: `approve`, `edit`, `reject`.
"""

from __future__ import annotations

from enum import StrEnum

from fastapi.responses import Response
from prometheus_client import Counter, Histogram

from codelab_common.metrics import app_registry, metrics_response
from codelab_common.protocol import ErrorCode, StepStatus
from codelab_common.protocol.agent_api import TOOL_TIMEOUT_ERROR

MODEL_CALL_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32)
ROUND_TRIP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)


class TurnOutcome(StrEnum):
    COMPLETED = "completed"
    STEP_LIMIT = "step_limit"
    REPEATED_CALL = "repeated_call"
    MODEL_ERROR = "model_error"
    ERROR = "error"
    CANCELLED = "cancelled"

    @classmethod
    def of(cls, status: StepStatus | None, error: ErrorCode | None) -> TurnOutcome | None:
        """How the turn ended with a step that ended so; None when the turn goes on (it awaits tool results) or
        the step was refused (BUSY, an unknown call id) and left the turn as it was."""
        if status is StepStatus.COMPLETED:
            return cls.COMPLETED
        if status is StepStatus.FAILED:
            return _FAILED_TURNS.get(error) if error is not None else None
        return None


class ToolOutcome(StrEnum):
    OK = "ok"
    ERROR = "error"
    REJECTED = "rejected"
    TIMEOUT = "timeout"

    @classmethod
    def of(cls, error: str | None) -> ToolOutcome:
        """The outcome a client's `tool_result` reports."""
        if error is None:
            return cls.OK
        if error.startswith(TOOL_TIMEOUT_ERROR):
            return cls.TIMEOUT
        return cls.ERROR


_FAILED_TURNS = {
    ErrorCode.STEP_LIMIT: TurnOutcome.STEP_LIMIT,
    ErrorCode.REPEATED_CALL: TurnOutcome.REPEATED_CALL,
    ErrorCode.LLM_ERROR: TurnOutcome.MODEL_ERROR,
    ErrorCode.INTERNAL: TurnOutcome.ERROR,
}


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = registry = app_registry()
        self.turns = Counter("agent_runtime_turns", "Turns that ended, by outcome", ["outcome"], registry=registry)
        self.model_calls_per_turn = Histogram(
            "agent_runtime_turn_model_calls",
            "Model calls of a turn that ended",
            buckets=MODEL_CALL_BUCKETS,
            registry=registry,
        )
        self.tool_calls = Counter(
            "agent_runtime_tool_calls",
            "Tool calls sent to the client and answered, by tool and outcome",
            ["tool", "outcome"],
            registry=registry,
        )
        self.approvals = Counter(
            "agent_runtime_approval_decisions",
            "The user's decisions on tool calls that needed approval, by tool and decision (approve, edit, reject)",
            ["tool", "decision"],
            registry=registry,
        )
        self.tool_round_trip = Histogram(
            "agent_runtime_tool_round_trip_seconds",
            "From a tool_call sent to the client to its result received, by tool",
            ["tool"],
            buckets=ROUND_TRIP_BUCKETS,
            registry=registry,
        )
        self.time_to_first_token = Histogram(
            "agent_runtime_model_time_to_first_token_seconds",
            "From a model call's request to its first streamed text or tool call",
            buckets=TTFT_BUCKETS,
            registry=registry,
        )

    def turn_ended(self, outcome: TurnOutcome, model_calls: int) -> None:
        self.turns.labels(outcome.value).inc()
        self.model_calls_per_turn.observe(model_calls)

    def tool_answered(self, tool: str, outcome: ToolOutcome, *, seconds: float | None) -> None:
        """One tool call's result (or its timeout, or its rejection), `seconds` after the call was sent."""
        self.tool_calls.labels(tool, outcome.value).inc()
        if seconds is not None:
            self.tool_round_trip.labels(tool).observe(seconds)

    def approval_decided(self, tool: str, decision: str) -> None:
        self.approvals.labels(tool, decision).inc()

    def response(self) -> Response:
        return metrics_response(self.registry)

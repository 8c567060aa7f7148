"""Wire models of `POST /v1/chat/completions` (OpenAI's request schema).

Only used to validate a request once; the original body is what gets forwarded, so keys these models do not
know (`top_p`, `seed`, `response_format`, provider extensions) pass through untouched. Validation is strict
(JSON types are not coerced: `"stream": "yes"` is an error, not `true`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


ContentPart = dict[str, Any]
Content = str | list[ContentPart]


class FunctionCall(_Wire):
    name: str
    arguments: str


class ToolCallMessagePart(_Wire):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Wire):
    role: Literal["system", "developer"]
    content: Content
    name: str | None = None


class UserMessage(_Wire):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(_Wire):
    role: Literal["assistant"]
    content: Content | None = None
    tool_calls: list[ToolCallMessagePart] | None = None
    name: str | None = None


class ToolMessage(_Wire):
    role: Literal["tool"]
    content: Content
    tool_call_id: str


ChatMessage = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


class FunctionDefinition(_Wire):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDefinition(_Wire):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(_Wire):
    name: str


class NamedToolChoice(_Wire):
    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(_Wire):
    include_usage: bool = False


class ChatCompletionRequest(_Wire):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1)

    def offered_tool_names(self) -> dict[str, dict[str, Any]]:
        """The tools the model may call, name → parameters schema: none for `tool_choice: "none"`, only the named
        one if forced."""
        if not self.tools or self.tool_choice == "none":
            return {}
        offered = {tool.function.name: tool.function.parameters or {} for tool in self.tools}
        if isinstance(self.tool_choice, NamedToolChoice):
            forced = self.tool_choice.function.name
            return {forced: offered[forced]} if forced in offered else {}
        return offered

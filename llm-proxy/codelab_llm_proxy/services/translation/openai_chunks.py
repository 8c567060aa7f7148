"""A whole `chat.completion` built from the `chat.completion.chunk`s of a stream.

Used for deployments with `stream_upstream`: the proxy asks such an upstream for a stream even when its client
wants a whole answer, because llama.cpp stops generating a streamed answer as soon as its client leaves but
finishes a non-streamed one whatever happens. Per choice, string fields of the deltas are joined (`content`,
`reasoning_content`, `refusal`), tool-call deltas are merged by their `index`, and the last `finish_reason` wins;
the usage chunk becomes `usage`.
"""

from __future__ import annotations

from typing import Any

_FIRST_CHUNK_KEYS = ("id", "created", "model", "system_fingerprint", "service_tier")


class CompletionBuilder:
    def __init__(self) -> None:
        self._answer: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        if not self._answer:
            self._answer = {key: chunk[key] for key in _FIRST_CHUNK_KEYS if key in chunk}
            self._answer["object"] = "chat.completion"
        usage = chunk.get("usage")
        if usage:
            self._answer["usage"] = usage
        for delta_choice in chunk.get("choices") or ():
            index = delta_choice.get("index", 0)
            choice = self._choices.get(index)
            if choice is None:
                message = {"role": "assistant", "content": None}
                choice = self._choices[index] = {"index": index, "message": message, "finish_reason": None}
            _merge(choice["message"], delta_choice.get("delta") or {})
            if delta_choice.get("finish_reason"):
                choice["finish_reason"] = delta_choice["finish_reason"]
            logprobs = delta_choice.get("logprobs")
            if isinstance(logprobs, dict) and logprobs.get("content"):
                choice.setdefault("logprobs", {"content": []})["content"].extend(logprobs["content"])

    @property
    def empty(self) -> bool:
        return not self._answer

    def result(self) -> dict[str, Any]:
        choices = [self._choices[index] for index in sorted(self._choices)]
        for choice in choices:
            message = choice["message"]
            if message.get("tool_calls") and not message.get("content"):
                message["content"] = None
        return {**self._answer, "choices": choices}


def _merge(message: dict[str, Any], delta: dict[str, Any]) -> None:
    for key, value in delta.items():
        if value is None or key == "role":
            continue
        if key == "tool_calls":
            _merge_calls(message.setdefault("tool_calls", []), value)
        elif isinstance(value, str):
            message[key] = (message.get(key) or "") + value
        else:
            message[key] = value


def _merge_calls(calls: list[dict[str, Any]], deltas: list[dict[str, Any]]) -> None:
    for position, delta in enumerate(deltas):
        index = delta.get("index", position)
        while len(calls) <= index:
            calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        call = calls[index]
        if delta.get("id"):
            call["id"] = delta["id"]
        if delta.get("type"):
            call["type"] = delta["type"]
        function = delta.get("function") or {}
        if function.get("name"):
            call["function"]["name"] += function["name"]
        if function.get("arguments"):
            call["function"]["arguments"] += function["arguments"]

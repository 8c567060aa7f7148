"""Whole answers: an Anthropic `message` ⇄ an OpenAI `chat.completion`, plus the stop-reason and usage maps.

Usage: Anthropic's `input_tokens` excludes cache reads and cache writes, OpenAI's `prompt_tokens` includes them.
So `prompt_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens`, and the split is kept
in `prompt_tokens_details` (`cached_tokens` is OpenAI's name for cache reads; `cache_creation_tokens` carries the
writes, which OpenAI has no field for). The inverse subtracts them again, so a round trip is exact.
"""

from __future__ import annotations

from typing import Any

import orjson

from codelab_llm_proxy.core.json_body import MAX_JSON_DEPTH, nested_within

Body = dict[str, Any]

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_HTTP_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def finish_reason(stop_reason: str | None) -> str:
    return STOP_TO_FINISH.get(stop_reason or "end_turn", "stop")


def stop_reason(finish: str | None) -> str:
    return FINISH_TO_STOP.get(finish or "stop", "end_turn")


def openai_usage(usage: Body) -> Body:
    """Anthropic usage (cumulative counts) → OpenAI usage."""
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cache_read + cache_write
    completion = usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_creation_tokens": cache_write},
    }


def anthropic_usage(usage: Body | None) -> Body:
    """OpenAI usage → Anthropic usage (the inverse of `openai_usage`)."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    cache_read = details.get("cached_tokens") or 0
    cache_write = details.get("cache_creation_tokens") or 0
    return {
        "input_tokens": (usage.get("prompt_tokens") or 0) - cache_read - cache_write,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": usage.get("completion_tokens") or 0,
    }


ANTHROPIC_ERROR_TYPES = frozenset({*_HTTP_ERROR_TYPES.values(), "api_error"})


def anthropic_error_type(status: int) -> str:
    """Anthropic's error `type` for an HTTP status (5xx other than 529 are `api_error`)."""
    return _HTTP_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error(message: str, status: int) -> Body:
    return {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}


def openai_completion(message: Body, *, model: str, created: int, include_reasoning: bool) -> Body:
    """An Anthropic `message` → `chat.completion`.

    Thinking is sent only when opted in: its text as `reasoning_content`, and the blocks themselves (signatures and
    redacted blocks included, which Anthropic wants back in the next turn) as `thinking_blocks`, LiteLLM's name.
    """
    texts: list[str] = []
    thinking: list[Body] = []
    calls: list[Body] = []
    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}
            )
    out_message: Body = {"role": "assistant", "content": "".join(texts) if texts else None}
    if include_reasoning and thinking:
        out_message["reasoning_content"] = "".join(b.get("thinking", "") for b in thinking)
        out_message["thinking_blocks"] = thinking
    if calls:
        out_message["tool_calls"] = calls
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": out_message, "finish_reason": finish_reason(message.get("stop_reason"))}],
        "usage": openai_usage(message.get("usage") or {}),
    }


def anthropic_message(completion: Body, *, model: str) -> Body:
    """A `chat.completion` → Anthropic `message`: thinking, then text, then one `tool_use` block per call.

    Tool arguments that are not a JSON object (a call cut off at `max_tokens`) become `{}`: Anthropic's `input`
    must be an object.
    """
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[Body] = thinking_blocks(message)
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(part.get("text", "") for part in text if isinstance(part, dict))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": parse_arguments(function.get("arguments")),
            }
        )
    return {
        "id": completion.get("id", ""),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": anthropic_usage(completion.get("usage")),
    }


def parse_arguments(arguments: Any) -> Body:
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) and nested_within(value, MAX_JSON_DEPTH) else {}


def thinking_blocks(message: Body) -> list[Body]:
    """Anthropic thinking blocks of an OpenAI-shaped message: its `thinking_blocks` as they came (signatures
    kept), else one block for its `reasoning_content` (no signature known)."""
    blocks = message.get("thinking_blocks")
    if isinstance(blocks, list) and blocks:
        out = []
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "redacted_thinking":
                out.append({"type": "redacted_thinking", "data": block.get("data", "")})
            elif isinstance(block, dict):
                thinking = block.get("thinking", "")
                out.append({"type": "thinking", "thinking": thinking, "signature": block.get("signature") or ""})
        return out
    if message.get("reasoning_content"):
        return [{"type": "thinking", "thinking": message["reasoning_content"], "signature": ""}]
    return []

"""Request bodies: OpenAI chat-completions ⇄ Anthropic Messages.

OpenAI → Anthropic (the Anthropic provider): system and developer messages are hoisted into `system` (Anthropic
has no mid-conversation system turn), `tool` messages become `tool_result` blocks in a user turn, assistant
`tool_calls` become `tool_use` blocks, consecutive turns of one role are merged (Anthropic wants alternation),
`image_url` parts become `image` blocks (data URLs → base64 source, other URLs → url source), and `max_tokens`,
which Anthropic requires, falls back to the model's configured default.

Anthropic → OpenAI (the `/v1/messages` ingress): the inverse, so a request can go to any configured model.

Thinking opt-in: an OpenAI-shaped request enables extended thinking with Anthropic's own `thinking` object
(`{"type": "enabled", "budget_tokens": N}`) as an extra top-level key; it is forwarded to Anthropic as-is and, in
answers, thinking arrives in the `reasoning_content` field (the name vLLM and DeepSeek use).
"""

from __future__ import annotations

from typing import Any

import orjson

from codelab_llm_proxy.core.errors import InvalidRequest
from codelab_llm_proxy.core.json_body import parse_json_object
from codelab_llm_proxy.services.translation.anthropic_response import thinking_blocks

Body = dict[str, Any]

_TOOL_CHOICE_TO_ANTHROPIC = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
_TOOL_CHOICE_TO_OPENAI = {"auto": "auto", "any": "required", "none": "none"}


def thinking_requested(body: Body) -> bool:
    """True when the request opts into thinking output (`thinking` present and not disabled)."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") != "disabled"


# ---------------------------------------------------------------- OpenAI → Anthropic


def openai_to_anthropic_request(body: Body, *, default_max_tokens: int) -> Body:
    """An Anthropic Messages request for a validated OpenAI chat-completions `body` (its `model` already upstream's)."""
    if (body.get("n") or 1) > 1:
        raise InvalidRequest("n > 1 is not supported by Anthropic models")
    system: list[Body] = []
    messages: list[Body] = []
    for message in body["messages"]:
        role = message["role"]
        if role in ("system", "developer"):
            system.extend(_text_blocks(message["content"], where="system message"))
        elif role == "user":
            _append(messages, "user", _user_blocks(message["content"]))
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(message))
        else:
            _append(messages, "user", [_tool_result_block(message)])
    out: Body = {"model": body["model"], "messages": messages}
    if system:
        out["system"] = system[0]["text"] if len(system) == 1 else system
    out["max_tokens"] = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for key in ("temperature", "top_p", "top_k", "thinking"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("tools"):
        out["tools"] = [_anthropic_tool(tool["function"]) for tool in body["tools"]]
    choice = _anthropic_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and body.get("tools"):
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


def _append(messages: list[Body], role: str, blocks: list[Body]) -> None:
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _text_blocks(content: Any, *, where: str) -> list[Body]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content or ():
        if part.get("type") != "text":
            raise InvalidRequest(f"{where}: only text parts are supported here, got {part.get('type')!r}")
        blocks.append({"type": "text", "text": part.get("text", "")})
    return blocks


def _user_blocks(content: Any) -> list[Body]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url")))
        else:
            raise InvalidRequest(f"content part of type {kind!r} is not supported by Anthropic models")
    return blocks


def _image_block(image_url: Any) -> Body:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise InvalidRequest("image_url part without a url")
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise InvalidRequest("image data URLs must look like data:<media type>;base64,<data>")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _assistant_blocks(message: Body) -> list[Body]:
    """Thinking first (as Anthropic wants it back, signature included), then text, then tool calls."""
    blocks = thinking_blocks(message) if isinstance(message.get("thinking_blocks"), list) else []
    blocks += _text_blocks(message.get("content"), where="assistant message")
    for call in message.get("tool_calls") or ():
        function = call["function"]
        blocks.append({"type": "tool_use", "id": call["id"], "name": function["name"], "input": _arguments(function)})
    return blocks


def _arguments(function: Body) -> Any:
    raw = function.get("arguments") or ""
    if not raw.strip():
        return {}
    return parse_json_object(raw, f"tool call {function['name']!r}: arguments")


def _tool_result_block(message: Body) -> Body:
    content = message["content"]
    result = content if isinstance(content, str) else _text_blocks(content, where="tool message")
    return {"type": "tool_result", "tool_use_id": message["tool_call_id"], "content": result}


def _anthropic_tool(function: Body) -> Body:
    tool: Body = {"name": function["name"]}
    if function.get("description"):
        tool["description"] = function["description"]
    tool["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return tool


def _anthropic_tool_choice(choice: Any, parallel: Any) -> Body | None:
    result: Body | None
    if choice is None:
        result = {"type": "auto"} if parallel is False else None
    elif isinstance(choice, str):
        result = dict(_TOOL_CHOICE_TO_ANTHROPIC[choice])
    else:
        result = {"type": "tool", "name": choice["function"]["name"]}
    if result is not None and parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


# ---------------------------------------------------------------- Anthropic → OpenAI


def anthropic_to_openai_request(body: Body, *, keep_thinking: bool) -> Body:
    """An OpenAI chat-completions request for a validated Anthropic Messages `body`.

    `keep_thinking` forwards the `thinking` opt-in (only Anthropic upstreams understand it). A streamed request
    always asks for the usage chunk, since Anthropic's `message_delta` reports usage.
    """
    messages: list[Body] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": system if isinstance(system, str) else _openai_parts(system)})
    for message in body["messages"]:
        if message["role"] == "user":
            messages.extend(_openai_user_messages(message["content"]))
        else:
            messages.append(_openai_assistant_message(message["content"], keep_thinking=keep_thinking))
    out: Body = {"model": body["model"], "messages": messages, "max_tokens": body["max_tokens"]}
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    if keep_thinking and body.get("thinking") is not None:
        out["thinking"] = body["thinking"]
    if body.get("tools"):
        out["tools"] = [_openai_tool(tool) for tool in body["tools"]]
        choice = body.get("tool_choice")
        if choice is not None:
            kind = choice["type"]
            out["tool_choice"] = (
                {"type": "function", "function": {"name": choice["name"]}}
                if kind == "tool"
                else _TOOL_CHOICE_TO_OPENAI[kind]
            )
            if choice.get("disable_parallel_tool_use"):
                out["parallel_tool_calls"] = False
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = user
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _openai_parts(blocks: list[Body]) -> list[Body]:
    parts = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block["source"])}})
        else:
            raise InvalidRequest(f"content block of type {kind!r} is not supported here")
    return parts


def _image_url(source: Body) -> str:
    if source.get("type") == "base64":
        return f"data:{source['media_type']};base64,{source['data']}"
    if source.get("type") == "url":
        return str(source["url"])
    raise InvalidRequest(f"image source of type {source.get('type')!r} is not supported")


def _openai_user_messages(content: Any) -> list[Body]:
    """Tool results become `tool` messages (in order, before the turn's other content)."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[Body] = []
    rest: list[Body] = []
    for block in content:
        if block.get("type") == "tool_result":
            out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": _tool_result_text(block)})
        else:
            rest.append(block)
    if rest:
        out.append({"role": "user", "content": _openai_parts(rest)})
    return out


def _tool_result_text(block: Body) -> str:
    """The result as text; OpenAI's tool message has no error flag, so `is_error` becomes an `Error:` prefix."""
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        texts = []
        for part in content:
            if part.get("type") != "text":
                raise InvalidRequest(f"tool_result content of type {part.get('type')!r} is not supported")
            texts.append(part["text"])
        text = "\n".join(texts)
    return f"Error: {text}" if block.get("is_error") else text


def _openai_assistant_message(content: Any, *, keep_thinking: bool) -> Body:
    """Thinking blocks travel as `thinking_blocks` to Anthropic upstreams (which need them back) and are dropped
    for others."""
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[Body] = []
    thinking: list[Body] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}
            )
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
        else:
            raise InvalidRequest(f"assistant content block of type {kind!r} is not supported")
    message: Body = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if keep_thinking and thinking:
        message["thinking_blocks"] = thinking
    return message


def _openai_tool(tool: Body) -> Body:
    if tool.get("type") not in (None, "custom"):
        raise InvalidRequest(f"server tool {tool.get('type')!r} is not supported by this proxy")
    function: Body = {"name": tool["name"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}

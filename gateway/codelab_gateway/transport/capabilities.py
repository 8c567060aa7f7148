"""Client capabilities: which tools the connected client executes, so the model is offered only those."""

from __future__ import annotations

from dataclasses import dataclass

from codelab_common.protocol import TOOLS, resolve


class CapabilityError(ValueError):
    """The client named tools this backend does not know."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    tools: list[str] | None
    """Model-side tool names (AgentRequest.tools); None offers every tool."""


def tools_from_query(raw: str | None, default: tuple[str, ...] | None) -> Capabilities:
    """Parse `?tools=read_file,git.diff,...` (model or wire names); without the parameter use `default`.

    An empty value (`?tools=`) means the client runs no tools at all.
    """
    if raw is None:
        return Capabilities(list(default) if default is not None else None)
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if resolve(name) is None]
    if unknown:
        known = ", ".join(tool.name for tool in TOOLS)
        raise CapabilityError(f"unknown tools in ?tools=: {', '.join(unknown)}; known tools: {known}")
    resolved: list[str] = []
    for name in names:
        spec = resolve(name)
        if spec is not None and spec.name not in resolved:
            resolved.append(spec.name)
    return Capabilities(resolved)

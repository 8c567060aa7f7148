"""The tools offered to the model in a turn: the shared catalog filtered by what the client executes (tools that run
on the agent, such as `update_plan`, need no client) and by what the deployment lets the model see (`model_tools`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from codelab_common.protocol.tools import TOOLS, ToolSpec, resolve


@dataclass(frozen=True, slots=True)
class Toolset:
    """Offered tools in catalog order, whatever order the client listed them in, so the prompt stays byte-stable."""

    specs: tuple[ToolSpec, ...]
    names: tuple[str, ...] = field(init=False)
    definitions: list[dict[str, Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(spec.name for spec in self.specs))
        object.__setattr__(self, "definitions", [spec.openai_definition() for spec in self.specs])

    def lookup(self, name: str) -> ToolSpec | None:
        """The offered tool the model called, by its model or wire name; None if it is not offered."""
        spec = resolve(name)
        return spec if spec is not None and spec.name in self.names else None


class ToolCatalog:
    def __init__(self, model_tools: Iterable[str] | None = None) -> None:
        self._model_tools = None if model_tools is None else _names(model_tools)
        self._select = lru_cache(maxsize=64)(self._build)

    def select(self, names: Iterable[str] | None) -> Toolset:
        """The tools named (model or wire names; unknown names are ignored); None offers all."""
        if names is None:
            return self._select(None)
        return self._select(_names(names))

    def _build(self, wanted: frozenset[str] | None) -> Toolset:
        allowed = self._model_tools
        offered = [spec for spec in TOOLS if spec.offered_to_model and (allowed is None or spec.name in allowed)]
        clients = [spec for spec in offered if spec.runs_on == "client" and (wanted is None or spec.name in wanted)]
        # The agent's own tools (the plan) go with client tools: with none, there is no work to plan.
        return Toolset(tuple(spec for spec in offered if spec in clients or (clients and spec.runs_on == "agent")))


def _names(names: Iterable[str]) -> frozenset[str]:
    """Model-side names of the tools named by model or wire name; unknown names are ignored."""
    return frozenset(spec.name for spec in map(resolve, names) if spec is not None)

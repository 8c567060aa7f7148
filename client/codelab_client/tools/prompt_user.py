"""`prompt_user {question}` → `{answer}`: the human answers; without one (e.g. `codelab run`) it is an error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError


async def prompt_user(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    question = args.string(arguments, "question")
    if ctx.ask_user is None:
        raise ToolError("no_user", "no user to ask")
    return {"answer": await ctx.ask_user(question)}

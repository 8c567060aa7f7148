"""`run_command {command, timeout?, cwd?}` → `{command, exit_code, stdout, stderr, duration_ms, timed_out}`.

The command runs through the shell with the project root as working folder (or `cwd`, which must stay inside
it). `timeout` is in seconds (default 60, at most 300). Each stream keeps its first 64 KiB; when more was
produced, `stdout_truncated` / `stderr_truncated` is set. Nothing confines what a shell command does: that is why
the agent marks it `requires_approval`, and the client asks before running it. What it confines is time: on Linux
nothing the command started is left running when the call returns, detached or not (see `process` and `reaper`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError
from codelab_client.tools.process import run_process


async def run_command(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    command = args.string(arguments, "command")
    if not command.strip():
        raise ToolError("invalid_arguments", "argument 'command' must not be blank")
    requested = args.integer(arguments, "timeout", minimum=1)
    timeout = min(float(requested), ctx.limits.command_timeout_max_s) if requested else ctx.limits.command_timeout_s
    cwd_arg = arguments.get("cwd")
    if cwd_arg is not None and not isinstance(cwd_arg, str):
        raise ToolError("invalid_arguments", "argument 'cwd' must be a string")
    cwd = ctx.workspace.resolve(cwd_arg) if cwd_arg else ctx.workspace.root
    if not cwd.is_dir():
        raise ToolError("directory_not_found", f"Directory not found: {cwd_arg}")

    try:
        done = await run_process(command, cwd=cwd, timeout=timeout, max_output=ctx.limits.output_bytes, shell=True)
    except OSError as exc:
        raise ToolError("command_failed", f"could not start the command: {exc.strerror or exc}") from None
    result: dict[str, Any] = {
        "command": command,
        "exit_code": done.exit_code,
        "stdout": done.stdout.text(),
        "stderr": done.stderr.text(),
        "duration_ms": done.duration_ms,
        "timed_out": done.timed_out,
    }
    if done.stdout.truncated:
        result["stdout_truncated"] = True
    if done.stderr.truncated:
        result["stderr_truncated"] = True
    return result

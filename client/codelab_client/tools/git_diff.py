"""`git_diff {path?}` (wire name `git.diff`) → `{success, diff, untracked, truncated}`.

The diff holds every uncommitted change (staged and not) against HEAD, with paths relative to the project root
even when the project is a folder inside a larger repository. New files git does not track yet are listed in
`untracked`, since a plain diff would not show them.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError
from codelab_client.tools.process import ProcessResult, run_process

GIT_TIMEOUT_S = 30.0
MAX_UNTRACKED = 200
_DIFF = ["-c", "core.quotepath=off", "diff", "--no-color", "--no-ext-diff", "--relative"]


async def git_diff(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    path = args.string(arguments, "path", default=".") or "."
    target = ctx.workspace.resolve(path)
    scope = ["--", ctx.workspace.relative(target)]
    git = shutil.which("git")
    if git is None:
        raise ToolError("git_unavailable", "git is not installed")

    async def run(*argv: str) -> ProcessResult:
        return await run_process(
            [git, *argv], cwd=ctx.workspace.root, timeout=GIT_TIMEOUT_S, max_output=4 * ctx.limits.output_bytes
        )

    inside = await run("rev-parse", "--is-inside-work-tree")
    if inside.exit_code != 0 or inside.stdout.text().strip() != "true":
        raise ToolError("not_a_git_repo", "the project is not a git repository")
    has_head = (await run("rev-parse", "--verify", "--quiet", "HEAD")).exit_code == 0
    if has_head:
        diffs = [await run(*_DIFF, "HEAD", *scope)]
    else:
        diffs = [await run(*_DIFF, "--cached", *scope), await run(*_DIFF, *scope)]
    for done in diffs:
        if done.exit_code != 0:
            raise ToolError("git_failed", done.stderr.text().strip()[:500] or "git diff failed")
    untracked = await run("ls-files", "--others", "--exclude-standard", *scope)
    names = untracked.stdout.text().splitlines() if untracked.exit_code == 0 else []
    return {
        "success": True,
        "diff": "".join(done.stdout.text() for done in diffs),
        "untracked": names[:MAX_UNTRACKED],
        "truncated": any(done.stdout.truncated for done in diffs) or len(names) > MAX_UNTRACKED,
    }

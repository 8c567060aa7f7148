"""`git_diff {path?}` (wire name `git.diff`) → `{success, diff, untracked, truncated}`.

The diff holds every uncommitted change (staged and not) against HEAD, with paths relative to the project root
even when the project is a folder inside a larger repository. New files git does not track yet are listed in
`untracked`, since a plain diff would not show them.

The policy lets `git_diff` run without asking, so it must not run anything the repository's own configuration
names: `core.fsmonitor` is turned off, textconv and external diff drivers are not used, and the clean/smudge/process
commands of every filter driver the configuration defines (read with `git config`, which runs nothing) are blanked
for each call. Only git itself runs.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError
from codelab_client.tools.process import ProcessResult, run_process

GIT_TIMEOUT_S = 30.0
MAX_UNTRACKED = 200
_DIFF = ["-c", "core.quotepath=off", "diff", "--no-color", "--no-ext-diff", "--no-textconv", "--relative"]
_SAFE = ["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "diff.external="]
_FILTER_KEY = re.compile(r"^filter\.(.+)\.(?:clean|smudge|process|required)$")


async def git_diff(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    path = args.string(arguments, "path", default=".") or "."
    target = ctx.workspace.resolve(path)
    scope = ["--", ctx.workspace.relative(target)]
    git = shutil.which("git")
    if git is None:
        raise ToolError("git_unavailable", "git is not installed")

    safe = list(_SAFE)

    async def run(*argv: str) -> ProcessResult:
        return await run_process(
            [git, *safe, *argv], cwd=ctx.workspace.root, timeout=GIT_TIMEOUT_S, max_output=4 * ctx.limits.output_bytes
        )

    configured = await run("config", "--name-only", "--get-regexp", r"^filter\.")
    for driver in sorted({m.group(1) for m in map(_FILTER_KEY.match, configured.stdout.text().splitlines()) if m}):
        safe += ["-c", f"filter.{driver}.clean=", "-c", f"filter.{driver}.smudge=", "-c", f"filter.{driver}.process="]
        safe += ["-c", f"filter.{driver}.required=false"]
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

"""`apply_patch_review {patch}` → `{success, hunks: [{id, status, text?, reason?}], files_changed, created, deleted}`.

agent-runtime sends it instead of an `apply_patch` the user must approve, to a client that can show the patch hunk
by hunk. The user accepts, rejects (with a reason) or edits each hunk; the kept hunks are then applied as one patch,
all or nothing (`apply_patch`), and the result says what became of every hunk, so the model goes on from the
changes that were made.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.apply_patch import apply_patch
from codelab_client.tools.context import HunkDecision, HunkView, ToolContext
from codelab_client.tools.errors import ToolError
from codelab_common.patches import FilePatch, PatchError, hunk_text, parse_hunk, parse_patch, render_patch


async def apply_patch_review(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    text = args.string(arguments, "patch")
    if ctx.review is None:
        raise ToolError("no_reviewer", "no user to review the patch")
    if len(text) > ctx.limits.patch_bytes:
        raise ToolError("patch_too_large", f"the patch is larger than {ctx.limits.patch_bytes} bytes")
    try:
        files = parse_patch(text)
    except PatchError as exc:
        raise ToolError("invalid_patch", str(exc)) from None
    ids = _hunk_ids(files)
    views = [
        HunkView(hunk_id, file.path, hunk_text(hunk))
        for file, file_ids in zip(files, ids, strict=True)
        for hunk, hunk_id in zip(file.hunks, file_ids, strict=True)
    ]
    decided = {decision.id: decision for decision in await ctx.review(views)}
    kept: list[FilePatch] = []
    report: list[dict[str, Any]] = []
    for file, file_ids in zip(files, ids, strict=True):
        hunks = []
        for hunk, hunk_id in zip(file.hunks, file_ids, strict=True):
            decision = decided.get(hunk_id) or HunkDecision(hunk_id, "rejected", reason="not reviewed")
            entry: dict[str, Any] = {"id": hunk_id, "status": decision.status}
            if decision.status == "edited" and decision.text is not None:
                try:
                    hunks.append(parse_hunk(decision.text, hunk.old_start))
                except PatchError as exc:
                    raise ToolError("invalid_patch", f"the edited hunk {hunk_id}: {exc}") from None
                entry["text"] = decision.text
            elif decision.status == "accepted":
                hunks.append(hunk)
            elif decision.reason:
                entry["reason"] = decision.reason
            report.append(entry)
        kept.append(FilePatch(file.old_path, file.new_path, hunks))
    applied: dict[str, Any] = {"files_changed": [], "created": [], "deleted": []}
    patch = render_patch(kept)
    if patch:
        applied = await asyncio.to_thread(apply_patch, ctx, {"patch": patch})
        applied.pop("success", None)
    return {"success": True, "hunks": report, **applied}


def _hunk_ids(files: list[FilePatch]) -> list[list[str]]:
    """`path#n` for every hunk, n counting that path's hunks from 1 across the whole patch (a path may have more
    than one section), so no two hunks share an id."""
    seen: Counter[str] = Counter()
    ids = []
    for file in files:
        file_ids = []
        for _ in file.hunks:
            seen[file.path] += 1
            file_ids.append(f"{file.path}#{seen[file.path]}")
        ids.append(file_ids)
    return ids

"""`apply_patch {patch}` → `{success, files_changed, created, deleted}`.

Every file of the patch is computed in memory first and written only when all hunks of all files apply, so a
rejected patch leaves the project untouched. Paths are confined to the workspace like every other tool's, and
files are read, written and deleted only through descriptors checked to be inside it (`Workspace.open_file`,
`files.atomic_write`, `files.remove_file`): special files and files with several names are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError
from codelab_client.tools.files import atomic_write, looks_binary, remove_file
from codelab_common.patches import PatchError, apply_file_patch, parse_patch

_ENCODING = ("utf-8", "surrogateescape")
"""Round-trips any bytes, so a file in another encoding comes back unchanged outside the patched lines."""


def apply_patch(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    text = args.string(arguments, "patch")
    if len(text) > ctx.limits.patch_bytes:
        raise ToolError("patch_too_large", f"the patch is larger than {ctx.limits.patch_bytes} bytes")
    try:
        file_patches = parse_patch(text)
    except PatchError as exc:
        raise ToolError("invalid_patch", str(exc)) from None

    state: dict[Path, str | None] = {}
    """Planned content of every touched file (None: to delete), so later sections see earlier ones' results."""
    order: list[Path] = []
    created: list[str] = []
    deleted: list[str] = []

    def current(path: Path, name: str) -> str | None:
        if path in state:
            return state[path]
        try:
            with ctx.workspace.open_file(path, name) as fh:
                data = fh.read()
        except FileNotFoundError:
            return None
        if looks_binary(data[: ctx.limits.binary_probe_bytes]):
            raise ToolError("binary_file", f"{name} is a binary file")
        return data.decode(*_ENCODING)

    def plan(path: Path, content: str | None) -> None:
        if path not in state:
            order.append(path)
        state[path] = content

    for fp in file_patches:
        source = ctx.workspace.resolve(fp.old_path) if fp.old_path else None
        target = ctx.workspace.resolve(fp.new_path) if fp.new_path else None
        original = current(source, fp.old_path or "") if source else None
        if source is not None and original is None:
            raise ToolError("file_not_found", f"File not found: {fp.old_path}")
        if source is None and target is not None and current(target, fp.new_path or "") is not None:
            raise ToolError("patch_rejected", f"{fp.new_path} already exists; the patch creates it")
        try:
            result = apply_file_patch(original, fp)
        except PatchError as exc:
            raise ToolError("patch_rejected", str(exc)) from None
        if target is None:
            if result.strip():
                raise ToolError("patch_rejected", f"{fp.old_path}: the patch deletes the file but lines would remain")
            assert source is not None
            plan(source, None)
            deleted.append(ctx.workspace.relative(source))
            continue
        if source is not None and source != target:
            plan(source, None)
            deleted.append(ctx.workspace.relative(source))
        if source is None:
            created.append(ctx.workspace.relative(target))
        plan(target, result)

    for path in order:
        content = state[path]
        shown = ctx.workspace.relative(path)
        if content is None:
            remove_file(ctx.workspace, path, shown)
            continue
        ctx.workspace.make_folders(path.parent, shown)
        atomic_write(ctx.workspace, path, content.encode(*_ENCODING), shown)
    return {
        "success": True,
        "files_changed": [ctx.workspace.relative(path) for path in order],
        "created": created,
        "deleted": deleted,
    }

"""apply_patch_review: the user decides hunk by hunk; the kept hunks apply as one patch, and the result says what
became of each, for the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codelab_client.approvals import approve_all
from codelab_client.session import AgentSession
from codelab_client.tools import ToolExecutor
from codelab_client.tools.context import HunkDecision, HunkView

SOURCE = "".join(f"line {i}\n" for i in range(1, 31))
PATCH = (
    "--- a/f.txt\n+++ b/f.txt\n"
    "@@ -2,1 +2,1 @@\n-line 2\n+TWO\n"
    "@@ -12,1 +12,1 @@\n-line 12\n+TWELVE\n"
    "@@ -22,1 +22,1 @@\n-line 22\n+TWENTY-TWO\n"
)


def reviewer(decide: dict[str, HunkDecision], seen: list[HunkView]) -> Any:
    async def review(hunks: list[HunkView]) -> list[HunkDecision]:
        seen.extend(hunks)
        return [decide[hunk.id] for hunk in hunks]

    return review


async def test_accepted_and_edited_hunks_apply_and_rejected_ones_do_not(workspace: Path) -> None:
    (workspace / "f.txt").write_text(SOURCE)
    seen: list[HunkView] = []
    decide = {
        "f.txt#1": HunkDecision("f.txt#1", "accepted"),
        "f.txt#2": HunkDecision("f.txt#2", "rejected", reason="keep line 12"),
        "f.txt#3": HunkDecision("f.txt#3", "edited", text="-line 22\n+twenty-two\n"),
    }
    executor = ToolExecutor(workspace, review=reviewer(decide, seen))
    assert "apply_patch_review" in executor.supported_tools

    outcome = await executor.execute("apply_patch_review", {"patch": PATCH})

    assert [hunk.text for hunk in seen] == ["-line 2\n+TWO\n", "-line 12\n+TWELVE\n", "-line 22\n+TWENTY-TWO\n"]
    assert outcome.result == {
        "success": True,
        "hunks": [
            {"id": "f.txt#1", "status": "accepted"},
            {"id": "f.txt#2", "status": "rejected", "reason": "keep line 12"},
            {"id": "f.txt#3", "status": "edited", "text": "-line 22\n+twenty-two\n"},
        ],
        "files_changed": ["f.txt"],
        "created": [],
        "deleted": [],
    }
    expected = SOURCE.replace("line 2\n", "TWO\n", 1).replace("line 22\n", "twenty-two\n")
    assert (workspace / "f.txt").read_text() == expected


async def test_an_edit_that_no_longer_matches_writes_nothing(workspace: Path) -> None:
    (workspace / "f.txt").write_text(SOURCE)
    decide = {
        "f.txt#1": HunkDecision("f.txt#1", "accepted"),
        "f.txt#2": HunkDecision("f.txt#2", "edited", text="-line twelve\n+12\n"),
        "f.txt#3": HunkDecision("f.txt#3", "accepted"),
    }
    outcome = await ToolExecutor(workspace, review=reviewer(decide, [])).execute("apply_patch_review", {"patch": PATCH})
    assert outcome.error is not None and "[patch_rejected] hunk 2 of 3 for f.txt" in outcome.error
    assert (workspace / "f.txt").read_text() == SOURCE


async def test_without_someone_to_review_the_client_does_not_offer_it(workspace: Path) -> None:
    assert "apply_patch_review" not in ToolExecutor(workspace).supported_tools


async def test_a_patch_goes_through_review_end_to_end(gateway: Any, workspace: Path) -> None:
    (workspace / "f.txt").write_text(SOURCE)
    gateway.upstream.reply_tool_calls(("apply_patch", {"patch": PATCH}))
    gateway.upstream.reply_text("Applied what you accepted.")
    decide = {
        "f.txt#1": HunkDecision("f.txt#1", "rejected", reason="no"),
        "f.txt#2": HunkDecision("f.txt#2", "accepted"),
        "f.txt#3": HunkDecision("f.txt#3", "rejected"),
    }
    executor = ToolExecutor(workspace, review=reviewer(decide, []))
    async with AgentSession(gateway.ws_url, executor, approve_all) as session:
        result = await session.run_turn("apply it", timeout=10)
    assert result.ok and result.text == "Applied what you accepted."
    assert [f["tool_name"] for f in result.tool_calls] == ["apply_patch_review"]
    [recorded] = [f for f in result.frames if f["type"] == "approval_recorded"]
    assert (recorded["decision"], recorded["source"]) == ("edit", "review")
    assert (workspace / "f.txt").read_text() == SOURCE.replace("line 12\n", "TWELVE\n")


async def test_two_sections_for_one_file_get_their_own_hunk_ids(workspace: Path) -> None:
    (workspace / "f.txt").write_text(SOURCE)
    section = "--- a/f.txt\n+++ b/f.txt\n@@ -{0},1 +{0},1 @@\n-line {0}\n+{1}\n"
    twice = section.format(2, "TWO") + section.format(12, "TWELVE")
    seen: list[HunkView] = []
    decide = {"f.txt#1": HunkDecision("f.txt#1", "rejected"), "f.txt#2": HunkDecision("f.txt#2", "accepted")}
    outcome = await ToolExecutor(workspace, review=reviewer(decide, seen)).execute(
        "apply_patch_review", {"patch": twice}
    )
    assert [hunk.id for hunk in seen] == ["f.txt#1", "f.txt#2"]
    assert outcome.ok, outcome.error
    assert (workspace / "f.txt").read_text() == SOURCE.replace("line 12\n", "TWELVE\n"), (
        "the rejected hunk is not written"
    )

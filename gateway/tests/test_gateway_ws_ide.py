"""The IDE's `/api/v1/ws/` path: whole messages, no ACKs, IDE tools only, and the IDE's real frames accepted."""

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from codelab_common.protocol import IDE_TOOLS
from tests.fixtures.gateway import RunningGateway

IDE_FRAMES: dict[str, dict[str, Any]] = orjson.loads(
    (Path(__file__).resolve().parents[2] / "tests" / "data" / "ide-frames.json").read_bytes()
)


def _ide_frame(name: str, **changes: Any) -> dict[str, Any]:
    frame = dict(IDE_FRAMES[name])
    frame.update(changes)
    return frame


async def test_plain_answer_is_one_whole_message_and_no_ack(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("The file prints a greeting and exits.")
    async with gateway.connect("ide-plain", ide=True) as client:
        await client.send(IDE_FRAMES["user_message"])
        first = await client.recv()
        await client.silent(0.4)
    assert first["type"] == "assistant_message"
    assert first["is_final"] is True
    assert first["content"] == first["token"] == "The file prints a greeting and exits."
    assert first["message_id"]


async def test_text_before_a_tool_call_arrives_whole_before_it(gateway: RunningGateway) -> None:
    gateway.upstream.reply_tool_calls(("read_file", {"path": "main.py"}), text="Let me open main.py first.")
    gateway.upstream.reply_text("It prints hi.")
    async with gateway.connect("ide-tools", ide=True) as client:
        await client.send(IDE_FRAMES["user_message"])
        message, call = await client.recv(), await client.recv()
        assert message == {
            "type": "assistant_message",
            "message_id": message["message_id"],
            "content": "Let me open main.py first.",
            "token": "Let me open main.py first.",
            "is_final": True,
        }
        assert call["type"] == "tool_call" and call["tool_name"] == "read_file"
        assert call["arguments"] == {"path": "main.py"} and call["requires_approval"] is False
        assert call["is_final"] is True, "the seed marks every tool_call final"
        await client.send(_ide_frame("tool_result_ok_read_file", call_id=call["call_id"]))
        answer = await client.recv()
        await client.silent(0.3)
    assert (answer["content"], answer["is_final"]) == ("It prints hi.", True)
    offered = sorted(tool["function"]["name"] for tool in gateway.upstream.requests[-1]["tools"])
    assert offered == sorted([*IDE_TOOLS, "update_plan"]), "the IDE's tools, and the plan agent-runtime keeps"


async def test_the_ides_real_tool_results_all_reach_the_model(gateway: RunningGateway) -> None:
    """Every tool_result shape the IDE sends (15 keys, nulls, object results, errors, a rejection) is accepted."""
    names = [name for name, frame in IDE_FRAMES.items() if isinstance(frame, dict) and frame["type"] == "tool_result"]
    gateway.upstream.reply_tool_calls(*[("list_files", {"path": f"dir{n}"}) for n in range(len(names))])
    gateway.upstream.reply_text("All results read.")
    async with gateway.connect("ide-frames", ide=True) as client:
        await client.send(IDE_FRAMES["switch_agent"])
        await client.send(IDE_FRAMES["user_message"])
        calls = [await client.recv() for _ in names]
        assert [c["type"] for c in calls] == ["tool_call"] * len(names)
        for name, call in zip(names, calls, strict=True):
            await client.send(_ide_frame(name, call_id=call["call_id"]))
        answer = await client.recv()
        await client.silent(0.3)
    assert (answer["type"], answer["content"]) == ("assistant_message", "All results read.")
    tool_messages = [m["content"] for m in gateway.upstream.requests[-1]["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == len(names)
    expected = ["lines_read", "bytes_written", "lib/main.dart", "On branch main", "file_not_found"]
    expected += ['"rejected_by_user":true,"note":"Do not make this call again', "Unsupported tool: apply_patch"]
    for content, snippet in zip(tool_messages, expected, strict=True):
        assert snippet in content


async def test_the_ides_rejection_becomes_a_typed_rejection_the_model_is_told(
    gateway: RunningGateway, agent_runtime: Any
) -> None:
    gateway.upstream.reply_tool_calls(("write_file", {"path": "lib/main.dart", "content": "void main() {}\n"}))
    gateway.upstream.reply_text("Understood, lib/main.dart stays as it is.")
    async with gateway.connect("ide-reject", ide=True) as client:
        await client.send(IDE_FRAMES["user_message"])
        call = await client.recv()
        assert call["type"] == "tool_call" and call["requires_approval"] is True
        rejection = "Операция отклонена: не трогай main.dart"
        await client.send(_ide_frame("tool_result_rejected_by_user", call_id=call["call_id"], error=rejection))
        answer = await client.recv()
        await client.silent(0.3)
    assert (answer["type"], answer["content"]) == ("assistant_message", "Understood, lib/main.dart stays as it is.")
    [told] = [m["content"] for m in gateway.upstream.requests[-1]["messages"] if m["role"] == "tool"]
    assert orjson.loads(told)["rejected_by_user"] is True
    assert orjson.loads(told)["user_feedback"] == "не трогай main.dart"
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{agent_runtime.url}/agent/sessions/ide-reject/approvals",
            headers={"X-Internal-Auth": agent_runtime.api_key},
        ) as response,
    ):
        [decision] = (await response.json())["decisions"]
    assert (decision["decision"], decision["source"]) == ("reject", "ide_rejection")


async def test_the_ides_rejection_wording_means_nothing_on_the_stream_path(gateway: RunningGateway) -> None:
    gateway.upstream.reply_tool_calls(("read_file", {"path": "a.py"}))
    gateway.upstream.reply_text("ok")
    async with gateway.connect("stream-wording") as client:
        await client.say("read")
        frames = await client.recv_until(lambda f: f["type"] == "tool_call")
        error = "Операция отклонена: read_file"
        await client.send({"type": "tool_result", "call_id": frames[-1]["call_id"], "error": error})
        await client.turn()
    [told] = [m["content"] for m in gateway.upstream.requests[-1]["messages"] if m["role"] == "tool"]
    assert orjson.loads(told) == {"error": "Операция отклонена: read_file"}


async def test_a_plan_reaches_the_ide_as_one_checklist_message_and_progress_stays_out(
    gateway: RunningGateway,
) -> None:
    steps = [
        {"id": "1", "text": "Read main.dart", "status": "running"},
        {"id": "2", "text": "Fix the bug", "status": "pending"},
    ]
    done = [{**steps[0], "status": "done", "result": "found it"}, {**steps[1], "status": "running"}]
    gateway.upstream.reply_tool_calls(("update_plan", {"steps": steps}), ("read_file", {"path": "lib/main.dart"}))
    gateway.upstream.reply_tool_calls(("update_plan", {"steps": done}))
    gateway.upstream.reply_text("Fixed.")
    async with gateway.connect("ide-plan", ide=True) as client:
        await client.send(IDE_FRAMES["user_message"])
        plan, call = await client.recv(), await client.recv()
        await client.send(_ide_frame("tool_result_ok_read_file", call_id=call["call_id"]))
        answer = await client.recv()
        await client.silent(0.3)
    assert plan["type"] == "assistant_message" and plan["is_final"] is True
    assert plan["content"] == "Plan:\n[~] Read main.dart\n[ ] Fix the bug"
    assert call["type"] == "tool_call" and (answer["type"], answer["content"]) == ("assistant_message", "Fixed.")


async def test_ide_path_sends_only_frame_types_the_ide_knows_on_errors(gateway: RunningGateway) -> None:
    gateway.upstream.reply_error(500, "the model crashed")
    async with gateway.connect("ide-error", ide=True) as client:
        await client.send(IDE_FRAMES["user_message"])
        error = await client.recv()
        await client.send({"type": "user_message"})
        invalid = await client.recv()
        await client.silent(0.3)
    assert error["type"] == "error" and error["code"] == "LLM_ERROR" and error["content"]
    assert invalid["type"] == "error" and invalid["code"] == "INVALID_FORMAT"

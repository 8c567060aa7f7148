"""Runs the agent on the evaluation tasks and prints what it got right and how it went about it.

    uv run python bench/agent_eval/run.py [--model qwen2.5-coder-0.5b] [--repeat N] [--only a,b] [--kind fix]

Without `--gateway` it starts the whole system as `codelab up` does (the local model, llm-proxy, agent-runtime,
gateway) on free ports with a temporary data folder, and stops it at the end. Each task gets a fresh git-initialised
workspace and one turn through the headless client (`AgentSession` with `approve_all`, as `codelab run --approve`),
then the task's check. Per task it records the result, the time, the model calls and invalid calls (from
agent-runtime's session history), the tool calls the client ran, the edits that failed to apply, error frames,
and tool calls or results the model wrote into its answer as text. Exit status: 0 after a complete run, 2 when
the system could not be started, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.agent_eval.tasks import KINDS, TASKS, Task, prepare_workspace
from codelab_client.approvals import approve_all
from codelab_client.events import SessionListener
from codelab_client.launcher import LOCAL_MODELS, Ports, UpOptions, plan_services, resolve_keys
from codelab_client.launcher.supervisor import StartupError, Supervisor
from codelab_client.session import AgentSession, MessageRefused, SessionClosed, TurnResult
from codelab_client.tools import ToolExecutor
from codelab_common.protocol import TOOLS, ToolCall

EDIT_TOOLS = frozenset({"write_file", "edit_file", "apply_patch"})
START_ATTEMPTS = 3
"""A free port can be taken between choosing it and the service's bind; then start again on other ports."""
HISTORY_TIMEOUT_S = 10.0


class SetupError(Exception):
    """The system could not be started or reached; nothing was measured."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    ws_url: str
    agent_url: str | None
    agent_key: str | None


# Detecting tool calls and results the model wrote as text


_TOOL_NAMES = "|".join(sorted({re.escape(tool.name) for tool in TOOLS} | {"edit_file", "git\\.diff"}))
_QUOTE = "[\"']"

FABRICATED_CALL_PATTERNS = (
    re.compile(r"<\s*(?:tool_call|function_call)\b", re.IGNORECASE),
    re.compile(
        rf"{_QUOTE}name{_QUOTE}\s*:\s*{_QUOTE}[\w.\-]+{_QUOTE}\s*,\s*{_QUOTE}(?:arguments|parameters){_QUOTE}\s*:"
    ),
    re.compile(rf"{_QUOTE}(?:arguments|parameters){_QUOTE}\s*:\s*\{{[^{{}}]*\}}\s*,\s*{_QUOTE}name{_QUOTE}\s*:"),
)
FABRICATED_RESULT_PATTERNS = (
    re.compile(r"<\s*(?:tool_response|tool_result)\b", re.IGNORECASE),
    re.compile(rf"\b(?:{_TOOL_NAMES})\b[^\n]{{0,400}}\breturned\s*:", re.IGNORECASE),
    re.compile(rf"\{{[^{{}}]*{_QUOTE}(?:success|exit_code|bytes_written|lines_read){_QUOTE}\s*:"),
)


def fabricated_records(text: str) -> int:
    """How many tool calls or tool results the answer text contains written out instead of made.

    A small model sometimes "calls" a tool by writing the call into its answer (`<tool_call>`, a JSON object
    with "name" and "arguments"/"parameters") or invents the result (`<tool_response>`, a line such as
    `read_file {...} returned:`, a JSON object with result keys like "success", "exit_code", "bytes_written",
    "lines_read"). One record often matches several patterns (a tag around a JSON call), so each family counts
    as many records as its most frequent pattern: calls plus results.
    """
    calls = max(len(pattern.findall(text)) for pattern in FABRICATED_CALL_PATTERNS)
    results = max(len(pattern.findall(text)) for pattern in FABRICATED_RESULT_PATTERNS)
    return calls + results


# One task


@dataclass
class Record:
    task: str
    kind: str
    attempt: int
    passed: bool
    reason: str | None
    seconds: float
    status: str
    model_calls: int | None
    tool_calls: int
    tools: dict[str, int]
    invalid_calls: int | None
    repeated_calls: int | None
    failed_edits: int
    fabricated: int
    errors: list[str]
    answer: str
    session_id: str
    failed_edit_errors: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] | None = None
    """The turn's OpenAI-format messages after its user message, from agent-runtime (None when unavailable)."""


class EditWatcher(SessionListener):
    """Collects the errors of edit tools (write_file, edit_file, apply_patch) as the client reports them."""

    def __init__(self) -> None:
        self.failed_edits: list[str] = []

    def on_tool_result(self, call: ToolCall, result: dict[str, Any] | None, error: str | None) -> None:
        if error is not None and call.tool_name in EDIT_TOOLS:
            self.failed_edits.append(f"{call.tool_name}: {error[:200]}")


async def run_task(task: Task, attempt: int, workspace: Path, endpoint: Endpoint, timeout: float) -> Record:
    prepare_workspace(task, workspace)
    watcher = EditWatcher()
    started = time.monotonic()
    async with AgentSession(endpoint.ws_url, ToolExecutor(workspace), approve_all, listener=watcher) as session:
        result = await session.run_turn(task.prompt, timeout=timeout)
    seconds = time.monotonic() - started
    agent_session = await asyncio.to_thread(fetch_session, endpoint, session.session_id)
    counts = count_calls(agent_session, result)
    reason = await asyncio.to_thread(safe_check, task, workspace, result.text)
    return Record(
        task=task.name,
        kind=task.kind,
        attempt=attempt,
        passed=reason is None,
        reason=reason,
        seconds=round(seconds, 2),
        status=str(result.status),
        model_calls=counts.model_calls,
        tool_calls=len(result.tool_calls),
        tools=dict(Counter(str(frame.get("tool_name")) for frame in result.tool_calls)),
        invalid_calls=counts.invalid_calls,
        repeated_calls=counts.repeated_calls,
        failed_edits=len(watcher.failed_edits),
        fabricated=fabricated_records(result.text),
        errors=[str(frame.get("code")) for frame in result.errors],
        answer=result.text,
        session_id=session.session_id,
        failed_edit_errors=watcher.failed_edits,
        messages=turn_messages(agent_session),
    )


def safe_check(task: Task, workspace: Path, answer: str) -> str | None:
    try:
        return task.check(workspace, answer)
    except Exception as exc:
        return f"the check raised {type(exc).__name__}: {exc}"


def fetch_session(endpoint: Endpoint, session_id: str) -> dict[str, Any] | None:
    """agent-runtime's view of the session (`GET /agent/sessions/{id}`), or None when it cannot be had."""
    if not endpoint.agent_url or not endpoint.agent_key:
        return None
    url = f"{endpoint.agent_url.rstrip('/')}/agent/sessions/{quote(session_id, safe='')}"
    request = urllib.request.Request(url, headers={"X-Internal-Auth": endpoint.agent_key})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=HISTORY_TIMEOUT_S) as response:
            body = json.load(response)
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    return body


def turn_messages(session: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The OpenAI-format messages after the turn's user message (each task's session holds just that turn)."""
    if session is None:
        return None
    messages: list[dict[str, Any]] = [m for m in session["messages"] if isinstance(m, dict)]
    first_user = next((i for i, message in enumerate(messages) if message.get("role") == "user"), -1)
    return messages[first_user + 1 :]


@dataclass(frozen=True, slots=True)
class CallCounts:
    model_calls: int | None = None
    invalid_calls: int | None = None
    repeated_calls: int | None = None


def count_calls(session: dict[str, Any] | None, result: TurnResult) -> CallCounts:
    """Model calls, and the calls agent-runtime answered itself instead of forwarding them to the client.

    Model calls are the session's `step_count` (one per model reply this turn); without it, the turn's assistant
    messages. A tool message whose call id is not among the client's tool_call frames was answered by
    agent-runtime: an invalid call when it is a JSON `{"error": ...}` (unknown tool, bad arguments), otherwise a
    repeat of an earlier call answered from its earlier result.
    """
    turn = turn_messages(session)
    if session is None or turn is None:
        return CallCounts()
    steps = session.get("step_count")
    model_calls = steps if isinstance(steps, int) else sum(1 for m in turn if m.get("role") == "assistant")
    forwarded = {frame.get("call_id") for frame in result.tool_calls}
    answered_here = [m for m in turn if m.get("role") == "tool" and m.get("tool_call_id") not in forwarded]
    invalid = sum(1 for message in answered_here if is_error_content(message.get("content")))
    return CallCounts(model_calls, invalid, len(answered_here) - invalid)


def is_error_content(content: object) -> bool:
    try:
        body = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        return False
    return isinstance(body, dict) and "error" in body


# The system under test


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that nothing listens on now (all held open while choosing, so none repeats)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def say(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def local_system(model: str, models_file: Path | None, data_dir: Path, start_timeout: float) -> Iterator[Endpoint]:
    """The whole system as `codelab up` starts it, on free ports; stopped when the block ends, however it ends."""
    for attempt in range(1, START_ATTEMPTS + 1):
        gateway, agent_runtime, llm_proxy, model_port = free_ports(4)
        ports = Ports(gateway=gateway, agent_runtime=agent_runtime, llm_proxy=llm_proxy, model=model_port)
        options = UpOptions(
            model=model,
            start_model=model in LOCAL_MODELS,
            data_dir=data_dir / f"system-{attempt}",
            ports=ports,
            models_file=models_file,
        )
        specs = plan_services(options, resolve_keys(options.data_dir).values)
        supervisor = Supervisor(specs, options.data_dir / "logs", report=say, host=options.host)
        try:
            supervisor.check_ports()
            say(f"starting {', '.join(spec.name for spec in specs)} (logs in {options.data_dir / 'logs'})")
            supervisor.start_all(start_timeout)
        except StartupError as exc:
            stop(supervisor)
            if attempt < START_ATTEMPTS and "in use" in str(exc).lower():
                say(f"a port was taken, starting again: {exc}")
                continue
            raise SetupError(str(exc)) from exc
        except BaseException:
            stop(supervisor)
            raise
        agent_key = next(spec.env["AGENT_RUNTIME__INTERNAL_API_KEY"] for spec in specs if spec.name == "agent-runtime")
        try:
            yield Endpoint(
                f"ws://{options.host}:{ports.gateway}", f"http://{options.host}:{ports.agent_runtime}", agent_key
            )
        finally:
            stop(supervisor)
        return


def stop(supervisor: Supervisor) -> None:
    """Stop every service; a second Ctrl-C or SIGTERM meanwhile does not cut the stop short."""
    if not supervisor.children:
        return
    say("stopping services...")
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        supervisor.stop_all()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("all services stopped")


def system(args: argparse.Namespace, data_dir: Path) -> contextlib.AbstractContextManager[Endpoint]:
    if args.gateway:
        return contextlib.nullcontext(Endpoint(args.gateway, args.agent_url, args.agent_key))
    if args.model not in LOCAL_MODELS and args.models_file is None:
        raise SetupError(f"{args.model} is not a local model ({', '.join(LOCAL_MODELS)}); pass --models-file")
    return local_system(args.model, args.models_file, data_dir, args.start_timeout)


# Running and reporting


async def run_all(
    tasks: list[Task], repeat: int, endpoint: Endpoint, root: Path, timeout: float, records: list[Record]
) -> None:
    """Every task `repeat` times, one after another; each record is appended as soon as it is known."""
    for attempt in range(1, repeat + 1):
        for task in tasks:
            workspace = root / "workspaces" / f"{task.name}-{attempt}"
            try:
                record = await run_task(task, attempt, workspace, endpoint, timeout)
            except (SessionClosed, MessageRefused) as exc:
                if not records:
                    raise SetupError(str(exc)) from exc
                record = closed_record(task, attempt, str(exc))
            records.append(record)
            print(task_line(record), flush=True)


def closed_record(task: Task, attempt: int, reason: str) -> Record:
    return Record(
        task=task.name,
        kind=task.kind,
        attempt=attempt,
        passed=False,
        reason=reason,
        seconds=0.0,
        status="connection_lost",
        model_calls=None,
        tool_calls=0,
        tools={},
        invalid_calls=None,
        repeated_calls=None,
        failed_edits=0,
        fabricated=0,
        errors=[],
        answer="",
        session_id="",
    )


def show(value: int | None) -> str:
    return "?" if value is None else str(value)


def task_line(record: Record) -> str:
    status = "" if record.status == "completed" else f"  [{record.status}]"
    errors = f"  errors {','.join(record.errors)}" if record.errors else ""
    label = record.task if record.attempt == 1 else f"{record.task}#{record.attempt}"
    return (
        f"{'PASS' if record.passed else 'FAIL'}  {label:<24} {record.seconds:6.1f} s  "
        f"model {show(record.model_calls):>2}  tools {record.tool_calls:>2}  invalid {show(record.invalid_calls):>2}  "
        f"failed edits {record.failed_edits}  fabricated {record.fabricated}{status}{errors}"
        f"{'  ' + record.reason if record.reason else ''}"
    )


def total(values: list[int | None]) -> str:
    known = [value for value in values if value is not None]
    if not known:
        return "?"
    return f"{sum(known)}" if len(known) == len(values) else f"{sum(known)}+?"


def summary_row(label: str, records: list[Record]) -> list[str]:
    seconds = [record.seconds for record in records]
    passed = sum(record.passed for record in records)
    return [
        label,
        str(len(records)),
        str(passed),
        f"{100 * passed / len(records):.0f} %",
        f"{statistics.median(seconds):.1f}",
        f"{statistics.fmean(seconds):.1f}",
        total([record.model_calls for record in records]),
        total([record.tool_calls for record in records]),
        total([record.invalid_calls for record in records]),
        total([record.failed_edits for record in records]),
        total([record.fabricated for record in records]),
        str(sum(record.status == "timed_out" for record in records)),
    ]


SUMMARY_HEADER = [
    "kind",
    "runs",
    "passed",
    "pass rate",
    "median s",
    "mean s",
    "model calls",
    "tool calls",
    "invalid",
    "failed edits",
    "fabricated",
    "timed out",
]


def summary_rows(records: list[Record]) -> list[list[str]]:
    rows = []
    for kind in KINDS:
        of_kind = [record for record in records if record.kind == kind]
        if of_kind:
            rows.append(summary_row(kind, of_kind))
    rows.append(summary_row("total", records))
    return rows


def print_summary(records: list[Record]) -> None:
    if not records:
        print("no task finished")
        return
    rows = [SUMMARY_HEADER, *summary_rows(records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(SUMMARY_HEADER))]
    print()
    for index, row in enumerate(rows):
        if index == len(rows) - 1:
            print("  ".join("-" * width for width in widths))
        print(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )


def write_json(path: Path, args: argparse.Namespace, records: list[Record], complete: bool) -> None:
    report = {
        "model": None if args.gateway else args.model,
        "gateway": args.gateway,
        "timeout_s": args.timeout,
        "repeat": args.repeat,
        "complete": complete,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary": [dict(zip(SUMMARY_HEADER, row, strict=True)) for row in summary_rows(records)] if records else [],
        "records": [asdict(record) for record in records],
    }
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def select_tasks(only: str | None, kind: str | None) -> list[Task]:
    tasks = list(TASKS)
    if only:
        wanted = [name.strip() for name in only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - {task.name for task in TASKS})
        if unknown:
            raise SetupError(f"no task named {', '.join(unknown)}")
        tasks = [task for task in tasks if task.name in wanted]
    if kind:
        tasks = [task for task in tasks if task.kind == kind]
    if not tasks:
        raise SetupError("no task matches --only/--kind")
    return tasks


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=LOCAL_MODELS[0], help="a model llm-proxy knows (default %(default)s)")
    parser.add_argument("--models-file", type=Path, help="an llm-proxy models file, for a model that is not local")
    parser.add_argument("--repeat", type=int, default=1, help="run every task N times")
    parser.add_argument("--only", help="comma-separated task names")
    parser.add_argument("--kind", choices=KINDS, help="only the tasks of this kind")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per turn (default %(default)s)")
    parser.add_argument("--start-timeout", type=float, default=600.0, help="seconds for the system to start")
    parser.add_argument("--gateway", help="use a running system's gateway (ws://host:port) instead of starting one")
    parser.add_argument("--agent-url", help="its agent-runtime (http://host:port), for model and invalid calls")
    parser.add_argument("--agent-key", help="agent-runtime's internal key (AGENT_RUNTIME__INTERNAL_API_KEY)")
    parser.add_argument("--keep", action="store_true", help="keep the workspaces and service logs")
    parser.add_argument("--json", type=Path, help="write every record and the summary to this file")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler: stop as Ctrl-C does (the services are stopped on the way out)."""
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, interrupt)
    root = Path(tempfile.mkdtemp(prefix="agent-eval-"))
    records: list[Record] = []
    complete = False
    try:
        tasks = select_tasks(args.only, args.kind)
        with system(args, root) as endpoint:
            asyncio.run(run_all(tasks, args.repeat, endpoint, root, args.timeout, records))
        complete = True
    except SetupError as exc:
        print(f"agent_eval: setup failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; the summary covers the tasks that finished", file=sys.stderr)
    finally:
        if args.keep:
            print(f"workspaces and logs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_summary(records)
    if args.json:
        write_json(args.json, args, records, complete)
    return 0 if complete else 130


if __name__ == "__main__":
    sys.exit(main())

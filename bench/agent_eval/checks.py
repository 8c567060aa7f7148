"""Building blocks for the tasks' checks and reference solutions.

A check looks at the workspace after the turn (runs its code with `sys.executable` in a subprocess, parses its
config files, compares text) or at the assistant's answer text, and returns None when the task is done or a short
reason when it is not. A solve does the task by hand and returns an answer text; the self-check uses it to prove
that each check can pass.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Check = Callable[[Path, str], str | None]
Solve = Callable[[Path], str]

RUN_TIMEOUT_S = 60.0


def src(text: str) -> str:
    """A file's content written indented in this module: dedented, without the leading newline."""
    return textwrap.dedent(text).lstrip("\n")


@dataclass(frozen=True, slots=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_python(workspace: Path, *args: str, timeout: float = RUN_TIMEOUT_S) -> Ran:
    """`python ARGS` in the workspace; exit status 124 when it ran past `timeout`."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Ran(124, "", f"timed out after {timeout:g} s")
    return Ran(done.returncode, done.stdout, done.stderr)


def run_pytest(workspace: Path, *paths: str) -> Ran:
    return run_python(workspace, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *paths)


def last_line(text: str, limit: int = 160) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "(no output)")[:limit]


def pytest_summary(ran: Ran) -> str:
    """The first FAILED/ERROR line of pytest's short summary, else its last line."""
    lines = ran.output.splitlines()
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    if not failed:
        return last_line(ran.stdout or ran.stderr)
    detail = next((line[1:].strip() for line in lines if line.startswith("E ")), "")
    summary = failed[0] if " - " in failed[0] or not detail else f"{failed[0]} - {detail}"
    return summary[:160]


def read(workspace: Path, path: str) -> str | None:
    try:
        return (workspace / path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def all_of(*checks: Check) -> Check:
    """Passes when every check passes; the first failure's reason otherwise."""

    def check(workspace: Path, answer: str) -> str | None:
        for part in checks:
            reason = part(workspace, answer)
            if reason is not None:
                return reason
        return None

    return check


def answer_mentions(*patterns: str) -> Check:
    """The answer text matches every regex (case-insensitive)."""

    def check(workspace: Path, answer: str) -> str | None:
        for pattern in patterns:
            if not re.search(pattern, answer, re.IGNORECASE):
                return f"the answer does not mention {pattern!r}"
        return None

    return check


_PROBE = """
import json
{setup}
results = []
for expression, expected in {cases!r}:
    try:
        value = eval(expression)
    except Exception as exc:
        results.append([expression, False, f"raised {{type(exc).__name__}}: {{exc}}"])
    else:
        results.append([expression, value == expected, repr(value)])
print(json.dumps(results))
"""


def values(setup: str, cases: list[tuple[str, Any]]) -> Check:
    """After running `setup` in the workspace, each expression equals its expected value."""

    def check(workspace: Path, answer: str) -> str | None:
        ran = run_python(workspace, "-c", _PROBE.format(setup=setup, cases=cases))
        if ran.code != 0:
            return f"`{setup}` failed: {last_line(ran.stderr)}"
        try:
            results = json.loads(ran.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return f"unreadable probe output: {last_line(ran.output)}"
        for (expression, expected), (_, ok, got) in zip(cases, results, strict=True):
            if not ok:
                return f"{expression} gave {got}, expected {expected!r}"
        return None

    return check


def script_prints(path: str, expected: str) -> Check:
    def check(workspace: Path, answer: str) -> str | None:
        if not (workspace / path).is_file():
            return f"{path} does not exist"
        ran = run_python(workspace, path)
        if ran.code != 0:
            return f"python {path} failed: {last_line(ran.stderr)}"
        if ran.stdout.strip() != expected:
            return f"python {path} printed {ran.stdout.strip()[:80]!r}, expected {expected!r}"
        return None

    return check


def file_lacks(path: str, pattern: str) -> Check:
    """`path` exists and no longer matches the regex."""

    def check(workspace: Path, answer: str) -> str | None:
        text = read(workspace, path)
        if text is None:
            return f"{path} is missing"
        if re.search(pattern, text):
            return f"{path} still matches {pattern!r}"
        return None

    return check


def file_matches(path: str, pattern: str) -> Check:
    def check(workspace: Path, answer: str) -> str | None:
        text = read(workspace, path)
        if text is None:
            return f"{path} is missing"
        if not re.search(pattern, text, re.MULTILINE):
            return f"{path} does not match {pattern!r}"
        return None

    return check


def unchanged(path: str, original: str) -> Check:
    """`path` still has its original content (trailing whitespace aside): the tests were not edited to pass."""

    def check(workspace: Path, answer: str) -> str | None:
        text = read(workspace, path)
        if text is None:
            return f"{path} was deleted"
        if normalized(text) != normalized(original):
            return f"{path} was changed"
        return None

    return check


def pytest_passes(*paths: str) -> Check:
    def check(workspace: Path, answer: str) -> str | None:
        ran = run_pytest(workspace, *paths)
        if ran.code != 0:
            return f"pytest fails: {pytest_summary(ran)}"
        return None

    return check


def tested_by(test_path: str, module_path: str, function: str) -> Check:
    """`test_path` defines a test that uses `function`, passes, and fails once `function` is broken."""

    def check(workspace: Path, answer: str) -> str | None:
        text = read(workspace, test_path)
        if text is None:
            return f"{test_path} was not created"
        if not re.search(r"^\s*def test\w*\s*\(", text, re.MULTILINE):
            return f"{test_path} defines no test function"
        if function not in text:
            return f"{test_path} does not use {function}"
        ran = run_pytest(workspace, test_path)
        if ran.code != 0:
            return f"pytest {test_path} fails: {pytest_summary(ran)}"
        if passes_with_broken(workspace, test_path, module_path, function):
            return f"{test_path} still passes when {function} returns garbage"
        return None

    return check


def passes_with_broken(workspace: Path, test_path: str, module_path: str, function: str) -> bool:
    """Whether the test still passes in a copy of the workspace where `function` returns a useless object."""
    with tempfile.TemporaryDirectory(prefix="agent-eval-mutant-") as folder:
        copy = Path(folder) / "ws"
        shutil.copytree(workspace, copy, ignore=shutil.ignore_patterns(".git", "__pycache__"))
        with (copy / module_path).open("a", encoding="utf-8") as module:
            module.write(f"\n\ndef {function}(*args, **kwargs):\n    return object()\n")
        return run_pytest(copy, test_path).code == 0


def say(answer: str) -> Solve:
    def solve(workspace: Path) -> str:
        return answer

    return solve


def replace_in(path: str, old: str, new: str, answer: str = "Done.") -> Solve:
    """Replace every `old` in `path` with `new` (raises when `old` is not there)."""

    def solve(workspace: Path) -> str:
        text = (workspace / path).read_text(encoding="utf-8")
        if old not in text:
            raise ValueError(f"{old!r} is not in {path}")
        (workspace / path).write_text(text.replace(old, new), encoding="utf-8")
        return answer

    return solve


def write(path: str, content: str, answer: str = "Done.") -> Solve:
    def solve(workspace: Path) -> str:
        target = workspace / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        return answer

    return solve


def chain(*solves: Solve) -> Solve:
    """Run each solve in turn; the answers joined."""

    def solve(workspace: Path) -> str:
        return " ".join(part(workspace) for part in solves)

    return solve


def report_failing_test(*paths: str) -> Solve:
    """Run pytest and answer with the one failing test's id (raises unless exactly one test fails)."""

    def solve(workspace: Path) -> str:
        ran = run_pytest(workspace, *paths)
        failed = re.findall(r"^FAILED (\S+)", ran.output, re.MULTILINE)
        if len(failed) != 1:
            raise ValueError(f"expected exactly one failing test, got {failed}: {last_line(ran.output)}")
        return f"One test fails: {failed[0]}."

    return solve


def run_tests_after(solve_first: Solve, *paths: str) -> Solve:
    """A fix followed by a pytest run that must pass, as a developer would confirm it."""

    def solve(workspace: Path) -> str:
        answer = solve_first(workspace)
        ran = run_pytest(workspace, *paths)
        if ran.code != 0:
            raise ValueError(f"the reference fix leaves failing tests: {pytest_summary(ran)}")
        return f"{answer} The tests pass."

    return solve

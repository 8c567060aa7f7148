"""Checks the tasks without a model: each check fails on the untouched workspace and passes after `solve`.

    uv run python bench/agent_eval/selfcheck.py

For every task, in a fresh workspace: `check()` must fail with an empty answer, and with the prompt itself as the
answer (an echo must not pass); then after the reference `solve()` it must pass with solve's answer. Exits 1 when
any of that does not hold.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.agent_eval.tasks import KINDS, TASKS, Task, prepare_workspace


def problems_of(task: Task, folder: Path) -> list[str]:
    workspace = prepare_workspace(task, folder)
    problems = []
    if task.check(workspace, "") is None:
        problems.append("passes on the untouched workspace with an empty answer")
    if task.check(workspace, task.prompt) is None:
        problems.append("passes on the untouched workspace when the answer echoes the prompt")
    try:
        answer = task.solve(workspace)
    except Exception as exc:
        return [*problems, f"solve() raised {type(exc).__name__}: {exc}"]
    reason = task.check(workspace, answer)
    if reason is not None:
        problems.append(f"fails after solve(): {reason}")
    return problems


def structure_problems() -> list[str]:
    names = Counter(task.name for task in TASKS)
    problems = [f"duplicate task name {name}" for name, count in names.items() if count > 1]
    problems += [f"{task.name}: unknown kind {task.kind!r}" for task in TASKS if task.kind not in KINDS]
    problems += [
        f"{task.name}: {len(task.files)} files (1-5 expected)" for task in TASKS if not 1 <= len(task.files) <= 5
    ]
    return problems


def main() -> int:
    failures = structure_problems()
    for problem in failures:
        print(f"FAIL  {problem}")
    with tempfile.TemporaryDirectory(prefix="agent-eval-selfcheck-") as root:
        for task in TASKS:
            problems = problems_of(task, Path(root) / task.name)
            print(f"{'FAIL' if problems else 'ok  '}  {task.kind:<10}  {task.name}")
            for problem in problems:
                print(f"        {problem}")
            failures += problems
    kinds = Counter(task.kind for task in TASKS)
    print(f"\n{len(TASKS)} tasks: " + ", ".join(f"{kind} {kinds[kind]}" for kind in KINDS if kinds[kind]))
    print("all checks hold" if not failures else f"{len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

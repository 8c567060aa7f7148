"""The agent's plan: the model's `update_plan` calls, carried out here (never sent to a client), become plan frames.

The model sends the whole plan each time. What changed decides the frames: a new plan, or steps added, removed or
reworded, give one `plan_update` with every step; only statuses (and results) changed give one `plan_progress` per
step that changed, except that the first change in a turn sends the plan whole (a client that joins the session at a
later turn sees it). A plan whose step ids share none with the previous one is a new plan (a new `plan_id`). The
plan is kept in the session's state, so it outlives the turn and a restart, and its frames are in the log like any
other.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from pydantic import ValidationError

from codelab_agent_runtime.models.session import Plan, SessionState
from codelab_agent_runtime.turns import frames
from codelab_agent_runtime.turns.frames import Frame
from codelab_common.protocol import PlanProgress, PlanStatus, PlanStep, PlanUpdate


def apply(state: SessionState, arguments: dict[str, Any], message_id: str) -> tuple[list[Frame], str]:
    """Update the session's plan from an `update_plan` call: the frames to write and the tool message for the
    model."""
    try:
        steps = [PlanStep.model_validate(step) for step in arguments.get("steps") or []]
    except ValidationError as exc:
        return [], _dumps({"error": f"update_plan: {exc.errors()[0]['msg']} (each step: id, text, status)"})
    ids = [step.id for step in steps]
    if not steps or len(set(ids)) != len(ids):
        return [], _dumps({"error": "update_plan needs at least one step, each with its own id"})
    old = state.plan
    wanted = arguments.get("current_step")
    current = wanted if wanted in ids else _current(steps)
    same_plan = old is not None and bool(set(ids) & {step.id for step in old.steps})
    plan_id = old.plan_id if old is not None and same_plan else _new_id()
    plan = Plan(plan_id=plan_id, steps=steps, current_step=current, message_id=message_id)
    state.plan = plan
    if old is None or not same_plan or old.message_id != message_id or _outline(old.steps) != _outline(steps):
        update = PlanUpdate(plan_id=plan.plan_id, steps=steps, current_step=current, message_id=message_id)
        out = [frames.of_model(update)]
    else:
        before = {step.id: step for step in old.steps}
        out = [
            frames.of_model(
                PlanProgress(
                    plan_id=plan.plan_id, step_id=step.id, status=step.status, result=step.result, message_id=message_id
                )
            )
            for step in steps
            if (before[step.id].status, before[step.id].result) != (step.status, step.result)
        ]
    done = sum(1 for step in steps if step.status is PlanStatus.DONE)
    return out, _dumps({"ok": True, "steps": len(steps), "done": done, "current_step": current})


def _current(steps: list[PlanStep]) -> str | None:
    for wanted in (PlanStatus.RUNNING, PlanStatus.PENDING):
        for step in steps:
            if step.status is wanted:
                return step.id
    return None


def _outline(steps: list[PlanStep]) -> list[tuple[str, str]]:
    return [(step.id, step.text) for step in steps]


def _new_id() -> str:
    return f"plan_{uuid.uuid4().hex[:16]}"


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()

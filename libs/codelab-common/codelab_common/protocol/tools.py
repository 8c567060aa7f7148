"""The tools the agent can ask a client to run, with their argument schemas.

A tool has two names: `name` is what the model sees (it must match `^[a-zA-Z0-9_-]{1,64}$`), `wire_name` is what
`tool_call.tool_name` carries (the seed's `git.diff`). Argument names follow what the real IDE executes. A tool that
`runs_on` the agent (`update_plan`) never goes to a client: agent-runtime carries it out and writes frames for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    wire_name: str = ""
    runs_on: Literal["client", "agent"] = "client"
    offered_to_model: bool = True
    """False for a client tool agent-runtime chooses itself (`apply_patch_review` for an `apply_patch` to approve)."""

    @property
    def wire(self) -> str:
        return self.wire_name or self.name

    def openai_definition(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def _object(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


_PATH = {"type": "string", "description": "Path relative to the project root"}

PLAN_STATUSES = ("pending", "running", "done", "error", "blocked")

UPDATE_PLAN = ToolSpec(
    "update_plan",
    "Set or update the plan for a task of several steps: send every step each time, with its status.",
    _object(
        ["steps"],
        steps={
            "type": "array",
            "minItems": 1,
            "maxItems": 30,
            "items": _object(
                ["id", "text", "status"],
                id={"type": "string", "description": "Short step id, e.g. '1'"},
                text={"type": "string", "description": "What the step does"},
                status={"type": "string", "enum": list(PLAN_STATUSES)},
                result={"type": "string", "description": "What came of it, once done or failed"},
            ),
        },
        current_step={"type": "string", "description": "The id of the step being worked on"},
    ),
    runs_on="agent",
)
TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "read_file",
        "Read a text file of the project.",
        _object(
            ["path"],
            path=_PATH,
            start_line={"type": "integer", "description": "First line to read, 1-based"},
            end_line={"type": "integer", "description": "Last line to read, inclusive"},
        ),
    ),
    ToolSpec(
        "write_file",
        "Create or overwrite a file with the given content.",
        _object(
            ["path", "content"],
            path=_PATH,
            content={"type": "string", "description": "The whole new content of the file"},
            create_dirs={"type": "boolean", "description": "Create missing parent folders"},
        ),
    ),
    ToolSpec(
        "edit_file",
        "Replace one exact piece of text in a file with new text. Read the file first; old_text must match the file.",
        _object(
            ["path", "old_text", "new_text"],
            path=_PATH,
            old_text={"type": "string", "description": "The lines to replace, copied exactly from the file"},
            new_text={"type": "string", "description": "The text to put in their place"},
        ),
    ),
    ToolSpec(
        "list_files",
        "List the files and folders under a folder of the project.",
        _object(
            ["path"],
            path={"type": "string", "description": "Folder relative to the project root; '.' is the root"},
            recursive={"type": "boolean"},
            pattern={"type": "string", "description": "Glob the names must match, e.g. '*.py'"},
        ),
    ),
    ToolSpec(
        "search_in_project",
        "Search the project's text files for a string and return the matching lines.",
        _object(
            ["query"],
            query={"type": "string"},
            path={"type": "string", "description": "Folder to search in; default the root"},
        ),
    ),
    ToolSpec(
        "create_directory",
        "Create a folder in the project.",
        _object(["path"], path=_PATH, recursive={"type": "boolean"}),
    ),
    ToolSpec(
        "git_diff",
        "Show the uncommitted changes of the project's git repository as a unified diff.",
        _object([], path={"type": "string", "description": "Limit the diff to this path"}),
        wire_name="git.diff",
    ),
    ToolSpec(
        "apply_patch",
        "Apply a unified diff to the project's files.",
        _object(["patch"], patch={"type": "string", "description": "A unified diff, paths relative to the root"}),
    ),
    ToolSpec(
        "run_command",
        "Run a shell command in the project's root and return its exit code and output.",
        _object(
            ["command"],
            command={"type": "string"},
            timeout={"type": "integer", "description": "Seconds before the command is stopped"},
        ),
    ),
    ToolSpec(
        "prompt_user",
        "Ask the user a question and wait for the answer.",
        _object(["question"], question={"type": "string"}),
    ),
    ToolSpec(
        "apply_patch_review",
        "Show the user a unified diff hunk by hunk; apply the hunks they accept (or edit), skip those they reject.",
        _object(["patch"], patch={"type": "string", "description": "A unified diff, paths relative to the root"}),
        offered_to_model=False,
    ),
    UPDATE_PLAN,
)


TOOLS_BY_NAME: dict[str, ToolSpec] = {tool.name: tool for tool in TOOLS}
TOOLS_BY_WIRE_NAME: dict[str, ToolSpec] = {tool.wire: tool for tool in TOOLS}

IDE_TOOLS: tuple[str, ...] = ("read_file", "write_file", "list_files", "create_directory", "run_command")
"""The tools the real CodeLab IDE executes (see shared/ide-frames); its `search_in_code` always finds nothing."""


def resolve(name: str) -> ToolSpec | None:
    """The tool a client or model names, by its model-side or wire name."""
    return TOOLS_BY_NAME.get(name) or TOOLS_BY_WIRE_NAME.get(name)

"""Approval rules: which tool calls run, which ask the user first, and which never run.

A rule names a tool (its model name, or `*`), optionally a path glob (for the tools that take a path, and every file
an `apply_patch` touches) or a command prefix (for `run_command`), and an action. The deployment's policy is a list
of rules; a session adds the rules its user asked to remember. agent-runtime decides with `decide`; the terminal
client proposes the narrowest rule that covers a call with `narrowest_rule`, so both read rules the same way.

How a call is decided, from every rule that matches it:
1. a `deny` wins;
2. otherwise the most specific rule decides: one with a path or command condition beats one without, a longer
   condition beats a shorter one, a rule naming the tool beats `*`, and a session's rule beats the deployment's at
   the same specificity;
3. `ask` beats `allow` when they tie; a call no rule matches asks.

A path condition is a glob (`fnmatch`: `*` also crosses `/`, so `tests/*` covers `tests/a/b.py`) matched against
the normalised relative path (an `apply_patch` touches every path its parsed diff names, renames included); a path
that is absolute or leaves the workspace (`..`) matches no `allow` rule and every `deny` rule with a path. A command
condition matches on words (`pytest` covers `pytest -q` but not `pytestx`; spacing does not matter); a command with
shell control characters (`;`, `&`, `|`, `$(`, backquotes, redirections, newlines) matches no `allow` rule, and a
`deny` rule matches any part of it. A folder a call lists or searches is matched as that folder: a `deny` on
`secrets/*` does not stop `list_files .` or `search_in_project .` from reaching into it.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codelab_common.patches import PatchError, parse_patch
from codelab_common.protocol.tools import resolve

PATH_TOOLS = frozenset(
    {"read_file", "write_file", "edit_file", "list_files", "create_directory", "search_in_project", "git_diff"}
)
FOLDER_TOOLS = frozenset({"list_files", "search_in_project", "git_diff"})
"""Tools whose path defaults to the project's root."""
COMMAND_TOOLS = frozenset({"run_command"})
_SHELL_CONTROL = re.compile(r"[;&|`<>\n]|\$\(")
_SHELL_SPLIT = re.compile(r"\|\||&&|[;&|\n]")


class RuleAction(StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


class ApprovalRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: str = Field(min_length=1, max_length=64, description="A tool's model or wire name, or `*` for every tool")
    path: str | None = Field(default=None, min_length=1, max_length=512, description="Glob of relative paths")
    command: str | None = Field(default=None, min_length=1, max_length=512, description="Command prefix")
    action: RuleAction = RuleAction.ALLOW

    @field_validator("tool")
    @classmethod
    def _known_tool(cls, value: str) -> str:
        if value == "*":
            return value
        spec = resolve(value)
        if spec is None:
            raise ValueError(f"unknown tool {value[:64]!r}")
        return spec.name

    @field_validator("command")
    @classmethod
    def _plain_command(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.strip()
            if not value or _SHELL_CONTROL.search(value):
                raise ValueError("a command prefix must be a plain command, without shell control characters")
        return value

    def describe(self) -> str:
        condition = f" {self.path}" if self.path else f" `{self.command}`" if self.command else ""
        return f"{self.action.value} {self.tool}{condition}"

    @property
    def specificity(self) -> tuple[int, int]:
        condition = self.path or self.command
        return (0 if condition is None else 1 + len(condition), 0 if self.tool == "*" else 1)

    def matches(self, tool: str, arguments: dict[str, Any]) -> bool:
        if self.tool not in ("*", tool):
            return False
        if self.path is not None:
            paths = call_paths(tool, arguments)
            if not paths:
                return False
            if self.action is RuleAction.DENY:
                return any(_path_matches(self.path, path, strict=False) for path in paths)
            return all(_path_matches(self.path, path, strict=True) for path in paths)
        if self.command is not None:
            command = arguments.get("command")
            if tool not in COMMAND_TOOLS or not isinstance(command, str):
                return False
            if self.action is RuleAction.DENY:
                parts = _SHELL_SPLIT.split(command)
                prefix = " ".join(self.command.split())
                return any(
                    _command_matches(self.command, part) or " ".join(part.split()).startswith(prefix) for part in parts
                )
            return not _SHELL_CONTROL.search(command) and _command_matches(self.command, command)
        return True


@dataclass(frozen=True, slots=True)
class Verdict:
    action: RuleAction
    rule: ApprovalRule | None
    """The rule that decided (None: no rule matched, so the call asks)."""
    from_session: bool = False


def decide(
    tool: str, arguments: dict[str, Any], policy: Sequence[ApprovalRule], session: Sequence[ApprovalRule] = ()
) -> Verdict:
    """What happens to a call of `tool` (model name) with `arguments` under the deployment's and session's rules."""
    matching = [(rule, False) for rule in policy if rule.matches(tool, arguments)]
    matching += [(rule, True) for rule in session if rule.matches(tool, arguments)]
    for rule, from_session in matching:
        if rule.action is RuleAction.DENY:
            return Verdict(RuleAction.DENY, rule, from_session)
    if not matching:
        return Verdict(RuleAction.ASK, None)
    rank = {RuleAction.ASK: 1, RuleAction.ALLOW: 0}
    rule, from_session = max(matching, key=lambda m: (m[0].specificity, m[1], rank[m[0].action]))
    return Verdict(rule.action, rule, from_session)


def call_paths(tool: str, arguments: dict[str, Any]) -> list[str]:
    """The workspace paths a call touches, as written (empty for tools that take none)."""
    if tool == "apply_patch":
        patch = arguments.get("patch")
        try:
            files = parse_patch(patch) if isinstance(patch, str) else []
        except PatchError:
            return []
        return sorted({path for file in files for path in (file.old_path, file.new_path) if path is not None})
    if tool in PATH_TOOLS:
        path = arguments.get("path")
        return [path] if isinstance(path, str) else ["."] if tool in FOLDER_TOOLS else []
    return []


LAUNCHERS = frozenset({"git", "npm", "npx", "pnpm", "yarn", "uv", "cargo", "go", "make", "poetry", "dotnet"})


def narrowest_rule(tool: str, arguments: dict[str, Any]) -> ApprovalRule:
    """The rule a client proposes for "always allow this": the program (with its subcommand for launchers such as
    `git` or `python -m`) for a command; the call's folder for a path; the tool otherwise."""
    spec = resolve(tool)
    name = spec.name if spec is not None else tool
    if name in COMMAND_TOOLS and isinstance(arguments.get("command"), str):
        return ApprovalRule(tool=name, command=_command_prefix(arguments["command"]))
    paths = [_normalise(path) for path in call_paths(name, arguments)]
    if paths and all(path is not None for path in paths):
        folders = {posixpath.dirname(path) for path in paths if path is not None}
        if len(paths) == 1 and folders == {""} and paths[0]:
            return ApprovalRule(tool=name, path=_escape(paths[0] or ""))
        common = posixpath.commonpath(sorted(folders)) if "" not in folders else ""
        return ApprovalRule(tool=name, path=f"{_escape(common)}/*" if common else "*")
    return ApprovalRule(tool=name)


def _escape(path: str) -> str:
    """A path as a glob that matches only itself (`[`, `*`, `?` bracketed)."""
    return re.sub(r"([\[*?])", r"[\1]", path)


def parse_rules(values: Iterable[dict[str, Any] | ApprovalRule]) -> list[ApprovalRule]:
    return [value if isinstance(value, ApprovalRule) else ApprovalRule.model_validate(value) for value in values]


def _command_prefix(command: str) -> str:
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    words = [word for word in words if not _SHELL_CONTROL.search(word)][:3]
    if not words:
        return command.strip()[:64] or "true"
    if words[0].startswith("python") and len(words) >= 3 and words[1] == "-m":
        return " ".join(words[:3])
    if words[0] in LAUNCHERS and len(words) >= 2 and not words[1].startswith("-"):
        return " ".join(words[:2])
    return words[0]


def _normalise(path: str) -> str | None:
    """The relative path in normal form; None when it is absolute or leaves the workspace."""
    if not path or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        return None
    normal = posixpath.normpath(path.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return None
    return "" if normal == "." else normal


def _path_matches(pattern: str, path: str, *, strict: bool) -> bool:
    """`strict` (an allow): the path must normalise inside the project; otherwise (a deny) one that does not
    normalise matches whatever the pattern."""
    normal = _normalise(path)
    if normal is None:
        return not strict
    return fnmatch.fnmatchcase(normal or ".", pattern)


def _command_matches(prefix: str, command: str) -> bool:
    """Whether `command` begins with the words of `prefix`; a command that does not split into words (an unclosed
    quote) matches nothing here, so an allow does not cover it (a deny checks its parts by text as well)."""
    try:
        words, wanted = shlex.split(command), shlex.split(prefix)
    except ValueError:
        return False
    return bool(wanted) and words[: len(wanted)] == wanted


DEFAULT_POLICY: tuple[ApprovalRule, ...] = (
    *(ApprovalRule(tool=t) for t in ("read_file", "list_files", "search_in_project", "git_diff", "prompt_user")),
    *(
        ApprovalRule(tool=t, action=RuleAction.ASK)
        for t in ("write_file", "edit_file", "apply_patch", "create_directory", "run_command")
    ),
)
"""Reads and searches run; writes, patches, folders and commands ask."""

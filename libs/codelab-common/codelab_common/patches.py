"""A pure-Python unified-diff parser and applier (no `patch` or git needed).

Accepts what `git diff` and `diff -u` write and what models usually produce: `a/` `b/` prefixes, `/dev/null`
for created and deleted files, renames, `\\ No newline at end of file`, hunks whose line numbers are off (a hunk
is looked for at its line first, then at the nearest place where its context matches), and miscounted hunk
headers. A hunk whose context and removed lines match nowhere is rejected; every such hunk of the file is named,
with the first line where it differs from the file and the file's lines that come closest to it, so the model can
correct them all at once. Trailing whitespace is forgiven only when an exact match does not exist.

Shared: agent-runtime parses a patch to check it before it goes to a client; the terminal client applies it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@+ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NO_NEWLINE = "\\"


class PatchError(Exception):
    """A patch that cannot be read or does not apply; the message says which file and hunk."""


@dataclass(slots=True)
class Hunk:
    old_start: int | None
    """1-based first line of the old side; None when the header carried no numbers (`@@ ... @@`)."""
    lines: list[tuple[str, str]] = field(default_factory=list)
    old_missing_newline: bool = False
    new_missing_newline: bool = False

    @property
    def old(self) -> list[str]:
        return [text for op, text in self.lines if op != "+"]

    @property
    def new(self) -> list[str]:
        return [text for op, text in self.lines if op != "-"]


@dataclass(slots=True)
class FilePatch:
    old_path: str | None
    """None for a created file (`--- /dev/null`)."""
    new_path: str | None
    """None for a deleted file (`+++ /dev/null`)."""
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


def parse_patch(text: str) -> list[FilePatch]:
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    files: list[FilePatch] = []
    current: FilePatch | None = None
    git_paths: tuple[str, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            git_paths = _git_header_paths(line)
            current = None
        elif line.startswith(("GIT binary patch", "Binary files ")):
            raise PatchError("binary patches are not supported")
        elif line.startswith("rename from ") and git_paths:
            current = FilePatch(line[len("rename from ") :], git_paths[1])
            files.append(current)
        elif line.startswith("rename to ") and current is not None:
            current.new_path = line[len("rename to ") :]
        elif _is_file_header(lines, i):
            old, new = _header_paths(line[4:], lines[i + 1][4:])
            if current is not None and current.old_path == old and not current.hunks:
                current.new_path = new
            else:
                current = FilePatch(old, new)
                files.append(current)
            i += 1
        elif line.startswith("@@"):
            if current is None:
                raise PatchError(f"line {i + 1}: hunk without a '--- / +++' file header")
            hunk, i = _read_hunk(lines, i)
            current.hunks.append(hunk)
            continue
        i += 1
    if not files:
        raise PatchError("no file changes found in the patch (expected '--- a/PATH', '+++ b/PATH' and '@@' hunks)")
    return files


def patch_problem(text: str) -> str | None:
    """What is wrong with a patch before it goes anywhere: not a unified diff, no file, or a path that is absolute
    or leaves the project; None when it is well formed."""
    try:
        files = parse_patch(text)
    except PatchError as exc:
        return f"the patch is not a unified diff: {exc}"
    if not files:
        return "the patch names no file: write a unified diff with '--- a/path' and '+++ b/path' lines and hunks"
    for file in files:
        for path in (file.old_path, file.new_path):
            if path is not None and not _inside(path):
                return f"the patch touches {path!r}, outside the project: use paths relative to the project root"
        if not file.hunks and file.old_path == file.new_path:
            return f"the patch has no hunk for {file.path}"
    return None


def _inside(path: str) -> bool:
    if not path.strip() or path.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", path):
        return False
    parts = [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            return False
    return bool(parts)


def _read_hunk(lines: list[str], start: int) -> tuple[Hunk, int]:
    match = _HUNK.match(lines[start])
    old_count = new_count = None
    if match:
        hunk = Hunk(old_start=int(match.group(1)))
        old_count = int(match.group(2)) if match.group(2) is not None else 1
        new_count = int(match.group(4)) if match.group(4) is not None else 1
    else:
        hunk = Hunk(old_start=None)
    i = start + 1
    seen_old = seen_new = 0
    counted = old_count is not None
    while i < len(lines):
        line = lines[i]
        if counted and seen_old >= (old_count or 0) and seen_new >= (new_count or 0) and not line.startswith("\\"):
            if not _continues_hunk(lines, i):
                break
            counted = False
        if line.startswith(_NO_NEWLINE):
            if hunk.lines:
                op = hunk.lines[-1][0]
                hunk.old_missing_newline |= op in (" ", "-")
                hunk.new_missing_newline |= op in (" ", "+")
        elif line.startswith(("@@", "diff ")) or _is_file_header(lines, i):
            break
        elif line == "" or line[0] in " -+":
            op, body = (" ", "") if line == "" else (line[0], line[1:])
            hunk.lines.append((op, body))
            seen_old += op != "+"
            seen_new += op != "-"
        else:
            break
        i += 1
    while not counted and hunk.lines and hunk.lines[-1] == (" ", ""):
        hunk.lines.pop()
    if not hunk.lines:
        raise PatchError(f"line {start + 1}: empty hunk")
    return hunk, i


def _continues_hunk(lines: list[str], i: int) -> bool:
    """After a hunk's counted lines: does the next line still belong to it (the model miscounted the header)?"""
    line = lines[i]
    if not line or line[0] not in " -+" or line == "-- ":
        return False
    return not _is_file_header(lines, i)


def _is_file_header(lines: list[str], i: int) -> bool:
    return lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def _git_header_paths(line: str) -> tuple[str, str] | None:
    match = re.match(r"^diff --git a/(.+) b/(.+)$", line)
    return (match.group(1), match.group(2)) if match else None


def _header_paths(old_raw: str, new_raw: str) -> tuple[str | None, str | None]:
    old, new = _clean_path(old_raw), _clean_path(new_raw)
    if (old is None or old.startswith("a/")) and (new is None or new.startswith("b/")):
        old = old[2:] if old else None
        new = new[2:] if new else None
    return old, new


def _clean_path(raw: str) -> str | None:
    path = raw.split("\t", 1)[0].strip()
    if len(path) >= 2 and path[0] == path[-1] == '"':
        path = path[1:-1]
    return None if path == "/dev/null" else path


@dataclass(slots=True)
class TextFile:
    """A file as lines without their endings, plus how to write it back the same way."""

    lines: list[str]
    newline: str = "\n"
    ends_with_newline: bool = True

    @classmethod
    def parse(cls, text: str) -> TextFile:
        if not text:
            return cls([])
        newline = "\r\n" if "\r\n" in text else "\n"
        lines = text.split("\n")
        ends = lines[-1] == ""
        if ends:
            lines.pop()
        if newline == "\r\n":
            lines = [line.removesuffix("\r") for line in lines]
        return cls(lines, newline, ends)

    def render(self) -> str:
        if not self.lines:
            return ""
        return self.newline.join(self.lines) + (self.newline if self.ends_with_newline else "")


def apply_file_patch(original: str | None, patch: FilePatch) -> str:
    """The new text of one file (`original` None for a file that does not exist yet); PatchError naming every hunk
    that does not apply."""
    doc = TextFile.parse(original or "")
    offset = 0
    floor = 0
    failures: list[str] = []
    for number, hunk in enumerate(patch.hunks, start=1):
        old, new = hunk.old, hunk.new
        expected = max(floor, min(_expected_index(hunk, offset, floor), len(doc.lines)))
        position = _find(doc.lines, old, expected, floor)
        if position is None:
            failures.append(_mismatch(patch.path, number, len(patch.hunks), hunk, doc.lines, expected))
            continue
        doc.lines[position : position + len(old)] = new
        end = position + len(new)
        if end == len(doc.lines):
            if hunk.new_missing_newline:
                doc.ends_with_newline = False
            elif hunk.old_missing_newline or original is None or original == "":
                doc.ends_with_newline = True
        offset += len(new) - len(old)
        floor = end
    if failures:
        raise PatchError("\n".join(failures))
    return doc.render()


def _expected_index(hunk: Hunk, offset: int, floor: int) -> int:
    """Where the hunk's old lines should start, shifted by what earlier hunks added or removed.

    A pure insertion (`@@ -5,0 +6,2 @@`) names the line it goes after, hence no `- 1`.
    """
    if hunk.old_start is None:
        return floor
    return hunk.old_start - 1 + offset if hunk.old else hunk.old_start + offset


def _find(lines: list[str], block: list[str], expected: int, floor: int) -> int | None:
    if not block:
        return expected
    last = len(lines) - len(block)
    for same in (_exact, _loose):
        for position in _nearest_first(expected, floor, last):
            if same(lines, block, position):
                return position
    return None


def _nearest_first(expected: int, low: int, high: int) -> Iterator[int]:
    expected = max(low, min(expected, high))
    for distance in range(max(expected - low, high - expected) + 1):
        if low <= expected - distance <= high:
            yield expected - distance
        if distance and low <= expected + distance <= high:
            yield expected + distance


def _exact(lines: list[str], block: list[str], at: int) -> bool:
    return lines[at : at + len(block)] == block


def _loose(lines: list[str], block: list[str], at: int) -> bool:
    return all(a.rstrip() == b.rstrip() for a, b in zip(lines[at : at + len(block)], block, strict=True))


CLOSEST_SEARCH_LINES = 2000
"""Lines on each side of the expected place searched for the closest match (the whole file when smaller)."""


def _mismatch(path: str, number: int, total: int, hunk: Hunk, lines: list[str], expected: int) -> str:
    """Names the first line where the hunk and the file differ at the place the hunk pointed to, and shows the
    file's lines that come closest to what the hunk expects."""
    where = f"line {hunk.old_start}" if hunk.old_start is not None else "anywhere"
    message = f"hunk {number} of {total} for {path} does not match the file (looked near {where})"
    for index, wanted in enumerate(hunk.old):
        at = expected + index
        actual = lines[at] if at < len(lines) else None
        if actual is None or actual.rstrip() != wanted.rstrip():
            found = repr(actual) if actual is not None else "the end of the file"
            message = f"{message}; at line {at + 1} the hunk expects {wanted!r}, the file has {found}"
            break
    closest = _closest(lines, hunk.old, expected)
    if closest is None:
        return message
    start, block = closest
    shown = "\n".join(f"  {start + 1 + i:>4}| {line}" for i, line in enumerate(block))
    return f"{message}. The closest lines in the file ({start + 1}-{start + len(block)}):\n{shown}"


def _closest(lines: list[str], block: list[str], expected: int) -> tuple[int, list[str]] | None:
    """Where the file's lines are most like `block` (by difflib's ratio); None when the file or block is empty."""
    if not lines or not block:
        return None
    size = min(len(block), len(lines))
    low = max(0, expected - CLOSEST_SEARCH_LINES)
    high = max(low, min(len(lines) - size, expected + CLOSEST_SEARCH_LINES))
    wanted = "\n".join(line.strip() for line in block)
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(wanted)
    best, best_at = -1.0, low
    for at in _nearest_first(expected, low, high):
        matcher.set_seq1("\n".join(line.strip() for line in lines[at : at + size]))
        if matcher.real_quick_ratio() <= best or matcher.quick_ratio() <= best:
            continue
        ratio = matcher.ratio()
        if ratio > best:
            best, best_at = ratio, at
    return best_at, lines[best_at : best_at + size]


def hunk_text(hunk: Hunk) -> str:
    """A hunk's lines as a diff writes them (`' '`, `-`, `+` first), without its `@@` header."""
    return "\n".join(_diff_lines(hunk)) + "\n"


def _diff_lines(hunk: Hunk) -> list[str]:
    """The hunk's lines, with `\\ No newline at end of file` after the last line of a side that has none."""
    last_old = max((i for i, (op, _) in enumerate(hunk.lines) if op != "+"), default=-1)
    last_new = max((i for i, (op, _) in enumerate(hunk.lines) if op != "-"), default=-1)
    out: list[str] = []
    for index, (op, text) in enumerate(hunk.lines):
        out.append(op + text)
        old_end = hunk.old_missing_newline and index == last_old
        new_end = hunk.new_missing_newline and index == last_new
        if old_end or new_end:
            out.append(f"{_NO_NEWLINE} No newline at end of file")
    return out


def parse_hunk(text: str, old_start: int | None) -> Hunk:
    """A hunk a user edited (lines as `hunk_text` writes them), to apply where the original hunk was."""
    header = f"@@ -{old_start} +{old_start} @@" if old_start is not None else "@@ @@"
    lines = [header, *text.replace("\r\n", "\n").rstrip("\n").split("\n")]
    hunk, end = _read_hunk(lines, 0)
    if end != len(lines):
        raise PatchError(f"line {end}: not a hunk line (each begins with ' ', '-' or '+')")
    hunk.old_start = old_start
    return hunk


def render_patch(files: list[FilePatch]) -> str:
    """A unified diff of `files` and their hunks (headers recounted), e.g. the hunks a user kept."""
    out: list[str] = []
    for file in files:
        if not file.hunks:
            continue
        out.append(f"--- {'a/' + file.old_path if file.old_path else '/dev/null'}")
        out.append(f"+++ {'b/' + file.new_path if file.new_path else '/dev/null'}")
        for hunk in file.hunks:
            start = hunk.old_start if hunk.old_start is not None else 1
            out.append(f"@@ -{start},{len(hunk.old)} +{start},{len(hunk.new)} @@")
            out.extend(_diff_lines(hunk))
    return "\n".join(out) + "\n" if out else ""

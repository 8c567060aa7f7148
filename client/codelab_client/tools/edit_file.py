"""`edit_file {path, old_text, new_text}` → `{success, path, replacements: 1, line, diff}`.

Replaces one piece of an existing text file. `old_text` is looked for in three ways, the first that finds it wins:

1. exactly (also with its line endings turned into the file's, so a CRLF file matches the model's `\\n`); it must
   occur exactly once, or the error names how many times and on which lines, and asks for more context;
2. as whole lines, trailing whitespace ignored (and a missing or extra final newline);
3. as whole lines, indentation ignored too. `new_text` is then re-indented by the same shift that turns the
   model's indentation into the file's (4 spaces too few: 4 added to every line of `new_text`); when no single
   shift explains the difference the edit is refused with the file's real lines;
4. as words and punctuation, all whitespace ignored, line breaks included (a small model writes
   `def f(a): return a` for a two-line function). Only what the model changed is written: between two words that
   keep or replace neighbouring words of the file, the file's spacing and line breaks stay; around words
   `new_text` adds, its own spacing is used.

When nothing matches, the error shows the file's lines most like `old_text` (a window of as many lines, found
with difflib), numbered, so the model can retry with the right text.

What the file keeps: its line endings (`new_text` is written with the file's `\\n` or `\\r\\n`), a UTF-8 byte order
mark, bytes that are not UTF-8 outside the edit, whether it ends with a newline, and its mode (atomic write).

Two mistakes of small models are forgiven in an exact match. When a one-line `old_text` matches after some of the
indentation of its line (copied from its first non-blank character, or with too little indentation), the
following lines of `new_text` get that remaining indentation too, so a statement replaced by several stays in its
block. A final newline of `new_text` is dropped when `old_text` has none (added when it has one), so lines are
neither joined nor split by accident. And an empty `new_text` for all of a line's text removes the line.

Decisions: `edit_file` never creates a file. An empty `old_text` is refused: on a missing file the error points
to `write_file` (which creates files), on an existing one it asks for the lines to replace. A missing file with
a non-empty `old_text` is `file_not_found`. Binary files (a NUL byte in the first kilobytes) are refused, as are
edits that change nothing. Paths are confined to the workspace exactly like `write_file`'s.

`line` is the first line (1-based) of the new file that differs from the old one; `diff` is a unified diff of the
change with two lines of context, at most 40 lines.
"""

from __future__ import annotations

import difflib
import heapq
import os
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from itertools import accumulate
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError, invalid_arguments
from codelab_client.tools.files import atomic_write, looks_binary

_ENCODING = ("utf-8", "surrogateescape")
"""Round-trips any bytes, so a file in another encoding comes back unchanged outside the edited text."""
_BOM = "\ufeff"
DIFF_LINES = 40
"""Most lines of the `diff` in the result."""
SHOWN_LINES = 30
"""Most file lines an error shows."""
SHOWN_CHARS = 200
"""Longer lines are cut in what errors and diffs show."""
LISTED_MATCHES = 10
"""Most line numbers an ambiguous match lists."""
_WORD = re.compile(r"\w+")
_WORDS = re.compile(r"\w+|[^\w\s]")
"""What the whitespace-blind match compares: words, and every other character but whitespace on its own."""
_SCORED_WORDS = 100
"""At most this many words of old_text (the longest) are looked for when nothing matches."""
_CANDIDATES = 8
"""Windows compared with difflib when nothing matches (the best by `_line_hits`)."""
_CHAR_COMPARE_CHARS = 2000
"""Up to this size old_text is compared character by character, beyond it line by line."""
_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@")


def edit_file(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    path = args.string(arguments, "path")
    for key in ("old_text", "new_text"):
        if arguments.get(key) is None:
            raise invalid_arguments(f"missing required argument '{key}'")
    old_text = args.string(arguments, "old_text", allow_empty=True)
    new_text = args.string(arguments, "new_text", allow_empty=True)

    target = ctx.workspace.resolve(path)
    try:
        opened = ctx.workspace.open_file(target, path)
    except FileNotFoundError:
        if not old_text:
            raise ToolError(
                "file_not_found", f"{path} does not exist; edit_file only changes existing files, use write_file"
            ) from None
        raise ToolError("file_not_found", f"File not found: {path}") from None
    with opened as fh:
        if not old_text:
            raise invalid_arguments(
                "old_text is empty; copy the lines to change from the file (read_file shows them), "
                "or use write_file to replace the whole file"
            )
        if old_text == new_text:
            raise ToolError("no_change", "old_text and new_text are the same; nothing to change")
        if os.fstat(fh.fileno()).st_size > ctx.limits.write_bytes:
            raise ToolError("file_too_large", f"{path} is larger than {ctx.limits.write_bytes} bytes")
        data = fh.read(ctx.limits.write_bytes + 1)
    if len(data) > ctx.limits.write_bytes:  # it grew since
        raise ToolError("file_too_large", f"{path} is larger than {ctx.limits.write_bytes} bytes")
    if looks_binary(data[: ctx.limits.binary_probe_bytes]):
        raise ToolError("binary_file", f"{path} is a binary file")
    text = data.decode(*_ENCODING)
    bom = _BOM if text.startswith(_BOM) else ""
    text = text[len(bom) :]

    edited = _replace(text, old_text, new_text, path)
    if edited == text:
        raise ToolError("no_change", "the edit leaves the file as it is")
    out = (bom + edited).encode(*_ENCODING)
    if len(out) > ctx.limits.write_bytes:
        raise ToolError("content_too_large", f"the edited file would be larger than {ctx.limits.write_bytes} bytes")
    atomic_write(ctx.workspace, target, out, path)

    relative = ctx.workspace.relative(target)
    line, diff = _describe(_split(text)[0], _split(edited)[0], relative)
    return {"success": True, "path": relative, "replacements": 1, "line": line, "diff": diff}


def edited_text(text: str, old: str, new: str, path: str) -> str:
    """`text` as edit_file would leave it (the approval prompt previews with this); raises the tool's ToolError."""
    if not old:
        raise invalid_arguments("old_text is empty")
    return _replace(text, old, new, path)


def _replace(text: str, old: str, new: str, path: str) -> str:
    newline = _newline(text)
    new = new.replace("\r\n", "\n").replace("\n", newline)

    for candidate in dict.fromkeys((old, old.replace("\r\n", "\n").replace("\n", newline))):
        total, positions = _occurrences(text, candidate)
        if total > 1:
            raise ToolError("ambiguous_match", _ambiguous(path, total, _line_numbers(text, positions)))
        if total:
            at, end = positions[0], positions[0] + len(candidate)
            line_start = text.rfind("\n", 0, at) + 1
            before = text[line_start:at]
            if not new and not before.strip():  # the text of whole lines goes: the lines go
                if candidate.endswith("\n"):
                    return text[:line_start] + text[end:]
                if text.startswith(("\n", "\r\n"), end):
                    return text[:line_start] + text[text.index("\n", end) + 1 :]
            spliced = _same_final_newline(candidate, new, newline)
            if before and not before.strip() and "\n" not in candidate.rstrip("\r\n"):
                spliced = _indent_following_lines(spliced, before)
            return text[:at] + spliced + text[end:]

    texts, ends = _split(text)
    wanted = _split(old.replace("\r\n", "\n"))[0]
    replacement = _split(new.replace("\r\n", "\n"))[0]
    if not wanted:
        raise ToolError("no_match", "old_text holds no lines to look for")

    starts = _line_matches(texts, wanted, str.rstrip)
    if not starts:
        starts = _line_matches(texts, wanted, str.strip)
        if len(starts) == 1:
            replacement = _reindent(texts, starts[0], wanted, replacement, path)
    if len(starts) > 1:
        raise ToolError("ambiguous_match", _ambiguous(path, len(starts), [start + 1 for start in starts]))
    if not starts:
        by_words = _replace_words(text, old, new, path)
        if by_words is None:
            raise ToolError("no_match", _no_match(path, texts, wanted))
        return by_words

    start, stop = starts[0], starts[0] + len(wanted)
    new_ends = [newline] * len(replacement)
    if replacement:
        new_ends[-1] = ends[stop - 1]
    elif stop == len(texts) and start > 0 and not ends[stop - 1]:
        ends[start - 1] = ""  # the last lines went, and the file did not end with a newline: still it does not
    texts[start:stop] = replacement
    ends[start:stop] = new_ends
    return "".join(map(str.__add__, texts, ends))


def _replace_words(text: str, old: str, new: str, path: str) -> str | None:
    """`text` with the one run of words equal to `old`'s words (whitespace ignored) rewritten as `new`; None when
    no run matches."""
    words = list(_WORDS.finditer(text))
    wanted = _WORDS.findall(old)
    if not wanted:
        return None
    starts = [
        at
        for at in range(len(words) - len(wanted) + 1)
        if words[at].group() == wanted[0] and [w.group() for w in words[at : at + len(wanted)]] == wanted
    ]
    if len(starts) > 1:
        lines = [text.count("\n", 0, words[at].start()) + 1 for at in starts]
        raise ToolError("ambiguous_match", _ambiguous(path, len(starts), lines))
    if not starts:
        return None
    found = words[starts[0] : starts[0] + len(wanted)]
    placed = list(_WORDS.finditer(new))
    kept: dict[int, int] = {}
    """Index of a word of `new` → index in `found` of the word it keeps or replaces in place."""
    matcher = difflib.SequenceMatcher(None, wanted, [w.group() for w in placed], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("equal", "replace"):
            kept.update({j1 + k: i1 + k for k in range(min(i2 - i1, j2 - j1))})
    pieces = []
    for index, word in enumerate(placed):
        if index:
            before, here = kept.get(index - 1), kept.get(index)
            if before is not None and here == before + 1:
                pieces.append(text[found[before].end() : found[here].start()])
            else:
                pieces.append(new[placed[index - 1].end() : word.start()])
        pieces.append(word.group())
    return text[: found[0].start()] + "".join(pieces) + text[found[-1].end() :]


def _newline(text: str) -> str:
    """The file's line ending: CRLF when most of its lines end so."""
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf * 2 >= text.count("\n") else "\n"


def _occurrences(text: str, needle: str) -> tuple[int, list[int]]:
    """How many times `needle` occurs (overlaps counted while few), and where the first few start."""
    positions: list[int] = []
    at = text.find(needle)
    while at != -1 and len(positions) <= LISTED_MATCHES:
        positions.append(at)
        at = text.find(needle, at + 1)
    total = len(positions) if at == -1 else max(len(positions), text.count(needle))
    return total, positions


def _line_numbers(text: str, positions: list[int]) -> list[int]:
    numbers, line, previous = [], 1, 0
    for at in positions:
        line += text.count("\n", previous, at)
        previous = at
        numbers.append(line)
    return numbers


def _same_final_newline(old: str, new: str, newline: str) -> str:
    if not new:
        return new
    if old.endswith("\n") and not new.endswith("\n"):
        return new + newline
    if not old.endswith("\n") and new.endswith("\n"):
        return new.removesuffix("\n").removesuffix("\r")
    return new


def _indent_following_lines(text: str, indent: str) -> str:
    """`indent` before every non-blank line of `text` but the first (which lands after it already)."""
    first, *rest = text.split("\n")
    return "\n".join([first, *(indent + part if part.strip() else part for part in rest)])


def _split(text: str) -> tuple[list[str], list[str]]:
    """The lines without their endings, and the endings (`\n`, `\r\n`, or empty for a last line without one)."""
    texts = text.split("\n")
    last = texts.pop()
    ends = ["\n"] * len(texts)
    if "\r" in text:
        for index, line in enumerate(texts):
            if line.endswith("\r"):
                texts[index], ends[index] = line[:-1], "\r\n"
    if last:
        texts.append(last)
        ends.append("")
    return texts, ends


def _line_matches(texts: list[str], wanted: list[str], norm: Callable[[str], str]) -> list[int]:
    key = [norm(line) for line in wanted]
    normal = [norm(line) for line in texts]
    last = len(normal) - len(key)
    first = key[0]
    return [
        start
        for start, line in enumerate(normal)
        if line == first and start <= last and normal[start : start + len(key)] == key
    ]


def _indent(text: str) -> str:
    return text[: len(text) - len(text.lstrip())]


def _reindent(texts: list[str], start: int, wanted: list[str], replacement: list[str], path: str) -> list[str]:
    """Shift `replacement` the way the model's indentation of `wanted` must shift to become the file's.

    The shift is read off the least indented line of `wanted`: its indentation `model_base` becomes the file's
    `file_base`, and every other line must keep the same indentation relative to it, or the edit is refused.
    """
    found = texts[start : start + len(wanted)]
    pairs = [(_indent(w), _indent(f)) for w, f in zip(wanted, found, strict=True) if w.strip()]
    if not pairs:
        return replacement
    model_base, file_base = min(pairs, key=lambda pair: len(pair[0]))
    consistent = all(
        m.startswith(model_base) and f.startswith(file_base) and m[len(model_base) :] == f[len(file_base) :]
        for m, f in pairs
    )
    if not consistent:
        raise ToolError(
            "no_match",
            f"old_text matches lines {start + 1}-{start + len(found)} of {path} only when indentation is ignored, "
            f"and its indentation differs from the file's unevenly. Those lines are (the numbers are not part of "
            f"the file):\n{_numbered(found, start)}\nCopy them with their exact indentation and retry.",
        )
    out: list[str] = []
    for line in replacement:
        if not line.strip():
            out.append(line)
            continue
        own = _indent(line)
        if own.startswith(model_base):
            out.append(file_base + line[len(model_base) :])
        else:  # less indented than the model's base: keep the distance to it
            keep = max(0, len(file_base) - (len(model_base) - len(own)))
            out.append(file_base[:keep] + line.lstrip())
    return out


def _ambiguous(path: str, total: int, lines: list[int]) -> str:
    listed = ", ".join(map(str, lines[:LISTED_MATCHES])) + (", …" if total > LISTED_MATCHES else "")
    return (
        f"old_text occurs {total} times in {path} (lines {listed}); it must match exactly once. "
        "Include more of the surrounding lines in old_text (and in new_text) so it matches only one place."
    )


def _no_match(path: str, texts: list[str], wanted: list[str]) -> str:
    if not texts:
        return f"old_text was not found: {path} is empty. Use write_file to give it content."
    start = _closest_window(texts, wanted)
    window = texts[start : start + len(wanted)]
    return (
        f"old_text was not found in {path}. The closest lines are {start + 1}-{start + len(window)} "
        f"(the numbers are not part of the file):\n{_numbered(window, start)}\n"
        "Copy the lines to change exactly as they are in the file (read_file shows them) and retry."
    )


def _closest_window(texts: list[str], wanted: list[str]) -> int:
    """Where a window of as many lines as `wanted` is most like it, outer spaces ignored.

    Every window is scored cheaply first (see `_line_hits`, summed while the window slides); the best few are then
    compared with difflib, character by character (line by line for a long `old_text`).
    """
    size = min(len(wanted), len(texts))
    target = [line.strip() for line in wanted]
    sums = [0, *accumulate(_line_hits(texts, target))]
    scores = [sums[start + size] - sums[start] for start in range(len(texts) - size + 1)]
    candidates = heapq.nlargest(_CANDIDATES, range(len(scores)), key=lambda start: (scores[start], -start))
    by_char = sum(map(len, target)) <= _CHAR_COMPARE_CHARS
    best, best_ratio = 0, -1.0
    for start in sorted(candidates):
        window = [line.strip() for line in texts[start : start + size]]
        if by_char:
            ratio = difflib.SequenceMatcher(None, "\n".join(window), "\n".join(target), autojunk=False).ratio()
        else:
            pairs = zip(window, target, strict=False)
            ratio = sum(difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() for a, b in pairs)
        if ratio > best_ratio:
            best, best_ratio = start, ratio
    return best


def _line_hits(texts: list[str], target: list[str]) -> list[int]:
    """Per line of the file: 1 if it equals a line of `target` (outer spaces ignored), plus 1 for every word of
    `target` it holds that is rare in the file (a name, a number; a word found more than 200 times, or in more than
    1 line of 20, says little about where `target` is and is left out).

    Words are found by scanning the whole text once per word, not line by line, so a long file stays cheap.
    """
    wanted_lines = {line for line in target if line}
    hits = [1 if line.strip() in wanted_lines else 0 for line in texts]
    joined = "\n".join(texts)
    starts = [0, *accumulate(len(line) + 1 for line in texts)]
    common = min(max(4, len(texts) // 20), 200)
    words = sorted(set(_WORD.findall("\n".join(target))), key=len, reverse=True)[:_SCORED_WORDS]
    for word in words:
        if joined.count(word) > common:
            continue
        for index in {bisect_right(starts, at) - 1 for at in _whole_word_positions(joined, word)}:
            hits[index] += 1
    return hits


def _whole_word_positions(text: str, word: str) -> list[int]:
    positions: list[int] = []
    at = text.find(word)
    while at != -1:
        end = at + len(word)
        if (at == 0 or not _is_word_char(text[at - 1])) and (end == len(text) or not _is_word_char(text[end])):
            positions.append(at)
        at = text.find(word, end)
    return positions


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _numbered(lines: list[str], start: int) -> str:
    shown = [f"{start + k + 1:>4} | {_cut(line)}" for k, line in enumerate(lines[:SHOWN_LINES])]
    if len(lines) > SHOWN_LINES:
        shown.append(f"     … {len(lines) - SHOWN_LINES} more lines")
    return "\n".join(shown)


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _describe(before: list[str], after: list[str], path: str) -> tuple[int, str]:
    """The first changed line (1-based) and a unified diff of the change with two lines of context, bounded.

    Only the part between the common head and tail of the two versions is given to difflib, so a small edit of a
    long file costs little; the hunk headers are then shifted back to the file's line numbers.
    """
    shortest = min(len(before), len(after))
    head = 0
    while head < shortest and before[head] == after[head]:
        head += 1
    tail = 0
    while tail < shortest - head and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    line = min(head, max(len(before), len(after)) - 1) + 1
    low = max(0, head - 2)
    lines = list(
        difflib.unified_diff(
            before[low : len(before) - tail + 2],
            after[low : len(after) - tail + 2],
            f"a/{path}",
            f"b/{path}",
            n=2,
            lineterm="",
        )
    )
    lines = [_HUNK.sub(lambda m: _shift_hunk(m, low), entry) if entry.startswith("@@") else entry for entry in lines]
    shown = [_cut(entry) for entry in lines[:DIFF_LINES]]
    if len(lines) > DIFF_LINES:
        shown.append(f"… {len(lines) - DIFF_LINES} more diff lines")
    return line, "\n".join(shown) + "\n" if shown else ""


def _shift_hunk(match: re.Match[str], by: int) -> str:
    old_start, old_count, new_start, new_count = match.groups()
    return f"@@ -{int(old_start) + by}{old_count or ''} +{int(new_start) + by}{new_count or ''} @@"

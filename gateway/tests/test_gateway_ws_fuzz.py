"""Hypothesis-generated WebSocket frames against the real gateway (and the real agent-runtime behind it).

Every generated frame goes down one open connection, followed by a probe (a frame of an unknown type whose error
names it), so what the gateway answered to the frame is exactly what arrives before the probe's error, whatever
the session is doing meanwhile (frames with a `seq` are the session's own: a valid frame may start a turn). The
frames: random JSON values, objects whose `type` is of every JSON kind, known frames with wrong field types,
strings up to and over the size limits, nesting up to thousands of levels, mangled JSON text, the IDE's rejecting
tool_result, binary frames and pipelined floods; on their own connections, invalid UTF-8 in text frames (1007),
frames over the transport's limit (1009) and seqs no log can hold (in the URL and in a `resume`).

What must hold: a frame the gateway cannot use gets exactly one `error` frame with a documented code (never
INTERNAL) whose text quotes at most a short prefix of the frame; a frame it can use gets no answer or one error
frame with a documented code; nothing else closes the connection; no line of the services' logs is an error or
carries a traceback; and afterwards the same connection (or, after a close, a new one to the same session) still
gets a real answer to a real message. The rate limit is raised here; `test_gateway_client_auth.py` covers it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import string
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from codelab_common.protocol import INBOUND_FRAME_TYPES, ErrorCode
from codelab_gateway.transport.dialects import IDE_REJECTION_PREFIX
from tests.fixtures.gateway import RunningGateway, WsClient

MakeGateway = Callable[..., Awaitable[RunningGateway]]
pytestmark = pytest.mark.filterwarnings(
    # The services share this process: their request ids come from `random` on the loop's thread while Hypothesis
    # draws in its own thread, which its check for strategies using `random` cannot tell apart.
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
T = TypeVar("T")

NO_RATE_LIMIT: dict[str, Any] = {"frames_per_second": 1_000_000.0, "frame_burst": 1_000_000}
MAX_FRAME = 256 << 10
"""The gateway's defaults: any frame but a tool_result, and a tool_result (also the transport's limit)."""
MAX_TOOL_RESULT = 1 << 20
MAX_DEPTH = 64
QUOTE_LIMIT = 64
"""The longest run of the client's text an error frame may quote (an unknown `type`'s prefix)."""
MAX_ERROR_CHARS = 512
DOCUMENTED = frozenset(code.value for code in ErrorCode) - {ErrorCode.INTERNAL.value, ErrorCode.AGENT_DOWN.value}
"""What a frame may be answered with here (agent-runtime is up, so AGENT_DOWN would be a failure too)."""
MAX_SEQ = 2**63 - 1
INVALID = frozenset({ErrorCode.INVALID_FORMAT.value})
TOO_LARGE = frozenset({ErrorCode.TOO_LARGE.value})
UNKNOWN_CALL = frozenset({ErrorCode.UNKNOWN_CALL_ID.value})
KNOWN_TYPES = (*INBOUND_FRAME_TYPES, "switch_agent")
FIELDS: tuple[str, ...] = ("content", "role", "message_id", "model", "call_id", "tool_name", "result", "error")
FIELDS += ("decision", "arguments", "feedback", "remember", "last_seq")
FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    print_blob=True,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: a failing frame is reported as it was sent
    suppress_health_check=list(HealthCheck),
)


@dataclass(frozen=True, slots=True)
class Case:
    """One frame to send and what the gateway must answer."""

    payload: str | bytes
    """Text frame (str), binary frame (bytes)."""
    codes: frozenset[str] = DOCUMENTED
    """The codes its error frame may carry."""
    must_fail: bool = False
    """The frame is unusable (or names no waiting call): exactly one error frame. Otherwise none or one."""
    quoted: tuple[str, ...] = ()
    """Strings of the frame the error may quote at most QUOTE_LIMIT characters of."""


@dataclass
class Stats:
    frames: int = 0
    probes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    closes: Counter[int | None] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def report(self, name: str) -> str:
        codes = ", ".join(f"{code} {count}" for code, count in self.errors.most_common())
        closes = ", ".join(f"{code} {count}" for code, count in self.closes.most_common()) or "none"
        return (
            f"{name}: {self.frames} frames (+{self.probes} probes) in {time.monotonic() - self.started:.1f} s; "
            f"errors: {codes}; no answer: {self.unanswered}; closes: {closes}"
        )


# --- strategies ----------------------------------------------------------------------------------------------------

texts = st.text(max_size=24)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), texts), children, max_size=4),
    ),
    max_leaves=12,
)
not_strings = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(json_values, max_size=3),
    st.dictionaries(texts, json_values, max_size=3),
)
not_dicts: st.SearchStrategy[Any] = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    st.lists(json_values, max_size=3),
)
long_ids = st.builds(lambda chunk, n: (chunk * 300)[:n], st.text(min_size=1, max_size=8), st.integers(129, 600))
fractions = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15).filter(
    lambda x: not x.is_integer()
)
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "content": not_strings | st.just(""),
    "role": not_strings | texts.filter(lambda s: s != "user"),
    "message_id": not_strings | long_ids,
    "model": not_strings | st.just("") | st.text(alphabet=" /;$!?'\"\\\n\t", min_size=1, max_size=8) | long_ids,
    "call_id": not_strings | st.just("") | long_ids,
    "tool_name": not_strings,
    "result": st.one_of(
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.lists(json_values, max_size=3),
    ),
    "error": not_strings,
    "decision": not_strings | texts.filter(lambda s: s not in ("approve", "edit", "reject")),
    "arguments": not_dicts,
    "feedback": not_strings | st.text(min_size=4001, max_size=4001, alphabet="ab"),
    "remember": not_dicts
    | st.fixed_dictionaries({"tool": st.sampled_from(["no_such_tool", "*x", ""]) | long_ids})
    | st.fixed_dictionaries({"tool": st.just("run_command"), "command": st.sampled_from(["a;b", "x | y", " "])})
    | st.dictionaries(long_ids, json_leaves, min_size=1, max_size=2),
    "last_seq": st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=MAX_SEQ + 1, max_value=2**80),  # found by this suite: agent-runtime's SQLite overflowed
        fractions,
        texts.filter(lambda s: not s.strip().lstrip("+-").isdigit()),
        st.lists(json_leaves, max_size=2),
        st.dictionaries(texts, json_leaves, max_size=2),
    ),
}
FIELDS_OF: dict[str, tuple[str, ...]] = {
    "user_message": ("content", "role", "message_id", "model"),
    "tool_result": ("call_id", "tool_name", "result", "error"),
    "approval": ("call_id", "decision", "arguments", "feedback", "remember"),
    "cancel": ("message_id",),
    "resume": ("last_seq",),
}
BASE: dict[str, dict[str, Any]] = {
    "user_message": {"content": "hi"},
    "tool_result": {"call_id": "fuzz-call", "result": {"ok": True}},
    "approval": {"call_id": "fuzz-call", "decision": "reject"},
    "cancel": {},
    "resume": {"last_seq": 0},
}
RAW_TEXTS = [
    "", " ", "null", "0", "[]", "{}", "{", "}", "NaN", "Infinity", "-Infinity", "1e999", "\ufeff{}", '"type"',
    '{"type":"cancel",}', "{'type': 'cancel'}", '{"type":"resume","last_seq":1e999}',
    '{"type":"resume","last_seq":NaN}', '{"type":"resume","last_seq":9223372036854775808}',
    '{"type":"user_message","content":"\\ud800"}', '{"type":"user_message","content":"\\udc00x"}', '{"type":null}',
    '{"type":"user_message","content":"a\x00b"}', '{"type":"cancel"}{"type":"cancel"}', '{"type": "cancel"} x',
    '{"type":"resume","last_seq":184467440737095516160}', '{"type":"resume","last_seq":-0}', '{"a":1,"a":2}',
]  # fmt: skip


BACKSLASHES = Case(json.dumps({"type": "\\" * 300}), INVALID, must_fail=True, quoted=("\\" * 300,))
"""An unknown type's 64-character prefix, escaped, is 128 backslashes: a quote of 64 characters all the same."""
LONG_KEY = "k" * 40 + "".join(string.ascii_letters[i % 52] for i in range(260))
REMEMBER_WITH_A_LONG_KEY = Case(
    json.dumps({"type": "approval", "call_id": "c", "decision": "approve", "remember": {LONG_KEY: 1}}),
    INVALID,
    must_fail=True,
    quoted=(LONG_KEY,),
)
"""Found by this suite: pydantic names an unexpected key in the error's location, which quoted 280 characters."""


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def quotable(value: Any) -> tuple[str, ...]:
    """The frame's strings an error may not quote in full; a `call_id` of at most 128 characters (what the frame
    may name a call by) is named back whole in UNKNOWN_CALL_ID."""
    if isinstance(value, dict) and isinstance(value.get("call_id"), str) and len(value["call_id"]) <= 128:
        value = {key: item for key, item in value.items() if key != "call_id"}
    return tuple(text for text in strings_in(value) if len(text) > QUOTE_LIMIT)


def long(*texts: str) -> tuple[str, ...]:
    return tuple(text for text in texts if len(text) > QUOTE_LIMIT)


def dump(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=False)


def classify(value: Any, text: str) -> Case:
    """A parsed JSON value as a frame: certainly refused unless it is an object with a known `type`."""
    usable = isinstance(value, dict) and value.get("type") in KNOWN_TYPES
    return Case(text, DOCUMENTED if usable else INVALID, must_fail=not usable, quoted=quotable(value))


@st.composite
def random_values(draw: st.DrawFn) -> Case:
    value = draw(json_values)
    return classify(value, dump(value, draw(st.booleans())))


type_values = st.one_of(
    st.sampled_from(KNOWN_TYPES),
    st.sampled_from(["USER_MESSAGE", "user_message ", "toolResult", "plan_approve", "error", "ack"]),
    texts,
    long_ids,
    not_strings,
    st.none(),
)
other_fields = st.dictionaries(st.sampled_from(FIELDS) | texts, json_values, max_size=5)
extra_fields = st.dictionaries(texts.filter(lambda key: key not in FIELDS and key != "type"), json_leaves, max_size=2)
wrong_names = {kind: st.lists(st.sampled_from(names), min_size=1, unique=True) for kind, names in FIELDS_OF.items()}
chunks = st.text(min_size=1, max_size=16) | st.text(alphabet=string.ascii_letters, min_size=20, max_size=40)
PLACES = ("content", "type", "feedback", "result", "call_id", "key")
big_sizes = st.integers(0, MAX_FRAME + 4096) | st.sampled_from(
    [MAX_FRAME - 64, MAX_FRAME - 1, MAX_FRAME, MAX_FRAME + 1, MAX_FRAME + 64]
)
too_long_contents = st.integers(200_001, 300_000)
depths = st.integers(1, 5000) | st.sampled_from([31, 32, 33, 62, 63, 64, 65, 66, 1023, 1024, 1025, 1026])


@st.composite
def typed_objects(draw: st.DrawFn) -> Case:
    """Objects whose `type` is of every JSON kind: known and unknown strings, numbers, booleans, null, containers."""
    kind = draw(type_values)
    others = draw(other_fields)
    value = {**others, "type": kind}
    return classify(value, dump(value, draw(st.booleans())))


@st.composite
def wrong_fields(draw: st.DrawFn) -> Case:
    """A known frame with at least one field of the wrong type (or out of its range)."""
    kind = draw(st.sampled_from(INBOUND_FRAME_TYPES))
    wrong = draw(wrong_names[kind])
    extra = draw(extra_fields)
    value = {**extra, **BASE[kind], "type": kind, **{name: draw(WRONG[name]) for name in wrong}}
    return Case(dump(value, draw(st.booleans())), INVALID, must_fail=True, quoted=quotable(value))


def repeat(chunk: str, chars: int) -> str:
    return (chunk * (chars // len(chunk) + 1))[:chars]


@st.composite
def huge_strings(draw: st.DrawFn) -> Case:
    """A string up to and over the frame limits, in each place a client could put one."""
    chunk = draw(chunks)
    where = draw(st.sampled_from(PLACES))
    chars = draw(too_long_contents if where == "content" else big_sizes)
    big = repeat(chunk, chars)
    places: dict[str, dict[str, Any]] = {
        "content": {"type": "user_message", "content": big},
        "type": {"type": big},
        "feedback": {"type": "approval", "call_id": "fuzz-call", "decision": "reject", "feedback": big},
        "result": {"type": "tool_result", "call_id": "fuzz-call", "result": big},
        "call_id": {"type": "tool_result", "call_id": big, "result": "x"},
        "key": {"type": "cancel", "message_id": "m", "k" + big: 1},
    }
    value = places[where]
    text = dump(value, draw(st.booleans()))
    size = len(text.encode())
    if size > MAX_TOOL_RESULT:  # the transport closes on those: see test_frames_over_the_transport_limit_close_1009
        text = text[: MAX_TOOL_RESULT // 4]
        return Case(text, INVALID, must_fail=True, quoted=long(big))  # cut: no longer JSON
    if size > MAX_FRAME and where != "result" and where != "call_id":
        return Case(text, TOO_LARGE, must_fail=True, quoted=long(big))
    usable = {
        "content": False,
        "type": False,
        "feedback": len(big) <= 4000,
        "result": True,
        "call_id": 1 <= len(big) <= 128,
        "key": True,
    }[where]
    if where == "key":  # a cancel with no turn running: nothing to say, or that there is nothing to cancel
        return Case(text, DOCUMENTED, quoted=long(big))
    codes = UNKNOWN_CALL if usable else INVALID
    return Case(text, codes, must_fail=True, quoted=() if where == "call_id" and usable else long(big))


@st.composite
def deep_nesting(draw: st.DrawFn) -> Case:
    """Arrays and objects nested up to thousands of levels: at the top, inside a tool's result or an edit's
    arguments, or left unclosed."""
    depth = draw(depths)
    kind = draw(st.sampled_from(["array", "object", "mixed"]))
    opening = {"array": "[", "object": '{"a":', "mixed": '[{"a":'}[kind]
    closing = {"array": "]", "object": "}", "mixed": "}]"}[kind]
    levels = depth * (2 if kind == "mixed" else 1)
    inner = opening * depth + "1" + closing * depth
    where = draw(st.sampled_from(["top", "result", "arguments", "unclosed"]))
    if where == "top":
        return Case(inner, INVALID, must_fail=True)
    if where == "unclosed":
        return Case('{"type": "tool_result", "call_id": "c", "result": ' + opening * depth, INVALID, must_fail=True)
    if where == "result":
        text = '{"type": "tool_result", "call_id": "fuzz-call", "result": {"x": ' + inner + "}}"
    else:
        text = '{"type": "approval", "call_id": "fuzz-call", "decision": "edit", "arguments": {"x": ' + inner + "}}"
    total = levels + 2  # the frame, the result (or arguments) object, then `inner`'s containers
    return Case(text, INVALID if total > MAX_DEPTH else UNKNOWN_CALL, must_fail=True)


@st.composite
def mangled_text(draw: st.DrawFn) -> Case:
    """Text that is rarely JSON: known oddities, arbitrary text, and real frames cut or with characters spliced in."""
    choice = draw(st.sampled_from(["raw", "text", "cut", "splice"]))
    if choice == "raw":
        text = draw(st.sampled_from(RAW_TEXTS))
    elif choice == "text":
        text = draw(st.text(max_size=200))
    else:
        kind = draw(st.sampled_from(INBOUND_FRAME_TYPES))
        frame = dump({**BASE[kind], "type": kind}, ascii_only=True)
        at = draw(st.integers(0, len(frame)))
        text = frame[:at] if choice == "cut" else frame[:at] + draw(st.text(min_size=1, max_size=3)) + frame[at:]
    try:
        value = json.loads(text)
    except ValueError:
        return Case(text, INVALID, must_fail=True, quoted=long(text))
    return classify(value, text)


@st.composite
def ide_rejections(draw: st.DrawFn) -> Case:
    """The IDE's rejecting tool_result (its error starts `Операция отклонена:`), which the IDE path turns into an
    `approval` that rejects the call: here for a call that is not waiting."""
    value = {
        "type": "tool_result",
        "call_id": draw(st.text(min_size=1, max_size=128)),
        "tool_name": draw(st.none() | texts),
        "error": IDE_REJECTION_PREFIX + draw(st.text(max_size=50) | long_ids),
    }
    return Case(dump(value, draw(st.booleans())), UNKNOWN_CALL, must_fail=True, quoted=quotable(value))


@st.composite
def binary_frames(draw: st.DrawFn) -> Case:
    data = draw(st.binary(max_size=2048) | st.builds(lambda v: json.dumps(v).encode(), json_values))
    return Case(data, INVALID, must_fail=True)


frames = st.one_of(
    random_values(),
    typed_objects(),
    wrong_fields(),
    huge_strings(),
    deep_nesting(),
    mangled_text(),
    ide_rejections(),
    binary_frames(),
)
refused_frames = st.one_of(wrong_fields(), deep_nesting(), mangled_text(), binary_frames()).filter(
    lambda case: case.must_fail and case.codes == INVALID
)


# --- running Hypothesis beside the event loop ----------------------------------------------------------------------


def on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine on the test's loop from Hypothesis's thread and wait for it."""

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=120)

    return run


class LogRecorder(logging.Handler):
    """Every log record of the services (they share this process): an error or a traceback is a crash."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def crashes(self) -> list[str]:
        found = []
        for record in self.records:
            text = str(record.msg)
            event = record.msg if isinstance(record.msg, dict) else {}
            if record.levelno >= logging.ERROR or record.exc_info or "Traceback" in text or "exception" in event:
                found.append(f"{record.name} {record.levelname}: {text[:2000]}")
        return found


@contextmanager
def recording_logs() -> Iterator[LogRecorder]:
    """Start after the gateway: its startup points the root logger at its own handler, whose filters the recorder
    takes, so it sees each line as the services write it (uvicorn's error line for a text frame that is not UTF-8 is
    one INFO line there). What an earlier test left for the garbage collector is collected first, so that its
    complaints (asyncio's "Task was destroyed") stay out."""
    gc.collect()
    recorder = LogRecorder()
    root = logging.getLogger()
    for handler in root.handlers:
        for log_filter in handler.filters:
            recorder.addFilter(log_filter)
    root.addHandler(recorder)
    try:
        yield recorder
    finally:
        root.removeHandler(recorder)


# --- one frame, and what came back ---------------------------------------------------------------------------------


async def send(client: WsClient, payload: str | bytes) -> None:
    if isinstance(payload, bytes):
        await client.ws.send_bytes(payload)
    else:
        await client.ws.send_str(payload)


async def answers_before_probe(client: WsClient, probe: str) -> list[dict[str, Any]]:
    """The gateway's own frames (no seq) up to the probe's error; the session's frames (a turn) are skipped."""
    answers: list[dict[str, Any]] = []
    while True:
        frame = await client.recv(timeout=30)
        if frame.get("seq") is not None:
            continue
        if frame.get("type") == "error" and f"'{probe}'" in str(frame.get("content")):
            return answers
        answers.append(frame)


def check_answers(case: Case, answers: list[dict[str, Any]], stats: Stats) -> None:
    stats.frames += 1
    shown = case.payload[:200]
    assert len(answers) <= 1, f"more than one answer to {shown!r}: {answers}"
    if not answers:
        assert not case.must_fail, f"no error frame for {shown!r}"
        stats.unanswered += 1
        return
    error = answers[0]
    code = error.get("code")
    assert error.get("type") == "error", (shown, error)
    assert code in case.codes, f"{code} for {shown!r} (expected one of {sorted(case.codes)}): {error}"
    stats.errors[str(code)] += 1
    content = error.get("content")
    assert isinstance(content, str) and content and error.get("error") == content, error
    assert len(content) <= MAX_ERROR_CHARS, f"{len(content)} characters: {content[:200]!r}"
    # A prefix is quoted as repr() writes it (64 backslashes come out as 128): that much may be there, however long.
    rest = content
    for quoted in case.quoted:
        rest = rest.replace(repr(quoted[:QUOTE_LIMIT]), "<prefix>")
    for quoted in case.quoted:
        for start in {0, len(quoted) - QUOTE_LIMIT - 1, (len(quoted) - QUOTE_LIMIT) // 2}:
            window = quoted[start : start + QUOTE_LIMIT + 1]
            assert window not in rest, f"the error quotes more than {QUOTE_LIMIT} characters: {content!r}"


async def exchange(client: WsClient, case: Case, stats: Stats) -> None:
    probe = f"fuzz-probe-{stats.frames}"
    await send(client, case.payload)
    await client.ws.send_str(f'{{"type": "{probe}"}}')
    stats.probes += 1
    check_answers(case, await answers_before_probe(client, probe), stats)


async def flood(client: WsClient, cases: list[Case], stats: Stats) -> None:
    """Send every frame before reading anything: the answers come back one each, in order."""
    for case in cases:
        await send(client, case.payload)
    for case in cases:
        answer = await client.recv(timeout=30)
        while answer.get("seq") is not None:
            answer = await client.recv(timeout=30)
        check_answers(case, [answer], stats)


async def still_answers(client: WsClient, gateway: RunningGateway, text: str) -> None:
    """After the fuzzing: whatever turn a valid frame started ends, then a real message gets a real answer."""
    while True:  # drain until quiet: a turn the fuzzing started, a replay a `resume` asked for
        try:
            await client.recv(timeout=1.0)
        except TimeoutError:
            break
    gateway.upstream.reply_text(text)
    await client.say("are you still there?")
    frames = await client.turn(timeout=15)
    answer = "".join(f["content"] for f in frames if f["type"] == "assistant_message")
    assert answer == text, frames


# --- the tests -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ide", "examples"), [(False, 1600), (True, 400)], ids=["stream", "ide"])
async def test_generated_frames_get_precise_errors_and_the_connection_keeps_working(
    make_gateway: MakeGateway, ide: bool, examples: int
) -> None:
    gateway = await make_gateway(**NO_RATE_LIMIT)
    stats = Stats()
    run = on_loop(asyncio.get_running_loop())
    with recording_logs() as logs:
        async with gateway.connect(f"fuzz-{'ide' if ide else 'stream'}", ide=ide) as client:

            @settings(FUZZ_SETTINGS, max_examples=examples)
            @given(case=frames)
            @example(case=REMEMBER_WITH_A_LONG_KEY)
            @example(case=BACKSLASHES)
            def fuzz(case: Case) -> None:
                run(exchange(client, case, stats))

            await asyncio.to_thread(fuzz)
            print(stats.report(f"frames on one {'IDE' if ide else 'stream'} connection"))
            assert stats.frames >= examples
            await still_answers(client, gateway, "still here after the fuzzing")
    assert logs.crashes() == []


async def test_pipelined_floods_of_bad_frames_are_each_answered_in_order(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(**NO_RATE_LIMIT)
    stats = Stats()
    run = on_loop(asyncio.get_running_loop())
    with recording_logs() as logs:
        async with gateway.connect("fuzz-flood") as client:

            @settings(FUZZ_SETTINGS, max_examples=10)
            @given(burst=st.lists(refused_frames, min_size=100, max_size=200))
            def fuzz(burst: list[Case]) -> None:
                run(flood(client, burst, stats))

            await asyncio.to_thread(fuzz)
            print(stats.report("pipelined floods"))
            assert stats.frames >= 1000
            await still_answers(client, gateway, "flood survived")
    assert logs.crashes() == []


invalid_utf8 = st.builds(
    lambda prefix, bad, suffix: prefix.encode() + bad + suffix.encode(),
    st.sampled_from(['{"type": "user_message", "content": "', "", '{"type": "', "x"]),
    st.sampled_from(
        [
            b"\xff",
            b"\xfe\xff",
            b"\xc0\x80",
            b"\xc3",
            b"\xe2\x82",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\x80",
            b"\xf8",
        ]
    )
    | st.binary(min_size=1, max_size=16).filter(lambda b: not _is_utf8(b)),
    st.sampled_from(['"}', "", "tail"]),
)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


async def closed_by(client: WsClient, payload: bytes, opcode: aiohttp.WSMsgType) -> int | None:
    await client.ws.send_frame(payload, opcode)
    code, _ = await client.closed(timeout=10)
    return code


async def test_invalid_utf8_in_a_text_frame_closes_1007_and_the_session_goes_on(make_gateway: MakeGateway) -> None:
    """Invalid UTF-8 is the transport's to refuse (RFC 6455 §8.1): uvicorn closes with 1007 before the app sees it."""
    gateway = await make_gateway(**NO_RATE_LIMIT)
    stats = Stats()
    run = on_loop(asyncio.get_running_loop())

    async def one(payload: bytes) -> None:
        async with gateway.connect("fuzz-utf8") as client:
            code = await closed_by(client, payload, aiohttp.WSMsgType.TEXT)
        stats.frames += 1
        stats.closes[code] += 1
        assert code == 1007, (payload, code)

    with recording_logs() as logs:

        @settings(FUZZ_SETTINGS, max_examples=40)
        @given(payload=invalid_utf8)
        def fuzz(payload: bytes) -> None:
            run(one(payload))

        await asyncio.to_thread(fuzz)
        print(stats.report("invalid UTF-8 text frames, one connection each"))
        async with gateway.connect("fuzz-utf8") as client:
            await still_answers(client, gateway, "utf-8 survived")
    assert logs.crashes() == []


async def test_frames_over_the_transport_limit_close_1009_and_the_session_goes_on(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(**NO_RATE_LIMIT)
    stats = Stats()
    run = on_loop(asyncio.get_running_loop())

    async def one(payload: bytes, opcode: aiohttp.WSMsgType) -> None:
        async with gateway.connect("fuzz-1009") as client:
            code = await closed_by(client, payload, opcode)
        stats.frames += 1
        stats.closes[code] += 1
        assert code == 1009, (len(payload), code)

    with recording_logs() as logs:

        @settings(FUZZ_SETTINGS, max_examples=12)
        @given(
            extra=st.integers(1, 256 << 10) | st.just(1),
            kind=st.sampled_from(["tool_result", "user_message", "garbage"]),
            binary=st.booleans(),
        )
        def fuzz(extra: int, kind: str, binary: bool) -> None:
            head = {
                "tool_result": b'{"type": "tool_result", "call_id": "c", "result": "',
                "user_message": b'{"type": "user_message", "content": "',
                "garbage": b"",
            }[kind]
            payload = (head + b"x" * (MAX_TOOL_RESULT + extra))[: MAX_TOOL_RESULT + extra - 2] + b'"}'
            assert len(payload) == MAX_TOOL_RESULT + extra
            run(one(payload, aiohttp.WSMsgType.BINARY if binary else aiohttp.WSMsgType.TEXT))

        await asyncio.to_thread(fuzz)
        print(stats.report("frames over the transport's limit, one connection each"))
        async with gateway.connect("fuzz-1009") as client:
            await client.send(
                '{"type": "tool_result", "call_id": "c", "result": "' + "x" * (MAX_TOOL_RESULT - 60) + '"}'
            )
            assert (await client.recv())["code"] == "UNKNOWN_CALL_ID", "a tool_result just under the limit is taken"
            await still_answers(client, gateway, "1009 survived")
    assert logs.crashes() == []


FAR_SEQS = [str(MAX_SEQ + 1), str(2**64), "9" * 40, "²", "١٢", "-1", "1e3", "0x10", "x" * 5000]


async def test_a_last_seq_no_log_can_hold_is_refused_in_the_url_and_in_a_resume_frame(
    make_gateway: MakeGateway,
) -> None:
    """Found by this suite: a seq past 2**63 - 1 reached agent-runtime, whose SQLite overflowed (a 500 and a traceback
    every retry), and the gateway told the client AGENT_DOWN and retried for as long as the client stayed."""
    gateway = await make_gateway()
    with recording_logs() as logs:
        for last_seq in FAR_SEQS:
            async with gateway.connect("far-seq", query=f"last_seq={last_seq}") as client:
                error = await client.recv()
                assert error["code"] == "INVALID_FORMAT", error
                assert error["content"].startswith(f"last_seq must be a whole number from 0 to {MAX_SEQ}, got ")
                assert len(error["content"]) < 120, "it quotes at most 32 characters"
                assert (await client.closed())[0] == 1008
        async with gateway.connect("far-seq") as client:
            for last_seq in FAR_SEQS[:3]:
                await client.send(f'{{"type": "resume", "last_seq": {last_seq}}}')
                error = await client.recv()
                assert error["code"] == "INVALID_FORMAT", error
                assert error["content"].startswith("invalid resume: last_seq: ")
            await client.send(f'{{"type": "resume", "last_seq": {MAX_SEQ}}}')  # the largest is taken
            await client.silent(0.5)
            await client.send('{"type": "resume", "last_seq": 0}')
            await still_answers(client, gateway, "seqs in range")
    assert logs.crashes() == []

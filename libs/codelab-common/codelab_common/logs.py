"""structlog setup shared by every service: JSON lines on stderr, secrets redacted before rendering.

Redaction works three ways: values under secret-looking keys (`api_key`, `authorization`, ...) are blanked; bearer
tokens and `sk-` keys are blanked wherever they appear; and every configured secret value itself (the service's
`SecretStr` settings, and environment variables whose names say key, token, secret or password, such as an
upstream's `OPENAI_API_KEY`) is blanked wherever it appears, whatever it looks like. Query strings keep their
parameter names and lose their values (a client's `?token=` never reaches a log), and no string is logged longer
than `MAX_VALUE_CHARS`, so a client's payload appears at most as a bounded prefix. A standard-library record's
arguments (uvicorn's request paths, the WebSocket library's header values at DEBUG) are cut much shorter, to
`MAX_ARGUMENT_CHARS` each: a client chooses them, and a request line is logged at INFO. Header lines that carry a
credential (`< authorization: ...`, `x-internal-auth`, `x-api-key`, `cookie`) keep only their name, and a bearer
token is blanked in any case and also in the `bearer.<token>` subprotocol form, whether the token is valid or not.

Every line carries the context variables bound for the work in progress (`service`, `request_id`, `session_id`)
and, inside a traced request or turn, its `trace_id` and `span_id`; an exception logged with `log.exception` (or
`exc_info`) is rendered as its traceback under `exception`, redacted like the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from typing import Any

import structlog
from opentelemetry import trace

_SECRET_KEY = re.compile(
    r"(api[_-]?key|authorization|x-internal-auth|secret|password|bearer|(?:^|[_-])token$)", re.IGNORECASE
)
"""Keys whose values are blanked: a key named `token` or `*_token` is a credential, `tokens_in` or `max_tokens` a
count."""
_SECRET_VALUE = re.compile(r"(?i:(bearer\s+|bearer\.))[A-Za-z0-9._~+/=-]+|\b(sk-[A-Za-z0-9_-]{8,})")
_SECRET_HEADER = re.compile(
    r"(?im)^((?:[<>] )?(?:proxy-authorization|authorization|x-internal-auth|x-api-key|api-key|cookie|set-cookie)"
    r"[ \t]*:[ \t]*)\S.*$"
)
_QUERY_VALUE = re.compile(r"([?&][A-Za-z0-9_.\-\[\]]+=)[^&\s\"'#]+")
_SECRET_ENV_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)S?$|(KEY|TOKEN|SECRET|PASSWORD)S?_", re.IGNORECASE)
MIN_SECRET_CHARS = 8
"""Shorter configured values are not redacted as text: they would blank ordinary words."""
MAX_VALUE_CHARS = 4000
"""The longest string a log line holds; longer ones are cut and say by how much."""
MAX_ARGUMENT_CHARS = 256
"""The longest argument of a standard-library record (a request's path, a header's value)."""
REDACTED = "[redacted]"

_known_secrets: set[str] = set()
_known_pattern: re.Pattern[str] | None = None


def register_secrets(*values: str | None) -> None:
    """Blank these values wherever they appear in a log line (each part of a comma-separated list and each token
    of a `name:token` pair too)."""
    global _known_pattern
    for value in values:
        for part in _parts(value or ""):
            if len(part) >= MIN_SECRET_CHARS:
                _known_secrets.add(part)
    if _known_secrets:
        alternatives = sorted(_known_secrets, key=len, reverse=True)
        _known_pattern = re.compile("|".join(re.escape(secret) for secret in alternatives))


def secrets_in_environment(environ: dict[str, str]) -> list[str]:
    """Values of environment variables whose names say they hold a key, token, secret or password."""
    return [value for name, value in environ.items() if _SECRET_ENV_NAME.search(name)]


def _parts(value: str) -> list[str]:
    parts = [value.strip()]
    for item in value.split(","):
        item = item.strip()
        parts += [item, item.rpartition(":")[2].strip()]
    return parts


def _redact_text(text: str, keep_end: bool = False, limit: int = MAX_VALUE_CHARS) -> str:
    if _known_pattern is not None:
        text = _known_pattern.sub(REDACTED, text)
    text = _SECRET_HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SECRET_VALUE.sub(lambda m: (m.group(1) or "") + REDACTED, text)
    text = _QUERY_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    if len(text) > limit:
        cut = len(text) - limit
        if keep_end:  # a traceback: its end says what failed
            return f"[{cut} characters not logged] …{text[-limit:]}"
        return f"{text[:limit]}… [{cut} more characters not logged]"
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def redact_secrets(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: blanks values under secret-looking keys and bearer tokens inside strings."""
    return {
        k: REDACTED
        if _SECRET_KEY.search(k)
        else _redact_text(v, keep_end=True)
        if k == "exception" and isinstance(v, str)
        else _redact_value(v)
        for k, v in event_dict.items()
    }


class _Bounded:
    """A standard-library record's argument as `%s` or `%r` writes it, redacted and cut to `MAX_ARGUMENT_CHARS`."""

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        self._value = value

    def __str__(self) -> str:
        return _redact_text(str(self._value), limit=MAX_ARGUMENT_CHARS)

    def __repr__(self) -> str:
        return _redact_text(repr(self._value), limit=MAX_ARGUMENT_CHARS)


def bound_foreign_arguments(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor for standard-library records: a message longer than `MAX_ARGUMENT_CHARS` is formatted
    again with each argument (but numbers) redacted and cut to `MAX_ARGUMENT_CHARS`, redacted first so no secret is
    left half-cut (uvicorn's request paths, the WebSocket library's header values, a database driver's parameters)."""
    args = event_dict.pop("positional_args", None)  # the formatter's `pass_foreign_args`
    record = event_dict.get("_record")
    if event_dict.get("_from_structlog") or not isinstance(record, logging.LogRecord) or not args:
        return event_dict
    if not isinstance(args, tuple) or len(str(event_dict.get("event", ""))) <= MAX_ARGUMENT_CHARS:
        return event_dict
    bounded = tuple(a if a is None or isinstance(a, int | float) else _Bounded(a) for a in args)
    with contextlib.suppress(TypeError, ValueError):  # a message that did not format: left as the library wrote it
        event_dict["event"] = str(record.msg) % bounded
    return event_dict


def add_trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current span's trace and span ids, when a span is current."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = f"{context.trace_id:032x}"
        event_dict["span_id"] = f"{context.span_id:016x}"
    return event_dict


CLIENT_FAULTS = ("Invalid UTF-8 sequence received from client",)
"""uvicorn's error lines (with a traceback) for what a client sent wrong: a client that can open connections could
fill the log with them, so each is one line at INFO, without the traceback."""


def _client_faults_are_not_errors(record: logging.LogRecord) -> bool:
    if record.name == "uvicorn.error" and isinstance(record.msg, str) and record.msg.startswith(CLIENT_FAULTS):
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text = None, None
    return True


def configure_logging(
    service: str, level: str = "INFO", json: bool = True, secrets: tuple[str | None, ...] = ()
) -> None:
    """Route structlog and the standard library (uvicorn included) through one redacting renderer; `secrets` and
    the secret-named environment variables are blanked wherever they appear."""
    register_secrets(*secrets, *secrets_in_environment(dict(os.environ)))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        structlog.processors.format_exc_info,
        bound_foreign_arguments,
        redact_secrets,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        # A line below the level is dropped before redaction and rendering, not after.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_client_faults_are_not_errors)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            pass_foreign_args=True,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)  # the root's level, whatever a uvicorn.Config set before
    structlog.contextvars.bind_contextvars(service=service)

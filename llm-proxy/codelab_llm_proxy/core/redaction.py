"""What an upstream said about its failure, made fit for a client: secrets and internal addresses removed, bounded.

An upstream's error body never reaches a client as it is. The proxy writes the error itself (which deployment of which
model failed, the upstream's HTTP status) and adds the upstream's error type and at most
`MAX_UPSTREAM_MESSAGE_CHARS` of its message after `Redactor.clean`: every configured secret (each deployment's
upstream key, read when cleaning so a rotated key is known, and the proxy's own keys) becomes `[redacted]`, as does
anything shaped like a credential (`Bearer …`, `sk-…`, a JWT, `api_key=…`); URLs become `[url]` and the hostnames of
the deployments `[host]`, so no internal address leaves either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

MAX_UPSTREAM_MESSAGE_CHARS = 300
MIN_SECRET_CHARS = 4
"""Shorter configured keys are not searched for (they would blank out ordinary words and are no secret anyway)."""
REDACTED = "[redacted]"

_KIND = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]*[^\s\"'<>`.,;:!?)\]}]")
_CREDENTIAL_SHAPES = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{4,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    (
        re.compile(
            r"(?i)\b(api[-_]?key|x-api-key|access[-_]?token|client[-_]?secret|token|secret|password)"
            r"(\"?\s*[:=]\s*\"?)[^\s\"',;}]+"
        ),
        rf"\1\2{REDACTED}",
    ),
)


class Redactor:
    def __init__(self, secrets: Callable[[], Iterable[str | None]] = tuple, hosts: Iterable[str] = ()) -> None:
        self._secrets = secrets
        names = sorted({host for host in hosts if host}, key=len, reverse=True)
        self._hosts = (
            re.compile(rf"(?i)(?<![\w.-])(?:{'|'.join(map(re.escape, names))})(?::\d+)?(?![\w-])") if names else None
        )

    def clean(self, text: str) -> str:
        """`text` without secrets, credentials, URLs and deployment hostnames."""
        known = {secret for secret in self._secrets() if secret and len(secret) >= MIN_SECRET_CHARS}
        for secret in sorted(known, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        text = _URL.sub("[url]", text)
        for pattern, replacement in _CREDENTIAL_SHAPES:
            text = pattern.sub(replacement, text)
        if self._hosts is not None:
            text = self._hosts.sub("[host]", text)
        return text

    def summary(self, text: str) -> str:
        """An upstream's message as a client may read it: cleaned, on one line, and cut to `MAX_UPSTREAM_MESSAGE_CHARS`
        (after cleaning, so no secret is left half-removed)."""
        words = " ".join(self.clean(text).split())
        if len(words) <= MAX_UPSTREAM_MESSAGE_CHARS:
            return words
        return words[: MAX_UPSTREAM_MESSAGE_CHARS - 1] + "…"

    def kind(self, kind: str) -> str:
        """An upstream's error type or code when it is a short identifier with nothing to clean, else ""."""
        return kind if _KIND.fullmatch(kind) and self.clean(kind) == kind else ""

"""Who is on the other end of a client WebSocket: the principal its credential names.

A client presents a bearer credential in one of three places, checked in this order:

- `Authorization: Bearer <token>`;
- `Sec-WebSocket-Protocol: codelab, bearer.<token>` (browsers cannot set headers; the gateway answers `codelab`,
  never echoing the token);
- `?token=<token>` in the URL, for clients that can set neither (access logs never show it).

The credential is checked against static tokens (`GATEWAY__CLIENT_AUTH=token`) or as a JWT
(`GATEWAY__CLIENT_AUTH=jwt`: HS256 with a shared secret, or RS256 with keys from a JWKS URL). With
`GATEWAY__CLIENT_AUTH=none` every client is the same anonymous principal; the settings refuse that mode unless the
gateway listens on a loopback address only.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from typing import Any

import jwt
from starlette.datastructures import Headers, QueryParams

from codelab_gateway.core.config import ClientAuth, Settings

SUBPROTOCOL = "codelab"
"""The subprotocol the gateway selects when a client offers its token as `bearer.<token>`."""
BEARER_SUBPROTOCOL_PREFIX = "bearer."
TOKEN_QUERY_PARAMETER = "token"
MAX_CREDENTIAL_CHARS = 8192
JWKS_CACHE_S = 300


class AuthError(Exception):
    """The client is not let in; the message says what to send instead (never what was sent)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a connection acts for; `name` is None in `none` mode, where sessions are not owned."""

    name: str | None
    subprotocol: str | None = None
    """The subprotocol to answer the handshake with (set when the client offered some)."""

    @property
    def label(self) -> str:
        return self.name or "anonymous"


class ClientAuthenticator:
    def __init__(self, settings: Settings) -> None:
        self.mode = settings.client_auth
        self._tokens = [(token.encode(), name) for name, token in settings.client_token_pairs()]
        self._jwt_secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._jwks = (
            jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=JWKS_CACHE_S)
            if settings.jwt_jwks_url
            else None
        )
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._claim = settings.jwt_principal_claim

    async def authenticate(self, headers: Headers, query: QueryParams) -> Principal:
        offered = _offered_subprotocols(headers)
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
        if self.mode is ClientAuth.NONE:
            return Principal(None, subprotocol)
        credential = _credential(headers, offered, query)
        if credential is None:
            raise AuthError(
                "this gateway needs a token: send 'Authorization: Bearer <token>', the subprotocols "
                f"'{SUBPROTOCOL}, {BEARER_SUBPROTOCOL_PREFIX}<token>', or ?{TOKEN_QUERY_PARAMETER}=<token>"
            )
        if len(credential) > MAX_CREDENTIAL_CHARS:
            raise AuthError(f"the token is longer than {MAX_CREDENTIAL_CHARS} characters")
        name = self._static(credential) if self.mode is ClientAuth.TOKEN else await self._jwt(credential)
        return Principal(name, subprotocol)

    def _static(self, credential: str) -> str:
        presented = credential.encode()
        found: str | None = None
        for token, name in self._tokens:  # every token compared, so timing does not tell which nearly matched
            if hmac.compare_digest(presented, token):
                found = name
        if found is None:
            raise AuthError("the token is not valid for this gateway")
        return found

    async def _jwt(self, credential: str) -> str:
        try:
            if self._jwks is not None:
                # PyJWKClient fetches with urllib (blocking); the keys are cached, so this rarely goes out.
                signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, credential)
                key: Any = signing.key
                algorithms = ["RS256"]
            else:
                key, algorithms = self._jwt_secret, ["HS256"]
            claims = jwt.decode(
                credential,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", self._claim]},
            )
        except jwt.PyJWKClientError as exc:
            raise AuthError(f"the token's signing key cannot be found: {_short(exc)}") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"the token is not valid: {_short(exc)}") from None
        principal = claims.get(self._claim)
        if not isinstance(principal, str) or not principal:
            raise AuthError(f"the token's {self._claim!r} claim must be a non-empty string")
        return principal[:200]


def _offered_subprotocols(headers: Headers) -> list[str]:
    return [part.strip() for value in headers.getlist("sec-websocket-protocol") for part in value.split(",")]


def _credential(headers: Headers, offered: list[str], query: QueryParams) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    for protocol in offered:
        if protocol.startswith(BEARER_SUBPROTOCOL_PREFIX):
            return protocol[len(BEARER_SUBPROTOCOL_PREFIX) :] or None
    return query.get(TOKEN_QUERY_PARAMETER) or None


def _short(exc: Exception) -> str:
    return str(exc)[:120]

"""The errors llm-proxy's routes declare in their OpenAPI besides those of every service (400, 401 and 413, see
`codelab_common.http_errors.document_errors`, which also gives each declared error the envelope as its content;
`/v1/messages` answers Anthropic's `{"type": "error", "error": {...}}`, which the envelope's schema takes too)."""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]

MODEL_NOT_FOUND: Responses = {404: {"description": "model_not_found: no model of that name"}}

MODEL_CALL: Responses = {
    **MODEL_NOT_FOUND,
    429: {"description": "rate_limit_exceeded: the caller's requests or tokens per window are spent (Retry-After)"},
    "4XX": {"description": "upstream_rejected: the model's server refused the request; its status is kept"},
    502: {"description": "upstream_error: the model's server failed"},
    503: {"description": "deployments_unavailable: every deployment of the model is out of rotation"},
    504: {"description": "upstream_timeout: the model's server did not answer in time"},
}
"""A chat completion or a message: the model's lookup, the caller's rate limit, then the upstream call."""

TOKENIZE: Responses = {
    404: {"description": "model_not_found, or no_tokenizer: the model has no tokenizer here (estimate instead)"},
    502: {"description": "upstream_error: the model's server could not count"},
}

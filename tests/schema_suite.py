"""Schemathesis against a running service: every operation of its OpenAPI document, called over HTTP.

`run_schema_suite` drives Schemathesis' own engine (what `schemathesis run` does: explicit examples, the coverage
phase's boundary and invalid values, then random fuzzing, in positive and negative modes) and gathers what it saw:
cases run, the statuses answered and every failed check, deduplicated. The checks are those about the service's
own contract: no 5xx, every status and body as the document declares them, the declared content type.

It blocks: run it in a thread (`asyncio.to_thread`) when the service is served in the caller's event loop.
Streams (SSE) and WebSockets are no operations Schemathesis can call; a caller excludes them by path.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from schemathesis.engine import Status, events, from_schema

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "ignored_auth",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
]
"""The service's own contract: no 5xx; every status, body, content type and header as the document declares them;
the declared key (`X-Internal-Auth`) enforced; an undeclared method a 405 with `Allow`. Left out: checks that a body
the schema allows is accepted and one it forbids refused (positive/negative_data_acceptance: a request for a model or
a call that does not exist is a 404 however well formed, and `/input` takes `session_id` from its path), and those
that presume a REST resource model (use_after_free, ensure_resource_availability)."""


@dataclass
class SchemaReport:
    """What one run saw."""

    label: str
    operations: int = 0
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    """One entry per distinct failure: `METHOD /path: title` → its message and a curl command that repeats it."""
    errors: list[str] = field(default_factory=list)
    """Errors of the run itself (a schema Schemathesis cannot read, a connection refused)."""
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        return (
            f"{self.label}: {self.operations} operations, {self.cases} cases in {self.seconds:.1f} s, "
            f"{len(self.failures)} failures, {len(self.errors)} errors; statuses {{{statuses}}}"
        )

    def details(self) -> str:
        lines = [self.summary()]
        lines += [f"  FAIL {name}\n    {sample}" for name, sample in self.failures.items()]
        lines += [f"  ERROR {error}" for error in self.errors]
        return "\n".join(lines)


def run_schema_suite(
    label: str,
    document: dict[str, Any],
    base_url: str,
    *,
    headers: dict[str, str] | None = None,
    max_examples: int = 20,
    exclude_paths: Iterable[str] = (),
    seed: int | None = 1,
    checks: Iterable[str] = CHECKS,
) -> SchemaReport:
    """Run every operation of `document` but those under `exclude_paths` against `base_url`; `headers` go with
    every request (e.g. the internal key), `seed` makes a run repeatable (None: a new one each time)."""
    config = schemathesis.Config()
    if seed is not None:
        config.update(seed=seed, max_failures=None)
    project = config.projects.override
    project.update(base_url=base_url, headers=headers or {}, workers=1, request_timeout=30, continue_on_failure=True)
    project.checks.update(included_check_names=list(checks))
    project.generation.update(max_examples=max_examples, database="none")
    project.phases.update(phases=["examples", "coverage", "fuzzing"])
    schema: schemathesis.BaseSchema = schemathesis.openapi.from_dict(copy.deepcopy(document), config=config)
    for path in exclude_paths:
        schema = schema.exclude(path=path)

    report = SchemaReport(label)
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(report, event)
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.value!r}"[:500])
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}"[:500])
    report.seconds = time.monotonic() - started
    report.operations = sum(1 for _ in schema.get_all_operations())
    return report


def _record(report: SchemaReport, event: events.ScenarioFinished) -> None:
    recorder = event.recorder
    report.cases += len(recorder.cases)
    for interaction in recorder.interactions.values():
        if interaction.response is not None:
            report.statuses[interaction.response.status_code] += 1
    for checks in recorder.checks.values():
        for check in checks:
            if check.status != Status.FAILURE or check.failure_info is None:
                continue
            failure = check.failure_info.failure
            name = f"{recorder.label}: {failure.title}"
            if name not in report.failures:
                report.failures[name] = f"{failure.message}\n    {check.failure_info.code_sample}"[:1500]

"""Prometheus exposition shared by every service: one registry per app, `GET /metrics`, several workers.

Each app keeps its metrics in its own `CollectorRegistry`, so several apps can live in one process (as in tests).
`/metrics` needs `X-Internal-Auth` like every internal endpoint unless the service's `metrics_open` setting opens it.

With several worker processes (uvicorn `--workers`, gunicorn) each process counts for itself, and a scrape reaches
only one of them. `PROMETHEUS_MULTIPROC_DIR` set in the environment before the service starts switches
prometheus_client to its multiprocess mode: every process writes its values to files in that directory and any
worker's `/metrics` answers with the sum over all of them. Gauges of live state are summed over live processes
only (`multiprocess_mode="livesum"`): each scrape forgets the live gauges of workers that are gone, however they
ended (uvicorn's workers end by their signal, so no exit handler of theirs runs). Collectors that read a
process's own state at scrape time (llm-proxy's circuit breakers) cannot be merged; they report the answering
worker's view.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.registry import Collector

from codelab_common.settings import ServiceSettings

METRICS_PATH = "/metrics"
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The directory of prometheus_client's multiprocess mode, None when it is off."""
    return os.environ.get(MULTIPROC_DIR_ENV) or None


def app_registry() -> CollectorRegistry:
    """A new registry for one app's metrics."""
    return CollectorRegistry(auto_describe=True)


def open_metrics_paths(settings: ServiceSettings) -> tuple[str, ...]:
    """The paths to serve without the internal key because of `metrics_open` (none by default)."""
    return (METRICS_PATH,) if settings.metrics_open else ()


def render(registry: CollectorRegistry, process_local: Iterable[Collector] = ()) -> bytes:
    """The text exposition of `registry`; in multiprocess mode, of every process's values instead, plus
    `process_local` collectors (which the registry holds already otherwise)."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(registry)
    _forget_dead_workers(directory)
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)
    for collector in process_local:
        merged.register(collector)
    return generate_latest(merged)


def metrics_response(registry: CollectorRegistry, process_local: Iterable[Collector] = ()) -> Response:
    return Response(render(registry, process_local), media_type=CONTENT_TYPE_LATEST)


def _forget_dead_workers(directory: str) -> None:
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

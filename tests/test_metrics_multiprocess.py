"""Several worker processes with `PROMETHEUS_MULTIPROC_DIR`: any worker's `/metrics` shows the sum of all of them.

Each worker is a real process that builds the services' own metrics classes; counters add up over every worker
that ever ran, gauges of live state over the workers still alive.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from codelab_common.metrics import MULTIPROC_DIR_ENV

WORKER = """
import sys
from codelab_agent_runtime.core.metrics import AgentMetrics, TurnOutcome
from codelab_gateway.core.metrics import GatewayMetrics
from codelab_llm_proxy.services.observability import ProxyMetrics

agent, gateway, proxy = AgentMetrics(), GatewayMetrics(), ProxyMetrics()
agent.turn_ended(TurnOutcome.COMPLETED, model_calls=3)
gateway.live_connections.inc(2)
gateway.frame_sent("assistant_message")
proxy.in_flight.inc()
if sys.argv[1] == "scrape":
    sys.stdout.write(agent.response().body.decode() + gateway.response().body.decode() + proxy.render().decode())
"""


def _run(directory: Path, mode: str) -> str:
    env = {**os.environ, MULTIPROC_DIR_ENV: str(directory)}
    done = subprocess.run([sys.executable, "-c", WORKER, mode], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_counters_add_up_over_workers_and_live_gauges_over_live_ones(tmp_path: Path) -> None:
    _run(tmp_path, "exit")
    text = _run(tmp_path, "scrape")

    lines = set(text.splitlines())
    assert 'agent_runtime_turns_total{outcome="completed"} 2.0' in lines
    assert "agent_runtime_turn_model_calls_sum 6.0" in lines
    assert 'gateway_frames_sent_total{type="assistant_message"} 2.0' in lines
    assert "gateway_live_connections 2.0" in lines
    assert "llm_proxy_requests_in_flight 1.0" in lines
    assert any(line.startswith("# HELP llm_proxy_deployment_healthy") for line in lines)

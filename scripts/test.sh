#!/usr/bin/env bash
# Installs everything and runs every test (lint and format checks first). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"

# The rate-limit tests use the real Redis on 127.0.0.1:6379; start it if the machine has it but it is down.
if command -v redis-cli >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

$UV run --frozen ruff check .
$UV run --frozen ruff format --check .
$UV run --frozen mypy -p codelab_common -p codelab_gateway -p codelab_agent_runtime -p codelab_llm_proxy \
    -p codelab_local_model -p codelab_client

# pytest exits 5 when it collected no test: that is a failure here, never a green run.
$UV run --frozen pytest "$@"

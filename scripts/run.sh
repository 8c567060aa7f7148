#!/usr/bin/env bash
# Installs everything and starts the whole system on its embedded defaults:
# the local model (:8003), llm-proxy (:8002), agent-runtime (:8001) and the gateway (:8000).
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
exec $UV run --frozen codelab up "$@"

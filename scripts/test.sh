#!/usr/bin/env bash
# Installs everything and runs every test (lint and format checks first). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"

$UV run --frozen ruff check .
$UV run --frozen ruff format --check .
$UV run --frozen mypy -p codelab_common -p codelab_gateway -p codelab_agent_runtime -p codelab_llm_proxy \
    -p codelab_local_model -p codelab_client

# pytest exits 5 when it collected no test: that is a failure here, never a green run.
$UV run --frozen pytest "$@"

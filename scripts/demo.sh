#!/usr/bin/env bash
# The main job on embedded defaults: set up .venv, then replay a recorded long agent run through agentmem.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True
exec .venv/bin/python examples/quickstart.py "$@"

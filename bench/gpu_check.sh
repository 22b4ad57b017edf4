#!/usr/bin/env bash
# One-command check of the thinker on a GPU machine (issue 10). Finishes within 5 minutes and prints, per
# backend, load time, prefill and decode tok/s and the latency of one fold-sized call over a ~3,000-token span.
#
#   bash bench/gpu_check.sh                 # on a GPU machine: llama.cpp (n_gpu_layers=-1) + transformers on CUDA
#   bash bench/gpu_check.sh --cpu           # the same script on a CPU-only machine (smaller prompt, no GPU needed)
#   VLLM_MODEL=/models/Qwen2.5-1.5B-Instruct bash bench/gpu_check.sh   # also vLLM through litellm hosted_vllm/…
#
# Nothing is downloaded: the models are the ones setup installed (the default GGUF joined from its PyPI parts), and
# a vLLM model must be a local directory. llama.cpp offloads to the GPU only with a CUDA build of xllamacpp
# (pip install xllamacpp-cuda wheel from the package index on a machine with the network); with the CPU wheel the
# script says so and the llama.cpp row is a CPU row. Results: bench/results/gpu_check.json.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
MODEL="local"
CPU=0
PROMPT_ARG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) CPU=1 ;;
    --model) MODEL="$2"; shift ;;
    --prompt-tokens) PROMPT_ARG="$2"; shift ;;
    *) echo "usage: bash bench/gpu_check.sh [--cpu] [--model local|smollm2|<file.gguf>] [--prompt-tokens N]" >&2
       exit 2 ;;
  esac
  shift
done
START=$(date +%s)
deadline() { echo $(( 290 - ($(date +%s) - START) )); }  # seconds left of the 5-minute budget

echo "== machine"
uptime
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
elif [ "$CPU" = 1 ]; then
  echo "no GPU (--cpu): CPU path"
else
  echo "no NVIDIA GPU found; rerun with --cpu for the CPU path" >&2
  exit 2
fi
"$PY" - <<'EOF'
from agentmem.thinkers.llamacpp import gpu_offload_available, llamacpp_available
import importlib.util
print("llama.cpp (xllamacpp):", "installed" if llamacpp_available() else "MISSING",
      "| GPU offload:", "yes" if gpu_offload_available() else "no (CPU build or no GPU)")
if importlib.util.find_spec("torch"):
    import torch
    print("torch", torch.__version__, "| CUDA:", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF

# CPU: a shorter span so the check stays within its budget on 2 cores; GPU: the full 3,000-token span
if [ "$CPU" = 1 ]; then PROMPT=1500; TMODE=skip; else PROMPT=3000; TMODE=full; fi
PROMPT="${PROMPT_ARG:-$PROMPT}"

echo "== llama.cpp and transformers (bench/thinker_speed.py)"
timeout "$(deadline)" "$PY" bench/thinker_speed.py --model "$MODEL" --prompt-tokens "$PROMPT" \
  --transformers "$TMODE" --transformers-timeout 150 --json "${GPU_CHECK_JSON:-bench/results/gpu_check.json}"
rc=$?
[ $rc -ne 0 ] && echo "thinker_speed.py exited $rc"

if [ -n "${VLLM_MODEL:-}" ] && [ "$(deadline)" -gt 120 ]; then
  echo "== vLLM through litellm (hosted_vllm/$VLLM_MODEL)"
  PORT=8765
  "$PY" -m vllm.entrypoints.openai.api_server --model "$VLLM_MODEL" --port $PORT --max-model-len 8192 \
    > /tmp/agentmem-vllm.log 2>&1 &
  VPID=$!
  for _ in $(seq 1 90); do
    curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null 2>&1 && break
    sleep 1
  done
  timeout "$(deadline)" "$PY" - "$VLLM_MODEL" "$PORT" <<'EOF'
import sys, time
sys.path.insert(0, "bench")
from thinker_speed import agent_span_messages
from agentmem.thinkers import ThinkRequest, make_thinker
model, port = sys.argv[1], sys.argv[2]
th = make_thinker(f"hosted_vllm/{model}", api_base=f"http://127.0.0.1:{port}/v1", temperature=0)
for n in (1, 2):
    t0 = time.perf_counter()
    r = th.think(ThinkRequest(messages=agent_span_messages(3000), max_new_tokens=192))
    print(f"vLLM fold call {n}: {r.tokens_in} in / {r.tokens_out} out in {r.seconds:.2f} s "
          f"({r.tokens_out / max(r.seconds, 1e-9):.1f} tok/s end to end)")
EOF
  kill "$VPID" 2>/dev/null
fi
echo "== done in $(( $(date +%s) - START )) s"

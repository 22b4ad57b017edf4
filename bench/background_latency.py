"""Critical-path latency added by thinking folds, with and without background folding.

An agent whose model call takes --agent-latency seconds runs a synthetic tool-calling session through
MemorySession with BudgetPolicy(fold_mode="think") and a real thinker; the script measures what agentmem adds to
each round on the critical path (prepare(): bookkeeping + any wait for the thinker), once with folds run inline and
once in the background. Prints a table and writes bench/results/background_latency.json.

    python bench/background_latency.py --thinker smollm2 --rounds 60 --agent-latency 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from agentmem import MemorySession, Store
from agentmem.memory import resolve_thinker
from agentmem.policies import BudgetPolicy
from agentmem.primitives import SummarizeConfig
from agentmem.testing import synthetic_history

ROOT = Path(__file__).resolve().parents[1]


def call_points(history):
    for i in range(2, len(history) + 1):
        last, nxt = history[i - 1], (history[i] if i < len(history) else None)
        if last["role"] == "user" or (last["role"] == "tool" and (nxt is None or nxt["role"] != "tool")):
            yield history[:i]


def run(thinker, *, background: bool, rounds: int, budget: int, latency: float, think_tokens: int) -> dict:
    history = synthetic_history(rounds, output_chars=500)
    with tempfile.TemporaryDirectory() as tmp:
        policy = BudgetPolicy(budget_tokens=budget, fold_mode="think", soft_ratio=0.7, low_ratio=0.5)
        session = MemorySession(Store(Path(tmp) / "lat.db"), "lat", policy=policy, thinker=thinker,
                                background=background,
                                summarize_config=SummarizeConfig(max_block_tokens=think_tokens,
                                                                 max_source_tokens=1000))
        added, waited = [], []
        t0 = time.perf_counter()
        for prefix in call_points(history):
            t1 = time.perf_counter()
            session.prepare(prefix)
            added.append((time.perf_counter() - t1) * 1000)
            waited.append(session.last.thinker_ms)
            time.sleep(latency)  # the agent's own model call
        session.close()
        events = session.store.load_events("lat")
        wall = time.perf_counter() - t0
    thinking = [e for e in events if e.kind == "summarize"]
    return {"background": background, "rounds": len(added), "wall_s": round(wall, 1),
            "added_ms_median": round(statistics.median(added), 1),
            "added_ms_p95": round(sorted(added)[int(0.95 * (len(added) - 1))], 1),
            "added_s_total": round(sum(added) / 1000, 1), "rounds_waiting": sum(w > 0 for w in waited),
            "thinking_folds": len(thinking), "fallback_folds": sum(e.kind == "fold" for e in events),
            "thinker_s_per_fold": round(statistics.mean(e.meta.get("thinker_s", 0) for e in thinking), 1)
            if thinking else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--thinker", default="smollm2")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--budget", type=int, default=4000)
    ap.add_argument("--agent-latency", type=float, default=2.0, help="seconds per agent model call")
    ap.add_argument("--think-tokens", type=int, default=96)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "background_latency.json")
    args = ap.parse_args()
    thinker = resolve_thinker(args.thinker)
    if thinker is None:
        raise SystemExit("--thinker must name a model (e.g. smollm2, local)")
    if hasattr(thinker, "load"):
        thinker.load()  # load time is not round latency
    rows = [run(thinker, background=bg, rounds=args.rounds, budget=args.budget, latency=args.agent_latency,
                think_tokens=args.think_tokens) for bg in (False, True)]
    print(f"thinker {args.thinker}, {args.rounds} rounds, agent model call {args.agent_latency}s, budget {args.budget}")
    print("| folds | added ms/round median | p95 | added s total | rounds that waited | thinking folds | s/fold | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {'background' if r['background'] else 'inline'} | {r['added_ms_median']} | {r['added_ms_p95']} | "
              f"{r['added_s_total']} | {r['rounds_waiting']} | {r['thinking_folds']} | {r['thinker_s_per_fold']} | "
              f"{r['wall_s']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "thinker": args.thinker, "rounds": args.rounds,
                                    "agent_latency_s": args.agent_latency, "budget": args.budget, "rows": rows},
                                   indent=1))


if __name__ == "__main__":
    main()

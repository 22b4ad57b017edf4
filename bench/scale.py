"""Scale: does bookkeeping per round stay flat as a session grows to 1,000 and 10,000 rounds?

    python bench/scale.py                      # 1,000 and 10,000 rounds, BudgetPolicy @8000, SQLite file store
    python bench/scale.py --rounds 200 2000    # any sizes

Each session is a deterministic synthetic agent run (agentmem.testing.synthetic_history: tool calls with JSON
observations, parallel calls every 5th turn) replayed through the live code path (agentmem.replay.replay) into a
fresh SQLite file. Bookkeeping = prepare() (ingest, policy, primitives, validation, render; no thinker) plus
record_response() (storing the reply): the agent's critical path per round. Reported per size: ms/round overall,
over the first and the last 10% of rounds (flat means last ≈ first), and the store's size on disk.
Writes OUT/scale.json.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from agentmem.metrics import percentile  # noqa: E402
from agentmem.replay import Trajectory, machine_info, replay  # noqa: E402
from agentmem.store import Store  # noqa: E402
from agentmem.testing import synthetic_history  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def run_size(rounds: int, *, policy: str, budget: int, output_chars: int) -> dict[str, Any]:
    traj = Trajectory.from_messages(f"synthetic-{rounds}", synthetic_history(rounds, output_chars=output_chars))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "scale.db"
        store = Store(db)
        ms: list[float] = []
        views: list[int] = []
        raw = 0
        t0 = time.perf_counter()
        try:
            for k, rr in enumerate(replay(traj, policy=policy, budget_tokens=budget, store=store, score=False)):
                r = rr.record
                ms.append(r["bookkeeping_ms"] + r["record_ms"])
                views.append(r["view_tokens"])
                raw = r["raw_tokens"]
                if (k + 1) % max(1, rounds // 10) == 0:
                    print(f"  {k + 1}/{rounds} rounds, {_mean(ms[-100:]):.2f} ms/round (last 100)",
                          file=sys.stderr, flush=True)
        finally:
            wall = time.perf_counter() - t0
            store.close()
        size = sum(p.stat().st_size for p in Path(tmp).iterdir() if p.name.startswith("scale.db"))
    tenth = max(1, rounds // 10)
    steady = ms[1:]  # round 0 loads the tokenizer (a one-off ~1 s), reported apart
    return {
        "rounds": rounds,
        "messages": len(traj.messages),
        "raw_tokens": raw,
        "max_view_tokens": max(views),
        "first_round_ms": round(ms[0], 2),
        "ms_per_round_mean": round(_mean(steady), 3),
        "ms_per_round_p50": round(percentile(steady, 50) or 0, 3),
        "ms_per_round_p95": round(percentile(steady, 95) or 0, 3),
        "ms_per_round_max": round(max(steady), 1),
        "ms_first_10pct": round(_mean(ms[1:tenth]), 3),
        "ms_last_10pct": round(_mean(ms[-tenth:]), 3),
        "store_bytes": size,
        "store_mib": round(size / 2**20, 2),
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--policy", default="budget")
    ap.add_argument("--budget", type=int, default=8000)
    ap.add_argument("--output-chars", type=int, default=600, help="size of each synthetic tool output")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    results: dict[str, Any] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "machine": machine_info(), "policy": args.policy, "budget_tokens": args.budget,
                               "store": "SQLite file (default Store)", "sizes": []}
    for n in args.rounds:
        print(f"{n} rounds …", file=sys.stderr, flush=True)
        results["sizes"].append(run_size(n, policy=args.policy, budget=args.budget, output_chars=args.output_chars))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"{'rounds':>7} {'messages':>8} {'raw tokens':>11} {'max view':>8} {'ms/rd mean':>10} {'p50':>6} "
          f"{'p95':>6} {'max':>7} {'first10%':>8} {'last10%':>8} {'store MiB':>9}")
    for s in results["sizes"]:
        print(f"{s['rounds']:>7} {s['messages']:>8} {s['raw_tokens']:>11,} {s['max_view_tokens']:>8,} "
              f"{s['ms_per_round_mean']:>10.2f} {s['ms_per_round_p50']:>6.2f} {s['ms_per_round_p95']:>6.2f} "
              f"{s['ms_per_round_max']:>7.1f} "
              f"{s['ms_first_10pct']:>8.2f} {s['ms_last_10pct']:>8.2f} {s['store_mib']:>9.2f}")
    print(f"wrote {args.out / 'scale.json'}")
    return results


if __name__ == "__main__":
    main()

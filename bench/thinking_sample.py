"""Issue 8 item 4: the same metrics for a thinking fold (`--thinker local`) and the extractive fold, side by side,
on a tiny truncated sample of SWE runs (a thinking fold takes minutes on a loaded CPU).

    python bench/thinking_sample.py --runs 1 --max-rounds 45 --budget 6000 --thinker local

Writes OUT/thinking_sample.json and prints one table (same columns as bench/benchmark.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark as B  # noqa: E402

from agentmem.memory import resolve_thinker  # noqa: E402
from agentmem.metrics import carried_values_by_round, summarize_rounds  # noqa: E402
from agentmem.replay import replay  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swe", type=Path, default=B.DATA / "swe_deepseek_public.jsonl")
    ap.add_argument("--runs", type=int, default=1, help="the N shortest SWE runs with 80+ rounds")
    ap.add_argument("--max-rounds", type=int, default=45, help="truncate each run to its first N rounds")
    ap.add_argument("--budget", type=int, default=6000)
    ap.add_argument("--thinker", default="local")
    ap.add_argument("--out", type=Path, default=B.ROOT / "bench" / "results")
    args = ap.parse_args()
    runs = sorted(B.select(args.swe, min_rounds=80), key=lambda t: (t.rounds, t.id))[: args.runs]
    rows, result = [], {"runs": [t.id for t in runs], "max_rounds": args.max_rounds, "budget": args.budget}
    for label, thinker in (("BudgetPolicy (extractive fold)", None),
                           (f"BudgetPolicy + {args.thinker} thinker", resolve_thinker(args.thinker))):
        t0 = time.perf_counter()
        records = []
        for traj in runs:
            carried = carried_values_by_round(traj.messages)
            records += [rr.record for rr in replay(traj, policy="budget", budget_tokens=args.budget, thinker=thinker,
                                                   max_rounds=args.max_rounds, carried=carried)]
        summary = summarize_rounds(records)
        row = B.row_of(f"swe-sample{len(runs)}x{args.max_rounds}@{args.budget}", "budget", summary)
        row["policy"] = label
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"{label}: {row['wall_s']} s", file=sys.stderr, flush=True)
    result["rows"] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "thinking_sample.json").write_text(json.dumps(result, indent=1, default=str))
    print(B.markdown_table(rows))


if __name__ == "__main__":
    main()

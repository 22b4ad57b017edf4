"""Issue 8 item 4: the same metrics for a thinking fold (`--thinker local`) and the extractive fold, side by side,
on a small truncated sample of SWE runs (a thinking fold takes 17–60 s on a 2-core CPU).

    flock /tmp/agentmem-model.lock nice -n 5 timeout 900 python bench/thinking_sample.py --runs 2 --max-rounds 60

Both rows replay the same runs with BudgetPolicy at the same budget; the thinker row folds with the model
(summarize_by_thinking: the model writes the state + lines structure, unfaithful lines are dropped, the salient
extractive lines it left out are merged back in their original wording). Results are written after every run, so
a run stopped by its timeout still leaves OUT/thinking_sample.{json,md}; the views of the thinker row are dumped to
OUT/thinking_sample_views/ (one JSON per fold round) so a thinking block can be read."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark as B  # noqa: E402

from agentmem.memory import resolve_thinker  # noqa: E402
from agentmem.metrics import carried_values_by_round, summarize_rounds  # noqa: E402
from agentmem.replay import machine_info, replay  # noqa: E402

EXTRACTIVE = "BudgetPolicy (extractive fold)"


def fold_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the folds of a row did: model folds, fallbacks to the extractive fold, guard drops, merged lines."""
    acts = [a for r in records for a in r.get("actions") or () if a.get("kind") in ("fold", "summarize")]
    model = [a for a in acts if a.get("kind") == "summarize"]
    secs = sorted(a["thinker_s"] for a in acts if a.get("thinker_s") is not None)
    return {"folds": len(acts), "thinking_folds": len(model),
            "fallbacks": sum(1 for a in acts if a.get("fallback")),
            "guard_dropped_lines": sum(a.get("guard_dropped", 0) for a in model),
            "merged_lines": sum(a.get("lines_merged", 0) for a in model),
            "thinker_s_median": secs[len(secs) // 2] if secs else None,
            "block_tokens_median": sorted(a.get("block_tokens", 0) for a in acts)[len(acts) // 2] if acts else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swe", type=Path, default=B.DATA / "swe_deepseek_public.jsonl")
    ap.add_argument("--runs", type=int, default=2, help="the N shortest SWE runs with 80+ rounds")
    ap.add_argument("--max-rounds", type=int, default=60, help="truncate each run to its first N rounds")
    ap.add_argument("--budget", type=int, default=6000)
    ap.add_argument("--thinker", default="local")
    ap.add_argument("--out", type=Path, default=B.ROOT / "bench" / "results")
    args = ap.parse_args()
    runs = sorted(B.select(args.swe, min_rounds=80), key=lambda t: (t.rounds, t.id))[: args.runs]
    thinker = resolve_thinker(args.thinker)
    label = f"BudgetPolicy + {args.thinker} thinker"
    group = f"swe-sample@{args.budget}"
    views_dir = args.out / "thinking_sample_views"
    views_dir.mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict[str, Any]]] = {EXTRACTIVE: [], label: []}
    wall = {EXTRACTIVE: 0.0, label: 0.0}
    result: dict[str, Any] = {"date": None, "machine": machine_info(), "budget": args.budget,
                              "max_rounds": args.max_rounds, "thinker": args.thinker, "runs_done": []}
    def write() -> None:
        """Both rows over the rounds the thinker row has reached (a run cut by the timeout still compares)."""
        reached = {(r["trajectory"], r["round"]) for r in records[label]}
        rows = []
        for row, recs in records.items():
            recs = [r for r in recs if (r["trajectory"], r["round"]) in reached]
            if not recs:
                continue
            r = B.row_of(group, "budget", summarize_rounds(recs))
            r.update(policy=row, rounds=len(recs), wall_s=round(wall[row], 1), **fold_stats(recs))
            rows.append(r)
        result.update(date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), rows=rows,
                      rounds_compared=len(reached))
        (args.out / "thinking_sample.json").write_text(json.dumps(result, indent=1, default=str))
        table = B.markdown_table(rows)
        extra = ["", "| row | rounds | folds | thinking folds | fallbacks | guard-dropped lines | merged lines | "
                 "thinker s (median) | block tokens (median) | wall s |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        extra += [f"| {r['policy']} | {r['rounds']} | {r['folds']} | {r['thinking_folds']} | {r['fallbacks']} | "
                  f"{r['guard_dropped_lines']} | {r['merged_lines']} | {r['thinker_s_median']} | "
                  f"{r['block_tokens_median']} | {r['wall_s']} |" for r in rows]
        head = (f"# Thinking folds vs the extractive fold — SWE sample, budget {args.budget}\n\n"
                f"Runs: {', '.join(runs_started)} (first {args.max_rounds} rounds each; {len(reached)} rounds "
                f"compared, both rows over the same rounds); date {result['date']}; `python bench/thinking_sample.py "
                f"--runs {args.runs} --max-rounds {args.max_rounds} --budget {args.budget} "
                f"--thinker {args.thinker}`\n\n")
        (args.out / "thinking_sample.md").write_text(head + table + "\n" + "\n".join(extra) + "\n")
        print(table + "\n" + "\n".join(extra), flush=True)

    runs_started: list[str] = []
    for traj in runs:
        runs_started.append(traj.id)
        carried = carried_values_by_round(traj.messages)
        for row, th in ((EXTRACTIVE, None), (label, thinker)):
            t0 = time.perf_counter()
            for rr in replay(traj, policy="budget", budget_tokens=args.budget, thinker=th,
                             max_rounds=args.max_rounds, carried=carried):
                records[row].append(rr.record)
                wall[row] += time.perf_counter() - t0
                t0 = time.perf_counter()
                if th is not None and any(a.get("kind") == "summarize" for a in rr.record.get("actions") or ()):
                    name = f"{traj.id.replace('/', '__')}__round{rr.round:03d}.json"
                    (views_dir / name).write_text(json.dumps(rr.view, indent=1, ensure_ascii=False))
                    write()
            print(f"{traj.id} {row}: {wall[row]:.1f} s so far", file=sys.stderr, flush=True)
        result["runs_done"].append(traj.id)
        write()


if __name__ == "__main__":
    main()

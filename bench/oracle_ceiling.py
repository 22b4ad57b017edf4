"""How much of the far-retention gap is prediction: BudgetPolicy beside the same policy told the future.

    python bench/oracle_ceiling.py                  # SWE 80+ rounds @6000 and @8000, held-out SWE (40-79) @6000

The extractive fold ranks a tool-output line higher when it holds a term the agent has referred to (its text and
call arguments so far: `agentmem.primitives.fold.referenced_terms`). The "oracle" row replaces that evidence with
what no online fold can know: every term of every call the agent makes in the whole run, later calls included.
Nothing else changes (budget, allotment, merges, line rules), so the distance between the two rows is what a perfect
predictor of the agent's next calls would add to this structure, and the distance from the oracle row to 100 % is
what the structure itself loses (squeezes, merges, lines cut). The oracle is a counterfactual for measurement only:
it patches the fold's reference function inside this script and nowhere else.

Writes OUT/oracle_ceiling.json and prints one table (metrics from agentmem.metrics, as in bench/benchmark.py).
"""

import argparse
import json
import sys
import tempfile
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark as B  # noqa: E402

import agentmem.primitives.fold  # noqa: E402,F401  (the module; the package re-exports the function `fold`)
from agentmem.metrics import carried_values_by_round, summarize_rounds  # noqa: E402
from agentmem.replay import Trajectory, machine_info, replay  # noqa: E402
from agentmem.salience import terms  # noqa: E402
from agentmem.store import Store  # noqa: E402

FOLD = sys.modules["agentmem.primitives.fold"]


def called_terms(traj: Trajectory) -> set[str]:
    """The fold's own terms (`agentmem.salience.terms`) of every tool-call argument in the whole run."""
    out: set[str] = set()
    for m in traj.messages:
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
            arguments = str(fn.get("arguments") or "")
            try:
                parsed = json.loads(arguments or "{}")
            except json.JSONDecodeError:
                parsed = arguments
            leaves = parsed.values() if isinstance(parsed, dict) else [parsed]
            for leaf in leaves:
                out |= terms(leaf if isinstance(leaf, str) else json.dumps(leaf))
    return out


def run_group(trajs: Sequence[Trajectory], budget: int, oracle: bool) -> dict[str, Any]:
    online = FOLD.referenced_terms
    future: set[str] = set()
    rounds = []
    try:
        if oracle:
            FOLD.referenced_terms = lambda view: online(view) | future
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # OverBudgetWarning: reported in the max view column
            store = Store(Path(tmp) / "ceiling.db")
            for t in trajs:
                future.clear()
                future |= called_terms(t)
                carried = carried_values_by_round(t.messages)
                for rr in replay(t, policy="budget", budget_tokens=budget, store=store, session_id=t.id[:100],
                                 carried=carried):
                    rounds.append(rr.record)
            store.close()
    finally:
        FOLD.referenced_terms = online
    return summarize_rounds(rounds)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(B.ROOT / "bench" / "results"))
    args = ap.parse_args(argv)
    swe = B.select(B.DATA / "swe_deepseek_public.jsonl", min_rounds=80)
    held = [t for t in B.select(B.DATA / "swe_deepseek_public.jsonl", min_rounds=40) if t.rounds <= 79]
    groups = [(f"SWE@6000 ({len(swe)} runs)", swe, 6000), (f"SWE@8000 ({len(swe)} runs)", swe, 8000),
              (f"held-out SWE@6000 ({len(held)} runs)", held, 6000)]
    rows = []
    for name, trajs, budget in groups:
        for oracle in (False, True):
            row = B.row_of(name, "budget", run_group(trajs, budget, oracle))
            row["spec"] = "oracle: the run's future calls as references" if oracle else "BudgetPolicy (online)"
            rows.append(row)
            print(f"{name:32s} {row['spec']:46s} present {100 * row['retention']:5.1f}  10+ "
                  f"{100 * row['retention_old']:5.1f}  in ctx {100 * row['in_context']:5.1f}  in ctx 10+ "
                  f"{100 * row['in_context_old']:5.1f}  max view {row['max_view']}  prefix reuse "
                  f"{100 * row['prefix_reuse']:5.1f}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_info(),
              "rows": rows}
    (out / "oracle_ceiling.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

"""How much of the far-retention gap is prediction: BudgetPolicy beside the same policy told the future.

    python bench/oracle_ceiling.py                  # SWE 80+ rounds @6000 and @8000, held-out SWE (40-79) @6000
    python bench/oracle_ceiling.py --horizon 2,5,10,20   # one near-oracle row per horizon

The extractive fold ranks a tool-output line higher when it holds a term the agent has referred to (its text and
call arguments so far: `agentmem.primitives.fold.referenced_terms`). The oracle rows add what no online fold can
know: the terms of the calls the agent will make — in its next few rounds (a predictor of its near plan), or in the
whole run. Nothing else changes (budget, allotment, merges, line rules), so the distance to the first row is what
such a predictor would add to this structure, and the distance from the whole-run row to 100 % is what the
structure itself loses (squeezes, merges, lines cut). The oracle is a counterfactual for measurement only: it
patches the fold's reference function inside this script and nowhere else.

Writes OUT/oracle_ceiling.json and prints one table (metrics from agentmem.metrics, as in bench/benchmark.py); each
oracle row carries its gain over the online row on the same runs, with a paired 95 % interval (`gain`).
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
from agentmem.metrics import (  # noqa: E402
    RETENTION_COUNTS,
    bootstrap_retention,
    carried_values_by_round,
    summarize_rounds,
)
from agentmem.replay import Trajectory, machine_info, replay  # noqa: E402
from agentmem.store import Store  # noqa: E402

FOLD = sys.modules["agentmem.primitives.fold"]


def calls_by_round(traj: Trajectory) -> list[set[str]]:
    """For each assistant turn, in order, the terms of its call arguments, read as the fold reads the agent's own
    calls (`agentmem.primitives.fold.call_terms`, which `referenced_terms` uses)."""
    out: list[set[str]] = []
    for m in traj.messages:
        if m.get("role") != "assistant":
            continue
        found: set[str] = set()
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
            found |= FOLD.call_terms(str(fn.get("arguments") or ""))
        out.append(found)
    return out


def run_group(trajs: Sequence[Trajectory], budget: int, horizon: int | None) -> dict[str, Any]:
    """Replay `trajs` with BudgetPolicy; `horizon` 0: as shipped; N > 0: a fold also counts as referenced the terms
    of the agent's next N calls (those after the view it folds); None: of every call in the run."""
    online = FOLD.referenced_terms
    calls: list[set[str]] = []
    turns_before: list[int] = []  # turns_before[i]: assistant turns among the trajectory's first i messages

    def told(view: Any) -> set[str]:
        upcoming = turns_before[min(view.message_count, len(turns_before) - 1)]
        ahead = calls if horizon is None else calls[upcoming:upcoming + horizon]
        return online(view).union(*ahead)

    rounds = []
    try:
        if horizon != 0:
            FOLD.referenced_terms = told
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # OverBudgetWarning: reported in the max view column
            store = Store(Path(tmp) / "ceiling.db")
            for t in trajs:
                calls[:] = calls_by_round(t)
                turns_before[:] = [0]
                for m in t.messages:
                    turns_before.append(turns_before[-1] + (m.get("role") == "assistant"))
                carried = carried_values_by_round(t.messages)
                for rr in replay(t, policy="budget", budget_tokens=budget, store=store, session_id=t.id[:100],
                                 carried=carried):
                    rounds.append(rr.record)
            store.close()
    finally:
        FOLD.referenced_terms = online
    return summarize_rounds(rounds)


def group_rows(name: str, trajs: Sequence[Trajectory], budget: int,
               rows_of: dict[int | None, str]) -> list[dict[str, Any]]:
    """One row per horizon (0: the online fold, which must come first; None: the whole run). Each oracle row
    carries its gain over the online row on the same runs, with a paired interval: `gain[column]` =
    `agentmem.metrics.bootstrap_retention(oracle runs, column, baseline=online runs)`."""
    rows: list[dict[str, Any]] = []
    online: list[dict[str, Any]] = []
    for horizon, spec in rows_of.items():
        summary = run_group(trajs, budget, horizon)
        row = B.row_of(name, "budget", summary)
        row["spec"], row["horizon"] = spec, horizon
        if horizon == 0:
            online = summary["per_trajectory"]
        else:
            row["gain"] = {key: bootstrap_retention(summary["per_trajectory"], key, baseline=online)
                           for key in RETENTION_COUNTS}
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(B.ROOT / "bench" / "results"))
    ap.add_argument("--horizon", default="5",
                    help="calls ahead the near oracle knows; comma-separated for one row each (default 5)")
    args = ap.parse_args(argv)
    try:
        horizons = sorted({int(h) for h in args.horizon.split(",") if h.strip()})
    except ValueError:
        ap.error(f"--horizon takes whole numbers separated by commas, not {args.horizon!r}")
    if not horizons or horizons[0] < 1:
        ap.error("--horizon must name at least one horizon, each at least 1 (0 is the online row)")
    swe = B.select(B.DATA / "swe_deepseek_public.jsonl", min_rounds=80)
    held = [t for t in B.select(B.DATA / "swe_deepseek_public.jsonl", min_rounds=40) if t.rounds <= 79]
    groups = [(f"SWE@6000 ({len(swe)} runs)", swe, 6000), (f"SWE@8000 ({len(swe)} runs)", swe, 8000),
              (f"held-out SWE@6000 ({len(held)} runs)", held, 6000)]
    rows = []
    rows_of = {0: "BudgetPolicy (online)",
               **{h: f"oracle: the next {h} calls' terms referenced" for h in horizons},
               None: "oracle: all the run's call terms referenced"}
    for name, trajs, budget in groups:
        for row in group_rows(name, trajs, budget, rows_of):
            rows.append(row)
            gain = row.get("gain", {}).get("retention_old")
            print(f"{name:32s} {row['spec']:46s} present {100 * row['retention']:5.1f}  10+ "
                  f"{100 * row['retention_old']:5.1f}  in ctx {100 * row['in_context']:5.1f}  in ctx 10+ "
                  f"{100 * row['in_context_old']:5.1f}  max view {row['max_view']}  prefix reuse "
                  f"{100 * row['prefix_reuse']:5.1f}"
                  + (f"  10+ gain {B.interval_cell(gain)}" if gain and gain["estimate"] is not None else ""),
                  flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_info(),
              "rows": rows}
    (out / "oracle_ceiling.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

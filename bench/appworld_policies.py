"""Per-policy benchmark on appworld-lite: does memory decide success?

Runs `agentmem run --env appworld-lite --task all --agent scripted --policy P --budget B` for every policy and
budget (the CLI itself, in a subprocess, so the figures are what a user gets), then prints one table (TGC/SGC per
difficulty, peak and mean view, recalls, folds, wall time) and writes bench/results/appworld_policies.{json,md}.
Beside each row's TGC stands the budget policy's lead over it at the same budget, in points, with a 95 % interval
from a paired bootstrap over tasks (`agentmem.metrics.bootstrap_ratio`): an interval holding 0 is a difference
these tasks cannot tell from chance.
The `trim_messages`, `langmem` and `summarization_middleware` rows run in-process through the adapters
bench/benchmark.py has for replays.

    python bench/appworld_policies.py                         # all policies at 6000 and 4000, all 108 tasks
    python bench/appworld_policies.py --budgets 6000 --policies noop,window,budget --difficulty hard

The ScriptedAgent has no memory of its own (its only state is the view), so a policy that loses what a task needs
fails the task. `thinker` without a model thinker falls back to the budget policy's extractive folds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

# "+norecall": the same policy without the recall_memory tool (a sliding window without an archive is what
# langchain's trim_messages does)
POLICIES = ["noop", "window", "window+norecall", "observation_masking", "running_summary", "trim_messages",
            "langmem", "summarization_middleware", "budget", "budget+norecall", "thinker"]
# the libraries people use today, run in-process through the adapters bench/benchmark.py has for replays
# (langchain_core trim_messages; langmem summarize_messages and LangChain v1's SummarizationMiddleware with
# agentmem's extractive fold as their offline summarizer model): they keep no archive, so the agent gets no recall
# tool
LIBRARIES = {"trim_messages", "langmem", "summarization_middleware"}
DIFFS = ["easy", "medium", "hard"]
# what each row is, in the table: which rows are plain context windows / summaries (what people use today) and
# which get agentmem's lossless archive and its recall_memory tool (an agentmem memory, whatever its view policy)
MEMORY = {
    "noop": "no management: the whole history",
    "window": "newest rounds + agentmem archive & recall tool",
    "window+norecall": "newest rounds only (plain window)",
    "observation_masking": "old tool outputs masked + agentmem recall tool (unbounded)",
    "running_summary": "running summary + newest rounds + agentmem recall tool",
    "trim_messages": "newest rounds only (langchain trim_messages)",
    "langmem": "summary + newest rounds (langmem summarize_messages), no recall",
    "summarization_middleware": "summary + newest messages (langchain SummarizationMiddleware), no recall",
    "budget": "agentmem fold blocks + newest rounds + archive & recall tool",
    "budget+norecall": "agentmem fold blocks + newest rounds, no recall",
    "thinker": "agentmem thinker (no model: extractive blocks) + recall tool",
}


def _benchmark():
    """bench/benchmark.py as a module, imported on first use: it needs the bench extra (langchain, langmem)."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import benchmark

    return benchmark


def library_view_fn(name: str, budget: int):
    """`first_history -> view function` for a library row: bench/benchmark.py's replay adapters, imported."""
    from types import SimpleNamespace

    library_baseline = _benchmark().library_baseline

    def make(first_history: list[dict]):
        traj = SimpleNamespace(model=MODEL, messages=first_history)  # what the adapters read of a trajectory
        return library_baseline(name, traj, budget)

    return make


MODEL = "scripted"  # the runner's model name; its token counter falls back to cl100k


def run_library(policy: str, budget: int, out: Path, difficulty: str | None, tasks: str, max_rounds: int) -> dict:
    """A library row, in-process (the CLI runs agentmem's policies only): the same files as `agentmem run`."""
    from agentmem.envs.runner import HistoryViewMemory, run_tasks
    from agentmem.tokens import TokenCounter

    counter = TokenCounter(MODEL)
    make = library_view_fn(policy, budget)
    t0 = time.perf_counter()
    run_tasks("appworld-lite", tasks, "scripted", lambda agent: HistoryViewMemory(agent, make, counter.message), out,
              max_rounds=max_rounds, policy_name=policy, difficulty=difficulty, progress=False)
    wall = time.perf_counter() - t0
    return _row(policy, budget, out, f"bench/appworld_policies.py --policies {policy} --budgets {budget} "
                                     f"(in-process: bench/benchmark.py's adapter)", wall)


def run_one(policy: str, budget: int, out: Path, difficulty: str | None, tasks: str, max_rounds: int) -> dict:
    if policy in LIBRARIES:
        return run_library(policy, budget, out, difficulty, tasks, max_rounds)
    name, _, flag = policy.partition("+")
    cmd = [sys.executable, "-m", "agentmem.cli", "run", "--env", "appworld-lite", "--task", tasks, "--agent",
           "scripted", "--policy", name, "--budget", str(budget), "--out", str(out), "--max-rounds", str(max_rounds)]
    if flag == "norecall":
        cmd.append("--no-recall-tool")
    if difficulty:
        cmd += ["--difficulty", difficulty]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    shown = [c if len(c) < 80 else f"<{c.count(',') + 1} ids>" for c in cmd[3:]]
    return _row(policy, budget, out, " ".join(["agentmem", *shown]), wall)


def _row(policy: str, budget: int, out: Path, command: str, wall: float) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    agg = summary["aggregate"]
    row = {"policy": policy, "memory": MEMORY.get(policy, ""), "budget": budget, "command": command,
           "wall_s": round(wall, 1)}
    for key in ("n_tasks", "tgc", "sgc", "peak_view_tokens", "mean_view_tokens", "peak_raw_tokens", "recalls",
                "folds"):
        row[key] = agg.get(key)
    row["by_difficulty"] = {d: {k: v.get(k) for k in ("n_tasks", "tgc", "sgc", "peak_view_tokens",
                                                     "mean_view_tokens", "recalls", "folds")}
                            for d, v in (agg.get("by_difficulty") or {}).items()}
    row["over_budget_rounds"] = sum(1 for line in (out / "rounds.jsonl").read_text().splitlines()
                                    if line and json.loads(line).get("view_tokens", 0) > budget)
    row["task_success"] = {t["task_id"]: bool(t["success"]) for t in summary.get("tasks", ())}
    return row


LEAD_POLICY = "budget"  # the row every other row at the same budget is compared with


def add_leads(rows: list[dict]) -> None:
    """Adds to every row beside the budget policy's, at the same budget, the budget policy's lead in TGC over it:
    points, with a 95 % interval from a paired bootstrap over tasks (the same tasks drawn for both rows, so how
    hard a task is cancels out): `lead` = {estimate, low, high, runs} (ratios; `runs` = tasks compared)."""
    from agentmem.metrics import bootstrap_ratio

    ours = {r["budget"]: r for r in rows if r["policy"] == LEAD_POLICY}
    for row in rows:
        mine = ours.get(row["budget"])
        if mine is None or row is mine:
            continue
        row["lead"] = bootstrap_ratio({t: (int(ok), 1) for t, ok in mine["task_success"].items()},
                                      baseline={t: (int(ok), 1) for t, ok in row["task_success"].items()})


def table(rows: list[dict]) -> str:
    head = ("| budget | policy | memory the agent gets | TGC all | budget's TGC lead [95 %] | easy | medium | hard | "
            "SGC hard | peak view | mean view | hard mean view | rounds over budget | recalls | folds | wall s |")
    lines = [head, "|---|---|---|" + "---:|" * (head.count("|") - 4)]
    interval_cell = _benchmark().interval_cell
    for r in rows:
        bd = r["by_difficulty"]
        g = lambda d, k: bd.get(d, {}).get(k, "-")  # noqa: E731
        lines.append(f"| {r['budget']:,} | {r['policy']} | {MEMORY.get(r['policy'], '')} | {r['tgc']:.1f} | "
                     f"{interval_cell(r.get('lead'))} | {g('easy', 'tgc')} | {g('medium', 'tgc')} | "
                     f"{g('hard', 'tgc')} | {g('hard', 'sgc')} | {r['peak_view_tokens']:,} | "
                     f"{r['mean_view_tokens']:,.0f} | {g('hard', 'mean_view_tokens')} | {r['over_budget_rounds']} | "
                     f"{r['recalls']} | {r['folds']} | {r['wall_s']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--budgets", default="6000,4000")
    ap.add_argument("--difficulty", default=None, choices=DIFFS)
    ap.add_argument("--tasks", default="all", help="'all' or comma-separated task ids")
    ap.add_argument("--seeds", default=None, help="with --tasks all: only these seeds (e.g. 0 = one task per template)")
    ap.add_argument("--max-rounds", type=int, default=300, help="cap per task (the unmanaged agent needs <= 105)")
    ap.add_argument("--out", default="out/appworld_policies")
    ap.add_argument("--results", default="bench/results/appworld_policies")
    a = ap.parse_args(argv)
    tasks = a.tasks
    if tasks == "all" and a.seeds is not None:
        from agentmem.envs import get_env

        seeds = tuple(f"-{x}" for x in a.seeds.split(","))
        tasks = ",".join(t for t in get_env("appworld-lite").task_ids(a.difficulty) if t.endswith(seeds))
    rows = []
    for budget in [int(b) for b in a.budgets.split(",")]:
        for policy in a.policies.split(","):
            out = Path(a.out) / f"{policy}_{budget}"
            row = run_one(policy, budget, out, a.difficulty, tasks, a.max_rounds)
            rows.append(row)
            print(f"{policy:>20} @{budget}: TGC {row['tgc']:.1f} hard {row['by_difficulty'].get('hard', {}).get('tgc')} "
                  f"recalls {row['recalls']} folds {row['folds']} ({row['wall_s']} s)", flush=True)
    add_leads(rows)
    md = table(rows)
    print(md)
    res = Path(a.results)
    res.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "load": os.getloadavg(), "python": platform.python_version()}
    res.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    res.with_suffix(".md").write_text(md + "\n")
    return {"meta": meta, "rows": rows}


if __name__ == "__main__":
    main()

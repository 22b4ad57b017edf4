"""ThinkerPolicy with the real local model beside BudgetPolicy (extractive), on long real trajectories.

    python bench/thinker_policy.py                                   # appworld-lite email_rsvp_replies-0 + 2 SWE runs
    python bench/thinker_policy.py --swe 0 --agent-latency 3 --thinker smollm2   # quick

Sources: one 80+-round appworld-lite task (the scripted agent's unmanaged transcript, recorded first) and a sample
of SWE trajectories from ../shared/data. Each is driven through MemorySession exactly as AgentMemory would drive
it (prepare() on every prefix that ends where the agent calls its model), once per configuration:

- budget / extractive: BudgetPolicy, no model (the baseline people can run anywhere);
- thinker / local, background: ThinkerPolicy asking the local model at the soft watermark in a worker thread,
  its thinking folds also in the worker; the agent's own model call is simulated by sleeping --agent-latency s.

Reported per row: peak view tokens (budget respected?), model decisions valid/applied, fallbacks, thinker calls
and s/call, and the agent's ADDED wait per round (prepare() wall time: bookkeeping plus any wait for the model)
p50/p95/max. Writes bench/results/thinker_policy.json. Timings on a shared CPU are noisy: the load average is
recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agentmem import MemorySession, Store
from agentmem.memory import resolve_thinker
from agentmem.policies import BudgetPolicy, ThinkerPolicy
from agentmem.replay import Trajectory, load_trajectories
from agentmem.thinkers import thinker_summary

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def call_points(messages: list[dict]) -> list[int]:
    """Prefix lengths at which the agent calls its model (the next message is the assistant's)."""
    return [i for i, m in enumerate(messages) if m.get("role") == "assistant" and i > 0]


def appworld_trajectory(task_id: str) -> Trajectory:
    """The scripted agent's unmanaged run of an appworld-lite task, as a trajectory."""
    from agentmem.envs import get_env
    from agentmem.envs.runner import PassThroughMemory, make_agent, run_episode

    env = get_env("appworld-lite")
    task = env.load(task_id)
    agent, _ = make_agent("scripted", task, env)
    res = run_episode(task, agent, PassThroughMemory(agent), keep_messages=True)
    msgs = [{**m, "id": f"a{i:04d}"} for i, m in enumerate(res.messages)]
    return Trajectory.from_messages(f"appworld-lite/{task_id}", msgs, source="appworld-lite")


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))], 1) if s else 0.0


def drive(traj: Trajectory, *, config: str, budget: int, thinker, agent_latency: float) -> dict:
    """One trajectory through one configuration; returns the row."""
    with tempfile.TemporaryDirectory() as tmp:
        if config == "budget-extractive":
            policy, th, background = BudgetPolicy(budget_tokens=budget), None, False
        else:
            policy, th, background = ThinkerPolicy(budget_tokens=budget, fold_mode="think"), thinker, True
        session = MemorySession(Store(Path(tmp) / "b.db"), "b", policy=policy, thinker=th, background=background,
                                model="gpt-4o")
        calls0 = th.stats.as_dict()["calls"] if th is not None else 0
        added, views, rounds = [], [], []
        t0 = time.perf_counter()
        for n in call_points(traj.messages):
            t1 = time.perf_counter()
            session.prepare(traj.messages[:n])
            added.append((time.perf_counter() - t1) * 1000)
            views.append(session.view.tokens)
            rounds.append(session.last.as_dict())
            session.record_response(traj.messages[n])
            if background:
                time.sleep(agent_latency)  # the agent's own model call: the worker thinks meanwhile
        session.close()
        wall = time.perf_counter() - t0
    summary = thinker_summary(th, rounds) if th is not None else None
    return {
        "trajectory": traj.id, "config": config, "rounds": len(added), "budget": budget,
        "raw_tokens": rounds[-1]["raw_tokens"] if rounds else 0, "peak_view": max(views) if views else 0,
        "over_budget_rounds": sum(v > budget for v in views),
        "folds": sum(a["kind"] in ("fold", "summarize") for r in rounds for a in r["actions"]),
        "thinking_folds": sum(a["kind"] == "summarize" for r in rounds for a in r["actions"]),
        "decisions": sum(a["kind"] == "decision" for r in rounds for a in r["actions"]),
        "decisions_valid": summary["decisions_valid"] if summary else None,
        "decisions_applied": summary["decisions_applied"] if summary else None,
        "fallbacks": summary["fallbacks"] if summary else None,
        "thinker_calls": (th.stats.as_dict()["calls"] - calls0) if th is not None else 0,
        "seconds_per_call": summary["seconds_per_call"] if summary else None,
        "added_ms_p50": _pct(added, 0.5), "added_ms_p95": _pct(added, 0.95), "added_ms_max": round(max(added), 1),
        "agent_latency_s": agent_latency if background else 0.0, "wall_s": round(wall, 1),
        "decision_log": [a for r in rounds for a in r["actions"] if a["kind"] == "decision"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thinker", default="local")
    ap.add_argument("--appworld-task", default="email_rsvp_replies-0")
    ap.add_argument("--appworld-budget", type=int, default=12000)
    ap.add_argument("--swe", type=int, default=2, help="how many SWE trajectories (40+ rounds, shortest first)")
    ap.add_argument("--swe-budget", type=int, default=8000)
    ap.add_argument("--agent-latency", type=float, default=3.0, help="seconds of the agent's own model call")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "thinker_policy.json")
    a = ap.parse_args(argv)
    thinker = resolve_thinker(a.thinker)
    load_s = thinker.load() if hasattr(thinker, "load") else None
    work: list[tuple[Trajectory, int]] = []
    if a.appworld_task:
        work.append((appworld_trajectory(a.appworld_task), a.appworld_budget))
    if a.swe:
        swe = [t for t in load_trajectories(SHARED / "swe_deepseek_public.jsonl") if t.rounds >= 40]
        work += [(t, a.swe_budget) for t in sorted(swe, key=lambda t: (t.rounds, t.id))[: a.swe]]
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "thinker": getattr(thinker, "name", None),
           "load_s": load_s, "loadavg_start": [round(x, 2) for x in os.getloadavg()], "rows": []}
    for traj, budget in work:
        for config in ("budget-extractive", "thinker-local-background"):
            row = drive(traj, config=config, budget=budget, thinker=thinker, agent_latency=a.agent_latency)
            res["rows"].append(row)
            print(f"{traj.id} {config}: peak {row['peak_view']}/{budget}, decisions {row['decisions_valid']}/"
                  f"{row['decisions']} valid, {row['decisions_applied']} applied, added ms p50 {row['added_ms_p50']} "
                  f"p95 {row['added_ms_p95']}, wall {row['wall_s']} s", file=sys.stderr, flush=True)
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    res["thinker_summary"] = thinker_summary(thinker, [{"actions": r["decision_log"]} for r in res["rows"]])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    head = ("| trajectory | config | rounds | raw tok | peak view / budget | folds (thinking) | decisions valid / "
            "applied / all | fallbacks | s per model call | added ms p50 | p95 | max | wall s |")
    print(head)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in res["rows"]:
        dec = "-" if r["decisions_valid"] is None else (
            f"{r['decisions_valid']} / {r['decisions_applied']} / {r['decisions']}")
        fallbacks = "-" if r["fallbacks"] is None else r["fallbacks"]
        print(f"| {r['trajectory']} | {r['config']} | {r['rounds']} | {r['raw_tokens']} | {r['peak_view']} / "
              f"{r['budget']} | {r['folds']} ({r['thinking_folds']}) | {dec} | {fallbacks} | "
              f"{r['seconds_per_call'] or '-'} | {r['added_ms_p50']} | {r['added_ms_p95']} | {r['added_ms_max']} | "
              f"{r['wall_s']} |")
    print(f"agent model call simulated as {a.agent_latency} s; load average {res['loadavg_start']} -> "
          f"{res['loadavg_end']}; wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""ThinkerPolicy with the real local model beside BudgetPolicy (extractive), on long tasks, agent latency simulated.

    python bench/thinker_policy.py --part appworld     # one 80+-round appworld-lite task, closed loop (TGC)
    python bench/thinker_policy.py --part swe --swe 2  # two SWE runs replayed (retention columns)
    python bench/thinker_policy.py --part table        # bench/results/thinker_policy.md from the JSON

- appworld-lite: the ScriptedAgent (no state but its view) solves the task through AgentMemory with the
  recall_memory tool, so a policy that loses what the task needs fails it (TGC).
- SWE: recorded runs from ../shared/data/swe_deepseek_public.jsonl replayed round by round (agentmem.replay, the
  recorded reply stands in for the model), scored with agentmem.metrics' carried-value retention (the columns of
  bench/benchmark.py).

Rows: budget / extractive (BudgetPolicy, no model) and thinker / local, background (ThinkerPolicy asking the model
from the soft watermark in a worker; thinking folds in the worker too). The agent's own model call is simulated by
sleeping --agent-latency s per round; the ADDED wait per round is what agentmem itself costs the agent (prepare +
record; for appworld the completion call's wall time minus the agent's). Decisions: valid / applied / fallbacks as
in summary.json's "thinker" object, plus rounds where the budget rule acted while the decision was pending, and
decisions that arrived stale (nothing they chose still in the view). Each part merges its rows into
bench/results/thinker_policy.json as soon as a row is done (partial results survive a timeout); the load average
at each row's start and end is recorded — the machine is shared, timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentmem import Store
from agentmem.memory import AgentMemory, resolve_thinker
from agentmem.metrics import carried_values_by_round, percentile, summarize_rounds
from agentmem.policies import BudgetPolicy, ThinkerPolicy
from agentmem.replay import Trajectory, load_trajectories, replay
from agentmem.thinkers.summary import decision_timing, thinker_summary

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _calls(thinker: Any) -> int:
    return thinker.stats.as_dict()["calls"] if hasattr(thinker, "stats") else len(getattr(thinker, "requests", ()))


def _policy(config: str, budget: int, variant: dict[str, Any]) -> Any:
    """BudgetPolicy, or ThinkerPolicy with thinking folds and the variant's settings (soft_ratio, preview_chars)."""
    if config == "budget-extractive":
        return BudgetPolicy(budget_tokens=budget)
    return ThinkerPolicy(budget_tokens=budget, fold_mode="think", **variant)


def _variant_text(variant: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(variant.items()))


def _row(source: str, traj_id: str, config: str, budget: int, rounds: list[dict[str, Any]], added_ms: list[float],
         thinker: Any, calls0: int, wall: float, load0: list[float], agent_latency: float) -> dict[str, Any]:
    summary = thinker_summary(thinker, rounds) if thinker is not None else None
    views = [int(r["view_tokens"]) for r in rounds] or [0]
    return {
        "source": source, "trajectory": traj_id, "config": config, "rounds": len(rounds), "budget": budget,
        "raw_tokens": max(int(r["raw_tokens"]) for r in rounds) if rounds else 0, "peak_view": max(views),
        "over_budget_rounds": sum(v > budget for v in views),
        "folds": sum(a.get("kind") in ("fold", "summarize") for r in rounds for a in r.get("actions") or ()
                     if isinstance(a, dict)),
        "thinking_folds": sum(a.get("kind") == "summarize" for r in rounds for a in r.get("actions") or ()
                              if isinstance(a, dict)),
        "model_calls": _calls(thinker) - calls0 if thinker is not None else 0,
        "thinker": summary, **(decision_timing(rounds) if thinker is not None else {}),
        "added_ms_p50": round(percentile(added_ms, 50) or 0, 1), "added_ms_p95": round(percentile(added_ms, 95) or 0, 1),
        "added_ms_max": round(max(added_ms, default=0), 1), "agent_latency_s": agent_latency, "wall_s": round(wall, 1),
        "loadavg_start": load0, "loadavg_end": _load(),
        "decision_log": [a for r in rounds for a in r.get("actions") or ()
                         if isinstance(a, dict) and a.get("kind") == "decision"],
    }


def run_appworld(task_id: str, config: str, budget: int, thinker: Any, agent_latency: float,
                 variant: dict[str, Any]) -> dict[str, Any]:
    """The ScriptedAgent solves one appworld-lite task through AgentMemory (closed loop: TGC)."""
    from agentmem.envs import get_env
    from agentmem.envs.runner import make_agent, run_episode

    env = get_env("appworld-lite")
    task = env.load(task_id)
    agent, _ = make_agent("scripted", task, env)
    agent_ms: list[float] = []

    def timed_agent(**kw: Any) -> Any:  # the agent's own model call takes agent_latency s
        t0 = time.perf_counter()
        time.sleep(agent_latency)
        out = agent(**kw)
        agent_ms.append((time.perf_counter() - t0) * 1000)
        return out

    th = thinker if config != "budget-extractive" else None
    calls0 = _calls(th) if th is not None else 0
    load0 = _load()
    with tempfile.TemporaryDirectory() as tmp:
        memory = AgentMemory(completion=timed_agent, policy=_policy(config, budget, variant), store=Store(
            Path(tmp) / "a.db"), thinker=th, recall_tool=True, background=th is not None, model="gpt-4o")
        t0 = time.perf_counter()
        res = run_episode(task, timed_agent, memory, keep_messages=False)
        memory.session.close()
        wall = time.perf_counter() - t0
    added = [r["ms"] - a for r, a in zip(res.records, agent_ms)]
    row = _row("appworld-lite", task_id, config, budget, res.records, added, th, calls0, wall, load0,
               agent_latency)
    row["tgc"] = 100.0 if res.summary["success"] else 0.0
    row["variant"] = _variant_text(variant) if th is not None else ""
    return row


def run_swe(traj: Trajectory, config: str, budget: int, thinker: Any, agent_latency: float,
            variant: dict[str, Any], carried: Any, max_rounds: int | None) -> dict[str, Any]:
    """One recorded SWE run replayed round by round, scored with agentmem.metrics."""
    th = thinker if config != "budget-extractive" else None
    calls0 = _calls(th) if th is not None else 0
    load0 = _load()
    rounds, added = [], []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "s.db")
        for rr in replay(traj, policy=_policy(config, budget, variant), thinker=th, store=store,
                         carried=carried, max_rounds=max_rounds, background=th is not None):
            rec = rr.record
            rounds.append(rec)
            added.append(rec["bookkeeping_ms"] + rec["thinker_ms"] + rec["record_ms"])
            if th is not None:
                time.sleep(agent_latency)  # the agent's own model call: the worker thinks meanwhile
        store.close()
    wall = time.perf_counter() - t0
    row = _row("swe", traj.id, config, budget, rounds, added, th, calls0, wall, load0, agent_latency if th else 0.0)
    ret = summarize_rounds(rounds)["retention"]
    row.update(present=ret["retention"], present_old=ret.get("retention_old_10"), in_context=ret["in_context"],
               in_context_old=ret.get("in_context_old_10"), max_rounds=max_rounds,
               variant=_variant_text(variant) if th is not None else "")
    return row


def merge(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Rows replace earlier ones with the same (trajectory, config, variant); written at once (partial runs)."""
    data = json.loads(out.read_text()) if out.exists() else {"rows": [], "runs": []}
    keys = {(r["trajectory"], r["config"], r.get("variant")) for r in rows}
    data["rows"] = [r for r in data["rows"] if (r["trajectory"], r["config"], r.get("variant")) not in keys] + rows
    data["runs"] = [*data.get("runs", []), meta][-20:]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def table(data: dict[str, Any]) -> str:
    head = ("| source | trajectory | config | rounds | TGC | present | 10+ | in ctx | in ctx 10+ | peak view / budget "
            "| model calls | decisions valid / applied / all | at hard budget | fallbacks | pending (budget rule acted) | stale | "
            "added ms p50 | p95 | max | load start→end |")
    lines = [head, "|" + "---|" * 3 + "---:|" * 17]
    for r in data["rows"]:
        th = r.get("thinker")
        dec = f"{th['decisions_valid']} / {th['decisions_applied']} / {r['model_decisions']}" if th else "-"
        cfg = r["config"] + (f" ({r['variant']})" if r.get("variant") else "")
        tgc = f"{r['tgc']:.0f}" if "tgc" in r else "-"
        trunc = f" (first {r['max_rounds']})" if r.get("max_rounds") else ""
        lines.append(
            f"| {r['source']} | {r['trajectory']}{trunc} | {cfg} | {r['rounds']} | {tgc} | {_pct(r.get('present'))} | "
            f"{_pct(r.get('present_old'))} | {_pct(r.get('in_context'))} | {_pct(r.get('in_context_old'))} | "
            f"{r['peak_view']:,} / {r['budget']:,} | {r['model_calls']} | {dec} | {r.get('at_hard_budget', '-')} | "
            f"{th['fallbacks'] if th else '-'} | "
            f"{r.get('pending_fallbacks', '-')} | {r.get('stale', '-')} | {r['added_ms_p50']} | {r['added_ms_p95']} "
            f"| {r['added_ms_max']} | {r['loadavg_start'][0]}→{r['loadavg_end'][0]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["appworld", "swe", "table"], required=True)
    ap.add_argument("--thinker", default="local")
    ap.add_argument("--configs", default="budget-extractive,thinker-local-background")
    ap.add_argument("--soft-ratio", type=float, default=None, help="ThinkerPolicy's soft watermark (ask earlier)")
    ap.add_argument("--preview-chars", type=int, default=None, help="ThinkerPolicy's preview per index line")
    ap.add_argument("--appworld-task", default="email_rsvp_replies-0")
    ap.add_argument("--appworld-budget", type=int, default=12000)
    ap.add_argument("--swe", type=int, default=2, help="how many SWE trajectories (40+ rounds, shortest first)")
    ap.add_argument("--swe-budget", type=int, default=8000)
    ap.add_argument("--swe-max-rounds", type=int, default=None, help="truncate each SWE run (say so if used)")
    ap.add_argument("--agent-latency", type=float, default=3.0, help="seconds of the agent's own model call")
    ap.add_argument("--out", type=Path, default=RESULTS / "thinker_policy.json")
    a = ap.parse_args(argv)
    if a.part == "table":
        md = table(json.loads(a.out.read_text()))
        a.out.with_suffix(".md").write_text(md + "\n")
        print(md)
        return 0
    configs = a.configs.split(",")
    variant = {k: v for k, v in (("soft_ratio", a.soft_ratio), ("preview_chars", a.preview_chars)) if v is not None}
    thinker = resolve_thinker(a.thinker) if any(c != "budget-extractive" for c in configs) else None
    load_s = thinker.load() if thinker is not None and hasattr(thinker, "load") else None
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "part": a.part, "argv": sys.argv[1:],
            "thinker": getattr(thinker, "name", None), "load_s": load_s, "loadavg_start": _load()}
    if a.part == "appworld":
        work = [(a.appworld_task, None)]
    else:
        swe = [t for t in load_trajectories(SHARED / "swe_deepseek_public.jsonl") if t.rounds >= 40]
        picked: dict[str, Trajectory] = {}  # distinct tasks (the file holds variants of one task)
        for t in sorted(swe, key=lambda t: (t.rounds, t.id)):
            picked.setdefault(t.id.rsplit("/", 1)[-1], t)
        work = [(t, carried_values_by_round(t.messages)) for t in list(picked.values())[: a.swe]]
    for item, carried in work:
        for config in configs:
            if a.part == "appworld":
                row = run_appworld(item, config, a.appworld_budget, thinker, a.agent_latency, variant)
            else:
                row = run_swe(item, config, a.swe_budget, thinker, a.agent_latency, variant, carried,
                              a.swe_max_rounds)
            merge(a.out, [row], {**meta, "loadavg_end": _load()})
            print(f"{row['trajectory']} {config}: rounds {row['rounds']} peak {row['peak_view']}/{row['budget']} "
                  f"tgc {row.get('tgc')} present {row.get('present')} calls {row['model_calls']} "
                  f"decisions {row.get('model_decisions')} stale {row.get('stale')} pending "
                  f"{row.get('pending_fallbacks')} added ms p50 {row['added_ms_p50']} p95 {row['added_ms_p95']} "
                  f"max {row['added_ms_max']} wall {row['wall_s']} s load {row['loadavg_start']}->"
                  f"{row['loadavg_end']}", flush=True)
    if thinker is not None and hasattr(thinker, "close"):
        thinker.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

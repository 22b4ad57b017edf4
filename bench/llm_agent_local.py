"""LLMAgent for real: the shipped local model drives appworld-lite's tools through AgentMemory.

The model (Qwen2.5-Coder-1.5B-Instruct, Q4 GGUF) runs in-process on llama.cpp with its own jinja chat template,
which turns its replies into OpenAI tool calls (agentmem.envs.llamacpp_chat). Each task runs through AgentMemory
(policy and budget below, recall tool offered) with a cap on turns; the result is reported as it is.

    flock /tmp/agentmem-model.lock nice -n 5 timeout 900 python bench/llm_agent_local.py

Writes bench/results/llm_agent_local.{json,md} after every task (partial results survive a timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_TASKS = "todo_add_task-0,notes_append_line-0,email_count_from-0"


def _calls(messages: list[dict]) -> list[str]:
    out = []
    for m in messages:
        for c in m.get("tool_calls") or []:
            fn = c.get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except ValueError:
                args = {"unparsed": fn.get("arguments")}
            label = fn.get("name", "?")
            if label == "call_api" and isinstance(args, dict):
                label = f"{args.get('app')}.{args.get('api')}"
            out.append(label)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default=DEFAULT_TASKS)
    ap.add_argument("--max-rounds", type=int, default=10, help="cap on the model's turns per task")
    ap.add_argument("--policy", default="budget")
    ap.add_argument("--budget", type=int, default=4000)
    ap.add_argument("--model", default=None, help="a GGUF path (default: the shipped model)")
    ap.add_argument("--text-calls", action="store_true",
                    help="also accept a tool call the model wrote as a JSON object in its text (LlamaCppChat)")
    ap.add_argument("--results", default="bench/results/llm_agent_local")
    a = ap.parse_args(argv)

    from agentmem import AgentMemory
    from agentmem.envs import get_env
    from agentmem.envs.agents import LLMAgent
    from agentmem.envs.llamacpp_chat import LlamaCppChat
    from agentmem.envs.runner import run_episode

    chat = LlamaCppChat(a.model, text_calls=a.text_calls)
    env = get_env("appworld-lite")
    res_path = Path(a.results)
    res_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "load_at_start": os.getloadavg(), "model": str(chat.gguf_path().name),
            "policy": a.policy, "budget": a.budget, "max_rounds": a.max_rounds, "text_calls": a.text_calls,
            "command": "python bench/llm_agent_local.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for tid in [t.strip() for t in a.tasks.split(",") if t.strip()]:
            task = env.load(tid)
            agent = LLMAgent("local", completion=chat)
            mem = AgentMemory(completion=agent, policy=a.policy, budget_tokens=a.budget, recall_tool=True,
                              store=Path(tmp) / "llm.db", session_id=f"llm-{tid}")
            first, recovered_before = len(chat.turn_seconds), chat.recovered
            t0 = time.perf_counter()
            error = None
            try:
                res = run_episode(task, agent, mem, model="local", max_rounds=a.max_rounds)
                summary, messages = res.summary, res.messages
            except Exception as e:  # noqa: BLE001 - reported as the result of this task
                error = f"{type(e).__name__}: {e}"[:500]
                summary, messages = {"success": False}, []
            turns = chat.turn_seconds[first:]
            usage = chat.usage[first:]
            row = {"task_id": tid, "instruction": task.params.get("instruction"), "success": bool(summary.get("success")),
                   "rounds": summary.get("rounds"), "wall_s": round(time.perf_counter() - t0, 1),
                   "turn_s_median": round(statistics.median(turns), 1) if turns else None,
                   "turn_s_max": round(max(turns), 1) if turns else None,
                   "prompt_tokens_max": max((u.get("prompt_tokens") or 0 for u in usage), default=None),
                   "calls": _calls(messages), "recalls": summary.get("recalls"), "error": error,
                   "final_reply": next((str(m.get("content"))[:300] for m in reversed(messages)
                                        if m.get("role") == "assistant"), None)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            row["calls_recovered_from_text"] = chat.recovered - recovered_before
            out = {"meta": {**meta, "load_s": chat.load_seconds}, "rows": rows}
            res_path.with_suffix(".json").write_text(json.dumps(out, indent=1))
            res_path.with_suffix(".md").write_text(table(rows) + "\n")
    print(table(rows))
    return {"meta": meta, "rows": rows}


def table(rows: list[dict]) -> str:
    lines = ["| task | success | turns | s per turn (median / max) | largest prompt tok | calls the model made |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        calls = ", ".join(r["calls"][:12]) + (" …" if len(r["calls"]) > 12 else "")
        lines.append(f"| {r['task_id']} | {'yes' if r['success'] else 'no'} | {r['rounds']} | "
                     f"{r['turn_s_median']} / {r['turn_s_max']} | {r['prompt_tokens_max']} | "
                     f"{calls or r['error'] or '-'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""recall@1 on exact look-ups generated from appworld-lite's own histories.

For each task, the unmanaged ScriptedAgent transcript is stored as one session (SQLite file), and look-ups are
generated from it the way an agent would write them:

* **call**: every API call with its arguments (``show_playlist_songs playlist_id 17 page_index 1``; the access
  token left out) - correct when the first tool result returned answers exactly that call;
* **value**: identifier-like values first seen in a tool result (``at-music-…``, e-mail addresses, file names) -
  correct when the first message returned contains the value;
* **phrase**: a quoted run of 3-6 words from a tool result - correct when the first message returned contains it.

Each look-up runs through `agentmem.archive.find_archived` over an empty view (everything archived), and through
the full-text search alone (the store's bm25 / ts_rank with rounds, what recall did before exact look-ups) for
comparison. Prints a table and writes bench/results/recall_at_1.json.

    python bench/recall_at_1.py [--tasks all|hard|ID,...] [--per-task 40]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from pathlib import Path

from agentmem.archive import find_archived, rounds_of
from agentmem.envs import get_env
from agentmem.envs.runner import run_episode
from agentmem.messages import parse_message
from agentmem.store import Store
from agentmem.tokens import TokenCounter
from agentmem.values import extract_values
from agentmem.view import View

_PHRASE_WORDS = re.compile(r"[A-Za-z][A-Za-z']+(?: [A-Za-z][A-Za-z']+){2,5}")


def lookups(messages: list[dict], rng: random.Random, per_task: int) -> list[dict]:
    """(kind, query, target tool-call id or text) generated from one transcript."""
    calls, values, phrases = [], [], []
    seen_values: set[str] = set()
    prompt = " ".join(str(m.get("content")) for m in messages[:2])
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            for c in m.get("tool_calls") or []:
                a = json.loads(c["function"]["arguments"] or "{}")
                if c["function"]["name"] != "call_api" or not isinstance(a.get("arguments"), dict):
                    continue
                args = {k: v for k, v in a["arguments"].items() if k not in ("access_token", "password")}
                words = " ".join(f"{k} {v}" for k, v in args.items())
                calls.append({"kind": "call", "query": f"{a['api']} {words}".strip(), "call_id": c["id"],
                              "app": a["app"], "api": a["api"], "args": args})
        elif m["role"] == "tool" and isinstance(m.get("content"), str):
            for v in extract_values(m["content"]):
                if v not in seen_values and v not in prompt and len(v) >= 6:
                    seen_values.add(v)
                    values.append({"kind": "value", "query": v, "text": v})
            for p in _PHRASE_WORDS.findall(m["content"]):
                if len(p) >= 18:
                    phrases.append({"kind": "phrase", "query": f'"{p}"', "text": p})
    # the same call made on two apps (a login with the same user name): a careful agent names the app too
    apps: dict[str, set[str]] = {}
    for c in calls:
        apps.setdefault(c["query"], set()).add(c["app"])
    for c in calls:
        if len(apps[c["query"]]) > 1:
            c["query"] = f"{c['app']} {c['query']}"
    out = []
    for group in (calls, values, phrases):
        rng.shuffle(group)
        out.extend(group[:per_task])
    return out


def _first_round(found: list) -> list:
    """The first round returned (the best hit with its call or its result)."""
    out = found[:1]
    for m in found[1:]:
        if m.role == "assistant":
            break
        out.append(m)
    return out


def _correct(lk: dict, found: list) -> bool:
    first = _first_round(found)
    if lk["kind"] == "call":
        for m in first:
            if m.role == "tool":
                try:
                    env = json.loads(m.content)
                except (TypeError, ValueError):
                    return False
                return (env.get("app"), env.get("api"), env.get("args")) == (lk["app"], lk["api"], lk["args"])
        return False
    want = lk["text"].lower()
    return any(want in (m.content or "").lower() or want in " ".join(tc.arguments for tc in m.tool_calls).lower()
               for m in first)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="all", help="all | easy | medium | hard | comma-separated ids")
    ap.add_argument("--seeds", default="0", help="seeds per template (comma-separated) when --tasks is a group")
    ap.add_argument("--per-task", type=int, default=40, help="look-ups of each kind per task")
    ap.add_argument("--out", default="bench/results/recall_at_1.json")
    a = ap.parse_args(argv)
    env = get_env("appworld-lite")
    if a.tasks in ("all", "easy", "medium", "hard"):
        seeds = {f"-{s}" for s in a.seeds.split(",")}
        ids = [t for t in env.task_ids(None if a.tasks == "all" else a.tasks) if any(t.endswith(s) for s in seeds)]
    else:
        ids = a.tasks.split(",")
    rng = random.Random(7)
    counter = TokenCounter()
    totals: dict[str, dict[str, list[int]]] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "recall.db")
        for tid in ids:
            task = env.load(tid)
            res = run_episode(task, task.scripted_agent(), count_tokens=lambda m: 0)
            msgs = [parse_message(m) for m in res.messages]
            store.append_messages(tid, msgs, [counter.message(m) for m in msgs])
            for lk in lookups(res.messages, rng, a.per_task):
                exact = find_archived(store, tid, View(), query=lk["query"], limit=4)
                fts = rounds_of(store, tid, store.search(tid, lk["query"], limit=16), limit=4)
                for name, found in (("exact-first", exact), ("full-text only", fts)):
                    totals.setdefault(name, {}).setdefault(lk["kind"], []).append(int(_correct(lk, found)))
    rows = []
    for name, kinds in totals.items():
        allv = [x for v in kinds.values() for x in v]
        row = {"method": name, "n": len(allv), "recall_at_1": round(sum(allv) / len(allv), 4)}
        for k, v in kinds.items():
            row[k] = {"n": len(v), "recall_at_1": round(sum(v) / len(v), 4)}
        rows.append(row)
    print(f"recall@1 on exact look-ups from {len(ids)} appworld-lite histories ({time.perf_counter() - t0:.0f} s)")
    print("| method | all | call + args | value | quoted phrase |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        cell = lambda k: f"{r[k]['recall_at_1']:.3f} (n={r[k]['n']})" if k in r else "-"  # noqa: E731
        print(f"| {r['method']} | {r['recall_at_1']:.3f} (n={r['n']}) | {cell('call')} | {cell('value')} | "
              f"{cell('phrase')} |")
    out = {"tasks": ids, "per_task": a.per_task, "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

"""Replay one recorded agent run through AgentMemory and print how big its context would have been.

The recorded assistant replies stand in for the model (a scripted client), so this runs offline in seconds:
    python examples/quickstart.py [../shared/data/swe_deepseek_public.jsonl] [--budget 8000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from agentmem import AgentMemory, Store
from agentmem.testing import ScriptedCompletion

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "swe_deepseek_public.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file", nargs="?", default=str(DEFAULT))
    ap.add_argument("--budget", type=int, default=8000)
    args = ap.parse_args()
    with open(args.file, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    traj = max(rows, key=lambda r: len(r["messages"]))  # the longest run
    msgs = traj["messages"]
    replies = iter([m for m in msgs if m["role"] == "assistant"])
    client = ScriptedCompletion(lambda _m, _t: {"choices": [{"message": next(replies)}]})
    with tempfile.TemporaryDirectory() as tmp:
        memory = AgentMemory(client, store=Store(Path(tmp) / "quickstart.db"), policy="budget",
                             budget_tokens=args.budget, recall_tool=True)
        peak_raw = peak_view = 0
        for i, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            memory.completion(model="deepseek-chat", messages=msgs[:i])
            stats = memory.last_round
            peak_raw, peak_view = max(peak_raw, stats["raw_tokens"]), max(peak_view, stats["view_tokens"])
            if stats["round"] % 20 == 0 or stats["actions"]:
                acts = ",".join(a["kind"] for a in stats["actions"]) or "-"
                print(f"round {stats['round']:4d}  raw {stats['raw_tokens']:7d}  view {stats['view_tokens']:6d}  "
                      f"{acts:10s} {stats['bookkeeping_ms']:.1f} ms")
        print(f"\n{traj['id']}: peak raw {peak_raw} tokens → peak view {peak_view} tokens "
              f"({peak_view / peak_raw:.0%}), every message kept in the store")


if __name__ == "__main__":
    main()

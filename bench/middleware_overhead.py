"""Overhead per model call of AgentMemoryMiddleware in a real create_agent graph, beside LangChain's own
ContextEditingMiddleware and no middleware at all.

    python bench/middleware_overhead.py [--rounds 200] [--budget 8000]

The instrument shares nothing with agentmem: two timing middlewares, one outermost and one innermost, around the
middleware under test; overhead per call = time between entering the outer one and entering the inner one, plus
between leaving the inner one and leaving the outer one (the model call itself is excluded). The model is a
scripted offline chat model; each round's tool output is ~700 tokens, so the budget is crossed and folds happen.
Writes bench/results/middleware_overhead.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ContextEditingMiddleware
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import PrivateAttr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentmem.integrations.langchain import AgentMemoryMiddleware  # noqa: E402


@tool
def read_page(page: int) -> str:
    """Read one page."""
    return json.dumps({"page": page, "invoice": f"INV-{1000 + page}", "text": "lorem ipsum dolor sit amet " * 110})


class Reader(BaseChatModel):
    rounds: int = 200
    _turn: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "bench-reader"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Reader:
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        turn = self._turn
        self._turn += 1
        msg = (AIMessage(content="", tool_calls=[{"id": f"p{turn}", "name": "read_page", "args": {"page": turn}}])
               if turn < self.rounds else AIMessage(content="done"))
        return ChatResult(generations=[ChatGeneration(message=msg)])


class Stopwatch(AgentMiddleware):
    """Records when a model call passes through this point (outermost / innermost)."""

    def __init__(self, marks: list, name: str):
        super().__init__()
        self.marks, self._name = marks, name

    @property
    def name(self) -> str:
        return self._name

    def wrap_model_call(self, request, handler):
        t_in = time.perf_counter()
        response = handler(request)
        self.marks.append((self._name, t_in, time.perf_counter()))
        return response


def run(label: str, middleware: list[Any], rounds: int) -> list[float]:
    marks: list = []
    outer, inner = Stopwatch(marks, "outer"), Stopwatch(marks, "inner")
    agent = create_agent(Reader(rounds=rounds), [read_page], system_prompt="You read pages.",
                         middleware=[outer, *middleware, inner], checkpointer=InMemorySaver())
    agent.invoke({"messages": [HumanMessage("Read every page.")]},
                 {"configurable": {"thread_id": label}, "recursion_limit": 4 * rounds + 10})
    inners = [m for m in marks if m[0] == "inner"]
    outers = [m for m in marks if m[0] == "outer"]
    return [((i_in - o_in) + (o_out - i_out)) * 1000
            for (_, i_in, i_out), (_, o_in, o_out) in zip(inners, outers, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--budget", type=int, default=8000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {
            "no middleware": run("none", [], args.rounds),
            "ContextEditingMiddleware (LangChain)": run("ce", [ContextEditingMiddleware()], args.rounds),
            f"AgentMemoryMiddleware (budget {args.budget}, SQLite)": run("am", [AgentMemoryMiddleware(
                budget_tokens=args.budget, store=Path(tmp) / "bench.db")], args.rounds),
        }
    import os

    load = os.getloadavg()
    table = ["| middleware | calls | median ms/call | p95 ms/call | max ms/call |", "|---|---:|---:|---:|---:|"]
    summary = {}
    for name, xs in rows.items():
        q = statistics.quantiles(xs, n=20)
        summary[name] = {"calls": len(xs), "median_ms": round(statistics.median(xs), 3), "p95_ms": round(q[18], 3),
                         "max_ms": round(max(xs), 3)}
        s = summary[name]
        table.append(f"| {name} | {s['calls']} | {s['median_ms']:.2f} | {s['p95_ms']:.2f} | {s['max_ms']:.2f} |")
    print("\n".join(table))
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (shared machine: figures are noisy)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "middleware_overhead.json").write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
        "load_average": load, "rounds": args.rounds, "budget_tokens": args.budget, "summary": summary,
        "per_call_ms": {k: [round(x, 3) for x in v] for k, v in rows.items()}}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, xs in rows.items():
        ax.plot(range(len(xs)), xs, label=name, linewidth=1)
    ax.set_xlabel("model call (round)")
    ax.set_ylabel("middleware overhead (ms)")
    ax.set_yscale("log")
    ax.set_title(f"Overhead per model call, create_agent, {args.rounds} tool rounds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "middleware_overhead.png", dpi=110)
    print(f"wrote {args.out / 'middleware_overhead.json'} and .png")


if __name__ == "__main__":
    main()

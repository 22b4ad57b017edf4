"""A LangChain v1 `create_agent` agent with agentmem as one middleware line: bounded, recallable context.

    python examples/create_agent.py                                 # offline: a scripted tool-calling model
    python examples/create_agent.py --async                         # the same through ainvoke (awrap_model_call)
    python examples/create_agent.py --model openai:gpt-4o-mini      # a real model via init_chat_model

The tool returns large pages; agentmem folds old rounds into blocks, the graph state (and its checkpoint) keeps the
whole history, and at the end the agent reads a folded value back with the recall_memory tool the middleware
registers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import PrivateAttr

from agentmem.integrations.langchain import AgentMemoryMiddleware

PAGES = 40


@tool
def read_page(page: int) -> str:
    """Read one page of the quarterly report."""
    return json.dumps({"page": page, "invoice": f"INV-{1000 + page}", "amount": 100 + 7 * page,
                       "text": "lorem ipsum dolor sit amet " * 60})


class ScriptedReader(BaseChatModel):
    """Reads every page, then recalls page 0's invoice, then answers (stands in for a real model offline).

    It counts its own turns: the view it is given no longer shows the early ones once they are folded. To recall,
    it does what a block tells the model: `recall_memory(ids=["blk-N"])` with the first block's id."""

    pages: int = PAGES
    _turns: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted-reader"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedReader:
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        recalls = [m for m in messages if isinstance(m, ToolMessage) and m.name == "recall_memory"]
        turn = self._turns
        self._turns += 1
        if recalls:
            found = "INV-1000" in recalls[-1].content
            msg = AIMessage(content=f"Page 0's invoice is {'INV-1000' if found else 'unknown'}.")
        elif turn < self.pages:
            msg = AIMessage(content="", tool_calls=[{"id": f"p{turn}", "name": "read_page", "args": {"page": turn}}])
        else:
            block = re.search(r"block (blk-\d+) covers", "\n".join(str(m.content) for m in messages))
            msg = AIMessage(content="", tool_calls=[{"id": "r", "name": "recall_memory", "args": (
                {"ids": [block.group(1)]} if block else {"query": "invoice of page 0"})}])
        return ChatResult(generations=[ChatGeneration(message=msg)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a langchain init_chat_model spec; default: the offline scripted model")
    ap.add_argument("--budget", type=int, default=3000, help="tokens for the whole request (view, system, tools)")
    ap.add_argument("--async", dest="use_async", action="store_true", help="run with ainvoke")
    args = ap.parse_args()
    if args.model:
        from langchain.chat_models import init_chat_model

        model = init_chat_model(args.model)
    else:
        model = ScriptedReader()
    with tempfile.TemporaryDirectory() as tmp:
        memory = AgentMemoryMiddleware(policy="budget", budget_tokens=args.budget, store=Path(tmp) / "agent.db")
        agent = create_agent(model, [read_page], system_prompt="You read reports and answer precisely.",
                             middleware=[memory], checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "report"}, "recursion_limit": 4 * PAGES}
        task = {"messages": [{"role": "user", "content": f"Read pages 0-{PAGES - 1}, then tell me page 0's invoice."}]}
        result = asyncio.run(agent.ainvoke(task, config)) if args.use_async else agent.invoke(task, config)
        session = memory.session(config)
        budget = memory.last_round["budget"]
        print(f"state holds {len(result['messages'])} messages ({session.raw_tokens} tokens); the last request was "
              f"{budget['request_tokens']} tokens (view {budget['view_tokens']} + system and tools "
              f"{budget['outside_tokens']}) against {budget['budget_tokens']}; "
              f"{len(session.store.load_events(session.session_id))} memory events")
        print("answer:", result["messages"][-1].content)


if __name__ == "__main__":
    main()

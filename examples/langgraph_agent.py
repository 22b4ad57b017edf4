"""A LangGraph ReAct agent whose model input is managed by agentmem (pre_model_hook), with a recall tool.

    python examples/langgraph_agent.py                       # offline: a scripted tool-calling model
    python examples/langgraph_agent.py --model openai:gpt-4o-mini   # a real model via langchain's init_chat_model

The tool returns large pages; agentmem folds old ones, the graph state keeps the whole history, and the agent reads
a folded value back with recall_memory at the end.
"""

from __future__ import annotations

import argparse
import warnings
import tempfile
from pathlib import Path

from create_agent import ScriptedReader, read_page  # the same offline model and tool as the create_agent example
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import create_react_agent

from agentmem.integrations.langgraph import MemoryHook

# create_react_agent's pre_model_hook is the documented hook API; its deprecation notice is noise here
warnings.filterwarnings("ignore", message="create_react_agent has been moved")

PAGES = 25


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a langchain init_chat_model spec; default: the offline scripted model")
    ap.add_argument("--budget", type=int, default=3000)
    args = ap.parse_args()
    if args.model:
        from langchain.chat_models import init_chat_model

        model = init_chat_model(args.model)
    else:
        model = ScriptedReader(pages=PAGES)
    with tempfile.TemporaryDirectory() as tmp:
        hook = MemoryHook(policy="budget", budget_tokens=args.budget, store=Path(tmp) / "lg.db")
        agent = create_react_agent(model, [read_page, hook.recall_tool()], pre_model_hook=hook,
                                   checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "report"}, "recursion_limit": 4 * PAGES}
        result = agent.invoke({"messages": [{"role": "user", "content":
                                             f"Read pages 0-{PAGES - 1}, then tell me page 0's invoice."}]}, config)
        session = hook.session(config)
        print(f"state holds {len(result['messages'])} messages ({session.raw_tokens} tokens); "
              f"the model's last view was {session.view.tokens} tokens; "
              f"{len(session.store.load_events(session.session_id))} memory events")
        print("answer:", result["messages"][-1].content)


if __name__ == "__main__":
    main()

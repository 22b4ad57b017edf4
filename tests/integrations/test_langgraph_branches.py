"""LangGraph time travel, update_state edits and RemoveMessage through the existing pre_model_hook: each becomes a
branch of the thread's agentmem session, with no error, valid views, and nothing stored lost."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.prebuilt import create_react_agent  # noqa: E402

from agentmem import validate_history  # noqa: E402
from agentmem.integrations.langgraph import MemoryHook  # noqa: E402
from agentmem.messages import parse_message  # noqa: E402
from branching import check_tree  # noqa: E402


class LookupModel(BaseChatModel):
    """After a human message: look the thing up (a tool call); after the tool result: answer with it.
    Records every view it was given."""

    received: list = []

    @property
    def _llm_type(self) -> str:
        return "lookup-model"

    def bind_tools(self, tools: Any, **kwargs: Any):
        return self

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        self.received.append(list(messages))
        last = messages[-1]
        n = len(self.received)
        if isinstance(last, ToolMessage):
            msg = AIMessage(content=f"answer {n}: {last.content[:40]}")
        else:
            msg = AIMessage(content="", tool_calls=[{"id": f"call-{n}", "name": "lookup",
                                                     "args": {"what": str(last.content)[:40]}}])
        return ChatResult(generations=[ChatGeneration(message=msg)])


@tool
def lookup(what: str) -> str:
    """Look something up."""
    return json.dumps({"what": what, "found": f"value-of-{what}"})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_time_travel_update_state_and_remove_message_fork_the_session(request, tmp_path, backend):
    store = str(tmp_path / "lg.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    hook = MemoryHook(policy="budget", budget_tokens=4000, store=store, session_prefix=f"lgb-{uuid.uuid4().hex[:10]}-")
    model = LookupModel()
    model.received = []
    agent = create_react_agent(model, [lookup], pre_model_hook=hook, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "tt"}}
    for q in ("first question", "second question", "third question"):
        agent.invoke({"messages": [HumanMessage(content=q)]}, config)
    session = hook.session(config)
    assert session.branch == 0 and session.message_count >= 11

    # 1. time travel: back to the checkpoint right after the first answer, then ask something else
    past = next(s for s in agent.get_state_history(config) if len(s.values.get("messages", [])) == 4)
    agent.invoke({"messages": [HumanMessage(content="a different second question")]}, past.config)
    assert session.branch == 1 and "a different second question" in str(model.received[-1])

    # 2. update_state edits a message in place (same id, new content): a redaction reaches the model
    latest = {"configurable": {"thread_id": "tt"}}
    msgs = agent.get_state(latest).values["messages"]
    first_human = msgs[0]
    agent.update_state(latest, {"messages": [HumanMessage(id=first_human.id, content="first question [redacted]")]})
    agent.invoke({"messages": [HumanMessage(content="go on")]}, latest)
    assert session.branch == 2
    assert any("[redacted]" in str(m.content) for m in model.received[-1])
    assert not any(m.content == "first question" for m in model.received[-1])

    # 3. RemoveMessage drops a whole round (the tool call and its result) from the middle
    msgs = agent.get_state(latest).values["messages"]
    call = next(m for m in msgs if isinstance(m, AIMessage) and m.tool_calls)
    result = next(m for m in msgs if isinstance(m, ToolMessage) and m.tool_call_id == call.tool_calls[0]["id"])
    agent.update_state(latest, {"messages": [RemoveMessage(id=call.id), RemoveMessage(id=result.id)]})
    agent.invoke({"messages": [HumanMessage(content="and now?")]}, latest)
    assert session.branch == 3
    assert all(getattr(m, "id", None) != call.id for m in model.received[-1])

    for view in model.received:  # every view the model got was valid
        validate_history([parse_message(m).to_dict() for m in view])
    figures = check_tree(session.store, session.session_id)
    assert figures["branches"] == 4
    # the abandoned branch is still there, unchanged
    assert [m.message.content for m in session.store.load_messages(session.session_id, branch=0)][:1] == [
        "first question"]

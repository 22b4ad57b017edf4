"""A real LangGraph ReAct graph with agentmem as its pre_model_hook and a scripted tool-calling chat model."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.prebuilt import create_react_agent  # noqa: E402  (deprecated alias, still the pre_model_hook API)

from agentmem import validate_history  # noqa: E402
from agentmem.integrations.langgraph import MemoryHook  # noqa: E402
from agentmem.messages import parse_message  # noqa: E402
from agentmem.tokens import TokenCounter  # noqa: E402


class ScriptedToolModel(BaseChatModel):
    """Calls `read_page` with increasing page numbers, then recall_memory for page 0's secret, then answers.

    Records every message list it receives (the view the graph gave it)."""

    pages: int = 30
    received: list = []

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-model"

    def bind_tools(self, tools: Any, **kwargs: Any):
        return self

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        self.received.append(list(messages))
        n_reads = sum(1 for m in messages if isinstance(m, ToolMessage) and m.name == "read_page")
        done_recall = any(isinstance(m, ToolMessage) and m.name == "recall_memory" for m in messages)
        calls_so_far = len(self.received) - 1
        if calls_so_far < self.pages:
            msg = AIMessage(content="", tool_calls=[{"id": f"c{calls_so_far}", "name": "read_page",
                                                     "args": {"page": calls_so_far}}])
        elif not done_recall:
            msg = AIMessage(content="", tool_calls=[{"id": "r1", "name": "recall_memory",
                                                     "args": {"query": "secret of page 0"}}])
        else:
            recalled = next(m.content for m in messages if isinstance(m, ToolMessage) and m.name == "recall_memory")
            found = "SECRET-0000" in recalled
            msg = AIMessage(content=f"done; found={found}; visible_reads={n_reads}")
        return ChatResult(generations=[ChatGeneration(message=msg)])


@tool
def read_page(page: int) -> str:
    """Read one page of a long document."""
    body = {"page": page, "secret": f"SECRET-{page:04d}", "text": "filler text " * 300}
    return json.dumps(body)


def test_react_graph_gets_bounded_valid_views_and_full_history_stays_in_state(tmp_path):
    hook = MemoryHook(policy="budget", budget_tokens=4000, store=tmp_path / "lg.db", keep_recent_rounds=2)
    model = ScriptedToolModel(pages=30)
    model.received = []
    agent = create_react_agent(model, [read_page, hook.recall_tool()], pre_model_hook=hook,
                               checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}, "recursion_limit": 200}
    result = agent.invoke({"messages": [{"role": "user", "content": "Read all pages, then report page 0's secret."}]},
                          config)
    counter = TokenCounter()
    assert len(model.received) == 32, "the scripted model did not run every branch"
    for view in model.received:
        dicts = [parse_message(m).to_dict() for m in view]
        validate_history(dicts)
        assert counter.messages(dicts) <= 4000 + 600  # one new turn may land on top of a just-managed view
    # the state still holds the whole raw history; the store holds it byte-exact too
    assert len(result["messages"]) == 1 + 31 * 2 + 1
    session = hook.session(config)
    assert session.message_count == len(result["messages"]) - 1  # the final answer is not re-fed to the hook
    assert session.store.message_count(session.session_id) == session.message_count
    # folding happened, and the agent got page 0's secret back through the recall tool
    assert any("[agentmem" in str(m.content) for m in model.received[-1])
    assert "found=True" in result["messages"][-1].content


def test_tools_and_prompt_given_to_the_hook_count_toward_the_budget(tmp_path):
    prompt = "You read pages. " * 200
    plain = MemoryHook(policy="budget", budget_tokens=4000, store=tmp_path / "a.db", keep_recent_rounds=2)
    counted = MemoryHook(policy="budget", budget_tokens=4000, store=tmp_path / "b.db", keep_recent_rounds=2,
                         tools=[read_page], prompt=prompt)
    counter = TokenCounter()
    history = [{"role": "user", "content": "Read all pages."}]
    for i in range(12):
        history += [{"role": "assistant", "content": "", "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": "read_page", "arguments": f'{{"page": {i}}}'}}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": read_page.invoke({"page": i})}]
    config = {"configurable": {"thread_id": "t"}}
    plain.invoke({"messages": history}, config)
    view = counted.invoke({"messages": history}, config)["llm_input_messages"]
    outside = counter.tools([read_page]) + counter.message({"role": "system", "content": prompt})
    report = counted.session(config).last.budget
    assert report["outside_tokens"] == outside and report["request_tokens"] <= 4000
    assert counter.messages([parse_message(m).to_dict() for m in view]) + outside <= 4000
    assert plain.session(config).last.budget["outside_tokens"] == 0  # without them, the hook cannot know


def test_threads_get_separate_sessions(tmp_path):
    hook = MemoryHook(policy="noop", store=tmp_path / "lg.db")
    a = hook.session({"configurable": {"thread_id": "a"}})
    b = hook.session({"configurable": {"thread_id": "b"}})
    assert a is not b and a.session_id == "lg-a" and b.session_id == "lg-b"
    assert hook.session({"configurable": {"thread_id": "a"}}) is a


class RecordingHook(MemoryHook):
    """Records which path LangGraph took (the real hook underneath)."""

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.paths: list[str] = []

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        self.paths.append("sync")
        return super().invoke(input, config, **kwargs)

    async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        self.paths.append("async")
        return await super().ainvoke(input, config, **kwargs)


def test_ainvoke_and_astream_use_the_hooks_async_path(tmp_path):
    import asyncio

    from agentmem.testing import ScriptedThinker

    thinker = ScriptedThinker(["notes"])
    hook = RecordingHook(policy="budget", budget_tokens=3000, store=tmp_path / "lg.db", thinker=thinker,
                         keep_recent_rounds=2)
    model = ScriptedToolModel(pages=12)
    model.received = []
    agent = create_react_agent(model, [read_page, hook.recall_tool()], pre_model_hook=hook,
                               checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "as"}, "recursion_limit": 200}
    inp = {"messages": [{"role": "user", "content": "Read all pages, then report page 0's secret."}]}
    result = asyncio.run(agent.ainvoke(inp, config))
    assert hook.paths and set(hook.paths) == {"async"} and thinker.requests
    assert "found=" in result["messages"][-1].content

    async def stream():
        return [c async for c in agent.astream({"messages": [{"role": "user", "content": "again"}]}, config)]

    hook.paths.clear()
    asyncio.run(stream())
    assert hook.paths and set(hook.paths) == {"async"}


def _slow_histories(n: int) -> list[list[dict]]:
    from agentmem.testing import synthetic_history

    return [synthetic_history(40, output_chars=800, seed=s) for s in range(n)]


def test_concurrent_coroutines_on_many_sessions_overlap_their_thinker_waits(tmp_path):
    import asyncio
    import time

    from agentmem.testing import ScriptedThinker

    thinker = ScriptedThinker(["notes of the folded rounds"], delay_s=1.0)
    hook = MemoryHook(policy="budget", budget_tokens=4000, store=tmp_path / "lg.db", thinker=thinker)
    histories = _slow_histories(6)

    async def one(i: int):
        return await hook.ainvoke({"messages": histories[i]}, {"configurable": {"thread_id": f"t{i}"}})

    async def all_of_them():
        return await asyncio.gather(*(one(i) for i in range(6)))

    t0 = time.perf_counter()
    results = asyncio.run(all_of_them())
    wall = time.perf_counter() - t0
    assert len(thinker.requests) >= 6  # every session folded with the thinker
    assert wall < 1.0 * len(thinker.requests) * 0.6, f"{wall:.2f}s: the thinker waits did not overlap"
    for i, r in enumerate(results):
        validate_history([parse_message(m).to_dict() for m in r["llm_input_messages"]])
        assert hook.session({"configurable": {"thread_id": f"t{i}"}}).view.tokens <= 4000


def test_concurrent_coroutines_on_one_session_fold_once(tmp_path):
    """Two coroutines on one session: one thinker call, no fold rejected (needs the session's asyncio-safe lock)."""
    import asyncio

    from agentmem.testing import ScriptedThinker

    thinker = ScriptedThinker(["notes of the folded rounds"], delay_s=0.2)
    hook = MemoryHook(policy="budget", budget_tokens=4000, store=tmp_path / "lg.db", thinker=thinker)
    history = _slow_histories(1)[0]
    config = {"configurable": {"thread_id": "shared"}}

    async def both():
        return await asyncio.gather(hook.ainvoke({"messages": history}, config),
                                    hook.ainvoke({"messages": history}, config))

    first, second = asyncio.run(both())
    session = hook.session(config)
    assert len(thinker.requests) == 1 and not session.last.rejected, (len(thinker.requests), session.last.rejected)
    assert first == second or len(session.store.load_events(session.session_id)) == 1

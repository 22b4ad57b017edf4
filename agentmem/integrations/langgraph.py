"""LangGraph surface: a pre_model_hook / graph node that gives the model a managed view of the state's messages.

    hook = MemoryHook(policy="budget", budget_tokens=8000, store="agentmem.db")
    agent = create_react_agent(model, tools + [hook.recall_tool()], pre_model_hook=hook, checkpointer=saver)

The hook returns `{"llm_input_messages": view}`: the graph state keeps the agent's full history (LangGraph's own
checkpoint), agentmem stores it losslessly too, and only the model input is managed. One agentmem session per
LangGraph thread (`configurable.thread_id`), so a graph serving many threads keeps them apart.

The hook is a LangChain `Runnable`, so LangGraph calls `ainvoke` under `graph.ainvoke` / `astream` (a plain callable
would be run synchronously in a worker thread) and the session's async path (`aprepare`, `await thinker.athink`)
is what runs. For `langchain.agents.create_agent` use `agentmem.integrations.langchain.AgentMemoryMiddleware`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig  # the langgraph extra

from agentmem.messages import parse_message, require_messages, to_langchain
from agentmem.primitives import EvictConfig, FoldConfig, RecallConfig, SummarizeConfig
from agentmem.session import MemorySession
from agentmem.store import Store
from agentmem.thinkers.base import Thinker

__all__ = ["MemoryHook", "ThreadSessions", "thread_id_of"]


def thread_id_of(config: Mapping[str, Any] | None) -> str:
    """The LangGraph thread of a run config ("default" when the graph runs without a checkpointer thread)."""
    configurable = (config or {}).get("configurable") or {}
    return str(configurable.get("thread_id") or "default")


class ThreadSessions:
    """One agentmem session per LangGraph thread, created on first use and resumed from the store afterwards.

    A thread whose state was rewritten by something else (another middleware replacing the messages, a time-travel
    fork from an old checkpoint, a user editing the state) no longer extends what its session stored; the session
    then continues on a branch from the longest common prefix, and what was stored before stays intact.
    """

    def __init__(self, *, policy: Any, budget_tokens: int | None, store: Store | str | os.PathLike[str] | None,
                 thinker: Thinker | str | None, model: str | None, session_prefix: str, background: bool,
                 on_over_budget: str, session_options: Mapping[str, Any], policy_config: Mapping[str, Any]):
        from agentmem.memory import budget_guard_for, build_policy, resolve_thinker

        self.store = store if isinstance(store, Store) else Store(store)
        self.thinker = resolve_thinker(thinker)
        self.policy = build_policy(policy, thinker=self.thinker, budget_tokens=budget_tokens, **policy_config)
        self._policy_spec = (policy, budget_tokens, dict(policy_config))
        self.guard = budget_guard_for(self.policy, on_over_budget)
        self.model = model
        self.session_prefix = session_prefix
        self.background = background
        self._options = dict(session_options)
        self._sessions: dict[str, MemorySession] = {}
        self._lock = threading.Lock()

    def _open(self, sid: str) -> MemorySession:
        from agentmem.memory import build_policy

        session = self._sessions.get(sid)
        if session is None:
            spec, budget, extra = self._policy_spec
            policy = build_policy(spec, thinker=self.thinker, budget_tokens=budget, **extra)
            session = MemorySession(self.store, sid, policy=policy, thinker=self.thinker, model=self.model,
                                    background=self.background, budget_guard=self.guard, **self._options)
            self._sessions[sid] = session
        return session

    def for_history(self, config: Mapping[str, Any] | None, messages: Sequence[Any]) -> MemorySession:
        """The thread's session, for a call on `messages`: checks the history is not empty first."""
        require_messages(messages)
        return self.for_thread(config)

    def for_thread(self, config: Mapping[str, Any] | None) -> MemorySession:
        """The agentmem session of a LangGraph thread (created, or resumed from the store, on first use)."""
        with self._lock:
            return self._open(self.session_prefix + thread_id_of(config))

    def recall_tool(self) -> Any:
        """A LangChain tool `recall_memory(ids, query)` answering from the calling thread's archive."""
        from langchain_core.tools import tool

        sessions = self

        @tool("recall_memory")
        def recall_memory(ids: list[str] | None = None, query: str | None = None,
                          config: RunnableConfig = None) -> str:  # type: ignore[assignment]
            """Read back earlier messages that were folded or evicted from your context, by the ids shown in an
            '[agentmem' block or stub (message ids or block ids like blk-3), or by a text query."""
            if not ids and not query:
                return "[agentmem: recall_memory needs 'ids' or a 'query']"
            return sessions.for_thread(config).recall_text(ids=ids or [], query=query)

        return recall_memory

    def close(self) -> None:
        """Wait for running background folds and stop their workers."""
        for session in list(self._sessions.values()):
            session.close()


class MemoryHook(Runnable):
    """A LangGraph pre_model_hook (and plain graph node) backed by agentmem sessions, one per thread.

    Args:
        policy, budget_tokens, thinker, model, background, on_over_budget, configs: as for AgentMemory.
        store: a Store, URL/path, or None for the default embedded SQLite file.
        session_prefix: agentmem session id = prefix + thread_id.
        output_key: "llm_input_messages" (default; state keeps the full history) — the documented contract of
            create_react_agent's pre_model_hook.
        tools, prompt: the tools and the system prompt given to the agent: a pre_model_hook does not see them, and
            their tokens count toward `budget_tokens`.
    """

    def __init__(
        self,
        *,
        policy: Any = "budget",
        budget_tokens: int | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        thinker: Thinker | str | None = None,
        model: str | None = None,
        session_prefix: str = "lg-",
        output_key: str = "llm_input_messages",
        background: bool = False,
        on_over_budget: str = "warn",
        tools: Sequence[Any] | None = None,
        prompt: str | None = None,
        fold_config: FoldConfig | None = None,
        summarize_config: SummarizeConfig | None = None,
        evict_config: EvictConfig | None = None,
        recall_config: RecallConfig | None = None,
        **policy_config: Any,
    ):
        self.tools = list(tools or [])
        self.prompt = prompt
        self.sessions = ThreadSessions(
            policy=policy, budget_tokens=budget_tokens, store=store, thinker=thinker, model=model,
            session_prefix=session_prefix, background=background, on_over_budget=on_over_budget,
            session_options=dict(fold_config=fold_config, summarize_config=summarize_config,
                                 evict_config=evict_config, recall_config=recall_config),
            policy_config=policy_config)
        self.store = self.sessions.store
        self.thinker = self.sessions.thinker
        self.output_key = output_key
        self.name = "agentmem_pre_model_hook"  # LangGraph names nodes after runnables

    def session(self, config: Mapping[str, Any] | None = None) -> MemorySession:
        """The agentmem session of a LangGraph thread (created or resumed on first use)."""
        return self.sessions.for_thread(config)

    def _messages(self, state: Any) -> list[Any]:
        msgs = state.get("messages") if isinstance(state, Mapping) else getattr(state, "messages", None)
        if msgs is None:
            raise ValueError("state has no 'messages'")
        return list(msgs)

    def _outside_tokens(self, session: MemorySession) -> int:
        """Tokens of the agent's tool schemas and system prompt (sent beside the view)."""
        from agentmem.memory import fit_view_budget

        outside = session.counter.tools(self.tools)
        if self.prompt:
            outside += session.counter.message({"role": "system", "content": self.prompt})
        fit_view_budget(session, self.sessions.policy, outside)
        return outside

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        messages = self._messages(input)
        session = self.sessions.for_history(config, messages)
        view = session.prepare(messages, outside_tokens=self._outside_tokens(session))
        return {self.output_key: [to_langchain(parse_message(d)) for d in view]}

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        messages = self._messages(input)
        session = self.sessions.for_history(config, messages)
        view = await session.aprepare(messages, outside_tokens=self._outside_tokens(session))
        return {self.output_key: [to_langchain(parse_message(d)) for d in view]}

    def __call__(self, state: Any, config: RunnableConfig | None = None) -> dict[str, Any]:
        return self.invoke(state, config)

    def recall_tool(self) -> Any:
        """A LangChain tool `recall_memory(ids, query)` answering from this thread's archive."""
        return self.sessions.recall_tool()

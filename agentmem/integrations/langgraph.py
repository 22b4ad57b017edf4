"""LangGraph surface: a pre_model_hook / graph node that gives the model a managed view of the state's messages.

    hook = MemoryHook(policy="budget", budget_tokens=8000, store="agentmem.db")
    agent = create_react_agent(model, tools + [hook.recall_tool()], pre_model_hook=hook, checkpointer=saver)

The hook returns `{"llm_input_messages": view}`: the graph state keeps the agent's full history (LangGraph's own
checkpoint), agentmem stores it losslessly too, and only the model input is managed. One agentmem session per
LangGraph thread (`configurable.thread_id`), so a graph serving many threads keeps them apart.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig  # the langgraph extra; needed at class definition for tools

from agentmem.messages import parse_message, to_langchain
from agentmem.primitives import EvictConfig, FoldConfig, RecallConfig, SummarizeConfig
from agentmem.session import MemorySession
from agentmem.store import Store
from agentmem.thinkers.base import Thinker

__all__ = ["MemoryHook"]


def _thread_id(config: Mapping[str, Any] | None) -> str:
    configurable = (config or {}).get("configurable") or {}
    return str(configurable.get("thread_id") or "default")


class MemoryHook:
    """A LangGraph pre_model_hook (and plain graph node) backed by agentmem sessions, one per thread.

    Args:
        policy, budget_tokens, thinker, model, configs: as for AgentMemory.
        store: a Store, URL/path, or None for the default embedded SQLite file.
        session_prefix: agentmem session id = prefix + thread_id.
        output_key: "llm_input_messages" (default; state keeps the full history) — the documented contract of
            create_react_agent's pre_model_hook.
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
        fold_config: FoldConfig | None = None,
        summarize_config: SummarizeConfig | None = None,
        evict_config: EvictConfig | None = None,
        recall_config: RecallConfig | None = None,
        **policy_config: Any,
    ):
        from agentmem.memory import resolve_thinker

        self.store = store if isinstance(store, Store) else Store(store)
        self.thinker = resolve_thinker(thinker)
        self._policy_spec = (policy, budget_tokens, policy_config)
        self.model = model
        self.session_prefix = session_prefix
        self.output_key = output_key
        self._configs = dict(fold_config=fold_config, summarize_config=summarize_config, evict_config=evict_config,
                             recall_config=recall_config)
        self._sessions: dict[str, MemorySession] = {}
        self._lock = threading.Lock()
        self.__name__ = "agentmem_pre_model_hook"  # LangGraph names nodes after callables

    def session(self, config: Mapping[str, Any] | None = None) -> MemorySession:
        """The agentmem session of a LangGraph thread (created or resumed on first use)."""
        from agentmem.memory import build_policy

        sid = self.session_prefix + _thread_id(config)
        with self._lock:
            if sid not in self._sessions:
                spec, budget, extra = self._policy_spec
                policy = build_policy(spec, thinker=self.thinker, budget_tokens=budget, **extra)
                self._sessions[sid] = MemorySession(self.store, sid, policy=policy, thinker=self.thinker,
                                                    model=self.model, **self._configs)
            return self._sessions[sid]

    def _messages(self, state: Any) -> list[Any]:
        msgs = state.get("messages") if isinstance(state, Mapping) else getattr(state, "messages", None)
        if msgs is None:
            raise ValueError("state has no 'messages'")
        return list(msgs)

    def __call__(self, state: Any, config: RunnableConfig = None) -> dict[str, Any]:  # type: ignore[assignment]
        session = self.session(config)
        view = session.prepare(self._messages(state))
        return {self.output_key: [to_langchain(parse_message(d)) for d in view]}

    async def ainvoke(self, state: Any, config: RunnableConfig = None) -> dict[str, Any]:  # type: ignore[assignment]
        session = self.session(config)
        view = await session.aprepare(self._messages(state))
        return {self.output_key: [to_langchain(parse_message(d)) for d in view]}

    def recall_tool(self) -> Any:
        """A LangChain tool `recall_memory(ids, query)` answering from this thread's archive."""
        from langchain_core.tools import tool

        hook = self

        @tool("recall_memory")
        def recall_memory(ids: list[str] | None = None, query: str | None = None,
                          config: RunnableConfig = None) -> str:  # type: ignore[assignment]
            """Read back earlier messages that were folded or evicted from your context, by the ids shown in an
            '[agentmem' block or stub (message ids or block ids like blk-3), or by a text query."""
            if not ids and not query:
                return "[agentmem: recall_memory needs 'ids' or a 'query']"
            return hook.session(config).recall_text(ids=ids or [], query=query)

        return recall_memory

"""LangChain v1 surface: `AgentMemoryMiddleware` for `langchain.agents.create_agent`.

    from langchain.agents import create_agent
    from agentmem.integrations.langchain import AgentMemoryMiddleware

    agent = create_agent(model, tools, middleware=[AgentMemoryMiddleware(budget_tokens=8000, store="agent.db")],
                         checkpointer=saver)

It works in `wrap_model_call` / `awrap_model_call` only: the graph state (and every checkpoint) keeps the agent's
full history, and only the request the model gets is replaced by the managed view, like LangChain's
ContextEditingMiddleware. The middleware adds no graph node and calls no LangChain model, so nothing of its work
shows up in `stream()` / `astream()` output (langchainjs#9455: a summarizer's tokens in the stream).

Per model call: the state's messages go to the thread's agentmem session (stored losslessly, O(1) for the part
already stored); the policy acts; the budget guard makes view + system prompt + tool schemas fit `budget_tokens`
(oversized outputs of the newest round become stubs); the view is validated (a tool result is never separated
from its call: the orphan ToolMessages of langchain#38352 cannot happen) and sent; a final reply is stored as returned,
a reply with tool calls at the next call, from the state (a human-in-the-loop edit may change its calls first).
Messages the view keeps unchanged are the state's own objects, so their ids, `additional_kwargs` and content blocks
(`cache_control`, images) reach the model unchanged.

Order with other middleware (first in the list = outermost): put AgentMemoryMiddleware first, so it sees the state's
real history and the middleware after it (ContextEditingMiddleware, ModelRetryMiddleware, ModelCallLimitMiddleware,
dynamic prompts, …) sees the managed view. Middleware that rewrites the state itself (SummarizationMiddleware)
works too: a history that no longer extends what the session stored continues on a branch of the session (see
ThreadSessions), but two context managers on one agent rarely make sense.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.config import get_config

from agentmem.integrations.langgraph import ThreadSessions
from agentmem.memory import fit_view_budget, round_report
from agentmem.messages import parse_message, to_langchain
from agentmem.primitives import EvictConfig, FoldConfig, RecallConfig, SummarizeConfig
from agentmem.session import MemorySession
from agentmem.store import Store
from agentmem.thinkers.base import Thinker
from agentmem.view import BlockItem, MessageItem, RecalledItem, StubItem

__all__ = ["AgentMemoryMiddleware"]


def _run_config() -> dict[str, Any]:
    try:
        return dict(get_config())
    except RuntimeError:  # called outside a graph run (a test calling the hook directly)
        return {}


class AgentMemoryMiddleware(AgentMiddleware):
    """Bounded, recallable model context for `create_agent`, one agentmem session per thread.

    Args:
        policy: a policy name ("budget", "window", "observation_masking", …) or a Policy instance.
        budget_tokens: tokens the whole model request may use: view, system prompt and tool schemas.
        store: a Store, a URL/path, or None for the default embedded SQLite file.
        thinker: a Thinker or spec ("local", a litellm model…) for summarize-by-thinking folds; None: extractive.
        recall_tool: register the `recall_memory` tool (through the middleware's `tools`).
        background: run thinking folds in a worker once the view passes the soft watermark.
        model: model name for token counting (default: the request model's `model_name`/`model`).
        on_over_budget: "warn" (OverBudgetWarning) or "raise" (OverBudgetError, before the model call) when the
            request exceeds the budget with every tool output evicted.
        session_prefix: agentmem session id = prefix + thread_id.
        policy_config: further policy options (keep_recent_rounds=…, evict_tool_tokens=…).
    """

    def __init__(
        self,
        *,
        policy: Any = "budget",
        budget_tokens: int | None = 8000,
        store: Store | str | os.PathLike[str] | None = None,
        thinker: Thinker | str | None = None,
        recall_tool: bool = True,
        background: bool = False,
        model: str | None = None,
        on_over_budget: str = "warn",
        session_prefix: str = "lc-",
        thinker_timeout_s: float | None = None,
        fold_config: FoldConfig | None = None,
        summarize_config: SummarizeConfig | None = None,
        evict_config: EvictConfig | None = None,
        recall_config: RecallConfig | None = None,
        **policy_config: Any,
    ):
        super().__init__()
        self.model = model
        self.sessions = ThreadSessions(
            policy=policy, budget_tokens=budget_tokens, store=store, thinker=thinker, model=model,
            session_prefix=session_prefix, background=background, on_over_budget=on_over_budget,
            session_options=dict(fold_config=fold_config, summarize_config=summarize_config,
                                 evict_config=evict_config, recall_config=recall_config,
                                 thinker_timeout_s=thinker_timeout_s),
            policy_config=policy_config)
        self.store = self.sessions.store
        self.tools = [self.sessions.recall_tool()] if recall_tool else []
        self.last_round: dict[str, Any] = {}
        self._system_tokens: dict[tuple[str, int], tuple[Any, int]] = {}

    # --- the two hooks --------------------------------------------------------------------------------------
    def wrap_model_call(self, request: ModelRequest,
                        handler: Callable[[ModelRequest], ModelResponse]) -> Any:
        session, outside = self._session(request)
        view = session.prepare(request.messages, outside_tokens=outside)
        response = handler(request.override(messages=self._messages(session, view, request.messages)))
        self._record(session, response)
        return response

    async def awrap_model_call(self, request: ModelRequest,
                               handler: Callable[[ModelRequest], Awaitable[ModelResponse]]) -> Any:
        session, outside = self._session(request)
        view = await session.aprepare(request.messages, outside_tokens=outside)
        response = await handler(request.override(messages=self._messages(session, view, request.messages)))
        self._record(session, response)
        return response

    # --- shared by both -------------------------------------------------------------------------------------
    def session(self, config: dict[str, Any] | None = None) -> MemorySession:
        """The agentmem session of a thread (`{"configurable": {"thread_id": …}}`)."""
        return self.sessions.for_thread(config if config is not None else _run_config())

    def _session(self, request: ModelRequest) -> tuple[MemorySession, int]:
        """The thread's session and what the request carries outside the view (system prompt, tool schemas)."""
        session = self.sessions.for_history(_run_config(), request.messages)
        if self.model is None and session.message_count == 0:  # count with the model the agent actually calls
            name = getattr(request.model, "model_name", None) or getattr(request.model, "model", None)
            if isinstance(name, str) and name != session.counter.model:
                from agentmem.tokens import TokenCounter

                session.counter = TokenCounter(name)
        counter = session.counter
        outside = counter.tools(request.tools)
        system = request.system_message
        if system is not None:
            key = (counter.tokenizer, id(system))
            known = self._system_tokens.get(key)
            if known is None or known[0] is not system:  # create_agent passes the same object every call
                known = (system, counter.message(parse_message(system)))
                self._system_tokens = {key: known}
            outside += known[1]
        fit_view_budget(session, self.sessions.policy, outside)
        return session, outside

    @staticmethod
    def _messages(session: MemorySession, view: list[dict[str, Any]], history: Sequence[BaseMessage]) -> list[Any]:
        """The view as LangChain messages; originals the view keeps unchanged are the state's own objects."""
        items = list(session.view.items)
        if len(items) != len(view):  # the session moved on meanwhile (another caller): convert the dicts
            return [to_langchain(parse_message(d)) for d in view]
        by_id = {m.id: m for m in history if getattr(m, "id", None)}
        out: list[Any] = []
        for item, d in zip(items, view, strict=True):
            original = by_id.get(item.key) if isinstance(item, (MessageItem, StubItem)) else None
            if isinstance(item, MessageItem) and original is not None:
                out.append(original)
            elif isinstance(item, StubItem) and original is not None:
                out.append(original.model_copy(update={"content": d["content"]}))
            elif isinstance(item, (BlockItem, RecalledItem)):
                out.append(HumanMessage(content=d["content"], id=item.key))
            else:
                out.append(to_langchain(parse_message(d, message_id=item.key)))
        return out

    def _record(self, session: MemorySession, response: Any) -> None:
        """Store a final reply as returned (malformed tool-call arguments too: it was paid for).

        A reply with tool calls is stored at the next model call, from the state: a human-in-the-loop middleware
        may still edit its calls before they run, and the store keeps what the agent actually did.
        """
        result = getattr(response, "model_response", response)  # ExtendedModelResponse wraps a ModelResponse
        messages = result.result if hasattr(result, "result") else [result]
        reply = next((m for m in messages if isinstance(m, AIMessage)), None)
        if reply is not None:
            if not reply.id:  # the state gets the same id the store keeps
                reply.id = f"lc-{uuid.uuid4().hex}"
            if not reply.tool_calls:
                session.record_response(parse_message(reply, index=session.message_count, reply=True))
        self.last_round = round_report(session)

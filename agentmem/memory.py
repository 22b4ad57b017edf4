"""AgentMemory: wrap any litellm-style completion callable so the model always gets a managed view.

    memory = AgentMemory(completion=litellm.completion, policy="budget", budget_tokens=8000)
    response = memory.completion(model="gpt-4o", messages=history, tools=tools)

The agent keeps passing its whole raw history; agentmem stores it losslessly, applies the policy, sends the view,
stores the reply, and returns the response unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentmem.budget_guard import BudgetGuardConfig
from agentmem.messages import parse_message, require_messages, response_message
from agentmem.primitives import EvictConfig, FoldConfig, RecallConfig, SummarizeConfig
from agentmem.session import MemorySession
from agentmem.store import Store
from agentmem.thinkers.base import Thinker

__all__ = ["AgentMemory", "RECALL_TOOL_NAME", "recall_tool_schema", "resolve_thinker", "build_policy",
           "budget_guard_for", "fit_view_budget", "round_report"]

from agentmem.session import RECALL_TOOL_NAME  # noqa: E402  (one definition of the tool's name)


def recall_tool_schema() -> dict[str, Any]:
    """The OpenAI tool the agent can call to read archived (folded or evicted) content back."""
    return {
        "type": "function",
        "function": {
            "name": RECALL_TOOL_NAME,
            "description": (
                "Read back earlier messages that were folded or evicted from your context; nothing is ever lost. "
                "Pass the ids shown in an '[agentmem' block or stub (message ids, or block ids like blk-3 for "
                "every message the block covers), and/or a query. Exact look-ups are ranked first: ids, a call "
                "name with its arguments ('show_playlist_songs playlist_id 17 page_index 1'; name fewer "
                "arguments to get every such call, oldest first, so the newest reading comes last), quoted "
                "phrases and identifier-like values; then a full-text search of the remaining words. Each match "
                "comes with its round (the call and its result). Long answers come in pages: the answer ends "
                "with 'N more … call recall_memory again with the same arguments and page=K' when there is more; "
                "nothing is cut without such a note."),
            "parameters": {
                "type": "object",
                "properties": {
                    "ids": {"type": "array", "items": {"type": "string"},
                            "description": "message or block ids to read back (a block id returns all it covers)"},
                    "query": {"type": "string",
                              "description": "a call name with arguments, quoted phrases, values or words to "
                                             "search the archive for"},
                    "page": {"type": "integer", "minimum": 1, "default": 1,
                             "description": "which page of a long answer (the answer says how many more)"},
                },
            },
        },
    }


def resolve_thinker(spec: Thinker | str | None) -> Thinker | None:
    """None or "extractive" → no model; a string → agentmem.thinkers.make_thinker; a Thinker → itself."""
    if spec is None or spec == "extractive":
        return None
    if isinstance(spec, str):
        from agentmem.thinkers import make_thinker

        return make_thinker(spec)
    return spec


def build_policy(spec: Any, *, thinker: Thinker | None, budget_tokens: int | None = None, **config: Any) -> Any:
    """make_policy, except that a policy named by a string folds with the thinker when one is given."""
    from agentmem.policies import REGISTRY, make_policy

    if (thinker is not None and isinstance(spec, str) and spec in REGISTRY
            and "fold_mode" in REGISTRY[spec].Config.model_fields):
        config.setdefault("fold_mode", "think")
    return make_policy(spec, budget_tokens=budget_tokens, **config)


def budget_guard_for(policy: Any, on_over_budget: str) -> BudgetGuardConfig | None:
    """The request budget of a policy that has one (budget_tokens), guarded as `on_over_budget` says."""
    if on_over_budget not in ("warn", "raise"):
        raise ValueError(f"on_over_budget must be 'warn' or 'raise', not {on_over_budget!r}")
    budget = getattr(getattr(policy, "config", None), "budget_tokens", None)
    if budget is None:
        return None
    return BudgetGuardConfig(budget_tokens=budget, on_over_budget=on_over_budget)  # type: ignore[arg-type]


def fit_view_budget(session: MemorySession, base_policy: Any, outside_tokens: int) -> None:
    """Give the session's policy the budget left for the view once tool schemas / a separate system prompt count.

    The policy keeps its watermarks on the view; the request budget is the user's `budget_tokens`. A budget too
    small for the policy's own constraints leaves the policy as it is: the budget guard handles the rest.
    """
    from pydantic import ValidationError

    request_budget = getattr(base_policy.config, "budget_tokens", None)
    if request_budget is None:
        return
    target = request_budget - max(0, outside_tokens)
    if getattr(session.policy.config, "budget_tokens", None) == target:
        return
    try:
        config = type(base_policy.config)(**{**base_policy.config.model_dump(), "budget_tokens": target})
    except (ValidationError, ValueError):
        return
    session.policy = type(base_policy)(config)


def round_report(session: MemorySession) -> dict[str, Any]:
    """last_round: the session's round stats plus the tokenizer that counted them."""
    return {**session.last.as_dict(), "tokenizer": session.counter.tokenizer}


def _litellm_completion() -> Callable[..., Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm.completion


def _litellm_acompletion() -> Callable[..., Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm.acompletion


class AgentMemory:
    """Memory middleware around a litellm-style `completion(model=, messages=, tools=, **kw)` callable.

    Args:
        completion: the client to call (default: litellm.completion, imported lazily).
        acompletion: async client (default: litellm.acompletion).
        policy: a policy name ("budget", "noop", …) or a Policy instance.
        budget_tokens: token budget for policies that have one.
        store: a Store, a URL/path, or None for the default embedded SQLite file.
        session_id: resume this session (its view is rebuilt from the log) or name a new one.
        thinker: a Thinker, a spec ("extractive", "local", "smollm2", a litellm model) or None.
        model: model name for token counting when it differs from the `model=` passed per call.
        recall_tool: add the `recall_memory` tool to every call's tools.
        verify: "cached" (default), "full" or "ends": how re-sent histories are compared (see MemorySession).
        background: run thinking folds in a worker once the view passes the policy's soft watermark; the agent
            waits only when the hard budget would otherwise be exceeded.
        on_over_budget: "warn" (OverBudgetWarning) or "raise" (OverBudgetError, before the model is called) when
            the request (view + tool schemas) exceeds `budget_tokens` even with every tool output evicted.
    """

    def __init__(
        self,
        completion: Callable[..., Any] | None = None,
        *,
        acompletion: Callable[..., Any] | None = None,
        policy: Any = "budget",
        budget_tokens: int | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        session_id: str | None = None,
        thinker: Thinker | str | None = None,
        model: str | None = None,
        recall_tool: bool = False,
        fold_config: FoldConfig | None = None,
        summarize_config: SummarizeConfig | None = None,
        evict_config: EvictConfig | None = None,
        recall_config: RecallConfig | None = None,
        thinker_timeout_s: float | None = None,
        background: bool = False,
        verify: str = "cached",
        on_over_budget: str = "warn",
        **policy_config: Any,
    ):
        self._completion = completion
        self._acompletion = acompletion
        self.store = store if isinstance(store, Store) else Store(store)
        self.thinker = resolve_thinker(thinker)
        self.policy = build_policy(policy, thinker=self.thinker, budget_tokens=budget_tokens, **policy_config)
        self.recall_tool = recall_tool
        self.session = MemorySession(self.store, session_id, policy=self.policy, thinker=self.thinker, model=model,
                                     fold_config=fold_config, summarize_config=summarize_config,
                                     evict_config=evict_config, recall_config=recall_config,
                                     thinker_timeout_s=thinker_timeout_s, background=background,
                                     verify=verify, budget_guard=budget_guard_for(self.policy, on_over_budget))
        self._model_for_tokens = model

    # --- public surface -------------------------------------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self.session.session_id

    @property
    def recall_tool_schema(self) -> dict[str, Any]:
        return recall_tool_schema()

    @property
    def last_round(self) -> dict[str, Any]:
        """Stats of the last call: raw_tokens, view_tokens, actions, bookkeeping_ms, thinker_ms, budget, tokenizer…"""
        return round_report(self.session)

    def view(self) -> list[dict[str, Any]]:
        """The current managed view (what the model would get now)."""
        return self.session.view.render()

    def _tools(self, tools: Sequence[Mapping[str, Any]] | None) -> list[Any] | None:
        if not self.recall_tool:
            return list(tools) if tools is not None else None
        tools = list(tools or [])
        if not any((t.get("function") or {}).get("name") == RECALL_TOOL_NAME for t in tools):
            tools.append(recall_tool_schema())
        return tools

    def completion(self, model: str | None = None, messages: Sequence[Any] = (), tools: Any = None,
                   **kwargs: Any) -> Any:
        """Managed litellm.completion: same arguments, same response."""
        tools = self._tools(tools)
        view = self.session.prepare(messages, outside_tokens=self._outside_tokens(model, messages, tools))
        call = self._completion or _litellm_completion()
        if tools is not None:
            kwargs["tools"] = tools
        response = call(model=model, messages=view, **kwargs)
        if not kwargs.get("stream"):
            self._record(response)
        return response

    async def acompletion(self, model: str | None = None, messages: Sequence[Any] = (), tools: Any = None,
                          **kwargs: Any) -> Any:
        """Async twin of completion(); shares the same planning code."""
        tools = self._tools(tools)
        view = await self.session.aprepare(messages, outside_tokens=self._outside_tokens(model, messages, tools))
        call = self._acompletion or _litellm_acompletion()
        if tools is not None:
            kwargs["tools"] = tools
        response = await call(model=model, messages=view, **kwargs)
        if not kwargs.get("stream"):
            self._record(response)
        return response

    def _outside_tokens(self, model: str | None, messages: Sequence[Any], tools: Sequence[Any] | None) -> int:
        """Checks the history is not empty; the tokens of the tool schemas (they count toward the budget).

        A new session without `model=` counts with the tokenizer of the model its first call names.
        """
        require_messages(messages)
        if self._model_for_tokens is None and model and self.session.message_count == 0:
            from agentmem.tokens import TokenCounter

            self._model_for_tokens = model
            self.session.counter = TokenCounter(model)
        outside = self.session.counter.tools(tools)
        fit_view_budget(self.session, self.policy, outside)
        return outside

    def _record(self, response: Any) -> None:
        """Store the reply as returned: it was paid for, so malformed tool-call arguments are kept, not raised."""
        self.session.record_response(parse_message(response_message(response), index=self.session.message_count,
                                                   reply=True))

    # --- the recall tool ------------------------------------------------------------------------------------
    def execute_recall(self, arguments: Mapping[str, Any] | str) -> str:
        """Answer one `recall_memory` call from the archive. Bad arguments get a clear message, not an exception."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except json.JSONDecodeError as exc:
                return f"[agentmem: recall_memory arguments are not valid JSON: {exc.msg}]"
        if not isinstance(arguments, Mapping):
            return "[agentmem: recall_memory takes an object with 'ids' and/or 'query']"
        ids = arguments.get("ids") or []
        if isinstance(ids, str):
            ids = [ids]
        query = arguments.get("query")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return "[agentmem: recall_memory 'ids' must be a list of strings]"
        if query is not None and not isinstance(query, str):
            return "[agentmem: recall_memory 'query' must be a string]"
        if not ids and not query:
            return "[agentmem: recall_memory needs 'ids' or a 'query']"
        page = arguments.get("page", 1)
        if isinstance(page, str) and page.strip().isdigit():
            page = int(page)
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            return "[agentmem: recall_memory 'page' must be a whole number from 1]"
        return self.session.recall_text(ids=ids, query=query, page=page)

    def answer_recall_calls(self, response_or_message: Any) -> list[dict[str, Any]]:
        """Tool-result messages answering every recall_memory call in a model reply (others are left to you)."""
        msg = response_or_message
        if not (isinstance(msg, Mapping) and msg.get("role") == "assistant"):
            msg = response_message(response_or_message)
        out = []
        for tc in msg.get("tool_calls") or []:
            fn = tc.get("function") or {}
            if fn.get("name") == RECALL_TOOL_NAME:
                out.append({"role": "tool", "tool_call_id": tc["id"], "name": RECALL_TOOL_NAME,
                            "content": self.execute_recall(fn.get("arguments") or "{}")})
        return out
